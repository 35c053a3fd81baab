//! The demo's one request to the proxies' admin servers besides their
//! scrapes: `POST /shutdown`, which drains a proxy as SIGINT does, the
//! demo's way to stop both after a failure. Sent as the scrapes are
//! (`ringside::stat::exchange`).

use std::net::SocketAddr;

/// Starts `admin`'s proxy's drain; a proxy already gone is not an error,
/// and the demo waits for its exit anyway.
pub fn shutdown(admin: SocketAddr) {
    if let Err(err) = ringside::stat::exchange(admin, "POST", "/shutdown") {
        eprintln!("demo: POST {admin}/shutdown: {err:#}");
    }
}
