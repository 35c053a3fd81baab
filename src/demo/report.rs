//! What the demo prints once its traffic is done: the balancer's split
//! between the fast and the slow origin (counted by the origins), each
//! proxy's `ringside stat` table over the traffic's window (from a scrape
//! of its `/metrics` before the traffic and one after, once it has
//! counted every request), and the commands to try next.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringside::stat::{scrape, OutputFormat, Scrape, StatTable};

use super::origins::Origin;
use super::traffic::Traffic;

/// How long the proxies may take to count the last responses: they count
/// a response as its last byte leaves, a moment after the client has it.
const COUNTED_LIMIT: Duration = Duration::from_secs(10);

/// One proxy, as the report names it.
pub struct Proxy {
    pub name: &'static str,
    pub admin: SocketAddr,
    pub direction: &'static str,
}

pub fn traffic_done(traffic: &Traffic) {
    println!(
        "demo: traffic done in {:.2?}: {} HTTP/1 requests, {} HTTP/2 requests, {} gRPC calls, \
         {} opaque streams of {} MiB; {} bytes sent and every one checked on its way back: no mismatch",
        traffic.elapsed,
        traffic.http1_requests,
        traffic.http2_requests,
        traffic.grpc_calls,
        traffic.opaque_connections,
        traffic.opaque_bytes_each >> 20,
        traffic.checked_bytes,
    );
}

pub fn balancing(origins: &[Origin], traffic: &Traffic) {
    let total = traffic.http_requests() as f64;
    let shares: Vec<String> = origins
        .iter()
        .map(|origin| {
            let served = origin.served.requests();
            format!(
                "the {} origin answered {served} ({:.0}%)",
                origin.name,
                100.0 * served as f64 / total
            )
        })
        .collect();
    println!(
        "demo: balancing (P2C over peak-EWMA latency, in proxy A): {}",
        shares.join(", ")
    );
}

/// Both proxies' pages before the traffic, the start of its window.
pub struct Before {
    scrapes: Vec<Scrape>,
    at: Instant,
}

pub fn before(proxies: &[Proxy]) -> anyhow::Result<Before> {
    let scrapes = proxies.iter().map(|proxy| scrape(proxy.admin));
    Ok(Before {
        scrapes: scrapes.collect::<anyhow::Result<_>>()?,
        at: Instant::now(),
    })
}

/// Each proxy's table over the traffic's window, once it has counted every
/// response: wide, for the `IDENTITY` column beside `TLS`.
pub fn tables(proxies: &[Proxy], before: &Before, traffic: &Traffic) -> anyhow::Result<()> {
    let expected = traffic.http_requests() as f64;
    for (proxy, earlier) in proxies.iter().zip(&before.scrapes) {
        let deadline = Instant::now() + COUNTED_LIMIT;
        let (after, responses) = loop {
            let after = scrape(proxy.admin)?;
            let responses = responses(&after, proxy.direction);
            if responses >= expected || Instant::now() >= deadline {
                break (after, responses);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if responses < expected {
            println!(
                "demo: {} counted {responses} of the {expected} responses within {COUNTED_LIMIT:?}",
                proxy.name
            );
        }
        let table = StatTable::between(earlier, &after, before.at.elapsed());
        println!(
            "demo: {}: ringside stat --admin {} -o wide, over the traffic:",
            proxy.name, proxy.admin
        );
        print!("{}", table.render(OutputFormat::Wide));
    }
    Ok(())
}

/// The responses a page has counted in `direction`.
fn responses(page: &Scrape, direction: &str) -> f64 {
    let samples = page.named("response_total");
    let ours = samples.filter(|sample| sample.label("direction") == Some(direction));
    ours.map(|sample| sample.value).sum()
}

/// The commands to try while both proxies keep running.
pub fn try_next(outbound: SocketAddr, proxies: &[Proxy]) {
    let ringside = ringside_command();
    let (a, b) = (proxies[0].admin, proxies[1].admin);
    println!("demo: both proxies keep running. Try:");
    let commands = [
        (
            format!("curl -s http://{outbound}/"),
            "HTTP/1 through the mesh: the origin names your identity",
        ),
        (
            format!("curl -s --http2-prior-knowledge http://{outbound}/"),
            "the same over HTTP/2",
        ),
        (
            format!("echo hello | nc -N {} {}", outbound.ip(), outbound.port()),
            "opaque bytes, echoed",
        ),
        (format!("{ringside} stat --admin {a}"), "proxy A's table"),
        (format!("{ringside} stat --admin {b}"), "proxy B's table"),
        (format!("{ringside} top --admin {b}"), "live, q to quit"),
        (
            format!("curl -s http://{b}/metrics | grep client_id"),
            "the raw series",
        ),
    ];
    let width = commands.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    for (command, what) in commands {
        println!("  {command:width$}   # {what}");
    }
    println!("Stop with Ctrl-C (both proxies drain open connections first).");
}

/// How to run this binary from the working directory: `ringside` when it
/// is the one on PATH, else its path (`target/release/ringside` under
/// `cargo run --release`).
fn ringside_command() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "ringside".into();
    };
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("ringside") == exe));
    if on_path {
        return "ringside".into();
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let shown = exe.strip_prefix(&cwd).unwrap_or(&exe);
    shown.display().to_string()
}
