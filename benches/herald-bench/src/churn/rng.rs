//! A small seeded random generator (xorshift64*): the same `--seed` gives
//! the same targets, drop times and reconnect delays, run after run.

use std::time::Duration;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so that small seeds start well mixed; never 0.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// Uniform in [0, max].
    pub fn upto(&mut self, max: Duration) -> Duration {
        max.mul_f64(self.unit())
    }

    /// Exponentially distributed with mean `mean`: the time to the next
    /// event of a process that happens on average every `mean`.
    pub fn exp(&mut self, mean: Duration) -> Duration {
        mean.mul_f64(-(1.0 - self.unit()).ln())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_have_the_asked_shape() {
        let mut r = Rng::new(1);
        let n = 100_000;
        let mean = Duration::from_secs(15);
        let total: f64 = (0..n).map(|_| r.exp(mean).as_secs_f64()).sum();
        assert!(
            (total / n as f64 - 15.0).abs() < 0.3,
            "{}",
            total / n as f64
        );
        let mut hist = [0usize; 4];
        for _ in 0..n {
            hist[r.below(4)] += 1;
        }
        assert!(hist
            .iter()
            .all(|&h| (h as f64 - n as f64 / 4.0).abs() < 1000.0));
        let heads = (0..n).filter(|_| r.coin()).count();
        assert!((heads as f64 - n as f64 / 2.0).abs() < 1000.0);
        assert!((0..n).all(|_| r.upto(Duration::from_secs(2)) <= Duration::from_secs(2)));
        assert_eq!(Rng::new(7).next_u64(), Rng::new(7).next_u64());
    }
}
