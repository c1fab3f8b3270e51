//! xorshift64 (Marsaglia, shifts 13/7/17): a few instructions per number,
//! for jitter and for tests' reproducible inputs; not for anything secret.

/// The golden-ratio constant that spreads nearby seeds apart.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// A seed that differs between processes and starts, and between the
/// `stream`s of one process (its workers, its links), so that peers that
/// failed together do not retry in step.
pub(crate) fn seed(stream: u64) -> u64 {
    let start =
        (u64::from(std::process::id()) << 32) ^ crate::sys::monotonic_ms().wrapping_mul(SPREAD);
    start ^ stream.wrapping_add(1).wrapping_mul(SPREAD).rotate_left(17)
}

/// Advances `state` (which must not be 0) and returns the new value.
pub(crate) fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}
