//! The CPUs this process may run on: its affinity mask, which already
//! reflects a container's cpuset and any `taskset`. It comes from
//! sched_getaffinity(2), with `Cpus_allowed_list` in /proc/self/status as
//! the fallback (a seccomp filter may refuse the call).

use std::fmt;
use std::io;

use crate::runtime::status;

/// CPU ids, ascending, each once, never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(Vec<usize>);

/// The highest CPU id accepted. Linux's NR_CPUS tops out at 8192; the bound
/// keeps a malformed "0-4294967295" from allocating gigabytes.
const MAX_CPU_ID: usize = 1 << 16;

impl CpuList {
    /// Parses a kernel CPU list such as "0-3,8,10-11"; `None` when it is
    /// malformed or empty.
    pub(crate) fn parse(text: &str) -> Option<CpuList> {
        let mut cpus = Vec::new();
        for part in text.trim().split(',') {
            let (first, last) = part.split_once('-').unwrap_or((part, part));
            let first: usize = first.trim().parse().ok()?;
            let last: usize = last.trim().parse().ok()?;
            if first > last || last > MAX_CPU_ID {
                return None;
            }
            cpus.extend(first..=last);
        }
        Self::from_ids(cpus)
    }

    /// The CPUs set in an affinity mask: bit `b` of word `w` is CPU
    /// `w * BITS + b`, as the kernel lays out a `cpu_set_t`.
    fn from_mask(words: &[libc::c_ulong]) -> Option<CpuList> {
        let bits = libc::c_ulong::BITS as usize;
        let cpus = words.iter().enumerate().flat_map(|(index, word)| {
            (0..bits)
                .filter(move |bit| word & (1 << bit) != 0)
                .map(move |bit| index * bits + bit)
        });
        Self::from_ids(cpus.collect())
    }

    fn from_ids(mut cpus: Vec<usize>) -> Option<CpuList> {
        cpus.sort_unstable();
        cpus.dedup();
        (!cpus.is_empty()).then_some(CpuList(cpus))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn contains(&self, cpu: usize) -> bool {
        self.0.binary_search(&cpu).is_ok()
    }
}

impl fmt::Display for CpuList {
    /// The kernel's own notation, runs of ids as ranges: "0-3,8,10-11".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0.as_slice();
        let mut separator = "";
        while let [first, ..] = rest {
            let run = rest
                .iter()
                .zip(*first..)
                .take_while(|(cpu, expected)| **cpu == *expected)
                .count();
            match run {
                1 => write!(f, "{separator}{first}")?,
                _ => write!(f, "{separator}{first}-{}", rest[run - 1])?,
            }
            rest = &rest[run..];
            separator = ",";
        }
        Ok(())
    }
}

/// The CPUs this process may run on; `None` when neither source answers.
pub(crate) fn allowed() -> Option<CpuList> {
    affinity_mask()
        .ok()
        .and_then(|words| CpuList::from_mask(&words))
        .or_else(|| CpuList::parse(&status::own(STATUS_FIELD)?))
}

/// The field of /proc/self/status that lists them.
const STATUS_FIELD: &str = "Cpus_allowed_list";

/// This thread's affinity mask. It starts at 1024 CPU ids (glibc's
/// `CPU_SETSIZE`) and doubles while the kernel's mask is wider.
fn affinity_mask() -> io::Result<Vec<libc::c_ulong>> {
    let bits = libc::c_ulong::BITS as usize;
    let mut words: Vec<libc::c_ulong> = vec![0; 1024 / bits];
    loop {
        let bytes = std::mem::size_of_val(words.as_slice());
        // SAFETY: the kernel writes at most `bytes` bytes, which is the size
        // of `words`; glibc passes the size through, so a buffer wider than
        // a `cpu_set_t` (an array of `c_ulong` too) is fine.
        let rc = unsafe { libc::sched_getaffinity(0, bytes, words.as_mut_ptr().cast()) };
        if rc == 0 {
            return Ok(words);
        }
        let err = io::Error::last_os_error();
        // EINVAL: the kernel's mask is wider than `words`.
        if err.raw_os_error() != Some(libc::EINVAL) || words.len() * bits > MAX_CPU_ID {
            return Err(err);
        }
        words.resize(words.len() * 2, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &CpuList) -> &[usize] {
        &list.0
    }

    #[test]
    fn lists_parse_as_the_kernel_writes_them() {
        let list = CpuList::parse("0-3,8,10-11\n").unwrap();
        assert_eq!(ids(&list), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(list.to_string(), "0-3,8,10-11");
        assert_eq!(CpuList::parse("5").unwrap().to_string(), "5");
        // Overlaps and disorder still give each CPU once, in order.
        let list = CpuList::parse("6,2-4,3").unwrap();
        assert_eq!(
            (ids(&list), list.to_string()),
            (&[2, 3, 4, 6][..], "2-4,6".into())
        );
    }

    #[test]
    fn malformed_lists_are_none_not_a_panic() {
        for text in [
            "",
            " ",
            ",",
            "0-",
            "-3",
            "3-1",
            "a",
            "0-3,",
            "1,,2",
            "0--2",
            "0-99999999999",
            "99999999999999999999999",
        ] {
            assert_eq!(CpuList::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_mask_names_the_cpus_of_its_set_bits() {
        let bits = libc::c_ulong::BITS as usize;
        let list = CpuList::from_mask(&[0b1011, 0b1]).unwrap();
        assert_eq!(ids(&list), [0, 1, 3, bits]);
        assert_eq!(CpuList::from_mask(&[0, 0]), None);
        assert!(list.contains(bits) && !list.contains(2));
    }

    #[test]
    fn the_status_file_gives_the_allowed_list() {
        let status = "Name:\tringside\nCpus_allowed:\tf\nCpus_allowed_list:\t0-3\n";
        let allowed = |status| status::field(status, STATUS_FIELD).and_then(CpuList::parse);
        assert_eq!(allowed(status).unwrap().len(), 4);
        assert_eq!(allowed("Name:\tringside\n"), None);
        assert_eq!(allowed("Cpus_allowed_list:\tgarbage\n"), None);
    }

    #[test]
    fn this_process_runs_on_some_cpu() {
        assert!(allowed().is_some_and(|list| list.len() >= 1));
    }
}
