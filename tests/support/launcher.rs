//! The built `ringside` binary as a child process, and the text of its
//! `/metrics` as a user would scrape it. A test names its upstreams and the
//! flags it cares about; the launcher adds port-0 listeners and waits for
//! the `listening` lines, so no test sleeps, and a test holds a port of its
//! own (`ports`) only where it must name the port first.

use std::fmt::Display;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use super::output::{read_lines, Output};
use super::{eventually, http_get, http_request, TempPath, WAIT_STEP};

pub const BIN: &str = env!("CARGO_BIN_EXE_ringside");

/// A running ringside, killed when dropped.
pub struct Ringside {
    child: Child,
    pub admin: SocketAddr,
    pub routes: Vec<SocketAddr>,
    /// The transparent listeners' addresses, outbound first.
    pub transparent: Vec<SocketAddr>,
    /// Their IPv6 twins (`[::1]`, `[::]` beside `127.0.0.1`, `0.0.0.0`),
    /// in the same order, where the host has IPv6.
    pub transparent_v6: Vec<SocketAddr>,
    /// Held so the child never sees EPIPE on stdout.
    _stdout: BufReader<ChildStdout>,
}

/// The command line of a ringside before it starts: from `Launch::new`
/// (no route) or `Ringside::route_to` (one), for the tests that want more
/// than `routing_to`.
#[derive(Default)]
pub struct Launch {
    args: Vec<String>,
    /// The group ringside runs as, when not the test's: iptables rules
    /// exempt ringside's own connections by it (`-m owner --gid-owner`).
    gid: Option<u32>,
    /// `RINGSIDE_*` variables, for tests of a deployment that sets some.
    env: Vec<(String, String)>,
    /// The config file `--config` names, kept until ringside has read it.
    config: Option<TempPath>,
    /// A cgroup v2 directory ringside starts in (its placement reads the
    /// group's `cpu.max`), for the live quota test.
    cgroup: Option<String>,
    /// Soft and hard `RLIMIT_NOFILE` to start under.
    open_files: Option<u64>,
}

impl Launch {
    /// No route: the test adds what it wants.
    pub fn new() -> Launch {
        Launch::default()
    }

    pub fn gid(mut self, gid: u32) -> Launch {
        self.gid = Some(gid);
        self
    }

    /// Adds `flag value`.
    pub fn arg(mut self, flag: &str, value: impl Display) -> Launch {
        self.args.push(flag.to_string());
        self.args.push(value.to_string());
        self
    }

    /// Adds a command line as it stands, flags and values in order.
    pub fn args(mut self, args: impl IntoIterator<Item = impl Display>) -> Launch {
        self.args
            .extend(args.into_iter().map(|arg| arg.to_string()));
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Launch {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Starts ringside inside the cgroup v2 group at `dir`: a shell moves
    /// itself there, then becomes ringside, so that the group holds it
    /// before its first instruction.
    pub fn in_cgroup(mut self, dir: &str) -> Launch {
        self.cgroup = Some(dir.to_string());
        self
    }

    /// Starts ringside under an open-files limit (soft and hard) of
    /// `limit`, which it cannot raise.
    pub fn open_files_limit(mut self, limit: u64) -> Launch {
        self.open_files = Some(limit);
        self
    }

    pub fn shards(self, shards: usize) -> Launch {
        self.arg("--shards", shards)
    }

    pub fn start(self) -> Ringside {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut command = match &self.cgroup {
            None => Command::new(BIN),
            Some(dir) => {
                let mut shell = Command::new("sh");
                let script = r#"echo $$ > "$0/cgroup.procs" && exec "$@""#;
                shell.args(["-c", script, dir, BIN]);
                shell
            }
        };
        if let Some(gid) = self.gid {
            use std::os::unix::process::CommandExt;
            command.gid(gid);
        }
        if let Some(limit) = self.open_files {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            // SAFETY: runs in the forked child before exec and makes one
            // async-signal-safe system call on memory the closure owns.
            unsafe {
                command.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                });
            }
        }
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        // The file is read before the listening lines: it may go after.
        Ringside::spawn(command, &args)
    }
}

impl Ringside {
    /// One route from a port-0 listener to `upstreams`, with the default
    /// shard count (one per allowed CPU within the CPU quota) unless
    /// `Launch::shards` says otherwise.
    pub fn route_to(upstreams: impl IntoIterator<Item = SocketAddr>) -> Launch {
        let upstreams: Vec<String> = upstreams.into_iter().map(|a| a.to_string()).collect();
        Launch::new().arg("--route", format!("127.0.0.1:0={}", upstreams.join(",")))
    }

    /// One shard with one inbound route (its direction is set only in the
    /// config file) from a port-0 listener to `upstream`: its HTTP requests
    /// lose their `l5d-*` headers, and detection never fails open what may
    /// be HTTP.
    pub fn inbound_to(upstream: SocketAddr) -> Launch {
        let config = TempPath::holding(format!(
            "[[route]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{upstream}\"]\ndirection = \"inbound\"\n"
        ));
        let launch = Launch::new().arg("--config", config.as_str()).shards(1);
        Launch {
            config: Some(config),
            ..launch
        }
    }

    /// One shard with one route to `upstreams`, as most tests want it.
    pub fn routing_to(upstreams: impl IntoIterator<Item = SocketAddr>) -> Ringside {
        Self::route_to(upstreams).shards(1).start()
    }

    /// One shard with one route to `upstream` declared as `protocol`
    /// (`http1`, `http2`, `opaque`): no detection, which a route declares
    /// only in the config file.
    pub fn declared(protocol: &str, upstream: SocketAddr) -> Ringside {
        let config = TempPath::holding(format!(
            "[runtime]\nshards = 1\n\n[[route]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{upstream}\"]\nprotocol = \"{protocol}\"\n"
        ));
        // The file is read before the listening lines: it may go after.
        Ringside::start(&["--config", config.as_str()])
    }

    /// Starts ringside with `args` plus a port-0 admin address (unless
    /// `args` name one), and waits for its `listening` lines.
    pub fn start(args: &[&str]) -> Ringside {
        Ringside::spawn(Command::new(BIN), args)
    }

    fn spawn(mut command: Command, args: &[&str]) -> Ringside {
        // clap refuses a flag given twice.
        if !args.contains(&"--admin-addr") {
            command.args(["--admin-addr", "127.0.0.1:0"]);
        }
        command.args(args);
        Ringside::without_arguments(command).0
    }

    /// Starts `command` as it is (Linkerd mode takes no argument) and
    /// waits for its `listening` lines; also returns the other lines it
    /// printed before them.
    pub fn without_arguments(command: Command) -> (Ringside, Vec<String>) {
        let (ringside, printed, log) = Ringside::started(command);
        pass_on(log);
        (ringside, printed)
    }

    /// `without_arguments`, with its log (stderr) followed line by line,
    /// for the tests of what it logs.
    pub fn without_arguments_logged(command: Command) -> (Ringside, Vec<String>, Output) {
        let (ringside, printed, log) = Ringside::started(command);
        (ringside, printed, Output::from_lines(log))
    }

    /// Starts `command` and waits for its `listening` lines. Its log (its
    /// stderr) is read from the start, on a thread of its own (a full pipe
    /// would stop ringside), so that one that exits before it listens says
    /// why in the test's panic: CI shows the panic, and may leave out the
    /// log lines around it.
    fn started(mut command: Command) -> (Ringside, Vec<String>, Receiver<String>) {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ringside starts");
        let log = read_lines(child.stderr.take().unwrap());
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut admin, mut routes) = (None, Vec::new());
        let (mut transparent, mut transparent_v6) = (Vec::new(), Vec::new());
        let mut other = Vec::new();
        let mut line = String::new();
        // Route lines come first; the admin line is the last one.
        while admin.is_none() {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let status = child.wait();
                panic!(
                    "ringside exited before listening ({status:?}), logging:\n{}",
                    log.iter().collect::<Vec<_>>().join("\n")
                );
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["listening", "admin", addr] => admin = Some(addr.parse().unwrap()),
                ["listening", "route", addr, ..] => routes.push(addr.parse().unwrap()),
                ["listening", "outbound" | "inbound", addr] => {
                    transparent.push(addr.parse().unwrap())
                }
                ["listening", "outbound-ipv6" | "inbound-ipv6", addr] => {
                    transparent_v6.push(addr.parse().unwrap())
                }
                ["listening", ..] => {}
                _ => other.push(line.trim_end().to_string()),
            }
        }
        let ringside = Ringside {
            child,
            admin: admin.unwrap(),
            routes,
            transparent,
            transparent_v6,
            _stdout: stdout,
        };
        (ringside, other, log)
    }

    pub fn route(&self) -> SocketAddr {
        self.routes[0]
    }

    /// The process's fds numbered below `limit`: those an open-files limit
    /// of `limit` counts against (one inherited above it takes no slot).
    pub fn fds_below(&self, limit: usize) -> usize {
        let dir = format!("/proc/{}/fd", self.child.id());
        let fds = std::fs::read_dir(dir).expect("ringside runs");
        let numbers = fds.filter_map(|fd| fd.ok()?.file_name().to_str()?.parse::<usize>().ok());
        numbers.filter(|&fd| fd < limit).count()
    }

    /// Resident memory of the process in KiB (`VmRSS` in
    /// `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("ringside runs");
        let line = status.lines().find(|line| line.starts_with("VmRSS:"));
        let kib = line.and_then(|line| line.split_whitespace().nth(1));
        kib.and_then(|kib| kib.parse().ok()).expect("VmRSS in KiB")
    }

    /// User plus system CPU time the process has used, from
    /// `/proc/PID/stat`.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("ringside runs");
        // The command name (field 2) may hold spaces; fields 14 and 15
        // (utime, stime) count from the ')' that ends it.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf only reads a system constant.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / per_second)
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            thread::sleep(WAIT_STEP);
        }
        None
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.admin, path)
    }

    /// A bodiless POST to the admin server.
    pub fn post(&self, path: &str) -> (u16, String) {
        http_request(self.admin, "POST", path)
    }

    pub fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        Metrics(body)
    }

    /// Polls /ready until 200 (bounded).
    pub fn wait_ready(&self) {
        eventually("ringside ready", || self.get("/ready").0 == 200);
    }

    /// Waits until no client connection is open, so counters are final
    /// (pooled upstream HTTP connections may stay open by design).
    pub fn wait_idle(&self) -> Metrics {
        let mut last = None;
        eventually("all connections closed", || {
            let metrics = self.metrics();
            let idle = metrics.sum("tcp_open_connections", &[("peer", "src")]) == 0.0;
            last = Some(metrics);
            idle
        });
        last.unwrap()
    }
}

impl Drop for Ringside {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ringside's log lines into the test's own output, shown with the test
/// when it fails.
fn pass_on(log: Receiver<String>) {
    thread::spawn(move || {
        for line in log {
            eprintln!("{line}");
        }
    });
}

/// The text of one scrape.
pub struct Metrics(pub String);

impl Metrics {
    /// Sum of every sample of `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (metric, label_text) = match series.split_once('{') {
                    Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                if metric != name {
                    return None;
                }
                let all = labels.iter().all(|(k, v)| {
                    label_text
                        .split(',')
                        .any(|pair| pair == format!("{k}=\"{v}\""))
                });
                all.then(|| value.parse::<f64>().ok()).flatten()
            })
            .sum()
    }
}
