//! process_* metrics, read from /proc on each scrape (cold path).

use super::text::Family;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// Reads this process's figures; anything unreadable stays zero.
    pub fn read() -> ProcessStats {
        let ticks = clock_ticks_per_second();
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name, which may itself hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| {
            fields
                .get(n)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // Field numbers as in proc(5), less the two before the command end.
        let (utime, stime, start_ticks, rss_pages) = (field(11), field(12), field(19), field(21));
        let boot_time = std::fs::read_to_string("/proc/stat")
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("btime ")
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64);
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
            .unwrap_or(0);
        ProcessStats {
            cpu_seconds: (utime + stime) as f64 / ticks as f64,
            resident_memory_bytes: rss_pages * page_size(),
            open_fds,
            max_fds,
            start_time_seconds: boot_time as f64 + start_ticks as f64 / ticks as f64,
        }
    }

    pub(super) fn encode(&self, out: &mut String) {
        Family::counter("process_cpu_seconds_total", "User and system CPU time.")
            .write(out, [("", self.cpu_seconds)]);
        Family::gauge("process_resident_memory_bytes", "Resident memory.")
            .write(out, [("", self.resident_memory_bytes)]);
        Family::gauge("process_open_fds", "Open file descriptors.")
            .write(out, [("", self.open_fds)]);
        Family::gauge("process_max_fds", "Limit of open file descriptors.")
            .write(out, [("", self.max_fds)]);
        Family::gauge(
            "process_start_time_seconds",
            "Start time, seconds since the epoch.",
        )
        .write(out, [("", self.start_time_seconds)]);
    }
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// The kernel page size, in bytes (4096 where it cannot be read).
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let stats = ProcessStats::read();
        assert!(stats.resident_memory_bytes > 0);
        assert!(stats.open_fds >= 3);
        assert!(stats.max_fds >= stats.open_fds);
        assert!(stats.start_time_seconds > 1.0e9);
    }
}
