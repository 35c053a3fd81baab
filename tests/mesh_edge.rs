//! The mesh's edge tried as an attacker and as a demanding peer would, with
//! two ringside processes on loopback (as in `mesh.rs`): stalled handshakes
//! that must not lock real peers out, and a server that speaks first behind
//! a port that only proven identities may use.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::identity::{client_side, identities, server_side, CLIENT, SERVER};
use support::*;

/// Once a peer's identity is proven and allowed, its upstream is connected
/// while detection waits, as on an open port: the banner comes at once,
/// not after the detect timeout (10 s).
#[test]
fn a_server_first_banner_reaches_a_proven_peer_on_an_identity_only_port() {
    let dir = identities();
    let smtp = Origin::smtp();
    let required = [("--inbound-authorize", "all-authenticated")];
    let server = server_side(&dir, &required);
    let client = client_side(&dir, smtp.addr, &server);
    let waited = banner_wait(client.route());
    assert!(
        waited < Duration::from_secs(5),
        "the banner took {waited:?}"
    );
}

/// Connections that send one byte of a TLS record (`0x16`) and stop, held
/// open at once.
const STALLED: usize = 2_000;

/// A continuous attack: `STALLED` half-handshakes to `target`, each replaced
/// by a new one as soon as ringside closes it. Returns how many were
/// replaced once `stop` is set.
fn stall_handshakes(target: SocketAddr, stop: Arc<AtomicBool>, open: Arc<AtomicUsize>) -> usize {
    let stalled = || {
        let mut stream = TcpStream::connect(target).ok()?;
        stream.write_all(&[0x16]).ok()?;
        stream.set_nonblocking(true).ok()?;
        Some(stream)
    };
    let mut streams: Vec<Option<TcpStream>> = (0..STALLED).map(|_| stalled()).collect();
    open.store(streams.iter().flatten().count(), Ordering::SeqCst);
    let mut replaced = 0;
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::SeqCst) {
        let mut any = false;
        for slot in &mut streams {
            let closed = match slot {
                None => true,
                Some(stream) => match stream.read(&mut buf) {
                    Err(err) => err.kind() != ErrorKind::WouldBlock,
                    Ok(n) => n == 0,
                },
            };
            if closed {
                *slot = stalled();
                replaced += 1;
                any = true;
            }
        }
        if !any {
            // Pacing, not waiting for readiness: nothing was closed.
            thread::sleep(Duration::from_millis(1));
        }
    }
    replaced
}

#[test]
fn stalled_handshakes_do_not_lock_a_real_peer_out() {
    let dir = identities();
    let echo = Origin::echo();
    let server = server_side(&dir, &[]);
    let inbound = server.transparent[0];
    // The client side waits for its handshake as long as the test does: a
    // debug build under this attack on a loaded machine may take longer
    // than the default connect timeout (1 s) to reach a real peer's turn.
    let peer = format!("127.0.0.1={SERVER}@{}", inbound.port());
    let client = Ringside::route_to([echo.addr])
        .shards(1)
        .arg("--mesh-peer", peer)
        .arg("--connect-timeout", "10s")
        .identity(&dir, "client", CLIENT)
        .start();

    let stop = Arc::new(AtomicBool::new(false));
    let open = Arc::new(AtomicUsize::new(0));
    let attack = {
        let (stop, open) = (stop.clone(), open.clone());
        thread::spawn(move || stall_handshakes(inbound, stop, open))
    };
    // Every slot is taken, and taken again as fast as ringside frees one.
    eventually("the attack to hold every handshake slot", || {
        // Refused as `evicted`, or `busy` before evictions existed.
        let refused = server.metrics().sum("ringside_mesh_refused_total", &[]);
        open.load(Ordering::SeqCst) == STALLED && refused >= 500.0
    });

    let mut slowest = Duration::ZERO;
    for round in 0..5 {
        let started = Instant::now();
        let mut stream = TcpStream::connect(client.route()).unwrap();
        stream.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
        // A line: a bare word may still begin an HTTP request inbound.
        stream.write_all(b"ping\n").unwrap();
        let mut pong = [0u8; 5];
        let answered = stream.read_exact(&mut pong);
        let took = started.elapsed();
        assert!(
            answered.is_ok(),
            "round {round}: {answered:?} after {took:?}"
        );
        assert_eq!(&pong, b"ping\n");
        // The goal is 1 s, met by a release build on a quiet
        // machine (the closing note of issue 19 has the figure); a debug
        // build beside other tests on a loaded CI machine gets the usual
        // wait limit, while a peer locked out fails at once (refused as
        // `busy` before evictions).
        assert!(
            took < WAIT_LIMIT,
            "round {round}: a real peer waited {took:?}"
        );
        slowest = slowest.max(took);
    }
    eprintln!("slowest real handshake under the attack: {slowest:?}");
    stop.store(true, Ordering::SeqCst);
    let replaced = attack.join().unwrap();
    assert!(
        replaced >= 500,
        "only {replaced} stalled handshakes replaced"
    );
    assert_eq!(echo.accepted(), 5, "the stalled ones reached nothing");
}

/// The inbound side forwards to the application beside it, never through a
/// mesh peer: a `[[mesh.peer]]` network that covers its own address
/// (loopback here, the pod's network in a cluster) sent every inbound
/// connection back out over mTLS, to our own inbound listener in the
/// field, and here to the peer port named, where nothing listens.
#[test]
fn inbound_connections_never_go_through_a_peer_that_covers_our_own_address() {
    let dir = identities();
    let echo = Origin::echo();
    let peer = format!("127.0.0.0/8={SERVER}@{}", closed_port().port());
    let server = server_side(&dir, &[("--mesh-peer", &peer)]);
    let client = client_side(&dir, echo.addr, &server);
    let data = random_bytes(1 << 20, 5);
    assert!(
        echo_through(client.route(), &data) == data,
        "1 MiB came back different"
    );
    assert_eq!(echo.accepted(), 1, "one connection at the application");
}
