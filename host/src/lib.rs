//! weir: a WebAssembly plugin host for MCP tools.
//!
//! One native process owns every MCP session; agents run as sandboxed
//! WebAssembly components whose only way out is `call-tool`. So however an
//! agent is written, connections stay one per server.
//!
//! # Layout
//!
//! - [`config`]: the `mcpServers` file, parsed then validated into [`Config`].
//! - [`session`]: one persistent, supervised MCP session per server; the only
//!   MCP client code. Knows nothing of wasm.
//! - [`gateway`]: the plain-typed door between the two: [`ToolGateway`].
//! - [`sandbox`]: the wasmtime engine, the per-run store and its limits, and
//!   the host side of `weir:agent/mcp`. Knows nothing of MCP.
//! - [`policy`]: what each plugin may do; plain data and pure decisions.
//! - [`plugins`]: finding plugin files, by path or by name in a directory.
//! - [`metrics`]: what the host counts, rendered for Prometheus.
//! - [`runtime`]: [`Host`] ties sessions and sandbox together and owns
//!   shutdown.
//! - [`serve`]: `weir serve`, the host as an MCP server of its plugins.
//! - [`stdio`]: stdin/stdout as non-blocking streams, for MCP over stdio.
//! - [`doctor`]: `weir doctor`, every server and plugin checked, with next steps.
//! - [`stats`]: the operator's summary, read from the metrics: `weir stats`, the status page.
//! - [`recording`]: a run's tool calls recorded, and replayed with no server.
//! - [`scaffold`], [`plugin_build`]: `weir new` and `weir build`, for plugin authors.
//! - [`builtin`]: the embedded default MCP server.
//! - [`cli`]: the `weir` command line; `main.rs` only calls it.
//! - `fuzzing` (feature `fuzzing` only): wrappers the fuzz targets in `fuzz/`
//!   reach private parsers through; not an API.

pub mod builtin;
pub mod config;
/// Thin public wrappers of private parsers, for the fuzz targets in `fuzz/`.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod gate;
pub mod gateway;
pub mod metrics;
pub mod plugins;
pub mod policy;
pub mod recording;
pub mod redact;
pub mod runtime;
pub mod sandbox;
pub mod serve;
pub mod session;
pub mod stdio;

pub use config::Config;
pub use gateway::{CallError, ToolGateway, ToolInfo};
pub use runtime::{Host, HostError, HostRunError};
pub use sandbox::{Plugin, RunError};
