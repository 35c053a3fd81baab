//! Scenarios: load clients, each bounded by a duration, each producing one
//! headline figure (plus latency percentiles where they apply) and the amount
//! of work done, so a proxy's CPU time can be put per GB or per 1,000 requests.

mod conn_rate;
mod h2;
mod http1;
mod idle_conns;
mod latency;
mod tcp_rr;
mod tcp_throughput;

use crate::origins::{Origin, OriginKind};
use crate::targets::ProxyMode;
use std::net::SocketAddr;
use std::time::Duration;

pub use latency::Percentiles;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioKind {
    /// N streams pushing bytes to a sink (Gbit/s).
    TcpThroughput,
    /// Fixed-size request/response at a fixed offered rate, open loop (p99 µs).
    TcpRr,
    /// Connect, one round trip, close (connections/s).
    ConnRate,
    /// Keep-alive HTTP/1.1 requests over C connections (req/s).
    Http1,
    /// Multiplexed h2c streams over one connection (req/s).
    H2,
    /// K idle proxied connections: the proxy's resident memory per connection.
    IdleConns,
    /// K idle HTTP/1 keep-alive connections, after one request each: the
    /// proxy's resident memory per connection, its upstream pool included.
    IdleHttp1,
}

pub const ALL: [ScenarioKind; 7] = [
    ScenarioKind::TcpThroughput,
    ScenarioKind::TcpRr,
    ScenarioKind::ConnRate,
    ScenarioKind::Http1,
    ScenarioKind::H2,
    ScenarioKind::IdleConns,
    ScenarioKind::IdleHttp1,
];

impl ScenarioKind {
    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::TcpThroughput => "tcp-throughput",
            ScenarioKind::TcpRr => "tcp-rr",
            ScenarioKind::ConnRate => "conn-rate",
            ScenarioKind::Http1 => "http1",
            ScenarioKind::H2 => "h2",
            ScenarioKind::IdleConns => "idle-conns",
            ScenarioKind::IdleHttp1 => "idle-http1",
        }
    }

    pub fn origin(self) -> OriginKind {
        match self {
            ScenarioKind::TcpThroughput => OriginKind::Sink,
            ScenarioKind::TcpRr | ScenarioKind::ConnRate | ScenarioKind::IdleConns => {
                OriginKind::Echo
            }
            ScenarioKind::Http1 | ScenarioKind::IdleHttp1 => OriginKind::Http1,
            ScenarioKind::H2 => OriginKind::H2,
        }
    }

    pub fn proxy_mode(self) -> ProxyMode {
        match self {
            ScenarioKind::Http1 | ScenarioKind::IdleHttp1 => ProxyMode::Http1,
            ScenarioKind::H2 => ProxyMode::H2,
            _ => ProxyMode::Tcp,
        }
    }

    /// The unit of the headline figure.
    pub fn unit(self) -> &'static str {
        match self {
            ScenarioKind::TcpThroughput => "Gbit/s",
            ScenarioKind::TcpRr => "p99 latency (us)",
            ScenarioKind::ConnRate => "connections/s",
            ScenarioKind::Http1 | ScenarioKind::H2 => "requests/s",
            ScenarioKind::IdleConns | ScenarioKind::IdleHttp1 => "proxy RSS per connection (KiB)",
        }
    }

    pub fn lower_is_better(self) -> bool {
        matches!(
            self,
            ScenarioKind::TcpRr | ScenarioKind::IdleConns | ScenarioKind::IdleHttp1
        )
    }

    /// [`Self::lower_is_better`] in words, for titles.
    pub fn better(self) -> &'static str {
        if self.lower_is_better() {
            "lower is better"
        } else {
            "higher is better"
        }
    }

    /// What the proxy's CPU seconds are divided by; `None` where CPU is not the point.
    pub fn cpu_unit(self) -> Option<&'static str> {
        match self {
            ScenarioKind::TcpThroughput => Some("CPU s/GB"),
            ScenarioKind::TcpRr | ScenarioKind::Http1 | ScenarioKind::H2 => Some("CPU s/1k req"),
            ScenarioKind::ConnRate => Some("CPU s/1k conn"),
            ScenarioKind::IdleConns | ScenarioKind::IdleHttp1 => None,
        }
    }

    /// The proxy's memory is the figure, so there is nothing to measure without one.
    pub fn needs_proxy(self) -> bool {
        self.holds_idle_connections()
    }

    /// The scenarios that hold thousands of connections open at once.
    pub fn holds_idle_connections(self) -> bool {
        matches!(self, ScenarioKind::IdleConns | ScenarioKind::IdleHttp1)
    }
}

/// Knobs of the load clients; each scenario reads the ones it needs.
#[derive(Clone, Debug)]
pub struct LoadParams {
    pub duration: Duration,
    /// tcp-throughput: concurrent streams.
    pub streams: usize,
    /// tcp-rr, conn-rate, http1: client connections (one thread each); h2: concurrent streams.
    pub connections: usize,
    /// tcp-rr: offered request rate over all connections, per second.
    pub rate: u64,
    /// tcp-rr: request and response bytes; http1/h2: response body bytes.
    pub size: usize,
    /// h2: concurrent streams over the one connection.
    pub h2_streams: usize,
    /// idle-conns, idle-http1: connections to hold open.
    pub idle_conns: usize,
}

/// What one run of a scenario against one target measured.
#[derive(Clone, Debug, Default)]
pub struct Measurement {
    /// The headline figure, in [`ScenarioKind::unit`].
    pub figure: f64,
    /// Work done, in the denominator of [`ScenarioKind::cpu_unit`] (GB or thousands).
    pub work_units: f64,
    pub latency: Option<Percentiles>,
    /// Other numbers worth printing (name, value).
    pub extra: Vec<(&'static str, f64)>,
}

impl Measurement {
    /// Requests per second and latency percentiles from each client's
    /// latency histogram and request count.
    pub(crate) fn requests(
        results: Vec<(hdrhistogram::Histogram<u64>, u64)>,
        elapsed_seconds: f64,
        extra: (&'static str, f64),
    ) -> Measurement {
        let requests: u64 = results.iter().map(|(_, count)| count).sum();
        let histogram = latency::merge(results.into_iter().map(|(histogram, _)| histogram));
        Measurement {
            figure: requests as f64 / elapsed_seconds,
            work_units: requests as f64 / 1000.0,
            latency: Some(latency::Percentiles::of(&histogram)),
            extra: vec![extra],
        }
    }
}

/// Runs `kind` against `target_addr`; `origin` is the origin behind it and
/// `proxy_pids` the proxy's processes (empty for `direct`).
pub fn run(
    kind: ScenarioKind,
    params: &LoadParams,
    target_addr: SocketAddr,
    origin: &Origin,
    proxy_pids: &[u32],
) -> anyhow::Result<Measurement> {
    match kind {
        ScenarioKind::TcpThroughput => tcp_throughput::run(params, target_addr, origin),
        ScenarioKind::TcpRr => tcp_rr::run(params, target_addr),
        ScenarioKind::ConnRate => conn_rate::run(params, target_addr),
        ScenarioKind::Http1 => http1::run(params, target_addr),
        ScenarioKind::H2 => h2::run(params, target_addr),
        ScenarioKind::IdleConns => {
            idle_conns::run(params, target_addr, proxy_pids, idle_conns::Probe::Echo)
        }
        ScenarioKind::IdleHttp1 => {
            idle_conns::run(params, target_addr, proxy_pids, idle_conns::Probe::Http1)
        }
    }
}

/// Joins the client threads, keeping the first error.
fn join_all<T>(
    handles: Vec<std::thread::ScopedJoinHandle<'_, anyhow::Result<T>>>,
) -> anyhow::Result<Vec<T>> {
    handles
        .into_iter()
        .map(|handle| {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("client thread panicked"))?
        })
        .collect()
}
