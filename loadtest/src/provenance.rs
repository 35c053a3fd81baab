//! What a reader needs to trust or rerun a published table: when it was
//! measured, on which commit, on what machine and how busy it was, against
//! which peer versions, and the exact command. `compare --markdown` heads
//! its table with these, so a refreshed BENCHMARKS.md dates itself.
//!
//! Each fact is read the plain way (`git`, `/proc`, the peer's `-v`); one
//! that cannot be read says so instead of failing the run.

use crate::cli::CompareArgs;
use crate::compare;
use crate::targets::TargetKind;
use crate::workspace;
use std::path::Path;
use std::process::Command;

#[derive(Clone, Debug, PartialEq)]
pub struct Provenance {
    /// When the run began, UTC, to the second (RFC 3339).
    pub started: String,
    /// The workspace's `git rev-parse --short HEAD`, marked when tracked
    /// files differ from it: the binaries measured are built from the tree.
    pub commit: String,
    /// CPU model, kernel and memory: what decides whether two tables can
    /// be compared at all.
    pub machine: String,
    /// The CPUs this process may use (`nproc`).
    pub cpus: usize,
    /// The 1-minute load average before the run: other work on the
    /// machine moves every figure, so a busy start marks the table.
    pub load_average: Option<f64>,
    /// Each peer's version as it reports it, for the peers measured.
    pub peers: Vec<String>,
    /// The command line that produced the table, to run again.
    pub command: String,
}

impl Provenance {
    pub fn gather(args: &CompareArgs) -> Self {
        let mut peers = Vec::new();
        for target in &args.targets {
            let version = match target {
                TargetKind::Haproxy => version_of(&compare::haproxy_bin(args)),
                TargetKind::Nginx => version_of(&compare::nginx_bin(args)),
                TargetKind::Direct | TargetKind::Ringside => continue,
            };
            if !peers.contains(&version) {
                peers.push(version);
            }
        }
        Self {
            started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            commit: commit(),
            machine: machine(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|text| text.split_whitespace().next()?.parse().ok()),
            peers,
            command: command_line(std::env::args()),
        }
    }
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(workspace::root())
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn commit() -> String {
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown (not a git checkout)".into();
    };
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if changes.is_empty() => head,
        _ => format!("{head} with uncommitted changes"),
    }
}

/// The value of the first `key: value` line of a `/proc` file that has `key`.
fn proc_field(path: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find(|line| line.starts_with(key))?
        .split_once(':')
        .map(|(_, value)| value.trim().to_string())
}

fn machine() -> String {
    let model = proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |text| text.trim().to_string());
    let memory = proc_field("/proc/meminfo", "MemTotal")
        .and_then(|kib| kib.trim_end_matches(" kB").parse::<f64>().ok())
        .map_or_else(
            || "unknown memory".into(),
            |kib| format!("{:.0} GiB", kib / (1024.0 * 1024.0)),
        );
    format!("{model}, Linux {kernel}, {memory}")
}

/// A binary's name and version from the first line it prints for `-v`
/// (nginx prints it on stderr).
fn version_of(binary: &Path) -> String {
    let Ok(output) = Command::new(binary).arg("-v").output() else {
        return format!("{}: not runnable", binary.display());
    };
    let text = [output.stdout, output.stderr].concat();
    name_and_version(
        String::from_utf8_lossy(&text)
            .lines()
            .next()
            .unwrap_or_default(),
    )
    .unwrap_or_else(|| format!("{}: no version", binary.display()))
}

/// "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/"
/// gives "HAProxy 2.6.12-1+deb12u4"; "nginx version: nginx/1.22.1" gives
/// "nginx/1.22.1".
fn name_and_version(line: &str) -> Option<String> {
    let words: Vec<&str> = line
        .split_whitespace()
        .filter(|word| !word.eq_ignore_ascii_case("version") && *word != "version:")
        .take(2)
        .collect();
    match words[..] {
        [] => None,
        [program, version] if version.starts_with(&format!("{program}/")) => Some(version.into()),
        _ => Some(words.join(" ")),
    }
}

/// `args` as a shell would take them back: the program relative to the
/// workspace when it lies inside it (so that the line runs from any
/// checkout), and quotes only where a word needs them.
pub fn command_line(args: impl IntoIterator<Item = String>) -> String {
    let mut args = args.into_iter();
    let program = args.next().unwrap_or_else(|| "loadtest".into());
    let program = Path::new(&program)
        .strip_prefix(workspace::root())
        .map_or(program.clone(), |relative| relative.display().to_string());
    std::iter::once(program)
        .chain(args)
        .map(|word| quoted(&word))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quoted(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_versions_read_as_name_and_version() {
        assert_eq!(
            name_and_version("HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/")
                .as_deref(),
            Some("HAProxy 2.6.12-1+deb12u4")
        );
        assert_eq!(
            name_and_version("nginx version: nginx/1.22.1").as_deref(),
            Some("nginx/1.22.1")
        );
        assert_eq!(name_and_version("  "), None);
    }

    #[test]
    fn the_command_runs_again_from_the_workspace() {
        let program = workspace::root().join("target/release/loadtest");
        let args = [
            program.display().to_string(),
            "compare".into(),
            "--all".into(),
            "--duration".into(),
            "2s".into(),
            "--out-dir".into(),
            "my results".into(),
            "it's".into(),
        ];
        assert_eq!(
            command_line(args),
            r"target/release/loadtest compare --all --duration 2s --out-dir 'my results' 'it'\''s'"
        );
        assert_eq!(
            command_line(["./loadtest".to_string(), "compare".into()]),
            "./loadtest compare",
            "a program outside the workspace stays as typed"
        );
    }
}
