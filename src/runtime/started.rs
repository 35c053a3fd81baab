//! Start waits until every executor has made its io_uring rings. The admin
//! shard's first step is to connect to every shard, and a shard runs until
//! the admin shard drains it, so one executor that could not make its
//! rings would leave the others waiting for it and ringside deaf to
//! SIGTERM. The likeliest cause is `ENOMEM` under `RLIMIT_MEMLOCK`: the
//! kernel counts locked memory per user, across all of the user's
//! processes, so the plan in `locked_memory` holds only when this process
//! is the user's one ring owner.
//!
//! Each executor holds a [`Word`]: it says "made" as its first step, and a
//! thread that ends before saying it says which thread failed as the word
//! is dropped there.

use std::thread::{self, ThreadId};

use crossbeam_channel::{Receiver, Sender};

enum Said {
    Made,
    Failed(ThreadId),
}

/// One executor's word; a clone is a new, unsaid word.
pub(crate) struct Word {
    tx: Sender<Said>,
    said: bool,
}

/// Where start hears the words.
pub(crate) struct Words {
    rx: Receiver<Said>,
}

pub(crate) fn words() -> (Word, Words) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (Word { tx, said: false }, Words { rx })
}

impl Word {
    /// The executor made its rings and runs.
    pub(crate) fn made(mut self) {
        self.said = true;
        let _ = self.tx.send(Said::Made);
    }
}

impl Clone for Word {
    fn clone(&self) -> Word {
        Word {
            tx: self.tx.clone(),
            said: false,
        }
    }
}

impl Drop for Word {
    fn drop(&mut self) {
        if !self.said {
            let _ = self.tx.send(Said::Failed(thread::current().id()));
        }
    }
}

impl Words {
    /// Waits until each of `executors` has said it made its rings, or one
    /// of them failed: that one's thread. Words dropped on other threads
    /// (start's own, and the copy a pool builder keeps to clone from) are
    /// no executor's, and passed over.
    pub(crate) fn wait(self, executors: &[ThreadId]) -> Result<(), ThreadId> {
        let mut made = 0;
        while made < executors.len() {
            match self.rx.recv() {
                Ok(Said::Made) => made += 1,
                Ok(Said::Failed(thread)) if executors.contains(&thread) => return Err(thread),
                Ok(Said::Failed(_)) => {}
                // Unreachable: each executor's word says made or failed.
                Err(_) => break,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_executor_saying_made_ends_the_wait() {
        let (word, words) = words();
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let word = word.clone();
                thread::spawn(move || word.made())
            })
            .collect();
        let ids: Vec<_> = threads.iter().map(|t| t.thread().id()).collect();
        drop(word);
        assert!(words.wait(&ids).is_ok());
    }

    #[test]
    fn a_thread_that_ends_unsaid_is_named_and_other_threads_words_are_passed_over() {
        let (word, words) = words();
        let (hold, release) = crossbeam_channel::bounded::<()>(0);
        let made = {
            let word = word.clone();
            thread::spawn(move || word.made())
        };
        // Still running, as a shard whose admin never comes would be.
        let waiting = {
            let word = word.clone();
            thread::spawn(move || {
                let _ = release.recv();
                word.made();
            })
        };
        let failed = {
            let word = word.clone();
            thread::spawn(move || drop(word))
        };
        let failed_id = failed.thread().id();
        drop(word.clone());
        let ids = [made.thread().id(), waiting.thread().id(), failed_id];
        assert_eq!(words.wait(&ids), Err(failed_id));
        drop(hold);
        waiting.join().unwrap();
        drop(word);
    }
}
