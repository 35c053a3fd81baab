//! The cgroup v2 CPU quota of this process: `cpu.max` of its cgroup and of
//! every ancestor up to the cgroup2 mount, the tightest one winning (a
//! systemd slice or a pod may hold the quota rather than the leaf). The
//! parsers are pure over the files' text; `process_quota` is the one
//! function that reads files. cgroup v1's `cpu.cfs_quota_us` is not read.

use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// `quota_us` of CPU time in every `period_us`, both above zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuMax {
    pub quota_us: u64,
    pub period_us: u64,
}

impl CpuMax {
    /// The whole CPUs it takes to use all of it (1.5 -> 2), at least 1.
    pub(crate) fn cpus_rounded_up(self) -> usize {
        let cpus = self.quota_us.div_ceil(self.period_us);
        usize::try_from(cpus).unwrap_or(usize::MAX).max(1)
    }

    /// Whether it holds the process below `cpus` full CPUs.
    pub(crate) fn limits(self, cpus: usize) -> bool {
        u128::from(self.quota_us) < cpus as u128 * u128::from(self.period_us)
    }

    fn is_tighter_than(self, other: CpuMax) -> bool {
        u128::from(self.quota_us) * u128::from(other.period_us)
            < u128::from(other.quota_us) * u128::from(self.period_us)
    }
}

impl fmt::Display for CpuMax {
    /// "150000/100000 (1.5 CPUs)"
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cpus = self.quota_us as f64 / self.period_us as f64;
        let cpus = (cpus * 100.0).round() / 100.0;
        write!(f, "{}/{} ({cpus} CPUs)", self.quota_us, self.period_us)
    }
}

/// What the cgroup files say about a CPU quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Quota {
    /// No cgroup v2 hierarchy, or no `cpu.max` on the way (the root cgroup
    /// has none).
    Absent,
    /// `cpu.max` says "max".
    Unlimited,
    Limited(CpuMax),
    /// A `cpu.max` that does not parse (its start); taken as no quota.
    Malformed(String),
}

impl Quota {
    pub(crate) fn limit(&self) -> Option<CpuMax> {
        match self {
            Quota::Limited(max) => Some(*max),
            _ => None,
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quota::Absent => write!(f, "no cgroup v2 cpu.max"),
            Quota::Unlimited => write!(f, "cgroup cpu.max max"),
            Quota::Limited(max) => write!(f, "cgroup cpu.max {max}"),
            Quota::Malformed(text) => write!(f, "cgroup cpu.max {text:?} unreadable, no quota"),
        }
    }
}

/// One `cpu.max` file: "max 100000" or "150000 100000".
pub(crate) fn parse_cpu_max(text: &str) -> Quota {
    let positive = |field: &str| field.parse::<u64>().ok().filter(|value| *value > 0);
    let fields: Vec<&str> = text.split_whitespace().collect();
    let parsed = match fields[..] {
        ["max"] => Some(Quota::Unlimited),
        ["max", period] => positive(period).map(|_| Quota::Unlimited),
        [quota, period] => positive(quota)
            .zip(positive(period))
            .map(|(quota_us, period_us)| {
                Quota::Limited(CpuMax {
                    quota_us,
                    period_us,
                })
            }),
        _ => None,
    };
    parsed.unwrap_or_else(|| Quota::Malformed(text.trim().chars().take(40).collect()))
}

/// The tightest of the quotas in some `cpu.max` files: any limit beats
/// none, and an unreadable file counts only when no file limits.
pub(crate) fn tightest<'a>(files: impl IntoIterator<Item = &'a str>) -> Quota {
    files
        .into_iter()
        .map(parse_cpu_max)
        .fold(Quota::Absent, |found, next| match (found, next) {
            (Quota::Limited(a), Quota::Limited(b)) => {
                Quota::Limited(if b.is_tighter_than(a) { b } else { a })
            }
            (Quota::Limited(max), _) | (_, Quota::Limited(max)) => Quota::Limited(max),
            (Quota::Malformed(text), _) | (_, Quota::Malformed(text)) => Quota::Malformed(text),
            (Quota::Unlimited, _) | (_, Quota::Unlimited) => Quota::Unlimited,
            (Quota::Absent, Quota::Absent) => Quota::Absent,
        })
}

/// The cgroup v2 path in /proc/self/cgroup ("0::/system.slice/x.service");
/// `None` on a host with cgroup v1 only.
pub(crate) fn v2_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .filter(|path| path.starts_with('/'))
}

/// Where the cgroup2 hierarchy is mounted, from /proc/self/mountinfo.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Cgroup2Mount {
    /// The cgroup the mount shows at its top, "/" unless a bind mount.
    root: PathBuf,
    point: PathBuf,
}

/// The first cgroup2 line of mountinfo:
/// `ID PARENT MAJ:MIN ROOT POINT OPTIONS [TAGS...] - cgroup2 SOURCE OPTIONS`.
pub(crate) fn cgroup2_mount(mountinfo: &str) -> Option<Cgroup2Mount> {
    mountinfo.lines().find_map(|line| {
        let (mount, filesystem) = line.split_once(" - ")?;
        if filesystem.split_whitespace().next() != Some("cgroup2") {
            return None;
        }
        let mut fields = mount.split_whitespace().skip(3);
        let root = fields.next()?.into();
        let point = fields.next()?.into();
        Some(Cgroup2Mount { root, point })
    })
}

/// The directories whose `cpu.max` bound a process in `cgroup`: the mount
/// point, then each cgroup down to the process's own. A cgroup the mount
/// does not show (outside its root, or "..", as seen from another cgroup
/// namespace) leaves the mount point only.
pub(crate) fn cgroup_dirs(mount: &Cgroup2Mount, cgroup: &str) -> Vec<PathBuf> {
    let mut dir = mount.point.clone();
    let mut dirs = vec![dir.clone()];
    let Ok(relative) = Path::new(cgroup).strip_prefix(&mount.root) else {
        return dirs;
    };
    if relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        for part in relative.components() {
            dir.push(part);
            dirs.push(dir.clone());
        }
    }
    dirs
}

/// This process's CPU quota. Unreadable /proc files mean no quota; without
/// mountinfo, the usual mount point is tried.
pub(crate) fn process_quota() -> Quota {
    let read = |path: &Path| fs::read_to_string(path).ok();
    let Some(proc_cgroup) = read(Path::new("/proc/self/cgroup")) else {
        return Quota::Absent;
    };
    let Some(cgroup) = v2_path(&proc_cgroup) else {
        return Quota::Absent;
    };
    let mount = match read(Path::new("/proc/self/mountinfo")) {
        Some(mountinfo) => cgroup2_mount(&mountinfo),
        None => Some(Cgroup2Mount {
            root: "/".into(),
            point: "/sys/fs/cgroup".into(),
        }),
    };
    let Some(mount) = mount else {
        return Quota::Absent;
    };
    let files: Vec<String> = cgroup_dirs(&mount, cgroup)
        .iter()
        .filter_map(|dir| read(&dir.join("cpu.max")))
        .collect();
    tightest(files.iter().map(String::as_str))
}

#[cfg(test)]
#[path = "cgroup_tests.rs"]
mod tests;
