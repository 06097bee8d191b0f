//! A caller's `calls_per_second` across the fleet: GCRA (the generic cell
//! rate algorithm, as in ATM networks and redis-cell) in one Lua script,
//! so the check and the update are one atomic step on Redis and the clock
//! is Redis's own (replicas' clocks may differ).
//!
//! The key holds the caller's *theoretical arrival time* (TAT). Each call
//! reserves the next slot — TAT moves on by one interval — and is told how
//! long to wait for it, so a caller over its rate makes one round trip per
//! call and sleeps, instead of polling. The burst allowed is one second's
//! worth, as the in-process limiter's (`policy::RateLimiter`).

use std::sync::LazyLock;
use std::time::Duration;

use super::Fleet;

/// KEYS[1]: the caller's TAT (µs since the epoch, Redis time).
/// ARGV[1]: the interval between calls, µs; ARGV[2]: the burst tolerance,
/// µs (interval × (burst − 1)). Returns the wait in µs (0: go now).
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
local next = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000) + 1000)
return math.floor(wait)
";

static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(GCRA));

/// The interval and tolerance, in µs, of `rate` calls a second with a
/// burst of one second's worth (at least one call).
fn cell(rate: f64) -> (u64, u64) {
    let interval = (1_000_000.0 / rate).max(1.0);
    let burst = rate.max(1.0).floor();
    (interval as u64, (interval * (burst - 1.0)) as u64)
}

impl Fleet {
    /// Reserves one of `caller`'s calls under `rate` calls a second across
    /// the fleet: how long to wait for its turn, or `None` when the fleet
    /// cannot say (no Redis, or degraded) and the local limiter decides.
    pub async fn reserve_call(&self, caller: &str, rate: f64) -> Option<Duration> {
        let key = Self::key(&["rate", caller]);
        let (interval, tolerance) = cell(rate);
        let wait: u64 = self
            .ask("rate", |mut redis| async move {
                SCRIPT
                    .key(&key)
                    .arg(interval)
                    .arg(tolerance)
                    .invoke_async(&mut redis)
                    .await
            })
            .await?;
        Some(Duration::from_micros(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One second's burst: 50/s is a call every 20 ms, 49 of them early.
    #[test]
    fn the_cell_of_a_rate() {
        assert_eq!(cell(50.0), (20_000, 980_000));
        assert_eq!(cell(0.5), (2_000_000, 0));
        assert_eq!(cell(1.0), (1_000_000, 0));
    }

    /// Without Redis the fleet has no say: the local limiter decides.
    #[tokio::test]
    async fn a_local_fleet_leaves_the_rate_to_the_replica() {
        assert_eq!(Fleet::local().reserve_call("p", 5.0).await, None);
    }
}
