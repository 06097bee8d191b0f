//! The `weir` application: the command line and the tools around the
//! host — `weir doctor`, `weir stats`, `weir new`, `weir build`. The host
//! itself (config, gate, sessions, sandbox, `weir serve`) is the
//! `weir-host` library, which depends on no command-line crate.
//!
//! - [`cli`]: the `weir` command line; `main.rs` only calls it.
//! - [`auth`]: `weir auth login/status/logout`, sign-ins to servers behind OAuth.
//! - [`doctor`]: `weir doctor`, every server and plugin checked, with next steps.
//! - [`stats`]: `weir stats`, the status page's summary for a terminal.
//! - [`scaffold`], [`plugin_build`]: `weir new` and `weir build`, for plugin authors.

/// Code mode's runtime component (`code-runtime/`, built by `build.rs`):
/// embedded, so code mode needs nothing installed beside `weir`.
pub const CODE_RUNTIME: &[u8] = include_bytes!(env!("WEIR_CODE_RUNTIME"));

pub mod auth;
pub mod cli;
pub mod doctor;
pub mod plugin_build;
pub mod scaffold;
pub mod stats;
