//! Head parsing, framing and encoding, by example.

use super::*;

fn request(text: &str) -> RequestHead {
    parse_request(text.as_bytes()).unwrap().unwrap().0
}

#[test]
fn parses_incrementally_and_enforces_limits() {
    let text = "GET /a HTTP/1.1\r\nHost: example.test\r\n\r\nleftover";
    for cut in 0..text.len() - "leftover".len() {
        assert_eq!(
            parse_request(&text.as_bytes()[..cut]).unwrap(),
            None,
            "cut {cut}"
        );
    }
    let (head, len) = parse_request(text.as_bytes()).unwrap().unwrap();
    assert_eq!(&text[len..], "leftover");
    assert_eq!((head.method(), head.target()), ("GET", "/a"));
    assert_eq!(head.authority(), "example.test");

    let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: y\r\n")).collect();
    let text = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert_eq!(parse_request(text.as_bytes()), Err(HeadError::TooLarge));
    let huge = format!("GET / HTTP/1.1\r\nx: {}", "a".repeat(MAX_HEAD_BYTES));
    assert_eq!(parse_request(huge.as_bytes()), Err(HeadError::TooLarge));
    assert!(matches!(
        parse_request(b"GET / HTTP/1.1\r\nbad header\r\n\r\n"),
        Err(HeadError::Malformed(_))
    ));
}

#[test]
fn a_request_line_past_its_limit_is_refused_before_its_end_arrives() {
    let line = |target_len: usize| format!("GET /{} HTTP/1.1", "a".repeat(target_len - 1));
    let fits = line(MAX_REQUEST_LINE_BYTES - "GET  HTTP/1.1".len());
    assert_eq!(fits.len(), MAX_REQUEST_LINE_BYTES);
    let head = format!("{fits}\r\nHost: h\r\n\r\n");
    assert!(parse_request(head.as_bytes()).unwrap().is_some());
    // Every cut of the longest line that fits is only incomplete.
    for cut in MAX_REQUEST_LINE_BYTES - 2..head.len() - 1 {
        assert_eq!(
            parse_request(&head.as_bytes()[..cut]),
            Ok(None),
            "cut {cut}"
        );
    }
    let over = line(MAX_REQUEST_LINE_BYTES + 1 - "GET  HTTP/1.1".len());
    for text in [format!("{over}\r\nHost: h\r\n\r\n"), format!("{over}\n\n")] {
        assert_eq!(
            parse_request(text.as_bytes()),
            Err(HeadError::RequestLineTooLong)
        );
    }
    // Refused once the limit is passed, without waiting for the line end.
    let endless = format!("GET /{}", "a".repeat(MAX_REQUEST_LINE_BYTES));
    assert_eq!(
        parse_request(endless.as_bytes()),
        Err(HeadError::RequestLineTooLong)
    );
}

#[test]
fn framing_follows_rfc_9112_and_refuses_smuggling() {
    assert_eq!(
        request("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").framing(),
        Ok(Framing::Length(5))
    );
    assert_eq!(
        request("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").framing(),
        Ok(Framing::Chunked)
    );
    assert_eq!(
        request("GET / HTTP/1.1\r\n\r\n").framing(),
        Ok(Framing::None)
    );
    for bad in [
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        assert!(request(bad).framing().is_err(), "{bad:?}");
    }
    // Identical lengths are one length, sent on once.
    let twice = request("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n");
    assert_eq!(twice.framing(), Ok(Framing::Length(5)));
    let mut out = Vec::new();
    twice.encode(&mut out);
    assert_eq!(out, b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
    assert!(matches!(
        parse_request(b"GET /a#b HTTP/1.1\r\n\r\n"),
        Err(HeadError::Malformed(_))
    ));
    let response = |text: &str| parse_response(text.as_bytes()).unwrap().unwrap().0;
    let ok = response("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
    assert_eq!(ok.framing("HEAD"), Ok(Framing::None));
    assert_eq!(ok.framing("GET"), Ok(Framing::Length(9)));
    assert_eq!(
        response("HTTP/1.1 204 No Content\r\n\r\n").framing("GET"),
        Ok(Framing::None)
    );
    assert_eq!(
        response("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n").framing("GET"),
        Ok(Framing::None)
    );
    assert_eq!(
        response("HTTP/1.0 200 OK\r\n\r\n").framing("GET"),
        Ok(Framing::UntilClose)
    );
}

#[test]
fn encoding_drops_hop_by_hop_headers() {
    let head = request(
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-secret\r\nKeep-Alive: 5\r\nX-Secret: 1\r\nTE: trailers\r\nX-Kept: yes\r\n\r\n",
    );
    let mut out = Vec::new();
    head.encode(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET / HTTP/1.1\r\nHost: a\r\nX-Kept: yes\r\n\r\n"
    );

    let upgrade =
        request("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert!(upgrade.wants_tunnel());
    let mut out = Vec::new();
    upgrade.encode(&mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("Upgrade: websocket\r\n") && text.contains("connection: upgrade\r\n"),
        "{text}"
    );
}

#[test]
fn clean_heads_pass_byte_for_byte_and_others_are_rewritten() {
    let clean = "GET /x HTTP/1.1\r\nHost: a\r\nX-Odd:  spaced \r\n\r\n";
    let mut out = Vec::new();
    request(clean).encode(&mut out);
    assert_eq!(out, clean.as_bytes());

    // httparse takes bare LF line ends; the upstream gets CRLF.
    let mut out = Vec::new();
    request("GET /x HTTP/1.1\nHost: a\n\n").encode(&mut out);
    assert_eq!(out, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");

    // Empty lines before the request line are not passed on.
    let mut out = Vec::new();
    request("\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n").encode(&mut out);
    assert_eq!(out, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");

    // HTTP/1.0 stays HTTP/1.0, asking for keep-alive on the hop.
    let mut out = Vec::new();
    request("GET /x HTTP/1.0\r\nHost: a\r\nConnection: close\r\n\r\n").encode(&mut out);
    assert_eq!(
        out,
        b"GET /x HTTP/1.0\r\nconnection: keep-alive\r\nHost: a\r\n\r\n"
    );

    let response = "HTTP/1.1 404 Gone Away\r\nContent-Length: 0\r\n\r\n";
    let (head, _) = parse_response(response.as_bytes()).unwrap().unwrap();
    let mut out = Vec::new();
    head.encode(false, false, &mut out);
    assert_eq!(out, response.as_bytes());
    let mut out = Vec::new();
    head.encode(false, true, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 404 Gone Away\r\nContent-Length: 0\r\nconnection: close\r\n\r\n"
    );
}

#[test]
fn keep_alive_defaults_differ_by_version() {
    assert!(request("GET / HTTP/1.1\r\n\r\n").keep_alive());
    assert!(!request("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
    assert!(!request("GET / HTTP/1.0\r\n\r\n").keep_alive());
    assert!(request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
}

#[test]
fn inbound_heads_lose_their_l5d_headers_or_get_the_proven_client_id() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nL5d-Client-Id: forged\r\nl5d-other: x\r\n\r\n";
    let (head, _) = parse_request(raw).unwrap().unwrap();
    let encoded = |client_id: &ClientId| {
        let mut out = Vec::new();
        head.encode_for(client_id, &mut out);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(
        encoded(&ClientId::Untouched),
        std::str::from_utf8(raw).unwrap()
    );
    assert_eq!(
        encoded(&ClientId::Strip),
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    );
    assert_eq!(
        encoded(&ClientId::set("web.ns".into())),
        "GET / HTTP/1.1\r\nHost: a\r\nl5d-other: x\r\nl5d-client-id: web.ns\r\n\r\n"
    );
    let plain = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let (head, _) = parse_request(plain).unwrap().unwrap();
    let mut out = Vec::new();
    head.encode_for(&ClientId::Strip, &mut out);
    assert_eq!(out, plain, "nothing to strip: forwarded as it came");
}
