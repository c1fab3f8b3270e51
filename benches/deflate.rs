//! permessage-deflate micro-benchmarks: why zlib-rs, and where compression
//! stops paying. Each message is compressed on its own (no context
//! takeover), so the cost that matters is per message: the compressor's
//! reset plus the work on the bytes.
//!
//! - `deflate_1KiB_json/*`: one 1 KiB JSON push compressed by herald's
//!   `Deflater` (level 1: herald's own short-message encoder; level 6:
//!   zlib-rs), by zlib-rs directly (through flate2) and by miniz_oxide,
//!   the other well-kept pure-Rust deflate, at levels 1 and 6, each reset
//!   first.
//! - `inflate_1KiB_json/*`: the same message inflated by herald's
//!   `Inflater` and by miniz_oxide.
//! - `deflate_size/*`: herald's `Deflater` at level 1 (its own encoder up
//!   to 16 KiB, zlib-rs past it) and zlib-rs at level 1, 64 B to 64 KiB.
//!
//! Before measuring it prints what each compresses to, so that the bytes
//! saved sit beside the time spent. `cargo bench --bench deflate`; CI runs
//! `-- --test` (each once).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flate2::{Compress, Compression, FlushCompress};
use herald::ws::deflate::{Deflater, Inflater};
use herald::ws::frame::{Header, OpCode};
use miniz_oxide::deflate::core::{
    compress, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush,
};
use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use std::hint::black_box;
use std::time::Duration;

/// A push as backends send them: an object with an array of small objects.
fn json(n: usize) -> Vec<u8> {
    let mut s = String::from(r#"{"uid":"user-4711","items":["#);
    let mut i = 0;
    while s.len() + 20 < n {
        s.push_str(&format!(
            r#"{{"id":{i},"name":"item {}","price":{}.{:02},"tags":["new","sale"]}},"#,
            i * 7 % 13,
            10 + i * 3 % 50,
            i * 17 % 100
        ));
        i += 1;
    }
    s.pop();
    s.push_str(r#"],"seq":1}"#);
    s.truncate(n);
    s.into_bytes()
}

/// herald's compressed payload of `data` (the frame without its header).
fn herald_deflate(d: &mut Deflater, data: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    if !d.frame(OpCode::Text, &[data], true, out) {
        return data.len();
    }
    let (h, _) = Header::parse(out, false, u64::MAX >> 1).unwrap().unwrap();
    h.len as usize
}

/// zlib-rs's raw deflate of `data` with a sync flush, reset first.
fn zlib_deflate(c: &mut Compress, data: &[u8], out: &mut Vec<u8>) -> usize {
    c.reset();
    out.clear();
    c.compress_vec(data, out, FlushCompress::Sync)
        .expect("room for the whole message");
    out.len() - 4
}

/// miniz_oxide's raw deflate of `data` with a sync flush, reset first.
fn miniz_deflate(c: &mut CompressorOxide, data: &[u8], out: &mut [u8]) -> usize {
    c.reset();
    let (_, _, n) = compress(c, data, out, TDEFLFlush::Sync);
    n - 4
}

fn miniz_inflate(d: &mut DecompressorOxide, z: &[u8], out: &mut [u8]) -> usize {
    d.init();
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF
        | inflate_flags::TINFL_FLAG_HAS_MORE_INPUT;
    let (_, _, n) = decompress(d, z, out, 0, flags);
    n
}

fn print_sizes() {
    let mut d = Deflater::new(1);
    let mut out = Vec::new();
    let mut z = Compress::new(Compression::new(1), false);
    let mut zbuf = Vec::with_capacity(64 * 1024);
    eprintln!("permessage-deflate, level 1, JSON push -> herald's payload bytes (zlib-rs's):");
    for n in [64, 128, 256, 512, 1024, 4096, 16384, 65536] {
        let h = herald_deflate(&mut d, &json(n), &mut out);
        eprintln!(
            "  {n:>6} -> {h:>5} ({:.0}% of the original; zlib-rs {})",
            100.0 * h as f64 / n as f64,
            zlib_deflate(&mut z, &json(n), &mut zbuf)
        );
    }
    let data = json(1024);
    let mut buf = vec![0u8; 4096];
    for level in [1, 6] {
        let mut dz = Deflater::new(level);
        let mut z = Compress::new(Compression::new(level.into()), false);
        let mut c = CompressorOxide::new(create_comp_flags_from_zip_params(level.into(), -15, 0));
        eprintln!(
            "  1 KiB at level {level}: herald {} B, zlib-rs {} B, miniz_oxide {} B",
            herald_deflate(&mut dz, &data, &mut out),
            zlib_deflate(&mut z, &data, &mut zbuf),
            miniz_deflate(&mut c, &data, &mut buf)
        );
    }
}

fn deflate_1kib(c: &mut Criterion) {
    print_sizes();
    let data = json(1024);
    let mut g = c.benchmark_group("deflate_1KiB_json");
    g.throughput(Throughput::Bytes(data.len() as u64));
    for level in [1u8, 6] {
        let mut d = Deflater::new(level);
        let mut out = Vec::new();
        g.bench_function(BenchmarkId::new("herald", format!("L{level}")), |b| {
            b.iter(|| herald_deflate(&mut d, black_box(&data), &mut out))
        });
        let mut z = Compress::new(Compression::new(level.into()), false);
        let mut zbuf = Vec::with_capacity(4096);
        g.bench_function(BenchmarkId::new("zlib-rs", format!("L{level}")), |b| {
            b.iter(|| zlib_deflate(&mut z, black_box(&data), &mut zbuf))
        });
        let mut m = CompressorOxide::new(create_comp_flags_from_zip_params(level.into(), -15, 0));
        let mut buf = vec![0u8; 4096];
        g.bench_function(BenchmarkId::new("miniz_oxide", format!("L{level}")), |b| {
            b.iter(|| miniz_deflate(&mut m, black_box(&data), &mut buf))
        });
    }
    g.finish();
}

fn inflate_1kib(c: &mut Criterion) {
    let data = json(1024);
    let mut out = Vec::new();
    let n = herald_deflate(&mut Deflater::new(1), &data, &mut out);
    let z = out[out.len() - n..].to_vec();
    let mut g = c.benchmark_group("inflate_1KiB_json");
    g.throughput(Throughput::Bytes(data.len() as u64));
    let mut inf = Inflater::default();
    g.bench_function("zlib-rs", |b| {
        b.iter(|| inf.inflate(&[black_box(&z)], 1 << 20).map(<[u8]>::len))
    });
    let mut d = DecompressorOxide::new();
    let mut buf = vec![0u8; 4096];
    // miniz_oxide wants the sync tail back, as a receiver adds it.
    let mut zt = z.clone();
    zt.extend_from_slice(&[0, 0, 0xff, 0xff]);
    g.bench_function("miniz_oxide", |b| {
        b.iter(|| miniz_inflate(&mut d, black_box(&zt), &mut buf))
    });
    g.finish();
}

fn deflate_size(c: &mut Criterion) {
    let mut g = c.benchmark_group("deflate_size");
    let mut d = Deflater::new(1);
    let mut out = Vec::new();
    let mut z = Compress::new(Compression::new(1), false);
    let mut zbuf = Vec::with_capacity(128 * 1024);
    for n in [64, 128, 256, 512, 1024, 4096, 16384, 65536] {
        let data = json(n);
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_function(BenchmarkId::new("herald", n), |b| {
            b.iter(|| herald_deflate(&mut d, black_box(&data), &mut out))
        });
        g.bench_function(BenchmarkId::new("zlib-rs", n), |b| {
            b.iter(|| zlib_deflate(&mut z, black_box(&data), &mut zbuf))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = deflate_1kib, inflate_1kib, deflate_size
}
criterion_main!(benches);
