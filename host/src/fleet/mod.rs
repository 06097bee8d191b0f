//! State the replicas of a fleet share, on Redis (`weir.redis`): the
//! callers' `calls_per_second` ([`rate`]), each upstream's open circuit
//! ([`circuit`]), the built-in server's kv store ([`kv`]) and legacy MCP
//! sessions ([`sessions`]), so that N replicas behave as one weir.
//!
//! Without `weir.redis` a [`Fleet`] is local: every question is answered
//! `None` and callers keep today's in-process state. With it, Redis is
//! asked — each command bounded by [`COMMAND_TIMEOUT`] — and when it does
//! not answer the fleet is *degraded*: one warning, `weir_redis_up 0`, the
//! error counted, callers fall back to local state, and Redis is not asked
//! again for [`RETRY_AFTER`] (so an outage costs no call a timeout). The
//! first answer after that ends it, with a line in the log. Nothing here
//! ever fails a call because Redis is away, and nothing waits on it longer
//! than the timeout.

pub mod circuit;
pub mod kv;
pub mod rate;
pub mod sessions;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::metrics::{Metrics, RedisGauges};

/// The longest any one Redis command may take before the fleet counts as
/// degraded: far above a loopback or in-cluster round trip (~0.1 ms), far
/// below a call's deadline.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// While degraded, how long before Redis is asked again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The variable that tells a child process (the built-in server) where
/// the fleet's Redis is.
pub const REDIS_ENV: &str = "WEIR_REDIS_URL";

/// The prefix of every key weir writes, so a Redis shared with other
/// programs stays readable.
const PREFIX: &str = "weir:";

/// Why the shared state could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The `weir.redis` URL is not one the Redis client accepts.
    #[error("weir.redis: {0}")]
    Url(String),
}

/// The fleet's shared state, or none. Cheap to clone.
#[derive(Clone, Default)]
pub struct Fleet {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    redis: ConnectionManager,
    /// The URL, password masked, for the log.
    shown: String,
    /// This replica's name, written beside what it shares (an open
    /// circuit says who opened it).
    replica: String,
    health: Mutex<Health>,
    gauges: RedisGauges,
}

#[derive(Default)]
struct Health {
    /// Degraded since, and when Redis may be asked again.
    down: Option<(Instant, Instant)>,
}

impl Fleet {
    /// No shared state: every replica keeps its own (the default).
    pub fn local() -> Self {
        Self::default()
    }

    /// State shared through the Redis at `url`. Connects lazily: a Redis
    /// that is down at start is a degraded fleet, not a failed start.
    pub fn redis(url: &str, replica: Option<&str>, metrics: &Metrics) -> Result<Self, FleetError> {
        // Each command is a small write awaiting its answer: with Nagle's
        // algorithm on, a call's second command waits on a delayed ACK.
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| FleetError::Url(e.to_string()))?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(|e| FleetError::Url(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(RETRY_AFTER);
        let redis = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| FleetError::Url(e.to_string()))?;
        let parsed = url::Url::parse(url).ok();
        let shown = parsed
            .as_ref()
            .map_or_else(|| "redis".to_owned(), crate::redact::url);
        let target = match parsed.as_ref().and_then(|u| u.host_str()) {
            Some(host) => format!(
                "{host}:{}",
                parsed.as_ref().and_then(|u| u.port()).unwrap_or(6379)
            ),
            None => parsed
                .as_ref()
                .map_or("redis".to_owned(), |u| u.path().to_owned()),
        };
        let gauges = metrics.redis_gauges(&target);
        gauges.up.set(1);
        Ok(Self {
            shared: Some(Arc::new(Shared {
                redis,
                shown,
                replica: replica.unwrap_or("weir").to_owned(),
                health: Mutex::new(Health::default()),
                gauges,
            })),
        })
    }

    /// Whether state is shared at all (`weir.redis` is set).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Whether Redis is configured but not answering right now.
    pub fn degraded(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.health.lock().is_ok_and(|h| h.down.is_some()))
    }

    /// Runs one Redis command built by `command` on the shared connection:
    /// its answer, or `None` when there is no Redis, it is degraded and not
    /// due for another try, or this command failed or timed out (which
    /// degrades it). `what` names the command in the log and metrics.
    async fn ask<T, F, Fut>(&self, what: &'static str, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let shared = self.shared.as_ref()?;
        let now = Instant::now();
        if let Ok(health) = shared.health.lock()
            && let Some((_, retry_at)) = health.down
            && now < retry_at
        {
            return None;
        }
        let answer = tokio::time::timeout(COMMAND_TIMEOUT, command(shared.redis.clone())).await;
        let error = match answer {
            Ok(Ok(value)) => {
                shared.answered();
                return Some(value);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", COMMAND_TIMEOUT.as_millis()),
        };
        shared.failed(what, &error);
        None
    }

    /// Asks Redis `PING` now, degraded or not (for `weir doctor`): the
    /// round trip, or why there was none; `None` without Redis.
    pub async fn ping(&self) -> Option<Result<Duration, String>> {
        let shared = self.shared.as_ref()?;
        let started = Instant::now();
        let mut redis = shared.redis.clone();
        let answer = tokio::time::timeout(
            COMMAND_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut redis),
        )
        .await;
        Some(match answer {
            Ok(Ok(_)) => {
                shared.answered();
                Ok(started.elapsed())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no answer within {} ms",
                COMMAND_TIMEOUT.as_millis()
            )),
        })
    }

    /// The Redis URL, its password masked.
    pub fn shown(&self) -> Option<&str> {
        self.shared.as_ref().map(|s| s.shown.as_str())
    }

    fn key(parts: &[&str]) -> String {
        let mut key = PREFIX.to_owned();
        key.push_str(&parts.join(":"));
        key
    }

    fn replica(&self) -> &str {
        self.shared.as_ref().map_or("weir", |s| s.replica.as_str())
    }
}

impl Shared {
    fn answered(&self) {
        let Ok(mut health) = self.health.lock() else {
            return;
        };
        if let Some((since, _)) = health.down.take() {
            self.gauges.up.set(1);
            tracing::info!(redis = %self.shown, down_for = ?since.elapsed(),
                "Redis answers again: limits, circuits, kv and sessions are shared across the fleet again");
        }
    }

    fn failed(&self, what: &'static str, error: &str) {
        self.gauges.errors(what).inc();
        let Ok(mut health) = self.health.lock() else {
            return;
        };
        let now = Instant::now();
        match &mut health.down {
            Some((_, retry_at)) => *retry_at = now + RETRY_AFTER,
            None => {
                self.gauges.up.set(0);
                tracing::warn!(redis = %self.shown, command = what, %error,
                    "Redis is unreachable: degraded to this replica's own state (rate limits per replica, \
                     circuits local, the built-in kv refuses calls, legacy sessions stay on the replica that \
                     opened them) until it answers again");
                health.down = Some((now, now + RETRY_AFTER));
            }
        }
    }
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.shared {
            Some(s) => write!(f, "Fleet({})", s.shown),
            None => f.write_str("Fleet(local)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Redis that refuses connections: the fleet is degraded at the
    /// first command, says so in its metrics, and asks no more until the
    /// retry is due — every answer `None`, none of them an error.
    #[tokio::test]
    async fn an_unreachable_redis_degrades_at_once() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("addr").port();
        drop(closed);
        let metrics = Metrics::for_replica(Some("r1"));
        let fleet = Fleet::redis(&format!("redis://127.0.0.1:{port}"), Some("r1"), &metrics)
            .expect("a valid URL");
        assert!(fleet.is_shared() && !fleet.degraded());
        assert_eq!(fleet.reserve_call("p", 10.0).await, None);
        assert!(fleet.degraded());
        let text = metrics.render([]);
        assert!(
            text.contains(&format!(
                "weir_redis_up{{replica=\"r1\",redis=\"127.0.0.1:{port}\"}} 0"
            )),
            "{text}"
        );
        assert!(
            text.contains("weir_redis_errors_total{replica=\"r1\",command=\"rate\"} 1"),
            "{text}"
        );
        // Not due for a retry: not asked, not counted.
        assert_eq!(fleet.kv_get("k").await, None);
        assert_eq!(fleet.circuit("s").await, None);
        let text = metrics.render([]);
        assert!(!text.contains("command=\"kv\""), "{text}");
    }

    /// A Redis that accepts but never answers costs a command at most
    /// [`COMMAND_TIMEOUT`], not a hang.
    #[tokio::test]
    async fn a_silent_redis_is_given_up_on() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = silent.local_addr().expect("addr").port();
        let held = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                kept.push(stream);
            }
        });
        let fleet = Fleet::redis(&format!("redis://127.0.0.1:{port}"), None, &Metrics::new())
            .expect("a valid URL");
        let asked = tokio::time::timeout(COMMAND_TIMEOUT * 20, fleet.kv_set("k", "v", 10)).await;
        assert_eq!(
            asked.ok(),
            Some(None),
            "the command neither hung nor answered"
        );
        assert!(fleet.degraded());
        held.abort();
    }

    /// A URL the client does not take is refused when the host is built.
    #[test]
    fn a_bad_url_is_named() {
        let error = Fleet::redis("redis://[::1", None, &Metrics::new()).expect_err("refused");
        assert!(error.to_string().starts_with("weir.redis:"), "{error}");
    }

    /// Without Redis there is nothing shared and nothing degraded.
    #[tokio::test]
    async fn a_local_fleet_shares_nothing() {
        let fleet = Fleet::local();
        assert!(!fleet.is_shared() && !fleet.degraded());
        assert_eq!(fleet.kv_get("k").await, None);
        assert_eq!(format!("{fleet:?}"), "Fleet(local)");
    }
}
