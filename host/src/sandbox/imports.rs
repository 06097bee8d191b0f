//! The host side of `weir:agent/mcp`: the only functions a plugin can call
//! that reach beyond its own memory.

use std::time::Instant;

use super::state::RunState;
use crate::gateway::{CallError, ToolInfo, parse_arguments};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "weir:agent/agent",
    imports: { default: async },
    exports: { default: async },
});

pub(crate) use self::weir::agent::mcp;

impl mcp::Host for RunState {
    async fn call_tool(
        &mut self,
        server: String,
        tool: String,
        arguments: String,
    ) -> Result<String, mcp::CallError> {
        self.calls += 1;
        let started = Instant::now();
        let result = match parse_arguments(&arguments) {
            Ok(args) => {
                self.gateway
                    .call_tool(&self.caller, &server, &tool, args)
                    .await
            }
            Err(e) => Err(e),
        };
        // Sizes only: arguments may hold secrets.
        tracing::debug!(
            target: "weir::call",
            plugin = %self.caller.plugin,
            server = %server,
            tool = %tool,
            ok = result.is_ok(),
            error = result.as_ref().err().map(tracing::field::display),
            arg_bytes = arguments.len(),
            result_bytes = result.as_ref().map_or(0, String::len),
            micros = started.elapsed().as_micros() as u64,
            "call-tool"
        );
        result.map_err(Into::into)
    }

    async fn list_tools(&mut self) -> Vec<mcp::Tool> {
        self.gateway
            .list_tools(&self.caller)
            .await
            .into_iter()
            .map(Into::into)
            .collect()
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
