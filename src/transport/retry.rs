//! Retrying a broker round trip that a node cannot do without (creating and checking
//! the topics, opening the chain topic, reading its end offset at start-up).
//!
//! A broker that is restarting, electing a leader or briefly unreachable must not end
//! a node that is starting: every error except those [`TransportError::is_permanent`]
//! names is retried with exponential backoff ([`Backoff`]: 200 ms doubling to 5 s),
//! each failure logged with what was being done and when the next attempt comes, for
//! at most the given patience. Nothing is retried once `stopped()` says so (SIGTERM).

use std::time::{Duration, Instant};

use super::TransportError;

/// Exponential backoff: 200 ms, doubling, at most 5 s.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(200);
    pub const MAX: Duration = Duration::from_secs(5);

    pub fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    /// The wait before the next attempt (and doubles the one after).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`retry`] ended with when it did not succeed.
#[derive(Debug)]
pub enum Gave {
    /// `stopped()` turned true while waiting.
    Stopped,
    /// A permanent error, or the last error once `patience` ran out.
    Up(TransportError),
}

/// Runs `op` until it succeeds, a permanent error comes, `patience` has passed since the
/// first attempt, or `stopped()` turns true; waits per [`Backoff`] between attempts and
/// logs each failure (`what` says what was being done).
pub fn retry<T>(
    what: &str,
    patience: Duration,
    stopped: &dyn Fn() -> bool,
    mut op: impl FnMut() -> Result<T, TransportError>,
) -> Result<T, Gave> {
    let started = Instant::now();
    let mut backoff = Backoff::new();
    let mut attempt = 1u32;
    loop {
        let err = match op() {
            Ok(value) => {
                if attempt > 1 {
                    tracing::info!(attempt, "{what}: succeeded after the broker came back");
                }
                return Ok(value);
            }
            Err(err) => err,
        };
        if err.is_permanent() || started.elapsed() >= patience {
            return Err(Gave::Up(err));
        }
        let wait = backoff.next_wait();
        tracing::warn!(
            error = %err,
            attempt,
            retry_in_ms = wait.as_millis() as u64,
            gives_up_in_s = patience.saturating_sub(started.elapsed()).as_secs(),
            "{what} failed (is the broker down or restarting?); retrying"
        );
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if stopped() {
                return Err(Gave::Stopped);
            }
            std::thread::sleep(Duration::from_millis(50).min(wait));
        }
        if stopped() {
            return Err(Gave::Stopped);
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..8).map(|_| b.next_wait().as_millis() as u64).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        let calls = Cell::new(0);
        let result: Result<(), Gave> = retry("test", Duration::from_secs(60), &|| false, || {
            calls.set(calls.get() + 1);
            Err(TransportError::ChainTopicPartitions {
                topic: "c".into(),
                partitions: 2,
            })
        });
        assert!(matches!(result, Err(Gave::Up(_))));
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn transient_errors_are_retried_until_success() {
        let calls = Cell::new(0);
        let result = retry("test", Duration::from_secs(60), &|| false, || {
            calls.set(calls.get() + 1);
            if calls.get() < 3 {
                Err(TransportError::Other("broker down".into()))
            } else {
                Ok(calls.get())
            }
        });
        assert_eq!(result.ok(), Some(3));
    }

    #[test]
    fn a_stop_ends_the_wait() {
        let result: Result<(), Gave> = retry("test", Duration::from_secs(60), &|| true, || {
            Err(TransportError::Other("broker down".into()))
        });
        assert!(matches!(result, Err(Gave::Stopped)));
    }
}
