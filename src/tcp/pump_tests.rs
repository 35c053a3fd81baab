//! One pump direction on loopback sockets inside one executor: every byte
//! in order then the FIN, counted on both ends, in both forward modes and
//! for small messages as for bulk transfers (which switch to splice and
//! meet a full destination).

use futures_lite::future;

use super::*;
use crate::io::testing::{self, payload, read_to_end, send_then_fin};
use crate::metrics::{Peer, ShardMetrics};

/// Pumps `sent` from one pair to the other in `mode`, and checks what
/// arrives and what is counted.
fn pumps_exactly(mode: ForwardMode, sent: Vec<u8>) {
    testing::run(|| async move {
        let (client, src) = testing::pair().await;
        let (dst, origin) = testing::pair().await;
        let metrics = ShardMetrics::new(0);
        let src_counters = metrics.tcp(testing::labels(Peer::Src));
        let dst_counters = metrics.tcp(testing::labels(Peer::Dst));
        let pumps = PumpResources::new(mode, 64 * 1024);
        let direction = Direction {
            src: &src,
            dst: &dst,
            src_counters: &src_counters,
            dst_counters: &dst_counters,
            activity: None,
        };
        let (pumped, ((), received)) = future::zip(
            direction.run(&pumps),
            future::zip(send_then_fin(&client, &sent), read_to_end(&origin)),
        )
        .await;
        pumped.expect("the pump ends cleanly at the FIN");
        assert_eq!(received.len(), sent.len(), "{mode:?}");
        assert!(received == sent, "{mode:?}: bytes changed on the way");
        let snapshot = metrics.snapshot(0, 0);
        let src_total = &snapshot.tcp[&testing::labels(Peer::Src)];
        let dst_total = &snapshot.tcp[&testing::labels(Peer::Dst)];
        assert_eq!(src_total.read_bytes_total, sent.len() as u64);
        assert_eq!(dst_total.write_bytes_total, sent.len() as u64);
        // An ended direction hands its pipe back.
        assert_eq!(pumps.pipes.in_use(), 0);
    });
}

#[test]
fn a_small_message_arrives_whole_then_the_fin_with_splice() {
    pumps_exactly(ForwardMode::Splice, b"PING\r\n".to_vec());
}

#[test]
fn a_small_message_arrives_whole_then_the_fin_with_copy() {
    pumps_exactly(ForwardMode::Copy, b"PING\r\n".to_vec());
}

/// Larger than the scratch buffer, the pipe and the socket buffers, so the
/// pump splices and waits for a full destination.
#[test]
fn a_bulk_transfer_arrives_byte_exact_with_splice() {
    pumps_exactly(ForwardMode::Splice, payload(8 << 20));
}

#[test]
fn a_bulk_transfer_arrives_byte_exact_with_copy() {
    pumps_exactly(ForwardMode::Copy, payload(8 << 20));
}

#[test]
fn a_source_that_ends_at_once_sends_only_the_fin() {
    pumps_exactly(ForwardMode::Splice, Vec::new());
}
