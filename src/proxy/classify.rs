//! Classify: how a connection is carried. The route's port policy decides
//! first (opaque, HTTP/1 or HTTP/2 configured); otherwise detection peeks
//! at the client's bytes, fails open to opaque on its timeout, and races
//! the upstream for a server that speaks first, which is remembered so
//! that later connections to it skip detection. The outcome is counted in
//! `protocol_detect_total`.

use std::net::SocketAddr;
use std::time::Duration;

use super::RouteState;
use crate::config::Protocol;
use crate::detect::{sniff, SniffError, Verdict};
use crate::io::Socket;
use crate::shard::Shard;

/// How a connection is carried, as the protocol policy and detection decide.
#[derive(Debug, PartialEq, Eq)]
pub enum Carry {
    /// Bytes both ways; `tls_sni` is `Some` (the SNI, empty when none) for
    /// TLS passed through.
    Opaque {
        tls_sni: Option<String>,
    },
    Http1,
    Http2,
    /// Inbound: the client said nothing by the detect timeout. Never
    /// carried raw: with no upstream watched, the caller connects and
    /// classifies again watching one; with one, which then timed the
    /// client out, the connection is closed (`detect::sniff`).
    Silent,
}

pub struct Classified {
    pub carry: Carry,
    /// Client bytes detection consumed, to send upstream first.
    pub prefix: Vec<u8>,
}

impl Classified {
    fn configured(carry: Carry) -> Classified {
        Classified {
            carry,
            prefix: Vec::new(),
        }
    }
}

/// `protocol`: the route's policy, or what a meshed peer declared.
/// `upstream` is the connected endpoint, watched for a server that speaks
/// first (none when no endpoint could be reached).
#[cfg(test)]
pub async fn classify(
    shard: &Shard,
    route: &RouteState,
    protocol: Protocol,
    client: &Socket,
    upstream: Option<(&Socket, SocketAddr)>,
) -> Result<Classified, SniffError> {
    classify_within(shard, route, protocol, None, client, upstream).await
}

/// `classify`, detecting within `detect_timeout` when the port's policy
/// gives one (Linkerd's policy controller), else the shard's.
pub async fn classify_within(
    shard: &Shard,
    route: &RouteState,
    protocol: Protocol,
    detect_timeout: Option<Duration>,
    client: &Socket,
    upstream: Option<(&Socket, SocketAddr)>,
) -> Result<Classified, SniffError> {
    let count = |result: &'static str, duration: Option<Duration>| {
        shard
            .metrics
            .detected(route.metrics.detect_labels(result), duration);
    };
    match protocol {
        Protocol::Opaque => {
            count("opaque_port", None);
            return Ok(Classified::configured(Carry::Opaque { tls_sni: None }));
        }
        // Configured, not detected.
        Protocol::Http1 => return Ok(Classified::configured(Carry::Http1)),
        Protocol::Http2 => return Ok(Classified::configured(Carry::Http2)),
        Protocol::Detect => {}
    }
    let endpoint = upstream.map(|(_, endpoint)| endpoint);
    if endpoint.is_some_and(|endpoint| shard.server_first.remembers(endpoint)) {
        count("learned_server_first", None);
        return Ok(Classified::configured(Carry::Opaque { tls_sni: None }));
    }
    let upstream = upstream.map(|(socket, _)| socket);
    let detecting = shard.metrics.detecting();
    let direction = route.route.direction;
    // An inbound port's policy, or a discovered destination's, may name
    // its own detect timeout.
    let mut timeouts = shard.timeouts;
    if let Some(detect) = detect_timeout.or(route.route.detect_timeout) {
        timeouts.detect = detect;
    }
    let detect = shard.detect();
    let sniffed = sniff(
        client,
        upstream,
        &detect,
        &timeouts,
        &shard.deadlines,
        direction,
    )
    .await;
    drop(detecting);
    let sniffed = match sniffed {
        Ok(sniffed) => sniffed,
        Err(err) => {
            count("error", None);
            return Err(err);
        }
    };
    // Silent with nothing watched is counted when classified again.
    if sniffed.verdict != Verdict::Silent || upstream.is_some() {
        count(sniffed.verdict.label(), Some(sniffed.elapsed));
    }
    match (&sniffed.verdict, endpoint) {
        (Verdict::ServerFirst, Some(endpoint)) => shard.server_first.remember(endpoint),
        (Verdict::Timeout, _) => tracing::info!(
            timeout = ?timeouts.detect,
            "no protocol detected in time: forwarding as opaque TCP"
        ),
        (Verdict::Quiet, _) => tracing::debug!(
            pause = ?shard.timeouts.detect_quiet_pause,
            "client went quiet before a verdict: forwarding as opaque TCP"
        ),
        (verdict, _) => tracing::debug!(protocol = verdict.label(), "protocol detected"),
    }
    let carry = match sniffed.verdict {
        Verdict::Http1 => Carry::Http1,
        Verdict::Http2 => Carry::Http2,
        Verdict::Tls { sni } => Carry::Opaque {
            tls_sni: Some(sni.unwrap_or_default()),
        },
        Verdict::Silent => Carry::Silent,
        _ => Carry::Opaque { tls_sni: None },
    };
    Ok(Classified {
        carry,
        prefix: sniffed.prefix,
    })
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
