//! Tool-list changes from a 2026-07-28 server: that revision has no
//! session to send `notifications/tools/list_changed` on, so a client that
//! wants them opens a `subscriptions/listen` request and the server streams
//! them on it. One stream per open session (one long-lived request: a
//! pooled connection over HTTP, a pending id over stdio), for as long as
//! the session lives; reopened, after a pause, when the server ends it.
//!
//! A server that does not offer the method (an error answer), or accepts
//! the stream without tool-list changes, is not asked again on this
//! session: its list then follows its cache hints (see
//! [`super::tool_list`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rmcp::model::{ServerNotification, SubscriptionFilter};
use rmcp::service::{Peer, RoleClient, ServiceError, SubscriptionEnd};
use tokio_util::sync::CancellationToken;

/// The first pause before a stream the server ended is reopened; doubled
/// each time it ends again without having delivered anything, up to
/// [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(60);

/// Where what arrives goes: the session's stale flag, and the server's
/// change counter (which `weir serve` relays to its own clients).
pub(super) struct Sinks {
    pub stale: Arc<AtomicBool>,
    pub changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Sinks {
    fn changed(&self) {
        self.stale.store(true, Ordering::Release);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Listens for tool-list changes on `peer` until `stop` (the session
/// closing) or the transport closes. True when it ended by cancelling an
/// open stream: a `notifications/cancelled` is queued for the server.
pub(super) async fn tool_changes(
    server: Arc<str>,
    peer: Peer<RoleClient>,
    sinks: Sinks,
    stop: CancellationToken,
) -> bool {
    let filter = SubscriptionFilter::builder().tools_list_changed().build();
    let mut pause = FIRST_PAUSE;
    let mut reopened = false;
    loop {
        let opened = tokio::select! {
            opened = peer.listen(filter.clone()) => opened,
            () = stop.cancelled() => return false,
        };
        let mut subscription = match opened {
            Ok(subscription) => subscription,
            Err(ServiceError::McpError(error)) => {
                tracing::info!(server = %server, error = %error.message,
                    "the server does not stream tool-list changes; its list follows its cache hints");
                return false;
            }
            Err(error) if peer.is_transport_closed() => {
                tracing::debug!(server = %server, %error, "session gone; stopped listening");
                return false;
            }
            Err(error) => {
                tracing::warn!(server = %server, %error, "subscriptions/listen failed; trying again later");
                if !wait(&stop, &mut pause).await {
                    return false;
                }
                continue;
            }
        };
        if subscription.acknowledged().tools_list_changed != Some(true) {
            tracing::info!(server = %server,
                "the server accepted subscriptions/listen without tool-list changes");
            let _ = subscription.cancel().await;
            return false;
        }
        tracing::debug!(server = %server, "listening for tool-list changes");
        if reopened {
            // Changes while no stream was open were not heard.
            sinks.changed();
        }
        reopened = true;
        let mut delivered = false;
        loop {
            let next = tokio::select! {
                next = subscription.next() => next,
                () = stop.cancelled() => return subscription.cancel().await.is_ok(),
            };
            match next {
                Ok(Some(ServerNotification::ToolListChangedNotification(_))) => {
                    tracing::debug!(server = %server, "tool list changed");
                    delivered = true;
                    sinks.changed();
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(server = %server, %error, "the tool-list stream broke");
                    break;
                }
            }
        }
        if let Some(SubscriptionEnd::Lagged { .. }) = subscription.end() {
            sinks.changed();
        }
        if peer.is_transport_closed() || stop.is_cancelled() {
            return false;
        }
        if delivered {
            pause = FIRST_PAUSE;
        }
        if !wait(&stop, &mut pause).await {
            return false;
        }
    }
}

/// Waits `pause` (then doubles it, up to [`LONGEST_PAUSE`]); false if
/// `stop` came first.
async fn wait(stop: &CancellationToken, pause: &mut Duration) -> bool {
    let waited = tokio::select! {
        () = tokio::time::sleep(*pause) => true,
        () = stop.cancelled() => false,
    };
    *pause = (*pause * 2).min(LONGEST_PAUSE);
    waited
}
