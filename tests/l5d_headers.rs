//! What an application behind the inbound side can trust: no `l5d-*` field
//! its client sent, in the headers or in the trailers, and no look-alike
//! spelled with underscores (`l5d_client_id`), which CGI, WSGI and uWSGI
//! fold into the real header. A client without an identity loses them all;
//! a mesh peer's `l5d-client-id` is the one it proved. Real clients, and
//! origins that record what reached them.

mod support;

use http::{HeaderMap, HeaderValue, Request};
use support::clients::h2::{call_with_trailers, connect, runtime};
use support::identity::{client_side, identities, server_side, CLIENT};
use support::*;

/// One shard with one inbound route to `upstream`, its clients without an
/// identity (plaintext): as the application's own inbound port is served.
fn inbound_to(upstream: std::net::SocketAddr) -> Ringside {
    let config = TempPath::holding(format!(
        "[runtime]\nshards = 1\n\n[[route]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{upstream}\"]\ndirection = \"inbound\"\n"
    ));
    Ringside::start(&["--config", config.as_str()])
}

/// Names that look like Linkerd's once `_` is read as `-`.
fn is_l5d(name: &str) -> bool {
    name.to_ascii_lowercase()
        .replace('_', "-")
        .starts_with("l5d-")
}

/// Fields a client sends to pose as a mesh peer, with one to keep.
fn forged_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    for name in ["l5d-client-id", "l5d_client_id", "l5d-dst-override"] {
        trailers.insert(name, HeaderValue::from_static("forged"));
    }
    trailers.insert("x-kept", HeaderValue::from_static("yes"));
    trailers
}

#[test]
fn http1_chunked_trailers_and_underscore_names_lose_their_l5d_fields_inbound() {
    let app = RecordingOrigin::start();
    let proxy = inbound_to(app.addr);
    let mut http = HttpClient::connect(proxy.route());
    http.send(
        b"POST /upload HTTP/1.1\r\nHost: app\r\nl5d_client_id: forged\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\nl5d-client-id: forged\r\nL5D_Client_Id: forged\r\nx-kept: yes\r\n\r\n",
    );
    assert_eq!(http.read(false).expect("a response").status, 200);
    // A trailer name with a space before its colon is some field to some
    // server: it is refused, and nothing of it goes on.
    let mut spaced = HttpClient::connect(proxy.route());
    spaced.send(
        b"POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\nl5d-client-id : forged\r\n\r\n",
    );
    assert_eq!(spaced.read(false).expect("a response").status, 400);
    drop((http, spaced));

    let received = app.settled(&proxy.wait_idle());
    assert_eq!(received.len(), 2, "{received:?}");
    let request = String::from_utf8_lossy(&received[0]).into_owned();
    assert!(!request.contains("forged"), "{request}");
    assert!(
        request.ends_with("\r\n\r\n5\r\nhello\r\n0\r\nx-kept: yes\r\n\r\n"),
        "{request}"
    );
    let refused = String::from_utf8_lossy(&received[1]).into_owned();
    assert!(!refused.contains("forged"), "{refused}");
    // Cut where the trailers start: the application never sees it end.
    assert!(
        refused.ends_with("\r\n\r\n5\r\nhello\r\n0\r\n"),
        "{refused}"
    );
}

#[test]
fn http2_trailers_and_underscore_names_lose_their_l5d_fields_inbound() {
    let app = H2Origin::start();
    let proxy = inbound_to(app.addr);
    let addr = proxy.route();
    let answer = runtime().block_on(async move {
        let mut sender = connect(addr).await;
        let request = Request::post("http://app/echo")
            .header("l5d_client_id", "forged")
            .header("l5d-client-id", "forged")
            .body(())
            .unwrap();
        let body = b"hello".to_vec();
        call_with_trailers(&mut sender, request, body, Some(forged_trailers())).await
    });
    let answer = answer.expect("an answer");
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, &b"hello"[..])
    );
    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    let (headers, trailers) = &seen[0];
    assert!(
        !headers.keys().any(|name| is_l5d(name.as_str())),
        "{headers:?}"
    );
    let trailers = trailers.as_ref().expect("trailers");
    assert_eq!(trailers.keys().collect::<Vec<_>>(), ["x-kept"]);
}

#[test]
fn a_mesh_peer_gets_its_proven_id_and_no_look_alike_or_trailer_beside_it() {
    let dir = identities();
    let app = H2Origin::start();
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, app.addr, &server);
    let addr = client.route();
    let answer = runtime().block_on(async move {
        let mut sender = connect(addr).await;
        let request = Request::post("http://app/echo")
            .header("l5d_client_id", "forged")
            .body(())
            .unwrap();
        let body = b"hello".to_vec();
        call_with_trailers(&mut sender, request, body, Some(forged_trailers())).await
    });
    assert_eq!(answer.expect("an answer").status, 200);
    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    let (headers, trailers) = &seen[0];
    let l5d: Vec<_> = headers.keys().filter(|n| is_l5d(n.as_str())).collect();
    assert_eq!(l5d, ["l5d-client-id"], "{headers:?}");
    assert_eq!(headers["l5d-client-id"], CLIENT);
    // Other `l5d-*` fields from a proven peer go on, as in the headers.
    let trailers = trailers.as_ref().expect("trailers");
    let mut names: Vec<_> = trailers.keys().map(|n| n.as_str()).collect();
    names.sort();
    assert_eq!(names, ["l5d-dst-override", "x-kept"]);
}
