//! The answers ringside makes itself, not passed on from an upstream: the
//! proxy's own errors (400, 431, 502, 503), and the reason phrases the
//! admin server uses too.

/// The reason phrase of the statuses ringside writes itself (the admin
/// server's and the proxy's own answers).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A response made by the proxy itself (400, 431, 502, 503), always with
/// `connection: close` when `close` and a `ringside-proxy-error` header
/// saying why.
pub fn proxy_response(status: u16, why: &str, close: bool) -> Vec<u8> {
    let reason = reason_phrase(status);
    let body = format!("{why}\n");
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nringside-proxy-error: {}\r\n",
        body.len(),
        why.replace(['\r', '\n'], " ")
    );
    if close {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_responses_carry_the_reason() {
        let text = String::from_utf8(proxy_response(502, "connect failed", true)).unwrap();
        assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
        assert!(text.contains("ringside-proxy-error: connect failed\r\n"));
        assert!(text.contains("connection: close\r\n") && text.ends_with("connect failed\n"));
    }
}
