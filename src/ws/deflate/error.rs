//! How inflating a client message can fail.

/// Why a compressed client message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates past the message cap (close code 1009).
    TooBig,
    /// It is not valid deflate data, or is cut short (close code 1007).
    Invalid,
}
