//! A network namespace of the test's own, entered by the test's thread, so
//! that iptables rules, ringside, origins and clients all live in it and
//! nothing touches the host's tables. It has loopback up and 198.18.0.1/24
//! (the benchmarking range, which exists nowhere else) on a veth
//! interface. Needs root, `ip` and `iptables`; without them `enter`
//! prints a `SKIP:` line and the test returns.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The address the namespace's veth interface holds; origins listen on
/// it, and clients' connections to it are redirected.
pub const POD_ADDR: &str = "198.18.0.1";
/// The pod's IPv6 address, once `NetNs::redirect_v6` has given it.
pub const POD_ADDR_V6: &str = "2001:db8::1";

/// Deleted when dropped, also when the test fails.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a namespace named after `test` and the process, and moves
    /// the calling thread into it (threads and processes it starts from
    /// then on are in it too). `None`, after a `SKIP:` line naming the
    /// reason, when this machine cannot.
    pub fn enter(test: &str) -> Option<NetNs> {
        // SAFETY: geteuid only reads the caller's user id.
        if unsafe { libc::geteuid() } != 0 {
            return skip(test, "needs root for network namespaces and iptables");
        }
        for tool in ["ip", "iptables"] {
            if Command::new(tool).arg("-V").output().is_err() {
                return skip(test, &format!("`{tool}` is not installed"));
            }
        }
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let name = format!("ringside-{}-{n}", std::process::id());
        if let Err(why) = run("ip", &["netns", "add", &name]) {
            return skip(test, &format!("cannot create a network namespace: {why}"));
        }
        let netns = NetNs { name };
        let file = File::open(format!("/var/run/netns/{}", netns.name)).unwrap();
        // SAFETY: setns reads the namespace fd, which `file` holds open
        // for the call; it changes only the calling thread's namespace.
        let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
        netns.ip(&["link", "set", "lo", "up"]);
        // A veth pair with both ends here: a pod's interface without a
        // second namespace (the dummy driver is not in every kernel, veth is).
        netns.ip(&[
            "link", "add", "pod0", "type", "veth", "peer", "name", "pod1",
        ]);
        netns.ip(&["addr", "add", &format!("{POD_ADDR}/24"), "dev", "pod0"]);
        netns.ip(&["link", "set", "pod0", "up"]);
        netns.ip(&["link", "set", "pod1", "up"]);
        Some(netns)
    }

    fn ip(&self, args: &[&str]) {
        run("ip", args).unwrap_or_else(|why| panic!("ip {args:?}: {why}"));
    }

    /// Redirects TCP to the pod's subnet to `port` on loopback (nat
    /// OUTPUT, as `ringside iptables` does for outbound traffic), except
    /// connections made by group `exempt_gid` (ringside's own). `None`
    /// after a `SKIP:` line when the kernel has no nat REDIRECT.
    pub fn redirect(&self, test: &str, port: u16, exempt_gid: u32) -> Option<()> {
        redirect("iptables", "198.18.0.0/24", test, port, exempt_gid)
    }

    /// `redirect` for IPv6: gives the pod 2001:db8::1/64 (the
    /// documentation range) and redirects TCP to that subnet with
    /// ip6tables. `None` after a `SKIP:` line when the kernel has no IPv6
    /// or no ip6tables nat.
    pub fn redirect_v6(&self, test: &str, port: u16, exempt_gid: u32) -> Option<()> {
        let addr = format!("{POD_ADDR_V6}/64");
        // nodad: usable at once, without duplicate address detection.
        if let Err(why) = run("ip", &["addr", "add", &addr, "dev", "pod0", "nodad"]) {
            return skip(test, &format!("no IPv6 here: {why}"));
        }
        redirect("ip6tables", "2001:db8::/64", test, port, exempt_gid)
    }
}

/// Appends the two nat OUTPUT rules of `NetNs::redirect` with `tool`.
fn redirect(tool: &str, subnet: &str, test: &str, port: u16, exempt_gid: u32) -> Option<()> {
    let gid = exempt_gid.to_string();
    let port = port.to_string();
    let rules: [&[&str]; 2] = [
        &["-m", "owner", "--gid-owner", &gid, "-j", "RETURN"],
        &["-d", subnet, "-j", "REDIRECT", "--to-ports", &port],
    ];
    for rule in rules {
        let mut args = vec!["-t", "nat", "-A", "OUTPUT", "-p", "tcp"];
        args.extend_from_slice(rule);
        if let Err(why) = run(tool, &args) {
            return skip(test, &format!("{tool} nat REDIRECT is unavailable: {why}"));
        }
    }
    Some(())
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

fn skip<T>(test: &str, reason: &str) -> Option<T> {
    // Written to stderr itself, not through `eprintln!`, which the test
    // harness captures and hides for a passing test.
    let _ = writeln!(std::io::stderr(), "SKIP: {test}: {reason}");
    None
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(program).args(args).output() {
        Ok(Output { status, .. }) if status.success() => Ok(()),
        Ok(Output { stderr, .. }) => Err(String::from_utf8_lossy(&stderr).trim().to_string()),
        Err(err) => Err(err.to_string()),
    }
}
