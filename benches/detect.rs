//! What detection costs per call on the inputs every connection brings: a
//! typical GET, the HTTP/2 preface, real ClientHellos (OpenSSL's, and a
//! post-quantum one from rustls), and 1 KiB of noise.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ringside::config::Direction;
use ringside::detect::detect;

#[path = "../src/detect/sample_client_hello.rs"]
mod sample_client_hello;
// Its SNI constant is for the tests.
#[allow(dead_code)]
#[path = "../src/detect/sample_pq_client_hello.rs"]
mod sample_pq_client_hello;

const GET_WITH_HEADERS: &[u8] =
    b"GET /index.html HTTP/1.1\r\nHost: example.test\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// 1 KiB from a fixed-seed xorshift64, so every run sees the same noise.
fn random_kib() -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn bench_detect(criterion: &mut Criterion) {
    let random = random_kib();
    let inputs: [(&str, &[u8]); 5] = [
        ("http1_get", GET_WITH_HEADERS),
        ("http2_preface", HTTP2_PREFACE),
        (
            "tls_client_hello",
            &sample_client_hello::OPENSSL_CLIENT_HELLO,
        ),
        (
            "tls_pq_client_hello",
            &sample_pq_client_hello::RUSTLS_PQ_CLIENT_HELLO,
        ),
        ("random_1kib", &random),
    ];
    let mut group = criterion.benchmark_group("detect");
    for (name, input) in inputs {
        group.bench_function(name, |bencher| {
            bencher.iter(|| detect(black_box(input), Direction::Outbound))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_detect);
criterion_main!(benches);
