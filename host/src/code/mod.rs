//! Code mode: a model writes a short JavaScript program against the tools,
//! and weir runs it as an untrusted plugin run — the same sandbox, gate,
//! grants, budgets and audit trail as any plugin, on the same pooled
//! sessions. Only the runtime differs: it ships with weir (a JavaScript
//! engine built as a component of weir's world, [`CodeMode::prepare`]
//! pre-initializes it once), and its input is the script.
//!
//! - [`declarations`]: TypeScript declarations of tools, from their
//!   schemas: the API a script calls.
//! - [`outcome`]: what a run gives back, worded for the model to fix its
//!   code.

pub mod declarations;
pub mod outcome;

use crate::plugins::PluginError;
use crate::runtime::Host;
use crate::sandbox::Plugin;

pub use outcome::{Execution, ScriptError};

/// Code mode's runtime, ready to run scripts.
#[derive(Clone)]
pub struct CodeMode {
    runtime: Plugin,
}

impl std::fmt::Debug for CodeMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeMode")
            .field("runtime", &self.runtime.name())
            .finish()
    }
}

impl CodeMode {
    /// Loads the runtime component (`bytes`, which ships with weir) under
    /// code mode's grant. The first start pre-initializes and compiles it
    /// (seconds); later starts take it from the compile cache.
    pub async fn prepare(host: &Host, bytes: &[u8]) -> Result<Self, PluginError> {
        Ok(Self {
            runtime: host.load_code_runtime(bytes).await?,
        })
    }

    /// The runtime as a plugin (its name is the caller of every call a
    /// script makes).
    pub fn runtime(&self) -> &Plugin {
        &self.runtime
    }

    /// Runs `code` once, in a fresh instance: the body of an async
    /// function, whose `return` value is the answer.
    pub async fn execute(&self, host: &Host, code: &str) -> Execution {
        let input = serde_json::json!({ "code": code }).to_string();
        let (result, captured) = host.run_capturing(&self.runtime, &input).await;
        Execution::read(result, captured, self.runtime.policy())
    }
}
