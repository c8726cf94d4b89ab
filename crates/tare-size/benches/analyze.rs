//! Analysis speed on a generated image: 1 GB in 50,000 files over 5 gzip layers (sizes and
//! counts adjustable with TARE_BENCH_BYTES, TARE_BENCH_FILES, TARE_BENCH_LAYERS, and the
//! compression with TARE_BENCH_COMPRESSION=gzip|zstd|none; tare build stores uncompressed).
//!
//! Prints, measured in the same run: the time to just decompress every layer (the floor for
//! anything that reads the tars), the first analysis (indexes built and cached), and later
//! analyses (cached indexes), with their ratios. `cargo bench -p tare-size --bench analyze`.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use tare_layer::{Compression, LayerSink};
use tare_store::config::{History, ImageConfig};
use tare_store::{LayerInfo, Store};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| tare_size::parse_size(&v).ok())
        .unwrap_or(default)
}

/// Deterministic content: half pseudo-random (incompressible), half text-like.
fn fill(buf: &mut [u8], seed: &mut u64) {
    let half = buf.len() / 2;
    for chunk in buf[..half].chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let b = seed.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    for (i, b) in buf[half..].iter_mut().enumerate() {
        *b = b"abcdefghij klmnopqrstuvwxyz\n"[(i + (*seed as usize)) % 28];
    }
}

fn main() {
    let total = env("TARE_BENCH_BYTES", 1 << 30);
    let files = env("TARE_BENCH_FILES", 50_000);
    let layers = env("TARE_BENCH_LAYERS", 5).max(1);
    let compression: Compression = std::env::var("TARE_BENCH_COMPRESSION")
        .unwrap_or_else(|_| "gzip".into())
        .parse()
        .expect("TARE_BENCH_COMPRESSION: gzip, zstd or none");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store");

    let t = Instant::now();
    let mut infos: Vec<LayerInfo> = Vec::new();
    let mut seed = 0x9e3779b97f4a7c15u64;
    let per_layer = files / layers;
    // Sizes: most files small, a few large, summing to `total`: file i gets a weight.
    let weight = |i: u64| {
        if i.is_multiple_of(100) {
            40
        } else {
            1 + (i % 7)
        }
    };
    let weights: u64 = (0..files).map(weight).sum();
    let unit = total / weights.max(1);
    let mut buf = vec![0u8; (unit * 40) as usize + 1];
    for l in 0..layers {
        let sink = LayerSink::new(&store, compression).expect("sink");
        let mut b = tar::Builder::new(sink);
        for j in 0..per_layer {
            let i = l * per_layer + j;
            // Every later layer rewrites 2% of the first layer's files (waste to find).
            let path = if l > 0 && j % 50 == l {
                format!("usr/lib/l0/d{}/f{}", (j / 100) % 100, j)
            } else {
                format!("usr/lib/l{l}/d{}/f{j}", (j / 100) % 100)
            };
            let size = (unit * weight(i)) as usize;
            fill(&mut buf[..size], &mut seed);
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(size as u64);
            b.append_data(&mut h, &path, &buf[..size]).expect("append");
        }
        let mut sink = b.into_inner().expect("tar end");
        sink.flush().expect("flush");
        infos.push(sink.finish().expect("layer"));
    }
    let mut config = ImageConfig::new_for_host();
    config.rootfs.diff_ids = infos.iter().map(|l| l.diff_id).collect();
    config.history = (0..layers)
        .map(|l| History {
            created_by: Some(format!("RUN generate layer {l}")),
            ..History::default()
        })
        .collect();
    let image = store
        .commit_image(&config, &infos, &[], None)
        .expect("commit");
    let uncompressed: u64 = infos.iter().map(|l| l.size).sum();
    let compressed: u64 = infos.iter().map(|l| l.compressed_size).sum();
    eprintln!(
        "generated {} layers, {} files, {:.2} GB uncompressed, {:.2} GB {compression}, in {:.1?}",
        layers,
        per_layer * layers,
        uncompressed as f64 / 1e9,
        compressed as f64 / 1e9,
        t.elapsed()
    );

    // The floor: decompressing every layer, in parallel like the analysis.
    let floor = time(|| {
        std::thread::scope(|s| {
            for l in &infos {
                let store = &store;
                s.spawn(move || {
                    let mut r = tare_layer::open_layer(store, l).expect("open");
                    let mut buf = vec![0u8; 1 << 20];
                    while r.read(&mut buf).expect("read") > 0 {}
                });
            }
        })
    });
    let mut analysis = None;
    let cold = time(|| analysis = Some(tare_size::analyze(&store, &image).expect("analyze")));
    let mut warm = Vec::new();
    for _ in 0..5 {
        warm.push(time(|| {
            tare_size::analyze(&store, &image).expect("analyze");
        }));
    }
    warm.sort();
    let warm = warm[warm.len() / 2];
    let a = analysis.expect("analysis");
    println!(
        "image: {:.2} GB, {} files, {} layers; wasted found: {:.1} MB in {} files",
        a.image_size as f64 / 1e9,
        per_layer * layers,
        layers,
        a.wasted_bytes as f64 / 1e6,
        a.wasted.len()
    );
    println!(
        "decompress only (floor):     {:>8.3} s",
        floor.as_secs_f64()
    );
    println!(
        "analyze, first (indexing):   {:>8.3} s  ({:.2}x the floor)",
        cold.as_secs_f64(),
        cold.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "analyze, cached (median/5):  {:>8.3} s  ({:.3}x the floor)",
        warm.as_secs_f64(),
        warm.as_secs_f64() / floor.as_secs_f64()
    );
}

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}
