//! A small authoritative DNS server on 127.0.0.1 for the resolver's tests:
//! records a test changes while it runs, with the TTLs it chooses, and the
//! failures it needs (queries dropped, SERVFAIL, NXDOMAIN). Messages are
//! hickory-proto's types, never bytes packed by hand.
//!
//! The soak (`loadtest/src/soak/dns.rs`) includes this file too, for the
//! name whose record it flips under load.
//!
//! UDP only: hickory falls back to TCP on a truncated answer, and these
//! answers (a few addresses) are far below the 512 bytes that would
//! truncate one.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};

/// How the server answers for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// These addresses (A and AAAA records), with this TTL in seconds.
    Records { addresses: Vec<IpAddr>, ttl: u32 },
    /// No answer at all: the client times out.
    Drop,
    /// SERVFAIL.
    ServFail,
    /// NXDOMAIN: the name does not exist.
    NxDomain,
}

#[derive(Debug, Default)]
struct Zone {
    answers: BTreeMap<String, Answer>,
    /// When each name was asked, by record type.
    queries: BTreeMap<String, Vec<(RecordType, Instant)>>,
}

pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    stop: Arc<AtomicBool>,
}

impl DnsServer {
    /// Serves on 127.0.0.1:0 from a thread of its own; names it has no
    /// answer for get NXDOMAIN.
    pub fn start() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the DNS server");
        let addr = socket.local_addr().unwrap();
        let zone = Arc::new(Mutex::new(Zone::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_zone, thread_stop) = (zone.clone(), stop.clone());
        thread::spawn(move || serve(socket, thread_zone, thread_stop));
        DnsServer { addr, zone, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers for `name` from now on.
    pub fn set(&self, name: &str, answer: Answer) {
        let mut zone = self.zone.lock().unwrap();
        zone.answers.insert(name.to_ascii_lowercase(), answer);
    }

    /// `name` has these addresses, with this TTL.
    pub fn set_records(&self, name: &str, addresses: &[&str], ttl: u32) {
        let addresses = addresses.iter().map(|a| a.parse().unwrap()).collect();
        self.set(name, Answer::Records { addresses, ttl });
    }

    /// When `name` was asked for its A record, in order.
    pub fn a_queries(&self, name: &str) -> Vec<Instant> {
        let zone = self.zone.lock().unwrap();
        let asked = zone.queries.get(&name.to_ascii_lowercase());
        asked
            .into_iter()
            .flatten()
            .filter(|(record_type, _)| *record_type == RecordType::A)
            .map(|(_, at)| *at)
            .collect()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the thread out of its receive.
        if let Ok(socket) = UdpSocket::bind("127.0.0.1:0") {
            let _ = socket.send_to(&[], self.addr);
        }
    }
}

fn serve(socket: UdpSocket, zone: Arc<Mutex<Zone>>, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        if let Some(response) = respond(&query, &zone) {
            let _ = socket.send_to(&response.to_vec().unwrap(), from);
        }
    }
}

/// The answer to `query`, or `None` to drop it.
fn respond(query: &Message, zone: &Mutex<Zone>) -> Option<Message> {
    let question = query.queries.first()?.clone();
    let name = question.name().to_ascii();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let record_type = question.query_type();
    let mut zone = zone.lock().unwrap();
    let asked = zone.queries.entry(name.clone()).or_default();
    asked.push((record_type, Instant::now()));
    let answer = zone.answers.get(&name).cloned().unwrap_or(Answer::NxDomain);
    let mut response = Message::response(query.metadata.id, query.metadata.op_code);
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    response.add_query(question.clone());
    match answer {
        Answer::Drop => return None,
        Answer::ServFail => response.metadata.response_code = ResponseCode::ServFail,
        Answer::NxDomain => response.metadata.response_code = ResponseCode::NXDomain,
        Answer::Records { addresses, ttl } => {
            for address in addresses {
                let rdata = match (address, record_type) {
                    (IpAddr::V4(v4), RecordType::A) => RData::A(A(v4)),
                    (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(v6)),
                    _ => continue,
                };
                response.add_answer(Record::from_rdata(question.name().clone(), ttl, rdata));
            }
        }
    }
    Some(response)
}
