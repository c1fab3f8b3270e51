//! permessage-deflate (RFC 7692) on the client side: the offer, the check
//! of the server's answer, and the inflater of compressed messages.
//!
//! Only servers that keep no compression context between messages
//! (`server_no_context_takeover`, what herald and uWS' shared compressor
//! answer) are followed: each message is inflated on its own with one
//! decompressor shared by the whole fleet, so thousands of clients cost no
//! window each. The inflater is miniz_oxide, independent of the zlib-rs
//! herald compresses with.

use miniz_oxide::inflate::core::inflate_flags::{
    TINFL_FLAG_HAS_MORE_INPUT, TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
};
use miniz_oxide::inflate::core::{decompress, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;
use std::borrow::Cow;

/// The offer, as Chromium sends it.
pub const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// What a sender strips from the end of each compressed message and the
/// receiver appends again (RFC 7692 section 7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Raw deflate (no zlib header), the whole message in one output buffer
/// (so that back-references reach into it), input given in two parts.
const FLAGS: u32 = TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF | TINFL_FLAG_HAS_MORE_INPUT;

/// The output buffer's first size; it grows (and stays grown) as messages
/// need.
const FIRST_OUT: usize = 64 * 1024;

/// Whether the server's 101 accepted the offer: `values` are its
/// `Sec-WebSocket-Extensions` header values, `offered` whether the request
/// carried [`OFFER`]. An answer that RFC 7692 forbids, or one this client
/// cannot follow (the server keeps its context), is an error.
pub fn accepted(values: &[&str], offered: bool) -> Result<bool, Cow<'static, str>> {
    let mut elements = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let Some(first) = elements.next() else {
        return Ok(false);
    };
    let shown = |e: &str| -> String { e.chars().take(120).collect() };
    if !offered {
        return Err(format!(
            "the server answered with an extension not offered: {:?}",
            shown(first)
        )
        .into());
    }
    if let Some(more) = elements.next() {
        return Err(format!(
            "the server answered with a second extension: {:?}",
            shown(more)
        )
        .into());
    }
    let mut params = first.split(';').map(str::trim);
    if !params
        .next()
        .is_some_and(|n| n.eq_ignore_ascii_case("permessage-deflate"))
    {
        return Err(format!(
            "the server answered with an extension not offered: {:?}",
            shown(first)
        )
        .into());
    }
    let names = [
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    ];
    let mut seen = [false; 4];
    for p in params {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (p, None),
        };
        let bad = || {
            format!(
                "permessage-deflate: bad parameter {:?} in the server's answer",
                shown(p)
            )
        };
        let which = names
            .iter()
            .position(|n| name.eq_ignore_ascii_case(n))
            .ok_or_else(bad)?;
        let value_ok = match (which, value) {
            (0 | 1, None) => true,
            (2 | 3, Some(v)) => v.parse::<u8>().is_ok_and(|b| (8..=15).contains(&b)),
            _ => false,
        };
        if !value_ok || std::mem::replace(&mut seen[which], true) {
            return Err(bad().into());
        }
    }
    if !seen[0] {
        return Err(
            "the server keeps its compression context across messages (no \
                    server_no_context_takeover in its answer): herald-bench inflates \
                    each message on its own and cannot follow it"
                .into(),
        );
    }
    Ok(true)
}

/// Inflates compressed messages one at a time, each from a fresh state
/// (no context takeover), into one buffer reused for every message.
///
/// A message whose compressed bytes are those of the message before is not
/// inflated again (the same input gives the same output): a broadcast
/// compressed once reaches every client as the same bytes, and inflating
/// each copy would make the load tool, not the server, the bottleneck.
pub struct Inflater {
    state: Box<DecompressorOxide>,
    out: Vec<u8>,
    /// The largest inflated message accepted.
    max: usize,
    /// The compressed payload of the message in `out[..last_len]`, when the
    /// last call succeeded.
    last_in: Vec<u8>,
    last_len: Option<usize>,
}

impl Inflater {
    pub fn new(max: usize) -> Inflater {
        Inflater {
            state: Box::default(),
            out: vec![0; FIRST_OUT.min(max.max(1))],
            max,
            last_in: Vec::new(),
            last_len: None,
        }
    }

    /// The message whose compressed payload (RSV1 set, the tail stripped)
    /// is `payload`, valid until the next call.
    pub fn message(&mut self, payload: &[u8]) -> Result<&[u8], Cow<'static, str>> {
        match self.last_len {
            Some(len) if self.last_in == payload => return Ok(&self.out[..len]),
            _ => self.last_len = None,
        }
        let len = self.inflate(payload)?;
        self.last_in.clear();
        self.last_in.extend_from_slice(payload);
        self.last_len = Some(len);
        Ok(&self.out[..len])
    }

    /// Inflates `payload` into `out` and returns the length.
    fn inflate(&mut self, payload: &[u8]) -> Result<usize, Cow<'static, str>> {
        self.state.init();
        let mut written = 0;
        for (part, mut input) in [payload, &TAIL[..]].into_iter().enumerate() {
            loop {
                let (status, used, n) =
                    decompress(&mut self.state, input, &mut self.out, written, FLAGS);
                input = &input[used..];
                written += n;
                match status {
                    // All of this part taken: on to the next.
                    TINFLStatus::NeedsMoreInput => break,
                    TINFLStatus::HasMoreOutput => self.grow()?,
                    // A final block (BFINAL set): the tail is not needed.
                    TINFLStatus::Done if part == 1 || input.is_empty() => return Ok(written),
                    TINFLStatus::Done => {
                        return Err("compressed message: bytes after its final deflate block".into())
                    }
                    other => {
                        return Err(
                            format!("compressed message does not inflate ({other:?})").into()
                        )
                    }
                }
            }
        }
        Ok(written)
    }

    fn grow(&mut self) -> Result<(), Cow<'static, str>> {
        if self.out.len() >= self.max {
            return Err(format!("compressed message inflates past {} bytes", self.max).into());
        }
        let len = (self.out.len() * 2).min(self.max);
        self.out.resize(len, 0);
        Ok(())
    }
}

/// Compresses `message` as a permessage-deflate sender with no context
/// takeover does: raw deflate, a sync flush, the tail stripped.
#[cfg(test)]
pub fn compress(message: &[u8]) -> Vec<u8> {
    use miniz_oxide::deflate::core::{
        compress, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush,
    };
    let mut c = CompressorOxide::new(create_comp_flags_from_zip_params(6, -15, 0));
    let mut out = vec![0; message.len() + 1024];
    let (_, used, n) = compress(&mut c, message, &mut out, TDEFLFlush::Sync);
    assert_eq!(used, message.len());
    out.truncate(n);
    assert!(out.ends_with(&TAIL));
    out.truncate(n - TAIL.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_as_rfc_7692_asks() {
        let herald = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        assert_eq!(accepted(&[herald], true), Ok(true));
        assert_eq!(accepted(&[], true), Ok(false));
        assert_eq!(accepted(&[], false), Ok(false));
        let windows = "permessage-deflate;server_no_context_takeover; server_max_window_bits=15; \
                       client_max_window_bits=\"10\"";
        let bare = "permessage-deflate; server_no_context_takeover; client_max_window_bits";
        assert_eq!(accepted(&[windows], true), Ok(true));
        let err = |values: &[&str], offered| accepted(values, offered).unwrap_err();
        assert!(err(&[herald], false).contains("not offered"));
        assert!(err(&["x-webkit-deflate-frame"], true).contains("not offered"));
        assert!(err(&[herald, herald], true).contains("second"));
        assert!(err(
            &["permessage-deflate; server_no_context_takeover; foo"],
            true
        )
        .contains("foo"));
        let twice = "permessage-deflate; server_no_context_takeover; server_no_context_takeover";
        assert!(err(&[twice], true).contains("bad parameter"));
        let small = "permessage-deflate; server_no_context_takeover; server_max_window_bits=7";
        assert!(err(&[small], true).contains("bad parameter"));
        assert!(err(&[bare], true).contains("bad parameter"));
        let kept = "permessage-deflate; client_no_context_takeover";
        assert!(err(&[kept], true).contains("context"));
    }

    #[test]
    fn messages_inflate_each_on_its_own_into_one_buffer() {
        let mut inf = Inflater::new(1 << 20);
        let text = br#"{"id":1,"name":"Desk lamp","tags":["sale"]}"#.repeat(40);
        for m in [&text[..], b"", b"short", &text[..]] {
            assert_eq!(inf.message(&compress(m)).unwrap(), m);
        }
        // Bigger than the first buffer: it grows and stays grown.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        assert_eq!(inf.message(&compress(&big)).unwrap(), &big[..]);
        assert!(inf.out.len() >= big.len());
        // A final block (BFINAL set) needs no tail.
        let fin = miniz_oxide::deflate::compress_to_vec(&text, 6);
        assert_eq!(inf.message(&fin).unwrap(), &text[..]);
    }

    #[test]
    fn the_same_compressed_bytes_are_inflated_once() {
        let mut inf = Inflater::new(1 << 20);
        let (a, b) = (compress(b"first message"), compress(b"second message"));
        assert_eq!(inf.message(&a).unwrap(), b"first message");
        inf.out[0] = b'F'; // what a second inflation would overwrite
        assert_eq!(inf.message(&a).unwrap(), b"First message");
        assert_eq!(inf.message(&b).unwrap(), b"second message");
        assert_eq!(inf.message(&a).unwrap(), b"first message");
        // A failure forgets the last message.
        assert!(inf.message(&[0xff; 4]).is_err());
        assert!(inf.last_len.is_none());
    }

    #[test]
    fn broken_or_oversized_messages_are_refused() {
        let mut inf = Inflater::new(1000);
        assert!(inf.message(&[0xff; 16]).is_err());
        let why = inf.message(&compress(&[b'a'; 5000])).unwrap_err();
        assert!(why.contains("past 1000"), "{why}");
        let mut fin = miniz_oxide::deflate::compress_to_vec(b"hello", 6);
        fin.push(0);
        assert!(inf.message(&fin).unwrap_err().contains("after its final"));
        // Still usable afterwards.
        assert_eq!(inf.message(&compress(b"again")).unwrap(), b"again");
    }
}
