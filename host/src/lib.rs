//! weir: a WebAssembly plugin host for MCP tools.
//!
//! One native process owns every MCP session; agents run as sandboxed
//! WebAssembly components whose only way out is `call-tool`. So however an
//! agent is written, connections stay one per server.
//!
//! # Layout
//!
//! In the order a call flows, plugin to server:
//!
//! - [`plugins`]: finding plugin files, by path or by name in a directory.
//! - [`sandbox`]: the wasmtime engine, the per-run store and its limits, and
//!   the host side of `weir:agent/mcp`. Knows nothing of MCP.
//! - [`gate`]: the one gate every tool call passes — a plugin's, a batch's,
//!   a client's passed-through call — applying the caller's [`policy`]
//!   (plain data and pure decisions), with one audit event.
//! - [`gateway`]: the plain-typed door the gate calls through: [`ToolGateway`].
//! - [`session`]: one persistent, supervised MCP session per server; the only
//!   MCP client code. Knows nothing of wasm.
//! - [`serve`]: `weir serve`, the host as an MCP server of its plugins (and
//!   its status page).
//!
//! Around them: [`ask`] (who can answer a server's request for input in
//! the middle of a call), [`config`] (the `mcpServers` file, parsed then validated
//! into [`Config`]), [`redact`] (secrets masked wherever weir shows them),
//! [`metrics`] (what the host counts, for Prometheus), [`fleet`] (state the
//! replicas of a fleet share on Redis), [`runtime`] ([`Host`]
//! ties sessions, gate and sandbox together and owns shutdown),
//! [`recording`] (a run's calls recorded and replayed with no server),
//! [`builtin`] (the embedded default server), [`stdio`] (stdin/stdout as
//! non-blocking streams), and `fuzzing` (feature `fuzzing` only: wrappers
//! the fuzz targets in `fuzz/` reach private parsers through; not an API).
//!
//! Dependencies point one way, ground floor first (`tests/layers.rs`
//! holds them to it): policy, redact, stdio → gateway → metrics → gate,
//! recording → config → sandbox, session, builtin → plugins → runtime →
//! serve. The command line, doctor, `weir stats`, `weir new` and
//! `weir build` are the `weir` application crate's (`app/`), so this
//! library depends on no command-line crate.

pub mod ask;
pub mod builtin;
pub mod code;
pub mod config;
pub mod fleet;
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
pub mod search;
pub mod serve;
pub mod session;
pub mod stdio;

pub use config::Config;
pub use gateway::{CallError, ToolGateway, ToolInfo};
pub use runtime::{Host, HostError, HostRunError};
pub use sandbox::{Plugin, RunError};
