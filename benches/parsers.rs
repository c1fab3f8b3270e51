//! Parser micro-benchmarks: WebSocket frame decoding and unmasking, text-port
//! line splitting and command decoding, the opening handshake.
//!
//! `cargo bench --bench parsers` takes about a minute; `-- --test` runs each
//! benchmark once (CI does), `-- ws_decode` runs one group.

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use herald::line::{self, Line};
use herald::push::command;
use herald::ws::frame::{self, OpCode};
use herald::ws::{self, handshake, Event};
use std::hint::black_box;
use std::time::Duration;

/// Payload sizes of the frame benchmarks: a push, a page, a big message, the
/// default message limit.
const SIZES: [(usize, &str); 4] = [
    (64, "64B"),
    (4 << 10, "4KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
];

/// The seed's push line.
const SEED_LINE: &[u8] = br#"{"uid":"uid1","percent":"88%"}"#;

/// What Chromium sends to open `new WebSocket('ws://127.0.0.1:1234')`.
const BROWSER_REQUEST: &[u8] = b"GET / HTTP/1.1\r\n\
Host: 127.0.0.1:1234\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: http://127.0.0.1:8080\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

/// About 1 MiB of masked frames of `size` payload bytes each (at least one).
fn masked_frames(opcode: OpCode, size: usize) -> (Vec<u8>, usize) {
    let count = ((1 << 20) / size).max(1);
    // ASCII text: valid UTF-8, as a push usually is.
    let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut wire = Vec::with_capacity(count * (size + 14));
    for i in 0..count {
        let mask = (i as u32).wrapping_mul(2_654_435_761).to_ne_bytes();
        frame::encode_masked(true, opcode, &payload, mask, &mut wire);
    }
    (wire, count * size)
}

/// `ws::decode::next` over a buffer of whole masked frames (it unmasks in place, so
/// each iteration gets a fresh copy, made outside the timing).
fn ws_decode(c: &mut Criterion) {
    for (opcode, name) in [
        (OpCode::Text, "ws_decode_text"),
        (OpCode::Binary, "ws_decode_binary"),
    ] {
        let mut g = c.benchmark_group(name);
        for (size, label) in SIZES {
            let (wire, payload_bytes) = masked_frames(opcode, size);
            g.throughput(Throughput::Bytes(payload_bytes as u64));
            g.sampling_mode(SamplingMode::Flat);
            g.bench_with_input(BenchmarkId::from_parameter(label), &wire, |b, wire| {
                b.iter_batched_ref(
                    || wire.clone(),
                    |buf| {
                        let mut state: Option<Box<ws::Partial>> = None;
                        let mut got = 0usize;
                        let mut pos = 0;
                        while let (used, Some(ev)) =
                            ws::decode::next(&mut state, &mut buf[pos..], 1 << 20, None)
                                .expect("frames are valid")
                        {
                            pos += used;
                            got += match ev {
                                Event::Text(t) => t.len(),
                                Event::Binary(b) => b.len(),
                                _ => 0,
                            };
                        }
                        assert_eq!(got, payload_bytes);
                        black_box(got)
                    },
                    BatchSize::LargeInput,
                )
            });
        }
        g.finish();
    }
}

/// `frame::unmask` alone (XOR is its own inverse: repeating it is fine).
fn unmask(c: &mut Criterion) {
    let mut g = c.benchmark_group("unmask");
    for (size, label) in SIZES {
        let mut buf: Vec<u8> = (0..size).map(|i| i as u8).collect();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| frame::unmask(black_box(&mut buf), [0x12, 0x34, 0x56, 0x78], 0))
        });
    }
    g.finish();
}

/// `line::next` over 1 MiB of pipelined seed lines, fed in 64 KiB reads as
/// the reactor does (so lines straddle reads).
fn split_lines(c: &mut Criterion) {
    let mut data = Vec::with_capacity((1 << 20) + 64);
    let mut lines = 0usize;
    while data.len() < 1 << 20 {
        data.extend_from_slice(SEED_LINE);
        data.push(b'\n');
        lines += 1;
    }
    let mut g = c.benchmark_group("line_split");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("seed_lines_64KiB_reads", |b| {
        b.iter(|| {
            let mut state: Option<Box<line::LineState>> = None;
            let mut n = 0usize;
            for chunk in data.chunks(64 << 10) {
                let mut pos = 0;
                while let (used, Some(l)) = line::next(&mut state, &chunk[pos..], 64 << 10) {
                    pos += used;
                    if let Line::Complete(l) = l {
                        n += l.len().min(1);
                    }
                }
            }
            assert_eq!(n, lines);
            black_box(n)
        })
    });
    g.finish();
}

/// A push line of about 1 KiB as `herald-bench push --json 1024` sends
/// them: a uid, then a catalog of small objects.
fn json_push_line() -> Vec<u8> {
    let mut line = String::from(r#"{"uid":"u4711","type":"catalog.update","seq":1,"items":["#);
    for i in 0..7u32 {
        line.push_str(&format!(
            r#"{{"id":{},"name":"Laptop stand","category":"office","price":{{"amount":{}.49,"currency":"EUR"}},"in_stock":{},"tags":["sale","new"]}},"#,
            10_000 + i * 37,
            1 + i * 13 % 100,
            i % 4 != 0
        ));
    }
    line.pop();
    line.push_str("]}");
    line.into_bytes()
}

fn parse_command(c: &mut Criterion) {
    let mut g = c.benchmark_group("command_parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("seed_line", |b| {
        b.iter(|| {
            let cmd = command::parse(black_box(SEED_LINE)).expect("the seed line parses");
            black_box(cmd)
        })
    });
    let json = json_push_line();
    g.bench_function(format!("json_push_{}B", json.len()), |b| {
        b.iter(|| {
            let cmd = command::parse(black_box(&json)).expect("the JSON line parses");
            black_box(cmd)
        })
    });
    g.finish();
}

fn opening_handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_browser_request", |b| {
        b.iter(|| {
            let a = handshake::parse(black_box(BROWSER_REQUEST), 8192)
                .expect("valid request")
                .expect("complete request");
            black_box(a)
        })
    });
    g.bench_function("accept_key", |b| {
        b.iter(|| handshake::accept_key(black_box(b"dGhlIHNhbXBsZSBub25jZQ==")))
    });
    g.finish();
}

/// Short runs: the suite finishes in about a minute on a quiet machine.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = parsers;
    config = config();
    targets = ws_decode, unmask, split_lines, parse_command, opening_handshake
}
criterion_main!(parsers);
