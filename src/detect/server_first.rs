//! The shard's memory of upstreams that spoke first. Once an upstream has
//! sent its banner before the client said anything (MySQL, SMTP, NATS),
//! later connections to it skip detection for a while and are spliced at
//! once: no waiting, not even for the race.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Endpoints one shard remembers. Routes name few; transparent mode sees
/// any destination, so a scan of server-first ports must not grow the map
/// without end. Past it, the sighting closest to expiry goes.
const MAX_REMEMBERED: usize = 4_096;

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
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut until = self.until.borrow_mut();
        if until.len() >= MAX_REMEMBERED && !until.contains_key(&endpoint) {
            until.retain(|_, expiry| *expiry > now);
            let soonest = until.iter().min_by_key(|(_, expiry)| **expiry);
            if let Some(soonest) = soonest.map(|(endpoint, _)| *endpoint) {
                if until.len() >= MAX_REMEMBERED {
                    until.remove(&soonest);
                }
            }
        }
        until.insert(endpoint, now + self.ttl);
    }

    /// Forgets expired sightings, so that endpoints never asked about
    /// again do not stay; the shard calls it every second.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.until.borrow_mut().retain(|_, expiry| *expiry > now);
    }

    /// Endpoints remembered now, expired or not.
    pub fn remembered(&self) -> usize {
        self.until.borrow().len()
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

    #[test]
    fn is_bounded_and_swept() {
        let memory = ServerFirstMemory::new(Duration::from_secs(600));
        let endpoint = |i: usize| SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 3306));
        for i in 0..MAX_REMEMBERED + 10 {
            memory.remember(endpoint(i));
        }
        assert_eq!(memory.remembered(), MAX_REMEMBERED);
        assert!(!memory.remembers(endpoint(0)), "the oldest sighting went");
        assert!(memory.remembers(endpoint(MAX_REMEMBERED + 9)));

        let short = ServerFirstMemory::new(Duration::from_nanos(1));
        short.remember(endpoint(1));
        std::thread::sleep(Duration::from_millis(1));
        short.sweep();
        assert_eq!(short.remembered(), 0);
    }
}
