//! Latency samples and their summaries, computed as the official clients' scripts compute
//! theirs (median of the middle two, nearest-rank p99), so that every row compares alike.

use std::time::Duration;

/// The summary of one set of latency samples, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// The median.
    pub p50_us: f64,
    /// The 99th percentile, nearest rank.
    pub p99_us: f64,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        let us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        Summary::of_us(us)
    }

    /// Summarises samples already in microseconds.
    pub fn of_us(mut us: Vec<f64>) -> Option<Summary> {
        if us.is_empty() {
            return None;
        }
        us.sort_by(f64::total_cmp);
        let n = us.len();
        let mid = n / 2;
        let p50_us = if n % 2 == 1 {
            us[mid]
        } else {
            (us[mid - 1] + us[mid]) / 2.0
        };
        // Nearest rank: the smallest sample with at least 99 % of the samples at or below it.
        let rank = (0.99 * n as f64).ceil() as usize;
        let p99_us = us[rank.clamp(1, n) - 1];
        Some(Summary {
            count: n,
            p50_us,
            p99_us,
        })
    }
}

/// A duration in microseconds for a table cell: one decimal below 100 µs, none above;
/// milliseconds from 10 ms on.
pub fn micros(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 100.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.1} µs")
    }
}

/// A rate for a table cell, with thousands separated by thin spaces.
pub fn rate(per_second: f64) -> String {
    format!("{} pings/s", thousands(per_second.round() as u64))
}

/// `1234567` as `1 234 567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_nearest_rank_p99() {
        let s = Summary::of_us((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!((s.count, s.p50_us, s.p99_us), (100, 50.5, 99.0));
        let s = Summary::of_us(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.p50_us, s.p99_us), (2.0, 3.0));
        assert!(Summary::of(&[]).is_none());
        assert_eq!(thousands(1_234_567), "1 234 567");
        assert_eq!(thousands(999), "999");
    }
}
