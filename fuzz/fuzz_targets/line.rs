//! `line::next` pulled over arbitrary reads against a reference splitter, with the
//! state kept between reads bounded by max_line.
//!
//! Input: max_line selector (1-64, or 4096 when the top bit is set), four
//! read sizes (0 = all the rest), then the bytes.
#![no_main]

use herald::line::{self, Line, LineState};
use herald_fuzz::{chunks, live_bytes};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Want {
    Complete(Vec<u8>),
    TooLong,
}

/// The specification: lines end at `\n`; one `\r` before it is dropped; a
/// line longer than max_line (counting that `\r`) is one TooLong, also when
/// its newline never comes.
fn reference(data: &[u8], max_line: usize) -> Vec<Want> {
    let mut out = Vec::new();
    let mut parts: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let unfinished = parts.pop().unwrap_or_default();
    for l in parts {
        out.push(if l.len() > max_line {
            Want::TooLong
        } else {
            Want::Complete(l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        });
    }
    if unfinished.len() > max_line {
        out.push(Want::TooLong);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (cfg, bytes) = data.split_at(5);
    let max_line = if cfg[0] & 0x80 != 0 {
        4096
    } else {
        (cfg[0] & 63) as usize + 1
    };
    let want = reference(bytes, max_line);

    // Compare in place, so that nothing here allocates while the
    // live-heap figure measures the splitter's state.
    let mut seen = 0;
    let mut state: Option<Box<LineState>> = None;
    let reads = chunks(bytes, &cfg[1..5]);
    let baseline = live_bytes();
    for read in reads.iter().copied() {
        let mut rest = read;
        loop {
            let (used, found) = line::next(&mut state, rest, max_line);
            let Some(l) = found else {
                assert_eq!(used, rest.len(), "no line, yet bytes left over");
                break;
            };
            let ok = match (&l, want.get(seen)) {
                (Line::Complete(got), Some(Want::Complete(w))) => got == w,
                (Line::TooLong, Some(Want::TooLong)) => true,
                _ => false,
            };
            assert!(ok, "line {seen}: got {l:?}, want {:?}", want.get(seen));
            seen += 1;
            rest = &rest[used..];
        }
        let held = live_bytes().saturating_sub(baseline);
        let bound = std::mem::size_of::<LineState>() + 2 * max_line + 16;
        assert!(
            held <= bound,
            "{held} bytes held between reads with max_line {max_line}"
        );
    }
    assert_eq!(seen, want.len(), "lines missing: {:?}", &want[seen..]);
    let ends_in_newline = bytes.last().is_none_or(|&b| b == b'\n');
    assert_eq!(state.is_none(), ends_in_newline, "state kept: {state:?}");
});
