//! The command line: `loadtest origin KIND` runs one origin in the
//! foreground; `loadtest compare` runs scenarios against targets.

use crate::origins::OriginKind;
use crate::scenarios::ScenarioKind;
use crate::targets::TargetKind;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "loadtest",
    version,
    about = "Load tests for ringside, side by side with no proxy, HAProxy and nginx"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one origin in the foreground until killed; prints its address.
    Origin {
        kind: OriginKind,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Response body bytes (http1, h2).
        #[arg(long, default_value_t = 1024)]
        size: usize,
    },
    /// Run scenarios against targets, rounds interleaved, and print a table.
    Compare(Box<CompareArgs>),
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// The scenario to run.
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    pub scenario: Option<ScenarioKind>,
    /// Run every scenario; writes NAME.json and NAME.svg into --out-dir.
    #[arg(long)]
    pub all: bool,
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,ringside,haproxy,nginx"
    )]
    pub targets: Vec<TargetKind>,
    /// How long each scenario runs against each target, per round.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Write the result as JSON (single scenario).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the chart as SVG (single scenario).
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Where --all writes its JSON and SVG files.
    #[arg(long, default_value = "loadtest-results")]
    pub out_dir: PathBuf,
    /// ringside's shards; HAProxy threads and nginx workers are sized to match.
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
    /// The ringside binary [default: the workspace's target/release/ringside].
    #[arg(long, env = "RINGSIDE_BIN")]
    pub ringside: Option<PathBuf>,
    /// The haproxy binary [default: found on PATH].
    #[arg(long, env = "HAPROXY_BIN")]
    pub haproxy_bin: Option<PathBuf>,
    /// The nginx binary [default: found on PATH].
    #[arg(long, env = "NGINX_BIN")]
    pub nginx_bin: Option<PathBuf>,
    /// tcp-throughput: concurrent streams.
    #[arg(long, default_value_t = 2)]
    pub streams: usize,
    /// tcp-rr, conn-rate, http1: client connections (a thread each).
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// tcp-rr: offered requests per second over all connections.
    #[arg(long, default_value_t = 5000)]
    pub rate: u64,
    /// tcp-rr: request and response bytes.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// http1, h2: response body bytes.
    #[arg(long, default_value_t = 1024)]
    pub body_size: usize,
    /// h2: concurrent streams over the one connection.
    #[arg(long, default_value_t = 32)]
    pub h2_streams: usize,
    /// idle-conns: connections to hold open (lowered to fit the fd limit, with a note).
    #[arg(long, default_value_t = 10_000)]
    pub idle_conns: usize,
}
