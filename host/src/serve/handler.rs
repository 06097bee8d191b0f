//! weir as an MCP server: each plugin is a tool, and a `tools/call` is one
//! run of it on the host's shared sessions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::ErrorData;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, CustomRequest,
    CustomResult, Implementation, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProgressToken, ServerCapabilities, ServerConfig, SubscriptionFilter,
    Tool,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, SubscriptionContext};

use super::catalog::{Catalog, input_for};
use super::clients::Clients;
use super::code_tools::CodeTools;
use crate::gate::Via;
use crate::gateway::CallError;
use crate::runtime::{Host, HostRunError};

/// How often a long run reports progress, to a client that asked for it.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The MCP server side of `weir serve`. Cheap to clone: one per session.
#[derive(Clone)]
pub struct WeirServer {
    host: Arc<Host>,
    catalog: Arc<Catalog>,
    clients: Arc<Clients>,
    /// Code mode's tools, when served.
    code: Option<Arc<CodeTools>>,
}

impl WeirServer {
    pub fn new(
        host: Arc<Host>,
        catalog: Arc<Catalog>,
        clients: Arc<Clients>,
        code: Option<Arc<CodeTools>>,
    ) -> Self {
        Self {
            host,
            catalog,
            clients,
            code,
        }
    }

    /// Upstream tools as `server.tool`, when the operator turned that on;
    /// only those the default policy grants (the gate's own list).
    async fn upstream_tools(&self) -> Vec<Tool> {
        if !self.host.config().expose_upstream_tools {
            return Vec::new();
        }
        self.host
            .client_gate()
            .list_tools()
            .await
            .into_iter()
            .map(|t| {
                let schema = serde_json::from_str(&t.input_schema).unwrap_or_default();
                let description = t.description.unwrap_or_default();
                Tool::new(
                    format!("{}.{}", t.server, t.name),
                    description,
                    Arc::new(schema),
                )
            })
            .collect()
    }

    /// A passed-through call: a run of one call through the gate, under
    /// the default policy and its deadline, like any plugin's.
    async fn call_upstream(
        &self,
        name: &str,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some((server, tool)) = name.split_once('.') else {
            return Err(unknown_tool(name));
        };
        let arguments = request
            .arguments
            .map(|a| serde_json::Value::Object(a).to_string())
            .unwrap_or_default();
        let gate = self.host.client_gate();
        let deadline = gate.rules().policy().deadline;
        let call = gate.call_within(
            Some(deadline),
            Via::PassThrough,
            1,
            server,
            tool,
            &arguments,
        );
        let result = tokio::select! {
            r = call => r,
            () = context.ct.cancelled() => return Err(cancelled()),
        };
        match result {
            Ok(json) => serde_json::from_str::<CallToolResult>(&json)
                .map(CallToolResponse::Complete)
                .map_err(|e| {
                    ErrorData::internal_error(format!("upstream result unreadable: {e}"), None)
                }),
            Err(CallError::NotFound(_)) => Err(unknown_tool(name)),
            Err(CallError::Timeout) => Ok(error_result(format!(
                "timed out: `{name}` got no answer in time (the server's call timeout, \
                 or the deadline of {} s of a passed-through call)",
                deadline.as_secs_f64()
            ))),
            Err(e) => Ok(error_result(e.to_string())),
        }
    }
}

/// Methods of MCP that rmcp reads itself: one reaching
/// [`ServerHandler::on_custom_request`] had params rmcp could not read.
const STANDARD_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "subscriptions/listen",
];

/// The error for a request rmcp could not read as a standard one.
fn custom_request_error(method: &str, params: Option<&serde_json::Value>) -> ErrorData {
    if !STANDARD_METHODS.contains(&method) {
        return ErrorData::new(
            rmcp::model::ErrorCode::METHOD_NOT_FOUND,
            format!("weir has no method `{method}`"),
            None,
        );
    }
    let why = match method {
        "tools/call" => match params {
            None => "params are missing: give {\"name\": TOOL, \"arguments\": {…}}".to_owned(),
            Some(params) => match serde_json::from_value::<CallToolRequestParams>(params.clone()) {
                Err(e) => e.to_string(),
                Ok(_) => "params do not fit the method".to_owned(),
            },
        },
        _ => "params do not fit the method".to_owned(),
    };
    ErrorData::invalid_params(format!("invalid params for `{method}`: {why}"), None)
}

fn unknown_tool(name: &str) -> ErrorData {
    ErrorData::invalid_params(format!("no tool named `{name}`"), None)
}

fn cancelled() -> ErrorData {
    ErrorData::internal_error("the call was cancelled", None)
}

/// A tool result with `isError`: what the client's model reads.
fn error_result(message: String) -> CallToolResponse {
    CallToolResponse::Complete(CallToolResult::error(vec![ContentBlock::text(message)]))
}

impl ServerHandler for WeirServer {
    // Logging is deprecated since 2026-07-28, but 2025-11-25 clients are
    // still served, and that revision has it.
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_logging()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("weir", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Each tool is a sandboxed weir agent. Calling one runs the agent once; \
             the agent's own tool calls go through weir's shared MCP sessions.",
        )
    }

    /// `logging/setLevel` (up to 2025-11-25): accepted. weir sends its
    /// clients no log messages at any level (its log is its own stderr),
    /// so every level is already honoured. 2026-07-28 removed the method.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        match context.protocol_version() {
            Some(version) if !version.has_initialize() => Err(ErrorData::method_not_found::<
                rmcp::model::SetLevelRequestMethod,
            >()),
            _ => Ok(()),
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools: Vec<Tool> = self
            .catalog
            .snapshot()
            .values()
            .map(|e| e.tool.clone())
            .collect();
        if self.code.is_some() {
            tools.extend(CodeTools::tools());
        }
        tools.extend(self.upstream_tools().await);
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        let entry = self.catalog.get(&name);
        if entry.is_none()
            && let Some(code) = &self.code
        {
            let call = code.call(&name, request.arguments.clone());
            // A client's cancel drops the script's run, like a plugin's.
            tokio::select! {
                result = call => if let Some(result) = result {
                    return Ok(CallToolResponse::Complete(result));
                },
                () = context.ct.cancelled() => return Err(cancelled()),
            }
        }
        let Some(entry) = entry else {
            if self.host.config().expose_upstream_tools {
                return self.call_upstream(&name, request, &context).await;
            }
            return Err(unknown_tool(&name));
        };
        let input = input_for(entry.input, request.arguments)
            .map_err(|m| ErrorData::invalid_params(m, None))?;
        let calls = Arc::new(AtomicU64::new(0));
        // Reports progress while the run goes on; stops with the run (the
        // guard aborts it however this call ends).
        let _progress = context.meta.get_progress_token().map(|token| {
            AbortOnDrop(tokio::spawn(report_progress(
                context.peer.clone(),
                token,
                calls.clone(),
            )))
        });
        let run = self.host.run_observed(&entry.plugin, &input, Some(calls));
        // A client's cancel (or its going away) drops the run: the sandbox
        // stops, and its outstanding upstream calls are cancelled with it.
        let result = tokio::select! {
            r = run => r,
            () = context.ct.cancelled() => {
                tracing::info!(plugin = %name, "run cancelled by the client");
                return Err(cancelled());
            }
        };
        Ok(CallToolResponse::Complete(match result {
            Ok(output) => CallToolResult::success(vec![ContentBlock::text(output)]),
            Err(HostRunError::Run(e)) => {
                CallToolResult::error(vec![ContentBlock::text(format!("{name}: {e}"))])
            }
            Err(e @ HostRunError::ShuttingDown) => {
                return Err(ErrorData::internal_error(e.to_string(), None));
            }
        }))
    }

    /// rmcp hands over as "custom" any request it cannot read — a standard
    /// method with params of the wrong shape among them. Those are invalid
    /// params (-32602), saying what is wrong, not an unknown method.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        Err(custom_request_error(
            &request.method,
            request.params.as_ref(),
        ))
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.clients.add_peer(context.peer);
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        (requested.tools_list_changed == Some(true))
            .then(|| SubscriptionFilter::builder().tools_list_changed().build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let sink = context.sink().clone();
        self.clients.add_subscription(sink.clone());
        context.cancelled().await;
        self.clients.remove_subscription(&sink);
        Ok(())
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every [`PROGRESS_EVERY`], tells the client how long the run has gone on
/// and how many tool calls it made. Progress is the elapsed seconds: it
/// grows at every report, as MCP asks, even while one call is slow.
async fn report_progress(
    peer: rmcp::service::Peer<RoleServer>,
    token: ProgressToken,
    calls: Arc<AtomicU64>,
) {
    let started = Instant::now();
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    loop {
        ticks.tick().await;
        let calls = calls.load(Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        let param = ProgressNotificationParam::new(token.clone(), elapsed)
            .with_message(format!("{calls} tool calls so far, {elapsed:.0} s"));
        if peer.notify_progress(param).await.is_err() {
            return;
        }
    }
}
