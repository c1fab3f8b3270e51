//! The codecs of a build without the `deflate` feature: herald then
//! declines every offer (see `Limits::deflate`), so no connection ever
//! sends or expects a compressed message and these are never reached.

use super::error::InflateError;
use crate::ws::frame::OpCode;

#[derive(Default)]
pub struct Inflater;

impl Inflater {
    pub fn inflated(&self) -> u64 {
        0
    }

    /// Refuses: nothing compressed is accepted without the feature.
    pub fn inflate(&mut self, _parts: &[&[u8]], _max: usize) -> Result<&[u8], InflateError> {
        Err(InflateError::Invalid)
    }
}

pub struct Deflater;

impl Deflater {
    pub fn new(_level: u8) -> Deflater {
        Deflater
    }
    /// Never compresses: the message goes uncompressed.
    pub fn frame(
        &mut self,
        _opcode: OpCode,
        _parts: &[&[u8]],
        _always: bool,
        _out: &mut Vec<u8>,
    ) -> bool {
        false
    }
}
