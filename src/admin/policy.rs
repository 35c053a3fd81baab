//! The admin server under Linkerd's policy controller: linkerd2-proxy
//! always watches the admin port (4191) and applies its policy to the
//! admin server (`app/src/admin.rs`). Under a `deny` default, kubelet's
//! `GET /live` and `/ready` pass through the probe route the controller
//! adds, while `/metrics` from outside the pod is refused (403);
//! loopback is always allowed (the policy's `localhost` authorization).
//!
//! The admin server is plain HTTP/1 off the data path: a request is judged
//! by the port's current answer, read from its watch (no shard copy).
//! Routes match on the method and the path; a route that also names
//! headers does not match an admin request, whose headers are not kept.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::sync::watch;

use super::wire::{Request, Response};
use crate::discovery::inbound::{permit, ClientTls, InboundHandle, PortAnswer, RequestParts};
use crate::io::timeout;

/// How long the first request waits for the port's first answer.
const FIRST_ANSWER_WAIT: Duration = Duration::from_secs(1);

/// The admin port's policy.
pub struct AdminPolicy {
    handle: InboundHandle,
    port: u16,
    answers: RefCell<Option<watch::Receiver<PortAnswer>>>,
}

impl AdminPolicy {
    pub fn new(handle: InboundHandle, port: u16) -> AdminPolicy {
        AdminPolicy {
            handle,
            port,
            answers: RefCell::new(None),
        }
    }

    /// The port's answers, asked for at the first request.
    async fn answers(&self) -> Option<watch::Receiver<PortAnswer>> {
        if let Some(answers) = self.answers.borrow().clone() {
            return Some(answers);
        }
        let asked = timeout(FIRST_ANSWER_WAIT, self.handle.lookup(self.port)).await;
        let mut answers = asked?.ok()?;
        let _ = timeout(FIRST_ANSWER_WAIT, answers.wait_for(|a| a.settled)).await;
        *self.answers.borrow_mut() = Some(answers.clone());
        Some(answers)
    }

    /// The refusal of `request` from `peer`, if the policy refuses it: 404
    /// when no route matches, 403 when no authorization admits the client.
    pub async fn refusal(&self, request: &Request, peer: Option<SocketAddr>) -> Option<Response> {
        let answers = self.answers().await?;
        let server = answers.borrow().policy.clone();
        let no_headers = |_: &str| None;
        let parts = RequestParts {
            method: &request.method,
            // `wire::Request::parse` left the query out.
            path: &request.path,
            query: "",
            header: &no_headers,
        };
        let Some(route) = server.route(&parts) else {
            return Some(Response::text(
                404,
                "no route of the inbound policy matches\n",
            ));
        };
        let ip = peer.map_or(IpAddr::from([0, 0, 0, 0]), |peer| peer.ip().to_canonical());
        match permit(&route.authorizations, ip, ClientTls::None) {
            Some(_) => None,
            None => {
                tracing::info!(server = %server.name, client = %ip, path = %parts.path, "admin request denied");
                Some(Response::text(403, "forbidden by the inbound policy\n"))
            }
        }
    }
}
