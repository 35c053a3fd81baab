//! The soak's bookkeeping: every transfer is recorded with the fault it was
//! exposed to by construction (its route, or the client's own choice to
//! reset) and its start and end, and the faults that come and go (an origin
//! down, the drain) are recorded as time windows. Whether a failed transfer
//! is accounted for is then a pure function of the record, decided here and
//! tested apart from any socket: a failure no fault explains is a loss, and
//! so is a transfer that completed with bytes that differ.

use super::payload::Digest;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// What a transfer carries and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Random bytes through an opaque route to an echo origin, and back.
    OpaqueEcho,
    /// An HTTP/1 POST with `content-length`; the origin answers its digest.
    H1UploadFixed,
    /// The same with `transfer-encoding: chunked`.
    H1UploadChunked,
    /// An HTTP/1 GET whose response body (with `content-length`) is checked.
    H1DownloadFixed,
    /// The same with a chunked response body.
    H1DownloadChunked,
    /// An HTTP/2 stream: a request body the origin echoes back.
    H2Stream,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::OpaqueEcho => "opaque-echo",
            Kind::H1UploadFixed => "h1-upload-fixed",
            Kind::H1UploadChunked => "h1-upload-chunked",
            Kind::H1DownloadFixed => "h1-download-fixed",
            Kind::H1DownloadChunked => "h1-download-chunked",
            Kind::H2Stream => "h2-stream",
        }
    }
}

/// A fault the soak injects. Each has its own route or its own tag, so a
/// failure is never attributed by guesswork.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// The client closes with SO_LINGER 0 (HTTP/2: RST_STREAM) mid-stream.
    ClientReset,
    /// The route whose first origin is killed and restarted on its port.
    OriginRestart,
    /// The route whose origin accepts, reads, and resets.
    OriginReset,
    /// The route whose origin accepts and never answers.
    OriginStall,
    /// SIGTERM while transfers are in flight.
    Drain,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::ClientReset,
        Fault::OriginRestart,
        Fault::OriginReset,
        Fault::OriginStall,
        Fault::Drain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::ClientReset => "client-reset",
            Fault::OriginRestart => "origin-restart",
            Fault::OriginReset => "origin-reset",
            Fault::OriginStall => "origin-stall",
            Fault::Drain => "drain",
        }
    }
}

/// How a transfer ended, as its client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Completed, and the bytes matched.
    Exact,
    /// Completed (framing said so) but the bytes differ: always a loss.
    Corrupt(String),
    /// Did not complete: the proxy answered this status instead (with its
    /// `ringside-proxy-error` reason, if any).
    Status(u16, String),
    /// Did not complete: an error, a reset, a timeout, a short stream.
    Failed(String),
}

impl Outcome {
    /// What arrived against what was meant to: equal is exact, short is a
    /// cut stream (failed), anything else is corrupt.
    pub fn compare(what: &str, got: Digest, expected: Digest) -> Outcome {
        if got == expected {
            Outcome::Exact
        } else if got.len < expected.len {
            Outcome::Failed(format!(
                "{what} cut at {} of {} bytes",
                got.len, expected.len
            ))
        } else {
            Outcome::Corrupt(format!("{what} {got}, expected {expected}"))
        }
    }
}

/// One transfer: one connection (HTTP/2: one stream).
#[derive(Clone, Debug)]
pub struct Transfer {
    pub kind: Kind,
    /// The fault this transfer was exposed to by construction, if any. The
    /// drain is not one: it is decided by time.
    pub exposed_to: Option<Fault>,
    /// Since the soak started.
    pub started: Duration,
    pub ended: Duration,
    pub outcome: Outcome,
}

/// When an origin was down: from the kill to the moment it listened again.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub down: Duration,
    pub up: Duration,
}

/// A failure on the restarted route still counts against the restart this
/// long after the origin is back: ringside's balancer may have the endpoint
/// in backoff, and a connection refused during the outage surfaces late.
pub const RESTART_SETTLE: Duration = Duration::from_secs(1);

/// The SIGTERM at the end and the grace ringside was given.
#[derive(Clone, Copy, Debug)]
pub struct DrainWindow {
    pub sigterm: Duration,
    pub grace: Duration,
}

/// How one transfer is judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Completed,
    /// Failed, and this fault explains it.
    Accounted(Fault),
    /// Failed or corrupt, and nothing explains it.
    Lost(String),
}

#[derive(Debug, Default)]
pub struct Ledger {
    pub transfers: Vec<Transfer>,
    pub restarts: Vec<Window>,
    pub drain: Option<DrainWindow>,
    /// The stall route has a `response_timeout`: a stalled transfer must
    /// end in ringside's 504, and any other failure there is a loss. Without
    /// one, the client's own timeout ends it and any failure is accounted.
    pub stall_answers_504: bool,
}

/// Per kind: how many completed, failed for a fault, were lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindTally {
    pub completed: u64,
    pub accounted: u64,
    pub lost: u64,
}

/// Per fault: transfers exposed to it, and the failures it explains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultTally {
    pub exposed: u64,
    pub accounted: u64,
}

/// The whole soak, judged.
#[derive(Debug, Default)]
pub struct Summary {
    pub by_kind: BTreeMap<Kind, KindTally>,
    pub by_fault: BTreeMap<Fault, FaultTally>,
    /// Each lost transfer with why it counts as lost.
    pub losses: Vec<(Transfer, String)>,
}

impl Ledger {
    /// Judges one transfer.
    pub fn verdict(&self, transfer: &Transfer) -> Verdict {
        let cause = match &transfer.outcome {
            Outcome::Exact => return Verdict::Completed,
            Outcome::Corrupt(detail) => return Verdict::Lost(format!("corrupt: {detail}")),
            Outcome::Status(code, reason) => format!("status {code} ({reason})"),
            Outcome::Failed(cause) => cause.clone(),
        };
        match transfer.exposed_to {
            Some(Fault::OriginRestart) if !self.overlaps_restart(transfer) => {}
            Some(Fault::OriginStall)
                if self.stall_answers_504
                    && !matches!(transfer.outcome, Outcome::Status(504, _)) =>
            {
                return Verdict::Lost(format!("stalled origin, but no 504: {cause}"));
            }
            Some(fault) => return Verdict::Accounted(fault),
            None => {}
        }
        if self.cut_by_drain(transfer) {
            return Verdict::Accounted(Fault::Drain);
        }
        Verdict::Lost(format!("failed with no fault active: {cause}"))
    }

    fn overlaps_restart(&self, transfer: &Transfer) -> bool {
        self.restarts.iter().any(|window| {
            transfer.started <= window.up + RESTART_SETTLE && transfer.ended >= window.down
        })
    }

    /// Started after the SIGTERM (refused, as it should be), or still
    /// running when the grace ran out. One in flight at the SIGTERM that
    /// failed within the grace is a loss: draining means it may finish.
    fn cut_by_drain(&self, transfer: &Transfer) -> bool {
        self.drain.is_some_and(|drain| {
            transfer.started >= drain.sigterm || transfer.ended >= drain.sigterm + drain.grace
        })
    }

    fn exposed_to_drain(&self, transfer: &Transfer) -> bool {
        self.drain
            .is_some_and(|drain| transfer.ended >= drain.sigterm)
    }

    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for fault in Fault::ALL {
            summary.by_fault.insert(fault, FaultTally::default());
        }
        for transfer in &self.transfers {
            if let Some(fault) = transfer.exposed_to {
                summary.by_fault.entry(fault).or_default().exposed += 1;
            }
            if self.exposed_to_drain(transfer) {
                summary.by_fault.entry(Fault::Drain).or_default().exposed += 1;
            }
            let tally = summary.by_kind.entry(transfer.kind).or_default();
            match self.verdict(transfer) {
                Verdict::Completed => tally.completed += 1,
                Verdict::Accounted(fault) => {
                    tally.accounted += 1;
                    summary.by_fault.entry(fault).or_default().accounted += 1;
                }
                Verdict::Lost(reason) => {
                    tally.lost += 1;
                    summary.losses.push((transfer.clone(), reason));
                }
            }
        }
        summary
    }
}

impl Summary {
    pub fn lost(&self) -> usize {
        self.losses.len()
    }

    /// A line per transfer kind and a line per fault, then the first losses.
    pub fn render(&self, restarts: usize) -> String {
        let mut text = String::from("transfers by kind:\n");
        let mut total = KindTally::default();
        for (kind, tally) in &self.by_kind {
            total.completed += tally.completed;
            total.accounted += tally.accounted;
            total.lost += tally.lost;
            let _ = writeln!(text, "  {:<20} {}", kind.name(), tally_line(tally));
        }
        let _ = writeln!(text, "  {:<20} {}", "all", tally_line(&total));
        text.push_str("faults:\n");
        for (fault, tally) in &self.by_fault {
            let extra = match fault {
                Fault::OriginRestart => format!(", {restarts} restarts"),
                _ => String::new(),
            };
            let _ = writeln!(
                text,
                "  {:<20} exposed {:>7}  failed, accounted for {:>6}{extra}",
                fault.name(),
                tally.exposed,
                tally.accounted
            );
        }
        for (transfer, reason) in self.losses.iter().take(20) {
            let _ = writeln!(
                text,
                "LOST {} at {:.3}s..{:.3}s: {reason}",
                transfer.kind.name(),
                transfer.started.as_secs_f64(),
                transfer.ended.as_secs_f64()
            );
        }
        if self.losses.len() > 20 {
            let _ = writeln!(text, "... and {} more losses", self.losses.len() - 20);
        }
        text
    }
}

fn tally_line(tally: &KindTally) -> String {
    format!(
        "{:>7} byte-exact  {:>6} failed for a fault  {:>4} lost",
        tally.completed, tally.accounted, tally.lost
    )
}
