//! The side-by-side runner: for each scenario, one origin, then rounds in
//! which every target gets its turn (A B C, A B C, ...) so that drift of the
//! machine (thermal, page cache, a noisy neighbour) hits all targets alike.
//! Each turn starts the proxy afresh, measures, and stops it.

use crate::cli::CompareArgs;
use crate::origins::Origin;
use crate::proc_stats;
use crate::provenance::Provenance;
use crate::report::{self, Comparison, Outcome, Round};
use crate::scenarios::{self, LoadParams, ScenarioKind};
use crate::targets::{self, TargetKind, TargetOptions};
use crate::workspace;
use anyhow::Context;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// fds kept back from idle-conns for listeners, pipes, logs and probes, in
/// this process and in the proxy alike.
const FD_HEADROOM: usize = 1000;
/// Connections a proxy is sized for outside idle-conns.
const DEFAULT_MAX_CONNECTIONS: usize = 4096;

pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let runs = args.runs()?;
    // Read before any load, so the header says how busy the machine was
    // without this run's own doing.
    let provenance = args.markdown.then(|| Provenance::gather(args));
    let fd_limit = proc_stats::raise_fd_limit() as usize;
    if runs.len() > 1 {
        let out_dir = args.out_dir();
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("creating {}", out_dir.display()))?;
    }
    let mut comparisons = Vec::new();
    for run in runs {
        let comparison = run_scenario(run.scenario, args, fd_limit)?;
        // With --markdown, stdout is the document alone, ready to paste.
        if args.markdown {
            eprint!("{}", report::table(&comparison));
        } else {
            print!("{}", report::table(&comparison));
        }
        if let Some(path) = run.json {
            write(
                &path,
                &serde_json::to_string_pretty(&report::json(&comparison))?,
            )?;
        }
        if let Some(path) = run.svg {
            write(&path, &report::svg(&comparison))?;
        }
        comparisons.push(comparison);
    }
    if let Some(provenance) = provenance {
        print!("{}", report::markdown(&comparisons, &provenance));
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn target_options(args: &CompareArgs, max_connections: usize, fd_limit: usize) -> TargetOptions {
    TargetOptions {
        shards: args.shards.max(1),
        ringside_bin: args
            .ringside
            .clone()
            .unwrap_or_else(workspace::default_ringside_bin),
        haproxy_bin: haproxy_bin(args),
        nginx_bin: nginx_bin(args),
        max_connections,
        fd_limit,
    }
}

pub(crate) fn haproxy_bin(args: &CompareArgs) -> PathBuf {
    args.haproxy_bin
        .clone()
        .unwrap_or_else(|| targets::find_on_path("haproxy"))
}

pub(crate) fn nginx_bin(args: &CompareArgs) -> PathBuf {
    args.nginx_bin
        .clone()
        .unwrap_or_else(|| targets::find_on_path("nginx"))
}

fn run_scenario(
    scenario: ScenarioKind,
    args: &CompareArgs,
    fd_limit: usize,
) -> anyhow::Result<Comparison> {
    let mut notes = Vec::new();
    // The client and the origin share this process, and a proxy holds two
    // fds per connection under the same limit: K must fit twice.
    let idle_conns_limit = fd_limit.saturating_sub(FD_HEADROOM) / 2;
    let idle_conns = args.idle_conns.min(idle_conns_limit);
    if scenario.holds_idle_connections() && idle_conns < args.idle_conns {
        notes.push(format!(
            "idle-conns lowered from {} to {idle_conns}: the fd limit is {fd_limit} and each side needs 2 fds per connection",
            args.idle_conns
        ));
    }
    let params = LoadParams {
        duration: args.duration,
        streams: args.streams,
        connections: args.connections,
        rate: args.rate,
        size: args.size,
        h2_streams: args.h2_streams,
        idle_conns,
    };
    let max_connections = if scenario.holds_idle_connections() {
        idle_conns + 64
    } else {
        DEFAULT_MAX_CONNECTIONS
    };
    let options = target_options(args, max_connections, fd_limit);
    let origin_size = if scenario.origin() == crate::origins::OriginKind::Echo {
        args.size
    } else {
        args.body_size
    };
    let origin = Origin::start(scenario.origin(), "127.0.0.1:0".parse()?, origin_size)?;
    let mode = scenario.proxy_mode();

    let mut outcomes: Vec<(TargetKind, Outcome)> = Vec::new();
    for &target in &args.targets {
        if outcomes.iter().any(|(seen, _)| *seen == target) {
            continue;
        }
        let outcome = if scenario.needs_proxy() && target == TargetKind::Direct {
            Outcome::Skipped("no proxy process to measure".into())
        } else if let Some(reason) = targets::unavailable(target, &options, mode) {
            Outcome::Skipped(reason)
        } else {
            Outcome::Measured(Vec::new())
        };
        outcomes.push((target, outcome));
    }

    let round_count = args.rounds.max(1);
    let progress = Progress::new();
    for round in 1..=round_count {
        for (target, outcome) in outcomes.iter_mut() {
            let Outcome::Measured(rounds) = outcome else {
                continue;
            };
            progress.show(&format!(
                "[{}] round {round}/{round_count} {} ...",
                scenario.name(),
                target.name()
            ));
            match run_once(scenario, *target, &options, &params, &origin) {
                Ok(result) => rounds.push(result),
                Err(error) => {
                    *outcome = Outcome::Skipped(format!("failed in round {round}: {error:#}"));
                }
            }
        }
    }
    progress.done();
    Ok(Comparison {
        scenario,
        outcomes,
        rounds: round_count,
        duration: args.duration,
        shards: options.shards,
        params,
        notes,
    })
}

fn run_once(
    scenario: ScenarioKind,
    target: TargetKind,
    options: &TargetOptions,
    params: &LoadParams,
    origin: &Origin,
) -> anyhow::Result<Round> {
    let running = targets::start(target, options, origin.addr(), scenario.proxy_mode())?;
    let pids = running.pids();
    let cpu_before = running.cpu_seconds();
    let measured = scenarios::run(scenario, params, running.addr, origin, &pids);
    let cpu_seconds = running
        .process
        .as_ref()
        .map(|_| running.cpu_seconds() - cpu_before);
    running.stop();
    Ok(Round {
        measurement: measured?,
        cpu_seconds,
    })
}

/// One progress line on stderr, rewritten in place on a terminal.
struct Progress {
    terminal: bool,
}

impl Progress {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&self, line: &str) {
        if self.terminal {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn done(&self) {
        if self.terminal {
            eprint!("\r\x1b[K");
        }
    }
}
