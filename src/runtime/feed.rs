//! `EndpointFeed`: how a thread that is not a glommio executor (the DNS
//! resolver's, later a control plane's) hands endpoint updates to the admin
//! shard, which publishes them (`Control::resolved`, `set_endpoints`).
//! Updates go into a channel and a byte into a socket pair wakes the admin
//! shard, which reads it with glommio as it reads signals: no executor of
//! the sender's is needed, and none of ours ever blocks on the channel.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::Arc;

use super::control::Control;
use crate::config::EndpointSet;

/// One update from a source of endpoints.
#[derive(Debug)]
enum Update {
    Resolved {
        host: String,
        addrs: Vec<IpAddr>,
    },
    Set {
        listen: SocketAddr,
        endpoints: EndpointSet,
    },
}

/// The sending side: `Send` and cheap to clone, for any thread.
#[derive(Clone)]
pub struct EndpointFeed {
    updates: crossbeam_channel::Sender<Update>,
    wake: Arc<UnixStream>,
}

/// The admin shard's side, until `follow` runs it.
pub struct FeedReceiver {
    updates: crossbeam_channel::Receiver<Update>,
    wake: UnixStream,
}

/// Both ends of a feed.
pub fn feed() -> io::Result<(EndpointFeed, FeedReceiver)> {
    let (wake_writer, wake_reader) = UnixStream::pair()?;
    wake_writer.set_nonblocking(true)?;
    let (tx, rx) = crossbeam_channel::unbounded();
    let sender = EndpointFeed {
        updates: tx,
        wake: Arc::new(wake_writer),
    };
    let receiver = FeedReceiver {
        updates: rx,
        wake: wake_reader,
    };
    Ok((sender, receiver))
}

impl EndpointFeed {
    /// `host` resolves to `addrs` now (empty: to nothing). Call it with
    /// answers only: on a failed lookup, keep the last set by not calling.
    pub fn resolved(&self, host: &str, addrs: Vec<IpAddr>) {
        let host = host.to_string();
        self.send(Update::Resolved { host, addrs });
    }

    /// The route on `listen` balances over `endpoints` from now on.
    pub fn set_endpoints(&self, listen: SocketAddr, endpoints: EndpointSet) {
        self.send(Update::Set { listen, endpoints });
    }

    fn send(&self, update: Update) {
        if self.updates.send(update).is_err() {
            return; // the admin shard is gone: the process is ending
        }
        // A full socket buffer means a wake is already pending.
        let _ = (&*self.wake).write(&[1]);
    }
}

/// Applies the feed's updates in order until every sender is gone (runs on
/// the admin shard).
pub async fn follow(receiver: FeedReceiver, control: Rc<Control>) {
    use futures_lite::AsyncReadExt;
    // SAFETY: `wake` is a connected socket we own; its fd moves into the
    // glommio stream, which closes it.
    let mut wake = unsafe { glommio::net::UnixStream::from_raw_fd(receiver.wake.into_raw_fd()) };
    let mut bytes = [0u8; 64];
    loop {
        match wake.read(&mut bytes).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while let Ok(update) = receiver.updates.try_recv() {
            match update {
                Update::Resolved { host, addrs } => control.resolved(&host, &addrs).await,
                Update::Set { listen, endpoints } => control.set_endpoints(listen, endpoints).await,
            }
        }
    }
}
