//! The embedded default MCP server, so weir does something real on a fresh
//! machine with nothing installed.
//!
//! It runs as a child process of the `weir` binary itself (`weir
//! builtin-server`) and is reached over stdio like any other server: the
//! demo exercises the very session path every real server uses.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::fleet::kv::Stored;
use crate::fleet::{Fleet, REDIS_ENV};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

/// Keys the key-value store holds at most; a plugin filling it in a loop
/// gets an error, not the host's memory.
const MAX_KEYS: usize = 10_000;

/// The server's state: one in-memory key-value store per process, so per
/// weir host (weir keeps one session to it) — or, in a fleet with
/// `weir.redis`, one for the fleet, on Redis.
#[derive(Clone)]
pub struct BuiltinServer {
    kv: Arc<Mutex<BTreeMap<String, String>>>,
    fleet: Fleet,
    tool_router: ToolRouter<Self>,
}

#[derive(Deserialize, JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    message: String,
}

#[derive(Deserialize, JsonSchema)]
struct AddArgs {
    a: f64,
    b: f64,
}

#[derive(Deserialize, JsonSchema)]
struct GetArgs {
    key: String,
}

#[derive(Deserialize, JsonSchema)]
struct SetArgs {
    key: String,
    value: String,
}

/// A kv call while the fleet's Redis does not answer: refused, rather
/// than answered from one replica's memory and wrong on the next.
const UNSHARED: &str = "the kv store is shared through the fleet's Redis (weir.redis), \
    which does not answer right now; try again in a moment";

fn failure(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

fn text(t: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(t)])
}

#[tool_router]
impl BuiltinServer {
    pub fn new() -> Self {
        Self::with_fleet(Fleet::local())
    }

    /// The server with its kv store shared across `fleet`.
    pub fn with_fleet(fleet: Fleet) -> Self {
        Self {
            kv: Arc::default(),
            fleet,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Returns the message it is given.")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> CallToolResult {
        text(args.message)
    }

    #[tool(description = "Adds two numbers.")]
    async fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> CallToolResult {
        text((a + b).to_string())
    }

    #[tool(description = "The current time in UTC, as RFC 3339.")]
    async fn now(&self) -> CallToolResult {
        text(humantime::format_rfc3339_seconds(SystemTime::now()).to_string())
    }

    #[tool(description = "Stores a value under a key, in memory, for the life of the weir host.")]
    async fn kv_set(
        &self,
        Parameters(SetArgs { key, value }): Parameters<SetArgs>,
    ) -> CallToolResult {
        if self.fleet.is_shared() {
            return match self.fleet.kv_set(&key, &value, MAX_KEYS).await {
                Some(Stored::Yes) => text("ok"),
                Some(Stored::Full) => failure(format!("the store is full ({MAX_KEYS} keys)")),
                None => failure(UNSHARED.to_owned()),
            };
        }
        let Ok(mut kv) = self.kv.lock() else {
            return CallToolResult::error(vec![ContentBlock::text("store unavailable")]);
        };
        if kv.len() >= MAX_KEYS && !kv.contains_key(&key) {
            return CallToolResult::error(vec![ContentBlock::text(format!(
                "the store is full ({MAX_KEYS} keys)"
            ))]);
        }
        kv.insert(key, value);
        text("ok")
    }

    #[tool(description = "Reads the value stored under a key.")]
    async fn kv_get(&self, Parameters(GetArgs { key }): Parameters<GetArgs>) -> CallToolResult {
        let value = if self.fleet.is_shared() {
            match self.fleet.kv_get(&key).await {
                Some(value) => value,
                None => return failure(UNSHARED.to_owned()),
            }
        } else {
            self.kv.lock().ok().and_then(|kv| kv.get(&key).cloned())
        };
        match value {
            Some(value) => text(value),
            None => {
                CallToolResult::error(vec![ContentBlock::text(format!("no value under `{key}`"))])
            }
        }
    }
}

impl Default for BuiltinServer {
    fn default() -> Self {
        Self::new()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for BuiltinServer {}

/// Serves on stdin/stdout until the client closes the session; its kv
/// store on the fleet's Redis when weir says where that is
/// ([`REDIS_ENV`]).
pub async fn serve_stdio() -> std::io::Result<()> {
    let fleet = match std::env::var(REDIS_ENV) {
        Ok(url) => Fleet::redis(&url, None, &crate::metrics::Metrics::new())
            .map_err(std::io::Error::other)?,
        Err(_) => Fleet::local(),
    };
    let service = BuiltinServer::with_fleet(fleet)
        .serve(crate::stdio::stdio())
        .await
        .map_err(std::io::Error::other)?;
    service.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}
