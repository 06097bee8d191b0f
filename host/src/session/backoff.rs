//! When a server that fails to start may be tried again: exponential
//! backoff with jitter, and a circuit breaker. Pure: time is passed in, so
//! the schedule is tested without waiting.

use std::time::{Duration, Instant};

use crate::config::SessionSettings;

/// The start history of one session slot.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    /// Failed starts in a row.
    failures: u32,
    last_error: Option<String>,
    /// No start before this.
    retry_at: Option<Instant>,
}

/// What a caller may do now.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Start (or probe) now.
    Attempt,
    /// The next attempt is allowed at this instant; waiting is allowed.
    WaitUntil(Instant),
    /// The circuit is open: fail fast with this message.
    Open(String),
}

impl Backoff {
    /// Decides for a caller arriving at `now`.
    pub fn verdict(&self, now: Instant, settings: &SessionSettings) -> Verdict {
        match self.retry_at {
            Some(at) if at > now && self.failures >= settings.circuit_threshold => {
                Verdict::Open(format!(
                    "circuit open: {} failed starts in a row (last: {}); next attempt in {:.1} s",
                    self.failures,
                    self.last_error.as_deref().unwrap_or("unknown"),
                    (at - now).as_secs_f64()
                ))
            }
            Some(at) if at > now => Verdict::WaitUntil(at),
            _ => Verdict::Attempt,
        }
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Whether the last start failed.
    pub fn failing(&self) -> bool {
        self.failures > 0
    }

    pub fn succeeded(&mut self) {
        *self = Self::default();
    }

    /// Records a failed start at `now`; `jitter` in `[0, 1)` spreads retries.
    pub fn failed(&mut self, now: Instant, error: String, settings: &SessionSettings, jitter: f64) {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error);
        self.retry_at = Some(now + retry_delay(self.failures, settings, jitter));
    }
}

/// Wait after the `failures`-th failure in a row: base · 2^(failures−1),
/// capped, scaled by a jitter factor in [0.5, 1.5); the circuit's cool-down
/// once the threshold is reached.
fn retry_delay(failures: u32, settings: &SessionSettings, jitter: f64) -> Duration {
    if failures >= settings.circuit_threshold {
        return settings.circuit_cooldown;
    }
    let exponent = failures.saturating_sub(1).min(30);
    let delay = settings
        .backoff_base
        .saturating_mul(1u32 << exponent)
        .min(settings.backoff_max);
    delay.mul_f64(0.5 + jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SessionSettings {
        SessionSettings {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            circuit_threshold: 5,
            circuit_cooldown: Duration::from_secs(30),
            ..SessionSettings::default()
        }
    }

    /// The schedule doubles, is capped, and jitter stays within ±50%.
    #[test]
    fn delays_double_and_cap() {
        let s = settings();
        let ms = |failures, jitter| retry_delay(failures, &s, jitter).as_millis();
        assert_eq!(
            [ms(1, 0.5), ms(2, 0.5), ms(3, 0.5), ms(4, 0.5)],
            [100, 200, 400, 800]
        );
        assert_eq!((ms(1, 0.0), ms(1, 0.999)), (50, 149));
        let capped = SessionSettings {
            circuit_threshold: 50,
            ..s.clone()
        };
        assert_eq!(retry_delay(20, &capped, 0.5), Duration::from_secs(1));
        assert_eq!(retry_delay(5, &s, 0.0), Duration::from_secs(30));
    }

    /// Failures lead to waits, then to an open circuit that fails fast;
    /// after the cool-down one probe is allowed; success resets it all.
    #[test]
    fn circuit_opens_and_recovers() {
        let s = settings();
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert_eq!(b.verdict(t0, &s), Verdict::Attempt);
        b.failed(t0, "boom".into(), &s, 0.5);
        assert_eq!(
            b.verdict(t0, &s),
            Verdict::WaitUntil(t0 + Duration::from_millis(100))
        );
        assert_eq!(
            b.verdict(t0 + Duration::from_millis(100), &s),
            Verdict::Attempt
        );
        let mut now = t0;
        for _ in 1..5 {
            now += Duration::from_secs(2);
            b.failed(now, "boom".into(), &s, 0.5);
        }
        match b.verdict(now + Duration::from_secs(1), &s) {
            Verdict::Open(m) => assert!(m.contains("5 failed starts in a row (last: boom)"), "{m}"),
            other => panic!("expected an open circuit, got {other:?}"),
        }
        assert_eq!(
            b.verdict(now + Duration::from_secs(30), &s),
            Verdict::Attempt,
            "probe"
        );
        b.failed(now + Duration::from_secs(30), "still".into(), &s, 0.5);
        assert!(matches!(
            b.verdict(now + Duration::from_secs(31), &s),
            Verdict::Open(_)
        ));
        b.succeeded();
        assert_eq!(
            b.verdict(now + Duration::from_secs(31), &s),
            Verdict::Attempt
        );
        assert_eq!(b.last_error(), None);
    }
}
