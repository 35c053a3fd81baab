//! `loadtest soak`: ringside under mixed load with faults injected at the
//! same time, judged on loss and on leaks rather than speed.
//!
//! Each fault has its own route (or, for a client's reset, its own tag on
//! the transfer), so that every failure can be attributed without guessing
//! (see [`ledger`]). The routes:
//!
//! | route    | protocol | upstreams                         | fault           |
//! | -------- | -------- | --------------------------------- | --------------- |
//! | opaque   | opaque   | echo                              | none            |
//! | restart  | opaque   | echo killed and restarted, echo   | origin-restart  |
//! | http1    | http1    | a name: 127.0.0.1 or .2, flipping | DNS change      |
//! | reset    | http1    | an origin that resets             | origin-reset    |
//! | stall    | http1    | an origin that never answers      | origin-stall    |
//! | h2       | http2    | an h2c echo origin                | none            |
//!
//! Clients on the healthy routes also reset some of their own connections
//! part way. Two changes touch the routes without failing anything: the
//! config is reloaded every few seconds, alternating between two versions
//! (see [`reload`]), and the HTTP/1 route's name flips between its two
//! origins (see [`dns`]). The order: start, warm up, let ringside settle and take the
//! baseline, run the load, wait for ringside to return to the baseline, then
//! drain: SIGTERM with slow transfers in flight, which must finish.

pub mod clients;
mod dns;
mod h2;
mod http1;
pub mod ledger;
mod origins;
pub mod payload;
mod periodic;
mod proxy;
mod reload;
mod resources;
mod restart;

use crate::cli::SoakArgs;
use crate::origins::{Origin, OriginKind};
use crate::proc_stats;
use crate::targets::ProxyProcess;
use anyhow::bail;
use clients::Plan;
use ledger::{DrainWindow, Fault, Kind, Ledger, Outcome, Transfer};
use origins::{Behaviour, ThreadOrigin};
use payload::Rng;
use periodic::Periodic;
use proxy::{has_response_timeout, ringside_binary, start_ringside, Configs};
use reload::Reloads;
use resources::Usage;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long ringside gets to finish connections after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Longest a transfer on a healthy route may block on one read or write:
/// past it, it failed (and, with no fault to explain it, is a loss).
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The stall route's `response_timeout`, when this ringside has the key.
const STALL_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The stall route's client gives up after this long: well after ringside's
/// 504 should have come, or, on a ringside without response timeouts, as
/// the only end a stalled request has.
const STALL_CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
const STALL_CLIENT_TIMEOUT_AFTER_504: Duration = Duration::from_secs(5);
/// Bound on every wait for ringside to settle or come back to its baseline;
/// the slowest part is its pooled HTTP/1 upstream connections idling out.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest body on the reset and stall routes: they never deliver it anyway.
const FAULTED_MAX_BYTES: usize = 64 * 1024;
/// In-flight transfers at the SIGTERM, half opaque echo and half chunked
/// HTTP/1 uploads, each 256 KiB paced over about 0.8 s (16 KiB per 50 ms).
const DRAIN_TRANSFERS: usize = 8;
const DRAIN_BYTES: usize = 256 * 1024;
const DRAIN_PACE: Duration = Duration::from_millis(50);
/// A reload this often: about ten in the 20 s CI soak.
const RELOAD_PERIOD: Duration = Duration::from_secs(2);
/// The HTTP/1 route's name changes its address this often: three times its
/// TTL, so that ringside serves each address for a while.
const DNS_FLIP_PERIOD: Duration = Duration::from_secs(3);

/// One `[[route]]` of the soak's config: name, protocol, upstreams.
type RouteSpec = (&'static str, &'static str, Vec<String>);

/// Where each route listens.
#[derive(Clone, Copy, Debug)]
struct Routes {
    opaque: SocketAddr,
    restart: SocketAddr,
    http1: SocketAddr,
    reset: SocketAddr,
    stall: SocketAddr,
    h2: SocketAddr,
}

impl Routes {
    /// In the order of the config, for the report.
    fn all(&self) -> [SocketAddr; 6] {
        [
            self.opaque,
            self.restart,
            self.http1,
            self.reset,
            self.stall,
            self.h2,
        ]
    }
}

/// Runs the soak and prints its report; `Ok(false)` on any loss or leak.
pub fn run(args: &SoakArgs) -> anyhow::Result<bool> {
    proc_stats::raise_fd_limit();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.as_nanos() as u64)
    });
    let clock = Instant::now();
    let echo = Origin::start(OriginKind::Echo, "127.0.0.1:0".parse()?, 0)?;
    let steady = Origin::start(OriginKind::Echo, "127.0.0.1:0".parse()?, 0)?;
    let restarted = Origin::start(OriginKind::Echo, "127.0.0.1:0".parse()?, 0)?;
    let flips = dns::Flips::start()?;
    let resetting = ThreadOrigin::start(Behaviour::Reset)?;
    let stalling = ThreadOrigin::start(Behaviour::Stall)?;
    let h2_origin = h2::EchoOrigin::start()?;
    let addr = |origin: SocketAddr| vec![origin.to_string()];
    let upstreams: [RouteSpec; 6] = [
        ("opaque", "opaque", addr(echo.addr())),
        (
            "restart",
            "opaque",
            vec![restarted.addr().to_string(), steady.addr().to_string()],
        ),
        ("http1", "http1", vec![flips.upstream()]),
        ("reset", "http1", addr(resetting.addr())),
        ("stall", "http1", addr(stalling.addr())),
        ("h2", "http2", addr(h2_origin.addr())),
    ];
    let binary = ringside_binary(args)?;
    let response_timeout = has_response_timeout(&binary).then_some(STALL_RESPONSE_TIMEOUT);
    let configs = Configs::new(
        args.shards,
        flips.server.addr(),
        &upstreams,
        response_timeout,
    )?;
    let (mut ringside, config_path, admin) = start_ringside(&binary, &configs)?;
    let routes = configs.routes;
    let pid = ringside.pid();
    println!(
        "soak: {} of load, {} connections at a time (+{} HTTP/2), seed {seed}, ringside pid {pid} ({}), {} shard(s)",
        humantime::format_duration(args.duration),
        args.connections,
        args.h2_connections,
        binary.display(),
        args.shards,
    );
    for ((name, protocol, addrs), listen) in upstreams.iter().zip(routes.all()) {
        println!("route {name:<8} {protocol:<7} {listen} -> {addrs:?}");
    }
    println!(
        "reload: every {RELOAD_PERIOD:?}, alternating with a config that adds a route on {} and reverses the restart route's upstreams",
        configs.extra
    );
    println!(
        "dns: {} flips between {} and {} every {DNS_FLIP_PERIOD:?} (TTL {}s, min_ttl {})",
        dns::NAME,
        flips.origins[0].addr(),
        flips.origins[1].addr(),
        dns::TTL,
        dns::MIN_TTL,
    );
    match response_timeout {
        Some(timeout) => println!(
            "origin-stall: the route's response_timeout is {timeout:?}; every stalled request must end in ringside's 504"
        ),
        None => println!(
            "origin-stall: this ringside has no response_timeout; the client gives up after {STALL_CLIENT_TIMEOUT:?} and the origin releases its stalled connections before the leak check"
        ),
    }

    dns::wait_resolved(admin, SETTLE_TIMEOUT)?;
    warm_up(&routes, clock)?;
    let start = resources::settle(pid, admin, SETTLE_TIMEOUT)?;

    let restarter = restart::Restarter::start(restarted, clock, seed)?;
    let reloader = Periodic::start(
        "reload",
        RELOAD_PERIOD,
        Reloads::new(config_path, admin, configs.text),
    )?;
    let flipper = Periodic::start("dns-flip", DNS_FLIP_PERIOD, flips)?;
    let mut ledger = Ledger {
        transfers: load(args, &routes, seed, clock, response_timeout.is_some()),
        stall_answers_504: response_timeout.is_some(),
        ..Ledger::default()
    };
    if response_timeout.is_none() {
        // Without a response timeout nothing in ringside ends a request its
        // upstream never answers (issue #13): only the origin can.
        stalling.release();
    }
    let (restarts, _restarted) = restarter.finish()?;
    ledger.restarts = restarts;
    let flips = flipper.finish()?;
    let mut reloads = reloader.finish()?;
    reloads.restore()?;
    let reloads_counted = reload::counted_ok(admin)?;
    let lookups = dns::lookups_ok(admin)?;
    let end = resources::wait_for_return(pid, admin, &start, SETTLE_TIMEOUT)?;
    let still_open = if end.returned_to(&start) {
        Vec::new()
    } else {
        resources::open_connection_series(admin)?
    };

    let (drained, drain, exit) = drain(&mut ringside, &routes, admin, &start, clock)?;
    ledger.transfers.extend(drained);
    ledger.drain = Some(drain);

    let summary = ledger.summary();
    print!("{}", summary.render(ledger.restarts.len()));
    println!(
        "origins: reset {} connections, stalled {}",
        resetting.accepted(),
        stalling.accepted()
    );
    let returned = end.returned_to(&start);
    if !still_open.is_empty() {
        println!("connections still open after the load:");
        for series in &still_open {
            println!("  {series}");
        }
    }
    let reloads_ok = reloads.applied == reloads_counted;
    println!(
        "reload: {} applied (POST /reload answered 200), ringside_config_reloads_total{{result=\"ok\"}} {reloads_counted}{}",
        reloads.applied,
        if reloads_ok { "" } else { ": MISMATCH" },
    );
    if let Some(answer) = &reloads.first_answer {
        println!("reload: the first answered: {answer}");
    }
    let served = flips.origins.each_ref().map(ThreadOrigin::accepted);
    let dns_ok = flips.count == 0 || served.iter().all(|&count| count > 0);
    println!(
        "dns: {} flips, {} lookups by ringside, connections to {} {} and to {} {}{}",
        flips.count,
        lookups,
        flips.origins[0].addr(),
        served[0],
        flips.origins[1].addr(),
        served[1],
        if dns_ok {
            ""
        } else {
            ": ringside did not follow the flips"
        },
    );
    let rss_ok = end.rss_within_bound(&start);
    print!("{}", resources::render(&start, &end));
    let exit_ok = matches!(exit, Some(status) if status.success());
    println!(
        "drain: ringside {}",
        match exit {
            Some(status) => format!("exited with {status}"),
            None => format!("had not exited {SHUTDOWN_GRACE:?} after its grace; killed"),
        }
    );
    let passed = summary.lost() == 0 && returned && rss_ok && exit_ok && reloads_ok && dns_ok;
    let verdict = if passed { "PASS" } else { "FAIL" };
    println!(
        "{verdict}: {} lost, resources {}, RSS {}, drain {}, {} reloads {}, {} DNS flips {}",
        summary.lost(),
        if returned { "returned" } else { "LEAKED" },
        if rss_ok { "within bound" } else { "OVER BOUND" },
        if exit_ok { "clean" } else { "FAILED" },
        reloads.applied,
        if reloads_ok { "counted" } else { "MISCOUNTED" },
        flips.count,
        if dns_ok { "followed" } else { "NOT FOLLOWED" },
    );
    if !exit_ok {
        eprintln!("ringside's log:\n{}", ringside.log());
        ringside.stop();
    }
    Ok(passed)
}

/// One transfer of each kind on the healthy routes: a soak against a
/// ringside that cannot carry them at all would report only noise.
fn warm_up(routes: &Routes, clock: Instant) -> anyhow::Result<()> {
    let kinds = [
        Kind::OpaqueEcho,
        Kind::H1UploadFixed,
        Kind::H1UploadChunked,
        Kind::H1DownloadFixed,
        Kind::H1DownloadChunked,
    ];
    for (seed, kind) in kinds.into_iter().enumerate() {
        let target = if kind == Kind::OpaqueEcho {
            routes.opaque
        } else {
            routes.http1
        };
        let plan = plan(kind, target, seed as u64, 100_000);
        let outcome = clients::run(&plan);
        if outcome != Outcome::Exact {
            bail!(
                "warm-up {} through ringside failed: {outcome:?}",
                kind.name()
            );
        }
    }
    let h2 = h2::ClientPlan {
        target: routes.h2,
        seed: 0,
        concurrent: 1,
        streams_per_connection: 1,
        max_size: 100_000,
        reset_percent: 0,
        io_timeout: IO_TIMEOUT,
    };
    for transfer in h2::run_client(h2, clock, Instant::now()) {
        if transfer.outcome != Outcome::Exact {
            bail!(
                "warm-up h2-stream through ringside failed: {:?}",
                transfer.outcome
            );
        }
    }
    Ok(())
}

fn plan(kind: Kind, target: SocketAddr, seed: u64, size: usize) -> Plan {
    Plan {
        kind,
        target,
        seed,
        size,
        reset_after: None,
        pace: None,
        io_timeout: IO_TIMEOUT,
    }
}

/// `args.connections` workers of byte-stream transfers and
/// `args.h2_connections` HTTP/2 clients, until the duration is over.
fn load(
    args: &SoakArgs,
    routes: &Routes,
    seed: u64,
    clock: Instant,
    stall_answers_504: bool,
) -> Vec<Transfer> {
    let deadline = Instant::now() + args.duration;
    let max_size = args.max_size;
    let stall_timeout = if stall_answers_504 {
        STALL_CLIENT_TIMEOUT_AFTER_504
    } else {
        STALL_CLIENT_TIMEOUT
    };
    let workers: Vec<_> = (0..args.connections)
        .map(|index| {
            let routes = *routes;
            let seed = seed ^ (index as u64 + 1).rotate_left(32);
            std::thread::spawn(move || {
                worker(&routes, seed, max_size, stall_timeout, clock, deadline)
            })
        })
        .collect();
    let h2_clients: Vec<_> = (0..args.h2_connections)
        .map(|index| {
            let plan = h2::ClientPlan {
                target: routes.h2,
                seed: seed ^ (index as u64 + 1).rotate_left(48),
                concurrent: 4,
                streams_per_connection: 32,
                max_size,
                reset_percent: 5,
                io_timeout: IO_TIMEOUT,
            };
            std::thread::spawn(move || h2::run_client(plan, clock, deadline))
        })
        .collect();
    workers
        .into_iter()
        .chain(h2_clients)
        .flat_map(|thread| thread.join().unwrap_or_default())
        .collect()
}

/// One connection's worth of work after another, each picked at random:
/// in thousandths, 300 opaque echo, 100 echo on the restart route, 440
/// HTTP/1 on the healthy route, 140 on the resetting origin and 20 on the
/// stalling one (each of those holds its worker for a client timeout).
fn worker(
    routes: &Routes,
    seed: u64,
    max_size: usize,
    stall_timeout: Duration,
    clock: Instant,
    deadline: Instant,
) -> Vec<Transfer> {
    const HTTP1: [Kind; 4] = [
        Kind::H1UploadFixed,
        Kind::H1UploadChunked,
        Kind::H1DownloadFixed,
        Kind::H1DownloadChunked,
    ];
    let mut rng = Rng::new(seed);
    let mut transfers = Vec::new();
    while Instant::now() < deadline {
        let pick = rng.below(1000);
        let http1 = HTTP1[rng.below(4) as usize];
        let (kind, target, fault) = match pick {
            0..300 => (Kind::OpaqueEcho, routes.opaque, None),
            300..400 => (Kind::OpaqueEcho, routes.restart, Some(Fault::OriginRestart)),
            400..840 => (http1, routes.http1, None),
            840..980 => (http1, routes.reset, Some(Fault::OriginReset)),
            _ => (http1, routes.stall, Some(Fault::OriginStall)),
        };
        let faulted_origin = matches!(fault, Some(Fault::OriginReset | Fault::OriginStall));
        let size = rng.size(if faulted_origin {
            FAULTED_MAX_BYTES
        } else {
            max_size
        });
        let mut plan = plan(kind, target, rng.next_u64(), size);
        let mut exposed_to = fault;
        if !faulted_origin && size > 0 && rng.percent(5) {
            plan.reset_after = Some(rng.below(size as u64));
            exposed_to = Some(Fault::ClientReset);
        }
        if fault == Some(Fault::OriginStall) {
            plan.io_timeout = stall_timeout;
        }
        transfers.push(timed(&plan, exposed_to, clock));
    }
    transfers
}

/// Slow transfers in flight, then SIGTERM: they must finish within the
/// grace, a connection after it is turned away, and ringside exits.
fn drain(
    ringside: &mut ProxyProcess,
    routes: &Routes,
    admin: SocketAddr,
    start: &Usage,
    clock: Instant,
) -> anyhow::Result<(Vec<Transfer>, DrainWindow, Option<std::process::ExitStatus>)> {
    let pid = ringside.pid();
    let slow: Vec<_> = (0..DRAIN_TRANSFERS)
        .map(|index| {
            let (kind, target) = if index % 2 == 0 {
                (Kind::OpaqueEcho, routes.opaque)
            } else {
                (Kind::H1UploadChunked, routes.http1)
            };
            let mut plan = plan(kind, target, index as u64, DRAIN_BYTES);
            plan.pace = Some(DRAIN_PACE);
            std::thread::spawn(move || timed(&plan, None, clock))
        })
        .collect();
    // In flight means ringside holds them: each is at least its client's
    // connection in tcp_open_connections.
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let now = resources::measure(pid, admin)?;
        if now.open_connections >= start.open_connections + DRAIN_TRANSFERS as u64 {
            break;
        }
        if Instant::now() >= deadline {
            bail!("the drain's {DRAIN_TRANSFERS} transfers never all reached ringside: {now:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let window = DrainWindow {
        sigterm: clock.elapsed(),
        grace: SHUTDOWN_GRACE,
    };
    ringside.terminate();
    let mut transfers: Vec<Transfer> = slow.into_iter().filter_map(|t| t.join().ok()).collect();
    // After the SIGTERM the listeners are closed: this one is refused.
    transfers.push(timed(
        &plan(Kind::OpaqueEcho, routes.opaque, 99, 1024),
        None,
        clock,
    ));
    let exit = ringside.wait_exit(SHUTDOWN_GRACE * 2);
    Ok((transfers, window, exit))
}

/// Runs `plan` and records it.
fn timed(plan: &Plan, exposed_to: Option<Fault>, clock: Instant) -> Transfer {
    let started = clock.elapsed();
    let outcome = clients::run(plan);
    Transfer {
        kind: plan.kind,
        exposed_to,
        started,
        ended: clock.elapsed(),
        outcome,
    }
}
