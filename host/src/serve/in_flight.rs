//! The MCP requests `weir serve --http` is answering, counted so that a
//! stop (SIGTERM) can let them finish: the listener closes first (the load
//! balancer sends new requests elsewhere), then the stop waits for this
//! count to reach zero — up to the grace period — before sessions end.
//!
//! Streams that never end by themselves (a legacy session's `GET` stream,
//! a 2026-07-28 `subscriptions/listen`) are not counted: waiting for them
//! would always cost the whole grace period.
//!
//! What may still bring a request is counted too, so that the count is
//! not zero for a moment while one is on its way: a listener until it has
//! taken the connections queued in the kernel, a connection until its
//! first request is counted (or it closes, a second after the stop if
//! nothing came), a request until its answer has begun.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The count of requests being answered. Cheap to clone.
#[derive(Clone, Default)]
pub struct InFlight(Arc<Inner>);

#[derive(Default)]
struct Inner {
    count: AtomicUsize,
    idle: Notify,
}

/// One request being answered; counted until dropped.
pub struct Answering(Arc<Inner>);

impl InFlight {
    /// Counts one more request, until the returned guard is dropped.
    pub fn begin(&self) -> Answering {
        self.0.count.fetch_add(1, Ordering::SeqCst);
        Answering(self.0.clone())
    }

    /// Requests being answered now.
    pub fn count(&self) -> usize {
        self.0.count.load(Ordering::SeqCst)
    }

    /// Waits until no request is being answered, or `grace` passed; the
    /// requests still unanswered then.
    pub async fn settle(&self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let idle = self.0.idle.notified();
            tokio::pin!(idle);
            // Registered before the count is read: a drop in between
            // still wakes us.
            idle.as_mut().enable();
            let count = self.count();
            if count == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.count();
            }
        }
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settling waits for the last request, and no longer.
    #[tokio::test(start_paused = true)]
    async fn settles_when_the_last_request_ends() {
        let requests = InFlight::default();
        assert_eq!(requests.settle(Duration::from_secs(5)).await, 0);
        let a = requests.begin();
        let b = requests.begin();
        let ending = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(a);
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(b);
        });
        let started = tokio::time::Instant::now();
        assert_eq!(requests.settle(Duration::from_secs(30)).await, 0);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        ending.await.expect("ending");
    }

    /// A request that outlasts the grace is reported, not waited for.
    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_grace() {
        let requests = InFlight::default();
        let _stuck = requests.begin();
        assert_eq!(requests.settle(Duration::from_secs(3)).await, 1);
    }
}
