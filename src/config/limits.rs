//! The limits a client cannot push past: open connections per process
//! (`proxy.max_connections`) and what one HTTP/2 connection may ask for
//! (`[http2]`). Kept apart from the other keys, with their defaults and
//! the reasons for them in one place.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use super::value::within;
use super::{Args, ConfigError};

/// `[http2]`: what one client HTTP/2 connection may hold or cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Config {
    /// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS),
    /// and also the most requests ringside has in flight to upstreams for
    /// one client connection: a stream the client reset no longer counts
    /// for h2, but its upstream request counts until it is cancelled.
    pub max_concurrent_streams: u32,
    /// Largest header block a client may send (SETTINGS_MAX_HEADER_LIST_SIZE).
    pub max_header_list_size: u32,
    /// Streams the client reset before ringside took them up; past this the
    /// connection gets GOAWAY ENHANCE_YOUR_CALM (h2's own count).
    pub max_pending_accept_reset_streams: usize,
    /// Streams ringside had to reset for the client's protocol errors (or
    /// refused past the stream limit); past this, GOAWAY ENHANCE_YOUR_CALM.
    pub max_local_error_reset_streams: usize,
    /// Streams the client reset after ringside had forwarded them, before
    /// their response: the rapid-reset attack. Past this many, when they are
    /// also at least half of the connection's streams, GOAWAY
    /// ENHANCE_YOUR_CALM.
    pub max_premature_resets: u64,
}

/// RFC 9113 asks for no fewer than 100 concurrent streams; nginx allows
/// 128, hyper 200. 100 also caps what one connection keeps in flight.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// The same 64 KiB an HTTP/1 request head may have.
pub const DEFAULT_MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;
/// h2's and hyper's default.
pub const DEFAULT_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// h2's default.
pub const DEFAULT_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;
/// Envoy closes a connection once at least half of 500 streams were reset
/// early; 100 early resets alone are already far more than a client that
/// cancels the odd call makes, and with the half rule a long-lived gRPC
/// connection that cancels 1 call in 10 is never closed.
pub const DEFAULT_MAX_PREMATURE_RESETS: u64 = 100;

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_header_list_size: DEFAULT_MAX_HEADER_LIST_SIZE,
            max_pending_accept_reset_streams: DEFAULT_MAX_PENDING_ACCEPT_RESET_STREAMS,
            max_local_error_reset_streams: DEFAULT_MAX_LOCAL_ERROR_RESET_STREAMS,
            max_premature_resets: DEFAULT_MAX_PREMATURE_RESETS,
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Http2Table {
    pub max_concurrent_streams: Option<u32>,
    pub max_header_list_size: Option<u32>,
    pub max_pending_accept_reset_streams: Option<usize>,
    pub max_local_error_reset_streams: Option<usize>,
    pub max_premature_resets: Option<u64>,
}

/// `proxy.max_connections`: unset stays unset, for the runtime to derive
/// from the open-files limit, which only it raises and reads.
pub(super) fn max_connections(
    args: &Args,
    file: Option<usize>,
) -> Result<Option<usize>, ConfigError> {
    args.max_connections
        .or(file)
        .map(|max| {
            within(
                "proxy.max_connections",
                max,
                1..=usize::MAX,
                "must be at least 1",
            )
        })
        .transpose()
}

pub(super) fn http2(args: &Args, table: &Http2Table) -> Result<Http2Config, ConfigError> {
    let default = Http2Config::default();
    let positive = "must be at least 1";
    Ok(Http2Config {
        max_concurrent_streams: layered_count(
            "http2.max_concurrent_streams",
            args.http2_max_concurrent_streams
                .or(table.max_concurrent_streams),
            default.max_concurrent_streams,
            1..=u32::MAX,
            positive,
        )?,
        // Below 1 KiB not even a browser's request head fits.
        max_header_list_size: layered_count(
            "http2.max_header_list_size",
            args.http2_max_header_list_size
                .or(table.max_header_list_size),
            default.max_header_list_size,
            1024..=16 << 20,
            "must be between 1024 and 16777216",
        )?,
        max_pending_accept_reset_streams: layered_count(
            "http2.max_pending_accept_reset_streams",
            args.http2_max_pending_accept_reset_streams
                .or(table.max_pending_accept_reset_streams),
            default.max_pending_accept_reset_streams,
            1..=usize::MAX,
            positive,
        )?,
        max_local_error_reset_streams: layered_count(
            "http2.max_local_error_reset_streams",
            args.http2_max_local_error_reset_streams
                .or(table.max_local_error_reset_streams),
            default.max_local_error_reset_streams,
            1..=usize::MAX,
            positive,
        )?,
        max_premature_resets: layered_count(
            "http2.max_premature_resets",
            args.http2_max_premature_resets
                .or(table.max_premature_resets),
            default.max_premature_resets,
            1..=u64::MAX,
            positive,
        )?,
    })
}

/// The given value (flag or file) or the default, within `allowed`.
fn layered_count<T: PartialOrd>(
    key: &str,
    given: Option<T>,
    default: T,
    allowed: RangeInclusive<T>,
    rule: &str,
) -> Result<T, ConfigError> {
    within(key, given.unwrap_or(default), allowed, rule)
}
