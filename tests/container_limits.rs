//! ringside under the limits a container sets (README: "Locked memory" and
//! "io_uring under seccomp"): as uid 2102 under Docker's 64 KiB
//! `RLIMIT_MEMLOCK` it starts, says in one line what it gave up, and
//! carries bytes; under a smaller limit, beside another ringside of its
//! user that holds the locked memory, and under a seccomp filter that
//! refuses io_uring, it stops at once with one line that names the cause.
//! Confining another user and installing the limits needs root; without it
//! the tests print `SKIP:` and why, and pass. CI runs them as root.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::confined::Confinement;
use support::{echo_through, Origin, BIN};

const KIB: u64 = 1024;

/// Two shards and the admin shard: the count the figures in the README
/// are for, whatever this machine's CPUs.
const SHARDS: &str = "2";

fn under_dockers_memlock() -> Confinement {
    Confinement {
        as_proxy_user: true,
        memlock_bytes: Some(64 * KIB),
        ..Confinement::default()
    }
}

fn skip_unless_root() -> bool {
    // SAFETY: geteuid takes nothing and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        let _ = writeln!(std::io::stderr(), "SKIP: confining another user needs root");
    }
    !root
}

fn start(confinement: Confinement, upstream: std::net::SocketAddr) -> Child {
    let mut command = Command::new(BIN);
    command
        .args(["--shards", SHARDS, "--admin-addr", "127.0.0.1:0"])
        .args(["--route", &format!("127.0.0.1:0={upstream}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    confinement.apply(&mut command);
    command.spawn().expect("ringside starts")
}

/// A ringside killed when the test ends, passed or failed: one left
/// behind would hold its user's locked memory for every later run.
struct Reaped(Child);

impl std::ops::Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the child's exit, for at most `limit`.
fn exit_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "ringside did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

/// The route's address from the `listening route` line, read until the
/// admin line (the last); `None` when ringside exits first.
fn route_of(child: &mut Child) -> Option<std::net::SocketAddr> {
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut route = None;
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            return None;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["listening", "route", addr, ..] => route = Some(addr.parse().unwrap()),
            ["listening", "admin", _] => {
                // Held open so ringside never writes into a closed pipe.
                std::mem::forget(stdout);
                return route;
            }
            _ => {}
        }
    }
}

/// The lines of `stderr` holding `needle`.
fn lines_with(stderr: &str, needle: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|line| line.contains(needle))
        .map(str::to_string)
        .collect()
}

/// The error ringside prints last, `ringside: ` and the cause, when the
/// cause begins with `start` (the log has it once more, as an ERROR line).
fn printed_error(stderr: &str, start: &str) -> Vec<String> {
    let printed = format!("ringside: {start}");
    let lines = lines_with(stderr, &printed);
    lines
        .into_iter()
        .filter(|line| line.starts_with(&printed))
        .collect()
}

#[test]
fn under_dockers_64_kib_memlock_ringside_starts_with_shallower_rings_and_a_second_of_its_user_stops(
) {
    if skip_unless_root() {
        return;
    }
    let origin = Origin::echo();
    let mut ringside = Reaped(start(under_dockers_memlock(), origin.addr));
    let route = route_of(&mut ringside).expect("ringside starts under 64 KiB");
    // Enough connections that both shards take some.
    for round in 0..8u8 {
        let data: Vec<u8> = (0..256 * 1024).map(|i| (i as u8) ^ round).collect();
        assert_eq!(echo_through(route, &data), data, "round {round}");
    }
    // The kernel counts locked memory per user, over all of the user's
    // processes: a second ringside's own limit holds its rings, the
    // first's count too, and it stops with the cause rather than wait.
    // (Here and not in a test of its own: rings are freed a while after
    // their process exits, and would be counted against the next test's.)
    let mut second = Reaped(start(under_dockers_memlock(), origin.addr));
    route_of(&mut second);
    assert!(!exit_within(&mut second, Duration::from_secs(20)).success());
    let second_said = stderr_of(&mut second);
    let printed = printed_error(&second_said, "the ");
    assert_eq!(printed.len(), 1, "{second_said}");
    assert!(
        printed[0].contains("could not set up its io_uring rings")
            && printed[0].contains("Cannot allocate memory"),
        "{}",
        printed[0]
    );
    assert!(printed[0].contains("counted per user"), "{}", printed[0]);
    assert!(!second_said.contains("panicked"), "{second_said}");
    // The first carries on.
    let data: Vec<u8> = (0..64 * 1024).map(|i| i as u8).collect();
    assert_eq!(echo_through(route, &data), data);
    let status = Command::new("kill")
        .args(["-TERM", &ringside.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(exit_within(&mut ringside, Duration::from_secs(20)).success());
    let stderr = stderr_of(&mut ringside);
    let said = lines_with(&stderr, "RLIMIT_MEMLOCK");
    assert_eq!(said.len(), 1, "one line says what was given up:\n{stderr}");
    assert!(said[0].contains("memlock_kib=64"), "{}", said[0]);
    assert!(said[0].contains("ring_depth=64"), "{}", said[0]);
    assert!(said[0].contains("needs_kib=104"), "{}", said[0]);
    assert!(!stderr.contains("registering buffers"), "{stderr}");
}

#[test]
fn a_memlock_too_small_for_any_ring_stops_ringside_with_what_to_set() {
    if skip_unless_root() {
        return;
    }
    let origin = Origin::echo();
    let confinement = Confinement {
        as_proxy_user: true,
        memlock_bytes: Some(48 * KIB),
        ..Confinement::default()
    };
    let mut ringside = start(confinement, origin.addr);
    assert_eq!(route_of(&mut ringside), None, "it stops before listening");
    assert!(!exit_within(&mut ringside, Duration::from_secs(20)).success());
    let stderr = stderr_of(&mut ringside);
    let printed = printed_error(&stderr, "RLIMIT_MEMLOCK is 48 KiB");
    assert_eq!(printed.len(), 1, "{stderr}");
    assert!(printed[0].contains("need 56 KiB"), "{}", printed[0]);
    assert!(
        printed[0].contains("README: \"Locked memory\""),
        "{}",
        printed[0]
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn refused_io_uring_stops_ringside_with_one_line_naming_the_cause() {
    if skip_unless_root() {
        return;
    }
    let origin = Origin::echo();
    let confinement = Confinement {
        refuse_io_uring: true,
        ..Confinement::default()
    };
    let mut ringside = start(confinement, origin.addr);
    assert_eq!(route_of(&mut ringside), None, "it stops before listening");
    assert!(!exit_within(&mut ringside, Duration::from_secs(20)).success());
    let stderr = stderr_of(&mut ringside);
    let printed = printed_error(&stderr, "io_uring is refused");
    assert_eq!(printed.len(), 1, "{stderr}");
    let line = &printed[0];
    assert!(line.contains("Operation not permitted"), "{line}");
    assert!(line.contains("a seccomp filter refuses it"), "{line}");
    assert!(
        line.contains("README: \"io_uring under seccomp\""),
        "{line}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
