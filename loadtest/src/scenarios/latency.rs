//! Latency recording: HdrHistograms in microseconds, merged across client
//! threads, summarised as the percentiles the report prints.

use hdrhistogram::Histogram;
use std::time::Duration;

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// 1 µs to 60 s at 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds")
}

pub(crate) fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
    histogram.saturating_record(micros);
}

pub(crate) fn merge(histograms: impl IntoIterator<Item = Histogram<u64>>) -> Histogram<u64> {
    let mut merged = new_histogram();
    for histogram in histograms {
        merged
            .add(&histogram)
            .expect("histograms with the same bounds");
    }
    merged
}

impl Percentiles {
    pub(crate) fn of(histogram: &Histogram<u64>) -> Self {
        Self {
            p50: histogram.value_at_quantile(0.50) as f64,
            p99: histogram.value_at_quantile(0.99) as f64,
            p999: histogram.value_at_quantile(0.999) as f64,
            max: histogram.max() as f64,
        }
    }
}
