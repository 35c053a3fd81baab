//! `ringside iptables print | install | remove`: the nat rules that send a
//! pod's TCP through ringside, in chains of their own as Linkerd's
//! proxy-init writes them, for IPv4 and IPv6. The rules go in through
//! `iptables-restore --noflush`, one transaction per family, so a pod never
//! sees half of them and other tools' rules stay as they were.
//!
//! `install` first reads the table (`iptables-save -t nat`) to leave out
//! jumps that are already there: with the chains refilled as they are
//! declared, a second install changes nothing.
//!
//! IPv6 is not optional: a dual-stack pod whose IPv6 table lacks the rules
//! is open over IPv6, around the proxy and its authorization. So any IPv6
//! failure (no ip6tables, no IPv6 nat table, a failed save or restore) is
//! an error unless `--no-ipv6` says IPv6 is not wanted, and both tables
//! are read before either is changed, so that it changes nothing. Only a
//! kernel without IPv6 at all, where no IPv6 packet can arrive, is
//! skipped with a line saying so.

mod rules;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::{IptablesAction, IptablesConfig, IptablesMode};

use rules::Family;
pub use rules::{INBOUND_CHAIN, OUTBOUND_CHAIN};

/// Why `ringside iptables` could not do its work; each reads as one line.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    #[error("{0} not found in PATH, /usr/sbin or /sbin: install iptables")]
    Missing(String),
    #[error("the kernel has no IPv6")]
    NoIpv6,
    #[error("IPv6: {0}; without its rules a dual-stack pod is open over IPv6 around the proxy (give --no-ipv6 if it has no IPv6)")]
    Ipv6(Box<IptablesError>),
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} failed: {message}")]
    Failed { program: String, message: String },
}

/// The restore and save programs of one family in the chosen mode.
struct Tools {
    restore: PathBuf,
    save: PathBuf,
}

/// Runs `action` for both families, saying on stdout what was done and on
/// stderr what was skipped or substituted.
pub fn run(action: IptablesAction, config: &IptablesConfig) -> Result<(), IptablesError> {
    let families = match config.ipv6 {
        true => &[Family::Ipv4, Family::Ipv6][..],
        false => &[Family::Ipv4],
    };
    if action == IptablesAction::Print {
        for &family in families {
            let restore = program(config.mode, family, "restore");
            println!("# {}: {restore} --noflush", family.name());
            print!("{}", rules::install(config, family, &[]));
        }
        return Ok(());
    }
    if !config.ipv6 {
        eprintln!("ringside: IPv6 left alone (--no-ipv6)");
    }
    let mut tables = Vec::new();
    for &family in families {
        match read_table(config.mode, family) {
            Ok(found) => tables.push((family, found)),
            Err(IptablesError::NoIpv6) => {
                eprintln!("ringside: IPv6 skipped: the kernel has no IPv6")
            }
            Err(err) => return Err(in_family(family, err)),
        }
    }
    for (family, (tools, saved)) in tables {
        change(action, config, family, &tools, &saved).map_err(|err| in_family(family, err))?;
    }
    Ok(())
}

/// An IPv6 error says what it leaves open and how to say IPv6 is not wanted.
fn in_family(family: Family, err: IptablesError) -> IptablesError {
    match family {
        Family::Ipv4 => err,
        Family::Ipv6 => IptablesError::Ipv6(Box::new(err)),
    }
}

/// Installs or removes the rules of one family whose table reads `saved`.
fn change(
    action: IptablesAction,
    config: &IptablesConfig,
    family: Family,
    tools: &Tools,
    saved: &str,
) -> Result<(), IptablesError> {
    let input = match action {
        IptablesAction::Install => Some(rules::install(
            config,
            family,
            &rules::installed_jumps(saved),
        )),
        _ => rules::remove(saved),
    };
    match input {
        Some(input) => {
            restore(&tools.restore, &input)?;
            let done = if action == IptablesAction::Install {
                "installed"
            } else {
                "removed"
            };
            println!(
                "ringside: {} rules {done} ({INBOUND_CHAIN}, {OUTBOUND_CHAIN})",
                family.name()
            );
        }
        None => println!(
            "ringside: {} has no ringside rules to remove",
            family.name()
        ),
    }
    Ok(())
}

/// The family's programs and its nat table as they are now.
fn read_table(mode: IptablesMode, family: Family) -> Result<(Tools, String), IptablesError> {
    if family == Family::Ipv6 && !Path::new("/proc/net/if_inet6").exists() {
        return Err(IptablesError::NoIpv6);
    }
    let tools = tools(mode, family)?;
    let saved = output(&tools.save, &["-t", "nat"])?;
    Ok((tools, saved))
}

/// `iptables-nft-restore`, `ip6tables-legacy-save`, ...
fn program(mode: IptablesMode, family: Family, verb: &str) -> String {
    let base = match family {
        Family::Ipv4 => "iptables",
        Family::Ipv6 => "ip6tables",
    };
    let mode = match mode {
        IptablesMode::Nft => "nft",
        IptablesMode::Legacy => "legacy",
    };
    format!("{base}-{mode}-{verb}")
}

/// The mode's own programs, or the plain ones (whatever backend the machine
/// made its default) when the mode's are not installed, saying so.
fn tools(mode: IptablesMode, family: Family) -> Result<Tools, IptablesError> {
    let find = |verb: &str| {
        let wanted = program(mode, family, verb);
        if let Some(path) = find_program(&wanted) {
            return Ok(path);
        }
        let plain = wanted.replace("-nft", "").replace("-legacy", "");
        let path = find_program(&plain).ok_or_else(|| IptablesError::Missing(wanted.clone()))?;
        eprintln!("ringside: {wanted} not found, using {}", path.display());
        Ok(path)
    };
    Ok(Tools {
        restore: find("restore")?,
        save: find("save")?,
    })
}

/// `name` in PATH, then in the sbin folders a non-root PATH often lacks.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs `program args`, returning its stdout, or its first line of stderr
/// as the error ("Permission denied (you must be root)").
fn output(program: &Path, args: &[&str]) -> Result<String, IptablesError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| spawn_error(program, source))?;
    check(program, out.status.success(), &out.stderr)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Feeds `input` to `program --noflush`.
fn restore(program: &Path, input: &str) -> Result<(), IptablesError> {
    let mut child = Command::new(program)
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| spawn_error(program, source))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // A program that exits early closes its stdin: its stderr says why.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|source| spawn_error(program, source))?;
    check(program, out.status.success(), &out.stderr)
}

fn check(program: &Path, success: bool, stderr: &[u8]) -> Result<(), IptablesError> {
    if success {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(stderr);
    let message = stderr
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("exited with an error and said nothing");
    Err(IptablesError::Failed {
        program: program.display().to_string(),
        message: message.trim().to_string(),
    })
}

fn spawn_error(program: &Path, source: std::io::Error) -> IptablesError {
    IptablesError::Spawn {
        program: program.display().to_string(),
        source,
    }
}
