//! The properties every input must satisfy, as one function that panics on a
//! violation. The cargo-fuzz target calls it on fuzzer input, and the
//! proptests call it on generated input, so the two check the same thing and
//! stable toolchains (which cannot run cargo-fuzz) still exercise it.
//!
//! Public only so that the fuzz crate can reach it; not part of the API.

use super::{detect, detect_final, detect_full, parse_client_hello, Detection};
use crate::config::Direction;
use std::mem::discriminant;

/// Inputs longer than this are checked at split points up to this length
/// only, to keep the quadratic split check fast under a fuzzer.
const MAX_SPLIT_CHECK_BYTES: usize = 2048;

/// Panics if any detection invariant fails for `input`, in either direction:
/// 1. `detect` and `parse_client_hello` never panic (reaching the end proves it);
/// 2. a final verdict on any prefix is the protocol of the whole input;
/// 3. `detect_final` and `detect_full` never answer NeedMore and agree with
///    a final `detect`; `detect_full` differs from `detect_final` only by
///    taking an unfinished request line for HTTP/1;
/// 4. a ClientHello that parses is detected as TLS;
/// 5. inbound is only stricter: what outbound decides other than Unknown,
///    inbound decides the same way.
pub fn check_detect_invariants(input: &[u8]) {
    for direction in [Direction::Outbound, Direction::Inbound] {
        check_direction(input, direction);
    }
    if let Ok(info) = parse_client_hello(input) {
        assert_eq!(
            detect(input, Direction::Outbound),
            Detection::Tls(info),
            "a parsed ClientHello must be TLS"
        );
    }
    let outbound = detect(input, Direction::Outbound);
    if !matches!(outbound, Detection::Unknown | Detection::NeedMore) {
        assert_eq!(detect(input, Direction::Inbound), outbound);
    }
}

fn check_direction(input: &[u8], direction: Direction) {
    let whole = detect(input, direction);
    for split in 0..input.len().min(MAX_SPLIT_CHECK_BYTES) {
        let early = detect(&input[..split], direction);
        if early != Detection::NeedMore {
            assert_eq!(
                discriminant(&early),
                discriminant(&whole),
                "{direction:?}: prefix of {split} bytes gave {early:?} but the whole input gives {whole:?}"
            );
        }
    }

    let last_word = detect_final(input, direction);
    let full_window = detect_full(input, direction);
    assert_ne!(last_word, Detection::NeedMore, "detect_final must decide");
    assert_ne!(full_window, Detection::NeedMore, "detect_full must decide");
    if whole != Detection::NeedMore {
        assert_eq!(
            last_word, whole,
            "{direction:?}: detect_final disagrees with a final detect"
        );
        assert_eq!(
            full_window, whole,
            "{direction:?}: detect_full disagrees with a final detect"
        );
    }
    if full_window != last_word {
        assert_eq!(
            (&full_window, &whole),
            (&Detection::Http1, &Detection::NeedMore),
            "{direction:?}: detect_full may differ only on an unfinished request line"
        );
    }
}
