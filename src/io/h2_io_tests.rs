//! The adapter's writes on a loopback pair: flushes inside one poll send
//! nothing, the flusher then sends it all in order, a failed send is
//! returned to h2, and a dropped adapter's flusher lets the socket go.

use std::future::poll_fn;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

use super::*;
use crate::io::testing::{self, payload};
use crate::io::Received;
use crate::metrics::{Peer, ShardMetrics};

/// An adapter over one end of a loopback pair, and the other end.
async fn adapter_and_peer() -> (H2Io, Socket) {
    let (ours, theirs) = testing::pair().await;
    let counters = ShardMetrics::new(0).tcp(testing::labels(Peer::Src));
    (
        H2Io::new(ours, Vec::new(), counters, Scratch::new()),
        theirs,
    )
}

/// One write of `bytes` and a flush, inside the caller's poll.
fn write_and_flush(io: &mut H2Io, cx: &mut Context<'_>, bytes: &[u8]) -> io::Result<()> {
    let mut at = 0;
    while at < bytes.len() {
        match Pin::new(&mut *io).poll_write(cx, &bytes[at..]) {
            Poll::Ready(written) => at += written?,
            Poll::Pending => panic!("the adapter took no more than {at} bytes"),
        }
    }
    match Pin::new(io).poll_flush(cx) {
        Poll::Ready(flushed) => flushed,
        Poll::Pending => panic!("a flush waited"),
    }
}

/// Lets every task that is ready run.
async fn yield_to_the_shard() {
    futures_lite::future::yield_now().await;
}

#[test]
fn flushes_within_one_poll_send_nothing_then_everything_leaves_in_order() {
    testing::run(|| async {
        let (mut io, theirs) = adapter_and_peer().await;
        let frames: Vec<Vec<u8>> = (0..10).map(|i| payload(1033 + i)).collect();
        poll_fn(|cx| {
            for frame in &frames {
                write_and_flush(&mut io, cx, frame).unwrap();
            }
            let mut buf = [0; 1];
            match theirs.try_recv(&mut buf) {
                Ok(Received::WouldBlock) => {}
                Ok(Received::Bytes(_)) => panic!("sent within the poll that wrote"),
                Ok(Received::Eof) | Err(_) => panic!("the pair broke"),
            }
            Poll::Ready(())
        })
        .await;
        let expected = frames.concat();
        assert_eq!(testing::read_exact(&theirs, expected.len()).await, expected);
    });
}

#[test]
fn a_failed_send_fails_h2s_next_write() {
    testing::run(|| async {
        let (mut io, theirs) = adapter_and_peer().await;
        theirs.reset_on_close();
        drop(theirs);
        let mut failed = None;
        for _ in 0..100 {
            let written =
                poll_fn(|cx| Poll::Ready(write_and_flush(&mut io, cx, &payload(4096)))).await;
            if let Err(err) = written {
                failed = Some(err);
                break;
            }
            yield_to_the_shard().await;
        }
        let err = failed.expect("writes to a reset peer kept succeeding");
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{err}"
        );
    });
}

#[test]
fn a_dropped_adapter_stops_its_flusher_though_the_peer_never_reads() {
    testing::run(|| async {
        let (mut io, theirs) = adapter_and_peer().await;
        // Written until the peer's receive buffer and our send buffer are
        // full and the flusher waits for room that never comes.
        let chunk = payload(16 * 1024);
        let mut waiting = false;
        for _ in 0..1000 {
            waiting =
                poll_fn(|cx| Poll::Ready(Pin::new(&mut io).poll_write(cx, &chunk).is_pending()))
                    .await;
            if waiting {
                break;
            }
            poll_fn(|cx| Pin::new(&mut io).poll_flush(cx))
                .await
                .unwrap();
            yield_to_the_shard().await;
        }
        assert!(waiting, "the peer took 16 MiB without reading");
        let outbox = Rc::downgrade(&io.outbox);
        drop(io);
        yield_to_the_shard().await;
        // Nobody holds the socket now, though the peer never read.
        assert!(outbox.upgrade().is_none(), "the flusher holds the socket");
        drop(theirs);
    });
}

#[test]
fn a_read_takes_what_is_there_and_keeps_what_h2_had_no_room_for() {
    testing::run(|| async {
        let (mut io, theirs) = adapter_and_peer().await;
        let sent = payload(40 * 1024);
        theirs.write_all(&sent).await.unwrap();
        let mut got = Vec::new();
        let mut room = [0u8; 1000];
        while got.len() < sent.len() {
            let n = poll_fn(|cx| {
                let mut buf = ReadBuf::new(&mut room);
                std::task::ready!(Pin::new(&mut io).poll_read(cx, &mut buf))?;
                Poll::Ready(io::Result::Ok(buf.filled().len()))
            })
            .await
            .unwrap();
            assert!(n > 0, "EOF after {} bytes", got.len());
            got.extend_from_slice(&room[..n]);
            if got.len() == n {
                assert_eq!(
                    io.unread.len(),
                    sent.len() - n,
                    "the first read took all that was there"
                );
            }
        }
        assert_eq!(got, sent);
        assert!(
            io.unread.capacity() == 0,
            "an idle connection keeps no buffer"
        );
    });
}
