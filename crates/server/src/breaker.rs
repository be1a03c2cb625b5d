//! A circuit breaker for calls to third parties (SMTP relays, identity providers): after
//! a run of failures it fails fast for a while instead of letting every request wait
//! for a dead peer, then lets one call through to probe whether the peer is back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Fails fast after `threshold` consecutive failures, for `open_for`; then lets one
/// attempt through to probe whether the peer is back.
pub struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<(u32, Option<Instant>)>,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, open_for: Duration) -> CircuitBreaker {
        CircuitBreaker {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new((0, None)),
        }
    }

    /// Whether a call may be attempted now.
    pub fn allow(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.1.is_none_or(|until| Instant::now() >= until)
    }

    pub fn record(&self, ok: bool) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            *state = (0, None);
        } else {
            state.0 += 1;
            if state.0 >= self.threshold {
                state.1 = Some(Instant::now() + self.open_for);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_failures_and_closes_after_success() {
        let b = CircuitBreaker::new(2, Duration::from_millis(50));
        assert!(b.allow());
        b.record(false);
        assert!(b.allow());
        b.record(false);
        assert!(!b.allow(), "open after two failures");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow(), "half-open: one probe");
        b.record(true);
        assert!(b.allow());
    }
}
