//! The flags of `ringside stat` and `ringside top`, named as `linkerd viz
//! stat` and `linkerd viz top` name theirs (`-o`, `--window`), so that
//! their users need no manual. The tools themselves are in `stat/`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::ValueEnum;

/// How `ringside stat` prints its table: `linkerd viz stat -o`'s formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The columns of `linkerd viz stat`.
    Table,
    /// The table plus bytes per second and peer identities.
    Wide,
    /// One object per row, as `linkerd viz stat -o json`.
    Json,
}

/// What `ringside top` sorts its rows by (highest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortBy {
    /// Requests per second.
    Rps,
    /// 99th percentile latency.
    P99,
}

/// `ringside stat`: golden signals per route from two scrapes.
#[derive(Debug, Clone, clap::Args)]
pub struct StatArgs {
    /// Admin address of the ringside to read.
    #[arg(long, default_value = "127.0.0.1:4191")]
    pub admin: SocketAddr,

    /// Time between the two scrapes that rates are measured over, e.g.
    /// 10s or 500ms.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub window: Duration,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// `ringside top`: the `stat` table, refreshed live, with the refusals and
/// errors of the last interval.
#[derive(Debug, Clone, clap::Args)]
pub struct TopArgs {
    /// Admin address of the ringside to read.
    #[arg(long, default_value = "127.0.0.1:4191")]
    pub admin: SocketAddr,

    /// Time between refreshes, e.g. 1s or 500ms.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,

    /// The column rows are sorted by, highest first (`s` toggles it).
    #[arg(long, value_enum, default_value_t = SortBy::Rps)]
    pub sort: SortBy,
}
