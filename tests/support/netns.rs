//! Network namespaces a test creates for itself: a "pod" with its own
//! interfaces and its own iptables tables, so that rules installed there
//! touch nothing of the machine's. Each is named by the test process's pid
//! and a tag, and deleted when dropped, also when the test fails.
//!
//! Creating one needs root and iproute2: `Netns::create` says why it
//! cannot, so that a test can print `SKIP: reason` rather than pass
//! silently.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};

/// A network namespace, deleted when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace with loopback up, or why there cannot be one here.
    pub fn create(tag: &str) -> Result<Netns, String> {
        let name = format!("ringside-{tag}-{}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|err| format!("cannot run `ip` (install iproute2): {err}"))?;
        if !out.status.success() {
            return Err(format!(
                "`ip netns add` failed (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"]);
        Ok(netns)
    }

    /// `program args` run inside the namespace, whatever its exit status.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("ip netns exec {} {program}: {err}", self.name))
    }

    /// `program args` inside the namespace, which must succeed; its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.exec(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} in {}: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `ip -n NAME args`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let out = Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip -n {} {args:?}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `inside` run on a thread of its own that has entered the namespace:
    /// sockets it opens live there, and may be used from any thread after.
    pub fn enter<T: Send>(&self, inside: impl FnOnce() -> T + Send) -> T {
        let handle = File::open(format!("/var/run/netns/{}", self.name)).unwrap();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    set_network_namespace(&handle);
                    inside()
                })
                .join()
                .expect("the thread inside the namespace")
        })
    }
}

/// Moves the calling thread into the network namespace `handle` names.
fn set_network_namespace(handle: &File) {
    // SAFETY: setns only reads the descriptor, which `handle` keeps open,
    // and changes this thread's namespace alone.
    let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}
