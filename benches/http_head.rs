//! The HTTP/1 work every proxied request does: parse the request head,
//! write it back out without hop-by-hop headers (or byte for byte when it
//! has none), parse the response head.
//!
//! Run: `cargo bench --bench http_head`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ringside::http::{parse_request, parse_response};

const REQUEST: &[u8] = b"GET /api/v1/users/42?fields=name,email HTTP/1.1\r\n\
Host: users.internal.example\r\nUser-Agent: curl/8.5.0\r\nAccept: application/json\r\n\
Accept-Encoding: gzip\r\nConnection: keep-alive\r\nX-Request-Id: 6f1c2a9e-0d4b-4c1e-9a77-3d2f5b8c1e00\r\n\
Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.signature\r\n\r\n";

/// A head with no hop-by-hop header: forwarded byte for byte.
const CLEAN_REQUEST: &[u8] = b"GET /api/v1/users/42 HTTP/1.1\r\nHost: users.internal.example\r\n\
User-Agent: wrk\r\nAccept: */*\r\n\r\n";

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 57\r\n\
Cache-Control: no-store\r\nDate: Thu, 26 Nov 2026 18:00:00 GMT\r\nServer: origin\r\n\r\n";

fn heads(c: &mut Criterion) {
    c.bench_function("parse_request_head", |b| {
        b.iter(|| parse_request(black_box(REQUEST)).unwrap().unwrap())
    });
    for (name, text) in [
        ("encode_request_head", REQUEST),
        ("encode_clean_request_head", CLEAN_REQUEST),
    ] {
        let (head, _) = parse_request(text).unwrap().unwrap();
        c.bench_function(name, |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(1024);
                head.encode(&mut out);
                out
            })
        });
    }
    c.bench_function("parse_response_head", |b| {
        b.iter(|| parse_response(black_box(RESPONSE)).unwrap().unwrap())
    });
}

criterion_group!(benches, heads);
criterion_main!(benches);
