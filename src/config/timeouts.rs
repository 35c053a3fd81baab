//! Every timeout of ringside, in one place: how long a client, an
//! upstream, a peer or a draining process may keep something waiting.
//! A newcomer adding a timeout adds a field to `Timeouts` (with its key and
//! default in its doc), its default here, and its key to `timeouts` below.
//!
//! The keys stay in the TOML tables users know them from (`[proxy]`,
//! `[detect]`, `[runtime]`): only the value they produce lives here. The
//! one timeout that is not configurable, the mesh handshake's, is a const
//! beside them.

use std::time::Duration;

use super::file::FileConfig;
use super::value::{duration_key, layered, optional_duration, positive_duration};
use super::{Args, ConfigError};

/// How long each wait may last; `None` waits forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `proxy.connect_timeout` (1s): an upstream connect that takes longer
    /// is given up, and another endpoint is tried.
    pub connect: Duration,
    /// `proxy.head_read_timeout` (10s): from the first byte of an HTTP/1
    /// request head to its end; then 408.
    pub head_read: Duration,
    /// `proxy.client_idle_timeout` (60s): between requests on a client's
    /// HTTP/1 keep-alive connection; then the connection is closed without
    /// an answer.
    pub client_idle: Duration,
    /// `proxy.response_timeout` (off): from a request sent upstream to its
    /// response head; then 504. Routes may override it
    /// (`Route::response_timeout` holds the result).
    pub response: Option<Duration>,
    /// `proxy.opaque_idle_timeout` (off): no byte either way on an opaque
    /// connection for this long closes both sides. Off by default:
    /// long-lived idle database connections are normal.
    pub opaque_idle: Option<Duration>,
    /// `proxy.pool_idle_timeout` (3s): how long an idle pooled HTTP/1
    /// upstream connection is kept.
    pub pool_idle: Duration,
    /// `detect.timeout` (10s): how long to wait for the client's first
    /// bytes before failing open to opaque TCP.
    pub detect: Duration,
    /// `detect.quiet_pause` (300ms): a client that sent an undecided prefix
    /// ("GET", half a ClientHello) and then nothing for this long is
    /// carried as opaque TCP: it is waiting for an answer, not still
    /// typing.
    pub detect_quiet_pause: Duration,
    /// `runtime.shutdown_grace` (30s): how long open connections may run
    /// after SIGTERM before they are cut.
    pub shutdown_grace: Duration,
}

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_HEAD_READ_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// Linkerd's detect timeout.
const DEFAULT_DETECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_DETECT_QUIET_PAUSE: Duration = Duration::from_millis(300);
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How long a mesh peer has for its TLS handshake and transport header
/// together. Not configurable: it bounds how long a handshake holds its
/// ~40 KiB of rustls buffers (see `tls::mesh::MAX_HANDSHAKES`).
pub const MESH_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Every timeout key, flag over file over default, in a fixed order so
/// that the first of several mistakes reported is always the same.
pub(super) fn timeouts(args: &Args, file: &FileConfig) -> Result<Timeouts, ConfigError> {
    let (detect, runtime, proxy) = (&file.detect, &file.runtime, &file.proxy);
    let detect_timeout = layered(&args.detect_timeout, &detect.timeout);
    let detect_timeout =
        positive_duration("detect.timeout", detect_timeout, DEFAULT_DETECT_TIMEOUT)?;
    let quiet_pause = layered(&args.detect_quiet_pause, &detect.quiet_pause);
    let detect_quiet_pause = positive_duration(
        "detect.quiet_pause",
        quiet_pause,
        DEFAULT_DETECT_QUIET_PAUSE,
    )?;
    let connect = layered(&args.connect_timeout, &proxy.connect_timeout);
    let connect = positive_duration("proxy.connect_timeout", connect, DEFAULT_CONNECT_TIMEOUT)?;
    let grace = layered(&args.shutdown_grace, &runtime.shutdown_grace);
    let shutdown_grace = duration_key("runtime.shutdown_grace", grace, DEFAULT_SHUTDOWN_GRACE)?;
    let pool_idle = duration_key(
        "proxy.pool_idle_timeout",
        proxy.pool_idle_timeout.as_deref(),
        DEFAULT_POOL_IDLE_TIMEOUT,
    )?;
    let head_read = layered(&args.head_read_timeout, &proxy.head_read_timeout);
    let client_idle = layered(&args.client_idle_timeout, &proxy.client_idle_timeout);
    let response = layered(&args.response_timeout, &proxy.response_timeout);
    let opaque_idle = layered(&args.opaque_idle_timeout, &proxy.opaque_idle_timeout);
    Ok(Timeouts {
        connect,
        head_read: positive_duration(
            "proxy.head_read_timeout",
            head_read,
            DEFAULT_HEAD_READ_TIMEOUT,
        )?,
        client_idle: positive_duration(
            "proxy.client_idle_timeout",
            client_idle,
            DEFAULT_CLIENT_IDLE_TIMEOUT,
        )?,
        response: optional_duration("proxy.response_timeout", response, None)?,
        opaque_idle: optional_duration("proxy.opaque_idle_timeout", opaque_idle, None)?,
        pool_idle,
        detect: detect_timeout,
        detect_quiet_pause,
        shutdown_grace,
    })
}
