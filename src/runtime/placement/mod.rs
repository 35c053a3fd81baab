//! Where the shards run. A sidecar shares its cores with the application
//! it serves, so the defaults follow what the process is allowed: one shard
//! per allowed CPU, fewer under a cgroup CPU quota (rounded up: 1.5 CPUs
//! give 2 shards), pinned only where the cores are the proxy's own: a
//! cpuset narrower than the machine, a shard on each of its CPUs, no quota
//! below them. A pinned shard on a shared core got only 0.62-0.98 of that
//! core, and two pinned shards on this 2-CPU machine, sharing it with the
//! load client and the origin, did 0.51-0.91x the requests of unpinned ones
//! at 2 connections (`loadtest/scripts/ab.sh`, benchmarks/HISTORY.md): the
//! scheduler cannot move a pinned shard off a core the application is busy
//! on, while an unpinned one runs wherever a CPU is free.
//!
//! `Host::probe` looks at the OS; `Placement::decide` is pure over what it
//! found, so every rule is tested on sample hosts.

mod cgroup;
mod cpus;

use std::fmt;

use glommio::{CpuSet, PoolPlacement};

use crate::config::{Config, Pin};
use cgroup::{CpuMax, Quota};
pub use cpus::CpuList;

/// What the process may use, as found at start.
struct Host {
    /// The CPUs the process may run on; `None` when no source told.
    allowed: Option<CpuList>,
    /// How many CPUs the machine has online: an allowed set narrower than
    /// this was set aside for the process on purpose.
    online: Option<usize>,
    /// The standard library's count of CPUs, used when `allowed` is unknown.
    fallback_cpus: usize,
    quota: Quota,
}

impl Host {
    fn probe() -> Host {
        Host {
            allowed: cpus::allowed(),
            online: CpuSet::online().ok().map(|cpus| cpus.len()),
            fallback_cpus: std::thread::available_parallelism().map_or(1, usize::from),
            quota: cgroup::process_quota(),
        }
    }

    fn cpus(&self) -> usize {
        self.allowed
            .as_ref()
            .map_or(self.fallback_cpus, CpuList::len)
    }
}

impl fmt::Display for Host {
    /// "cpuset 0-3 (4 CPUs), cgroup cpu.max 150000/100000 (1.5 CPUs)"
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.allowed {
            Some(allowed) => write!(f, "cpuset {allowed} ({})", counted(allowed.len(), "CPU"))?,
            None => write!(f, "cpuset unknown ({})", counted(self.fallback_cpus, "CPU"))?,
        }
        write!(f, ", {}", self.quota)
    }
}

/// How many shards run, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub shards: usize,
    /// The CPUs the shards are pinned among, one shard per CPU, spread;
    /// `None` leaves them to the scheduler, within the process's affinity
    /// (threads inherit it).
    pinned_among: Option<CpuList>,
    /// How the shard count came about.
    from: String,
    /// Why the shards are pinned or not.
    why: String,
}

/// A `runtime.pin = "cores"` this host cannot honour.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "runtime.pin: \"cores\" needs a CPU per shard: {}, {} allowed ({allowed})",
        counted(*.shards, "shard"),
        counted(.allowed.len(), "CPU")
    )]
    FewerCpusThanShards { shards: usize, allowed: CpuList },
    #[error("runtime.pin: \"cores\" needs the allowed CPUs, and neither sched_getaffinity nor /proc/self/status gave them")]
    AllowedUnknown,
}

impl Placement {
    /// The placement of `config` on this host.
    pub fn here(config: &Config) -> Result<Placement, PlacementError> {
        Self::decide(config.shards, config.pin, &Host::probe())
    }

    /// `shards` when set, else one per allowed CPU within the quota;
    /// pinned as `pin` says.
    fn decide(shards: Option<usize>, pin: Pin, host: &Host) -> Result<Placement, PlacementError> {
        let (shards, from) = match shards {
            Some(shards) => (shards, format!("runtime.shards; {host}")),
            None => {
                let quota_cpus = host
                    .quota
                    .limit()
                    .map_or(usize::MAX, CpuMax::cpus_rounded_up);
                let shards = host.cpus().min(quota_cpus).max(1);
                (shards, format!("{host} -> {shards}"))
            }
        };
        let (pinned_among, why) = match pin {
            Pin::Off => (None, "runtime.pin off".to_string()),
            Pin::Cores => (Some(cores(shards, host)?), "runtime.pin cores".to_string()),
            Pin::Auto => auto(shards, host),
        };
        Ok(Placement {
            shards,
            pinned_among,
            from,
            why,
        })
    }

    /// The start-up log line: how many shards, pinned or not, and why.
    pub(crate) fn log(&self) {
        tracing::info!(
            shards = self.shards,
            pin = %self.pin_name(),
            from = self.from.as_str(),
            why = self.why.as_str(),
            "placement"
        );
    }

    fn pin_name(&self) -> &'static str {
        match self.pinned_among {
            Some(_) => Pin::Cores.as_str(),
            None => Pin::Off.as_str(),
        }
    }

    /// glommio's pool placement. Pinned shards are spread (MaxSpread: over
    /// NUMA nodes, then packages, then cores) over the allowed CPUs only.
    pub(crate) fn pool(&self) -> glommio::Result<PoolPlacement, ()> {
        Ok(match &self.pinned_among {
            None => PoolPlacement::Unbound(self.shards),
            Some(allowed) => {
                let cpus = CpuSet::online()?.filter(|location| allowed.contains(location.cpu));
                PoolPlacement::MaxSpread(self.shards, Some(cpus))
            }
        })
    }
}

impl fmt::Display for Placement {
    /// For `--check`, as TOML comments: the values this host resolves to.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "# on this host: shards = {} ({})",
            self.shards, self.from
        )?;
        writeln!(
            f,
            "# on this host: pin = \"{}\" ({})",
            self.pin_name(),
            self.why
        )
    }
}

/// `cores`: the allowed CPUs, when there is one for every shard.
fn cores(shards: usize, host: &Host) -> Result<CpuList, PlacementError> {
    let allowed = host.allowed.clone().ok_or(PlacementError::AllowedUnknown)?;
    if shards > allowed.len() {
        return Err(PlacementError::FewerCpusThanShards { shards, allowed });
    }
    Ok(allowed)
}

/// `auto`: pinned on dedicated cores only, that is a cpuset narrower than
/// the machine (set aside on purpose, as a CPU manager does for whole-CPU
/// pods), a shard on each of its CPUs and no quota below them. Anywhere
/// else the cores are shared with the application, and unpinned shards do
/// better there.
fn auto(shards: usize, host: &Host) -> (Option<CpuList>, String) {
    let Some(allowed) = &host.allowed else {
        return (None, "auto: allowed CPUs unknown".into());
    };
    if let Some(quota) = host
        .quota
        .limit()
        .filter(|quota| quota.limits(allowed.len()))
    {
        return (None, format!("auto: shared cores, CPU quota {quota}"));
    }
    if shards != allowed.len() {
        let (shards, cpus) = (counted(shards, "shard"), counted(allowed.len(), "CPU"));
        return (
            None,
            format!("auto: shared cores, {shards} on {cpus} allowed"),
        );
    }
    let whole_machine = host.online.is_none_or(|online| online <= allowed.len());
    if whole_machine {
        return (
            None,
            "auto: shared cores, every CPU of the machine allowed".into(),
        );
    }
    let why = "auto: dedicated cores, a shard per allowed CPU and no CPU quota";
    (Some(allowed.clone()), why.into())
}

/// "1 CPU", "4 CPUs".
fn counted(count: usize, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        _ => format!("{count} {noun}s"),
    }
}

#[cfg(test)]
mod tests;
