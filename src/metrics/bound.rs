//! `LabelBound`: a cap on the distinct values one label takes on a shard,
//! for the labels a remote party chooses: a TLS client's SNI, an HTTP
//! client's Host, an origin's status code, a transparent client's
//! destination. Each value is one or more series, some with histograms
//! (about 16 KiB each), kept as long as their route; uncapped, a stranger
//! sending new values grows memory for good (3,000 random SNIs took RSS
//! from 27 to 231 MiB, issue 19).
//!
//! The first `cap` distinct values keep a label of their own; the rest are
//! counted under `OVERFLOW`. First come, first kept: a flood can take the
//! slots before a later, legitimate value, which is then still counted,
//! only not told apart. Linkerd's proxy has no such cap; `_other` is the
//! value ringside already gave authorities past theirs.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::Arc;

use super::labels::{Code, ResponseClass, ResponseKey, OVERFLOW};

/// Distinct SNIs of TLS passed through (or carried inside the mesh's) a
/// shard labels. Each costs two `tcp_*` series with a histogram, about
/// 36 KiB, so this holds them to about 5 MiB a shard; a sidecar's clients
/// name a handful of servers.
pub const MAX_SNIS: usize = 128;

/// Distinct authorities (Host headers) a shard labels; each costs a
/// `request_total` series and its response series.
pub const MAX_AUTHORITIES: usize = 256;

/// Distinct HTTP status codes a shard labels. An application answers with
/// a dozen or two; anything outside 100..=599 (RFC 9110 §15) is never a
/// label of its own.
pub const MAX_STATUS_CODES: usize = 64;

/// The gRPC status codes there are (0 `OK` to 16 `UNAUTHENTICATED`); any
/// other value an origin sends is `_other`. A fixed set, not a first-come
/// cap, so that nobody can take the slots of real codes.
const GRPC_STATUS_CODES: std::ops::RangeInclusive<u16> = 0..=16;

/// Distinct transparent destinations (`target_addr`) a shard labels at
/// once; slots are freed as their series are forgotten. A transparent
/// listener keeps state for 1,000 destinations and the series of 2,000
/// more it has forgotten (`proxy/transparent.rs`): this is that much
/// again, shard-wide, so that a busy listener's own bound, not this one,
/// decides in the common case, and a shard's many listeners together
/// cannot grow past it.
pub const MAX_DESTINATIONS: usize = 3_000;

/// The bounds of one shard's remotely chosen labels.
#[derive(Debug)]
pub struct RemoteLabels {
    snis: LabelBound<String>,
    authorities: LabelBound<Arc<str>>,
    /// `OVERFLOW` as an authority label, made once.
    overflow: Arc<str>,
    status_codes: LabelBound<u16>,
    destinations: LabelBound<String>,
}

impl Default for RemoteLabels {
    fn default() -> Self {
        RemoteLabels {
            snis: LabelBound::new(MAX_SNIS),
            authorities: LabelBound::new(MAX_AUTHORITIES),
            overflow: Arc::from(OVERFLOW),
            status_codes: LabelBound::new(MAX_STATUS_CODES),
            destinations: LabelBound::new(MAX_DESTINATIONS),
        }
    }
}

impl RemoteLabels {
    pub fn sni(&mut self, sni: &str) -> String {
        self.snis.label(sni)
    }

    /// `authority` as a label: the one copy the shard keeps of it, shared
    /// by every request that names it, or `OVERFLOW` past the cap.
    pub fn authority(&mut self, authority: &str) -> Arc<str> {
        let interned = self.authorities.interned(authority);
        interned.unwrap_or_else(|| self.overflow.clone())
    }

    pub fn destination(&mut self, destination: SocketAddr) -> String {
        self.destinations.label(&destination.to_string())
    }

    /// Frees a forgotten destination's slot.
    pub fn forget_destination(&mut self, target: &str) {
        self.destinations.release(target);
    }

    /// The series key of a response: its codes bounded, its
    /// classification kept.
    pub fn response(&mut self, class: ResponseClass) -> ResponseKey {
        let status = class.status_code;
        let status_code = match (100..=599).contains(&status) && self.status_codes.admits(&status) {
            true => Code::Known(status),
            false => Code::Other,
        };
        let grpc_status = class
            .grpc_status
            .map(|code| match GRPC_STATUS_CODES.contains(&code) {
                true => Code::Known(code),
                false => Code::Other,
            });
        ResponseKey {
            status_code,
            grpc_status,
            failure: class.is_failure(),
        }
    }
}

#[derive(Debug)]
pub struct LabelBound<T> {
    admitted: HashSet<T>,
    cap: usize,
}

impl<T: Hash + Eq> LabelBound<T> {
    pub fn new(cap: usize) -> LabelBound<T> {
        LabelBound {
            admitted: HashSet::new(),
            cap,
        }
    }

    /// Whether `value` keeps a label of its own: it has one already, or
    /// there is room for it (it takes a slot).
    pub fn admits<Q>(&mut self, value: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = T> + ?Sized,
    {
        if self.admitted.contains(value) {
            return true;
        }
        if self.admitted.len() >= self.cap {
            return false;
        }
        self.admitted.insert(value.to_owned());
        true
    }

    /// Frees `value`'s slot, once its series are gone.
    pub fn release<Q>(&mut self, value: &Q)
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.admitted.remove(value);
    }
}

impl LabelBound<Arc<str>> {
    /// The kept copy of `value`, shared, or `None` past the cap.
    fn interned(&mut self, value: &str) -> Option<Arc<str>> {
        if let Some(kept) = self.admitted.get(value) {
            return Some(kept.clone());
        }
        if self.admitted.len() >= self.cap {
            return None;
        }
        let kept: Arc<str> = Arc::from(value);
        self.admitted.insert(kept.clone());
        Some(kept)
    }
}

impl LabelBound<String> {
    /// `value` as the label, or `OVERFLOW` past the cap.
    pub fn label(&mut self, value: &str) -> String {
        match self.admits(value) {
            true => value.to_string(),
            false => OVERFLOW.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(status_code: u16, grpc_status: Option<u16>) -> ResponseClass {
        ResponseClass {
            status_code,
            grpc_status,
        }
    }

    #[test]
    fn status_codes_outside_http_s_range_are_never_labels_of_their_own() {
        let mut labels = RemoteLabels::default();
        for status in [0, 99, 600, 999, u16::MAX] {
            assert_eq!(
                labels.response(class(status, None)).status_code,
                Code::Other
            );
        }
        assert_eq!(
            labels.response(class(599, None)).status_code,
            Code::Known(599)
        );
        assert_eq!(Code::Other.to_string(), OVERFLOW);
        assert_eq!(Code::Known(404).to_string(), "404");
    }

    #[test]
    fn status_codes_past_the_cap_share_one_label_and_keep_their_classification() {
        let mut labels = RemoteLabels::default();
        let distinct: std::collections::BTreeSet<Code> = (100..600)
            .map(|status| labels.response(class(status, None)).status_code)
            .collect();
        assert_eq!(distinct.len(), MAX_STATUS_CODES + 1);
        assert!(distinct.contains(&Code::Other));
        let late_failure = labels.response(class(599, None));
        assert_eq!(
            (late_failure.status_code, late_failure.failure),
            (Code::Other, true)
        );
        let late_success = labels.response(class(299, None));
        assert_eq!(
            (late_success.status_code, late_success.failure),
            (Code::Other, false)
        );
    }

    #[test]
    fn only_grpc_s_own_status_codes_are_labels() {
        let mut labels = RemoteLabels::default();
        let grpc = |labels: &mut RemoteLabels, code| labels.response(class(200, Some(code)));
        assert_eq!(grpc(&mut labels, 16).grpc_status, Some(Code::Known(16)));
        let unknown = grpc(&mut labels, 17);
        assert_eq!(
            (unknown.grpc_status, unknown.failure),
            (Some(Code::Other), true)
        );
        assert_eq!(grpc(&mut labels, 0).grpc_status, Some(Code::Known(0)));
    }

    #[test]
    fn a_forgotten_destination_frees_its_slot() {
        let mut labels = RemoteLabels::default();
        let addr = |n: u32| SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + n), 80));
        for n in 0..MAX_DESTINATIONS as u32 {
            assert_eq!(labels.destination(addr(n)), addr(n).to_string());
        }
        let late = addr(MAX_DESTINATIONS as u32);
        assert_eq!(labels.destination(late), OVERFLOW);
        labels.forget_destination(&addr(0).to_string());
        assert_eq!(labels.destination(late), late.to_string());
    }

    #[test]
    fn values_past_the_cap_share_the_overflow_label() {
        let mut bound = LabelBound::new(2);
        assert_eq!(bound.label("a.example"), "a.example");
        assert_eq!(bound.label("b.example"), "b.example");
        assert_eq!(bound.label("c.example"), OVERFLOW);
        assert_eq!(bound.label("d.example"), OVERFLOW);
    }

    #[test]
    fn an_admitted_value_keeps_its_label_past_the_cap() {
        let mut bound = LabelBound::new(1);
        assert!(bound.admits("a.example"));
        assert!(!bound.admits("b.example"));
        assert!(bound.admits("a.example"));
    }

    #[test]
    fn a_released_value_frees_its_slot() {
        let mut bound = LabelBound::new(1);
        assert_eq!(bound.label("10.0.0.1:80"), "10.0.0.1:80");
        assert_eq!(bound.label("10.0.0.2:80"), OVERFLOW);
        bound.release("10.0.0.1:80");
        assert_eq!(bound.label("10.0.0.2:80"), "10.0.0.2:80");
        assert_eq!(bound.label("10.0.0.1:80"), OVERFLOW);
    }

    #[test]
    fn a_hundred_thousand_values_hold_no_more_than_the_cap() {
        let mut bound = LabelBound::new(128);
        let kept = (0..100_000u32)
            .filter(|n| bound.admits(format!("host-{n}.example").as_str()))
            .count();
        assert_eq!(kept, 128);
        assert_eq!(bound.admitted.len(), 128);
    }

    #[test]
    fn numbers_are_bounded_alike() {
        let mut bound: LabelBound<u16> = LabelBound::new(2);
        assert!(bound.admits(&200) && bound.admits(&503) && bound.admits(&200));
        assert!(!bound.admits(&418));
    }
}
