//! An MCP server for weir's tests, built on rmcp: it records every session
//! it serves and misbehaves on demand.
//!
//! Environment:
//! - `WEIR_TEST_SESSION_LOG=FILE`: one line `<pid>` per session — per
//!   `initialize`d one, or on 2026-07-28 (no `initialize`) per process that
//!   answered `server/discover` (stdio) or per `server/discover` (HTTP) —
//!   so a test counts the sessions weir opened and checks their processes.
//! - `WEIR_TEST_EVENTS=FILE`: one line per event the test wants to see from
//!   the server's side: `start-failed <pid>`, `cancelled <pid>` (a call),
//!   `unlisten <pid>` (a `subscriptions/listen` stream), `call <tool>`,
//!   `listen`, `list-tools`, `hang-abandoned` (a `hang` call's request was
//!   cancelled: a notification, or on 2026-07-28 HTTP its stream closed).
//! - `WEIR_TEST_FAIL_START=FILE`: while FILE exists, the process exits with
//!   status 1 at once (a server that cannot start).
//! - `WEIR_TEST_HANG_START=1`: never answers `initialize`.
//! - `WEIR_TEST_PROTOCOL=V`: speaks revisions up to V only, like a server
//!   built before the next one: answers `initialize` with V, and
//!   `server/discover` (2026-07-28) not at all when V predates it.
//! - `WEIR_TEST_SYNTHETIC_TOOLS=N`: lists N more tools shaped like a SaaS
//!   API's (`contacts_search`, `invoices_update`, …, with descriptions and
//!   schemas of a real server's size); each answers with its arguments.
//!   For benchmarks of what a big server costs a model to read.
//! - `WEIR_TEST_TOOLS_TTL_MS=N`: `tools/list` results say `ttlMs: N` (by
//!   default rmcp's 0); each `tools/list` is a `list-tools` event.
//!
//! Tool-list changes go, as each revision has it, on the session (legacy
//! clients) and on `subscriptions/listen` streams (2026-07-28: only there).
//!
//! With `--http ADDR` it serves streamable HTTP on ADDR (loopback only)
//! instead of stdio, printing `listening http://HOST:PORT/mcp` first; the
//! tool `expire_sessions` then drops every session, as a server restart
//! would, so clients see HTTP 404 and must re-initialize.
//!
//! Tools: `ask` (2026-07-28's input_required, then the answer),
//! `ask_legacy` (`elicitation/create` on the session, then the answer), `echo`, `sleep` (ms), `hang` (never answers), `fail` (an `isError`
//! result), `crash` (exits mid-call), `pid`, `kv_set`/`kv_get` (state of
//! this process), `garbage` (writes a non-JSON
//! line to stdout), `bad_shape` (writes JSON that is not JSON-RPC),
//! `bad_answer` (answers its own call with a result that is not a tool
//! result, before rmcp sends the real one), `enable_late` (adds the tool `late` and announces it with
//! `notifications/tools/list_changed`), `enable_late_quietly` (adds it and
//! says nothing); and the diagnostic tools of the
//! conformance suite's server scenarios: `test_missing_capability` (-32021
//! without sampling), `test_streaming_elicitation` (input_required, like
//! `ask`), `test_logging_tool` (logs only when `_meta` asks),
//! `test_trigger_tool_change` (toggles `late`, announcing it).

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelledNotificationParam,
    ContentBlock, ErrorData, ListToolsResult, PaginatedRequestParams, SubscriptionFilter,
};
use rmcp::service::{
    NotificationContext, RequestContext, RoleServer, SubscriptionContext, SubscriptionSink,
};
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, ServiceExt, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

/// What the tool list is and who hears of its changes: one per process,
/// shared by the per-session (HTTP: per-request) handlers, as a real
/// server's would be.
struct ToolListState {
    late: Arc<AtomicBool>,
    listeners: Arc<Mutex<Vec<SubscriptionSink>>>,
    /// Every `subscriptions/listen` request id seen: a cancelled one is
    /// a stream ending (`unlisten`), not a call cancelled.
    listen_ids: Mutex<Vec<rmcp::model::RequestId>>,
}

static TOOL_LIST: std::sync::LazyLock<ToolListState> = std::sync::LazyLock::new(|| ToolListState {
    late: Arc::default(),
    listeners: Arc::default(),
    listen_ids: Mutex::default(),
});

#[derive(Clone)]
struct TestServer {
    tool_router: ToolRouter<Self>,
    /// Whether `late` has been announced.
    late: Arc<AtomicBool>,
    /// Per-process state, to tell sessions apart.
    kv: Arc<Mutex<HashMap<String, String>>>,
    /// In HTTP mode, the sessions `expire_sessions` drops.
    http_sessions: Option<Arc<LocalSessionManager>>,
    /// `nap` calls in flight now.
    napping: Arc<std::sync::atomic::AtomicUsize>,
    /// Open `subscriptions/listen` streams, told of tool-list changes.
    listeners: Arc<Mutex<Vec<SubscriptionSink>>>,
}

#[derive(Deserialize, JsonSchema)]
struct KeyArgs {
    key: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct EchoArgs {
    message: String,
}

#[derive(Deserialize, JsonSchema)]
struct SleepArgs {
    ms: u64,
}

#[derive(Deserialize, JsonSchema)]
struct FailArgs {
    #[serde(default)]
    message: String,
}

fn text(t: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(t)])
}

fn append(var: &str, line: &str) {
    if let Ok(path) = std::env::var(var) {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!("weir-test-server: cannot append to {path}: {e}");
        }
    }
}

/// Writes a raw line to stdout, past rmcp's framing.
fn raw_stdout(line: &str) -> CallToolResult {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
    text("written")
}

#[tool_router]
impl TestServer {
    fn new(http_sessions: Option<Arc<LocalSessionManager>>) -> Self {
        Self {
            tool_router: Self::tool_router(),
            late: TOOL_LIST.late.clone(),
            kv: Arc::default(),
            http_sessions,
            napping: Arc::default(),
            listeners: TOOL_LIST.listeners.clone(),
        }
    }

    /// Tells the client the tool list changed: on the session where it has
    /// one (a legacy revision), and on every listening stream.
    async fn announce_tool_change(&self, context: &RequestContext<RoleServer>) {
        let modern = context
            .protocol_version()
            .is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28);
        if !modern && let Err(e) = context.peer.notify_tool_list_changed().await {
            eprintln!("weir-test-server: cannot notify: {e}");
        }
        let listeners: Vec<_> = self.listeners.lock().map(|l| l.clone()).unwrap_or_default();
        for sink in listeners {
            if let Err(e) = sink.notify_tool_list_changed().await {
                eprintln!("weir-test-server: cannot notify a listener: {e}");
            }
        }
    }

    #[tool(description = "HTTP mode: drops every session shortly after answering.")]
    async fn expire_sessions(&self) -> CallToolResult {
        let Some(manager) = self.http_sessions.clone() else {
            return CallToolResult::error(vec![ContentBlock::text("not in HTTP mode")]);
        };
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let ids: Vec<_> = manager.sessions.read().await.keys().cloned().collect();
            for id in &ids {
                let _ = manager.close_session(id).await;
            }
            append(
                "WEIR_TEST_EVENTS",
                &format!("sessions-expired {}", ids.len()),
            );
        });
        text("expiring")
    }

    #[tool(description = "Returns the message.")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> CallToolResult {
        text(args.message)
    }

    #[tool(description = "Sleeps `ms` milliseconds, then answers.")]
    async fn sleep(&self, Parameters(args): Parameters<SleepArgs>) -> CallToolResult {
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        text("slept")
    }

    #[tool(
        description = "Sleeps `ms` milliseconds, then answers `napped MS`; logs how many naps were in flight as it started (`nap-concurrency N`)."
    )]
    async fn nap(&self, Parameters(args): Parameters<SleepArgs>) -> CallToolResult {
        let now = self.napping.fetch_add(1, Ordering::SeqCst) + 1;
        append("WEIR_TEST_EVENTS", &format!("nap-concurrency {now}"));
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        self.napping.fetch_sub(1, Ordering::SeqCst);
        text(format!("napped {}", args.ms))
    }

    #[tool(description = "Never answers; `hang-abandoned` once its request is cancelled.")]
    async fn hang(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        context.ct.cancelled().await;
        append("WEIR_TEST_EVENTS", "hang-abandoned");
        std::future::pending().await
    }

    #[tool(description = "Answers with an isError result.")]
    async fn fail(&self, Parameters(args): Parameters<FailArgs>) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(format!(
            "failed: {}",
            args.message
        ))])
    }

    #[tool(description = "Exits the server process in the middle of the call.")]
    async fn crash(&self) -> CallToolResult {
        eprintln!("weir-test-server: crashing on request");
        std::process::exit(3)
    }

    #[tool(description = "The server's process id.")]
    async fn pid(&self) -> CallToolResult {
        text(std::process::id().to_string())
    }

    #[tool(description = "Writes a line that is not JSON to stdout.")]
    async fn garbage(&self) -> CallToolResult {
        raw_stdout("this is not json\n")
    }

    #[tool(description = "Writes JSON that is not a JSON-RPC message to stdout.")]
    async fn bad_shape(&self) -> CallToolResult {
        raw_stdout("{\"hello\": \"world\"}\n")
    }

    #[tool(
        description = "Answers its own call with a result that is not a tool result (rmcp's real answer follows, too late)."
    )]
    async fn bad_answer(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        let id = serde_json::to_string(&context.id).unwrap_or_else(|_| "null".into());
        raw_stdout(&format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"content\":\"not a list\"}}}}\n"
        ))
    }

    #[tool(description = "Adds the tool `late` and sends tools/list_changed.")]
    async fn enable_late(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        self.late.store(true, Ordering::Release);
        self.announce_tool_change(&context).await;
        text("enabled")
    }

    #[tool(description = "Adds the tool `late` without saying so.")]
    async fn enable_late_quietly(&self) -> CallToolResult {
        self.late.store(true, Ordering::Release);
        text("enabled")
    }

    #[tool(description = "Stores `value` under `key` in this process.")]
    async fn kv_set(&self, Parameters(args): Parameters<KeyArgs>) -> CallToolResult {
        if let Ok(mut kv) = self.kv.lock() {
            kv.insert(args.key, args.value.unwrap_or_default());
        }
        text("ok")
    }

    #[tool(description = "Reads `key` from this process.")]
    async fn kv_get(&self, Parameters(args): Parameters<KeyArgs>) -> CallToolResult {
        match self
            .kv
            .lock()
            .ok()
            .and_then(|kv| kv.get(&args.key).cloned())
        {
            Some(v) => text(v),
            None => CallToolResult::error(vec![ContentBlock::text(format!("no `{}`", args.key))]),
        }
    }

    #[tool(
        description = "Asks the client who it is first (2026-07-28's input_required, with a default), then answers with what the client said."
    )]
    async fn ask(&self) -> CallToolResult {
        // Answered in `call_tool`; listed here.
        text("ask")
    }

    #[tool(
        description = "Asks the client who it is with elicitation/create on the session (legacy revisions), then answers with what it said."
    )]
    async fn ask_legacy(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        let question = serde_json::json!({
            "message": "Who is calling?",
            "requestedSchema": {"type": "object", "properties": {
                "name": {"type": "string", "default": "weir-default"}}}});
        let params: rmcp::model::ElicitRequestParams = match serde_json::from_value(question) {
            Ok(params) => params,
            Err(e) => return text(format!("cannot build the question: {e}")),
        };
        let asked =
            rmcp::model::ServerRequest::ElicitRequest(rmcp::model::ElicitRequest::new(params));
        match context.peer.send_request(asked).await {
            Ok(rmcp::model::ClientResult::ElicitResult(answer)) => text(format!(
                "answered: {}",
                serde_json::to_string(&answer).unwrap_or_default()
            )),
            Ok(_) => text("answered with something else"),
            Err(e) => text(format!("no answer: {e}")),
        }
    }

    // The diagnostic tools the conformance suite's server scenarios call
    // (scripts/conformance serves them through weir serve).

    #[tool(
        description = "Needs its client to offer sampling: without it, MCP's -32021 naming sampling."
    )]
    async fn test_missing_capability(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let has_sampling = context
            .client_capabilities()
            .is_some_and(|c| c.sampling.is_some());
        if !has_sampling {
            let required: rmcp::model::ClientCapabilities =
                serde_json::from_value(serde_json::json!({"sampling": {}}))
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
            return Err(ErrorData::missing_required_client_capability(required));
        }
        Ok(text("the client offers sampling"))
    }

    #[tool(description = "Asks for input (input_required) like ask, then answers.")]
    async fn test_streaming_elicitation(&self) -> CallToolResult {
        // Answered in `call_tool`; listed here.
        text("test_streaming_elicitation")
    }

    #[tool(
        description = "Logs (notifications/message) only when the request's _meta names a log level; answers either way."
    )]
    #[allow(deprecated)] // logging: 2025-11-25 clients still have it
    async fn test_logging_tool(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        let level = context
            .meta
            .get("io.modelcontextprotocol/logLevel")
            .cloned();
        if level.is_some() {
            let _ = context
                .peer
                .notify_logging_message(rmcp::model::LoggingMessageNotificationParam::new(
                    rmcp::model::LoggingLevel::Info,
                    serde_json::json!("test_logging_tool ran"),
                ))
                .await;
        }
        text(format!("logged: {}", level.is_some()))
    }

    #[tool(
        description = "Adds the tool `late`, or takes it away again, and sends tools/list_changed."
    )]
    async fn test_trigger_tool_change(
        &self,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let was = self.late.fetch_xor(true, Ordering::AcqRel);
        self.announce_tool_change(&context).await;
        text(if was { "late removed" } else { "late added" })
    }

    #[tool(description = "Exists only after enable_late.")]
    async fn late(&self) -> CallToolResult {
        text("late")
    }
}

impl ServerHandler for TestServer {
    fn supported_protocol_versions(
        &self,
    ) -> std::borrow::Cow<'static, [rmcp::model::ProtocolVersion]> {
        use rmcp::model::ProtocolVersion;
        let known = ProtocolVersion::KNOWN_VERSIONS;
        match std::env::var("WEIR_TEST_PROTOCOL") {
            Ok(v) => match known.iter().find(|k| k.as_str() == v) {
                Some(max) => std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(max)),
                None => std::borrow::Cow::Borrowed(known),
            },
            Err(_) => std::borrow::Cow::Borrowed(known),
        }
    }

    fn get_info(&self) -> rmcp::model::ServerConfig {
        let config = rmcp::model::ServerConfig::new(
            rmcp::model::ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        );
        match std::env::var("WEIR_TEST_PROTOCOL").as_deref() {
            Ok("2025-06-18") => {
                config.with_protocol_version(rmcp::model::ProtocolVersion::V_2025_06_18)
            }
            Ok("2025-03-26") => {
                config.with_protocol_version(rmcp::model::ProtocolVersion::V_2025_03_26)
            }
            _ => config,
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let late = self.late.load(Ordering::Acquire);
        let mut tools: Vec<_> = self
            .tool_router
            .list_all()
            .into_iter()
            .filter(|t| late || t.name != "late")
            .collect();
        tools.extend(synthetic_tools().iter().cloned());
        append("WEIR_TEST_EVENTS", "list-tools");
        let result = ListToolsResult::with_all_items(tools);
        Ok(
            match std::env::var("WEIR_TEST_TOOLS_TTL_MS")
                .ok()
                .and_then(|ms| ms.parse().ok())
            {
                Some(ms) => result.with_ttl_ms(ms),
                None => result,
            },
        )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        append("WEIR_TEST_EVENTS", &format!("call {}", request.name));
        if request.name == "late" && !self.late.load(Ordering::Acquire) {
            return Err(ErrorData::invalid_params("tool `late` not found", None));
        }
        if request.name == "ask" || request.name == "test_streaming_elicitation" {
            return Ok(ask(&request));
        }
        if synthetic_tools().iter().any(|t| t.name == request.name) {
            let args = serde_json::Value::Object(request.arguments.unwrap_or_default());
            return Ok(text(format!("{} ok: {args}", request.name)).into());
        }
        self.tool_router
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    async fn discover(
        &self,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::DiscoverResult, rmcp::ErrorData> {
        // Over stdio a process is a session: later discovers are weir's
        // health checks on it.
        static LOGGED: AtomicBool = AtomicBool::new(false);
        if self.http_sessions.is_some() || !LOGGED.swap(true, Ordering::Relaxed) {
            append("WEIR_TEST_SESSION_LOG", &std::process::id().to_string());
        }
        Ok(rmcp::model::DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            self.get_info(),
        ))
    }

    fn accepted_subscription_filter(
        &self,
        _requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(SubscriptionFilter::builder().tools_list_changed().build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let sink = context.sink().clone();
        if let Ok(mut ids) = TOOL_LIST.listen_ids.lock() {
            ids.push(sink.id().clone());
        }
        if let Ok(mut listeners) = self.listeners.lock() {
            listeners.push(sink.clone());
        }
        append("WEIR_TEST_EVENTS", "listen");
        context.cancelled().await;
        if let Ok(mut listeners) = self.listeners.lock() {
            listeners.retain(|l| l.id() != sink.id());
        }
        Ok(())
    }

    async fn on_initialized(&self, _context: NotificationContext<RoleServer>) {
        append("WEIR_TEST_SESSION_LOG", &std::process::id().to_string());
    }

    async fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        _context: NotificationContext<RoleServer>,
    ) {
        let listen = TOOL_LIST.listen_ids.lock().is_ok_and(|ids| {
            notification
                .request_id
                .as_ref()
                .is_some_and(|id| ids.contains(id))
        });
        let event = if listen { "unlisten" } else { "cancelled" };
        append(
            "WEIR_TEST_EVENTS",
            &format!("{event} {}", std::process::id()),
        );
    }
}

/// `ask`: the first round asks for a name (default `weir-default`) with
/// a request state; the retry must echo the state and answer the question.
fn ask(request: &CallToolRequestParams) -> CallToolResponse {
    match (&request.input_responses, request.request_state.as_deref()) {
        (Some(responses), Some("state-1")) => {
            let said = serde_json::to_string(&responses["who"]).unwrap_or_default();
            text(format!("answered: {said}")).into()
        }
        (Some(_), state) => text(format!("bad retry: state {state:?}")).into(),
        (None, _) => {
            let asked = serde_json::json!({
                "resultType": "input_required",
                "inputRequests": {"who": {"method": "elicitation/create", "params": {
                    "message": "Who is calling?",
                    "requestedSchema": {"type": "object", "properties": {
                        "name": {"type": "string", "default": "weir-default"}}}}}},
                "requestState": "state-1",
            });
            match serde_json::from_value(asked) {
                Ok(asked) => CallToolResponse::InputRequired(asked),
                Err(e) => text(format!("cannot build the question: {e}")).into(),
            }
        }
    }
}

/// The `WEIR_TEST_SYNTHETIC_TOOLS` tools: resources × verbs, each with a
/// description and an input schema like a hosted API's MCP server has.
/// Made once per process.
fn synthetic_tools() -> &'static [rmcp::model::Tool] {
    static TOOLS: std::sync::OnceLock<Vec<rmcp::model::Tool>> = std::sync::OnceLock::new();
    TOOLS.get_or_init(make_synthetic_tools)
}

fn make_synthetic_tools() -> Vec<rmcp::model::Tool> {
    const RESOURCES: [&str; 25] = [
        "contacts",
        "companies",
        "deals",
        "invoices",
        "payments",
        "subscriptions",
        "tickets",
        "comments",
        "projects",
        "tasks",
        "milestones",
        "documents",
        "folders",
        "calendars",
        "events",
        "campaigns",
        "segments",
        "products",
        "orders",
        "shipments",
        "warehouses",
        "employees",
        "teams",
        "webhooks",
        "reports",
    ];
    const VERBS: [(&str, &str); 8] = [
        (
            "search",
            "Search {r} by free text and filters, newest first; returns a page of matches with their ids.",
        ),
        (
            "get",
            "Get one of the {r} by its id, with every field and the ids of related records.",
        ),
        (
            "create",
            "Create one of the {r} from the given fields; returns the new record with its id.",
        ),
        (
            "update",
            "Update fields of one of the {r}; fields left out keep their values.",
        ),
        (
            "delete",
            "Delete one of the {r} by id. This cannot be undone; related records keep a dangling reference.",
        ),
        (
            "list",
            "List {r} in pages of up to 100, optionally only those changed since a time.",
        ),
        (
            "export",
            "Export {r} matching a filter as CSV or JSON lines to a download link valid for an hour.",
        ),
        (
            "count",
            "Count {r} matching a filter, without fetching them.",
        ),
    ];
    let wanted: usize = std::env::var("WEIR_TEST_SYNTHETIC_TOOLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    VERBS
        .iter()
        .flat_map(|verb| RESOURCES.iter().map(move |r| (verb, *r)))
        .take(wanted)
        .map(|((verb, doc), resource)| {
            let schema = serde_json::json!({
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": format!("The id of one of the {resource} (from search or list).")},
                    "query": {"type": "string", "description": "Free text matched against names, emails and notes."},
                    "fields": {"type": "object", "additionalProperties": true, "description": "Field values by name, as the API reference lists them."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25, "description": "Most records to return."},
                    "cursor": {"type": "string", "description": "The `next_cursor` of the previous page, for the next one."},
                    "updated_since": {"type": "string", "format": "date-time", "description": "Only records changed after this time (RFC 3339)."}
                },
                "required": if *verb == "search" { vec!["query"] } else { vec![] },
            });
            let schema = match schema {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            };
            rmcp::model::Tool::new(
                format!("{resource}_{verb}"),
                doc.replace("{r}", resource),
                Arc::new(schema),
            )
        })
        .collect()
}

/// Serves streamable HTTP on `addr` until killed.
async fn serve_http(addr: &str) -> anyhow::Result<()> {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    anyhow::ensure!(
        local.ip().is_loopback(),
        "the test server binds loopback only, not {local}"
    );
    let manager = Arc::new(LocalSessionManager::default());
    let factory_manager = manager.clone();
    let service = StreamableHttpService::new(
        move || Ok(TestServer::new(Some(factory_manager.clone()))),
        manager,
        StreamableHttpServerConfig::default(),
    );
    println!("listening http://{local}/mcp");
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, addr] = args.as_slice()
        && flag == "--http"
    {
        return serve_http(addr).await;
    }
    let pid = std::process::id();
    if let Ok(flag) = std::env::var("WEIR_TEST_FAIL_START")
        && std::path::Path::new(&flag).exists()
    {
        append("WEIR_TEST_EVENTS", &format!("start-failed {pid}"));
        eprintln!("weir-test-server: failing to start on request");
        std::process::exit(1);
    }
    if std::env::var_os("WEIR_TEST_HANG_START").is_some() {
        eprintln!("weir-test-server: hanging before initialize on request");
        std::future::pending::<()>().await;
    }
    eprintln!("weir-test-server: starting (pid {pid})");
    let service = TestServer::new(None)
        .serve(rmcp::transport::stdio())
        .await?;
    service.waiting().await?;
    Ok(())
}
