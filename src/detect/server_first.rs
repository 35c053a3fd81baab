//! The shard's memory of upstreams that spoke first. Once an upstream has
//! sent its banner before the client said anything (MySQL, SMTP, NATS),
//! later connections to it skip detection for a while and are spliced at
//! once: no waiting, not even for the race.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct ServerFirstMemory {
    /// How long a sighting counts; zero disables the memory.
    ttl: Duration,
    /// Upstream endpoint → when its sighting expires.
    until: RefCell<HashMap<SocketAddr, Instant>>,
}

impl ServerFirstMemory {
    pub fn new(ttl: Duration) -> ServerFirstMemory {
        ServerFirstMemory {
            ttl,
            until: RefCell::default(),
        }
    }

    pub fn remember(&self, endpoint: SocketAddr) {
        if !self.ttl.is_zero() {
            self.until
                .borrow_mut()
                .insert(endpoint, Instant::now() + self.ttl);
        }
    }

    /// True while `endpoint` is known to speak first.
    pub fn remembers(&self, endpoint: SocketAddr) -> bool {
        let mut until = self.until.borrow_mut();
        match until.get(&endpoint) {
            Some(expiry) if *expiry > Instant::now() => true,
            Some(_) => {
                until.remove(&endpoint);
                false
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_the_ttl_and_not_at_all_with_zero() {
        let endpoint: SocketAddr = "127.0.0.1:3306".parse().unwrap();
        let memory = ServerFirstMemory::new(Duration::from_secs(600));
        assert!(!memory.remembers(endpoint));
        memory.remember(endpoint);
        assert!(memory.remembers(endpoint));

        let short = ServerFirstMemory::new(Duration::from_nanos(1));
        short.remember(endpoint);
        std::thread::sleep(Duration::from_millis(1));
        assert!(!short.remembers(endpoint), "expired");

        let disabled = ServerFirstMemory::new(Duration::ZERO);
        disabled.remember(endpoint);
        assert!(!disabled.remembers(endpoint));
    }
}
