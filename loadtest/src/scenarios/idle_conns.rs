//! idle-conns: opens K connections through the proxy to an echo origin,
//! proves each one reaches the origin with a short round trip (so the
//! proxy holds both legs), then reads the proxy's resident memory and open
//! fds from /proc. The figure is the growth of RSS per connection.

use super::{LoadParams, Measurement};
use crate::proc_stats;
use anyhow::Context;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Starts with NUL, so no protocol detector can take it for the start of an
/// HTTP method or a TLS record and wait for more bytes.
const PROBE: &[u8] = b"\0idle\n";

pub(super) fn run(
    params: &LoadParams,
    target: SocketAddr,
    proxy_pids: &[u32],
) -> anyhow::Result<Measurement> {
    anyhow::ensure!(
        !proxy_pids.is_empty(),
        "idle-conns measures a proxy process"
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
    let mut reply = [0u8; PROBE.len()];
    for index in 0..params.idle_conns {
        let mut stream =
            TcpStream::connect(target).with_context(|| format!("connection {index}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(PROBE)?;
        stream
            .read_exact(&mut reply)
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
