//! Transparent listeners: `[outbound]` and `[inbound]`, where iptables
//! redirects connections and each one's target is its original
//! destination. Each is off unless its section is in the file or its flag
//! is given, so the route-only use (and its port 4140 examples) keeps
//! working.

use std::net::SocketAddr;

use super::file::{InboundTable, OutboundTable};
use super::value::{layered, one_of};
use super::{parse_addr, Args, ConfigError, Direction, Route};

/// Linkerd's outbound port: where the OUTPUT rules redirect to.
pub const DEFAULT_OUTBOUND_LISTEN: &str = "127.0.0.1:4140";
/// Linkerd's inbound port: where the PREROUTING rules redirect to.
pub const DEFAULT_INBOUND_LISTEN: &str = "0.0.0.0:4143";

/// One transparent listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transparent {
    pub listen: SocketAddr,
    /// The `direction` label of its metrics.
    pub direction: Direction,
    /// Where a connection goes, given its original destination.
    pub forward_to: ForwardTo,
}

/// Where a transparent connection is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardTo {
    /// `127.0.0.1:<original port>`: the application beside ringside,
    /// reached on loopback, services bound to loopback only included
    /// (inbound, when asked for).
    Localhost,
    /// The original destination itself: outbound's only choice, and
    /// inbound's default, as in Linkerd.
    Original,
}

impl ForwardTo {
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardTo::Localhost => "localhost",
            ForwardTo::Original => "original",
        }
    }

    /// The upstream for a connection whose original destination is
    /// `original`.
    pub fn upstream(self, original: SocketAddr) -> SocketAddr {
        match self {
            ForwardTo::Localhost => SocketAddr::from(([127, 0, 0, 1], original.port())),
            ForwardTo::Original => original,
        }
    }
}

/// `[outbound]`, on when the section or `--outbound-listen` is given.
pub(super) fn outbound(
    args: &Args,
    table: &Option<OutboundTable>,
) -> Result<Option<Transparent>, ConfigError> {
    let file_listen = table.as_ref().map(|t| t.listen.clone());
    let flag = &args.outbound_listen;
    let Some(listen) = listen("outbound", flag, file_listen, DEFAULT_OUTBOUND_LISTEN)? else {
        return Ok(None);
    };
    let forward_to = ForwardTo::Original;
    Ok(Some(Transparent {
        listen,
        direction: Direction::Outbound,
        forward_to,
    }))
}

/// `[inbound]`, on when the section or `--inbound-listen` is given.
pub(super) fn inbound(
    args: &Args,
    table: &Option<InboundTable>,
) -> Result<Option<Transparent>, ConfigError> {
    let file_listen = table.as_ref().map(|t| t.listen.clone());
    let flag = &args.inbound_listen;
    let Some(listen) = listen("inbound", flag, file_listen, DEFAULT_INBOUND_LISTEN)? else {
        return Ok(None);
    };
    let file_forward = table.as_ref().and_then(|t| t.forward_to.clone());
    let forward_to = layered(&args.inbound_forward_to, &file_forward);
    // The original destination by default, as Linkerd's inbound forwards
    // (to the pod's address, never loopback): with `localhost`, any port
    // a peer names reaches services bound to loopback only (debug
    // endpoints, a local cache), which nobody outside the host could reach
    // before the proxy came.
    let choices = [ForwardTo::Original, ForwardTo::Localhost].map(|f| (f.as_str(), f));
    let forward_to = one_of("inbound.forward_to", forward_to, choices)?;
    Ok(Some(Transparent {
        listen,
        direction: Direction::Inbound,
        forward_to,
    }))
}

/// `section.listen` when the listener is on: the flag's, else the
/// section's, else the default when the section is there at all.
fn listen(
    section: &str,
    flag: &Option<String>,
    file: Option<Option<String>>,
    default: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    let listen = match (flag, file) {
        (Some(flag), _) => flag.clone(),
        (None, Some(listen)) => listen.unwrap_or_else(|| default.to_string()),
        (None, None) => return Ok(None),
    };
    parse_addr(&format!("{section}.listen"), &listen).map(Some)
}

/// No transparent listener may listen where a route or the other one does
/// (port 0 excepted: each gets a port of its own).
pub(super) fn check_listens(
    routes: &[Route],
    transparent: &[Transparent],
) -> Result<(), ConfigError> {
    for (i, listener) in transparent.iter().enumerate() {
        if listener.listen.port() == 0 {
            continue;
        }
        let taken = routes.iter().any(|route| route.listen == listener.listen)
            || transparent[..i]
                .iter()
                .any(|other| other.listen == listener.listen);
        if taken {
            return Err(ConfigError::invalid(
                format!("{}.listen", listener.direction.as_str()),
                format!("{} is used by another listener", listener.listen),
            ));
        }
    }
    Ok(())
}
