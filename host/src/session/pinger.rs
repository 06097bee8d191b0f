//! The health pinger of an open session: a ping (`server/discover` on
//! 2026-07-28, which has no ping) whenever the session has been idle for a
//! while, and a session that fails one is marked broken.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::live::Live;

/// Pings the session whenever it has been idle for `interval`; a failed
/// ping marks it broken, so the next caller recycles it through the same
/// single-flight path as a crash.
pub(super) async fn ping_while_idle(
    server: Arc<str>,
    live: Arc<Live>,
    interval: Duration,
    timeout: Duration,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = live.stop.cancelled() => return,
        }
        if live.in_flight.load(Ordering::Relaxed) > 0 {
            continue;
        }
        let ping = live
            .peer
            .send_request(super::lifecycle::liveness_request(&live.version));
        let failure = match tokio::time::timeout(timeout, ping).await {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:.1} s", timeout.as_secs_f64()),
        };
        if live.stop.is_cancelled() {
            return;
        }
        tracing::warn!(server = %server, %failure, "health ping failed; the session will be recycled");
        live.broken.store(true, Ordering::Release);
        return;
    }
}
