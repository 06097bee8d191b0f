//! Gateways that stand in for servers, for the parts that measure weir's
//! own share of a call: no pipes, no second process.

use futures::future::BoxFuture;
use weir_host::gateway::{Arguments, Caller};
use weir_host::{CallError, ToolGateway, ToolInfo};

/// The answer every fake gives: what the test server's `echo` says.
pub(super) const ECHO_HI: &str = r#"{"content":[{"type":"text","text":"Echo: hi"}]}"#;

/// Answers at once, or (with `true`) after giving the scheduler one turn,
/// as a real call does while the server works.
pub(super) struct AtOnce(pub bool);

impl ToolGateway for AtOnce {
    fn call_tool<'a>(
        &'a self,
        _caller: &'a Caller,
        _server: &'a str,
        _tool: &'a str,
        _arguments: Option<Arguments>,
    ) -> BoxFuture<'a, Result<String, CallError>> {
        let yield_once = self.0;
        Box::pin(async move {
            if yield_once {
                tokio::task::yield_now().await;
            }
            Ok(ECHO_HI.to_owned())
        })
    }

    fn list_tools<'a>(&'a self, _caller: &'a Caller) -> BoxFuture<'a, Vec<ToolInfo>> {
        Box::pin(async { Vec::new() })
    }
}

/// Answered by another thread (which does the server's work) over a
/// channel: a server without pipes or a second process.
pub(super) struct Remote(pub std::sync::mpsc::Sender<tokio::sync::oneshot::Sender<String>>);

impl ToolGateway for Remote {
    fn call_tool<'a>(
        &'a self,
        _caller: &'a Caller,
        _server: &'a str,
        _tool: &'a str,
        _arguments: Option<Arguments>,
    ) -> BoxFuture<'a, Result<String, CallError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.0.send(tx);
        Box::pin(async move { rx.await.map_err(|_| CallError::Timeout) })
    }

    fn list_tools<'a>(&'a self, _caller: &'a Caller) -> BoxFuture<'a, Vec<ToolInfo>> {
        Box::pin(async { Vec::new() })
    }
}
