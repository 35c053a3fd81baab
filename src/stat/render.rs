//! The table as text: `linkerd viz stat`'s columns and cell formats
//! (`viz/cmd/stat.go`, `printSingleStatTable`: `%.2f%%`, `%.1frps`, `%dms`,
//! `%.1fB/s`, `-` where there is nothing to show), `-o wide` adding bytes
//! per second and identities, and `-o json` an array of rows as
//! `printStatJSON` prints one. `linkerd`'s MESHED column counts meshed
//! pods; a proxy has one, so ringside shows the `tls` label in its place.

use super::table::{Row, StatTable};
use super::OutputFormat;

/// Spaces between columns, as linkerd's tabwriter pads.
const PADDING: usize = 3;

impl StatTable {
    /// The table in `format`, ending with a newline.
    pub fn render(&self, format: OutputFormat) -> String {
        if format == OutputFormat::Json {
            // Rows hold only strings, numbers and options of them.
            let json = serde_json::to_string_pretty(&self.rows).expect("rows serialize");
            return json + "\n";
        }
        if self.rows.is_empty() {
            return "No traffic found.\n".to_string();
        }
        let wide = format == OutputFormat::Wide;
        let mut lines = vec![headers(wide).iter().map(|h| h.to_string()).collect()];
        lines.extend(self.rows.iter().map(|row| cells(row, wide)));
        align(&lines)
    }
}

/// The column names, `linkerd viz stat`'s where it has one.
pub(crate) fn headers(wide: bool) -> Vec<&'static str> {
    let mut headers = vec![
        "DIRECTION",
        "NAME",
        "TLS",
        "SUCCESS",
        "RPS",
        "LATENCY_P50",
        "LATENCY_P95",
        "LATENCY_P99",
        "TCP_CONN",
    ];
    if wide {
        headers.extend(["READ_BYTES/SEC", "WRITE_BYTES/SEC", "IDENTITY"]);
    }
    headers
}

/// One row's cells, in the order of `headers`.
pub(crate) fn cells(row: &Row, wide: bool) -> Vec<String> {
    let dash = || "-".to_string();
    let mut cells = vec![
        row.direction.clone(),
        row.name.clone(),
        row.tls.clone(),
        row.success
            .map_or_else(dash, |s| format!("{:.2}%", s * 100.0)),
        row.rps.map_or_else(dash, |rps| format!("{rps:.1}rps")),
        latency(row.latency_ms_p50),
        latency(row.latency_ms_p95),
        latency(row.latency_ms_p99),
        row.tcp_open_connections
            .map_or_else(dash, |n| n.to_string()),
    ];
    if wide {
        let rate = |rate: Option<f64>| rate.map_or_else(dash, |r| format!("{r:.1}B/s"));
        cells.push(rate(row.tcp_read_bytes_rate));
        cells.push(rate(row.tcp_write_bytes_rate));
        cells.push(match row.identities.is_empty() {
            true => dash(),
            false => row.identities.join(","),
        });
    }
    cells
}

/// Whole milliseconds, as linkerd prints them, but a tenth below 10 ms:
/// a sidecar's sub-millisecond hops would all read `0ms`.
fn latency(ms: Option<f64>) -> String {
    match ms {
        None => "-".to_string(),
        Some(ms) if ms < 10.0 => format!("{ms:.1}ms"),
        Some(ms) => format!("{ms:.0}ms"),
    }
}

/// Left-aligned columns, `PADDING` spaces apart, no trailing spaces.
fn align(lines: &[Vec<String>]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            let cell = |line: &Vec<String>| line.get(c).map_or(0, |s| s.chars().count());
            lines.iter().map(cell).max().unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let mut text = String::new();
        for (cell, width) in line.iter().zip(&widths) {
            text.push_str(&format!("{cell:<width$}{:PADDING$}", ""));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}
