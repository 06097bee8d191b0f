//! One MCP server and its one session: started on first use, initialized
//! once, shared by every call, restarted (once, by one task) after it dies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ErrorCode, Tool};
use rmcp::service::{Peer, RoleClient, RunningService, ServiceError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::client::SessionClient;
use super::process::{Launch, ServerProcess, StderrTail};
use crate::config::SessionSettings;
use crate::gateway::{Arguments, CallError, ToolInfo};

/// One configured server. All state behind `&self`: shared by every run.
pub(crate) struct Upstream {
    name: Arc<str>,
    launch: Launch,
    settings: SessionSettings,
    /// The open session, if any. A std lock: held only to clone an `Arc`,
    /// never across an await, so the hot path never waits on a start.
    live: RwLock<Option<Arc<Live>>>,
    /// Single flight: whoever holds this starts the session; everyone else
    /// arriving meanwhile waits here and then uses the result. Remembers
    /// the last failed start so calls fail fast during the cool-down.
    gate: tokio::sync::Mutex<Option<(Instant, String)>>,
    /// Sessions (processes) ever opened; the number weir exists to keep small.
    opened: AtomicU64,
    closing: CancellationToken,
    /// Tasks closing dead sessions; shutdown waits for them.
    reaper: TaskTracker,
}

/// An initialized session and the process behind it.
pub(crate) struct Live {
    peer: Peer<RoleClient>,
    service: tokio::sync::Mutex<Option<RunningService<RoleClient, SessionClient>>>,
    process: tokio::sync::Mutex<Option<ServerProcess>>,
    pid: Option<u32>,
    stderr: StderrTail,
    tools: RwLock<Arc<BTreeMap<String, ToolInfo>>>,
    tools_stale: Arc<AtomicBool>,
}

/// A snapshot for `weir list` and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStats {
    pub name: String,
    /// Sessions opened since the host started (first start + restarts).
    pub sessions_opened: u64,
    /// Whether a session is open now.
    pub live: bool,
    /// The server process, while one runs.
    pub pid: Option<u32>,
}

impl Upstream {
    pub fn new(
        name: Arc<str>,
        launch: Launch,
        settings: SessionSettings,
        closing: CancellationToken,
        reaper: TaskTracker,
    ) -> Self {
        Self {
            name,
            launch,
            settings,
            live: RwLock::new(None),
            gate: tokio::sync::Mutex::new(None),
            opened: AtomicU64::new(0),
            closing,
            reaper,
        }
    }

    pub fn stats(&self) -> ServerStats {
        let live = self.current();
        ServerStats {
            name: self.name.to_string(),
            sessions_opened: self.opened.load(Ordering::Relaxed),
            live: live.as_ref().is_some_and(|l| l.alive()),
            pid: live.and_then(|l| l.pid),
        }
    }

    fn current(&self) -> Option<Arc<Live>> {
        self.live.read().ok().and_then(|l| l.clone())
    }

    /// The open session, starting it if there is none or it died.
    async fn session(&self) -> Result<Arc<Live>, CallError> {
        if let Some(live) = self.current().filter(|l| l.alive()) {
            return Ok(live);
        }
        let mut last_failure = self.gate.lock().await;
        if self.closing.is_cancelled() {
            return Err(CallError::Unavailable("weir is shutting down".into()));
        }
        // Someone else may have started it while we waited at the gate.
        if let Some(live) = self.current().filter(|l| l.alive()) {
            return Ok(live);
        }
        if let Some(dead) = self.live.write().ok().and_then(|mut l| l.take()) {
            tracing::warn!(server = %self.name, "session was lost{}; restarting", dead.stderr.describe());
            self.retire(dead);
        }
        if let Some((at, error)) = last_failure.as_ref() {
            let cooldown = self.settings.restart_cooldown;
            if at.elapsed() < cooldown {
                return Err(CallError::Unavailable(format!(
                    "server `{}` failed to start {:.1} s ago ({error}); next attempt in {:.1} s",
                    self.name,
                    at.elapsed().as_secs_f64(),
                    (cooldown - at.elapsed()).as_secs_f64()
                )));
            }
        }
        match self.open().await {
            Ok(live) => {
                *last_failure = None;
                if let Ok(mut slot) = self.live.write() {
                    *slot = Some(live.clone());
                }
                Ok(live)
            }
            Err(error) => {
                tracing::warn!(server = %self.name, %error, "server failed to start");
                *last_failure = Some((Instant::now(), error.clone()));
                Err(CallError::Unavailable(format!(
                    "server `{}` failed to start: {error}",
                    self.name
                )))
            }
        }
    }

    /// Spawns the process, initializes the session and fetches the tools.
    async fn open(&self) -> Result<Arc<Live>, String> {
        let (process, stdout, stdin) = ServerProcess::spawn(&self.name, &self.launch)?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        let stderr = process.stderr.clone();
        let tools_stale = Arc::new(AtomicBool::new(false));
        let client = SessionClient::new(self.name.clone(), tools_stale.clone());
        let handshake = async {
            let service = client
                .serve((stdout, stdin))
                .await
                .map_err(|e| format!("initialize failed: {e}"))?;
            let tools = service
                .peer()
                .list_all_tools()
                .await
                .map_err(|e| format!("tools/list failed: {e}"))?;
            Ok::<_, String>((service, tools))
        };
        let outcome = tokio::select! {
            r = tokio::time::timeout(self.settings.startup_timeout, handshake) => r.unwrap_or_else(|_| Err(format!(
                "no answer to initialize within {:.1} s",
                self.settings.startup_timeout.as_secs_f64()
            ))),
            () = self.closing.cancelled() => Err("weir is shutting down".into()),
        };
        match outcome {
            Ok((service, tools)) => {
                let info = service.peer().peer_info();
                tracing::info!(
                    server = %self.name,
                    pid = process.pid(),
                    protocol = info.as_ref().map(|i| i.protocol_version.to_string()).unwrap_or_default(),
                    tools = tools.len(),
                    "session open"
                );
                Ok(Arc::new(Live {
                    peer: service.peer().clone(),
                    pid: process.pid(),
                    stderr,
                    tools: RwLock::new(Arc::new(index_tools(&self.name, tools))),
                    tools_stale,
                    service: tokio::sync::Mutex::new(Some(service)),
                    process: tokio::sync::Mutex::new(Some(process)),
                }))
            }
            Err(error) => {
                let error = format!("{error}{}", stderr.describe());
                process
                    .terminate(&self.name, self.settings.shutdown_grace)
                    .await;
                Err(error)
            }
        }
    }

    /// Closes a dead session in the background; shutdown waits for it.
    fn retire(&self, live: Arc<Live>) {
        let name = self.name.clone();
        let grace = self.settings.shutdown_grace;
        self.reaper
            .spawn(async move { live.close(&name, grace).await });
    }

    /// The server's tools, from the session's cache (refetched after a
    /// `list_changed`).
    pub async fn tools(&self) -> Result<Arc<BTreeMap<String, ToolInfo>>, CallError> {
        let live = self.session().await?;
        Ok(live.tools(&self.name).await)
    }

    /// Calls one tool on the shared session. Never re-sent: a call lost with
    /// a dying session fails `unavailable`, since tools have side effects.
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: Option<Arguments>,
    ) -> Result<String, CallError> {
        let live = self.session().await?;
        let tools = live.tools(&self.name).await;
        if !tools.contains_key(tool) {
            let known: Vec<&str> = tools.keys().map(String::as_str).collect();
            return Err(CallError::NotFound(format!(
                "server `{}` has no tool `{tool}` (it has: {})",
                self.name,
                known.join(", ")
            )));
        }
        let mut params = CallToolRequestParams::new(tool.to_owned());
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        // Dropping the request on timeout sends `notifications/cancelled`.
        match tokio::time::timeout(self.settings.call_timeout, live.peer.call_tool(params)).await {
            Err(_) => Err(CallError::Timeout),
            Ok(Ok(result)) => serde_json::to_string(&result)
                .map_err(|e| CallError::Protocol(format!("cannot encode the result: {e}"))),
            Ok(Err(error)) => Err(self.describe_failure(error, &live)),
        }
    }

    fn describe_failure(&self, error: ServiceError, live: &Live) -> CallError {
        let name = &self.name;
        match error {
            ServiceError::McpError(e) if e.code == ErrorCode::INVALID_PARAMS => {
                CallError::InvalidArguments(format!("server `{name}`: {}", e.message))
            }
            ServiceError::McpError(e) => CallError::Protocol(format!(
                "server `{name}` answered error {}: {}",
                e.code.0, e.message
            )),
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                CallError::Unavailable(format!(
                    "server `{name}` closed the session during the call (did it exit?){}",
                    live.stderr.describe()
                ))
            }
            ServiceError::Timeout { .. } => CallError::Timeout,
            other => CallError::Protocol(format!("server `{name}`: {other}")),
        }
    }

    /// Closes the session and ends the process; no new session starts after.
    pub async fn shutdown(&self) {
        self.closing.cancel();
        // Waits for a start in progress (which the token aborts) to finish.
        let _gate = self.gate.lock().await;
        let live = self.live.write().ok().and_then(|mut l| l.take());
        if let Some(live) = live {
            live.close(&self.name, self.settings.shutdown_grace).await;
        }
    }
}

impl Live {
    fn alive(&self) -> bool {
        !self.peer.is_transport_closed()
    }

    async fn tools(&self, server: &str) -> Arc<BTreeMap<String, ToolInfo>> {
        if self.tools_stale.swap(false, Ordering::AcqRel) {
            match self.peer.list_all_tools().await {
                Ok(tools) => {
                    let fresh = Arc::new(index_tools(server, tools));
                    if let Ok(mut slot) = self.tools.write() {
                        *slot = fresh.clone();
                    }
                    return fresh;
                }
                Err(error) => {
                    tracing::warn!(server, %error, "cannot refresh the tool list; keeping the old one");
                }
            }
        }
        self.tools.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Closes the session (which closes the server's stdin), then ends the
    /// process: see [`ServerProcess::terminate`].
    async fn close(&self, server: &str, grace: std::time::Duration) {
        if let Some(mut service) = self.service.lock().await.take() {
            if let Err(error) = service.close_with_timeout(grace).await {
                tracing::debug!(server, %error, "session did not close cleanly");
            }
            drop(service);
        }
        if let Some(process) = self.process.lock().await.take() {
            process.terminate(server, grace).await;
        }
    }
}

fn index_tools(server: &str, tools: Vec<Tool>) -> BTreeMap<String, ToolInfo> {
    tools
        .into_iter()
        .map(|t| {
            let info = ToolInfo {
                server: server.to_owned(),
                name: t.name.to_string(),
                description: t.description.as_ref().map(|d| d.to_string()),
                input_schema: serde_json::to_string(&*t.input_schema)
                    .unwrap_or_else(|_| "{}".to_owned()),
            };
            (info.name.clone(), info)
        })
        .collect()
}
