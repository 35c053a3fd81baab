//! Shared test support, one file per role: the built `ringside` binary as a
//! child process and its scraped metrics (`launcher`), real servers on
//! 127.0.0.1:0 behind it (`origins`), real clients in front of it
//! (`clients`), network namespaces for the iptables and transparent tests
//! (`netns`), ports held for a test before ringside binds them, or so
//! that nothing does (`ports`), files the tests hand to it or to other
//! programs (`temp`), a child's stdout followed line by line with a bounded wait
//! (`output`), the request-smuggling verdicts the `smuggling_*` tests share
//! (`smuggling`), ringside's own sources read as text for the layering
//! test (`source_reader`), and post-quantum-sized ClientHellos: a real one
//! as bytes (`pq_client_hello`, shared with the unit tests) and a mesh
//! client that sends one (`large_hello`), and a DNS server whose records
//! a test changes as it runs (`dns_server`), the limits a container
//! sets, applied to ringside's process (`confined`), a terminal that
//! tests of `ringside top` type into and read (`tmux`), and mocks of
//! Linkerd's control plane: its identity service with the pods it serves
//! (`control_plane`), its destination and policy controllers
//! (`mock_discovery`). Readiness
//! comes from the `listening ...` lines ringside prints once its sockets
//! are bound, never from sleeping.
//!
//! Each test binary uses a part of this, so unused items and re-exports
//! are expected.

#![allow(dead_code, unused_imports)]

pub mod clients;
pub mod confined;
pub mod control_plane;
pub mod dns_server;
pub mod identity;
pub mod large_hello;
pub mod launcher;
pub mod linkerd_inbound;
pub mod mock_discovery;
pub mod netns;
pub mod origins;
pub mod output;
pub mod pods;
pub mod ports;
#[path = "../../src/detect/sample_pq_client_hello.rs"]
pub mod pq_client_hello;
pub mod smuggling;
pub mod source_reader;
pub mod temp;
pub mod tmux;

use std::thread;
use std::time::{Duration, Instant};

pub use clients::{
    banner_wait, curl, echo_and_keep_open, echo_over, echo_through, ends_in_reset, http_get,
    http_request, read_response, reset, tls_client_hello, tls_hellos_through,
    websocket_binary_echo_and_close, HttpClient, KeepAliveLoad, Response,
};
pub use identity::{mint, minted};
pub use launcher::{Launch, Metrics, Ringside, BIN};
pub use netns::{LinkedPods, Pod, POD_A, POD_ADDR, POD_ADDR_V6, POD_A_V6, POD_B, POD_B_V6};
pub use origins::h2::H2Origin;
pub use origins::http::{body_byte, upload_answer, HttpOrigin};
pub use origins::recording::RecordingOrigin;
pub use origins::{websocket_echo, Origin, Report, Unanswered, SMTP_BANNER};
pub use ports::{closed_port, ReservedPort};
pub use temp::{TempDir, TempPath};

/// How long a wait for something that should happen may take before the
/// test fails: far more than anything here takes on a loaded machine.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// How often a wait looks again.
pub const WAIT_STEP: Duration = Duration::from_millis(10);

/// Retries `check` every `WAIT_STEP` for up to `WAIT_LIMIT`; panics naming
/// `what` if it never comes true.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(WAIT_STEP);
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
