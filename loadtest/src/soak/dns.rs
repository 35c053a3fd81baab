//! The DNS fault: the HTTP/1 route's upstream is a name, served by the DNS
//! server of ringside's own resolver tests, whose one A record flips
//! between two origins (127.0.0.1 and 127.0.0.2, same port) while the load
//! runs. Its TTL is short and the soak's `[dns] min_ttl` shorter, so
//! ringside follows each flip within about a second: pooled connections to
//! the origin that left must close when idle, and no request may fail.

// Only the records part of the test server is used here.
#[allow(dead_code)]
#[path = "../../../tests/support/dns_server.rs"]
mod dns_server;

use super::origins::{Behaviour, ThreadOrigin};
use super::periodic::Change;
use super::resources;
use anyhow::{bail, Context};
pub use dns_server::DnsServer;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// The name the HTTP/1 route's upstream has.
pub const NAME: &str = "origin.soak";
/// The record's TTL in seconds; ringside's `min_ttl` is below it.
pub const TTL: u32 = 1;
/// `[dns]` for the soak's ringside.
pub const MIN_TTL: &str = "500ms";
/// The two addresses the name flips between.
const HOSTS: [&str; 2] = ["127.0.0.1", "127.0.0.2"];

/// The name's server and its two origins, one on each host.
pub struct Flips {
    pub server: DnsServer,
    pub origins: [ThreadOrigin; 2],
    /// Which origin the record names now.
    current: usize,
    /// Record changes made.
    pub count: u64,
}

impl Flips {
    /// Two HTTP/1 origins on the same port of 127.0.0.1 and 127.0.0.2, the
    /// name pointing at the first.
    pub fn start() -> anyhow::Result<Self> {
        let origins = origin_pair()?;
        let server = DnsServer::start();
        server.set_records(NAME, &[HOSTS[0]], TTL);
        Ok(Self {
            server,
            origins,
            current: 0,
            count: 0,
        })
    }

    /// The route's upstream: the name and the port both origins share.
    pub fn upstream(&self) -> String {
        format!("{NAME}:{}", self.origins[0].addr().port())
    }
}

impl Change for Flips {
    fn apply(&mut self) -> anyhow::Result<()> {
        self.current = 1 - self.current;
        self.server.set_records(NAME, &[HOSTS[self.current]], TTL);
        self.count += 1;
        Ok(())
    }
}

/// Binds 127.0.0.1:0, then the same port on 127.0.0.2 (taken there by
/// something else at times: then another port).
fn origin_pair() -> anyhow::Result<[ThreadOrigin; 2]> {
    let mut last_error = None;
    for _ in 0..20 {
        let first = TcpListener::bind((HOSTS[0], 0))?;
        let port = first.local_addr()?.port();
        let second: SocketAddr = format!("{}:{port}", HOSTS[1]).parse()?;
        match TcpListener::bind(second) {
            Ok(second) => {
                return Ok([
                    ThreadOrigin::serve(Behaviour::Http1, first)?,
                    ThreadOrigin::serve(Behaviour::Http1, second)?,
                ])
            }
            Err(error) => last_error = Some(error),
        }
    }
    let error = last_error.context("no try to bind")?;
    Err(anyhow::Error::new(error).context("binding the DNS route's origin on 127.0.0.2"))
}

/// `ringside_dns_lookups_total` of the name with result `ok`.
pub fn lookups_ok(admin: SocketAddr) -> anyhow::Result<u64> {
    let metrics = resources::scrape(admin)?;
    Ok(resources::sum(
        &metrics,
        &format!("ringside_dns_lookups_total{{name=\"{NAME}\",result=\"ok\"}}"),
    ))
}

/// Waits (bounded) for ringside's first answer for the name: `/ready` is
/// 200 before it, with the HTTP/1 route answering 503 until then.
pub fn wait_resolved(admin: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while lookups_ok(admin)? == 0 {
        if Instant::now() >= deadline {
            bail!("ringside had not resolved {NAME} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
