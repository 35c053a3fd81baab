//! A proxy child process: started with its stderr in its work dir, waited
//! for with deadlines (never a fixed sleep), stopped with SIGTERM.

use crate::proc_stats;
use crate::workdir::WorkDir;
use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a proxy gets to start listening, or to exit after SIGTERM.
const DEADLINE: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(5);

pub struct ProxyProcess {
    child: Child,
    /// Worker processes (nginx) whose CPU counts as the proxy's.
    workers: Vec<u32>,
    /// Holds the config, logs and pid file; removed after the child is gone.
    workdir: WorkDir,
    name: &'static str,
}

impl ProxyProcess {
    pub(crate) fn spawn(
        name: &'static str,
        mut command: Command,
        workdir: WorkDir,
    ) -> anyhow::Result<Self> {
        let log = std::fs::File::create(workdir.path().join("stderr.log"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            child,
            workers: Vec::new(),
            workdir,
            name,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.child.id()];
        pids.extend(&self.workers);
        pids
    }

    /// What the proxy wrote to stdout and stderr so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.workdir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Fails with the proxy's own log if it has exited.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = self.log();
            bail!(
                "{} exited ({status}) before it was ready: {}",
                self.name,
                log.trim()
            );
        }
        Ok(())
    }

    /// Polls until `addr` accepts a TCP connection.
    pub(crate) fn wait_accepting(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.check_alive()?;
            if TcpStream::connect_timeout(&addr, POLL_INTERVAL * 20).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not accept on {addr} within {DEADLINE:?}", self.name);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Polls `GET /ready` on an admin address until it answers 200.
    pub(crate) fn wait_ready_endpoint(&mut self, admin: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.check_alive()?;
            if http_status(admin, "/ready").ok() == Some(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} /ready on {admin} did not answer 200 within {DEADLINE:?}",
                    self.name
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Polls until the process has `count` children (nginx's workers) and remembers them.
    pub(crate) fn wait_workers(&mut self, count: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.check_alive()?;
            let workers = proc_stats::children(self.child.id());
            if workers.len() >= count {
                self.workers = workers;
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} started {} of {count} workers within {DEADLINE:?}",
                    self.name,
                    workers.len()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends SIGTERM: ringside drains, the others stop.
    pub(crate) fn terminate(&self) {
        // SAFETY: kill with a pid we own and a valid signal number.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }

    /// Polls until the process has exited, for at most `timeout`.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited by the deadline.
    pub fn stop(mut self) {
        self.terminate();
        if self.wait_exit(DEADLINE).is_none() {
            // Drop kills it.
            eprintln!("{} ignored SIGTERM for {DEADLINE:?}; killing it", self.name);
        }
    }
}

/// A proxy left running by an early return (an error mid-run) is killed,
/// not orphaned.
impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The status code of `GET path` on `addr` (HTTP/1.0, one shot).
fn http_status(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..])?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let line = std::str::from_utf8(&head[..read])?;
    let code = line.split_whitespace().nth(1).context("no status code")?;
    Ok(code.parse()?)
}
