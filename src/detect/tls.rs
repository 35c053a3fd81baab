//! TLS: the framing around a ClientHello, i.e. the record layer (RFC 8446
//! section 5.1) and the handshake header (section 4), and the verdicts built
//! on them. The hello body itself is in `client_hello.rs`.
//!
//! The hello is read whole, across as many handshake records as the client
//! split it into (RFC 8446 §5.1 allows any split, the handshake header
//! included), whatever `detect.peek_bytes` says: a post-quantum key share
//! (X25519MLKEM768, 1,216 bytes) makes a 1.5 KB hello whose SNI sits past
//! byte 1,024 whenever the client shuffles its extensions, as rustls does.
//! Judging the first KiB "TLS without SNI" passed a mesh peer's TLS through
//! instead of terminating it. What the client chooses is bounded:
//! - a record's length, by the 2^14 bytes TLS allows;
//! - all the bytes read, records and headers, by [`MAX_HELLO_WIRE_BYTES`],
//!   what one full record takes; a hello still unfinished there is TLS with
//!   what was seen ([`ClientHelloInfo::is_complete`] false);
//! - the number of records with it: an empty record is refused (RFC 8446
//!   §5.1 forbids one), so at most 2,731 records of one byte fit;
//! - the time, by the caller's detect timeout and quiet pause.
//!
//! SSLv2-compatible hellos (first byte 0x80) are Unknown.

use std::borrow::Cow;

use super::client_hello::{parse_client_hello_body, ClientHelloInfo, Stop};
use super::Detection;

/// Why bytes are not, or not yet, a ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientHelloError {
    /// Everything so far is valid, but the hello is not complete yet.
    Incomplete,
    /// Not a handshake record (or not TLS at all), or another record type
    /// before the hello ends.
    NotHandshakeRecord,
    /// A record version other than 3.0 to 3.4 (SSL 3.0 to TLS 1.3).
    UnsupportedRecordVersion,
    /// A record length of zero or above the 2^14 bytes TLS allows.
    BadRecordLength,
    /// A handshake message other than a ClientHello.
    NotClientHello,
    /// A length field that overruns its container, or a field out of range.
    Malformed,
}

/// Parses the ClientHello at the start of `peeked` (record headers
/// included).
///
/// `Ok` once the hello is complete, or once [`MAX_HELLO_WIRE_BYTES`] have
/// been read (then [`ClientHelloInfo::is_complete`] is false). Never panics
/// and never reads past `peeked`.
pub fn parse_client_hello(peeked: &[u8]) -> Result<ClientHelloInfo, ClientHelloError> {
    match parse_hello(peeked) {
        HelloParse::Parsed(info) => Ok(info),
        HelloParse::Truncated(_) | HelloParse::TooShort => Err(ClientHelloError::Incomplete),
        HelloParse::Rejected(error) => Err(error),
    }
}

/// The verdict while more bytes may still come.
pub(crate) fn detect_tls(peeked: &[u8]) -> Detection {
    match parse_hello(peeked) {
        HelloParse::Parsed(info) => Detection::Tls(info),
        HelloParse::Truncated(_) | HelloParse::TooShort => Detection::NeedMore,
        HelloParse::Rejected(_) => Detection::Unknown,
    }
}

/// The verdict when no more bytes will be waited for: a valid but cut-off
/// hello still counts as TLS once its handshake header has been seen,
/// because the client committed to a ClientHello of a plausible length.
pub(crate) fn detect_tls_final(peeked: &[u8]) -> Detection {
    match parse_hello(peeked) {
        HelloParse::Parsed(info) | HelloParse::Truncated(info) => Detection::Tls(info),
        HelloParse::TooShort | HelloParse::Rejected(_) => Detection::Unknown,
    }
}

/// How many bytes to peek for the rest of the hello that `peeked` starts:
/// its first record whole (which holds the whole hello from every client
/// we know), or, once that is in, as many as detection ever reads.
pub(crate) fn hello_peek_bytes(peeked: &[u8]) -> usize {
    let first_record_end = match peeked.get(3..RECORD_HEADER_BYTES) {
        Some(&[high, low]) => RECORD_HEADER_BYTES + usize::from(u16::from_be_bytes([high, low])),
        _ => RECORD_HEADER_BYTES,
    };
    let wanted = match peeked.len() < first_record_end {
        true => first_record_end,
        false => MAX_HELLO_WIRE_BYTES,
    };
    wanted.min(MAX_HELLO_WIRE_BYTES)
}

const RECORD_HEADER_BYTES: usize = 5;
const HANDSHAKE_HEADER_BYTES: usize = 4;
const CONTENT_TYPE_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_TYPE_CLIENT_HELLO: u8 = 0x01;
/// TLSPlaintext.length may not exceed 2^14 (RFC 8446 section 5.1).
const MAX_RECORD_PAYLOAD_BYTES: usize = 1 << 14;
/// The most bytes, record headers included, read for one ClientHello: one
/// full record. Splitting the hello into more records buys a client no
/// more memory or parsing, only fewer hello bytes within the bound.
pub(crate) const MAX_HELLO_WIRE_BYTES: usize = RECORD_HEADER_BYTES + MAX_RECORD_PAYLOAD_BYTES;

enum HelloParse {
    /// The whole hello, or all of it that [`MAX_HELLO_WIRE_BYTES`] held.
    Parsed(ClientHelloInfo),
    /// Valid so far; the bytes end inside the hello.
    Truncated(ClientHelloInfo),
    /// Valid so far, but the handshake header is not all here.
    TooShort,
    Rejected(ClientHelloError),
}

fn parse_hello(peeked: &[u8]) -> HelloParse {
    let capped = peeked.len() >= MAX_HELLO_WIRE_BYTES;
    let peeked = &peeked[..peeked.len().min(MAX_HELLO_WIRE_BYTES)];
    let handshake = match handshake_bytes(peeked) {
        Ok(handshake) => handshake,
        Err(error) => return HelloParse::Rejected(error),
    };
    let Some(hello_len) = hello_len(&handshake) else {
        return HelloParse::TooShort;
    };
    // The hello bytes we may look at: not past the hello (a client may
    // send more handshake bytes in the same record).
    let body_end = handshake.len().min(HANDSHAKE_HEADER_BYTES + hello_len);
    let body = &handshake[HANDSHAKE_HEADER_BYTES..body_end];
    let (info, stop) = parse_client_hello_body(body, hello_len);
    match stop {
        None => HelloParse::Parsed(info),
        Some(Stop::Malformed) => HelloParse::Rejected(ClientHelloError::Malformed),
        Some(Stop::OutOfBytes) if capped => HelloParse::Parsed(info),
        Some(Stop::OutOfBytes) => HelloParse::Truncated(info),
    }
}

/// The ClientHello's declared body length, once its handshake header is in.
fn hello_len(handshake: &[u8]) -> Option<usize> {
    let &[_, high, mid, low] = handshake.get(..HANDSHAKE_HEADER_BYTES)? else {
        return None;
    };
    Some(usize::from(high) << 16 | usize::from(mid) << 8 | usize::from(low))
}

/// The handshake bytes the records at the start of `peeked` carry, joined,
/// up to the end of the ClientHello: borrowed while one record holds them,
/// as it does for every client we know. Each record header is checked as
/// its bytes arrive, so that a stream starting with 0x16 that is not TLS is
/// rejected at its first wrong byte.
fn handshake_bytes(peeked: &[u8]) -> Result<Cow<'_, [u8]>, ClientHelloError> {
    let mut handshake: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    let mut offset = 0;
    while offset < peeked.len() {
        let header_end = peeked.len().min(offset + RECORD_HEADER_BYTES);
        let header = &peeked[offset..header_end];
        check_record_header_prefix(header)?;
        let &[_, _, _, high, low] = header else {
            break;
        };
        let record_len = usize::from(u16::from_be_bytes([high, low]));
        if record_len == 0 || record_len > MAX_RECORD_PAYLOAD_BYTES {
            return Err(ClientHelloError::BadRecordLength);
        }
        let payload_start = offset + RECORD_HEADER_BYTES;
        let payload = &peeked[payload_start..peeked.len().min(payload_start + record_len)];
        if handshake.is_empty() {
            handshake = Cow::Borrowed(payload);
        } else if !payload.is_empty() {
            handshake.to_mut().extend_from_slice(payload);
        }
        if handshake
            .first()
            .is_some_and(|&kind| kind != HANDSHAKE_TYPE_CLIENT_HELLO)
        {
            return Err(ClientHelloError::NotClientHello);
        }
        let hello_end = hello_len(&handshake).map(|len| HANDSHAKE_HEADER_BYTES + len);
        if hello_end.is_some_and(|end| handshake.len() >= end) {
            break;
        }
        offset = payload_start + record_len;
    }
    Ok(handshake)
}

/// Checks the record header bytes that have arrived.
fn check_record_header_prefix(header: &[u8]) -> Result<(), ClientHelloError> {
    match header {
        [content_type, ..] if *content_type != CONTENT_TYPE_HANDSHAKE => {
            Err(ClientHelloError::NotHandshakeRecord)
        }
        [_, major, ..] if *major != 0x03 => Err(ClientHelloError::UnsupportedRecordVersion),
        [_, _, minor, ..] if *minor > 0x04 => Err(ClientHelloError::UnsupportedRecordVersion),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::sample_client_hello::OPENSSL_CLIENT_HELLO;
    use super::*;

    #[test]
    fn real_hello_is_tls_with_sni() {
        let info = parse_client_hello(&OPENSSL_CLIENT_HELLO).unwrap();
        assert!(info.is_complete());
        assert_eq!(info.server_name(), Some("example.test"));
        assert_eq!(detect_tls(&OPENSSL_CLIENT_HELLO), Detection::Tls(info));
    }

    #[test]
    fn every_prefix_needs_more_and_never_panics() {
        for len in 1..OPENSSL_CLIENT_HELLO.len() {
            let prefix = &OPENSSL_CLIENT_HELLO[..len];
            assert_eq!(
                detect_tls(prefix),
                Detection::NeedMore,
                "prefix of {len} bytes"
            );
            assert_eq!(
                parse_client_hello(prefix),
                Err(ClientHelloError::Incomplete)
            );
        }
    }

    #[test]
    fn final_verdict_on_a_cut_off_hello_needs_both_headers() {
        assert_eq!(
            detect_tls_final(&OPENSSL_CLIENT_HELLO[..8]),
            Detection::Unknown
        );
        match detect_tls_final(&OPENSSL_CLIENT_HELLO[..9]) {
            Detection::Tls(info) => assert!(!info.is_complete()),
            other => panic!("expected Tls, got {other:?}"),
        }
    }

    #[test]
    fn application_data_record_is_not_a_hello() {
        assert_eq!(
            parse_client_hello(&[0x17, 0x03, 0x03, 0x00, 0x10]),
            Err(ClientHelloError::NotHandshakeRecord)
        );
    }

    #[test]
    fn bad_record_headers_are_rejected_at_the_first_wrong_byte() {
        let cases: [(&[u8], ClientHelloError); 5] = [
            (&[0x16, 0x02], ClientHelloError::UnsupportedRecordVersion),
            (
                &[0x16, 0x03, 0x05],
                ClientHelloError::UnsupportedRecordVersion,
            ),
            (
                &[0x16, 0x03, 0x01, 0x00, 0x00, 0x01],
                ClientHelloError::BadRecordLength,
            ),
            (
                &[0x16, 0x03, 0x01, 0x40, 0x01, 0x01],
                ClientHelloError::BadRecordLength,
            ),
            (
                &[0x16, 0x03, 0x01, 0x00, 0x30, 0x02],
                ClientHelloError::NotClientHello,
            ),
        ];
        for (bytes, error) in cases {
            assert_eq!(parse_client_hello(bytes), Err(error), "{bytes:02x?}");
            assert_eq!(detect_tls(bytes), Detection::Unknown);
        }
    }

    /// The sample's handshake bytes re-framed into records of `sizes`
    /// bytes each (the last takes the rest).
    fn in_records(sizes: &[usize]) -> Vec<u8> {
        let mut handshake = &OPENSSL_CLIENT_HELLO[5..];
        let mut framed = Vec::new();
        for &size in sizes.iter().chain(std::iter::once(&usize::MAX)) {
            let (payload, rest) = handshake.split_at(size.min(handshake.len()));
            framed.extend_from_slice(&[0x16, 0x03, 0x01]);
            framed.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            framed.extend_from_slice(payload);
            handshake = rest;
            if handshake.is_empty() {
                break;
            }
        }
        framed
    }

    #[test]
    fn hello_spanning_two_records_is_read_whole() {
        let two_records = in_records(&[100]);
        let whole = detect_tls(&OPENSSL_CLIENT_HELLO);
        // The first record alone is not a verdict: the SNI may be further on.
        assert_eq!(detect_tls(&two_records[..105]), Detection::NeedMore);
        assert_eq!(detect_tls(&two_records[..110]), Detection::NeedMore);
        assert_eq!(detect_tls(&two_records), whole);
    }

    #[test]
    fn a_handshake_header_split_across_records_is_joined() {
        let split_header = in_records(&[1, 2, 1]);
        assert_eq!(detect_tls(&split_header), detect_tls(&OPENSSL_CLIENT_HELLO));
    }

    #[test]
    fn another_record_type_or_an_empty_record_before_the_hello_ends_is_rejected() {
        let mut interleaved = in_records(&[100]);
        interleaved[105] = 0x14; // ChangeCipherSpec where the second record starts
        assert_eq!(
            parse_client_hello(&interleaved),
            Err(ClientHelloError::NotHandshakeRecord)
        );
        let mut empty_record = in_records(&[100]);
        empty_record[108..110].copy_from_slice(&[0, 0]);
        assert_eq!(
            parse_client_hello(&empty_record[..110]),
            Err(ClientHelloError::BadRecordLength)
        );
    }

    #[test]
    fn one_byte_records_are_joined_within_the_bound() {
        // Six wire bytes per hello byte: 331 of them fit easily.
        let ones = vec![1; OPENSSL_CLIENT_HELLO.len()];
        let framed = in_records(&ones);
        assert!(framed.len() < MAX_HELLO_WIRE_BYTES);
        assert_eq!(detect_tls(&framed), detect_tls(&OPENSSL_CLIENT_HELLO));
    }

    #[test]
    fn a_hello_longer_than_the_bound_is_tls_with_what_the_bound_held() {
        // The sample, claiming 20 KiB (its extensions too), then padding
        // in 100-byte records, which reads as empty extensions.
        let mut huge = OPENSSL_CLIENT_HELLO.to_vec();
        huge[6..9].copy_from_slice(&[0x00, 0x50, 0x00]);
        huge[142..144].copy_from_slice(&(0x5000u16 - 135).to_be_bytes());
        while huge.len() < MAX_HELLO_WIRE_BYTES + 200 {
            huge.extend_from_slice(&[0x16, 0x03, 0x03, 0x00, 100]);
            huge.extend_from_slice(&[0; 100]);
        }
        let almost = &huge[..MAX_HELLO_WIRE_BYTES - 1];
        assert_eq!(detect_tls(almost), Detection::NeedMore);
        let Detection::Tls(info) = detect_tls(&huge[..MAX_HELLO_WIRE_BYTES]) else {
            panic!("a hello cut off by the bound is TLS");
        };
        assert!(!info.is_complete());
        assert_eq!(info.server_name(), Some("example.test"));
        assert_eq!(detect_tls(&huge), Detection::Tls(info));
    }

    #[test]
    fn peek_room_is_the_first_record_then_the_bound() {
        assert_eq!(hello_peek_bytes(&OPENSSL_CLIENT_HELLO[..3]), 5);
        assert_eq!(hello_peek_bytes(&OPENSSL_CLIENT_HELLO[..100]), 336);
        let bound = MAX_HELLO_WIRE_BYTES;
        assert_eq!(hello_peek_bytes(&OPENSSL_CLIENT_HELLO), bound);
        assert_eq!(hello_peek_bytes(&[0x16, 0x03, 0x01, 0xff, 0xff]), bound);
    }

    #[test]
    fn lying_record_and_handshake_lengths() {
        // The record claims 16 KiB but the client stops after the real hello:
        // the hello itself is complete, so the verdict does not wait.
        let mut lying = OPENSSL_CLIENT_HELLO.to_vec();
        lying[3..5].copy_from_slice(&16384u16.to_be_bytes());
        assert!(matches!(detect_tls(&lying), Detection::Tls(_)));
        // A handshake length lying long leaves the hello unfinished.
        let mut lying = OPENSSL_CLIENT_HELLO.to_vec();
        lying[3..5].copy_from_slice(&16384u16.to_be_bytes());
        lying[6..9].copy_from_slice(&[0x00, 0x3f, 0xfc]);
        assert_eq!(
            detect_tls(&lying),
            Detection::Unknown,
            "extensions no longer fill the hello"
        );
    }
}
