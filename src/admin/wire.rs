//! The admin server's HTTP: just enough HTTP/1.1 for GET, HEAD and POST with
//! `Connection: close`, parsed by httparse.

pub struct Request {
    pub method: String,
    pub path: String,
}

impl Request {
    /// `Ok(None)` while the head is incomplete; `Err` when it is malformed.
    pub fn parse(bytes: &[u8]) -> Result<Option<Request>, httparse::Error> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(bytes)? {
            httparse::Status::Partial => Ok(None),
            httparse::Status::Complete(_) => {
                let path = request.path.unwrap_or("/");
                // Scrapers may add a query string; routes ignore it.
                let path = path.split('?').next().unwrap_or(path);
                Ok(Some(Request {
                    method: request.method.unwrap_or("").to_string(),
                    path: path.to_string(),
                }))
            }
        }
    }
}

pub struct Response {
    pub(super) status: u16,
    content_type: &'static str,
    body: String,
    /// HEAD: headers say how long the body would be, but none is sent.
    send_body: bool,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: String) -> Response {
        Response {
            status,
            content_type,
            body,
            send_body: true,
        }
    }

    pub fn text(status: u16, body: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body.to_string())
    }

    pub fn without_body(mut self) -> Response {
        self.send_body = false;
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|status| status.canonical_reason())
            .unwrap_or("");
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if self.send_body {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_scrape_and_waits_for_a_partial_head() {
        let request = Request::parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("GET", "/metrics")
        );
        assert!(Request::parse(b"GET /metrics HTTP/1.1\r\nHo")
            .unwrap()
            .is_none());
        assert!(Request::parse(b"\x16\x03\x01 garbage\r\n\r\n").is_err());
    }

    #[test]
    fn head_responses_keep_the_length_but_not_the_body() {
        let bytes = Response::text(200, "ready\n").without_body().into_bytes();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("content-length: 6\r\n") && text.ends_with("\r\n\r\n"));
    }
}
