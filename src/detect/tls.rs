//! TLS: the framing around a ClientHello, i.e. the record header (RFC 8446
//! section 5.1) and the handshake header (section 4), and the verdicts built
//! on them. The hello body itself is in `client_hello.rs`.
//!
//! Only the first record is read. A ClientHello longer than one record (rare:
//! records hold 16 KiB) is reported as TLS with what that record held, rather
//! than reassembled; SSLv2-compatible hellos (first byte 0x80) are Unknown.

use super::client_hello::{parse_client_hello_body, ClientHelloInfo, Stop};
use super::Detection;

/// Why bytes are not, or not yet, a ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientHelloError {
    /// Everything so far is valid, but the hello is not complete yet.
    Incomplete,
    /// Not a handshake record (or not TLS at all).
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

/// Parses the ClientHello at the start of `peeked` (record header included).
///
/// `Ok` once the hello is complete or its first record is (then
/// [`ClientHelloInfo::is_complete`] is false if the hello continues in a
/// further record). Never panics and never reads past `peeked`.
pub fn parse_client_hello(peeked: &[u8]) -> Result<ClientHelloInfo, ClientHelloError> {
    match parse_first_record(peeked) {
        HelloParse::Parsed(info) => Ok(info),
        HelloParse::Truncated(_) | HelloParse::TooShort => Err(ClientHelloError::Incomplete),
        HelloParse::Rejected(error) => Err(error),
    }
}

/// The verdict while more bytes may still come.
pub(crate) fn detect_tls(peeked: &[u8]) -> Detection {
    match parse_first_record(peeked) {
        HelloParse::Parsed(info) => Detection::Tls(info),
        HelloParse::Truncated(_) | HelloParse::TooShort => Detection::NeedMore,
        HelloParse::Rejected(_) => Detection::Unknown,
    }
}

/// The verdict when no more bytes will be waited for: a valid but cut-off
/// hello still counts as TLS once both headers have been seen, because the
/// client committed to a ClientHello of a plausible length.
pub(crate) fn detect_tls_final(peeked: &[u8]) -> Detection {
    match parse_first_record(peeked) {
        HelloParse::Parsed(info) | HelloParse::Truncated(info) => Detection::Tls(info),
        HelloParse::TooShort | HelloParse::Rejected(_) => Detection::Unknown,
    }
}

const RECORD_HEADER_BYTES: usize = 5;
const HANDSHAKE_HEADER_BYTES: usize = 4;
const CONTENT_TYPE_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_TYPE_CLIENT_HELLO: u8 = 0x01;
/// TLSPlaintext.length may not exceed 2^14 (RFC 8446 section 5.1).
const MAX_RECORD_PAYLOAD_BYTES: usize = 1 << 14;

enum HelloParse {
    /// The hello, or all of it that the complete first record holds.
    Parsed(ClientHelloInfo),
    /// Valid so far; the buffer ends inside the first record's hello.
    Truncated(ClientHelloInfo),
    /// Valid so far, but the record or handshake header is not all here.
    TooShort,
    Rejected(ClientHelloError),
}

fn parse_first_record(peeked: &[u8]) -> HelloParse {
    if let Err(error) = check_record_header_prefix(peeked) {
        return HelloParse::Rejected(error);
    }
    let Some(&[_, _, _, length_high, length_low, handshake_type, ..]) = peeked.get(..6) else {
        return HelloParse::TooShort;
    };
    let record_len = usize::from(u16::from_be_bytes([length_high, length_low]));
    if record_len == 0 || record_len > MAX_RECORD_PAYLOAD_BYTES {
        return HelloParse::Rejected(ClientHelloError::BadRecordLength);
    }
    if handshake_type != HANDSHAKE_TYPE_CLIENT_HELLO {
        return HelloParse::Rejected(ClientHelloError::NotClientHello);
    }
    // We do not reassemble a handshake header split across records.
    if record_len < HANDSHAKE_HEADER_BYTES {
        return HelloParse::Rejected(ClientHelloError::Malformed);
    }
    let record_end = RECORD_HEADER_BYTES + record_len;
    let Some(&[length_high, length_mid, length_low]) = peeked.get(6..9) else {
        return HelloParse::TooShort;
    };
    let hello_len =
        usize::from(length_high) << 16 | usize::from(length_mid) << 8 | usize::from(length_low);
    let hello_start = RECORD_HEADER_BYTES + HANDSHAKE_HEADER_BYTES;
    // The hello bytes we may look at: not past the record, nor past the hello.
    let readable_end = peeked.len().min(record_end).min(hello_start + hello_len);
    let (info, stop) = parse_client_hello_body(&peeked[hello_start..readable_end], hello_len);
    match stop {
        None => HelloParse::Parsed(info),
        Some(Stop::Malformed) => HelloParse::Rejected(ClientHelloError::Malformed),
        Some(Stop::OutOfBytes) if peeked.len() >= record_end => HelloParse::Parsed(info),
        Some(Stop::OutOfBytes) => HelloParse::Truncated(info),
    }
}

/// Checks the record header bytes that have arrived, so that a non-TLS
/// stream starting with 0x16 is rejected at its first wrong byte.
fn check_record_header_prefix(peeked: &[u8]) -> Result<(), ClientHelloError> {
    match peeked {
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

    #[test]
    fn hello_spanning_two_records_is_tls_once_the_first_is_whole() {
        // Shrink the first record to 100 bytes of the hello; the handshake
        // header still announces the full hello, as a fragmenting client does.
        let mut first_record = OPENSSL_CLIENT_HELLO[..5 + 100].to_vec();
        first_record[3..5].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(detect_tls(&first_record[..104]), Detection::NeedMore);
        match detect_tls(&first_record) {
            Detection::Tls(info) => {
                assert!(!info.is_complete());
                assert_eq!(info.server_name(), None);
            }
            other => panic!("expected Tls, got {other:?}"),
        }
    }

    #[test]
    fn record_length_lying_short_is_malformed() {
        // The record claims 3 bytes: too few even for the handshake header.
        let lying = [0x16, 0x03, 0x01, 0x00, 0x03, 0x01, 0x00, 0x01];
        assert_eq!(parse_client_hello(&lying), Err(ClientHelloError::Malformed));
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
