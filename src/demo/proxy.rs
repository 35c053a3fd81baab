//! One of the demo's proxies: the `ringside` binary itself, run as a child
//! process with the flags a user would give it. It starts in a process
//! group of its own, so that the terminal's Ctrl-C reaches the demo only,
//! which passes it on once (a ringside that gets two signals exits at
//! once); and with a death signal, so that it drains and exits if the demo
//! is killed without the chance to pass anything on.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::Context;

/// The `RINGSIDE_*` variables that would add to or fight with the flags the
/// demo gives its proxies; every other one reaches them.
const SET_BY_THE_DEMO: [&str; 12] = [
    "RINGSIDE_ROUTE",
    "RINGSIDE_OUTBOUND_LISTEN",
    "RINGSIDE_INBOUND_LISTEN",
    "RINGSIDE_INBOUND_FORWARD_TO",
    "RINGSIDE_MESH_PEER",
    "RINGSIDE_INBOUND_AUTHORIZE",
    "RINGSIDE_ADMIN_ADDR",
    "RINGSIDE_IDENTITY_CERT",
    "RINGSIDE_IDENTITY_KEY",
    "RINGSIDE_IDENTITY_TRUST_ANCHORS",
    "RINGSIDE_IDENTITY_NAME",
    "RINGSIDE_IDENTITY_SPIFFE_ID",
];

/// A running proxy and the addresses it announced.
pub struct Proxy {
    child: Child,
    pub admin: SocketAddr,
    /// Its route's listener (A) or its inbound listener (B).
    pub listen: SocketAddr,
    /// The command line, as printed for the reader.
    pub command_line: String,
}

impl Proxy {
    /// Starts `ringside ARGS` and waits for its `listening` lines (the
    /// admin one comes last), which it prints once its sockets are bound.
    pub fn start(name: &str, args: &[String]) -> anyhow::Result<Proxy> {
        let exe = std::env::current_exe().context("finding the ringside binary")?;
        let mut command = Command::new(&exe);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        for variable in SET_BY_THE_DEMO {
            command.env_remove(variable);
        }
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec the closure calls only prctl and
        // getppid, both async-signal-safe, and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                // The signal comes when the thread that forked ends: the
                // demo starts its proxies from its main thread.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The demo may have died before the prctl.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("the demo is gone"));
                }
                Ok(())
            })
        };
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let (mut admin, mut listen) = (None, None);
        let mut line = String::new();
        while admin.is_none() {
            line.clear();
            if stdout.read_line(&mut line)? == 0 {
                let status = child.wait()?;
                anyhow::bail!("{name} exited before listening ({status}); its error is above");
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["listening", "admin", addr] => admin = Some(addr.parse()?),
                ["listening", "route" | "inbound", addr, ..] => listen = Some(addr.parse()?),
                _ => {}
            }
        }
        // Read on, so that a later line never finds the pipe closed.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let program = std::path::Path::new(&exe).file_name().unwrap_or_default();
        Ok(Proxy {
            admin: admin.expect("read above"),
            listen: listen.with_context(|| format!("{name} announced no listener"))?,
            command_line: format!("{} {}", program.to_string_lossy(), args.join(" ")),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the proxy to exit (after a drain), and reaps it.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait()
    }
}

/// Sends `signal` to a proxy that has not been reaped yet.
pub fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill takes a pid and a signal number, nothing else.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

impl Drop for Proxy {
    /// A proxy the demo did not wait for (it failed on the way) is not
    /// left behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
