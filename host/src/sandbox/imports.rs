//! The host side of `weir:agent/mcp`: the only functions a plugin can call
//! that reach beyond its own memory.

use std::time::Instant;

use super::state::RunState;
use futures::StreamExt;

use crate::gate::{Admitted, Via};
use crate::gateway::{CallError, ToolInfo};

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
        let result = match self.admit(&server, &tool, &arguments).await? {
            Ok(call) => self.gate.send(call).await,
            Err(e) => Err(e),
        };
        self.gate.audit(
            Via::CallTool,
            &server,
            &tool,
            arguments.len(),
            &result,
            started,
        );
        Ok(result.map_err(Into::into))
    }

    async fn call_tools(
        &mut self,
        calls: Vec<mcp::Call>,
    ) -> wasmtime::Result<Vec<Result<String, mcp::CallError>>> {
        let started = Instant::now();
        // Admitted one by one, in order, like single calls...
        let mut admitted = Vec::with_capacity(calls.len());
        for call in &calls {
            admitted.push(
                self.admit(&call.server, &call.tool, &call.arguments)
                    .await?,
            );
        }
        // ...then made at once, at most `max_parallel_calls` in flight;
        // `buffered` hands the results back in request order.
        let gate = &self.gate;
        let results: Vec<Result<String, CallError>> =
            futures::stream::iter(admitted.into_iter().map(|a| async move {
                match a {
                    Ok(call) => gate.send(call).await,
                    Err(e) => Err(e),
                }
            }))
            .buffered(gate.rules().policy().max_parallel_calls)
            .collect()
            .await;
        Ok(calls
            .iter()
            .zip(results)
            .map(|(call, result)| {
                gate.audit(
                    Via::CallTools,
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
        Ok(self
            .gate
            .list_tools()
            .await
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

impl RunState {
    /// Counts the call against the run's budget, then passes it through
    /// the gate. The outer error ends the run: a plugin that keeps calling
    /// past its budget is flooding.
    async fn admit(
        &mut self,
        server: &str,
        tool: &str,
        arguments: &str,
    ) -> wasmtime::Result<Result<Admitted, CallError>> {
        self.calls += 1;
        if let Some(progress) = &self.progress {
            progress.store(self.calls, std::sync::atomic::Ordering::Relaxed);
        }
        // One call past the budget is denied, so the plugin can notice; a
        // plugin that keeps calling after that is flooding, and its run ends.
        let budget = self.gate.rules().policy().max_calls_per_run;
        if self.calls > budget.saturating_add(1) {
            self.call_budget_exhausted = true;
            return Err(wasmtime::Error::msg("call budget exhausted"));
        }
        Ok(self.gate.admit(self.calls, server, tool, arguments).await)
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
            CallError::NeedsClientCapability { message, .. } => Self::Unavailable(message),
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
