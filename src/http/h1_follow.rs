//! How an HTTP/1 client connection follows its route: each request is
//! balanced by the route's newest state (`HttpRoute::newer`), so that a
//! long keep-alive connection does not keep sending to an endpoint that
//! left the set. An HTTP/2 connection follows the same way, stream by
//! stream (`H2Proxy::serve`).

use std::rc::Rc;

use super::h1::H1Proxy;
use super::{HttpRoute, Upstream};

impl<'a> H1Proxy<'a> {
    /// The route's newest state when its endpoint set changed since this
    /// connection started. Not while `first`, picked from this state's
    /// endpoints, waits to be used.
    pub(super) fn newer_route(&self, first: &Option<Box<Upstream>>) -> Option<Rc<HttpRoute>> {
        match first {
            Some(_) => None,
            None => self.route.newer(),
        }
    }

    /// The same proxy over `route`, for one request.
    pub(super) fn on<'b>(&'b self, route: &'b HttpRoute) -> H1Proxy<'b> {
        H1Proxy {
            route,
            authz: self.authz.clone(),
            ..*self
        }
    }
}
