//! Two pods with their sidecars (as in `sidecars.rs`), now with workload
//! identities: what crosses between them over mTLS, the applications' own
//! TLS passing through, Linkerd's older mode (TLS straight to the
//! application's port, terminated by the inbound listener), and the port
//! policy applied to what the handshake proved.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::pods::*;
use support::*;

#[test]
fn meshed_pods_talk_mtls_and_the_applications_own_tls_passes_through() {
    let test = "meshed_pods_talk_mtls_and_the_applications_own_tls_passes_through";
    let dir = minted(&[("a", A_ID), ("b", B_ID)]);
    let Some(mesh) = meshed(test, "m", &dir, true, &[]) else {
        return;
    };
    let app = mesh.in_b(|| RecordingOrigin::start_on("0.0.0.0:0"));
    let app_addr = in_pod_b(app.addr);
    let url = format!("http://{app_addr}/hello");
    let response = mesh.curl_from_a(&url);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let request = String::from_utf8_lossy(&app.received()[0]).to_lowercase();
    assert!(
        request.contains(&format!("l5d-client-id: {A_ID}\r\n")),
        "{request}"
    );

    // The application's own TLS, for a name of its own, crosses the mesh
    // as the bytes it is.
    let echo = mesh.in_b(|| Origin::echo_on("0.0.0.0:0"));
    let echo_addr = in_pod_b(echo.addr);
    let mut hello = client_hello("app.example.test");
    hello.extend_from_slice(&random_bytes(64 << 10, 5));
    let back = mesh.in_a(|| echo_through(echo_addr, &hello));
    assert!(back == hello, "the application's TLS bytes changed");

    let (a, b) = mesh.metrics();
    let allowed = [("client_id", A_ID), ("tls", "true")];
    assert_eq!(
        b.sum("inbound_tcp_authz_allow_total", &allowed),
        2.0,
        "{}",
        b.0
    );
    // tls="true" on both sides, with the other side's identity.
    let echo_target = echo_addr.to_string();
    let inbound = [
        ("target_addr", echo_target.as_str()),
        ("tls", "true"),
        ("client_id", A_ID),
    ];
    assert_eq!(b.sum("tcp_read_bytes_total", &inbound), hello.len() as f64);
    let outbound = [
        ("target_addr", echo_target.as_str()),
        ("tls", "true"),
        ("server_id", B_ID),
    ];
    assert_eq!(
        a.sum("tcp_write_bytes_total", &outbound),
        hello.len() as f64
    );
    let allowed = [("client_id", A_ID), ("tls", "true")];
    assert_eq!(
        b.sum("inbound_tcp_authz_allow_total", &allowed),
        2.0,
        "{}",
        b.0
    );
}

/// Linkerd's peers send HTTP to the application's own port with TLS for
/// the server's identity (no transport header): iptables redirects it to
/// the inbound listener, which finds its own name in the SNI and
/// terminates it there.
#[test]
fn redirected_mtls_for_our_own_name_is_terminated() {
    let test = "redirected_mtls_for_our_own_name_is_terminated";
    let dir = minted(&[("a", A_ID), ("b", B_ID)]);
    // Only clients with an identity: the policy is applied after the
    // termination, to the identity the handshake proved.
    let required = [("--inbound-authorize", "all-authenticated")];
    let Some(mesh) = meshed(test, "r", &dir, false, &required) else {
        return;
    };
    let app = mesh.in_b(|| RecordingOrigin::start_on("0.0.0.0:0"));
    let app_addr = in_pod_b(app.addr);
    let request =
        b"GET /peer HTTP/1.1\r\nHost: b\r\nl5d-client-id: forged\r\nConnection: close\r\n\r\n";
    let answer = mesh.in_a(|| over_mtls_from_a(&dir, app_addr, request, |tcp| tcp));
    let request = assert_answered_with_a_proven_id(&answer, &app);
    assert!(!request.contains("forged"), "{request}");
}

#[test]
fn plaintext_to_a_port_that_requires_an_identity_is_refused() {
    let test = "plaintext_to_a_port_that_requires_an_identity_is_refused";
    let dir = minted(&[("a", A_ID), ("b", B_ID)]);
    let required = [("--inbound-authorize", "all-authenticated")];
    let Some(mesh) = meshed(test, "p", &dir, false, &required) else {
        return;
    };
    let echo = mesh.in_b(|| Origin::echo_on("0.0.0.0:0"));
    let echo_addr = in_pod_b(echo.addr);
    let refused = mesh.in_a(|| {
        let mut stream = TcpStream::connect(echo_addr).unwrap();
        stream.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
        // A line: a bare word may still begin an HTTP request, which
        // would be served 403s rather than closed.
        let _ = stream.write_all(b"plaintext\n");
        let mut buf = [0u8; 10];
        !matches!(stream.read(&mut buf), Ok(10))
    });
    assert!(refused, "plaintext got through to an identity-only port");
    assert_eq!(echo.accepted(), 0);
    // Plaintext HTTP gets a 403 that says why, for each request.
    let web = mesh.in_b(|| HttpOrigin::start_on("0.0.0.0:0", "web", Duration::ZERO));
    let web_addr = in_pod_b(web.addr);
    let url = format!("http://{web_addr}/size/10");
    let response = mesh.curl_from_a(&url);
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(
        response
            .contains("ringside-proxy-error: forbidden by the inbound policy all-authenticated"),
        "{response}"
    );
    assert_eq!(web.requests(), 0);
    let b = mesh.in_b(|| mesh.b.as_ref().unwrap().metrics());
    let denied = [("authz", "all-authenticated"), ("tls", "no_identity")];
    assert_eq!(
        b.sum("inbound_http_authz_deny_total", &denied),
        1.0,
        "{}",
        b.0
    );
    assert_eq!(
        b.sum("inbound_tcp_authz_deny_total", &denied),
        1.0,
        "{}",
        b.0
    );
    // Linkerd's reason why the client was not mTLS, on the HTTP series.
    let plaintext = [
        ("direction", "inbound"),
        ("tls", "no_identity"),
        ("no_tls_reason", "no_tls_from_remote"),
    ];
    assert_eq!(b.sum("response_total", &plaintext), 1.0, "{}", b.0);
}

/// A small MTU or a large ClientHello (a post-quantum key share) splits the
/// first flight: detection reads the first piece out while it waits for the
/// rest, and the TLS server must still see all of it.
#[test]
fn a_client_hello_in_two_pieces_is_terminated() {
    let test = "a_client_hello_in_two_pieces_is_terminated";
    let dir = minted(&[("a", A_ID), ("b", B_ID)]);
    // A's sidecar would take the two pieces in and send them on as one:
    // its iptables rules let this port go out directly, so that B's sidecar
    // sees the pieces as the client sent them.
    let skip = ["--skip-outbound-ports", "7443"];
    let Some(mesh) = meshed_installing(test, "2", &dir, false, &[], &skip) else {
        return;
    };
    let app = mesh.in_b(|| RecordingOrigin::start_on("0.0.0.0:7443"));
    let app_addr = in_pod_b(app.addr);
    let request = b"GET /two HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
    let answer = mesh.in_a(|| {
        over_mtls_from_a(&dir, app_addr, request, |tcp| {
            tcp.set_nodelay(true).unwrap();
            FirstWriteInTwo { tcp, split: false }
        })
    });
    assert_answered_with_a_proven_id(&answer, &app);
    // Detection waited for the second piece: the hello was not whole at
    // its first look.
    let b = mesh.in_b(|| mesh.b.as_ref().unwrap().metrics());
    let within_10ms = [("result", "tls"), ("le", "0.01")];
    let quick = b.sum("protocol_detect_duration_seconds_bucket", &within_10ms);
    assert_eq!(quick, 0.0, "{}", b.0);
}

/// What A's workload, as a Linkerd peer would, gets back for `request` sent
/// over mTLS for B's identity straight to `app` (an address in pod B), on
/// the TCP connection as `wrap` makes it.
fn over_mtls_from_a<S: Read + Write>(
    dir: &TempDir,
    app: SocketAddr,
    request: &[u8],
    wrap: impl FnOnce(TcpStream) -> S,
) -> String {
    let tcp = TcpStream::connect(app).unwrap();
    tcp.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let mut tls = mtls_client(dir, "a", B_ID, wrap(tcp));
    tls.write_all(request).unwrap();
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer);
    answer
}

/// The request `app` recorded, once `answer` says it was served and the
/// application saw A's proven identity; lowercase.
fn assert_answered_with_a_proven_id(answer: &str, app: &RecordingOrigin) -> String {
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let request = String::from_utf8_lossy(&app.received()[0]).to_lowercase();
    assert!(
        request.contains(&format!("l5d-client-id: {A_ID}\r\n")),
        "{request}"
    );
    request
}

/// A TCP stream whose first write goes out as two segments, the second a
/// moment after the first (well within detection's quiet pause, 300 ms).
struct FirstWriteInTwo {
    tcp: TcpStream,
    split: bool,
}

impl Read for FirstWriteInTwo {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for FirstWriteInTwo {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.split || bytes.len() < 64 {
            return self.tcp.write(bytes);
        }
        self.split = true;
        let (first, rest) = bytes.split_at(40);
        self.tcp.write_all(first)?;
        std::thread::sleep(Duration::from_millis(50));
        self.tcp.write_all(rest)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}
