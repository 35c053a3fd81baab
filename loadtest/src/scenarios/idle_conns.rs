//! idle-conns and idle-http1: open K connections through the proxy, prove
//! each one reaches the origin with one round trip (so the proxy holds both
//! legs, or for HTTP/1 the client leg and whatever upstream connections it
//! pools), then read the proxy's resident memory and open fds from /proc.
//! The figure is the growth of RSS per connection.

use super::http1::ResponseReader;
use super::{LoadParams, Measurement};
use crate::proc_stats;
use anyhow::{ensure, Context};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Starts with NUL, so no protocol detector can take it for the start of an
/// HTTP method or a TLS record and wait for more bytes.
const PROBE: &[u8] = b"\0idle\n";

/// The round trip that proves a connection is carried.
#[derive(Clone, Copy)]
pub(super) enum Probe {
    /// Opaque bytes echoed back by an echo origin.
    Echo,
    /// One keep-alive GET answered by an HTTP/1 origin.
    Http1,
}

impl Probe {
    fn round_trip(self, stream: &mut TcpStream, target: SocketAddr) -> anyhow::Result<()> {
        match self {
            Probe::Echo => {
                let mut reply = [0u8; PROBE.len()];
                stream.write_all(PROBE)?;
                stream.read_exact(&mut reply)?;
            }
            Probe::Http1 => {
                let request = format!("GET / HTTP/1.1\r\nhost: {target}\r\n\r\n");
                stream.write_all(request.as_bytes())?;
                let status = ResponseReader::default().read_response(stream)?;
                ensure!(status == 200, "origin answered {status}");
            }
        }
        Ok(())
    }
}

pub(super) fn run(
    params: &LoadParams,
    target: SocketAddr,
    proxy_pids: &[u32],
    probe: Probe,
) -> anyhow::Result<Measurement> {
    ensure!(
        !proxy_pids.is_empty(),
        "idle connections are a proxy's to hold"
    );
    let rss_total = || {
        proxy_pids
            .iter()
            .filter_map(|&pid| proc_stats::rss_kib(pid))
            .sum::<u64>()
    };
    let fds_total = || {
        proxy_pids
            .iter()
            .filter_map(|&pid| proc_stats::open_fds(pid))
            .sum::<u64>()
    };
    let rss_before = rss_total();
    let fds_before = fds_total();
    let mut connections = Vec::with_capacity(params.idle_conns);
    for index in 0..params.idle_conns {
        let mut stream =
            TcpStream::connect(target).with_context(|| format!("connection {index}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        probe
            .round_trip(&mut stream, target)
            .with_context(|| format!("round trip on connection {index}"))?;
        connections.push(stream);
    }
    let rss_after = rss_total();
    let fds_after = fds_total();
    drop(connections);
    let count = params.idle_conns.max(1) as f64;
    Ok(Measurement {
        figure: rss_after.saturating_sub(rss_before) as f64 / count,
        work_units: count / 1000.0,
        latency: None,
        extra: vec![
            ("connections", params.idle_conns as f64),
            ("rss_before_mib", rss_before as f64 / 1024.0),
            ("rss_after_mib", rss_after as f64 / 1024.0),
            ("fds_before", fds_before as f64),
            ("fds_after", fds_after as f64),
        ],
    })
}
