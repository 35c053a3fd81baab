//! The soak's checker can fail: a loss is found, a failure a fault explains
//! is not one, and a transfer whose bytes change on the way is caught.

use loadtest::origins::{Origin, OriginKind};
use loadtest::soak::clients::{self, Plan};
use loadtest::soak::ledger::{
    DrainWindow, Fault, Kind, Ledger, Outcome, Transfer, Verdict, Window, RESTART_SETTLE,
};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

fn secs(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

fn transfer(exposed_to: Option<Fault>, started: f64, ended: f64, outcome: Outcome) -> Transfer {
    Transfer {
        kind: Kind::OpaqueEcho,
        exposed_to,
        started: secs(started),
        ended: secs(ended),
        outcome,
    }
}

fn failed() -> Outcome {
    Outcome::Failed("connection reset by peer".into())
}

#[test]
fn a_failure_with_no_fault_active_is_a_loss() {
    let ledger = Ledger::default();
    let lost = transfer(None, 1.0, 2.0, failed());
    assert!(matches!(ledger.verdict(&lost), Verdict::Lost(_)));
    let ledger = Ledger {
        transfers: vec![lost, transfer(None, 1.0, 2.0, Outcome::Exact)],
        ..Ledger::default()
    };
    let summary = ledger.summary();
    assert_eq!(summary.lost(), 1);
    assert!(summary.render(0).contains("LOST opaque-echo"));
}

#[test]
fn corrupt_bytes_are_a_loss_whatever_fault_was_active() {
    let ledger = Ledger::default();
    for fault in [None, Some(Fault::ClientReset), Some(Fault::OriginReset)] {
        let corrupt = transfer(fault, 1.0, 2.0, Outcome::Corrupt("hash differs".into()));
        assert!(matches!(ledger.verdict(&corrupt), Verdict::Lost(_)));
    }
}

#[test]
fn failures_on_a_faulted_route_or_reset_by_the_client_are_accounted_for() {
    let ledger = Ledger::default();
    for fault in [Fault::ClientReset, Fault::OriginReset, Fault::OriginStall] {
        let failure = transfer(Some(fault), 1.0, 2.0, failed());
        assert_eq!(ledger.verdict(&failure), Verdict::Accounted(fault));
    }
    let summary = Ledger {
        transfers: vec![transfer(Some(Fault::OriginReset), 1.0, 2.0, failed())],
        ..Ledger::default()
    }
    .summary();
    assert_eq!(summary.lost(), 0);
    let line = summary
        .render(0)
        .lines()
        .find(|line| line.contains("origin-reset"))
        .expect("a line per fault")
        .to_owned();
    assert!(line.contains("exposed       1"), "{line}");
}

#[test]
fn a_restart_accounts_only_for_failures_near_its_outage() {
    let ledger = Ledger {
        restarts: vec![Window {
            down: secs(10.0),
            up: secs(10.3),
        }],
        ..Ledger::default()
    };
    let during = transfer(Some(Fault::OriginRestart), 9.9, 10.1, failed());
    assert_eq!(
        ledger.verdict(&during),
        Verdict::Accounted(Fault::OriginRestart)
    );
    let settling = 10.3 + RESTART_SETTLE.as_secs_f64() - 0.1;
    let just_after = transfer(
        Some(Fault::OriginRestart),
        settling,
        settling + 0.1,
        failed(),
    );
    assert_eq!(
        ledger.verdict(&just_after),
        Verdict::Accounted(Fault::OriginRestart)
    );
    let long_before = transfer(Some(Fault::OriginRestart), 2.0, 3.0, failed());
    assert!(matches!(ledger.verdict(&long_before), Verdict::Lost(_)));
    let long_after = transfer(Some(Fault::OriginRestart), 15.0, 16.0, failed());
    assert!(matches!(ledger.verdict(&long_after), Verdict::Lost(_)));
}

#[test]
fn with_a_response_timeout_only_a_504_accounts_for_a_stall() {
    let ledger = Ledger {
        stall_answers_504: true,
        ..Ledger::default()
    };
    let answered = transfer(
        Some(Fault::OriginStall),
        1.0,
        2.0,
        Outcome::Status(504, "response timeout".into()),
    );
    assert_eq!(
        ledger.verdict(&answered),
        Verdict::Accounted(Fault::OriginStall)
    );
    let client_gave_up = transfer(Some(Fault::OriginStall), 1.0, 6.0, failed());
    assert!(matches!(ledger.verdict(&client_gave_up), Verdict::Lost(_)));
}

#[test]
fn the_drain_accounts_for_late_arrivals_and_the_grace_but_not_for_cut_transfers() {
    let ledger = Ledger {
        drain: Some(DrainWindow {
            sigterm: secs(30.0),
            grace: secs(5.0),
        }),
        ..Ledger::default()
    };
    let refused_after_sigterm = transfer(None, 30.1, 30.1, failed());
    assert_eq!(
        ledger.verdict(&refused_after_sigterm),
        Verdict::Accounted(Fault::Drain)
    );
    let outlived_the_grace = transfer(None, 29.0, 35.5, failed());
    assert_eq!(
        ledger.verdict(&outlived_the_grace),
        Verdict::Accounted(Fault::Drain)
    );
    let cut_while_draining = transfer(None, 29.0, 30.5, failed());
    assert!(matches!(
        ledger.verdict(&cut_while_draining),
        Verdict::Lost(_)
    ));
}

/// A one-connection relay that flips one byte after `flip_at` bytes from
/// the client, or ends both directions there when `cut` is set.
fn faulty_relay(origin: SocketAddr, flip_at: usize, cut: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut upstream = TcpStream::connect(origin).unwrap();
        let (mut client_back, mut upstream_back) =
            (client.try_clone().unwrap(), upstream.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut upstream_back, &mut client_back);
            let _ = client_back.shutdown(Shutdown::Write);
        });
        let mut buffer = vec![0u8; 4096];
        let mut seen = 0;
        loop {
            let n = match client.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if (seen..seen + n).contains(&flip_at) {
                if cut {
                    upstream.write_all(&buffer[..flip_at - seen]).unwrap();
                    break;
                }
                buffer[flip_at - seen] ^= 0x20;
            }
            seen += n;
            upstream.write_all(&buffer[..n]).unwrap();
        }
        let _ = upstream.shutdown(Shutdown::Write);
    });
    addr
}

fn echo_through(target: SocketAddr) -> Outcome {
    clients::run(&Plan {
        kind: Kind::OpaqueEcho,
        target,
        seed: 1,
        size: 100_000,
        reset_after: None,
        pace: None,
        io_timeout: Duration::from_secs(10),
    })
}

#[test]
fn an_echo_through_a_faithful_path_is_exact() {
    let origin = Origin::start(OriginKind::Echo, "127.0.0.1:0".parse().unwrap(), 0).unwrap();
    assert_eq!(echo_through(origin.addr()), Outcome::Exact);
}

#[test]
fn a_flipped_byte_is_corrupt_and_a_cut_stream_failed() {
    let origin = Origin::start(OriginKind::Echo, "127.0.0.1:0".parse().unwrap(), 0).unwrap();
    let flipped = echo_through(faulty_relay(origin.addr(), 50_000, false));
    assert!(matches!(flipped, Outcome::Corrupt(_)), "{flipped:?}");
    let cut = echo_through(faulty_relay(origin.addr(), 50_000, true));
    assert!(matches!(cut, Outcome::Failed(_)), "{cut:?}");
}
