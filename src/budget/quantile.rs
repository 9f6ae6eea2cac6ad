//! Percentiles from explicit-bucket histograms, computed exactly as Prometheus'
//! `histogram_quantile` does (linear interpolation inside the bucket that holds the rank, the
//! upper bound of the last finite bucket when the rank falls into `+Inf`), so a budget gives the
//! same number whether it reads the bridge's OTLP file or Prometheus.

/// A histogram as cumulative `(upper bound, count)` pairs, the last bound `+Inf`.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets(pub Vec<(f64, f64)>);

impl Buckets {
    /// From OTLP explicit bounds and per-bucket (non-cumulative) counts, `counts.len() ==
    /// bounds.len() + 1`.
    pub fn from_otlp(bounds: &[f64], counts: &[u64]) -> Option<Buckets> {
        if counts.len() != bounds.len() + 1 {
            return None;
        }
        let mut total = 0.0;
        let mut out = Vec::with_capacity(counts.len());
        for (i, c) in counts.iter().enumerate() {
            total += *c as f64;
            out.push((bounds.get(i).copied().unwrap_or(f64::INFINITY), total));
        }
        Some(Buckets(out))
    }

    /// How many observations.
    pub fn count(&self) -> f64 {
        self.0.last().map_or(0.0, |b| b.1)
    }

    /// Adds another histogram with the same bounds; false when the bounds differ.
    pub fn add(&mut self, other: &Buckets) -> bool {
        if self.0.len() != other.0.len() || self.0.iter().zip(&other.0).any(|(a, b)| a.0 != b.0) {
            return false;
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            a.1 += b.1;
        }
        true
    }

    /// The `q` quantile (0 ≤ q ≤ 1); `None` without observations or without a `+Inf` bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile(q, &self.0)
    }
}

/// Prometheus' `bucketQuantile` (promql/quantile.go) on cumulative `(le, count)` buckets.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if q.is_nan() {
        return None;
    }
    if q < 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return Some(f64::INFINITY);
    }
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    if b.len() < 2 || b.last()?.0 != f64::INFINITY {
        return None;
    }
    // Prometheus repairs counts that are not monotonic (scrape races) by carrying the maximum.
    let mut max = f64::NEG_INFINITY;
    for bucket in &mut b {
        max = max.max(bucket.1);
        bucket.1 = max;
    }
    let observations = b.last()?.1;
    if observations == 0.0 {
        return None;
    }
    let mut rank = q * observations;
    let i = b.iter().position(|x| x.1 >= rank).unwrap_or(b.len() - 1);
    if i == b.len() - 1 {
        return Some(b[b.len() - 2].0);
    }
    if i == 0 && b[0].0 <= 0.0 {
        return Some(b[0].0);
    }
    let (mut start, end, mut count) = (0.0, b[i].0, b[i].1);
    if i > 0 {
        start = b[i - 1].0;
        count -= b[i - 1].1;
        rank -= b[i - 1].1;
    }
    Some(start + (end - start) * (rank / count))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    #[test]
    fn interpolates_inside_the_bucket_like_histogram_quantile() {
        // le=100:2, le=200:6, le=400:8, +Inf:8. q=0.75 → rank 6 → bucket (100,200], 4 in it,
        // rank 4 of 4 → 200.
        let b = [(100.0, 2.0), (200.0, 6.0), (400.0, 8.0), (INF, 8.0)];
        assert_eq!(quantile(0.75, &b), Some(200.0));
        // q=0.5 → rank 4 → (100,200]: 100 + 100 × (4-2)/4 = 150.
        assert_eq!(quantile(0.5, &b), Some(150.0));
        // q=0.9 → rank 7.2 → (200,400]: 200 + 200 × (7.2-6)/2 = 320.
        assert!((quantile(0.9, &b).unwrap() - 320.0).abs() < 1e-9);
        // q=0.1 → rank 0.8 → first bucket, from 0: 100 × 0.8/2 = 40.
        assert!((quantile(0.1, &b).unwrap() - 40.0).abs() < 1e-9);
    }

    #[test]
    fn the_inf_bucket_answers_the_last_finite_bound() {
        let b = [(100.0, 1.0), (200.0, 1.0), (INF, 4.0)];
        assert_eq!(quantile(0.75, &b), Some(200.0));
    }

    #[test]
    fn edge_cases_match_prometheus() {
        assert_eq!(
            quantile(0.5, &[(1.0, 0.0), (INF, 0.0)]),
            None,
            "no observations"
        );
        assert_eq!(quantile(0.5, &[(1.0, 3.0)]), None, "no +Inf bucket");
        assert_eq!(
            quantile(-1.0, &[(1.0, 1.0), (INF, 1.0)]),
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(quantile(2.0, &[(1.0, 1.0), (INF, 1.0)]), Some(INF));
        // Non-monotonic counts are carried forward: le=200 reads as 5.
        let b = [(100.0, 5.0), (200.0, 4.0), (INF, 10.0)];
        assert_eq!(quantile(0.5, &b), Some(100.0));
    }

    #[test]
    fn otlp_counts_become_cumulative_with_inf() {
        let b = Buckets::from_otlp(&[100.0, 200.0], &[1, 2, 3]).unwrap();
        assert_eq!(b.0, vec![(100.0, 1.0), (200.0, 3.0), (INF, 6.0)]);
        assert_eq!(b.count(), 6.0);
        assert!(Buckets::from_otlp(&[100.0], &[1]).is_none());
        let mut sum = b.clone();
        assert!(sum.add(&b));
        assert_eq!(sum.count(), 12.0);
        assert!(!sum.add(&Buckets::from_otlp(&[1.0], &[1, 1]).unwrap()));
    }
}
