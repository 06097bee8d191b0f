//! The host side of `weir:agent/mcp`: the only functions a plugin can call
//! that reach beyond its own memory.

use std::time::Instant;

use super::state::RunState;
use crate::config::ALIAS_SERVER;
use futures::StreamExt;

use crate::gateway::{CallError, ToolInfo, parse_arguments};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "weir:agent/agent",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub(crate) use self::weir::agent::mcp;

impl mcp::Host for RunState {
    async fn call_tool(
        &mut self,
        server: String,
        tool: String,
        arguments: String,
    ) -> wasmtime::Result<Result<String, mcp::CallError>> {
        let started = Instant::now();
        let result = match self.prepare(&server, &tool, &arguments).await? {
            Ok(call) => {
                let result = dispatch(self.gateway.as_ref(), &self.caller, call).await;
                self.check_result(result)
            }
            Err(e) => Err(e),
        };
        self.record(&server, &tool, arguments.len(), &result, started);
        Ok(result.map_err(Into::into))
    }

    async fn call_tools(
        &mut self,
        calls: Vec<mcp::Call>,
    ) -> wasmtime::Result<Vec<Result<String, mcp::CallError>>> {
        let started = Instant::now();
        // Checked and counted one by one, in order, like single calls...
        let mut prepared = Vec::with_capacity(calls.len());
        for call in &calls {
            prepared.push(
                self.prepare(&call.server, &call.tool, &call.arguments)
                    .await?,
            );
        }
        // ...then made at once, at most `max_parallel_calls` in flight;
        // `buffered` hands the results back in request order.
        let (gateway, caller) = (self.gateway.clone(), self.caller.clone());
        let results: Vec<Result<String, CallError>> =
            futures::stream::iter(prepared.into_iter().map(|p| {
                let (gateway, caller) = (gateway.clone(), caller.clone());
                async move {
                    match p {
                        Ok(call) => dispatch(gateway.as_ref(), &caller, call).await,
                        Err(e) => Err(e),
                    }
                }
            }))
            .buffered(self.policy.max_parallel_calls)
            .collect()
            .await;
        Ok(calls
            .iter()
            .zip(results)
            .map(|(call, result)| {
                let result = self.check_result(result);
                self.record(
                    &call.server,
                    &call.tool,
                    call.arguments.len(),
                    &result,
                    started,
                );
                result.map_err(Into::into)
            })
            .collect())
    }

    async fn list_tools(&mut self) -> wasmtime::Result<Vec<mcp::Tool>> {
        let policy = &self.policy;
        Ok(self
            .gateway
            .list_tools(&self.caller)
            .await
            .into_iter()
            .filter(|t| policy.check_tool(&t.server, &t.name).is_ok())
            // An alias is listed only if the tool behind it is granted too.
            .filter(|t| {
                t.server != ALIAS_SERVER
                    || self
                        .gateway
                        .alias(&t.name)
                        .is_some_and(|a| policy.check_tool(&a.server, &a.tool).is_ok())
            })
            .map(Into::into)
            .collect())
    }
}

/// A call that passed the policy, ready to go out.
struct Prepared {
    server: String,
    tool: String,
    arguments: Option<crate::gateway::Arguments>,
    /// The alias it was called by, if any (for error messages).
    alias: Option<String>,
}

/// Makes a prepared call on the gateway.
async fn dispatch(
    gateway: &dyn crate::gateway::ToolGateway,
    caller: &crate::gateway::Caller,
    call: Prepared,
) -> Result<String, CallError> {
    gateway
        .call_tool(caller, &call.server, &call.tool, call.arguments)
        .await
        .map_err(|e| match (&call.alias, e) {
            (Some(alias), CallError::NotFound(m)) => {
                CallError::NotFound(format!("alias `{alias}`: {m}"))
            }
            (_, e) => e,
        })
}

impl RunState {
    /// Counts the call against the run's budget, then applies the policy
    /// (grant, sizes, alias, rate) and reads the arguments. The outer error
    /// ends the run: a plugin that keeps calling past its budget is
    /// flooding.
    async fn prepare(
        &mut self,
        server: &str,
        tool: &str,
        arguments: &str,
    ) -> wasmtime::Result<Result<Prepared, CallError>> {
        self.calls += 1;
        if let Some(progress) = &self.progress {
            progress.store(self.calls, std::sync::atomic::Ordering::Relaxed);
        }
        // One call past the budget is denied, so the plugin can notice; a
        // plugin that keeps calling after that is flooding, and its run ends.
        if self.calls > self.policy.max_calls_per_run.saturating_add(1) {
            self.call_budget_exhausted = true;
            return Err(wasmtime::Error::msg("call budget exhausted"));
        }
        Ok(self.checked(server, tool, arguments).await)
    }

    async fn checked(
        &mut self,
        server: &str,
        tool: &str,
        arguments: &str,
    ) -> Result<Prepared, CallError> {
        self.policy
            .check_call(server, tool, self.calls, arguments.len())
            .map_err(CallError::Denied)?;
        // An alias: the real tool must be granted too, and its default
        // arguments fill in what the caller left out.
        let alias = if server == ALIAS_SERVER {
            let alias = self.gateway.alias(tool).ok_or_else(|| {
                CallError::NotFound(format!("no alias `{tool}` is configured (weir.aliases)"))
            })?;
            self.policy
                .check_tool(&alias.server, &alias.tool)
                .map_err(|why| CallError::Denied(format!("alias `{tool}`: {why}")))?;
            Some(alias)
        } else {
            None
        };
        if let Some(rate) = &self.rate {
            // Over the rate, a call waits for its turn (the run's deadline
            // bounds the wait) rather than failing.
            loop {
                let wait = match rate.lock() {
                    Ok(mut bucket) => bucket.take(Instant::now()),
                    Err(_) => Ok(()),
                };
                match wait {
                    Ok(()) => break,
                    Err(pause) => tokio::time::sleep(pause).await,
                }
            }
        }
        let arguments = parse_arguments(arguments)?;
        Ok(match alias {
            Some(alias) => {
                let mut merged = alias.arguments;
                merged.extend(arguments.unwrap_or_default());
                Prepared {
                    server: alias.server,
                    tool: alias.tool,
                    arguments: (!merged.is_empty()).then_some(merged),
                    alias: Some(tool.to_owned()),
                }
            }
            None => Prepared {
                server: server.to_owned(),
                tool: tool.to_owned(),
                arguments,
                alias: None,
            },
        })
    }

    /// A result the plugin may receive: within its size limit.
    fn check_result(&self, result: Result<String, CallError>) -> Result<String, CallError> {
        let result = result?;
        if result.len() > self.policy.max_result_bytes {
            return Err(CallError::Denied(format!(
                "the result is {} bytes, more than the {} this plugin may receive",
                result.len(),
                self.policy.max_result_bytes
            )));
        }
        Ok(result)
    }

    /// The audit trail and the denial count: every call, allowed or not.
    /// Sizes only, never the arguments themselves: they may hold secrets.
    fn record(
        &self,
        server: &str,
        tool: &str,
        bytes_in: usize,
        result: &Result<String, CallError>,
        started: Instant,
    ) {
        if let (Err(CallError::Denied(_)), Some(denials)) = (result, &self.denials) {
            denials.inc();
        }
        tracing::info!(
            target: "weir::audit",
            plugin = %self.caller.plugin,
            server = %server,
            tool = %tool,
            allowed = !matches!(result, Err(CallError::Denied(_))),
            outcome = result.as_ref().map_or_else(CallError::kind, |_| "ok"),
            error = result.as_ref().err().map(tracing::field::display),
            bytes_in,
            bytes_out = result.as_ref().map_or(0, String::len),
            micros = started.elapsed().as_micros() as u64,
            "call-tool"
        );
    }
}

impl From<CallError> for mcp::CallError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Denied(m) => Self::Denied(m),
            CallError::NotFound(m) => Self::NotFound(m),
            CallError::InvalidArguments(m) => Self::InvalidArguments(m),
            CallError::Unavailable(m) => Self::Unavailable(m),
            CallError::Timeout => Self::Timeout,
            CallError::Protocol(m) => Self::ProtocolError(m),
        }
    }
}

impl From<ToolInfo> for mcp::Tool {
    fn from(t: ToolInfo) -> Self {
        Self {
            server: t.server,
            name: t.name,
            description: t.description,
            input_schema: t.input_schema,
        }
    }
}
