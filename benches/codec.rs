//! ETP codec, secret masking and config identity throughput.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use isp_cluster::etp::Event;
use serde_json::json;

const SIZES: [(usize, &str); 3] = [(100, "100B"), (10 * 1024, "10KiB"), (1024 * 1024, "1MiB")];

/// A JSON config of about `size` bytes, with a secret every few entries.
fn config_of(size: usize) -> Vec<u8> {
    let mut items = Vec::new();
    let mut len = 0;
    let mut i = 0;
    while len < size {
        let item = json!({"name": format!("item-{i}"), "password": "p4ss", "limit": i, "tags": ["a", "b"]});
        len += item.to_string().len() + 1;
        items.push(item);
        i += 1;
    }
    let mut out = serde_json::to_vec(&json!({ "items": items })).unwrap();
    out.truncate(out.len().max(size));
    out
}

fn frame_of(size: usize) -> Bytes {
    let data = config_of(size.saturating_sub(40));
    Event::new("CONFIG:SEND_CONFIG_CHANGED", 0, data).encode()
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("etp");
    for (size, label) in SIZES {
        let frame = frame_of(size);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(BenchmarkId::new("decode", label), &frame, |b, frame| {
            b.iter(|| Event::decode(black_box(frame.clone())).unwrap())
        });
        let event = Event::decode(frame.clone()).unwrap();
        group.bench_with_input(BenchmarkId::new("encode", label), &event, |b, event| {
            let mut buf = BytesMut::with_capacity(event.encoded_len());
            b.iter(|| {
                buf.clear();
                black_box(event).encode_to(&mut buf);
            })
        });
    }
    group.finish();
}

fn masking(c: &mut Criterion) {
    let mut group = c.benchmark_group("hide_secrets");
    for (size, label) in SIZES {
        let config = config_of(size);
        group.throughput(Throughput::Bytes(config.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &config, |b, config| {
            b.iter(|| isp_cluster::hide_secrets(black_box(config)).unwrap())
        });
    }
    group.finish();
}

/// What the client does per config it delivers: parse and hash it
/// (`ConfigHash`), and compare it with the config accepted before it
/// (`ConfigChanges`, here one value changed).
fn identity(c: &mut Criterion) {
    let mut group = c.benchmark_group("config_identity");
    for (size, label) in SIZES {
        let config = config_of(size);
        group.throughput(Throughput::Bytes(config.len() as u64));
        group.bench_with_input(BenchmarkId::new("hash", label), &config, |b, config| {
            b.iter(|| isp_cluster::ConfigHash::of_json(black_box(config)).unwrap())
        });
        let before: serde_json::Value = serde_json::from_slice(&config).unwrap();
        let mut after = before.clone();
        after["items"][0]["limit"] = json!(-1);
        group.bench_with_input(
            BenchmarkId::new("changes", label),
            &(before, after),
            |b, (before, after)| {
                b.iter(|| isp_cluster::ConfigChanges::between(black_box(before), black_box(after)))
            },
        );
    }
    group.finish();
}

criterion_group!(benches, codec, masking, identity);
criterion_main!(benches);
