//! The MCP clients connected to `weir serve`, as far as telling them the
//! tool list changed: sessions that initialized (stdio, HTTP with sessions)
//! and `subscriptions/listen` streams (MCP 2026-07-28, which has no
//! sessions).

use std::sync::Mutex;

use rmcp::service::{Peer, RoleServer, SubscriptionSink};

/// Everyone to tell about a new tool list.
#[derive(Default)]
pub struct Clients {
    peers: Mutex<Vec<Peer<RoleServer>>>,
    subscriptions: Mutex<Vec<SubscriptionSink>>,
}

impl Clients {
    /// Remembers an initialized session.
    pub fn add_peer(&self, peer: Peer<RoleServer>) {
        if let Ok(mut peers) = self.peers.lock() {
            peers.retain(|p| !p.is_transport_closed());
            peers.push(peer);
        }
    }

    /// Remembers a listening subscription, until [`Clients::remove_subscription`].
    pub fn add_subscription(&self, sink: SubscriptionSink) {
        if let Ok(mut subs) = self.subscriptions.lock() {
            subs.push(sink);
        }
    }

    /// Forgets a subscription whose stream ended.
    pub fn remove_subscription(&self, sink: &SubscriptionSink) {
        if let Ok(mut subs) = self.subscriptions.lock() {
            subs.retain(|s| s.id() != sink.id());
        }
    }

    /// Sends `notifications/tools/list_changed` to every client; forgets
    /// those that are gone. Returns how many were told.
    pub async fn tool_list_changed(&self) -> usize {
        let peers: Vec<_> = self.peers.lock().map(|p| p.clone()).unwrap_or_default();
        // Only the streams that asked for tool list changes.
        let subs: Vec<_> = self
            .subscriptions
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|sub| sub.accepted().tools_list_changed == Some(true))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut told = 0;
        let mut gone = false;
        for peer in &peers {
            match peer.notify_tool_list_changed().await {
                Ok(()) => told += 1,
                Err(error) => {
                    tracing::debug!(%error, "client gone; not told of the new tool list");
                    gone = true;
                }
            }
        }
        if gone && let Ok(mut current) = self.peers.lock() {
            current.retain(|p| !p.is_transport_closed());
        }
        for sub in &subs {
            match sub.notify_tool_list_changed().await {
                Ok(()) => told += 1,
                Err(error) => {
                    tracing::debug!(%error, "subscription gone");
                    self.remove_subscription(sub);
                }
            }
        }
        told
    }
}
