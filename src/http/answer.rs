//! The answers ringside makes itself, not passed on from an upstream: why
//! a request could not be proxied (`ProxyError`), the status that says so,
//! and the HTTP/1 response that carries it with a `ringside-proxy-error`
//! header.

use std::net::SocketAddr;
use std::time::Duration;

use super::chunked::ChunkedError;
use super::head::HeadError;
use super::io::ReadHeadError;

/// Why ringside answered a request itself. The status comes from the
/// variant; the text goes into the `ringside-proxy-error` header.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request head could not be parsed or framed.
    #[error(transparent)]
    BadRequest(HeadError),
    /// The request's chunked body is malformed: nothing from the bad byte
    /// on went upstream.
    #[error("bad request body: {0}")]
    BadBody(ChunkedError),
    #[error("request head too large")]
    HeadTooLarge,
    /// The client did not finish its request head in time.
    #[error("request head not complete within {0:?}")]
    HeadReadTimeout(Duration),
    /// The upstream did not start its response in time.
    #[error("no response head from upstream within {0:?}")]
    ResponseTimeout(Duration),
    #[error("connect to {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Every endpoint is ejected after failures.
    #[error("no endpoint available")]
    NoEndpoint,
    #[error("writing the request upstream failed: {0}")]
    SendRequest(std::io::Error),
    #[error("upstream closed the connection before responding")]
    ClosedBeforeResponse,
    #[error("bad response from upstream: {0}")]
    BadResponse(ReadHeadError),
    #[error("HTTP/2 handshake with {addr} failed: {source}")]
    H2Handshake { addr: SocketAddr, source: h2::Error },
    #[error("{addr}: {source}")]
    H2NotReady { addr: SocketAddr, source: h2::Error },
    #[error("sending upstream failed: {0}")]
    H2Send(h2::Error),
    #[error("upstream failed: {0}")]
    H2Upstream(h2::Error),
    /// The inbound port's authorization policy (named) refuses this
    /// client.
    #[error("forbidden by the inbound policy {0}")]
    Forbidden(&'static str),
    /// The same for a gRPC request: answered with `grpc-status: 7`
    /// (`PERMISSION_DENIED`), as Linkerd answers it.
    #[error("forbidden by the inbound policy")]
    GrpcForbidden,
    /// No route of the inbound port's policy matches the request.
    #[error("no route of the inbound policy matches the request")]
    NoRoute,
    /// The same for a gRPC request: `grpc-status: 5` (`NOT_FOUND`), as
    /// Linkerd answers it (`SyntheticHttpResponse::not_found`).
    #[error("no route of the inbound policy matches the call")]
    GrpcNoRoute,
}

impl ProxyError {
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::BadRequest(HeadError::RequestLineTooLong) => 414,
            ProxyError::BadRequest(_) | ProxyError::BadBody(_) => 400,
            ProxyError::HeadTooLarge => 431,
            ProxyError::HeadReadTimeout(_) => 408,
            ProxyError::ResponseTimeout(_) => 504,
            ProxyError::NoEndpoint => 503,
            ProxyError::Forbidden(_) => 403,
            ProxyError::GrpcForbidden | ProxyError::GrpcNoRoute => 200,
            ProxyError::NoRoute => 404,
            _ => 502,
        }
    }

    /// The `grpc-status` and `grpc-message` of a refusal answered to a
    /// gRPC request.
    pub fn grpc_status(&self) -> Option<(u16, &'static str)> {
        match self {
            ProxyError::GrpcForbidden => Some((7, "permission denied by the inbound policy")),
            ProxyError::GrpcNoRoute => Some((5, "no route of the inbound policy matches the call")),
            _ => None,
        }
    }

    /// The `ringside-proxy-error` header's value: the reason on one line.
    pub fn header_value(&self) -> String {
        self.to_string().replace(['\r', '\n'], " ")
    }
}

/// The reason phrase of a status ringside writes itself.
pub fn reason_phrase(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("")
}

/// A response made by the proxy itself, with `connection: close` when
/// `close` and a `ringside-proxy-error` header saying why.
pub fn proxy_response(error: &ProxyError, close: bool) -> Vec<u8> {
    let status = error.status();
    let reason = reason_phrase(status);
    let body = format!("{error}\n");
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nringside-proxy-error: {}\r\n",
        body.len(),
        error.header_value()
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
        let error = ProxyError::Connect {
            addr: "127.0.0.1:9".parse().unwrap(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        let text = String::from_utf8(proxy_response(&error, true)).unwrap();
        assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
        let why = error.to_string();
        assert!(why.starts_with("connect to 127.0.0.1:9 failed: "));
        assert!(
            text.contains(&format!("ringside-proxy-error: {why}\r\n")),
            "{text}"
        );
        assert!(text.contains("connection: close\r\n") && text.ends_with(&format!("{why}\n")));
    }

    #[test]
    fn statuses_come_from_the_error() {
        assert_eq!(ProxyError::HeadTooLarge.status(), 431);
        assert_eq!(ProxyError::NoEndpoint.status(), 503);
        assert_eq!(ProxyError::HeadReadTimeout(Duration::ZERO).status(), 408);
        assert_eq!(ProxyError::ResponseTimeout(Duration::ZERO).status(), 504);
        assert_eq!(ProxyError::ClosedBeforeResponse.status(), 502);
        let malformed = ProxyError::BadRequest(HeadError::Malformed("token".into()));
        assert_eq!(malformed.status(), 400);
        let long = ProxyError::BadRequest(HeadError::RequestLineTooLong);
        assert_eq!(long.status(), 414);
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
    }
}
