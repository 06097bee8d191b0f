//! Who can be asked, when a server wants input in the middle of a call.
//!
//! A tool call reaches a server through layers — `weir serve`'s handler,
//! a plugin run or a code-mode script, the gate, a session — and the
//! server's question (an `elicitation/create`, or a question in a
//! 2026-07-28 `input_required` result) comes back at the bottom. Rather
//! than thread "the person at the other end" through every layer, the
//! handler sets an [`Asker`] for the task that makes the call, and the
//! session layer, where a server entry says `"elicitation": "forward"`,
//! takes it from there: a plugin run and its calls stay on the handler's
//! task, so every call of the run sees it. Where none is set (`weir run`,
//! a client that did not declare elicitation), nobody can be asked.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use rmcp::model::{ElicitRequestParams, ElicitResult};

/// Someone who can answer a server's request for input: the MCP client
/// of `weir serve` whose call it is.
pub trait Asker: Send + Sync {
    /// Puts the question to them; their answer, or why there is none.
    fn ask(&self, request: ElicitRequestParams) -> BoxFuture<'_, Result<ElicitResult, String>>;
}

tokio::task_local! {
    static ASKER: Arc<dyn Asker>;
}

/// Runs `call` with `asker` as the one to ask (nobody, if `None`).
pub async fn with_asker<F: Future>(asker: Option<Arc<dyn Asker>>, call: F) -> F::Output {
    match asker {
        Some(asker) => ASKER.scope(asker, call).await,
        None => call.await,
    }
}

/// The one to ask on this task, if anyone.
pub(crate) fn current() -> Option<Arc<dyn Asker>> {
    ASKER.try_with(Arc::clone).ok()
}
