//! One session's copy of its server's tool list, and when to fetch it
//! again.
//!
//! A list goes stale two ways. The server says so — a
//! `notifications/tools/list_changed`, on the session (legacy revisions)
//! or on a `subscriptions/listen` stream (2026-07-28, see
//! [`super::listen`]). Or its cache hint runs out: on 2026-07-28 every
//! `tools/list` result carries `ttlMs`, how long the client may treat it
//! as fresh (absent means 0: stale at once); a legacy result has none and
//! stays fresh until the server says otherwise.
//!
//! What is fetched again, and when, depends on who asks. Someone reading
//! the list — a plugin's `list-tools`, a `weir serve` client's
//! `tools/list`, code mode's documents — gets a list no older than its
//! hint allows, refetched at most once per [`MIN_FRESH`] whatever the hint
//! (most servers say `ttlMs: 0`; a burst of readers costs one
//! `tools/list`, not one each). A call only needs the tool it names: it
//! uses the list in hand and refetches only when that tool is missing from
//! a list that is no longer fresh — never a `tools/list` per call.
//!
//! A refetch that finds the list different bumps the server's change
//! counter, so `weir serve` tells its own clients even when the server
//! never said.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rmcp::model::{ProtocolVersion, Tool};
use rmcp::service::{Peer, RoleClient};

use crate::gateway::ToolInfo;

/// The shortest time a list is reused, whatever its `ttlMs` says: bounds
/// `tools/list` requests to one per server per second however often the
/// list is read.
pub(super) const MIN_FRESH: Duration = Duration::from_secs(1);

/// Who wants the list, which decides how fresh it must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need<'a> {
    /// Someone reads the list: honour its cache hint.
    Listing,
    /// A call looks up this tool: the list in hand will do if it has it.
    Call(&'a str),
}

/// A tool list, indexed by name, with what says when it is stale.
pub(super) struct ToolList {
    current: RwLock<Arc<BTreeMap<String, ToolInfo>>>,
    /// Until when the list is fresh; `None`: until the server says it
    /// changed.
    fresh_until: Mutex<Option<Instant>>,
    /// Set by a change notification (see [`super::client`]).
    stale: Arc<AtomicBool>,
    /// The server's change counter, bumped when a refetch finds the list
    /// changed.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// Whether results of this session carry cache hints (2026-07-28).
    hinted: bool,
    /// One refetch at a time; those who arrive meanwhile use its result.
    refreshing: tokio::sync::Mutex<()>,
}

impl ToolList {
    /// The list a session opened with, `ttl_ms` the hint it came with.
    pub(super) fn new(
        server: &str,
        tools: Vec<Tool>,
        ttl_ms: Option<u64>,
        version: &ProtocolVersion,
        stale: Arc<AtomicBool>,
        changes: Arc<tokio::sync::watch::Sender<u64>>,
    ) -> Self {
        let hinted = *version >= ProtocolVersion::V_2026_07_28;
        Self {
            current: RwLock::new(Arc::new(index_tools(server, tools))),
            fresh_until: Mutex::new(fresh_until(Instant::now(), ttl_ms, hinted)),
            stale,
            changes,
            hinted,
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The list as it stands, without asking the server.
    pub(super) fn cached(&self) -> Arc<BTreeMap<String, ToolInfo>> {
        self.current.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Whether `need` must fetch the list again first.
    fn due(&self, need: Need<'_>) -> bool {
        if self.stale.load(Ordering::Acquire) {
            return true;
        }
        let expired = self
            .fresh_until
            .lock()
            .ok()
            .and_then(|until| *until)
            .is_some_and(|until| Instant::now() >= until);
        match need {
            Need::Listing => expired,
            Need::Call(tool) => expired && !self.cached().contains_key(tool),
        }
    }

    /// The list, fetched again first where `need` says it must be (see the
    /// module doc). A refetch that
    /// fails keeps the old list, with a warning.
    pub(super) async fn get(
        &self,
        peer: &Peer<RoleClient>,
        server: &str,
        need: Need<'_>,
    ) -> Arc<BTreeMap<String, ToolInfo>> {
        if !self.due(need) {
            return self.cached();
        }
        let _refreshing = self.refreshing.lock().await;
        // Someone else may have fetched it while we waited.
        if !self.due(need) {
            return self.cached();
        }
        self.stale.store(false, Ordering::Release);
        let asked = Instant::now();
        match peer.list_all_tools_with_cache_hint().await {
            Ok(merged) => {
                let fresh = Arc::new(index_tools(server, merged.items));
                let changed = *fresh != *self.cached();
                if let Ok(mut current) = self.current.write() {
                    *current = fresh.clone();
                }
                if let Ok(mut until) = self.fresh_until.lock() {
                    *until = fresh_until(asked, merged.ttl_ms, self.hinted);
                }
                if changed {
                    tracing::info!(
                        server,
                        tools = fresh.len(),
                        "the server's tool list changed"
                    );
                    self.changes.send_modify(|n| *n = n.wrapping_add(1));
                }
                fresh
            }
            Err(error) => {
                tracing::warn!(server, %error, "cannot refresh the tool list; keeping the old one");
                // Not again for a while: a failing server is not asked on
                // every read.
                if let Ok(mut until) = self.fresh_until.lock() {
                    *until = Some(asked + MIN_FRESH);
                }
                self.cached()
            }
        }
    }
}

/// When a list fetched at `asked` stops being fresh: after its `ttlMs`
/// (at least [`MIN_FRESH`]); a result without one is stale at once on a
/// revision with cache hints and fresh until a change notification on one
/// without.
fn fresh_until(asked: Instant, ttl_ms: Option<u64>, hinted: bool) -> Option<Instant> {
    let ttl = match (ttl_ms, hinted) {
        (Some(ms), _) => Duration::from_millis(ms),
        (None, true) => Duration::ZERO,
        (None, false) => return None,
    };
    asked.checked_add(ttl.max(MIN_FRESH))
}

/// A server's tools by name, as weir describes them.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_decide_freshness() {
        let now = Instant::now();
        // A legacy result: fresh until the server says it changed.
        assert_eq!(fresh_until(now, None, false), None);
        // 2026-07-28 without a hint, or with 0: stale at once, but
        // refetched at most once per MIN_FRESH.
        assert_eq!(fresh_until(now, None, true), Some(now + MIN_FRESH));
        assert_eq!(fresh_until(now, Some(0), true), Some(now + MIN_FRESH));
        // A hint is honoured, on any revision that sends one.
        let minute = Duration::from_secs(60);
        assert_eq!(fresh_until(now, Some(60_000), true), Some(now + minute));
        assert_eq!(fresh_until(now, Some(60_000), false), Some(now + minute));
    }

    fn list(hinted_ttl: Option<u64>, version: &ProtocolVersion) -> ToolList {
        let tool = Tool::new("echo", "echoes", Arc::new(serde_json::Map::new()));
        ToolList::new(
            "s",
            vec![tool],
            hinted_ttl,
            version,
            Arc::new(AtomicBool::new(false)),
            Arc::new(tokio::sync::watch::Sender::new(0)),
        )
    }

    fn expire(list: &ToolList) {
        if let Ok(mut until) = list.fresh_until.lock() {
            *until = Some(Instant::now() - Duration::from_millis(1));
        }
    }

    #[test]
    fn readers_refetch_an_expired_list_calls_only_for_a_missing_tool() {
        let list = list(Some(0), &ProtocolVersion::V_2026_07_28);
        assert!(!list.due(Need::Listing), "fresh for MIN_FRESH");
        expire(&list);
        assert!(list.due(Need::Listing));
        assert!(!list.due(Need::Call("echo")), "the tool is in hand");
        assert!(list.due(Need::Call("new")), "perhaps added since");
    }

    #[test]
    fn a_change_notification_makes_every_need_refetch() {
        let list = list(None, &ProtocolVersion::V_2025_11_25);
        expire(&list);
        // Legacy, no hint: only a notification makes it stale...
        if let Ok(mut until) = list.fresh_until.lock() {
            *until = None;
        }
        assert!(!list.due(Need::Listing));
        assert!(!list.due(Need::Call("new")));
        list.stale.store(true, Ordering::Release);
        // ...and then for callers as well as readers.
        assert!(list.due(Need::Listing));
        assert!(list.due(Need::Call("echo")));
    }
}
