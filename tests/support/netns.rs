//! Network namespaces a test creates for itself: a "pod" with its own
//! interfaces and its own iptables tables, so that rules installed there
//! touch nothing of the machine's. Each is named by the test process's pid
//! and a tag, and deleted when dropped, also when the test fails.
//!
//! Creating one needs root and iproute2: `Netns::create` says why it
//! cannot, so that a test can print `SKIP: reason` rather than pass
//! silently. `Pod` is a namespace the test's own thread moves into, with
//! an address to proxy to and redirect rules of the tests' own, for the
//! transparent listeners.

use std::fs::File;
use std::io::Write;
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

impl Netns {
    /// Moves the calling thread into the namespace: threads and processes
    /// it starts from then on are in it too.
    pub fn enter_here(&self) {
        let handle = File::open(format!("/var/run/netns/{}", self.name)).unwrap();
        set_network_namespace(&handle);
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

/// The address the namespace's veth interface holds; origins listen on
/// it, and clients' connections to it are redirected.
pub const POD_ADDR: &str = "198.18.0.1";
/// The pod's IPv6 address, once `Pod::redirect_v6` has given it.
pub const POD_ADDR_V6: &str = "2001:db8::1";

/// A "pod": a namespace the test's thread has entered, with loopback up
/// and `POD_ADDR` on a veth interface. Deleted when dropped, also when the
/// test fails.
pub struct Pod {
    netns: Netns,
}

impl Pod {
    /// Creates a namespace named after `test` and the process, and moves
    /// the calling thread into it. `None`, after a `SKIP:` line naming the
    /// reason, when this machine cannot.
    pub fn enter(test: &str) -> Option<Pod> {
        // SAFETY: geteuid only reads the caller's user id.
        if unsafe { libc::geteuid() } != 0 {
            return skip(test, "needs root for network namespaces and iptables");
        }
        for tool in ["ip", "iptables"] {
            if Command::new(tool).arg("-V").output().is_err() {
                return skip(test, &format!("`{tool}` is not installed"));
            }
        }
        let netns = match Netns::create(test) {
            Ok(netns) => netns,
            Err(why) => return skip(test, &why),
        };
        netns.enter_here();
        // A veth pair with both ends here: a pod's interface without a
        // second namespace (the dummy driver is not in every kernel, veth is).
        netns.ip(&[
            "link", "add", "pod0", "type", "veth", "peer", "name", "pod1",
        ]);
        netns.ip(&["addr", "add", &format!("{POD_ADDR}/24"), "dev", "pod0"]);
        netns.ip(&["link", "set", "pod0", "up"]);
        netns.ip(&["link", "set", "pod1", "up"]);
        Some(Pod { netns })
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

/// Two namespaces joined by a veth pair, as two pods on one network:
/// `a` holds `{prefix}1` and `b` holds `{prefix}2`, from ranges that exist
/// only inside them (198.18.0.0/24, 2001:db8::/64). Both are deleted when
/// dropped, also when the test fails.
pub struct LinkedPods {
    pub a: Netns,
    pub b: Netns,
}

/// The two pods' IPv4 addresses.
pub const POD_A: &str = "198.18.0.1";
pub const POD_B: &str = "198.18.0.2";
/// Their IPv6 addresses, where the kernel has IPv6.
pub const POD_A_V6: &str = "2001:db8::1";
pub const POD_B_V6: &str = "2001:db8::2";

impl LinkedPods {
    /// `tag` names the pair (unique per test in the process). IPv6
    /// addresses are added where the kernel has IPv6. `None` after a
    /// `SKIP:` line naming `test` when this machine cannot.
    pub fn create(test: &str, tag: &str) -> Option<LinkedPods> {
        // SAFETY: geteuid only reads the caller's user id.
        if unsafe { libc::geteuid() } != 0 {
            return skip(test, "needs root for network namespaces and iptables");
        }
        let (a, b) = match (
            Netns::create(&format!("{tag}a")),
            Netns::create(&format!("{tag}b")),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(why), _) | (_, Err(why)) => return skip(test, &why),
        };
        // Interface names are at most 15 bytes.
        let side = |end: &str| format!("rs{tag}{end}{}", std::process::id() % 100_000);
        let (a_side, b_side) = (side("a"), side("b"));
        let peer = ["peer", "name", &b_side, "netns", &b.name];
        let mut args = vec!["link", "add", &a_side, "type", "veth"];
        args.extend(peer);
        a.ip(&args);
        let ipv6 = std::path::Path::new("/proc/net/if_inet6").exists();
        for (pod, side, v4, v6) in [
            (&a, &a_side, POD_A, POD_A_V6),
            (&b, &b_side, POD_B, POD_B_V6),
        ] {
            pod.ip(&["addr", "add", &format!("{v4}/24"), "dev", side]);
            if ipv6 {
                // nodad: usable at once, not after duplicate address
                // detection (about 1 s).
                pod.ip(&["addr", "add", &format!("{v6}/64"), "dev", side, "nodad"]);
            }
            pod.ip(&["link", "set", side, "up"]);
        }
        Some(LinkedPods { a, b })
    }
}

/// Appends the two nat OUTPUT rules of `Pod::redirect` with `tool`.
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
