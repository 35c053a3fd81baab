//! ringside: a thread-per-core io_uring sidecar proxy.
//!
//! The library is what the `ringside` binary, the integration tests and the
//! benches share: configuration, the runtime that starts shards and the
//! admin server, and the pieces of a connection's path.
//!
//! Imports run one way: runtime → proxy → {detect, tcp, http, tls} →
//! {balance, io, metrics}, and admin → metrics; `config` is ground.

pub mod admin;
pub mod balance;
pub mod config;
pub mod detect;
pub mod http;
pub mod io;
pub mod iptables;
pub mod metrics;
pub mod proxy;
pub mod runtime;
pub mod shard;
pub mod tcp;
pub mod tls;
