//! What the demo prints once its traffic is done: the balancer's split
//! between the fast and the slow origin (counted by the origins), each
//! proxy's view of the traffic from its `/metrics` (the mesh labels
//! included), and the commands to try next.

use std::net::SocketAddr;
use std::time::Duration;

use super::admin;
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

/// Each proxy's page once it has counted every request, then a summary of
/// what it says about them.
pub fn proxies(proxies: &[Proxy], traffic: &Traffic) -> anyhow::Result<()> {
    let expected = traffic.http_requests() as f64;
    for proxy in proxies {
        let direction = [("direction", proxy.direction)];
        let (page, counted) = admin::metrics_when(proxy.admin, COUNTED_LIMIT, |page| {
            admin::sum(page, "response_total", &direction) >= expected
        })?;
        if !counted {
            println!(
                "demo: {} counted {} of the {expected} responses within {COUNTED_LIMIT:?}",
                proxy.name,
                admin::sum(&page, "response_total", &direction)
            );
        }
        println!("demo: {} ({}/metrics):", proxy.name, proxy.admin);
        summary(&page);
    }
    Ok(())
}

/// The request and connection series of a page that carry TLS labels,
/// compact: what `ringside stat` turns into a table.
fn summary(page: &str) {
    let wanted = ["request_total", "tcp_open_total"];
    for line in page.lines().filter(|line| !line.starts_with('#')) {
        let metric = line.split(['{', ' ']).next().unwrap_or("");
        if wanted.contains(&metric) && line.contains("tls=") && !line.ends_with(" 0") {
            println!("  {line}");
        }
    }
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
