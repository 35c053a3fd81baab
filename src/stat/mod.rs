//! `ringside stat` and `ringside top`: the golden signals of a running
//! ringside, read from its admin `/metrics` as `linkerd viz stat` and
//! `linkerd viz top` read a mesh's, for hosts with no Prometheus to ask.
//!
//! A tool, not the proxy: it runs in its own process, on plain std
//! sockets and threads, and may use anyhow. It reads the page a user would
//! scrape (`scrape`, `parse`), so it shows what an operator's dashboard
//! would, and nothing the proxy does not publish. Rates come from two
//! scrapes a window apart (`table`), percentiles from the histogram
//! buckets' growth over that window (`quantile`), as Prometheus'
//! `histogram_quantile` of an `increase` would give them. `render` prints
//! the table. `top` refreshes it live with the refusals and errors that
//! grew (`events`), kept in `top_state` and drawn by `top_view`.
//!
//! The library exposes this for the binary and for `ringside demo`, which
//! prints the table of its proxies at the end of its traffic.

mod events;
mod parse;
mod quantile;
mod render;
mod scrape;
mod table;
mod top;
mod top_state;
mod top_view;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use crate::config::OutputFormat;
pub use parse::Sample;
pub use scrape::{exchange, scrape, Scrape};
pub use table::{Row, StatTable};
pub use top::run as top;

/// Scrapes `admin`, waits `window`, scrapes again: the table of that
/// window. Rates are divided by the time between the two scrapes'
/// answers, which is the window plus the second scrape's own time.
pub fn stat(admin: SocketAddr, window: Duration) -> anyhow::Result<StatTable> {
    let before = scrape(admin)?;
    let start = Instant::now();
    std::thread::sleep(window);
    let after = scrape(admin)?;
    Ok(StatTable::between(&before, &after, start.elapsed()))
}
