//! One session slot: at most one open session to a server at a time,
//! started on first use, initialized once, shared by every call routed to
//! it, and restarted — once, by one task, on the backoff schedule — after it
//! dies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, ErrorCode, ProtocolVersion, Tool};
use rmcp::service::{ClientInitializeError, MergedList, RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::backoff::{Backoff, Verdict};
use super::client::SessionClient;
use super::lane::Answer;
use super::live::{Abandon, InFlight, Live};
use super::pinger::ping_while_idle;
use super::process::{Launch, ServerProcess, StderrTail};
use super::tool_list::{Need, ToolList};
use super::wire::{ProtocolFault, StdioWire, UNREADABLE};
use crate::config::SessionSettings;
use crate::gateway::{Arguments, CallError, ToolInfo};

/// How a slot reaches its server.
pub(crate) enum Connect {
    /// Spawn a process and speak over its stdio.
    Stdio(Launch),
    /// Open a streamable HTTP session (rmcp re-initializes it, once per
    /// request, if the server expires it).
    /// A remote server: where and how, and the pooled client every
    /// session to it shares (`None`: it could not be built).
    Http {
        config: StreamableHttpClientTransportConfig,
        client: Option<reqwest::Client>,
        /// Tokens for a server behind OAuth (`None`: no OAuth, e.g. a
        /// static `Authorization` header).
        oauth: Option<Arc<super::oauth::Authorizer>>,
    },
}

/// What every slot of one server shares: how to start it, its settings and
/// its counters.
pub(crate) struct ServerShared {
    pub name: Arc<str>,
    pub connect: Connect,
    /// `host:port` of an HTTP server, named by a failure to connect.
    pub target: Option<String>,
    pub settings: SessionSettings,
    pub call_timeout: Duration,
    pub startup_timeout: Duration,
    pub ping_interval: Option<Duration>,
    /// Which revision to speak, and what the server settled on.
    pub negotiation: super::lifecycle::Negotiation,
    /// What to answer the server's requests for input.
    pub elicitation: crate::config::Elicitation,
    /// Sessions opened (processes spawned) since the host started; the
    /// same counter the metrics export.
    pub opened: crate::metrics::Tally,
    /// Sessions opened to replace one that was lost.
    pub restarts: crate::metrics::Tally,
    pub reaper: TaskTracker,
    /// Bumped when this server says its tools changed (see
    /// [`super::Sessions::tool_changes`]).
    pub tool_changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// Where an open circuit is shared with the other replicas.
    pub fleet: crate::fleet::Fleet,
}

/// Why a session did not open.
enum Failed {
    /// The server answered the handshake, but not as its lifecycle expects.
    Refused(String),
    /// Anything else: it could not be started or reached, it said nothing
    /// in time, weir is shutting down.
    Other(String),
}

impl Failed {
    fn message(&self) -> &str {
        match self {
            Self::Refused(m) | Self::Other(m) => m,
        }
    }
}

/// One slot. All state behind `&self`: shared by every caller.
pub(crate) struct Slot {
    server: Arc<ServerShared>,
    /// The open session, if any. A std lock: held only to clone an `Arc`,
    /// never across an await, so the hot path never waits on a start.
    live: RwLock<Option<Arc<Live>>>,
    /// Single flight: whoever holds this starts the session; callers
    /// arriving meanwhile wait here and then use the result.
    gate: tokio::sync::Mutex<Backoff>,
    /// A session of this slot was lost and not yet replaced: the next one
    /// opened is a restart.
    lost: AtomicBool,
    closing: CancellationToken,
}

impl Slot {
    pub fn new(server: Arc<ServerShared>, closing: CancellationToken) -> Self {
        Self {
            server,
            live: RwLock::new(None),
            gate: tokio::sync::Mutex::new(Backoff::default()),
            lost: AtomicBool::new(false),
            closing,
        }
    }

    fn current(&self) -> Option<Arc<Live>> {
        self.live.read().ok().and_then(|l| l.clone())
    }

    fn current_alive(&self) -> Option<Arc<Live>> {
        self.current().filter(|l| l.alive())
    }

    /// Calls in flight on the open session (0 if none).
    pub fn load(&self) -> usize {
        self.current()
            .map_or(0, |l| l.in_flight.load(Ordering::Relaxed))
    }

    /// The protocol revision of the open session.
    pub fn protocol(&self) -> Option<String> {
        self.current_alive().map(|l| l.protocol.clone())
    }

    /// Whether the circuit is open: starts failed `circuit_threshold` times
    /// in a row and calls fail fast until the cool-down ends. (A start in
    /// progress holds the gate: that is not an open circuit.)
    pub fn circuit_open(&self) -> bool {
        self.gate.try_lock().is_ok_and(|backoff| {
            matches!(
                backoff.verdict(Instant::now(), &self.server.settings),
                Verdict::Open(_)
            )
        })
    }

    /// How long the open session has been open.
    pub fn session_age(&self) -> Option<Duration> {
        self.current_alive().map(|l| l.opened_at.elapsed())
    }

    /// The pid of the open session's process.
    pub fn pid(&self) -> Option<u32> {
        self.current_alive().and_then(|l| l.pid)
    }

    /// The open session, starting it if there is none or it died.
    async fn session(&self) -> Result<Arc<Live>, CallError> {
        if let Some(live) = self.current_alive() {
            return Ok(live);
        }
        let name = &self.server.name;
        let mut backoff = self.gate.lock().await;
        loop {
            if self.closing.is_cancelled() {
                return Err(CallError::Unavailable("weir is shutting down".into()));
            }
            // Someone else may have started it while we waited at the gate.
            if let Some(live) = self.current_alive() {
                return Ok(live);
            }
            if let Some(dead) = self.live.write().ok().and_then(|mut l| l.take()) {
                tracing::warn!(server = %name, pid = dead.pid, "session lost{}{}; starting a new one",
                    dead.fault_note(), dead.stderr.describe());
                self.lost.store(true, Ordering::Relaxed);
                self.server.negotiation.forget();
                self.retire(dead);
            }
            match backoff.verdict(Instant::now(), &self.server.settings) {
                Verdict::Attempt => break,
                Verdict::Open(why) => {
                    return Err(CallError::Unavailable(format!("server `{name}`: {why}")));
                }
                // Recovering: wait for the next attempt, if that is soon
                // enough; the lock keeps everyone else queued behind us.
                Verdict::WaitUntil(at) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    if wait > self.server.startup_timeout {
                        return Err(CallError::Unavailable(format!(
                            "server `{name}` failed to start ({}); next attempt in {:.1} s",
                            backoff.last_error().unwrap_or("unknown error"),
                            wait.as_secs_f64()
                        )));
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.closing.cancelled() => {}
                    }
                }
            }
        }
        // Another replica may have found the server dead: its circuit
        // holds here too, rather than every replica trying in turn.
        if let Some(open) = self.server.fleet.circuit(name).await {
            return Err(CallError::Unavailable(format!(
                "server `{name}`: circuit open on replica `{}` (its starts keep failing; last: {}); next attempt in {:.1} s",
                open.replica,
                open.error,
                open.remaining.as_secs_f64()
            )));
        }
        match self.open().await {
            Ok(live) => {
                if backoff.failing() {
                    self.server.fleet.close_circuit(name).await;
                }
                backoff.succeeded();
                if self.lost.swap(false, Ordering::Relaxed) {
                    self.server.restarts.inc();
                }
                if let Ok(mut slot) = self.live.write() {
                    *slot = Some(live.clone());
                }
                Ok(live)
            }
            Err(error) => {
                tracing::warn!(server = %name, %error, "server failed to start");
                let now = Instant::now();
                backoff.failed(now, error.clone(), &self.server.settings, fastrand::f64());
                if matches!(
                    backoff.verdict(now, &self.server.settings),
                    Verdict::Open(_)
                ) {
                    self.server
                        .fleet
                        .open_circuit(name, &error, self.server.settings.circuit_cooldown)
                        .await;
                }
                Err(CallError::Unavailable(format!(
                    "server `{name}` failed to start: {error}"
                )))
            }
        }
    }

    /// Connects (spawning the process for stdio), initializes the session
    /// and fetches the tools. Where the revision is left to weir and the
    /// server answered the `server/discover` probe with something that is
    /// neither a discovery nor an error (as servers of older revisions may:
    /// `{}` to any method they do not know), a second connection speaks
    /// `initialize` straight away.
    async fn open(&self) -> Result<Arc<Live>, String> {
        let mode = self.server.negotiation.mode();
        let probing = matches!(mode, ClientLifecycleMode::Auto { .. });
        match self.open_with(mode).await {
            Err(Failed::Refused(probe)) if probing && !self.closing.is_cancelled() => {
                tracing::info!(server = %self.server.name, error = %probe,
                    "the server/discover probe failed; trying initialize");
                self.open_with(ClientLifecycleMode::Initialize)
                    .await
                    .map_err(|e| {
                        format!(
                            "{} (and before that the server/discover probe failed: {probe})",
                            e.message()
                        )
                    })
            }
            other => other.map_err(|e| e.message().to_owned()),
        }
    }

    async fn open_with(&self, mode: ClientLifecycleMode) -> Result<Arc<Live>, Failed> {
        let server = &self.server;
        let fault = ProtocolFault::default();
        let tools_stale = Arc::new(AtomicBool::new(false));
        let askers = Arc::new(super::elicitation::InFlightAskers::default());
        let client = SessionClient::new(
            server.name.clone(),
            server.negotiation.initialize_version(),
            server.elicitation,
            tools_stale.clone(),
            server.tool_changes.clone(),
            askers.clone(),
        );
        let (process, lane, stderr, outcome) = match &server.connect {
            Connect::Stdio(launch) => {
                let (process, stdout, stdin) =
                    ServerProcess::spawn(&server.name, launch).map_err(Failed::Other)?;
                server.opened.inc();
                let wire =
                    StdioWire::new(stdout, Box::new(stdin), server.name.clone(), fault.clone());
                let lane = wire.lane();
                let outcome = self
                    .handshake(client.serve_with_lifecycle(wire, mode))
                    .await;
                let stderr = process.stderr.clone();
                (Some(process), Some(lane), stderr, outcome)
            }
            Connect::Http {
                config,
                client: pooled,
                oauth,
            } => {
                server.opened.inc();
                // No pooled client could be built (no TLS provider, say):
                // rmcp's own, which opens a connection per request.
                let http = pooled.clone().unwrap_or_default();
                let outcome = match oauth {
                    Some(oauth) => {
                        let http = super::oauth::Authorized::new(http, oauth.clone());
                        let transport =
                            StreamableHttpClientTransport::with_client(http, config.clone());
                        self.handshake(client.serve_with_lifecycle(transport, mode))
                            .await
                    }
                    None => {
                        let transport =
                            StreamableHttpClientTransport::with_client(http, config.clone());
                        self.handshake(client.serve_with_lifecycle(transport, mode))
                            .await
                    }
                };
                (None, None, StderrTail::default(), outcome)
            }
        };
        let (service, tools) = match outcome {
            Ok(ok) => ok,
            Err(failed) => {
                let refused = matches!(failed, Failed::Refused(_));
                let error = failed.message().to_owned();
                let fault = fault.lock().ok().and_then(|f| f.clone());
                let error = match fault {
                    Some(f) => format!("{error} (the server wrote {f})"),
                    None => error,
                };
                // Ended first, so that the stderr of a server that died at
                // once (the handshake failing on a broken pipe before its
                // last words were read) is all there to quote.
                if let Some(process) = process {
                    process
                        .terminate(&server.name, server.settings.shutdown_grace)
                        .await;
                }
                let error = crate::redact::scrub(&format!("{error}{}", stderr.describe()));
                return Err(if refused {
                    Failed::Refused(error)
                } else {
                    Failed::Other(error)
                });
            }
        };
        let pid = process.as_ref().and_then(ServerProcess::pid);
        let version = service
            .peer()
            .peer_info()
            .map(|i| i.protocol_version.clone())
            .unwrap_or(ProtocolVersion::LATEST_WITH_INITIALIZE);
        server.negotiation.settled(&version);
        if let Some(lane) = &lane {
            lane.stamp(super::lifecycle::request_meta(&version, server.elicitation));
        }
        let protocol = version.to_string();
        tracing::info!(
            server = %server.name,
            pid,
            protocol = %protocol,
            tools = tools.items.len(),
            "session open"
        );
        let tools = ToolList::new(
            &server.name,
            tools.items,
            tools.ttl_ms,
            &version,
            tools_stale.clone(),
            server.tool_changes.clone(),
        );
        let live = Arc::new(Live {
            peer: service.peer().clone(),
            lane,
            pid,
            opened_at: Instant::now(),
            protocol,
            version,
            stderr,
            fault,
            broken: AtomicBool::new(false),
            tools,
            in_flight: AtomicUsize::new(0),
            askers,
            abandoned: AtomicBool::new(false),
            stop: self.closing.child_token(),
            listener: std::sync::Mutex::new(None),
            service: tokio::sync::Mutex::new(Some(service)),
            process: tokio::sync::Mutex::new(process),
        });
        if streams_tool_changes(&live) {
            let listener = server.reaper.spawn(super::listen::tool_changes(
                server.name.clone(),
                live.peer.clone(),
                super::listen::Sinks {
                    stale: tools_stale,
                    changes: server.tool_changes.clone(),
                },
                live.stop.clone(),
            ));
            if let Ok(mut slot) = live.listener.lock() {
                *slot = Some(listener);
            }
        }
        if let Some(interval) = server.ping_interval {
            server.reaper.spawn(ping_while_idle(
                server.name.clone(),
                live.clone(),
                interval,
                server.call_timeout,
            ));
        }
        Ok(live)
    }

    /// Initializes the session on a transport and fetches its tools, within
    /// the startup timeout; shutdown aborts it.
    async fn handshake<F>(
        &self,
        serve: F,
    ) -> Result<(RunningService<RoleClient, SessionClient>, MergedList<Tool>), Failed>
    where
        F: Future<
            Output = Result<RunningService<RoleClient, SessionClient>, ClientInitializeError>,
        >,
    {
        let server = &self.server;
        let handshake = async {
            let service = serve.await.map_err(|e| {
                let message =
                    super::failure::initialize_failure(&server.name, &e, server.target.as_deref());
                // The server answered, but not as the lifecycle expects.
                match e {
                    ClientInitializeError::ExpectedInitResult(_)
                    | ClientInitializeError::ExpectedInitResponse(_)
                    | ClientInitializeError::NoCompatibleProtocolVersion { .. }
                    | ClientInitializeError::LegacyFallbackFailed { .. }
                    | ClientInitializeError::JsonRpcError(_) => Failed::Refused(message),
                    _ => Failed::Other(message),
                }
            })?;
            let tools = service
                .peer()
                .list_all_tools_with_cache_hint()
                .await
                .map_err(|e| {
                    Failed::Other(format!(
                        "tools/list failed: {}",
                        super::failure::without_type_names(&e.to_string())
                    ))
                })?;
            Ok::<_, Failed>((service, tools))
        };
        tokio::select! {
            r = tokio::time::timeout(server.startup_timeout, handshake) => r.unwrap_or_else(|_| Err(Failed::Other(format!(
                "no answer to initialize (or server/discover) within {:.1} s",
                server.startup_timeout.as_secs_f64()
            )))),
            () = self.closing.cancelled() => Err(Failed::Other("weir is shutting down".into())),
        }
    }

    /// Closes a dead session in the background; shutdown waits for it.
    fn retire(&self, live: Arc<Live>) {
        let name = self.server.name.clone();
        let grace = self.server.settings.shutdown_grace;
        self.server
            .reaper
            .spawn(async move { live.close(&name, grace).await });
    }

    /// The server's tools, for someone who reads them: from the session's
    /// cache while it is fresh (see [`super::tool_list`]).
    pub async fn tools(&self) -> Result<Arc<BTreeMap<String, ToolInfo>>, CallError> {
        let live = self.session().await?;
        Ok(live.tools(&self.server.name, Need::Listing).await)
    }

    /// One MCP `ping` round trip on the slot's session (starting it if
    /// needed): how `weir doctor` tells a live server from a stuck one.
    pub async fn ping(&self) -> Result<Duration, CallError> {
        let live = self.session().await?;
        let started = Instant::now();
        let ping = live
            .peer
            .send_request(super::lifecycle::liveness_request(&live.version));
        match tokio::time::timeout(self.server.call_timeout, ping).await {
            Ok(Ok(_)) => Ok(started.elapsed()),
            Ok(Err(error)) => Err(self.describe_failure(error, &live)),
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// Calls one tool on the slot's session. Never re-sent: a call lost
    /// with a dying session fails `unavailable`, since tools have side
    /// effects. `timeout` caps the server's own call timeout.
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: Option<Arguments>,
        timeout: Option<Duration>,
    ) -> Result<String, CallError> {
        let live = self.session().await?;
        let _in_flight = InFlight::enter(&live.in_flight);
        let asker = (self.server.elicitation == crate::config::Elicitation::Forward)
            .then(crate::ask::current)
            .flatten();
        let _asking = live.askers.enter(asker);
        let name = &self.server.name;
        let tools = live.tools(name, Need::Call(tool)).await;
        if !tools.contains_key(tool) {
            let known: Vec<&str> = tools.keys().map(String::as_str).collect();
            return Err(CallError::NotFound(format!(
                "server `{name}` has no tool `{tool}` (it has: {})",
                known.join(", ")
            )));
        }
        let timeout = timeout.map_or(self.server.call_timeout, |t| {
            t.min(self.server.call_timeout)
        });
        // Dropping the request (on timeout, or when the run ends) sends
        // `notifications/cancelled` to the server.
        let mut abandon = Abandon(Some(&live.abandoned));
        let answer = tokio::time::timeout(timeout, async {
            let first = match &live.lane {
                Some(lane) => match lane.call_tool(tool, arguments.as_ref()).await {
                    Answer::InputRequired(asked) => Some(asked),
                    answer => return self.lane_answer(answer, &live),
                },
                None => None,
            };
            self.call_in_rounds(tool, arguments.as_ref(), first, &live)
                .await
        })
        .await;
        if answer.is_ok() {
            abandon.0 = None;
        }
        drop(abandon);
        answer.unwrap_or(Err(CallError::Timeout))
    }

    /// A call through rmcp (the HTTP path, and the rounds after a lane
    /// call the server answered with `input_required`), answering what the
    /// server asks on the way (see [`super::rounds`]).
    async fn call_in_rounds(
        &self,
        tool: &str,
        arguments: Option<&Arguments>,
        first: Option<String>,
        live: &Live,
    ) -> Result<String, CallError> {
        let name = &self.server.name;
        let first = match first {
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                CallError::Protocol(format!(
                    "server `{name}` answered the call with an unreadable input_required result ({e})"
                ))
            })?),
            None => None,
        };
        // rmcp's client takes a map: parsed here, on this path only.
        let mut params = CallToolRequestParams::new(tool.to_owned());
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments.to_map());
        }
        match super::rounds::call(&live.peer, name, params, first, self.server.elicitation).await {
            Ok(result) => serde_json::to_string(&result)
                .map_err(|e| CallError::Protocol(format!("cannot encode the result: {e}"))),
            Err(super::rounds::RoundsError::Service(error)) => {
                Err(self.describe_failure(error, live))
            }
            Err(super::rounds::RoundsError::Protocol(what)) => {
                Err(CallError::Protocol(format!("server `{name}`: {what}")))
            }
        }
    }

    /// A call's answer on the session's own lane, as the caller gets it.
    fn lane_answer(&self, answer: Answer, live: &Live) -> Result<String, CallError> {
        let name = &self.server.name;
        match answer {
            Answer::Result(result) => Ok(result),
            Answer::Error(error) => Err(self.error_answer(error)),
            Answer::Malformed(what) => Err(CallError::Protocol(format!(
                "server `{name}` answered the call with {what}"
            ))),
            Answer::InputRequired(_) => Err(CallError::Protocol(format!(
                "server `{name}` asked for input where weir expected a result"
            ))),
            Answer::Closed => Err(self.closed_during_call(live)),
        }
    }

    /// An rmcp call's failure (the HTTP path), as the caller gets it.
    fn describe_failure(&self, error: ServiceError, live: &Live) -> CallError {
        match error {
            ServiceError::McpError(e) => self.error_answer(e),
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                self.closed_during_call(live)
            }
            ServiceError::Timeout { .. } => CallError::Timeout,
            other => CallError::Protocol(format!(
                "server `{}`: {}",
                self.server.name,
                super::failure::without_type_names(&other.to_string())
            )),
        }
    }

    /// A JSON-RPC error the server answered a call with.
    fn error_answer(&self, e: rmcp::model::ErrorData) -> CallError {
        let name = &self.server.name;
        if e.code == ErrorCode::INVALID_PARAMS {
            CallError::InvalidArguments(format!("server `{name}`: {}", e.message))
        } else if e.code == ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY {
            let required = e
                .data
                .as_ref()
                .and_then(|d| d.get("requiredCapabilities"))
                .cloned()
                .unwrap_or_else(|| serde_json::json!({}));
            let names: Vec<&str> = required
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            CallError::NeedsClientCapability {
                message: format!(
                    "server `{name}`: the tool needs its client to offer {}, which weir does not \
                     offer servers",
                    if names.is_empty() {
                        "a capability it did not name".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
                required: required.to_string(),
            }
        } else if e.data.as_ref().and_then(|d| d.as_str()) == Some(UNREADABLE) {
            CallError::Protocol(format!(
                "server `{name}` answered with something weir cannot read as MCP: {}",
                e.message
            ))
        } else {
            CallError::Protocol(format!(
                "server `{name}` answered error {}: {}",
                e.code.0, e.message
            ))
        }
    }

    /// The session ended while a call waited for its answer.
    fn closed_during_call(&self, live: &Live) -> CallError {
        let name = &self.server.name;
        match live.fault.lock().ok().and_then(|f| f.clone()) {
            Some(fault) => CallError::Protocol(format!(
                "server `{name}` wrote {fault}; its session was closed"
            )),
            None => CallError::Unavailable(format!(
                "server `{name}` closed the session during the call (did it exit?){}",
                live.stderr.describe()
            )),
        }
    }

    /// Closes the session and ends the process; no new session starts
    /// after (the caller has cancelled `closing`).
    pub async fn shutdown(&self) {
        // Waits for a start in progress (which `closing` aborts) to end.
        let _gate = self.gate.lock().await;
        let live = self.live.write().ok().and_then(|mut l| l.take());
        if let Some(live) = live {
            live.close(&self.server.name, self.server.settings.shutdown_grace)
                .await;
        }
    }
}

/// Whether to open a `subscriptions/listen` stream for the session's
/// tool-list changes: on 2026-07-28 (older revisions send them on the
/// session itself), to a server that says its list may change.
fn streams_tool_changes(live: &Live) -> bool {
    live.version >= ProtocolVersion::V_2026_07_28
        && live.peer.peer_info().is_some_and(|info| {
            info.capabilities
                .tools
                .as_ref()
                .and_then(|tools| tools.list_changed)
                == Some(true)
        })
}
