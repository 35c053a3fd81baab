//! A quantile from cumulative histogram buckets, computed as Prometheus'
//! `histogram_quantile` computes it (`promql/quantile.go`,
//! `bucketQuantile`), which is what `linkerd viz stat` shows: linear
//! interpolation inside the bucket the rank falls in, the lowest bucket
//! starting at 0, and the highest finite bound when the rank falls in
//! `+Inf`. So the same counters give the same p99 here as on a Linkerd
//! dashboard, with the same coarseness (a bucket's width).

/// Cumulative counts by upper bound (`le`), the last one `+Inf`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// `(upper bound, cumulative count)`, unsorted until `quantile`.
    bounds: Vec<(f64, f64)>,
}

impl Buckets {
    /// Adds `count` to the bucket bounded by `le`, merging series.
    pub fn add(&mut self, le: f64, count: f64) {
        match self.bounds.iter_mut().find(|(bound, _)| *bound == le) {
            Some((_, total)) => *total += count,
            None => self.bounds.push((le, count)),
        }
    }

    /// The `q` quantile (0..=1) of what was observed; `None` without
    /// observations or without a `+Inf` bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let mut buckets = self.bounds.clone();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (last_bound, observations) = *buckets.last()?;
        if buckets.len() < 2 || last_bound != f64::INFINITY || observations <= 0.0 {
            return None;
        }
        // Counts of merged or differenced series may dip by rounding:
        // Prometheus forces them monotonic (`ensureMonotonic`).
        let mut highest = 0.0f64;
        for (_, count) in buckets.iter_mut() {
            highest = highest.max(*count);
            *count = highest;
        }
        let mut rank = q.clamp(0.0, 1.0) * observations;
        let b = buckets
            .iter()
            .position(|(_, count)| *count >= rank)
            .unwrap_or(buckets.len() - 1);
        if b == buckets.len() - 1 {
            return Some(buckets[b - 1].0);
        }
        if b == 0 && buckets[0].0 <= 0.0 {
            return Some(buckets[0].0);
        }
        let (bucket_end, mut count) = buckets[b];
        let mut bucket_start = 0.0;
        if b > 0 {
            bucket_start = buckets[b - 1].0;
            count -= buckets[b - 1].1;
            rank -= buckets[b - 1].1;
        }
        Some(bucket_start + (bucket_end - bucket_start) * (rank / count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(pairs: &[(f64, f64)]) -> Buckets {
        let mut buckets = Buckets::default();
        for (le, count) in pairs {
            buckets.add(*le, *count);
        }
        buckets
    }

    #[test]
    fn interpolates_inside_the_bucket_as_prometheus() {
        // 10 observations: 4 up to 1 ms, 6 more up to 10 ms.
        let b = buckets(&[(1.0, 4.0), (10.0, 10.0), (f64::INFINITY, 10.0)]);
        // Rank 5 is the first of the 6 in (1, 10]: 1 + 9 * 1/6.
        assert_eq!(b.quantile(0.5), Some(1.0 + 9.0 / 6.0));
        // Rank 2 of the 4 in [0, 1].
        assert_eq!(b.quantile(0.2), Some(0.5));
        assert_eq!(b.quantile(1.0), Some(10.0));
    }

    #[test]
    fn the_inf_bucket_answers_the_highest_finite_bound() {
        let b = buckets(&[(1.0, 1.0), (5.0, 1.0), (f64::INFINITY, 10.0)]);
        assert_eq!(b.quantile(0.99), Some(5.0));
    }

    #[test]
    fn merges_series_and_needs_observations_and_inf() {
        let mut b = buckets(&[(1.0, 1.0), (f64::INFINITY, 1.0)]);
        b.add(1.0, 0.0);
        b.add(f64::INFINITY, 1.0);
        // 1 of 2 at or under 1 ms: the median is the bucket's top.
        assert_eq!(b.quantile(0.5), Some(1.0));
        assert_eq!(
            buckets(&[(1.0, 0.0), (f64::INFINITY, 0.0)]).quantile(0.5),
            None
        );
        assert_eq!(buckets(&[(1.0, 3.0), (2.0, 3.0)]).quantile(0.5), None);
        assert_eq!(Buckets::default().quantile(0.5), None);
    }
}
