//! The properties every input must satisfy, as one function that panics on a
//! violation. The cargo-fuzz target calls it on fuzzer input, and the
//! proptests call it on generated input, so the two check the same thing and
//! stable toolchains (which cannot run cargo-fuzz) still exercise it.
//!
//! Public only so that the fuzz crate can reach it; not part of the API.

use super::{detect, detect_final, parse_client_hello, Detection};
use std::mem::discriminant;

/// Inputs longer than this are checked at split points up to this length
/// only, to keep the quadratic split check fast under a fuzzer.
const MAX_SPLIT_CHECK_BYTES: usize = 2048;

/// Panics if any detection invariant fails for `input`:
/// 1. `detect` and `parse_client_hello` never panic (reaching the end proves it);
/// 2. a final verdict on any prefix is the protocol of the whole input;
/// 3. `detect_final` never answers NeedMore and agrees with a final `detect`;
/// 4. a ClientHello that parses is detected as TLS.
pub fn check_detect_invariants(input: &[u8]) {
    let whole = detect(input);
    for split in 0..input.len().min(MAX_SPLIT_CHECK_BYTES) {
        let early = detect(&input[..split]);
        if early != Detection::NeedMore {
            assert_eq!(
                discriminant(&early),
                discriminant(&whole),
                "prefix of {split} bytes gave {early:?} but the whole input gives {whole:?}"
            );
        }
    }

    let last_word = detect_final(input);
    assert_ne!(last_word, Detection::NeedMore, "detect_final must decide");
    if whole != Detection::NeedMore {
        assert_eq!(
            last_word, whole,
            "detect_final disagrees with a final detect"
        );
    }

    if let Ok(info) = parse_client_hello(input) {
        assert_eq!(
            whole,
            Detection::Tls(info),
            "a parsed ClientHello must be TLS"
        );
    }
}
