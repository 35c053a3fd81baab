//! The properties every transport header decode must satisfy, as a
//! function that panics on a violation. The fuzz target `transport_header`
//! calls it on fuzzer input, and the proptests below on generated input.
//!
//! Public only so that the fuzz crate can reach it; not part of the API.

use super::transport_header::{Decoded, TransportHeader, MAX_MESSAGE_BYTES, PREFACE};

/// Past this many bytes no decision can change: the preface, the length
/// and the longest message accepted.
const DECIDED_BY: usize = PREFACE.len() + 4 + MAX_MESSAGE_BYTES;

/// Panics unless, for `input` taken as the first bytes of a connection:
/// 1. decoding never panics (reaching the end proves it);
/// 2. every prefix decodes as `Incomplete` or exactly as the whole input
///    does, so how the bytes are split across reads changes nothing;
/// 3. a complete header consumes no more than the input, and the bytes it
///    consumed alone decode to the same header;
/// 4. that header, encoded again, decodes back to itself, consuming all of
///    its encoding.
pub fn check_transport_header_invariants(input: &[u8]) {
    let whole = TransportHeader::decode(input);
    for end in 0..input.len().min(DECIDED_BY) {
        let prefix = TransportHeader::decode(&input[..end]);
        assert!(
            prefix == Ok(Decoded::Incomplete) || prefix == whole,
            "{end} bytes decode as {prefix:?}, all {} as {whole:?}",
            input.len()
        );
    }
    if let Ok(Decoded::Complete { header, consumed }) = whole {
        assert!(consumed <= input.len());
        assert_eq!(
            TransportHeader::decode(&input[..consumed]),
            Ok(Decoded::Complete {
                header: header.clone(),
                consumed
            })
        );
        let again = header.encode();
        assert_eq!(
            TransportHeader::decode(&again),
            Ok(Decoded::Complete {
                header,
                consumed: again.len()
            })
        );
    }
}

#[cfg(test)]
mod tests {
    use super::check_transport_header_invariants;
    use crate::tls::{SessionProtocol, TransportHeader, PREFACE};
    use proptest::prelude::*;

    /// A header with a name of DNS labels (or none), so that most decode.
    fn header() -> impl Strategy<Value = TransportHeader> {
        let name = prop::option::of(prop::collection::vec("[a-z_][a-z0-9-]{0,8}[a-z]", 1..5));
        let protocol = prop::option::of(prop_oneof![
            Just(SessionProtocol::Http1),
            Just(SessionProtocol::Http2)
        ]);
        (any::<u16>(), name, protocol).prop_map(|(port, labels, protocol)| TransportHeader {
            port,
            name: labels.map(|labels| labels.join(".")),
            protocol,
        })
    }

    proptest! {
        #[test]
        fn generated_headers_hold(header in header(), after in prop::collection::vec(any::<u8>(), 0..8)) {
            let mut input = header.encode();
            input.extend_from_slice(&after);
            check_transport_header_invariants(&input);
        }

        #[test]
        fn bytes_after_the_preface_hold(input in prop::collection::vec(any::<u8>(), 0..64)) {
            check_transport_header_invariants(&[PREFACE.as_slice(), &input].concat());
        }

        #[test]
        fn arbitrary_bytes_hold(input in prop::collection::vec(any::<u8>(), 0..64)) {
            check_transport_header_invariants(&input);
        }
    }
}
