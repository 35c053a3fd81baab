//! ringside's load test: origins to proxy to, load clients that measure, and
//! a runner that puts ringside side by side with no proxy, HAProxy and nginx.
//!
//! Everything here runs on loopback and stops by itself: every scenario is
//! bounded by a duration and every wait for readiness by a deadline.
//! The library is public so that the integration tests can start origins
//! in-process; the binary is a thin CLI over [`compare`], [`soak`] and [`origins`].

pub mod cli;
pub mod compare;
pub mod origins;
pub mod proc_stats;
pub mod provenance;
pub mod report;
pub mod scenarios;
pub mod soak;
pub mod targets;
mod workdir;
pub mod workspace;
