//! Response smuggling: a hostile response from the origin must not reach
//! the client beyond the point where it went bad, and ends both
//! connections. The routes here are declared `http1`.

mod support;

use std::io::Write;
use std::net::TcpStream;

use support::smuggling::read_until_closed;
use support::*;

/// The response direction: an upstream whose response cannot be framed
/// (both lengths, or a chunked body that goes bad) must not get a byte
/// past that point to the client, whose connection then closes, nor be
/// pooled for another request. The client pipelines a second request,
/// which must go unanswered.
#[test]
fn responses_that_cannot_be_framed_close_both_connections() {
    // (name, the upstream's answer, the status the client sees: 502 from
    // ringside when the head is at fault, else the upstream's head and a
    // body cut where it went bad)
    let vectors: [(&str, &'static [u8], u16); 6] = [
        (
            "Content-Length and Transfer-Encoding",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
            502,
        ),
        (
            "two differing Content-Lengths",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 41\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
            502,
        ),
        (
            "Content-Length: +2",
            b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nokevil",
            502,
        ),
        (
            "chunk size +4",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+4\r\nevil\r\n0\r\n\r\n",
            200,
        ),
        (
            "chunk size past 64 bits",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nevil\r\n0\r\n\r\n",
            200,
        ),
        (
            "last chunk ended by a bare LF",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
            200,
        ),
    ];
    let mut failures = Vec::new();
    for (name, hostile, status) in vectors {
        let origin = RecordingOrigin::answering(hostile);
        let proxy = Ringside::declared("http1", origin.addr);
        let mut client = TcpStream::connect(proxy.route()).unwrap();
        client.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
        client
            .write_all(
                b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n",
            )
            .unwrap();
        let (answer, closed) = read_until_closed(&mut client);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        drop(client);
        let status_line = format!("HTTP/1.1 {status} ");
        let from_ringside = status != 502 || answer.contains("ringside-proxy-error: ");
        if !answer.starts_with(&status_line)
            || !from_ringside
            || answer.contains("evil")
            || answer.matches("HTTP/1.1 ").count() != 1
            || !closed
        {
            failures.push(format!("{name}: answered {answer:?}, closed: {closed}"));
        }
        // Settles only once ringside closed the upstream connection.
        let received = origin.settled(&proxy.wait_idle());
        if received.iter().filter(|bytes| !bytes.is_empty()).count() != 1 {
            failures.push(format!("{name}: the upstream got {received:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
