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
/// the reactor's `Context` between sends. The head may change between
/// recipients (it names each uid's stream) while the plain forms, made once,
/// serve every recipient of the message.
pub(crate) struct Frames<'m> {
    text: &'m str,
    /// A head is set: the tagged forms hold `bufs[4]` then the text.
    tagged: bool,
    /// Plain, tagged, compressed plain, compressed tagged; then the head.
    bufs: [Vec<u8>; 5],
    made: [Made; 4],
    /// Compressions done (for the statistics).
    compressed: u64,
}

impl<'m> Frames<'m> {
    pub(super) fn new(mut bufs: [Vec<u8>; 5], head: Option<&[u8]>, text: &'m str) -> Frames<'m> {
        bufs.iter_mut().for_each(Vec::clear);
        let mut f = Frames {
            text,
            tagged: false,
            bufs,
            made: [Made::No; 4],
            compressed: 0,
        };
        f.set_head(head);
        f
    }

    /// Sets the head of the tagged forms (made again when next needed); the
    /// plain forms stay.
    pub(super) fn set_head(&mut self, head: Option<&[u8]>) {
        self.tagged = head.is_some();
        self.bufs[4].clear();
        self.bufs[4].extend_from_slice(head.unwrap_or_default());
        for i in [1, 3] {
            self.made[i] = Made::No;
            self.bufs[i].clear();
        }
    }

    /// The frame for a recipient that takes the head (`sub`) and
    /// compressed frames (`z`), encoded now if it is the first to need it.
    pub(super) fn get(&mut self, sub: bool, z: bool, c: &mut Compression) -> &[u8] {
        let tagged = sub && self.tagged;
        let mut i = usize::from(tagged);
        let (forms, head) = self.bufs.split_at_mut(4);
        let head: &[u8] = if tagged { &head[0] } else { b"" };
        if z {
            if self.made[i + 2] == Made::No {
                let parts = [head, self.text.as_bytes()];
                let done = c.frame(OpCode::Text, &parts, &mut forms[i + 2]);
                self.compressed += u64::from(done);
                self.made[i + 2] = if done { Made::Yes } else { Made::Plain };
            }
            if self.made[i + 2] == Made::Yes {
                i += 2;
            }
        }
        if self.made[i] == Made::No {
            encode(&mut forms[i], head, self.text);
            self.made[i] = Made::Yes;
        }
        &forms[i]
    }

    /// How many compressions were done (for the statistics).
    pub(super) fn compressed(&self) -> u64 {
        self.compressed
    }

    pub(super) fn into_bufs(self) -> [Vec<u8>; 5] {
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
