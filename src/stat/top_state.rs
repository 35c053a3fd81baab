//! What `ringside top` shows, kept between frames: the rows of the last
//! interval in the order asked for, how the last scrape went, and the log
//! of refusals and errors. Drawn by `top_view`, fed by `top`'s loop.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use super::events::{changes, Change};
use super::scrape::Scrape;
use super::table::{Row, StatTable};
use crate::config::{SortBy, TopArgs};

/// Lines kept in the refusals and errors panel, newest first.
const LOG_LINES: usize = 200;

/// What the screen shows.
pub(super) struct Top {
    pub admin: String,
    pub interval: Duration,
    pub sort: SortBy,
    /// The latest scrape, which the next is differenced against.
    last: Option<(Instant, Scrape)>,
    /// The rows of the last interval, sorted.
    pub rows: Vec<Row>,
    /// When the last scrape answered (time of day), or why it did not.
    pub status: Status,
    /// Refusals and errors, newest first, each with its time of day and
    /// whether it grew in the last interval.
    pub log: VecDeque<(String, Change, bool)>,
}

pub(super) enum Status {
    Waiting,
    Scraped(String),
    Unreachable(String),
}

impl Top {
    pub fn new(args: &TopArgs) -> Top {
        Top {
            admin: args.admin.to_string(),
            interval: args.interval,
            sort: args.sort,
            last: None,
            rows: Vec::new(),
            status: Status::Waiting,
            log: VecDeque::new(),
        }
    }

    pub fn toggle_sort(&mut self) {
        self.sort = match self.sort {
            SortBy::Rps => SortBy::P99,
            SortBy::P99 => SortBy::Rps,
        };
        sort(&mut self.rows, self.sort);
    }

    /// A scrape came in: the table of the interval since the one before,
    /// and what grew in it. An unreachable admin keeps the last table.
    pub fn scraped(&mut self, at: Instant, result: Result<Scrape, String>) {
        let scrape = match result {
            Ok(scrape) => scrape,
            Err(err) => {
                self.status = Status::Unreachable(err);
                return;
            }
        };
        let now = time_of_day();
        if let Some((then, before)) = &self.last {
            let table = StatTable::between(before, &scrape, at - *then);
            self.rows = table.rows;
            sort(&mut self.rows, self.sort);
            for (_, _, fresh) in self.log.iter_mut() {
                *fresh = false;
            }
            for change in changes(before, &scrape).into_iter().rev() {
                self.log.push_front((now.clone(), change, true));
            }
            self.log.truncate(LOG_LINES);
        }
        self.status = Status::Scraped(now);
        self.last = Some((at, scrape));
    }
}

/// Highest first; rows without the value last, then by name.
fn sort(rows: &mut [Row], by: SortBy) {
    let key = |row: &Row| match by {
        SortBy::Rps => row.rps,
        SortBy::P99 => row.latency_ms_p99,
    };
    rows.sort_by(|a, b| {
        let (a_key, b_key) = (key(a).unwrap_or(-1.0), key(b).unwrap_or(-1.0));
        b_key
            .total_cmp(&a_key)
            .then_with(|| (&a.direction, &a.name).cmp(&(&b.direction, &b.name)))
    });
}

/// `HH:MM:SS`, UTC.
fn time_of_day() -> String {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    stamp.get(11..19).unwrap_or(&stamp).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat::OutputFormat;

    #[test]
    fn rows_sort_highest_first_and_rows_without_the_value_last() {
        let page = |a: u64, b: u64| {
            Scrape::parse(&format!(
                "response_latency_ms_bucket{{direction=\"outbound\",authority=\"slow\",le=\"100\"}} {a}\n\
                 response_latency_ms_bucket{{direction=\"outbound\",authority=\"slow\",le=\"+Inf\"}} {a}\n\
                 response_total{{direction=\"outbound\",authority=\"slow\",classification=\"success\"}} {a}\n\
                 response_latency_ms_bucket{{direction=\"outbound\",authority=\"busy\",le=\"1\"}} {b}\n\
                 response_latency_ms_bucket{{direction=\"outbound\",authority=\"busy\",le=\"+Inf\"}} {b}\n\
                 response_total{{direction=\"outbound\",authority=\"busy\",classification=\"success\"}} {b}\n\
                 tcp_open_connections{{direction=\"outbound\",peer=\"src\",target_addr=\"opaque\"}} 1\n"
            ))
            .unwrap()
        };
        let mut rows = StatTable::between(&page(0, 0), &page(1, 5), Duration::from_secs(1)).rows;
        let names = |rows: &[Row]| rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        sort(&mut rows, SortBy::Rps);
        assert_eq!(names(&rows), ["busy", "slow", "opaque"]);
        sort(&mut rows, SortBy::P99);
        assert_eq!(names(&rows), ["slow", "busy", "opaque"]);
        let table = StatTable {
            window: Duration::from_secs(1),
            rows,
        };
        assert!(table.render(OutputFormat::Table).contains("slow"));
    }
}
