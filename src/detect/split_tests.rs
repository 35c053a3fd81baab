//! Tests across protocols through the public entry points: every prefix of a
//! real request, preface and ClientHello; the documented verdict for each
//! awkward input; and proptests of the invariants on arbitrary and on
//! mutated real inputs.

use super::http2::HTTP2_PREFACE;
use super::invariants::check_detect_invariants;
use super::sample_client_hello::OPENSSL_CLIENT_HELLO;
use super::*;
use crate::config::Direction::{self, Outbound};
use proptest::prelude::*;

const GET_WITH_HEADERS: &[u8] =
    b"GET /index.html HTTP/1.1\r\nHost: example.test\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

/// Every prefix gives NeedMore or exactly the final verdict, never another.
fn assert_prefixes_agree(input: &[u8], expected: &Detection) {
    assert_eq!(&detect(input, Outbound), expected);
    for len in 0..input.len() {
        let verdict = detect(&input[..len], Outbound);
        assert!(
            verdict == Detection::NeedMore || &verdict == expected,
            "prefix of {len} bytes gave {verdict:?}, expected NeedMore or {expected:?}"
        );
    }
}

#[test]
fn every_prefix_of_a_get_agrees() {
    assert_prefixes_agree(GET_WITH_HEADERS, &Detection::Http1);
}

#[test]
fn every_prefix_of_the_preface_agrees() {
    let mut preface_and_settings = HTTP2_PREFACE.to_vec();
    preface_and_settings.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    assert_prefixes_agree(&preface_and_settings, &Detection::Http2);
}

#[test]
fn every_prefix_of_a_real_client_hello_agrees() {
    let Detection::Tls(info) = detect(&OPENSSL_CLIENT_HELLO, Outbound) else {
        panic!("the sample ClientHello must be TLS");
    };
    assert_eq!(info.server_name(), Some("example.test"));
    assert!(info.alpn_protocols().any(|protocol| protocol == b"h2"));
    assert_prefixes_agree(&OPENSSL_CLIENT_HELLO, &Detection::Tls(info));
}

#[test]
fn documented_verdicts_for_awkward_inputs() {
    let mut one_kib_of_g = vec![b'G'; 1024];
    one_kib_of_g[1023] = b'\n';
    let mut lying_hello = OPENSSL_CLIENT_HELLO.to_vec();
    lying_hello[9 + 34] = 200; // session id longer than the 32 bytes allowed
    let cases: [(&str, &[u8], Detection); 11] = [
        ("empty", b"", Detection::NeedMore),
        (
            "binary garbage",
            &[0x00, 0xff, 0x13, 0x37],
            Detection::Unknown,
        ),
        ("1 KiB of G", &one_kib_of_g, Detection::Unknown),
        (
            "SSH banner",
            b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3\r\n",
            Detection::Unknown,
        ),
        ("Redis PING", b"*1\r\n$4\r\nPING\r\n", Detection::Unknown),
        (
            "TLS application data",
            &[0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5],
            Detection::Unknown,
        ),
        (
            "TLS alert",
            &[0x15, 0x03, 0x03, 0x00, 0x02, 2, 40],
            Detection::Unknown,
        ),
        (
            "truncated ClientHello",
            &OPENSSL_CLIENT_HELLO[..200],
            Detection::NeedMore,
        ),
        ("lying session id length", &lying_hello, Detection::Unknown),
        ("PRI with HTTP/1.1", b"PRI / HTTP/1.1\r\n", Detection::Http1),
        (
            "preface gone wrong",
            b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
            Detection::Unknown,
        ),
    ];
    for (name, input, expected) in cases {
        assert_eq!(detect(input, Outbound), expected, "{name}");
        check_detect_invariants(input);
    }
}

#[test]
fn detect_final_decides_what_detect_left_open() {
    assert_eq!(detect_final(b"", Outbound), Detection::Unknown);
    assert_eq!(
        detect_final(b"GET /unfinished", Outbound),
        Detection::Unknown
    );
    assert_eq!(
        detect_final(&HTTP2_PREFACE[..20], Outbound),
        Detection::Unknown
    );
    assert_eq!(
        detect_final(&OPENSSL_CLIENT_HELLO[..4], Outbound),
        Detection::Unknown
    );
    let Detection::Tls(info) = detect_final(&OPENSSL_CLIENT_HELLO[..200], Outbound) else {
        panic!("a cut-off ClientHello with both headers is TLS");
    };
    // The SNI extension comes before byte 200 in this hello, ALPN after it.
    assert_eq!(info.server_name(), Some("example.test"));
    assert_eq!(info.alpn_protocols().count(), 0);
    assert!(!info.is_complete());
    assert_eq!(detect_final(GET_WITH_HEADERS, Outbound), Detection::Http1);
}

#[test]
fn a_full_window_of_request_line_is_http1_outbound_too() {
    let long_url = format!("GET /{} HTTP/1.1\r\n", "a".repeat(2_000));
    let window = &long_url.as_bytes()[..crate::config::DEFAULT_PEEK_BYTES];
    assert_eq!(detect(window, Outbound), Detection::NeedMore);
    assert_eq!(detect_final(window, Outbound), Detection::Unknown);
    assert_eq!(detect_full(window, Outbound), Detection::Http1);
    check_detect_invariants(window);
    // What is not a request line stays as it was.
    let opaque = vec![b'x'; crate::config::DEFAULT_PEEK_BYTES];
    assert_eq!(detect_full(&opaque, Outbound), Detection::Unknown);
    let cut_hello = &OPENSSL_CLIENT_HELLO[..200];
    assert_eq!(
        detect_full(cut_hello, Outbound),
        detect_final(cut_hello, Outbound)
    );
}

#[test]
fn invariants_hold_for_the_samples() {
    check_detect_invariants(GET_WITH_HEADERS);
    check_detect_invariants(HTTP2_PREFACE);
    check_detect_invariants(&OPENSSL_CLIENT_HELLO);
}

/// Real inputs with a few bytes overwritten, cut, or appended: random bytes
/// alone almost never get past the first byte of any parser.
fn mutated_sample() -> impl Strategy<Value = Vec<u8>> {
    let samples = prop_oneof![
        Just(GET_WITH_HEADERS.to_vec()),
        Just(HTTP2_PREFACE.to_vec()),
        Just(OPENSSL_CLIENT_HELLO.to_vec()),
    ];
    (
        samples,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(mut bytes, overwrites, cut, tail)| {
            for (index, value) in overwrites {
                let position = index.index(bytes.len());
                bytes[position] = value;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            bytes.extend_from_slice(&tail);
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn invariants_hold_for_arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..1100)) {
        check_detect_invariants(&input);
    }

    #[test]
    fn invariants_hold_for_mutated_samples(input in mutated_sample()) {
        check_detect_invariants(&input);
    }

    #[test]
    fn splitting_never_changes_the_verdict(input in mutated_sample(), split in any::<prop::sample::Index>()) {
        let early = detect(&input[..split.index(input.len() + 1)], Direction::Outbound);
        if early != Detection::NeedMore {
            prop_assert_eq!(
                std::mem::discriminant(&early),
                std::mem::discriminant(&detect(&input, Direction::Outbound))
            );
        }
    }
}
