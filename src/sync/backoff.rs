//! One backoff for every loop of the crate that waits on another thread or
//! process, as crossbeam's: spin with the processor's pause hint, then
//! yield the thread; and, for waits that may last (a creator finishing, a
//! reader unpinning), sleep with a pause that doubles up to a cap, never
//! past a deadline. A loop that retries after losing a race (the rounds of
//! `SegmentOptions::open`, of a namespace's secret) goes round at once.

use std::time::{Duration, Instant};

/// Spins before the first yield.
const SPIN_LIMIT: u32 = 6;
/// The first sleep.
const FIRST_SLEEP: Duration = Duration::from_micros(20);
/// The longest sleep.
const MAX_SLEEP: Duration = Duration::from_millis(5);

/// The state of one retry loop.
#[derive(Debug)]
pub struct Backoff {
    step: u32,
    sleep: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// A loop that has not retried yet.
    pub const fn new() -> Self {
        Backoff {
            step: 0,
            sleep: FIRST_SLEEP,
        }
    }

    /// Back off in a loop that waits for another thread or process to finish
    /// a few instructions (a seqlock copy, a pin's re-check): `2^step`
    /// pause hints while `step` is at most [`SPIN_LIMIT`], then yield the
    /// thread.
    #[inline]
    pub fn spin(&mut self) {
        if self.step <= SPIN_LIMIT {
            for _ in 0..1u32 << self.step {
                std::hint::spin_loop();
            }
            self.step += 1;
        } else {
            std::thread::yield_now();
        }
    }

    /// Back off in a loop that waits for something that may take a while,
    /// never sleeping past `deadline` (`None`: no deadline): sleep 20 µs,
    /// then twice as long each time, up to 5 ms.
    pub fn snooze(&mut self, deadline: Option<Instant>) {
        let left = deadline.map_or(MAX_SLEEP, |d| d.saturating_duration_since(Instant::now()));
        std::thread::sleep(self.sleep.min(left));
        self.sleep = (self.sleep * 2).min(MAX_SLEEP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snooze_doubles_to_its_cap_and_stops_at_the_deadline() {
        let mut b = Backoff::new();
        let far = Instant::now() + Duration::from_secs(60);
        for _ in 0..12 {
            b.snooze(Some(far));
        }
        assert_eq!(b.sleep, MAX_SLEEP);
        let start = Instant::now();
        b.snooze(Some(start));
        assert!(start.elapsed() < MAX_SLEEP, "slept past the deadline");
        for _ in 0..20 {
            b.spin();
        }
        assert_eq!(b.step, SPIN_LIMIT + 1);
    }
}
