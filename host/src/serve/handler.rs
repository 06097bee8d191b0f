//! weir as an MCP server: each plugin is a tool, and a `tools/call` is one
//! run of it on the host's shared sessions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::ErrorData;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, CustomRequest,
    CustomResult, GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProgressToken, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig, SubscriptionFilter, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, SubscriptionContext};

use super::asking::{Asking, Rounds};
use super::catalog::{Catalog, input_for};
use super::clients::Clients;
use super::code_docs;
use super::code_tools::CodeTools;
use super::passthrough;
use crate::config::UpstreamToolNames;
use crate::gate::Via;
use crate::gateway::{CallError, ToolInfo};
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
    /// Calls of 2026-07-28 clients waiting for their answer to a
    /// server's question; shared by every session and request.
    rounds: Arc<Rounds>,
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
            rounds: Arc::default(),
        }
    }

    /// A call of a plugin, a code-mode tool or a passed-through one.
    async fn call(
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

    /// Whether the request's token (`weir.auth`, checked by the HTTP
    /// layer) reaches the tool `name`; always, without auth (stdio too).
    fn granted(&self, context: &RequestContext<RoleServer>, name: &str) -> bool {
        let Some(auth) = &self.host.config().serve_auth else {
            return true;
        };
        let granted = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<super::auth::Granted>());
        match granted {
            Some(granted) => super::auth::allows(auth, granted, name),
            // Over stdio there is no token: the one client is the operator's.
            None => context.extensions.get::<http::request::Parts>().is_none(),
        }
    }

    /// A call, its upstream servers' questions put to the client as its
    /// revision allows (see [`super::asking`]).
    async fn call_asking(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !self.granted(&context, &request.name) {
            let why = format!(
                "the token's scopes do not grant the tool `{}`; ask for a token with a scope \
                 that does",
                request.name
            );
            // The same audit event as every other refused call.
            self.host.client_gate().audit(
                crate::gate::Via::Client,
                "weir",
                &request.name,
                0,
                &Err(crate::gateway::CallError::Denied(why.clone())),
                std::time::Instant::now(),
            );
            return Err(ErrorData::invalid_params(why, None));
        }
        if let Some(state) = request.request_state.as_deref()
            && Rounds::is_ours(state)
        {
            return self
                .rounds
                .resume(state, request.input_responses.clone(), &context.ct)
                .await;
        }
        match Asking::of(&context) {
            Asking::Nobody => self.call(request, context).await,
            Asking::Session(asker) => {
                crate::ask::with_asker(Some(asker), self.call(request, context)).await
            }
            Asking::Rounds => {
                let this = self.clone();
                let request_ct = context.ct.clone();
                let start = move |cancel| {
                    let mut context = context;
                    context.ct = cancel;
                    async move { this.call(request, context).await }
                };
                self.rounds.start(start, &request_ct).await
            }
        }
    }

    /// Upstream tools under the names clients see them by
    /// (`weir.upstream_tool_names`), when the operator turned passing
    /// them through on; only those the default policy grants (the gate's
    /// own list).
    async fn named_upstream_tools(&self) -> Vec<(String, ToolInfo)> {
        let config = self.host.config();
        if !config.expose_upstream_tools {
            return Vec::new();
        }
        let tools = self.host.client_gate().list_tools().await;
        let catalog = self.catalog.snapshot();
        let code = self.code.is_some();
        passthrough::name_tools(tools, config.upstream_tool_names, |name| {
            catalog.contains_key(name) || (code && CodeTools::has(name))
        })
    }

    /// The passed-through tools, as listed.
    async fn upstream_tools(&self) -> Vec<Tool> {
        self.named_upstream_tools()
            .await
            .into_iter()
            .map(|(name, t)| {
                let schema = serde_json::from_str(&t.input_schema).unwrap_or_default();
                let description = t.description.unwrap_or_default();
                Tool::new(name, description, Arc::new(schema))
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
        // A bare name is looked up; `server.tool` goes to the gate as it
        // is, which refuses (and audits) a tool the caller is not granted.
        let named = match self.host.config().upstream_tool_names {
            UpstreamToolNames::Bare => self.named_upstream_tools().await,
            UpstreamToolNames::Prefixed => Vec::new(),
        };
        let (server, tool) = match passthrough::resolve(&named, name) {
            Some(info) => (info.server.as_str(), info.name.as_str()),
            None => name.split_once('.').ok_or_else(|| unknown_tool(name))?,
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
                // A legacy server's result has no `resultType`, which a
                // 2026-07-28 client requires.
                .map(|result| CallToolResponse::Complete(completed(result)))
                .map_err(|e| {
                    ErrorData::internal_error(format!("upstream result unreadable: {e}"), None)
                }),
            Err(CallError::NotFound(_)) => Err(unknown_tool(name)),
            // The client lacks it too: MCP's own error (`-32021`, HTTP
            // 400), so the client knows what to declare. A client that
            // has it reads that weir does not pass it on.
            Err(CallError::NeedsClientCapability { message, required })
                if lacks_any(context, &required) =>
            {
                let required: serde_json::Value =
                    serde_json::from_str(&required).unwrap_or_else(|_| serde_json::json!({}));
                Err(ErrorData::new(
                    rmcp::model::ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY,
                    message,
                    Some(serde_json::json!({ "requiredCapabilities": required })),
                ))
            }
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

/// Methods 2026-07-28 removed: a request of that revision naming one is
/// for a method weir does not have there (`-32601`, HTTP 404), whatever
/// its params — rmcp hands them over as custom when the params, now only
/// `_meta`, do not fit the old method.
const REMOVED_IN_2026: &[&str] = &[
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// The error for a request rmcp could not read as a standard one;
/// `stateless`: the request is of a revision without `initialize`.
fn custom_request_error(
    method: &str,
    params: Option<&serde_json::Value>,
    stateless: bool,
) -> ErrorData {
    if stateless && REMOVED_IN_2026.contains(&method) {
        return ErrorData::new(
            rmcp::model::ErrorCode::METHOD_NOT_FOUND,
            format!("`{method}` is not a method of MCP 2026-07-28"),
            None,
        );
    }
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

/// Whether the client of `context` lacks one of the capabilities named in
/// `required` (a `requiredCapabilities` object, as JSON).
fn lacks_any(context: &RequestContext<RoleServer>, required: &str) -> bool {
    let declared = context
        .client_capabilities()
        .and_then(|c| serde_json::to_value(c).ok())
        .unwrap_or_default();
    let required: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(required).unwrap_or_default();
    required
        .keys()
        .any(|k| declared.get(k).is_none_or(serde_json::Value::is_null))
}

fn unknown_tool(name: &str) -> ErrorData {
    ErrorData::invalid_params(format!("no tool named `{name}`"), None)
}

fn cancelled() -> ErrorData {
    ErrorData::internal_error("the call was cancelled", None)
}

/// `result`, said to be complete (`resultType`), as every revision
/// since 2026-07-28 has it.
fn completed(mut result: CallToolResult) -> CallToolResult {
    result.result_type = Some(rmcp::model::ResultType::COMPLETE);
    result
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
                .enable_resources()
                .enable_prompts()
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
        context: RequestContext<RoleServer>,
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
        // A token's scopes may hide some (`weir.auth.scopes`).
        tools.retain(|t| self.granted(&context, &t.name));
        Ok(ListToolsResult::with_all_items(tools))
    }

    /// Code mode's API as documents (see `code_docs`); none without it.
    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources = match &self.code {
            Some(_) => code_docs::resources(),
            None => Vec::new(),
        };
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let templates = match &self.code {
            Some(_) => code_docs::templates(),
            None => Vec::new(),
        };
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        match &self.code {
            Some(code) => code_docs::read(code, &request.uri)
                .await
                .map(ReadResourceResponse::Complete),
            None => Err(ErrorData::resource_not_found(
                format!(
                    "weir has no resource `{}` (its resources are code mode's: weir serve --code-mode)",
                    request.uri
                ),
                None,
            )),
        }
    }

    /// The `code_mode` prompt, when code mode is served.
    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let prompts = match &self.code {
            Some(_) => code_docs::prompts(),
            None => Vec::new(),
        };
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if self.code.is_none() {
            return Err(ErrorData::invalid_params(
                format!(
                    "no prompt named `{}` (weir's prompt is code mode's: weir serve --code-mode)",
                    request.name
                ),
                None,
            ));
        }
        code_docs::prompt(&request.name, request.arguments.as_ref())
            .map(GetPromptResponse::Complete)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.call_asking(request, context).await
    }

    /// rmcp hands over as "custom" any request it cannot read — a standard
    /// method with params of the wrong shape among them. Those are invalid
    /// params (-32602), saying what is wrong, not an unknown method.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        let stateless = context
            .protocol_version()
            .is_some_and(|v| !v.has_initialize());
        Err(custom_request_error(
            &request.method,
            request.params.as_ref(),
            stateless,
        ))
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.clients.add_peer(context.peer);
    }

    /// Every stream is accepted, for what of its filter weir sends: tool
    /// list changes. A stream that asked for none of those (prompts only,
    /// say) is acknowledged and kept open, and sent nothing — not refused
    /// as an unknown method.
    fn accepted_subscription_filter(
        &self,
        _requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(SubscriptionFilter::builder().tools_list_changed().build())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A method 2026-07-28 removed is unknown there (-32601, which the
    /// HTTP front makes a 404) even with params the old method cannot
    /// read; on older revisions such params are invalid (-32602).
    #[test]
    fn removed_methods_are_unknown_on_2026() {
        let meta = serde_json::json!({"_meta": {}});
        for method in REMOVED_IN_2026 {
            let e = custom_request_error(method, Some(&meta), true);
            assert_eq!(e.code, rmcp::model::ErrorCode::METHOD_NOT_FOUND, "{method}");
            let e = custom_request_error(method, Some(&meta), false);
            assert_eq!(e.code, rmcp::model::ErrorCode::INVALID_PARAMS, "{method}");
        }
        let e = custom_request_error("tools/call", Some(&meta), true);
        assert_eq!(e.code, rmcp::model::ErrorCode::INVALID_PARAMS);
        assert!(e.message.contains("missing field `name`"), "{}", e.message);
    }
}
