//! ringside: a thread-per-core io_uring sidecar proxy.
//!
//! The library is what the `ringside` binary, the integration tests, the
//! benches, the fuzz targets and the load test share. Its public surface is
//! what those use, and no more:
//!
//! - `config`: the command line, the file and the one `Config` they make
//!   (the binary; tests and benches build routes with it);
//! - `runtime`: `Sidecar` (bind, then run: the whole proxy), placement and
//!   the open-files limit (the binary, the benches);
//! - `detect::detect`, `http::{parse_request, parse_response}` and each
//!   folder's `invariants` (benches and fuzz targets: the hot functions);
//! - `metrics`: recording, snapshots and the Prometheus text (benches; the
//!   label caps, for the test that checks them);
//! - `tls`: identities, `ringside identity` and the transport header (the
//!   binary, the fuzz target, the Linkerd double in the tests);
//! - `iptables::run` (the binary);
//! - `dns`: the resolver thread of upstream names (the runtime, `--check`,
//!   and the tests that run it against their own DNS server);
//! - `stat`: `ringside stat` and `ringside top`, a tool that reads a
//!   running ringside's `/metrics` (the binary, `ringside demo`, tests).
//!
//! - `discovery`: outbound discovery from Linkerd's control plane (the
//!   runtime, and the tests that run it against their mock control plane).
//!
//! `control`, the control thread of Linkerd mode (Linkerd's identity
//! client, and the channels `discovery` runs on it), is reached only
//! through the runtime and `discovery`.
//!
//! Everything else is the crate's own: the connection stage (`proxy`), the
//! shard's state (`shard`), opaque forwarding (`tcp`), the I/O layer
//! (`io`), the balancers (`balance`) and the admin server (`admin`) are
//! private modules, reached only through the runtime.
//!
//! Imports run one way: runtime → proxy → http → shard → {detect, tcp,
//! tls} → {balance, io, metrics} (proxy also takes from shard, detect, tcp
//! and tls directly), runtime → control → {tls, metrics}, and admin →
//! metrics; `config` is ground.
//! `tests/layering.rs` keeps it so.

mod admin;
mod balance;
pub mod config;
mod control;
pub mod detect;
pub mod discovery;
pub mod dns;
pub mod http;
mod io;
pub mod iptables;
pub mod metrics;
mod proxy;
pub mod runtime;
mod shard;
pub mod stat;
mod tcp;
pub mod tls;
