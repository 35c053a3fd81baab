//! Process limits: the open-files limit raised at start (a proxy holds two
//! fds per connection, plus pipes in flight, so the usual soft limit of
//! 1024 is far too low), and the connection limit derived from it.

use std::io;

/// Raises the soft open-files limit to the hard limit; returns the new
/// soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    raise_soft_limit(libc::RLIMIT_NOFILE).map(|limit| limit.rlim_cur)
}

/// What getrlimit(2) and setrlimit(2) name a resource by.
#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

/// Raises `resource`'s soft limit to its hard one; the limits as they
/// are now.
pub(super) fn raise_soft_limit(resource: Resource) -> io::Result<libc::rlimit> {
    let mut limit = limit_of(resource)?;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads one rlimit struct, which `limit` is.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit)
}

fn limit_of(resource: Resource) -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct, which `limit` is.
    if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// Fds kept back from client connections: listeners, io_uring rings and
/// eventfds, the admin server, pooled pipes and pooled upstream
/// connections. A 4-shard ringside with one route idles at about 40.
const RESERVED_FDS: u64 = 128;

/// Fds budgeted per client connection: its own socket and its upstream's,
/// and a share of the two pipes (four fds) that a connection splicing at
/// this moment borrows from the shard's pool.
const FDS_PER_CONNECTION: u64 = 3;

/// The process-wide connection limit: `configured`, or what the
/// open-files limit leaves room for (at least one per shard).
pub fn connection_limit(configured: Option<usize>, shards: usize) -> usize {
    if let Some(max) = configured {
        return max;
    }
    let nofile = limit_of(libc::RLIMIT_NOFILE).map_or(1024, |limit| limit.rlim_cur);
    let derived = nofile.saturating_sub(RESERVED_FDS) / FDS_PER_CONNECTION;
    usize::try_from(derived).unwrap_or(usize::MAX).max(shards)
}

/// Shard `shard`'s part of `total`: an even split, the remainder to the
/// first shards, so the parts add up to exactly `total`. Each shard then
/// counts only its own connections: no shared counter on the accept path.
pub fn shard_share(total: usize, shards: usize, shard: usize) -> usize {
    total / shards + usize::from(shard < total % shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_total() {
        for (total, shards) in [(1, 4), (10, 3), (7, 7), (1000, 6)] {
            let shares: Vec<usize> = (0..shards).map(|s| shard_share(total, shards, s)).collect();
            assert_eq!(shares.iter().sum::<usize>(), total, "{shares:?}");
            assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn a_configured_limit_is_taken_as_given() {
        assert_eq!(connection_limit(Some(5), 8), 5);
        assert!(connection_limit(None, 2) >= 2);
    }
}
