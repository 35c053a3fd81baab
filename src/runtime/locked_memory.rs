//! Locked memory for io_uring. Each executor (the shards and the admin
//! shard) has two rings, main and latency, and the kernel charges their
//! pages to `RLIMIT_MEMLOCK`, per user, unless the process holds
//! `CAP_IPC_LOCK` (root on a host does; uid 2102 in a pod does not). glommio
//! asks for 128 entries, four pages a ring: 96 KiB for two shards and the
//! admin shard. Containers often get 64 KiB (Docker's default), where the
//! third executor's rings fail with `ENOMEM`.
//!
//! So at start the soft limit is raised to the hard one, and when the rings
//! still do not fit, they are made 64 entries deep: two pages each, the
//! least a ring takes, 56 KiB for two shards with the probe glommio makes
//! first. A shard then submits at most 64 operations per `io_uring_enter`;
//! more wait in glommio's own queue for the next one. When even that does
//! not fit, start fails with the limit to set. (glommio's storage slab, the
//! other user of locked memory, is not made at all: `NO_STORAGE_IO`.)
//!
//! The plan is this process's alone: the kernel counts locked memory per
//! user, and what the user's other processes hold cannot be seen. Rings
//! that still fail end the start with the cause (`started`).

use std::io;

/// glommio's default ring depth, taken whenever the limit allows it.
pub(crate) const FULL_RING_DEPTH: usize = 128;

/// The shallowest depth worth taking: a ring of 64 entries already fits in
/// the two pages (SQEs, then the CQ and SQ array) that any ring takes.
const LEAST_RING_DEPTH: usize = 64;

/// Rings each executor keeps: main and latency (no `IOPOLL` ring without
/// storage I/O, vendor/glommio patch 14).
const RINGS_PER_EXECUTOR: u64 = 2;

/// The two-entry ring glommio sets up once to probe the kernel's opcodes.
const PROBE_RING_DEPTH: usize = 2;

/// `CAP_IPC_LOCK`'s bit in `/proc/self/status`'s `CapEff`.
const CAP_IPC_LOCK: u32 = 14;

/// How deep the rings are, and why when not full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RingPlan {
    pub depth: usize,
    /// The limit that made them shallower, and what the full depth needs.
    pub shallow: Option<Shallow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shallow {
    pub limit_bytes: u64,
    pub full_depth_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "RLIMIT_MEMLOCK is {} KiB, and the io_uring rings of {executors} executors ({} shards and \
     the admin shard) need {} KiB locked: raise the memlock limit (README: \"Locked memory\")",
    limit_bytes / 1024, executors - 1, needed_bytes / 1024
)]
pub struct LockedMemoryError {
    executors: usize,
    limit_bytes: u64,
    needed_bytes: u64,
}

impl RingPlan {
    /// One line when the rings are shallower than glommio's default.
    pub(crate) fn log(&self) {
        if let Some(shallow) = self.shallow {
            tracing::warn!(
                memlock_kib = shallow.limit_bytes / 1024,
                ring_depth = self.depth,
                full_depth = FULL_RING_DEPTH,
                needs_kib = shallow.full_depth_bytes / 1024,
                "io_uring rings made shallower for RLIMIT_MEMLOCK: a shard submits at most \
                 ring_depth operations per io_uring_enter; a memlock of needs_kib gives the full depth"
            );
        }
    }
}

/// Raises the soft memlock limit to the hard one and picks the ring depth
/// the limit holds for `executors` executors.
pub(crate) fn plan_rings(executors: usize) -> Result<RingPlan, LockedMemoryError> {
    if holds_ipc_lock() {
        return Ok(RingPlan {
            depth: FULL_RING_DEPTH,
            shallow: None,
        });
    }
    let limit_bytes = raise_memlock_limit().unwrap_or(u64::MAX);
    plan_for_limit(executors, limit_bytes, crate::metrics::page_size())
}

fn plan_for_limit(
    executors: usize,
    limit_bytes: u64,
    page_bytes: u64,
) -> Result<RingPlan, LockedMemoryError> {
    let needed = |depth| rings_locked_bytes(executors, depth, page_bytes);
    let full_depth_bytes = needed(FULL_RING_DEPTH);
    if full_depth_bytes <= limit_bytes {
        return Ok(RingPlan {
            depth: FULL_RING_DEPTH,
            shallow: None,
        });
    }
    if needed(LEAST_RING_DEPTH) <= limit_bytes {
        return Ok(RingPlan {
            depth: LEAST_RING_DEPTH,
            shallow: Some(Shallow {
                limit_bytes,
                full_depth_bytes,
            }),
        });
    }
    Err(LockedMemoryError {
        executors,
        limit_bytes,
        needed_bytes: needed(LEAST_RING_DEPTH),
    })
}

/// What `executors` executors' rings of `depth` entries lock, with the
/// probe ring.
fn rings_locked_bytes(executors: usize, depth: usize, page_bytes: u64) -> u64 {
    let executors = executors as u64;
    executors * RINGS_PER_EXECUTOR * ring_locked_bytes(depth, page_bytes)
        + ring_locked_bytes(PROBE_RING_DEPTH, page_bytes)
}

/// One ring's locked bytes, as Linux 6.x sizes it (`rings_size` in
/// io_uring/io_uring.c): the shared `struct io_rings` (its heads, tails and
/// flags on cache lines of their own), twice `depth` CQEs of 16 bytes and
/// the SQ array of `depth` u32s, in whole pages; then `depth` SQEs of 64
/// bytes, in whole pages.
fn ring_locked_bytes(depth: usize, page_bytes: u64) -> u64 {
    const RINGS_HEADER_BYTES: u64 = 256;
    let depth = depth as u64;
    let rings = RINGS_HEADER_BYTES + 2 * depth * 16 + depth * 4;
    let sqes = depth * 64;
    rings.div_ceil(page_bytes) * page_bytes + sqes.div_ceil(page_bytes) * page_bytes
}

/// Raises the soft `RLIMIT_MEMLOCK` to the hard one; the new soft limit,
/// `u64::MAX` when unlimited.
fn raise_memlock_limit() -> io::Result<u64> {
    let limit = super::limits::raise_soft_limit(libc::RLIMIT_MEMLOCK)?;
    Ok(match limit.rlim_cur {
        libc::RLIM_INFINITY => u64::MAX,
        bytes => bytes,
    })
}

/// Whether this process's locked memory is exempt from the limit.
fn holds_ipc_lock() -> bool {
    super::status::own("CapEff")
        .and_then(|caps| u64::from_str_radix(&caps, 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;
    const KIB: u64 = 1024;

    /// Measured on Linux 6.18 as uid 2102 with two shards: 96 KiB starts,
    /// 64 KiB failed with ENOMEM on the third executor's second ring.
    #[test]
    fn a_ring_takes_four_pages_at_full_depth_and_two_at_64() {
        assert_eq!(ring_locked_bytes(FULL_RING_DEPTH, PAGE), 16 * KIB);
        assert_eq!(ring_locked_bytes(LEAST_RING_DEPTH, PAGE), 8 * KIB);
        assert_eq!(ring_locked_bytes(PROBE_RING_DEPTH, PAGE), 8 * KIB);
    }

    #[test]
    fn dockers_64_kib_holds_two_shards_at_64_entries() {
        let plan = plan_for_limit(3, 64 * KIB, PAGE).unwrap();
        assert_eq!(plan.depth, LEAST_RING_DEPTH);
        assert_eq!(
            plan.shallow,
            Some(Shallow {
                limit_bytes: 64 * KIB,
                full_depth_bytes: 104 * KIB,
            })
        );
    }

    #[test]
    fn a_limit_that_holds_the_full_depth_takes_it() {
        for limit in [104 * KIB, 8 * 1024 * KIB, u64::MAX] {
            let plan = plan_for_limit(3, limit, PAGE).unwrap();
            assert_eq!((plan.depth, plan.shallow), (FULL_RING_DEPTH, None));
        }
    }

    #[test]
    fn a_limit_below_the_least_depth_names_what_to_set() {
        let err = plan_for_limit(9, 64 * KIB, PAGE).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("RLIMIT_MEMLOCK is 64 KiB"), "{message}");
        assert!(message.contains("8 shards"), "{message}");
        assert!(message.contains("need 152 KiB"), "{message}");
    }
}
