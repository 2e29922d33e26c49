//! Latency samples and their summary: throughput, percentiles, errors by status.

use std::collections::BTreeMap;

use serde::Serialize;

/// What one load run recorded: every latency (microseconds) and every status.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    pub latencies_us: Vec<u32>,
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no HTTP answer (connection refused, timeout).
    pub transport_errors: u64,
}

impl Samples {
    pub fn record(&mut self, status: Option<u16>, latency_us: u32) {
        self.latencies_us.push(latency_us);
        match status {
            Some(s) => *self.statuses.entry(s).or_default() += 1,
            None => self.transport_errors += 1,
        }
    }

    pub fn merge(&mut self, other: Samples) {
        self.latencies_us.extend(other.latencies_us);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
    }

    pub fn requests(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    /// Requests answered with a status outside 2xx, by status, plus transport errors
    /// under the key `"transport"`.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        let mut errors: BTreeMap<String, u64> = self
            .statuses
            .iter()
            .filter(|(s, _)| !(200..300).contains(*s))
            .map(|(s, n)| (s.to_string(), *n))
            .collect();
        if self.transport_errors > 0 {
            errors.insert("transport".to_owned(), self.transport_errors);
        }
        errors
    }

    pub fn summary(&self, elapsed_secs: f64) -> LatencySummary {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let ms = |q: f64| percentile(&sorted, q).map_or(0.0, |us| f64::from(us) / 1000.0);
        let ok: u64 = self
            .statuses
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, n)| n)
            .sum();
        LatencySummary {
            requests: self.requests(),
            ok,
            throughput_rps: if elapsed_secs > 0.0 {
                self.requests() as f64 / elapsed_secs
            } else {
                0.0
            },
            p50_ms: ms(0.50),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            max_ms: sorted.last().map_or(0.0, |us| f64::from(*us) / 1000.0),
            errors: self.errors(),
        }
    }
}

/// Throughput and latency of one load run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencySummary {
    pub requests: u64,
    /// Requests answered 2xx.
    pub ok: u64,
    pub throughput_rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Non-2xx answers by status (and `transport` for no answer).
    pub errors: BTreeMap<String, u64>,
}

/// The `q` quantile (0..=1) of sorted values, nearest-rank method: the smallest value
/// such that at least `q` of all values are less or equal.
pub fn percentile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median of a few repeated measurements (the run reports medians of repeats).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.50), Some(50));
        assert_eq!(percentile(&v, 0.95), Some(95));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn summary_counts_errors_by_status() {
        let mut s = Samples::default();
        for i in 0..8 {
            s.record(Some(200), 1000 + i);
        }
        s.record(Some(409), 5000);
        s.record(None, 9000);
        let sum = s.summary(2.0);
        assert_eq!(sum.requests, 10);
        assert_eq!(sum.ok, 8);
        assert!((sum.throughput_rps - 5.0).abs() < 1e-9);
        assert_eq!(sum.errors.get("409"), Some(&1));
        assert_eq!(sum.errors.get("transport"), Some(&1));
        assert!((sum.max_ms - 9.0).abs() < 1e-9);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
