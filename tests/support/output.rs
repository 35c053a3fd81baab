//! A child process's stdout, read line by line on a thread of its own, so
//! that a test waits for a line with a bound and fails loudly, showing what
//! was printed, when the line never comes (for commands that print as they
//! go and keep running, such as `ringside demo`).

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub struct Output {
    lines: Receiver<String>,
    /// Every line received so far.
    pub seen: Vec<String>,
}

/// `read`'s lines as they come, read on a thread of its own; the receiver
/// ends when `read` does.
pub fn read_lines(read: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(read).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

impl Output {
    pub fn follow(stdout: impl Read + Send + 'static) -> Output {
        Output::from_lines(read_lines(stdout))
    }

    /// Lines another reader receives.
    pub fn from_lines(lines: Receiver<String>) -> Output {
        Output {
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads until a line containing `marker`, at most `limit`; panics with
    /// everything printed so far when it does not come, or when the output
    /// ends first. Returns the lines read by this call.
    pub fn until(&mut self, marker: &str, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let first = self.seen.len();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(marker);
                    self.seen.push(line);
                    if found {
                        return self.seen[first..].to_vec();
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no line with {marker:?} within {limit:?}; printed:\n{}",
                    self.seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the output ended before a line with {marker:?}; printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}
