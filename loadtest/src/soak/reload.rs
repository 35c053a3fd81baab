//! The reload fault: ringside's config file alternates between two versions
//! that differ in what a reload really applies (a route added and removed,
//! the restart route's endpoints in the other order), each applied with
//! `POST /reload` on the admin address while the load runs. The routes
//! under load are in both, so a reload must cost none of their transfers.

use super::periodic::Change;
use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

/// The two configs, and how many reloads ringside accepted.
pub struct Reloads {
    path: PathBuf,
    admin: SocketAddr,
    /// `[0]` is the config ringside started with.
    configs: [String; 2],
    /// Reloads answered 200.
    pub applied: u64,
    /// The body of the first answer (what ringside says it changed), for
    /// the report.
    pub first_answer: Option<String>,
}

impl Reloads {
    pub fn new(path: PathBuf, admin: SocketAddr, configs: [String; 2]) -> Self {
        Self {
            path,
            admin,
            configs,
            applied: 0,
            first_answer: None,
        }
    }

    /// Back to the config ringside started with, if the last reload left
    /// the other: the resource check compares against the start's listeners.
    pub fn restore(&mut self) -> anyhow::Result<()> {
        if self.applied % 2 == 1 {
            self.apply()?;
        }
        Ok(())
    }

    /// Writes the file whole (a rename, so a reload never reads half of
    /// it) and asks ringside to read it.
    fn write(&self, config: &str) -> anyhow::Result<()> {
        let next = self.path.with_extension("toml.next");
        std::fs::write(&next, config).context("writing the next config")?;
        std::fs::rename(&next, &self.path).context("replacing the config")?;
        Ok(())
    }
}

impl Change for Reloads {
    fn apply(&mut self) -> anyhow::Result<()> {
        let next = &self.configs[(self.applied as usize + 1) % 2];
        self.write(next)?;
        let answer = post(self.admin, "/reload")?;
        if !answer.starts_with("HTTP/1.1 200") && !answer.starts_with("HTTP/1.0 200") {
            bail!("reload {} refused: {answer}", self.applied + 1);
        }
        if self.first_answer.is_none() {
            let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
            self.first_answer = Some(body.trim().to_owned());
        }
        self.applied += 1;
        Ok(())
    }
}

/// The whole answer to a bodiless POST.
fn post(admin: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {admin}\r\ncontent-length: 0\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .with_context(|| format!("reading the answer to POST {path}"))?;
    Ok(answer)
}

/// `ringside_config_reloads_total{result="ok"}` as ringside counts it.
pub fn counted_ok(admin: SocketAddr) -> anyhow::Result<u64> {
    let metrics = super::resources::scrape(admin)?;
    Ok(super::resources::sum(
        &metrics,
        "ringside_config_reloads_total{result=\"ok\"}",
    ))
}
