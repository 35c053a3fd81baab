//! The request-smuggling checks (`tests/smuggling_*.rs`): a vector is
//! sent through a fresh ringside (an `http1` route) to an origin that
//! records every byte it receives, and must be either refused (a 400
//! with `ringside-proxy-error`, the client's connection closed, and not
//! one byte upstream) or normalized (the upstream receives exactly one
//! well-formed request, given byte for byte).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};

use super::{RecordingOrigin, Ringside, WAIT_LIMIT};

/// What ringside must do with a vector.
#[derive(Clone, Copy)]
pub enum Expect {
    /// 400 with `ringside-proxy-error`, the connection closed, nothing
    /// upstream.
    Refused,
    /// The upstream receives exactly these bytes: one request.
    Forwarded(&'static [u8]),
}

use Expect::{Forwarded, Refused};

/// A vector: its name (for the failure message), the bytes a client
/// sends, and the verdict.
pub type Vector = (&'static str, &'static [u8], Expect);

/// Runs every vector against a fresh ringside and origin each, and fails
/// naming each vector that did not get its verdict.
pub fn check_all(vectors: &[Vector]) {
    let failures: Vec<String> = vectors
        .iter()
        .filter_map(|(name, sent, expect)| {
            check(sent, *expect)
                .err()
                .map(|why| format!("{name}: {why}"))
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn check(sent: &[u8], expect: Expect) -> Result<(), String> {
    let origin = RecordingOrigin::start();
    let proxy = Ringside::declared("http1", origin.addr);
    let mut client = TcpStream::connect(proxy.route()).unwrap();
    client.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    client.write_all(sent).unwrap();
    if matches!(expect, Forwarded(_)) {
        // Whatever ringside makes of the rest, it must do before it sees
        // the end of the client's input.
        client.shutdown(Shutdown::Write).unwrap();
    }
    let (answer, closed) = read_until_closed(&mut client);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    // Ours closed too, should ringside have kept it open.
    drop(client);
    let received = origin.settled(&proxy.wait_idle());
    let upstream: Vec<&[u8]> = received
        .iter()
        .map(Vec::as_slice)
        .filter(|bytes| !bytes.is_empty())
        .collect();
    let upstream_text: Vec<_> = upstream
        .iter()
        .map(|b| String::from_utf8_lossy(b))
        .collect();
    match expect {
        Refused => {
            if !answer.starts_with("HTTP/1.1 400 ") || !answer.contains("ringside-proxy-error: ") {
                return Err(format!(
                    "answered {answer:?}, upstream got {upstream_text:?}"
                ));
            }
            if !closed {
                return Err("the connection stayed open after the 400".into());
            }
            if !upstream.is_empty() {
                return Err(format!("refused, but the upstream got {upstream_text:?}"));
            }
        }
        Forwarded(expected) => {
            if upstream != [expected] {
                let expected = String::from_utf8_lossy(expected);
                return Err(format!(
                    "the upstream got {upstream_text:?}, not [{expected:?}]; answered {answer:?}"
                ));
            }
            if !answer.starts_with("HTTP/1.1 200 OK\r\n")
                || answer.matches("HTTP/1.1 ").count() != 1
            {
                return Err(format!("answered {answer:?}, not one 200"));
            }
        }
    }
    Ok(())
}

/// Everything the peer sends until it closes, and whether it did close
/// (by FIN or reset) within the wait limit.
pub fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (received, true),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == ErrorKind::ConnectionReset => return (received, true),
            Err(_) => return (received, false),
        }
    }
}
