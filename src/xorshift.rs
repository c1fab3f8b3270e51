//! xorshift64 (Marsaglia, shifts 13/7/17): a few instructions per number,
//! for jitter and for tests' reproducible inputs; not for anything secret.

/// Advances `state` (which must not be 0) and returns the new value.
pub(crate) fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}
