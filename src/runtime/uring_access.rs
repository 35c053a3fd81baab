//! Whether this process may use io_uring at all, asked once before any
//! shard starts. ringside has no other I/O path, and where io_uring is
//! refused glommio panics in each thread it starts; what the operator
//! needs instead is one line that says who refused it and where the fix
//! is. Three refusers are common: a seccomp filter (containerd 2.0's and
//! Docker 25's `RuntimeDefault` profiles leave io_uring out:
//! containerd#9320, moby#46762), the `kernel.io_uring_disabled` sysctl
//! (Linux 6.6), and a kernel built without it.

use std::io;

/// `struct io_uring_params`' size: the kernel reads and writes it whole.
const PARAMS_BYTES: usize = 120;

#[derive(Debug, thiserror::Error)]
#[error(
    "io_uring is refused (io_uring_setup: {error}): {cause}; ringside needs io_uring \
     (README: \"io_uring under seccomp\")"
)]
pub struct IoUringRefused {
    error: io::Error,
    cause: &'static str,
}

/// Asks for a ring of no entries, which the kernel refuses with `EINVAL`
/// once io_uring is allowed (`io_uring_fill_params`), after the seccomp
/// filter and `io_uring_allowed` have had their say: the answer without a
/// ring, whose locked pages (charged to the user, freed asynchronously
/// after close) would count against the rings' own `RLIMIT_MEMLOCK`
/// budget. The refusal, if any, with its likeliest cause.
pub(crate) fn check() -> Result<(), IoUringRefused> {
    let mut params = [0u8; PARAMS_BYTES];
    // SAFETY: io_uring_setup reads and writes one io_uring_params, which
    // `params` is sized and zeroed for; any fd it returns is ours to close.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 0u32, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: `fd` is a ring just set up, owned by nobody else.
        unsafe { libc::close(fd as i32) };
        return Ok(());
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EPERM | libc::EACCES | libc::ENOSYS) => Err(IoUringRefused {
            cause: cause(&error),
            error,
        }),
        _ => Ok(()),
    }
}

fn cause(error: &io::Error) -> &'static str {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled");
    match sysctl.as_deref().map(str::trim) {
        Ok("2") => "kernel.io_uring_disabled = 2 turns it off for every process",
        Ok("1") => {
            "kernel.io_uring_disabled = 1 allows it only to CAP_SYS_ADMIN and to the group in \
             kernel.io_uring_group"
        }
        _ if under_seccomp_filter() => {
            "a seccomp filter refuses it, as the RuntimeDefault profiles of containerd 2.0 and \
             Docker 25 do; run ringside under a profile that allows io_uring_setup, \
             io_uring_enter and io_uring_register"
        }
        _ if error.raw_os_error() == Some(libc::ENOSYS) => "this kernel is built without it",
        _ => "neither a seccomp filter nor kernel.io_uring_disabled explains it",
    }
}

/// `Seccomp: 2` in `/proc/self/status`: a filter is installed.
fn under_seccomp_filter() -> bool {
    super::status::own("Seccomp").is_some_and(|mode| mode == "2")
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_machine_may_use_io_uring() {
        super::check().expect("the tests run where io_uring works");
    }
}
