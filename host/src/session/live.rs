//! An open session: the rmcp peer, weir's own call lane, the process
//! behind it, its tool list and the counters its callers and its pinger
//! read. [`super::slot`] opens and replaces it; this holds it and closes it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rmcp::service::{Peer, RoleClient, RunningService};
use tokio_util::sync::CancellationToken;

use super::client::SessionClient;
use super::lane::Lane;
use super::process::{ServerProcess, StderrTail};
use super::tool_list::{Need, ToolList};
use super::wire::ProtocolFault;
use crate::gateway::ToolInfo;

/// An initialized session and the process behind it.
pub(crate) struct Live {
    pub(super) peer: Peer<RoleClient>,
    /// weir's own `tools/call` requests (stdio sessions).
    pub(super) lane: Option<Arc<Lane>>,
    pub(super) service: tokio::sync::Mutex<Option<RunningService<RoleClient, SessionClient>>>,
    pub(super) process: tokio::sync::Mutex<Option<ServerProcess>>,
    pub(super) pid: Option<u32>,
    pub(super) opened_at: Instant,
    /// The MCP revision the server agreed to, as shown.
    pub(super) protocol: String,
    /// The same, as the session speaks it.
    pub(super) version: rmcp::model::ProtocolVersion,
    pub(super) stderr: StderrTail,
    /// Why the session was ended for breaking the protocol, if it was.
    pub(super) fault: ProtocolFault,
    /// Set when a health ping fails: the next caller recycles the session.
    pub(super) broken: AtomicBool,
    pub(super) tools: ToolList,
    /// Calls in flight: the pool's load measure, the pinger's idle test.
    pub(super) in_flight: AtomicUsize,
    /// Whom those calls could ask, for the server's requests for input.
    pub(super) askers: Arc<super::elicitation::InFlightAskers>,
    /// A call was given up unanswered (timeout, or its run ended): a
    /// `notifications/cancelled` was queued, which closing must not drop.
    pub(super) abandoned: AtomicBool,
    /// Stops the health pinger and the listener when the session closes.
    pub(super) stop: CancellationToken,
    /// The `subscriptions/listen` task (see [`super::listen`]), if one
    /// runs: closing waits for it to end its stream, so the server hears
    /// the stream cancelled before its stdin closes.
    pub(super) listener: std::sync::Mutex<Option<tokio::task::JoinHandle<bool>>>,
}

/// Counts a call in flight for as long as it lives.
pub(super) struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    pub(super) fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Marks the session as having abandoned a call, unless disarmed (by the
/// answer arriving) before it is dropped.
pub(super) struct Abandon<'a>(pub(super) Option<&'a AtomicBool>);

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if let Some(flag) = self.0 {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

/// Longest wait at close for the server to have read the cancellations
/// weir queued.
const CANCEL_FLUSH: Duration = Duration::from_millis(500);

impl Live {
    pub(super) fn alive(&self) -> bool {
        !self.broken.load(Ordering::Acquire)
            && !self.peer.is_transport_closed()
            && self.lane.as_ref().is_none_or(|lane| lane.is_open())
    }

    pub(super) fn fault_note(&self) -> String {
        match self.fault.lock().ok().and_then(|f| f.clone()) {
            Some(f) => format!(" (it wrote {f})"),
            None => String::new(),
        }
    }

    /// The server's tools, fetched again first where `need` says so (see
    /// [`super::tool_list`]).
    pub(super) async fn tools(
        &self,
        server: &str,
        need: Need<'_>,
    ) -> Arc<BTreeMap<String, ToolInfo>> {
        self.tools.get(&self.peer, server, need).await
    }

    /// Closes the session (which closes the server's stdin), then ends the
    /// process: see [`ServerProcess::terminate`].
    pub(super) async fn close(&self, server: &str, grace: Duration) {
        self.stop.cancel();
        let listener = self.listener.lock().ok().and_then(|mut l| l.take());
        let mut queued = self.abandoned.load(Ordering::Relaxed);
        if let Some(listener) = listener {
            let cancelled = tokio::time::timeout(CANCEL_FLUSH.min(grace), listener).await;
            queued |= matches!(cancelled, Ok(Ok(true)));
        }
        if queued {
            // Cancellations are queued notifications; closing now could
            // drop them, leaving the server working on calls nobody wants.
            // A ping queued behind them returns once they are written.
            let ping = self
                .peer
                .send_request(super::lifecycle::liveness_request(&self.version));
            let _ = tokio::time::timeout(CANCEL_FLUSH.min(grace), ping).await;
        }
        if let Some(mut service) = self.service.lock().await.take() {
            if let Err(error) = service.close_with_timeout(grace).await {
                tracing::debug!(server, %error, "session did not close cleanly");
            }
            drop(service);
        }
        if let Some(process) = self.process.lock().await.take() {
            process.terminate(server, grace).await;
        }
    }
}
