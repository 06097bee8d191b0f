//! The host side of `weir:agent/code`: what the code-mode runtime adds to
//! the agent's door. Linked for every component; only the runtime imports
//! it. It reads the caller's granted tools, so a search finds only what
//! the run may call.

use super::imports::mcp;
use super::state::RunState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "weir:agent/code-runtime",
        imports: { default: async | trappable },
        exports: { default: async },
        with: { "weir:agent/mcp": crate::sandbox::imports::weir::agent::mcp },
    });
}

pub(crate) use bindings::weir::agent::code;

impl code::Host for RunState {
    async fn search_tools(
        &mut self,
        query: String,
        limit: u32,
    ) -> wasmtime::Result<Vec<mcp::Tool>> {
        let granted = self.gate.list_tools().await;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(crate::search::rank(granted, &query, limit)
            .into_iter()
            .map(Into::into)
            .collect())
    }
}
