//! One capped, jittered exponential backoff for everything herald retries:
//! the supervisor's worker restarts and the Redis links' reconnects.
//!
//! Pure arithmetic over a delay and an xorshift state: no clock, so each
//! user passes its own time in and tests see every delay.

/// Delays that start at `min_ms`, double with each attempt up to `max_ms`,
/// and are spread by a jitter so that peers that failed together (workers,
/// herald nodes sharing a Redis) do not retry in step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    min_ms: u64,
    max_ms: u64,
    /// Each delay is its base ± this many percent, then capped at `max_ms`.
    jitter_percent: u64,
    /// The base of the next delay.
    next_ms: u64,
    /// xorshift64 state (never 0).
    rng: u64,
}

impl Backoff {
    /// Delays from `min_ms` (at least 1) doubling to `max_ms` (at least
    /// `min_ms`), ± `jitter_percent` (at most 100) drawn from `seed`.
    pub(crate) fn new(min_ms: u64, max_ms: u64, jitter_percent: u64, seed: u64) -> Backoff {
        let min_ms = min_ms.max(1);
        Backoff {
            min_ms,
            max_ms: max_ms.max(min_ms),
            jitter_percent: jitter_percent.min(100),
            next_ms: min_ms,
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt; the one after doubles, up to the
    /// cap. Never more than `max_ms`.
    pub(crate) fn next_delay(&mut self) -> u64 {
        let base = self.next_ms;
        self.next_ms = base.saturating_mul(2).min(self.max_ms);
        // In u128: `base` may be anything up to u64::MAX.
        let swing = (u128::from(base) * u128::from(self.jitter_percent) / 100) as u64;
        let r = crate::xorshift::next(&mut self.rng);
        let spread = swing.saturating_mul(2).saturating_add(1);
        (base - swing).saturating_add(r % spread).min(self.max_ms)
    }

    /// Back to `min_ms`: the thing retried has worked (a worker ran long
    /// enough, a link came up).
    pub(crate) fn reset(&mut self) {
        self.next_ms = self.min_ms;
    }

    /// The cap.
    pub(crate) fn max_ms(&self) -> u64 {
        self.max_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(delay: u64, base: u64, percent: u64) -> bool {
        let swing = base * percent / 100;
        delay >= base - swing && delay <= base + swing
    }

    #[test]
    fn doubles_to_the_cap_within_the_jitter() {
        let mut b = Backoff::new(100, 10_000, 10, 42);
        let mut bases = vec![100, 200, 400, 800, 1600, 3200, 6400];
        bases.extend([10_000; 4]);
        for base in bases {
            let d = b.next_delay();
            assert!(within(d, base, 10), "{d} not near {base}");
            assert!(d <= 10_000, "capped: {d}");
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(100, 5_000, 25, 7);
        for _ in 0..10 {
            b.next_delay();
        }
        b.reset();
        assert!(within(b.next_delay(), 100, 25));
        assert!(within(b.next_delay(), 200, 25));
    }

    #[test]
    fn the_jitter_spreads_delays_and_follows_the_seed() {
        let delays = |seed| {
            let mut b = Backoff::new(1_000, 1_000, 25, seed);
            (0..64).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        let d = delays(1);
        assert!(d.iter().all(|&x| (750..=1_000).contains(&x)), "{d:?}");
        assert!(d.iter().any(|&x| x < 900), "spread below the cap");
        assert_eq!(d, delays(1), "one seed, one sequence");
        assert_ne!(d, delays(2));
    }

    #[test]
    fn degenerate_bounds() {
        let mut b = Backoff::new(0, 0, 100, 0);
        assert_eq!(b.max_ms(), 1);
        assert!((0..100).all(|_| b.next_delay() <= 1));
        let mut none = Backoff::new(300, 100, 0, 9);
        assert_eq!(none.max_ms(), 300, "the cap is at least the start");
        assert_eq!([none.next_delay(), none.next_delay()], [300, 300]);
        let mut huge = Backoff::new(u64::MAX / 2, u64::MAX, 100, 3);
        for _ in 0..4 {
            huge.next_delay();
        }
    }
}
