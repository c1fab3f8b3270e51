//! The accounting of a churn run: what the backend sent (each push to one
//! client, each broadcast to all N), which (message, client) pairs arrived,
//! and how many copies came beyond the first.

/// Every message of the measured window and who received it.
pub struct Tally {
    clients: usize,
    /// The client each push (by sequence number) was addressed to.
    push_to: Vec<u32>,
    /// One bit per push: it arrived at its client.
    push_seen: Vec<u64>,
    /// Per broadcast, one bit per client: it arrived there.
    broadcast_seen: Vec<Vec<u64>>,
    /// Copies beyond the first of a (message, client) pair.
    pub duplicates: u64,
    /// Pushes that arrived at a client they were not addressed to.
    pub misrouted: u64,
    /// Messages that carry no sequence number of this run.
    pub unknown: u64,
}

/// The figures of a run.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub pushes: u64,
    pub broadcasts: u64,
    /// Pushes + broadcasts x clients.
    pub expected: u64,
    /// Distinct (message, client) pairs received.
    pub delivered: u64,
    pub duplicates: u64,
}

impl Summary {
    pub fn delivered_percent(&self) -> f64 {
        if self.expected == 0 {
            return 100.0;
        }
        self.delivered as f64 * 100.0 / self.expected as f64
    }
}

/// Sets bit `i` of `bits`; true when it was clear.
fn set_bit(bits: &mut [u64], i: usize) -> bool {
    let (w, b) = (i / 64, 1u64 << (i % 64));
    let fresh = bits[w] & b == 0;
    bits[w] |= b;
    fresh
}

impl Tally {
    pub fn new(clients: usize) -> Tally {
        Tally {
            clients,
            push_to: Vec::new(),
            push_seen: Vec::new(),
            broadcast_seen: Vec::new(),
            duplicates: 0,
            misrouted: 0,
            unknown: 0,
        }
    }

    /// Records a push to client `to`; returns its sequence number.
    pub fn push(&mut self, to: usize) -> u32 {
        let seq = self.push_to.len();
        self.push_to.push(to as u32);
        if seq % 64 == 0 {
            self.push_seen.push(0);
        }
        seq as u32
    }

    /// Records a broadcast; returns its sequence number.
    pub fn broadcast(&mut self) -> u32 {
        self.broadcast_seen.push(vec![0; self.clients.div_ceil(64)]);
        (self.broadcast_seen.len() - 1) as u32
    }

    pub fn pushes(&self) -> usize {
        self.push_to.len()
    }

    pub fn broadcasts(&self) -> usize {
        self.broadcast_seen.len()
    }

    /// Push `seq` arrived at `client`.
    pub fn got_push(&mut self, client: usize, seq: u32) {
        let seq = seq as usize;
        match self.push_to.get(seq) {
            Some(&to) if to as usize == client => {
                if !set_bit(&mut self.push_seen, seq) {
                    self.duplicates += 1;
                }
            }
            Some(_) => self.misrouted += 1,
            None => self.unknown += 1,
        }
    }

    /// Broadcast `seq` arrived at `client`.
    pub fn got_broadcast(&mut self, client: usize, seq: u32) {
        match self.broadcast_seen.get_mut(seq as usize) {
            Some(bits) if client < self.clients => {
                if !set_bit(bits, client) {
                    self.duplicates += 1;
                }
            }
            _ => self.unknown += 1,
        }
    }

    pub fn summary(&self) -> Summary {
        let ones = |bits: &[u64]| bits.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
        let pushes = self.push_to.len() as u64;
        let broadcasts = self.broadcast_seen.len() as u64;
        let delivered =
            ones(&self.push_seen) + self.broadcast_seen.iter().map(|b| ones(b)).sum::<u64>();
        Summary {
            pushes,
            broadcasts,
            expected: pushes + broadcasts * self.clients as u64,
            delivered,
            duplicates: self.duplicates,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_counted_once_and_copies_apart() {
        let mut t = Tally::new(100);
        for i in 0..130 {
            assert_eq!(t.push(i % 100), i as u32);
        }
        assert_eq!(t.broadcast(), 0);
        assert_eq!(t.broadcast(), 1);
        t.got_push(5, 5);
        t.got_push(5, 105);
        t.got_push(5, 105);
        t.got_push(6, 5);
        t.got_push(6, 500);
        for c in 0..100 {
            t.got_broadcast(c, 0);
        }
        t.got_broadcast(99, 1);
        t.got_broadcast(99, 1);
        t.got_broadcast(100, 1);
        t.got_broadcast(1, 2);
        let s = t.summary();
        assert_eq!(
            s,
            Summary {
                pushes: 130,
                broadcasts: 2,
                expected: 330,
                delivered: 2 + 100 + 1,
                duplicates: 2,
            }
        );
        assert_eq!((t.misrouted, t.unknown), (1, 3));
        assert!((s.delivered_percent() - 103.0 * 100.0 / 330.0).abs() < 1e-9);
    }
}
