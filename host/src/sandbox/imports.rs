//! The host side of `weir:agent/mcp`: the only functions a plugin can call
//! that reach beyond its own memory.

use std::time::Instant;

use super::state::RunState;
use crate::config::ALIAS_SERVER;
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
        let started = Instant::now();
        let result = self.checked_call(&server, &tool, &arguments).await;
        if let (Err(CallError::Denied(_)), Some(denials)) = (&result, &self.denials) {
            denials.inc();
        }
        // The audit trail: every call, allowed or not. Sizes only, never
        // the arguments themselves: they may hold secrets.
        tracing::info!(
            target: "weir::audit",
            plugin = %self.caller.plugin,
            server = %server,
            tool = %tool,
            allowed = !matches!(result, Err(CallError::Denied(_))),
            outcome = result.as_ref().map_or_else(CallError::kind, |_| "ok"),
            error = result.as_ref().err().map(tracing::field::display),
            bytes_in = arguments.len(),
            bytes_out = result.as_ref().map_or(0, String::len),
            micros = started.elapsed().as_micros() as u64,
            "call-tool"
        );
        Ok(result.map_err(Into::into))
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

impl RunState {
    /// Policy first (grant, budget, sizes, rate), then the call itself.
    async fn checked_call(
        &mut self,
        server: &str,
        tool: &str,
        arguments: &str,
    ) -> Result<String, CallError> {
        let original_tool = tool;
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
        let mut args = parse_arguments(arguments)?;
        let (server, tool) = match &alias {
            Some(alias) => {
                let mut merged = alias.arguments.clone();
                merged.extend(args.unwrap_or_default());
                args = (!merged.is_empty()).then_some(merged);
                (alias.server.as_str(), alias.tool.as_str())
            }
            None => (server, tool),
        };
        let result = self
            .gateway
            .call_tool(&self.caller, server, tool, args)
            .await
            .map_err(|e| match (&alias, e) {
                (Some(_), CallError::NotFound(m)) => {
                    CallError::NotFound(format!("alias `{}`: {m}", original_tool))
                }
                (_, e) => e,
            })?;
        if result.len() > self.policy.max_result_bytes {
            return Err(CallError::Denied(format!(
                "the result is {} bytes, more than the {} this plugin may receive",
                result.len(),
                self.policy.max_result_bytes
            )));
        }
        Ok(result)
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
