//! Per-address handshake rate: a token bucket per client address, holding
//! an entry only for addresses seen within the last refill period.

use std::collections::HashMap;
use std::net::IpAddr;

/// Token buckets of `rate` handshakes per second with a burst of `rate`.
pub(super) struct HandshakeRate {
    rate: u32,
    /// Tokens (in thousandths, so refills need no floats) and when they
    /// were last counted, per address.
    buckets: HashMap<IpAddr, (u64, u64)>,
    /// Size at which full buckets are swept out; doubles with live entries,
    /// so sweeping costs O(1) per handshake amortised.
    sweep_at: usize,
}

const SWEEP_MIN: usize = 1024;

impl HandshakeRate {
    pub(super) fn new(rate: u32) -> HandshakeRate {
        HandshakeRate {
            rate,
            buckets: HashMap::new(),
            sweep_at: SWEEP_MIN,
        }
    }

    fn full(&self) -> u64 {
        self.rate as u64 * 1000
    }

    fn refill(&self, (tokens, at): (u64, u64), now_ms: u64) -> u64 {
        // rate per second = rate tokens per 1000 ms = rate thousandths per ms.
        let gained = now_ms.saturating_sub(at).saturating_mul(self.rate as u64);
        tokens.saturating_add(gained).min(self.full())
    }

    /// Takes one handshake from `ip`'s bucket; false when it is empty.
    pub(super) fn allow(&mut self, ip: IpAddr, now_ms: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        if self.buckets.len() >= self.sweep_at {
            let full = self.full();
            let buckets = std::mem::take(&mut self.buckets);
            self.buckets = buckets
                .into_iter()
                .filter(|(_, b)| self.refill(*b, now_ms) < full)
                .collect();
            self.sweep_at = (self.buckets.len() * 2).max(SWEEP_MIN);
        }
        let full = self.full();
        let b = self.buckets.get(&ip).copied().unwrap_or((full, now_ms));
        let tokens = self.refill(b, now_ms);
        if tokens < 1000 {
            self.buckets.insert(ip, (tokens, now_ms));
            return false;
        }
        self.buckets.insert(ip, (tokens - 1000, now_ms));
        true
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn a_burst_then_the_rate() {
        let mut r = HandshakeRate::new(5);
        let a = ip(1);
        assert_eq!((0..5).filter(|_| r.allow(a, 0)).count(), 5);
        assert!(!r.allow(a, 0), "the sixth in the same instant");
        assert!(r.allow(ip(2), 0), "another address has its own bucket");
        assert!(!r.allow(a, 100), "100 ms refill half a token");
        assert!(r.allow(a, 200), "one token per 200 ms");
        assert!(!r.allow(a, 200));
        assert_eq!((0..9).filter(|_| r.allow(a, 10_000)).count(), 5, "capped");
        assert!(HandshakeRate::new(0).allow(a, 0), "0 = no limit");
    }

    #[test]
    fn entries_of_quiet_addresses_are_swept() {
        let mut r = HandshakeRate::new(10);
        for n in 0..5000 {
            r.allow(ip(n), n as u64 / 10);
        }
        // Only addresses seen in the last second (plus one sweep) remain.
        assert!(r.tracked() < 2 * SWEEP_MIN + 100, "{}", r.tracked());
        r.allow(ip(9_999_999), 1_000_000);
        assert!(r.tracked() <= 2 * SWEEP_MIN, "{}", r.tracked());
    }
}
