//! How a shard asks the control thread for the answers of one key (a
//! destination, an inbound port): it sends the key with a reply channel,
//! and gets back the `watch` receiver of that key's answers, which it then
//! follows without asking again.

use tokio::sync::{mpsc, oneshot, watch};

/// A shard's question: `key`'s receiver, on `reply`.
pub struct Ask<K, V> {
    pub key: K,
    pub reply: oneshot::Sender<watch::Receiver<V>>,
}

/// How shards ask (`Send`, cheap to clone).
pub struct Asker<K, V> {
    asks: mpsc::UnboundedSender<Ask<K, V>>,
}

impl<K, V> Clone for Asker<K, V> {
    fn clone(&self) -> Asker<K, V> {
        Asker {
            asks: self.asks.clone(),
        }
    }
}

/// An asker and where its questions arrive.
pub fn asker<K, V>() -> (Asker<K, V>, mpsc::UnboundedReceiver<Ask<K, V>>) {
    let (asks, questions) = mpsc::unbounded_channel();
    (Asker { asks }, questions)
}

impl<K, V> Asker<K, V> {
    /// Asks for `key`'s receiver; the answer comes on the returned channel,
    /// closed if the control thread is gone (a closed channel drops the
    /// reply).
    pub fn lookup(&self, key: K) -> oneshot::Receiver<watch::Receiver<V>> {
        let (reply, answer) = oneshot::channel();
        let _ = self.asks.send(Ask { key, reply });
        answer
    }
}
