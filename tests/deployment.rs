//! The deployment examples in `tuning/` run as written. Every ringside
//! command line in the Kubernetes manifests and the systemd files is read
//! out of the file and run with the built binary (`iptables install` as
//! `iptables print`, the proxy with `--check`), and the numbers that must
//! agree across containers and files are compared: the proxy's uid, the
//! ports the rules redirect to and the ports ringside listens on, the
//! admin port and the probes. A flag that does not exist, or a rule that
//! sends traffic where nothing listens, fails here and not in a pod.
//!
//! The manifests are read without a YAML parser, by the conventions their
//! headers state: a container is a `- name:` list item with an `image:`
//! key; a ringside container's `command` and `args` are one-line flow
//! sequences of double-quoted strings, which are JSON; its env entries are
//! `- name:` / `value:` pairs; a probe is `httpGet: {path: P, port: N}` on
//! the line after its name.

mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use support::{eventually, http_get, http_request, Launch, BIN};

/// The manifests, each with an init container writing the rules and a
/// ringside container.
const MANIFESTS: [&str; 2] = [
    "tuning/kubernetes/deployment.yaml",
    "tuning/kubernetes/job.yaml",
];

/// The systemd pieces: the unit (its ExecStart), the transparent-mode
/// drop-in (the rules around it), the user with its pinned uid, and the
/// config file the unit reads.
const UNIT: &str = "tuning/ringside.service";
const DROP_IN: &str = "tuning/systemd/ringside.service.d/transparent.conf";
const SYSUSERS: &str = "tuning/systemd/sysusers.d/ringside.conf";
const HOST_CONFIG: &str = "tuning/systemd/ringside.toml";
/// Where the drop-in's install lines put `HOST_CONFIG`.
const INSTALLED_CONFIG: &str = "/etc/ringside/ringside.toml";

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_content(line: &str) -> bool {
    let trimmed = line.trim_start();
    !trimmed.is_empty() && !trimmed.starts_with('#')
}

/// One container of a manifest: the lines of its list item.
struct Container {
    name: String,
    /// The column of its keys (`image:`, `args:`).
    keys: usize,
    lines: Vec<String>,
}

impl Container {
    /// Every container of `manifest`, in the order written.
    fn all(manifest: &str) -> Vec<Container> {
        let lines: Vec<&str> = manifest.lines().collect();
        let mut found = Vec::new();
        for (at, line) in lines.iter().enumerate() {
            let Some(name) = line.trim_start().strip_prefix("- name: ") else {
                continue;
            };
            let dash = indent(line);
            let block: Vec<String> = lines[at + 1..]
                .iter()
                .take_while(|l| !is_content(l) || indent(l) > dash)
                .map(|l| l.to_string())
                .collect();
            let container = Container {
                name: name.trim().to_string(),
                keys: dash + 2,
                lines: block,
            };
            if container.field("image").is_some() {
                found.push(container);
            }
        }
        found
    }

    /// The value of one of its own keys (not a nested one's).
    fn field(&self, key: &str) -> Option<&str> {
        let prefix = format!("{key}:");
        self.lines
            .iter()
            .filter(|l| is_content(l) && indent(l) == self.keys)
            .find_map(|l| l.trim().strip_prefix(&prefix))
            .map(str::trim)
    }

    /// `command` or `args` as the flow sequence it must be.
    fn list(&self, key: &str) -> Vec<String> {
        let text = self
            .field(key)
            .unwrap_or_else(|| panic!("{}: no {key}", self.name));
        serde_json::from_str(text).unwrap_or_else(|err| {
            panic!(
                "{}: {key} is not a one-line list of quoted strings ({err}): {text}",
                self.name
            )
        })
    }

    /// Whether its command is ringside; other containers' commands may be
    /// written any way.
    fn is_ringside(&self) -> bool {
        let command = self.field("command").unwrap_or("[]");
        serde_json::from_str::<Vec<String>>(command)
            .ok()
            .and_then(|command| command.into_iter().next())
            .is_some_and(|program| program == "ringside" || program.ends_with("/ringside"))
    }

    /// The `env` entries, `RINGSIDE_*` and any other.
    fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        let mut inside = false;
        let mut name = None;
        for line in self.lines.iter().filter(|l| is_content(l)) {
            if indent(line) == self.keys {
                inside = line.trim() == "env:";
                continue;
            }
            let item = line.trim().trim_start_matches("- ");
            if !inside {
                continue;
            } else if let Some(n) = item.strip_prefix("name: ") {
                name = Some(n.trim().to_string());
            } else if let Some(value) = item.strip_prefix("value: ") {
                let value: String = serde_json::from_str(value.trim())
                    .unwrap_or_else(|err| panic!("{}: env values are quoted: {err}", self.name));
                env.push((name.take().expect("a value after its name"), value));
            }
        }
        env
    }

    /// A number anywhere in it, such as `runAsUser` in its security context.
    fn number(&self, key: &str) -> Option<u32> {
        let prefix = format!("{key}:");
        self.lines.iter().find_map(|l| {
            let value = l.trim().strip_prefix(&prefix)?;
            let value = value.split('#').next().unwrap().trim();
            Some(value.parse().unwrap_or_else(|_| panic!("{key}: {value}")))
        })
    }

    /// Every `containerPort`.
    fn container_ports(&self) -> Vec<u16> {
        self.lines
            .iter()
            .filter_map(|l| {
                let (_, rest) = l.split_once("containerPort: ")?;
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect()
    }

    /// The path and port of the probe `kind` (`readinessProbe`...).
    fn probe(&self, kind: &str) -> Option<(String, u16)> {
        let at = self
            .lines
            .iter()
            .position(|l| indent(l) == self.keys && l.trim() == format!("{kind}:"))?;
        let spec = self.lines[at + 1].trim();
        let inner = spec
            .strip_prefix("httpGet: {path: ")
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{}: {kind} is not httpGet: {spec}", self.name));
        let (path, port) = inner.split_once(", port: ").expect("path, then port");
        Some((
            path.to_string(),
            port.parse().expect("a numeric probe port"),
        ))
    }

    fn has(&self, text: &str) -> bool {
        self.lines.iter().any(|l| l.contains(text))
    }
}

/// The ringside containers of a manifest: the one that writes the rules
/// and the proxy.
struct Pod {
    init: Container,
    proxy: Container,
}

impl Pod {
    fn of(path: &str) -> Pod {
        let (init, proxy): (Vec<Container>, Vec<Container>) = Container::all(&read(path))
            .into_iter()
            .filter(Container::is_ringside)
            .partition(|c| c.list("args").first().map(String::as_str) == Some("iptables"));
        assert_eq!(
            (init.len(), proxy.len()),
            (1, 1),
            "{path}: ringside containers"
        );
        Pod {
            init: init.into_iter().next().unwrap(),
            proxy: proxy.into_iter().next().unwrap(),
        }
    }
}

/// The address after `flag` in `args`.
fn addr_after(args: &[String], flag: &str) -> SocketAddr {
    let at = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    args[at + 1].parse().expect("an IP:port")
}

/// Runs the binary with `args` and `env`; panics with its stderr unless it
/// succeeds.
fn run(args: &[String], env: &[(String, String)]) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(BIN)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(status.success(), "ringside {args:?}: {status}: {stderr}");
    String::from_utf8(stdout).unwrap()
}

/// `iptables install ...` as `iptables print ...`, which shows the same
/// rules and needs no privilege.
fn as_print(args: &[String]) -> Vec<String> {
    let install = args
        .iter()
        .position(|a| a == "install")
        .unwrap_or_else(|| panic!("no install in {args:?}"));
    let mut args = args.to_vec();
    args[install] = "print".to_string();
    args
}

/// The rules that must be in `print`'s output, for IPv4 and IPv6 both:
/// inbound TCP to `inbound`, outbound to `outbound`, `uid` exempt, the
/// admin port (and `skipped`) not redirected.
fn assert_rules(rules: &str, inbound: u16, outbound: u16, uid: u32, skipped: &[u16]) {
    for rule in [
        format!("-A RINGSIDE_PREROUTING -p tcp -j REDIRECT --to-ports {inbound}"),
        format!("-A RINGSIDE_OUTPUT -p tcp -j REDIRECT --to-ports {outbound}"),
        format!("-A RINGSIDE_OUTPUT -m owner --uid-owner {uid} -j RETURN"),
    ] {
        assert_eq!(rules.matches(&rule).count(), 2, "{rule:?} in\n{rules}");
    }
    let skip_line = "-A RINGSIDE_PREROUTING -p tcp -m multiport --dports ";
    for line in rules.lines().filter_map(|l| l.strip_prefix(skip_line)) {
        let ports: Vec<u16> = line
            .split_whitespace()
            .next()
            .unwrap()
            .split(',')
            .map(|p| p.parse().unwrap())
            .collect();
        for port in skipped {
            assert!(ports.contains(port), "inbound {port} not skipped: {line}");
        }
    }
    assert_eq!(rules.matches(skip_line).count(), 2, "{rules}");
}

#[test]
fn each_manifests_init_container_writes_the_rules_its_sidecar_expects() {
    for path in MANIFESTS {
        let pod = Pod::of(path);
        let init_args = pod.init.list("args");
        let proxy_args = pod.proxy.list("args");
        let uid = pod.proxy.number("runAsUser").expect("ringside's runAsUser");
        let admin = addr_after(&proxy_args, "--admin-addr").port();
        let rules = run(&as_print(&init_args), &pod.init.env());
        assert_rules(
            &rules,
            addr_after(&proxy_args, "--inbound-listen").port(),
            addr_after(&proxy_args, "--outbound-listen").port(),
            uid,
            &[admin],
        );
        // The values the README and the other examples name.
        assert_eq!((uid, admin), (2102, 4191), "{path}");
        assert!(rules.contains("--to-ports 4143") && rules.contains("--to-ports 4140"));
        assert_eq!(
            pod.init.number("runAsUser"),
            Some(0),
            "{path}: init as root"
        );
        for capability in ["NET_ADMIN", "NET_RAW"] {
            assert!(pod.init.has(capability), "{path}: init needs {capability}");
        }
    }
}

#[test]
fn each_manifests_sidecar_passes_check_and_is_probed_on_its_admin_port() {
    for path in MANIFESTS {
        let proxy = Pod::of(path).proxy;
        let mut args = proxy.list("args");
        let env = proxy.env();
        assert!(env.iter().all(|(name, _)| name.starts_with("RINGSIDE_")));
        args.push("--check".to_string());
        let effective = run(&args, &env);

        let inbound = addr_after(&args, "--inbound-listen");
        let outbound = addr_after(&args, "--outbound-listen");
        let admin = addr_after(&args, "--admin-addr");
        for (table, addr) in [
            ("[inbound]", inbound),
            ("[outbound]", outbound),
            ("[admin]", admin),
        ] {
            let shown = format!("{table}\nlisten = \"{addr}\"");
            assert!(effective.contains(&shown), "{path}: {shown}\n{effective}");
        }
        for (name, value) in &env {
            if name == "RINGSIDE_LOG_FORMAT" {
                assert!(effective.contains(&format!("[log]\nformat = \"{value}\"")));
            }
        }
        // kubelet probes come to the pod IP, not to loopback.
        assert!(admin.ip().is_unspecified(), "{path}: admin on {admin}");
        let ports = proxy.container_ports();
        assert!(
            ports.contains(&inbound.port()) && ports.contains(&admin.port()),
            "{path}: containerPort {ports:?}"
        );
        let ready = Some(("/ready".to_string(), admin.port()));
        assert_eq!(proxy.probe("readinessProbe"), ready, "{path}");
        assert_eq!(
            proxy.probe("livenessProbe"),
            Some(("/live".to_string(), admin.port())),
            "{path}"
        );
        if proxy.field("restartPolicy") == Some("Always") {
            // A native sidecar holds the application back until it is ready.
            assert_eq!(proxy.probe("startupProbe"), ready, "{path}");
        }
    }
}

#[test]
fn the_deployment_runs_ringside_as_a_native_sidecar_and_the_job_stops_its_own() {
    let deployment = Pod::of(MANIFESTS[0]);
    assert_eq!(deployment.proxy.field("restartPolicy"), Some("Always"));
    let job = Pod::of(MANIFESTS[1]);
    assert_eq!(job.proxy.field("restartPolicy"), None);
    let admin = addr_after(&job.proxy.list("args"), "--admin-addr").port();
    let stop = format!("curl -fsS -X POST http://127.0.0.1:{admin}/shutdown");
    assert!(read(MANIFESTS[1]).contains(&stop), "no {stop:?}");
}

/// An address of this machine other than loopback, as a pod IP is to the
/// proxy: where kubelet's probes come from. `None` without a route out.
fn own_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    // Connecting a UDP socket sends nothing; it picks the source address.
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback()).then_some(ip)
}

/// The sidecar's command line as written, every port made 0: its admin
/// server on all addresses answers a probe on the machine's own address,
/// refuses a shutdown from there, and takes one from 127.0.0.1, as the
/// Job's last step sends it.
#[test]
fn the_sidecars_admin_answers_probes_on_any_address_and_shutdown_from_loopback() {
    let proxy = Pod::of(MANIFESTS[1]).proxy;
    let args: Vec<String> = proxy
        .list("args")
        .into_iter()
        .map(|arg| match arg.parse::<SocketAddr>() {
            Ok(mut addr) => {
                addr.set_port(0);
                addr.to_string()
            }
            Err(_) => arg,
        })
        .collect();
    let mut launch = Launch::new().args(&args).shards(1);
    for (name, value) in proxy.env() {
        launch = launch.env(&name, &value);
    }
    let mut ringside = launch.start();
    assert!(ringside.admin.ip().is_unspecified());
    let loopback = SocketAddr::from(([127, 0, 0, 1], ringside.admin.port()));
    eventually("/ready on loopback", || {
        http_get(loopback, "/ready").0 == 200
    });

    match own_address() {
        Some(ip) => {
            let pod = SocketAddr::new(ip, ringside.admin.port());
            assert_eq!(http_get(pod, "/ready").0, 200, "a probe on {pod}");
            assert_eq!(http_get(pod, "/live").0, 200, "a probe on {pod}");
            assert_eq!(http_request(pod, "POST", "/shutdown").0, 403, "from {ip}");
            assert_eq!(http_get(loopback, "/ready").0, 200, "still serving");
        }
        None => eprintln!("SKIP: no address but loopback to probe from"),
    }

    assert_eq!(
        http_request(loopback, "POST", "/shutdown"),
        (200, "shutting down\n".to_string())
    );
    let status = ringside
        .wait_exit(Duration::from_secs(10))
        .expect("exits after the drain");
    assert!(status.success(), "{status}");
}

/// The unit's lines for `key` (`ExecStart`...), without systemd's
/// prefixes (`+`, `-`, `!`, `@`, `:`), split into words (the files use no
/// quoting).
fn exec_lines(unit: &str, key: &str) -> Vec<Vec<String>> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|command| {
            let command = command.trim_start_matches(['+', '-', '!', '@', ':']);
            let mut words: Vec<String> = command.split_whitespace().map(String::from).collect();
            assert!(words[0].ends_with("/ringside"), "{key}: {command}");
            words.remove(0);
            words
        })
        .collect()
}

/// The example config file in place of the installed one.
fn with_example_config(args: &[String]) -> Vec<String> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join(HOST_CONFIG);
    args.iter()
        .map(|arg| match arg.as_str() {
            INSTALLED_CONFIG => example.to_str().unwrap().to_string(),
            _ => arg.clone(),
        })
        .collect()
}

#[test]
fn the_host_unit_runs_the_example_config_between_its_rules() {
    let config = read(HOST_CONFIG);
    let config: toml::Table = toml::from_str(&config).expect("TOML");
    let listen =
        |table: &str| -> SocketAddr { config[table]["listen"].as_str().unwrap().parse().unwrap() };
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join(HOST_CONFIG);
    let args = ["--config", example.to_str().unwrap(), "--check"].map(String::from);
    let effective = run(&args, &[]);
    assert!(effective.contains("[outbound]") && effective.contains("[inbound]"));

    let start = exec_lines(&read(UNIT), "ExecStart");
    assert_eq!(start.len(), 1);
    assert!(
        start[0].contains(&INSTALLED_CONFIG.to_string()),
        "{start:?}"
    );
    let mut start = with_example_config(&start[0]);
    start.push("--check".to_string());
    assert_eq!(run(&start, &[]), effective);

    // The uid the rules exempt is the one sysusers.d gives the unit's user.
    let sysusers = read(SYSUSERS);
    let user: Vec<&str> = sysusers
        .lines()
        .find(|l| l.starts_with("u "))
        .expect("a u line")
        .split_whitespace()
        .collect();
    assert_eq!(user[1], "ringside");
    assert!(read(UNIT).contains("\nUser=ringside\n"));
    let uid: u32 = user[2].parse().expect("a fixed uid");

    let drop_in = read(DROP_IN);
    let install = exec_lines(&drop_in, "ExecStartPre");
    assert_eq!(install.len(), 1);
    assert!(drop_in.contains("ExecStartPre=+/"), "install needs root");
    let install = with_example_config(&install[0]);
    let rules = run(&as_print(&install), &[]);
    let admin: SocketAddr = config["admin"]["listen"].as_str().unwrap().parse().unwrap();
    assert_rules(
        &rules,
        listen("inbound").port(),
        listen("outbound").port(),
        uid,
        &[admin.port(), 22],
    );

    // Removal takes the rules out of the backend they went into.
    let remove = exec_lines(&drop_in, "ExecStopPost");
    assert_eq!(remove.len(), 1);
    assert!(drop_in.contains("ExecStopPost=+/"), "remove needs root");
    let mode = |args: &[String]| {
        args.iter()
            .position(|a| a == "--iptables-mode")
            .map(|at| args[at + 1].clone())
    };
    assert_eq!(remove[0][..2], ["iptables", "remove"]);
    assert_eq!(mode(&remove[0]), mode(&install));
}
