//! What ringside holds, read as a user would: open fds and RSS from /proc,
//! pipes in use and open connections from the `/metrics` text it serves.

use crate::proc_stats;
use anyhow::Context;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How much RSS may grow over the soak, in KiB. What stays after a soak is
/// allocator caches and per-shard pools, bounded and reached early
/// (measured, release: +13.7 MiB after 20 s, +6.5 MiB after 10 minutes and
/// 1.16 million transfers); a leak of even 30 bytes per transfer would pass
/// the bound in a 10-minute soak.
pub const RSS_GROWTH_BOUND_KIB: u64 = 32 * 1024;

/// How often a settling wait looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Unchanged this long means settled: three pool idle timeouts of the soak's
/// ringside (500 ms), so pooled connections have had their chance to close.
const SETTLED_FOR: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Open fds less the two of each pooled splice pipe: the pool keeps
    /// what the busiest moment needed (bounded per shard), so a load busier
    /// than the warm-up leaves more pooled pipes without leaking anything.
    pub fds: u64,
    /// Pipes pooled for reuse, shown but not compared.
    pub pipes_idle: u64,
    pub pipes_in_use: u64,
    /// `tcp_open_connections`, summed over every series.
    pub open_connections: u64,
    pub rss_kib: u64,
}

impl Usage {
    /// The counts that must come back exactly (RSS has a bound instead).
    fn counts(&self) -> (u64, u64, u64) {
        (self.fds, self.pipes_in_use, self.open_connections)
    }

    pub fn returned_to(&self, start: &Usage) -> bool {
        self.counts() == start.counts()
    }

    pub fn rss_within_bound(&self, start: &Usage) -> bool {
        self.rss_kib <= start.rss_kib + RSS_GROWTH_BOUND_KIB
    }
}

pub fn measure(pid: u32, admin: SocketAddr) -> anyhow::Result<Usage> {
    // fds first: the scrape's own connection is closed by ringside before
    // the scrape returns, so it is never counted.
    let fds = proc_stats::open_fds(pid).context("reading /proc/PID/fd")?;
    let metrics = scrape(admin)?;
    let pipes_idle = sum(&metrics, "ringside_pipes{state=\"idle\"}");
    Ok(Usage {
        fds: fds.saturating_sub(2 * pipes_idle),
        pipes_idle,
        pipes_in_use: sum(&metrics, "ringside_pipes{state=\"in_use\"}"),
        open_connections: sum(&metrics, "tcp_open_connections"),
        rss_kib: proc_stats::rss_kib(pid).context("reading /proc/PID/status")?,
    })
}

/// The readings before and after the load, one line each.
pub fn render(start: &Usage, end: &Usage) -> String {
    let rows = [
        (
            "open fds",
            start.fds,
            end.fds,
            format!(
                " (less 2 per pooled pipe: {} -> {} pooled)",
                start.pipes_idle, end.pipes_idle
            ),
        ),
        (
            "pipes in use",
            start.pipes_in_use,
            end.pipes_in_use,
            String::new(),
        ),
        (
            "tcp_open_connections",
            start.open_connections,
            end.open_connections,
            String::new(),
        ),
        (
            "RSS KiB",
            start.rss_kib,
            end.rss_kib,
            format!(" (bound: +{RSS_GROWTH_BOUND_KIB})"),
        ),
    ];
    let mut text = String::from("resources at start and after the load (must return):\n");
    for (name, before, after, note) in rows {
        text.push_str(&format!("  {name:<22}{before:>8} -> {after}{note}\n"));
    }
    text
}

/// Waits (bounded) until the counts stop moving; the baseline.
pub fn settle(pid: u32, admin: SocketAddr, timeout: Duration) -> anyhow::Result<Usage> {
    let deadline = Instant::now() + timeout;
    let mut last = measure(pid, admin)?;
    let mut since = Instant::now();
    while since.elapsed() < SETTLED_FOR {
        anyhow::ensure!(
            Instant::now() < deadline,
            "ringside did not settle within {timeout:?}: last {last:?}"
        );
        std::thread::sleep(POLL_INTERVAL);
        let now = measure(pid, admin)?;
        if now.counts() != last.counts() {
            since = Instant::now();
        }
        last = now;
    }
    Ok(last)
}

/// Waits (bounded) until the counts are back at `start`; returns the last
/// reading either way, for the caller to judge and print.
pub fn wait_for_return(
    pid: u32,
    admin: SocketAddr,
    start: &Usage,
    timeout: Duration,
) -> anyhow::Result<Usage> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = measure(pid, admin)?;
        if now.returned_to(start) || Instant::now() >= deadline {
            return Ok(now);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The `tcp_open_connections` series that are not zero, as scraped.
pub fn open_connection_series(admin: SocketAddr) -> anyhow::Result<Vec<String>> {
    Ok(scrape(admin)?
        .lines()
        .filter(|line| line.starts_with("tcp_open_connections{") && !line.ends_with(" 0"))
        .map(str::to_owned)
        .collect())
}

pub(super) fn scrape(admin: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {admin}\r\n\r\n")?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .context("reading /metrics")?;
    Ok(text)
}

/// Sums every sample whose series starts with `prefix` (a name, or a name
/// with its first labels).
pub(super) fn sum(metrics: &str, prefix: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with([' ', '{', ',']) || prefix.ends_with('}'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
