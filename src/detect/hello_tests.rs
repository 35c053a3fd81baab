//! The ClientHello a post-quantum client sends (rustls with aws-lc-rs, as
//! Linkerd's proxy does): 1,540 bytes, read whole past `peek_bytes`, with
//! its SNI at every position rustls's extension shuffling can put it, in
//! pieces of every size and in records of every size.

use super::sample_pq_client_hello::{RUSTLS_PQ_CLIENT_HELLO, RUSTLS_PQ_SNI};
use super::*;
use crate::config::Direction::{Inbound, Outbound};
use crate::config::DEFAULT_PEEK_BYTES;

const RECORD_HEADER: usize = 5;
const HANDSHAKE_HEADER: usize = 4;

/// Where the extensions start in the hello: past the record and handshake
/// headers, version, random, session id, cipher suites, compression
/// methods and the extensions' length.
fn extensions_start(hello: &[u8]) -> usize {
    let mut at = RECORD_HEADER + HANDSHAKE_HEADER + 2 + 32;
    at += 1 + usize::from(hello[at]);
    at += 2 + usize::from(u16::from_be_bytes([hello[at], hello[at + 1]]));
    at += 1 + usize::from(hello[at]);
    at + 2
}

/// The fixture's extensions, each with its 4-byte header.
fn extensions() -> Vec<&'static [u8]> {
    let hello = &RUSTLS_PQ_CLIENT_HELLO[..];
    let mut rest = &hello[extensions_start(hello)..];
    let mut extensions = Vec::new();
    while !rest.is_empty() {
        let len = 4 + usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let (extension, after) = rest.split_at(len);
        extensions.push(extension);
        rest = after;
    }
    extensions
}

/// The fixture with its SNI extension moved to `position`: the same
/// lengths, so every header stays valid.
fn with_sni_at(position: usize) -> Vec<u8> {
    let mut extensions = extensions();
    let sni = extensions
        .iter()
        .position(|ext| ext[..2] == [0, 0])
        .unwrap();
    let sni = extensions.remove(sni);
    extensions.insert(position, sni);
    let hello = &RUSTLS_PQ_CLIENT_HELLO[..];
    let mut moved = hello[..extensions_start(hello)].to_vec();
    moved.extend(extensions.concat());
    assert_eq!(moved.len(), hello.len());
    moved
}

/// `hello`'s handshake bytes re-framed into records of `size` bytes.
fn in_records(hello: &[u8], size: usize) -> Vec<u8> {
    let mut framed = Vec::new();
    for payload in hello[RECORD_HEADER..].chunks(size) {
        framed.extend_from_slice(&[0x16, 0x03, 0x01]);
        framed.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        framed.extend_from_slice(payload);
    }
    framed
}

fn sni_offset(bytes: &[u8]) -> usize {
    let sni = RUSTLS_PQ_SNI.as_bytes();
    bytes.windows(sni.len()).position(|w| w == sni).unwrap()
}

fn assert_whole_hello_with_sni(bytes: &[u8], what: &str) {
    for direction in [Outbound, Inbound] {
        let Detection::Tls(info) = detect(bytes, direction) else {
            panic!("{what}: not TLS");
        };
        assert_eq!(info.server_name(), Some(RUSTLS_PQ_SNI), "{what}");
        assert!(info.is_complete(), "{what}");
        assert!(info.alpn_protocols().eq([&b"transport.l5d.io/v1"[..]]));
    }
}

#[test]
fn the_fixture_is_a_post_quantum_hello_with_its_sni_past_the_peek_size() {
    // X25519MLKEM768 (0x11ec) leads the key shares, 1,216 bytes of it.
    let key_share = extensions().into_iter().find(|ext| ext[..2] == [0, 51]);
    let key_share = key_share.expect("a key_share extension");
    assert_eq!(key_share[6..10], [0x11, 0xec, 0x04, 0xc0]);
    assert!(sni_offset(&RUSTLS_PQ_CLIENT_HELLO) > DEFAULT_PEEK_BYTES);
    assert_whole_hello_with_sni(&RUSTLS_PQ_CLIENT_HELLO, "as captured");
}

/// Every prefix waits for more: bytes arriving in pieces of any size are
/// never judged before the hello is whole, however full the peek buffer.
#[test]
fn the_sni_is_found_at_every_position_whatever_the_pieces() {
    let count = extensions().len();
    let mut past_the_peek_size = 0;
    for position in 0..count {
        let hello = with_sni_at(position);
        if sni_offset(&hello) > DEFAULT_PEEK_BYTES {
            past_the_peek_size += 1;
        }
        assert_whole_hello_with_sni(&hello, &format!("SNI {position} of {count}"));
        for len in 0..hello.len() {
            for direction in [Outbound, Inbound] {
                let early = detect(&hello[..len], direction);
                assert_eq!(early, Detection::NeedMore, "SNI {position}, {len} bytes");
            }
            let first_byte_seen = len > 0;
            let room = decision_bytes(&hello[..len], DEFAULT_PEEK_BYTES);
            assert!(
                !first_byte_seen || room > hello.len(),
                "{len} bytes: room {room}"
            );
        }
    }
    assert!(past_the_peek_size >= 2, "{past_the_peek_size} positions");
}

#[test]
fn the_sni_is_found_in_records_of_every_size() {
    let hello = &RUSTLS_PQ_CLIENT_HELLO[..];
    for size in 1..=hello.len() - RECORD_HEADER {
        let framed = in_records(hello, size);
        assert_whole_hello_with_sni(&framed, &format!("records of {size} bytes"));
    }
    // Records and pieces together: each prefix still waits.
    for size in [1, 3, 100, 1024, 1500] {
        let framed = in_records(hello, size);
        for len in 0..framed.len() {
            assert_eq!(detect(&framed[..len], Outbound), Detection::NeedMore);
        }
    }
}

#[test]
fn a_cut_off_hello_is_still_tls_when_detection_must_decide() {
    let hello = &RUSTLS_PQ_CLIENT_HELLO[..];
    let Detection::Tls(info) = detect_final(&hello[..DEFAULT_PEEK_BYTES], Outbound) else {
        panic!("the hello's first KiB is TLS");
    };
    assert!(!info.is_complete(), "and says it saw only part of it");
    assert_eq!(info.server_name(), None);
}

#[test]
fn invariants_hold_for_the_hello_whole_and_in_records() {
    invariants::check_detect_invariants(&RUSTLS_PQ_CLIENT_HELLO);
    invariants::check_detect_invariants(&in_records(&RUSTLS_PQ_CLIENT_HELLO, 700));
}
