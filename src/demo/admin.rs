//! The demo's one request to the proxies' admin servers besides their
//! scrapes (which `ringside::stat::scrape` makes): `POST /shutdown`, which
//! drains a proxy as SIGINT does, the demo's way to stop both after a
//! failure.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The admin server answers in milliseconds, and bounds its own requests
/// at 5 s (README, "Admin endpoints").
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts `admin`'s proxy's drain; a proxy already gone is not an error,
/// and the demo waits for its exit anyway.
pub fn shutdown(admin: SocketAddr) {
    let post = || -> std::io::Result<()> {
        let mut stream = TcpStream::connect_timeout(&admin, ADMIN_TIMEOUT)?;
        stream.set_read_timeout(Some(ADMIN_TIMEOUT))?;
        let request = format!(
            "POST /shutdown HTTP/1.1\r\nhost: {admin}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes())?;
        stream.read_to_end(&mut Vec::new()).map(|_| ())
    };
    if let Err(err) = post() {
        eprintln!("demo: POST {admin}/shutdown: {err}");
    }
}
