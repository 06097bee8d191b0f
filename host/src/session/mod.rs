//! The session manager: the only code in weir that speaks MCP as a client.
//!
//! One [`Upstream`] per configured server, each with one persistent session
//! that every plugin run shares. Connections are O(servers): a run cannot
//! open one, it can only ask this manager to use one.

mod client;
mod process;
mod upstream;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt, join_all};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::process::Launch;
pub use self::upstream::ServerStats;
use self::upstream::Upstream;
use crate::config::{Config, ServerConfig};
use crate::gateway::{Arguments, CallError, ToolGateway, ToolInfo};

/// Every server the host may talk to, by name.
pub struct Sessions {
    servers: BTreeMap<String, Arc<Upstream>>,
    closing: CancellationToken,
    reaper: TaskTracker,
}

impl Sessions {
    /// Prepares one upstream per configured server; starts none of them.
    /// `weir_exe` is the `weir` binary that serves the built-in server.
    pub fn new(config: &Config, weir_exe: PathBuf) -> Self {
        let closing = CancellationToken::new();
        let reaper = TaskTracker::new();
        let servers = config
            .servers
            .iter()
            .map(|(name, server)| {
                let launch = match server {
                    ServerConfig::Builtin => Launch {
                        program: weir_exe.clone(),
                        args: vec![crate::builtin::SUBCOMMAND.to_owned()],
                        env: Vec::new(),
                        cwd: None,
                    },
                    ServerConfig::Stdio(s) => Launch {
                        program: PathBuf::from(&s.command),
                        args: s.args.clone(),
                        env: s.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                        cwd: s.cwd.clone(),
                    },
                };
                let upstream = Upstream::new(
                    Arc::from(name.as_str()),
                    launch,
                    config.sessions.clone(),
                    closing.child_token(),
                    reaper.clone(),
                );
                (name.clone(), Arc::new(upstream))
            })
            .collect();
        Self {
            servers,
            closing,
            reaper,
        }
    }

    /// Names of the configured servers.
    pub fn server_names(&self) -> impl Iterator<Item = &str> {
        self.servers.keys().map(String::as_str)
    }

    fn upstream(&self, server: &str) -> Result<&Arc<Upstream>, CallError> {
        self.servers.get(server).ok_or_else(|| {
            let known: Vec<&str> = self.server_names().collect();
            CallError::NotFound(format!(
                "no server named `{server}` (configured: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// One server's tools, starting its session if needed.
    pub async fn server_tools(&self, server: &str) -> Result<Vec<ToolInfo>, CallError> {
        let tools = self.upstream(server)?.tools().await?;
        Ok(tools.values().cloned().collect())
    }

    /// Per-server counters, in name order.
    pub fn stats(&self) -> Vec<ServerStats> {
        self.servers.values().map(|u| u.stats()).collect()
    }

    /// Closes every session and ends every server process, all servers at
    /// once; returns when all are gone. Calls made after this fail with
    /// `unavailable`.
    pub async fn shutdown(&self) {
        self.closing.cancel();
        join_all(self.servers.values().map(|u| u.shutdown())).await;
        self.reaper.close();
        self.reaper.wait().await;
    }
}

impl ToolGateway for Sessions {
    fn call_tool<'a>(
        &'a self,
        server: &'a str,
        tool: &'a str,
        arguments: Option<Arguments>,
    ) -> BoxFuture<'a, Result<String, CallError>> {
        async move { self.upstream(server)?.call_tool(tool, arguments).await }.boxed()
    }

    /// Starts any session not yet open (each server still gets exactly one)
    /// and lists what they offer. A server that cannot start is left out,
    /// with a warning in the log; a call to it reports why.
    fn list_tools(&self) -> BoxFuture<'_, Vec<ToolInfo>> {
        async move {
            let lists = join_all(
                self.servers
                    .iter()
                    .map(|(name, u)| async move { u.tools().await.map_err(|e| (name, e)) }),
            )
            .await;
            let mut all = Vec::new();
            for list in lists {
                match list {
                    Ok(tools) => all.extend(tools.values().cloned()),
                    Err((server, error)) => {
                        tracing::warn!(server = %server, %error, "left out of list-tools")
                    }
                }
            }
            all
        }
        .boxed()
    }
}
