//! An open session: the rmcp peer, weir's own call lane, the process
//! behind it, its tool list and the counters its callers and its pinger
//! read. [`super::slot`] opens and replaces it; this holds it and closes it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rmcp::model::Tool;
use rmcp::service::{Peer, RoleClient, RunningService};
use tokio_util::sync::CancellationToken;

use super::client::SessionClient;
use super::lane::Lane;
use super::process::{ServerProcess, StderrTail};
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
    pub(super) tools: RwLock<Arc<BTreeMap<String, ToolInfo>>>,
    pub(super) tools_stale: Arc<AtomicBool>,
    /// Calls in flight: the pool's load measure, the pinger's idle test.
    pub(super) in_flight: AtomicUsize,
    /// A call was given up unanswered (timeout, or its run ended): a
    /// `notifications/cancelled` was queued, which closing must not drop.
    pub(super) abandoned: AtomicBool,
    /// Stops the health pinger when the session closes.
    pub(super) stop: CancellationToken,
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

    pub(super) async fn tools(&self, server: &str) -> Arc<BTreeMap<String, ToolInfo>> {
        if self.tools_stale.swap(false, Ordering::AcqRel) {
            match self.peer.list_all_tools().await {
                Ok(tools) => {
                    let fresh = Arc::new(index_tools(server, tools));
                    if let Ok(mut slot) = self.tools.write() {
                        *slot = fresh.clone();
                    }
                    return fresh;
                }
                Err(error) => {
                    tracing::warn!(server, %error, "cannot refresh the tool list; keeping the old one");
                }
            }
        }
        self.tools.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Closes the session (which closes the server's stdin), then ends the
    /// process: see [`ServerProcess::terminate`].
    pub(super) async fn close(&self, server: &str, grace: Duration) {
        self.stop.cancel();
        if self.abandoned.load(Ordering::Relaxed) {
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

pub(super) fn index_tools(server: &str, tools: Vec<Tool>) -> BTreeMap<String, ToolInfo> {
    tools
        .into_iter()
        .map(|t| {
            let info = ToolInfo {
                server: server.to_owned(),
                name: t.name.to_string(),
                description: t.description.as_ref().map(|d| d.to_string()),
                input_schema: serde_json::to_string(&*t.input_schema)
                    .unwrap_or_else(|_| "{}".to_owned()),
                output_schema: t
                    .output_schema
                    .as_ref()
                    .and_then(|s| serde_json::to_string(&**s).ok()),
            };
            (info.name.clone(), info)
        })
        .collect()
}
