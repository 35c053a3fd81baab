//! A ringside started as a container would start it: as another user,
//! under a small `RLIMIT_MEMLOCK`, or under a seccomp filter that refuses
//! `io_uring_setup` as containerd 2.0's and Docker 25's `RuntimeDefault`
//! profiles do (containerd#9320, moby#46762). Each confinement is applied
//! in the child between fork and exec, so the test process keeps its own.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// `io_uring_setup`'s number: 425 on every architecture (x86_64 and the
/// asm-generic table alike).
const SYS_IO_URING_SETUP: u32 = 425;

/// The uid and gid Linkerd's injector runs its proxy as.
pub const PROXY_UID: u32 = 2102;

/// How the child is confined.
#[derive(Default, Clone, Copy)]
pub struct Confinement {
    /// Run as `PROXY_UID`:`PROXY_UID`, without root's `CAP_IPC_LOCK`.
    pub as_proxy_user: bool,
    /// Soft and hard `RLIMIT_MEMLOCK`, in bytes.
    pub memlock_bytes: Option<u64>,
    /// Refuse `io_uring_setup` with `EPERM`.
    pub refuse_io_uring: bool,
}

impl Confinement {
    /// Applies the confinement to `command`'s child.
    pub fn apply(self, command: &mut Command) {
        if self.as_proxy_user {
            // std clears the supplementary groups when root sets a uid.
            command.uid(PROXY_UID).gid(PROXY_UID);
        }
        // SAFETY: the closure runs in the forked child before exec and makes
        // only async-signal-safe system calls (setrlimit, prctl) on memory
        // it owns; it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(move || {
                if let Some(bytes) = self.memlock_bytes {
                    let limit = libc::rlimit {
                        rlim_cur: bytes,
                        rlim_max: bytes,
                    };
                    if libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if self.refuse_io_uring {
                    refuse_io_uring_setup()?;
                }
                Ok(())
            });
        }
    }
}

/// Installs a seccomp filter: `io_uring_setup` fails with `EPERM`,
/// everything else is allowed. Runs in the child (see `apply`).
fn refuse_io_uring_setup() -> std::io::Result<()> {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    // seccomp_data.nr is at offset 0.
    let program = [
        libc::sock_filter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: BPF_JEQ_K,
            jt: 0,
            jf: 1,
            k: SYS_IO_URING_SETUP,
        },
        libc::sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ALLOW,
        },
    ];
    load_seccomp(&program)
}

/// Loads `program` as this process's seccomp filter, after
/// `PR_SET_NO_NEW_PRIVS` as an unprivileged process must; for the hook a
/// test runs between fork and exec.
pub fn load_seccomp(program: &[libc::sock_filter]) -> std::io::Result<()> {
    let filter = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes integers; with
    // PR_SET_SECCOMP it reads `filter`, which points to `program`, both alive
    // for the call (the kernel copies the program).
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &filter as *const libc::sock_fprog,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
