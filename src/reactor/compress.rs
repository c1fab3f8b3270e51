//! permessage-deflate in the reactor: the server's one inflater (lent to
//! whichever connection is being read), its one deflater, and [`Frames`],
//! the forms one outgoing message may take, each encoded at most once per
//! send however many recipients take it.

use crate::limits::Deflate;
use crate::ws::deflate::{Deflater, Inflater};
use crate::ws::frame::{FrameHead, OpCode};

/// The server's compression state: two codecs, whatever the number of
/// connections.
pub(super) struct Compression {
    settings: Option<Deflate>,
    inflater: Option<Box<Inflater>>,
    deflater: Option<Box<Deflater>>,
}

impl Compression {
    pub fn new(settings: Option<Deflate>) -> Compression {
        Compression {
            settings,
            inflater: None,
            deflater: None,
        }
    }

    /// Whether offers are negotiated at all.
    pub fn enabled(&self) -> bool {
        self.settings.is_some()
    }

    /// The inflater, lent for one read; give it back with
    /// [`Compression::give_back`]. Made on first use.
    pub fn lend(&mut self) -> Box<Inflater> {
        self.inflater.take().unwrap_or_default()
    }

    pub fn give_back(&mut self, inflater: Box<Inflater>) {
        self.inflater = Some(inflater);
    }

    /// Compressed client messages inflated (refused ones included).
    pub fn inflated(&self) -> u64 {
        self.inflater.as_ref().map_or(0, |i| i.inflated())
    }

    /// Appends the compressed frame of `parts` to `out`. False, with
    /// nothing appended, when the message is under the size threshold or
    /// would not shrink: it then goes uncompressed.
    pub fn frame(&mut self, opcode: OpCode, parts: &[&[u8]], out: &mut Vec<u8>) -> bool {
        let Some(s) = self.settings else {
            return false;
        };
        if parts.iter().map(|p| p.len()).sum::<usize>() < s.min_size {
            return false;
        }
        self.deflater
            .get_or_insert_with(|| Box::new(Deflater::new(s.level)))
            .frame(opcode, parts, s.min_size == 0, out)
    }
}

/// Whether a form of the message is encoded yet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Made {
    No,
    Yes,
    /// Compression does not pay for this one: send the uncompressed form.
    Plain,
}

/// The forms of one text message: plain or compressed, with or without the
/// herald.v1 head (`head` then `text` as one message). Buffers are kept in
/// the reactor's `Context` between sends.
pub(super) struct Frames<'m> {
    head: Option<&'m [u8]>,
    text: &'m str,
    /// Plain, tagged, compressed plain, compressed tagged.
    bufs: [Vec<u8>; 4],
    made: [Made; 4],
}

impl<'m> Frames<'m> {
    pub fn new(mut bufs: [Vec<u8>; 4], head: Option<&'m [u8]>, text: &'m str) -> Frames<'m> {
        bufs.iter_mut().for_each(Vec::clear);
        Frames {
            head,
            text,
            bufs,
            made: [Made::No; 4],
        }
    }

    /// The frame for a recipient that takes the head (`sub`) and
    /// compressed frames (`z`), encoded now if it is the first to need it.
    pub fn get(&mut self, sub: bool, z: bool, c: &mut Compression) -> &[u8] {
        let tagged = sub && self.head.is_some();
        let mut i = usize::from(tagged);
        let head = if tagged {
            self.head.unwrap_or_default()
        } else {
            b""
        };
        if z {
            if self.made[i + 2] == Made::No {
                let parts = [head, self.text.as_bytes()];
                let done = c.frame(OpCode::Text, &parts, &mut self.bufs[i + 2]);
                self.made[i + 2] = if done { Made::Yes } else { Made::Plain };
            }
            if self.made[i + 2] == Made::Yes {
                i += 2;
            }
        }
        if self.made[i] == Made::No {
            encode(&mut self.bufs[i], head, self.text);
            self.made[i] = Made::Yes;
        }
        &self.bufs[i]
    }

    /// How many compressed forms were made (for the statistics).
    pub fn compressed(&self) -> u64 {
        self.made[2..].iter().filter(|&&m| m == Made::Yes).count() as u64
    }

    pub fn into_bufs(self) -> [Vec<u8>; 4] {
        self.bufs
    }
}

/// Appends one text frame holding `head` then `text`.
pub(super) fn encode(out: &mut Vec<u8>, head: &[u8], text: &str) {
    let len = head.len() + text.len();
    out.reserve(len + 14);
    out.extend_from_slice(FrameHead::new(OpCode::Text, len).as_bytes());
    out.extend_from_slice(head);
    out.extend_from_slice(text.as_bytes());
}
