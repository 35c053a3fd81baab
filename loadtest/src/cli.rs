//! The command line: `loadtest origin KIND` runs one origin in the
//! foreground; `loadtest compare` runs scenarios against targets.

use crate::origins::OriginKind;
use crate::scenarios::{self, ScenarioKind};
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
    /// Run ringside under mixed load with faults injected; exit non-zero on
    /// any lost transfer or leaked resource.
    Soak(SoakArgs),
}

#[derive(Args, Debug, Clone)]
pub struct SoakArgs {
    /// How long the load and the faults run (the warm-up, settling and the
    /// drain add about 10 s).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Byte-stream connections at a time (a thread each).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// HTTP/2 connections at a time, each with 4 streams at a time.
    #[arg(long, default_value_t = 4)]
    pub h2_connections: usize,
    /// Largest payload of a transfer; sizes spread over the powers of two up to it.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_size: usize,
    /// ringside's shards. One by default: the pooled HTTP/2 upstream
    /// connection the warm-up opens is then part of the baseline; with more,
    /// the warm-up cannot be sure to reach every shard.
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
    /// The ringside binary [default: the one built beside this loadtest].
    #[arg(long, env = "RINGSIDE_BIN")]
    pub ringside: Option<PathBuf>,
    /// Seed for sizes, payloads and choices [default: from the clock]; the
    /// report prints it, so a failing soak can be run again alike.
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// The scenarios to run, comma-separated; with more than one, each
    /// writes NAME.json and NAME.svg into --out-dir.
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub scenario: Vec<ScenarioKind>,
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
    /// Write the result as JSON (one scenario).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the chart as SVG (one scenario).
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Where several scenarios, or --all, write their JSON and SVG files
    /// [default: target/loadtest-results in the workspace, or under
    /// $CARGO_TARGET_DIR].
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Print one Markdown table of every scenario on stdout, headed by the
    /// date, commit, machine and this command (BENCHMARKS.md opens with
    /// it); the plain tables then go to stderr as each scenario ends.
    #[arg(long)]
    pub markdown: bool,
    /// ringside's shards; HAProxy threads and nginx workers are sized to match.
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
    /// The ringside binary [default: target/release/ringside in the
    /// workspace, or under $CARGO_TARGET_DIR].
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
    /// idle-conns, idle-http1: connections to hold open (lowered to fit the fd limit, with a note).
    #[arg(long, default_value_t = 10_000)]
    pub idle_conns: usize,
}

/// One scenario to run and the files its result goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioRun {
    pub scenario: ScenarioKind,
    pub json: Option<PathBuf>,
    pub svg: Option<PathBuf>,
}

impl CompareArgs {
    /// `--out-dir`, else a folder under `target/` that no commit holds.
    pub fn out_dir(&self) -> PathBuf {
        self.out_dir
            .clone()
            .unwrap_or_else(crate::workspace::default_out_dir)
    }

    /// The scenarios in the order given, each once. One writes where
    /// `--json` and `--svg` say; several write NAME.json and NAME.svg into
    /// `--out-dir`, since one path cannot hold them all.
    pub fn runs(&self) -> anyhow::Result<Vec<ScenarioRun>> {
        let mut chosen: Vec<ScenarioKind> = Vec::new();
        let asked = if self.all {
            &scenarios::ALL[..]
        } else {
            &self.scenario[..]
        };
        for &scenario in asked {
            if !chosen.contains(&scenario) {
                chosen.push(scenario);
            }
        }
        if let [scenario] = chosen[..] {
            return Ok(vec![ScenarioRun {
                scenario,
                json: self.json.clone(),
                svg: self.svg.clone(),
            }]);
        }
        anyhow::ensure!(
            self.json.is_none() && self.svg.is_none(),
            "--json and --svg name one scenario's files; {} scenarios write NAME.json and NAME.svg into --out-dir",
            chosen.len()
        );
        let out_dir = self.out_dir();
        Ok(chosen
            .into_iter()
            .map(|scenario| ScenarioRun {
                scenario,
                json: Some(out_dir.join(format!("{}.json", scenario.name()))),
                svg: Some(out_dir.join(format!("{}.svg", scenario.name()))),
            })
            .collect())
    }
}
