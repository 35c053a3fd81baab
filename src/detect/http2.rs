//! HTTP/2 with prior knowledge: the client opens with a fixed 24-byte preface
//! (RFC 9113 section 3.4). h2c upgrades and ALPN-negotiated h2 are not seen
//! here: the first starts as HTTP/1, the second is inside TLS.

use super::Detection;

/// The client connection preface, byte for byte.
pub(crate) const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// `Some(verdict)` while the bytes are a prefix of the preface or start with
/// all of it; `None` as soon as they diverge, so the caller can try HTTP/1.
///
/// The verdict waits for all 24 bytes: `PRI * HTTP/2.0\r\n` alone would also
/// be an HTTP/1-shaped request line, and deciding early would let a split
/// point change the answer.
pub(crate) fn detect_http2(peeked: &[u8]) -> Option<Detection> {
    if peeked.len() >= HTTP2_PREFACE.len() {
        peeked
            .starts_with(HTTP2_PREFACE)
            .then_some(Detection::Http2)
    } else {
        HTTP2_PREFACE
            .starts_with(peeked)
            .then_some(Detection::NeedMore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_preface_is_http2() {
        assert_eq!(detect_http2(HTTP2_PREFACE), Some(Detection::Http2));
    }

    #[test]
    fn preface_followed_by_settings_frame_is_http2() {
        let mut bytes = HTTP2_PREFACE.to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        assert_eq!(detect_http2(&bytes), Some(Detection::Http2));
    }

    #[test]
    fn every_proper_prefix_needs_more() {
        for len in 1..HTTP2_PREFACE.len() {
            assert_eq!(
                detect_http2(&HTTP2_PREFACE[..len]),
                Some(Detection::NeedMore),
                "prefix of {len} bytes"
            );
        }
    }

    #[test]
    fn divergence_hands_over_to_http1() {
        assert_eq!(detect_http2(b"PRI / HTTP/1.1\r\n"), None);
        assert_eq!(detect_http2(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"), None);
        assert_eq!(detect_http2(b"GET / HTTP/1.1\r\n"), None);
    }
}
