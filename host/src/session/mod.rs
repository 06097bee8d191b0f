//! The session manager: the only code in weir that speaks MCP as a client.
//!
//! Per configured server, a pool of supervised sessions that every plugin
//! run shares (or, for a plugin-scoped server, one pool per plugin).
//! Connections are O(servers): a run cannot open one, it can only ask this
//! manager to use one.
//!
//! - [`process`]: a stdio server as an OS process: spawn, stderr, terminate.
//! - [`wire`]: the stdio transport: every line a server writes checked as
//!   JSON-RPC; answers to weir's own calls handed to the lane.
//! - [`outbox`]: the lines a session writes, in order, out at once.
//! - [`lane`]: weir's own `tools/call` requests on a stdio session.
//! - [`client`]: weir's MCP client handler (identity, notifications).
//! - [`tool_list`]: a session's tool list, and when to fetch it again.
//! - [`listen`]: 2026-07-28's `subscriptions/listen` for tool-list changes.
//! - [`backoff`]: when a failed server may be started again.
//! - [`slot`]: one supervised session: start, share, recover, close.
//! - [`pool`]: slots per server, least-loaded dispatch, session scope.

mod backoff;
mod client;
mod elicitation;
mod failure;
mod http_client;
mod lane;
mod lifecycle;
mod listen;
mod live;
pub mod oauth;
mod outbox;
mod pinger;
mod pool;
mod process;
mod rounds;
mod slot;
mod tool_list;
pub(crate) mod wire;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::future::{BoxFuture, FutureExt, join_all};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::pool::Upstream;
use self::process::Launch;
use self::slot::{Connect, ServerShared};
use crate::config::{Config, HttpServer, Transport};
use crate::fleet::Fleet;
use crate::gateway::{ALIAS_SERVER, Alias};
use crate::gateway::{Arguments, CallError, Caller, ToolGateway, ToolInfo};
use crate::metrics::Metrics;

/// A snapshot of one server's sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStats {
    pub name: String,
    /// Sessions opened since the host started: first starts, restarts
    /// after a crash, one per pool slot and plugin scope.
    pub sessions_opened: u64,
    /// Of those, sessions opened to replace one that was lost.
    pub restarts: u64,
    /// How long each open session has been open.
    pub session_ages: Vec<std::time::Duration>,
    /// Starts keep failing: calls fail fast until the cool-down ends.
    pub circuit_open: bool,
    /// Processes of the sessions open now (stdio servers).
    pub pids: Vec<u32>,
    /// The MCP revision an open session negotiated, if one is open.
    pub protocol: Option<String>,
}

/// Every server the host may talk to, by name.
pub struct Sessions {
    servers: BTreeMap<String, Upstream>,
    aliases: BTreeMap<String, Alias>,
    /// Aliases already reported as dangling, so the log says it once.
    dangling_reported: std::sync::Mutex<std::collections::BTreeSet<String>>,
    metrics: Arc<Metrics>,
    closing: CancellationToken,
    reaper: TaskTracker,
    /// Counts `notifications/tools/list_changed` from any server.
    tool_changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Sessions {
    /// Prepares the servers; starts none of them. `weir_exe` is the `weir`
    /// binary that serves the built-in server.
    /// Circuits are shared across `fleet`, and the built-in server's kv
    /// store is told where the fleet's Redis is.
    pub fn new(config: &Config, weir_exe: PathBuf, metrics: Arc<Metrics>, fleet: Fleet) -> Self {
        let closing = CancellationToken::new();
        let reaper = TaskTracker::new();
        let tool_changes = Arc::new(tokio::sync::watch::Sender::new(0));
        let servers = config
            .servers
            .iter()
            .map(|(name, server)| {
                let connect = match &server.transport {
                    Transport::Builtin => Connect::Stdio(Launch {
                        program: weir_exe.clone(),
                        args: vec![crate::config::BUILTIN_SUBCOMMAND.to_owned()],
                        env: config
                            .redis
                            .iter()
                            .map(|url| (crate::fleet::REDIS_ENV.to_owned(), url.clone()))
                            .collect(),
                        cwd: None,
                    }),
                    Transport::Stdio(s) => Connect::Stdio(Launch {
                        program: PathBuf::from(&s.command),
                        args: s.args.clone(),
                        env: s.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                        cwd: s.cwd.clone(),
                    }),
                    Transport::Http(h) => Connect::Http {
                        config: http_config(h),
                        // One pool of keep-alive connections per server,
                        // whatever its sessions and reconnects.
                        client: http_client::client(metrics.http_connections(name))
                            .map_err(|error| {
                                tracing::warn!(server = %name, %error, "cannot build a pooled HTTP client; each request opens a connection");
                            })
                            .ok(),
                        oauth: oauth_for(name, h, &metrics),
                    },
                };
                let (opened, restarts) = metrics.server_counters(name);
                let shared = Arc::new(ServerShared {
                    name: Arc::from(name.as_str()),
                    connect,
                    target: match &server.transport {
                        Transport::Http(h) => {
                            h.url
                                .host_str()
                                .map(|host| match h.url.port_or_known_default() {
                                    Some(port) => format!("{host}:{port}"),
                                    None => host.to_owned(),
                                })
                        }
                        _ => None,
                    },
                    settings: config.sessions.clone(),
                    call_timeout: server.call_timeout.unwrap_or(config.sessions.call_timeout),
                    startup_timeout: server
                        .startup_timeout
                        .unwrap_or(config.sessions.startup_timeout),
                    ping_interval: server.ping_interval,
                    negotiation: lifecycle::Negotiation::new(server.protocol.clone()),
                    elicitation: server.elicitation.unwrap_or_default(),
                    opened,
                    restarts,
                    reaper: reaper.clone(),
                    tool_changes: tool_changes.clone(),
                    fleet: fleet.clone(),
                });
                let upstream = Upstream::new(shared, server, closing.child_token());
                (name.clone(), upstream)
            })
            .collect();
        Self {
            servers,
            aliases: config.aliases.clone(),
            dangling_reported: Default::default(),
            metrics,
            closing,
            reaper,
            tool_changes,
        }
    }

    /// Changes whenever a server says its tool list changed: how `weir
    /// serve` knows to tell its own clients, when it passes tools through.
    pub fn tool_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tool_changes.subscribe()
    }

    /// Names of the configured servers.
    pub fn server_names(&self) -> impl Iterator<Item = &str> {
        self.servers.keys().map(String::as_str)
    }

    fn upstream(&self, server: &str) -> Result<&Upstream, CallError> {
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

    /// One server's tools as `caller` sees them, starting a session if
    /// needed.
    pub async fn server_tools(
        &self,
        caller: &Caller,
        server: &str,
    ) -> Result<Vec<ToolInfo>, CallError> {
        let pool = self.upstream(server)?.pool_for(&caller.plugin)?;
        let tools = pool.first().tools().await?;
        Ok(tools.values().cloned().collect())
    }

    /// One `ping` round trip to `server` (starting its session if needed).
    pub async fn ping(
        &self,
        caller: &Caller,
        server: &str,
    ) -> Result<std::time::Duration, CallError> {
        self.upstream(server)?
            .pool_for(&caller.plugin)?
            .first()
            .ping()
            .await
    }

    /// Every alias whose tool does not exist (or whose server cannot be
    /// reached), with why: starts the sessions it needs to know.
    pub async fn dangling_aliases(&self, caller: &Caller) -> Vec<(String, String)> {
        let mut dangling = Vec::new();
        for (name, alias) in &self.aliases {
            match self.server_tools(caller, &alias.server).await {
                Ok(tools) if tools.iter().any(|t| t.name == alias.tool) => {}
                Ok(_) => dangling.push((
                    name.clone(),
                    format!(
                        "alias `{name}` points to `{}/{}`, but server `{}` has no tool `{}`",
                        alias.server, alias.tool, alias.server, alias.tool
                    ),
                )),
                Err(e) => dangling.push((
                    name.clone(),
                    format!(
                        "alias `{name}` points to `{}/{}`, but the server is unavailable: {e}",
                        alias.server, alias.tool
                    ),
                )),
            }
        }
        dangling
    }

    /// The aliases as tools of server `alias`, described and typed like the
    /// tools they stand for. One whose tool is missing is left out, and
    /// said once in the log.
    fn alias_tools(&self, tools: &[ToolInfo]) -> Vec<ToolInfo> {
        self.aliases
            .iter()
            .filter_map(|(name, alias)| {
                let target = tools
                    .iter()
                    .find(|t| t.server == alias.server && t.name == alias.tool);
                if target.is_none()
                    && self
                        .dangling_reported
                        .lock()
                        .is_ok_and(|mut seen| seen.insert(name.clone()))
                {
                    tracing::error!(
                        alias = %name,
                        target = %format!("{}/{}", alias.server, alias.tool),
                        "alias points to a tool its server does not offer (now); calls to it fail"
                    );
                }
                let target = target?;
                Some(ToolInfo {
                    server: ALIAS_SERVER.to_owned(),
                    name: name.clone(),
                    description: Some(format!(
                        "Alias of {}/{}. {}",
                        alias.server,
                        alias.tool,
                        target.description.as_deref().unwrap_or("")
                    )),
                    input_schema: target.input_schema.clone(),
                    output_schema: target.output_schema.clone(),
                })
            })
            .collect()
    }

    /// Per-server counters, in name order.
    pub fn stats(&self) -> Vec<ServerStats> {
        self.servers
            .iter()
            .map(|(name, u)| ServerStats {
                name: name.clone(),
                sessions_opened: u.shared().opened.get(),
                restarts: u.shared().restarts.get(),
                session_ages: u.session_ages(),
                circuit_open: u.circuit_open(),
                pids: u.pids(),
                protocol: u.protocol(),
            })
            .collect()
    }

    /// Closes every session and ends every server process, all servers at
    /// once; returns when all are gone. Calls made after this fail with
    /// `unavailable`.
    pub async fn shutdown(&self) {
        self.closing.cancel();
        join_all(self.servers.values().map(Upstream::shutdown)).await;
        self.reaper.close();
        self.reaper.wait().await;
    }
}

/// The OAuth client of a remote server, unless its config sends an
/// `Authorization` header of its own (a static token wins) or there is
/// nowhere to keep tokens (no home directory).
fn oauth_for(name: &str, server: &HttpServer, metrics: &Metrics) -> Option<Arc<oauth::Authorizer>> {
    if server.headers.contains_key(http::header::AUTHORIZATION) {
        return None;
    }
    let Some(state_dir) = oauth::default_state_dir() else {
        tracing::warn!(server = %name, "no state directory (set WEIR_STATE_DIR or HOME): weir cannot keep OAuth tokens for this server");
        return None;
    };
    Some(Arc::new(oauth::Authorizer::new(
        name,
        &server.url,
        (*server.oauth).clone(),
        &state_dir,
        oauth::Person::detect(),
        {
            let (refreshes, failures) = metrics.oauth_counters(name);
            oauth::OAuthTallies {
                refreshes,
                failures,
            }
        },
    )))
}

/// The rmcp client settings for a remote server (its headers were parsed
/// and checked when the config was read).
fn http_config(server: &HttpServer) -> StreamableHttpClientTransportConfig {
    let headers = server
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    StreamableHttpClientTransportConfig::with_uri(server.url.as_str())
        .custom_headers(headers)
        .reinit_on_expired_session(true)
}

impl ToolGateway for Sessions {
    fn alias(&self, name: &str) -> Option<Alias> {
        self.aliases.get(name).cloned()
    }

    fn call_tool<'a>(
        &'a self,
        caller: &'a Caller,
        server: &'a str,
        tool: &'a str,
        arguments: Option<Arguments>,
    ) -> BoxFuture<'a, Result<String, CallError>> {
        async move {
            let upstream = self.upstream(server)?;
            let started = Instant::now();
            let result = match upstream.pool_for(&caller.plugin) {
                Ok(pool) => {
                    pool.pick()
                        .call_tool(tool, arguments, caller.call_timeout)
                        .await
                }
                Err(e) => Err(e),
            };
            self.metrics
                .record_call(server, tool, started.elapsed(), result.as_ref().map(|_| ()));
            result
        }
        .boxed()
    }

    /// Starts any session not yet open (one per server, never more) and
    /// lists what they offer. A server that cannot start is left out, with
    /// a warning in the log; a call to it reports why.
    fn list_tools<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, Vec<ToolInfo>> {
        async move {
            let lists = join_all(self.server_names().map(|name| async move {
                self.server_tools(caller, name).await.map_err(|e| (name, e))
            }))
            .await;
            let mut all = Vec::new();
            for list in lists {
                match list {
                    Ok(tools) => all.extend(tools),
                    Err((server, error)) => {
                        tracing::warn!(server, %error, "left out of list-tools")
                    }
                }
            }
            let aliases = self.alias_tools(&all);
            all.extend(aliases);
            all
        }
        .boxed()
    }
}
