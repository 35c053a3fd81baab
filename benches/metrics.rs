//! The metric hot paths: counting bytes on a connection, recording a
//! connection's close, and the admin side's snapshot, merge and encoding.
//!
//! Run: `cargo bench --bench metrics`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ringside::config::Direction;
use ringside::metrics::{encode, Peer, ProcessStats, ShardMetrics, Snapshot, TcpLabels};

fn labels(target: usize, peer: Peer) -> TcpLabels {
    TcpLabels {
        direction: Direction::Outbound,
        peer,
        target_addr: format!("10.0.0.{target}:8080"),
        tls_sni: None,
        peer_id: None,
        no_tls: None,
        dst_labels: Default::default(),
    }
}

/// A shard that has seen traffic to 20 targets.
fn busy_shard(shard: usize) -> ShardMetrics {
    let metrics = ShardMetrics::new(shard);
    for target in 0..20 {
        for peer in [Peer::Src, Peer::Dst] {
            let tcp = metrics.tcp(labels(target, peer));
            for ms in 0..200 {
                tcp.opened();
                tcp.read(4096);
                tcp.closed(ms % 7 != 0, Duration::from_millis(ms * 13));
            }
        }
    }
    metrics
}

fn recording(c: &mut Criterion) {
    let metrics = ShardMetrics::new(0);
    let tcp = metrics.tcp(labels(1, Peer::Src));
    c.bench_function("count_bytes", |b| b.iter(|| tcp.read(black_box(16384))));
    c.bench_function("record_close", |b| {
        b.iter(|| tcp.closed(true, black_box(Duration::from_millis(42))))
    });
}

fn scraping(c: &mut Criterion) {
    let shards: Vec<ShardMetrics> = (0..4).map(busy_shard).collect();
    c.bench_function("snapshot_one_shard", |b| {
        b.iter(|| shards[0].snapshot(0, 0))
    });
    let snapshots: Vec<Snapshot> = shards.iter().map(|s| s.snapshot(0, 0)).collect();
    c.bench_function("merge_4_shards", |b| {
        b.iter(|| {
            let mut merged = Snapshot::default();
            for snapshot in &snapshots {
                merged.merge(snapshot);
            }
            merged
        })
    });
    let mut merged = Snapshot::default();
    for snapshot in &snapshots {
        merged.merge(snapshot);
    }
    let process = ProcessStats::default();
    c.bench_function("encode_40_series", |b| {
        b.iter(|| {
            let mut out = String::with_capacity(64 * 1024);
            encode(&merged, &process, &mut out);
            out
        })
    });
}

criterion_group!(benches, recording, scraping);
criterion_main!(benches);
