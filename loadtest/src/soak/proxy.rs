//! The ringside under soak: which binary, the two configs a reload
//! alternates between (each route's listen address, protocol and
//! upstreams, and the `[dns]` of the flipping name), and its start.

use super::{dns, RouteSpec, Routes, SHUTDOWN_GRACE};
use crate::cli::SoakArgs;
use crate::targets::{free_port, ProxyProcess};
use crate::workdir::WorkDir;
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// `--ringside`, else the ringside built beside this binary (same target
/// directory and profile: `cargo build --workspace` builds both).
pub(super) fn ringside_binary(args: &SoakArgs) -> anyhow::Result<PathBuf> {
    let binary = match &args.ringside {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary has no folder")?
            .join("ringside"),
    };
    if !binary.is_file() {
        bail!(
            "no ringside binary at {}: build it (`cargo build --workspace`, with --release for a release loadtest) or pass --ringside",
            binary.display()
        );
    }
    Ok(binary)
}

/// Whether `binary` knows `[[route]] response_timeout`: `--check` on a
/// config that uses it. The key is newer than this soak's first version.
pub(super) fn has_response_timeout(binary: &Path) -> bool {
    let Ok(workdir) = WorkDir::new("soak-probe") else {
        return false;
    };
    let config = "[[route]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"127.0.0.1:9\"]\nresponse_timeout = \"1s\"\n";
    let Ok(path) = workdir.write("probe.toml", config) else {
        return false;
    };
    Command::new(binary)
        .arg("--config")
        .arg(path)
        .arg("--check")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The soak's two configs and where their routes listen.
pub(super) struct Configs {
    /// `[0]` the one ringside starts with; `[1]` has one route more (on
    /// `extra`) and the restart route's upstreams in the other order.
    pub(super) text: [String; 2],
    pub(super) routes: Routes,
    pub(super) extra: SocketAddr,
}

impl Configs {
    pub(super) fn new(
        shards: usize,
        dns_server: SocketAddr,
        upstreams: &[RouteSpec; 6],
        stall_response_timeout: Option<Duration>,
    ) -> anyhow::Result<Self> {
        let listens = (0..upstreams.len())
            .map(|_| free_port())
            .collect::<std::io::Result<Vec<_>>>()?;
        let extra = free_port()?;
        let mut routes: Vec<(RouteSpec, SocketAddr)> = upstreams
            .iter()
            .cloned()
            .zip(listens.iter().copied())
            .collect();
        let first = config_text(shards, dns_server, &routes, stall_response_timeout);
        for ((name, _, addrs), _) in &mut routes {
            if *name == "restart" {
                addrs.reverse();
            }
        }
        routes.push((("extra", "opaque", upstreams[0].2.clone()), extra));
        let second = config_text(shards, dns_server, &routes, stall_response_timeout);
        Ok(Self {
            text: [first, second],
            routes: Routes {
                opaque: listens[0],
                restart: listens[1],
                http1: listens[2],
                reset: listens[3],
                stall: listens[4],
                h2: listens[5],
            },
            extra,
        })
    }
}

fn config_text(
    shards: usize,
    dns_server: SocketAddr,
    routes: &[(RouteSpec, SocketAddr)],
    stall_response_timeout: Option<Duration>,
) -> String {
    // Pooled HTTP/1 upstream connections idle out quickly, so that the
    // resource check after the load does not wait on them (default 3s).
    let mut config = format!(
        "[runtime]\nshards = {shards}\nshutdown_grace = \"{}s\"\n\n[proxy]\npool_idle_timeout = \"500ms\"\n\n\
         [dns]\nservers = [\"{dns_server}\"]\nmin_ttl = \"{}\"\ntimeout = \"500ms\"\n",
        SHUTDOWN_GRACE.as_secs(),
        dns::MIN_TTL,
    );
    for ((name, protocol, addrs), listen) in routes {
        let list: Vec<String> = addrs.iter().map(|addr| format!("\"{addr}\"")).collect();
        config.push_str(&format!(
            "\n[[route]]\nlisten = \"{listen}\"\nupstreams = [{}]\nprotocol = \"{protocol}\"\n",
            list.join(", ")
        ));
        if let (&"stall", Some(timeout)) = (name, stall_response_timeout) {
            config.push_str(&format!(
                "response_timeout = \"{}ms\"\n",
                timeout.as_millis()
            ));
        }
    }
    config
}

/// Starts ringside on the first config; returns it, the config file (which
/// reloads rewrite) and the admin address.
pub(super) fn start_ringside(
    binary: &Path,
    configs: &Configs,
) -> anyhow::Result<(ProxyProcess, PathBuf, SocketAddr)> {
    let admin = free_port()?;
    let workdir = WorkDir::new("soak")?;
    let path = workdir.write("ringside.toml", &configs.text[0])?;
    let mut command = Command::new(binary);
    command
        .arg("--config")
        .arg(&path)
        .arg("--admin-addr")
        .arg(admin.to_string());
    if std::env::var_os("RUST_LOG").is_none() {
        // A line per failed connection is thousands of lines here.
        command.env("RUST_LOG", "error");
    }
    let mut process = ProxyProcess::spawn("ringside", command, workdir)?;
    if let Err(error) = process.wait_ready_endpoint(admin) {
        process.stop();
        return Err(error);
    }
    Ok((process, path, admin))
}
