//! How sure a comparison can be: a bootstrap over a run's own measured intervals.
//!
//! A run's latency figures come from a few dozen one-second intervals, and identical runs on a
//! shared machine differ by more than any sensible threshold at p99. Like criterion, which
//! resamples its samples to put a confidence interval on a change, this resamples intervals
//! (with replacement; under `run --repeat`, repeats first and then intervals within each, so
//! that run-to-run spread is in the estimate too, as hyperfine's repeated runs are) and
//! recomputes the statistic each time. Intervals rather than single requests are the unit
//! because requests close in time share their fate (a GC pause, a busy neighbor); whole
//! intervals keep that correlation inside the unit.
//!
//! Hand-written because no crate resamples HdrHistogram intervals: the generic bootstrap
//! crates take a slice of f64 per sample, and a sample here is a histogram. Merging is done on
//! a dense array of the buckets the intervals share, so a resample costs the intervals'
//! recorded buckets, not a histogram merge.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::rundata::MeasuredInterval;

/// Resamples per estimate.
pub const RESAMPLES: usize = 2000;

/// The statistics a resample yields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    /// A quantile of the merged values (0.5, 0.9, 0.99).
    Quantile(f64),
    /// Recorded values per second of interval time (a rate: completed requests per second).
    Rate,
}

/// One run's intervals of one metric, ready to resample.
#[derive(Debug, Clone)]
pub struct Resampler {
    /// Dense bucket index → value.
    values: Vec<u64>,
    /// Per interval: (dense index, count), and its length.
    intervals: Vec<(Vec<(usize, u64)>, f64)>,
    /// Interval indices of each repeat.
    repeats: Vec<Vec<usize>>,
}

impl Resampler {
    /// How many intervals it resamples.
    pub fn units(&self) -> usize {
        self.intervals.len()
    }
}

impl Resampler {
    /// Prepares `intervals` (those of one metric in one run). None with fewer than 2 intervals:
    /// nothing to resample.
    pub fn new(intervals: &[MeasuredInterval]) -> Option<Self> {
        if intervals.len() < 2 {
            return None;
        }
        let mut values: Vec<u64> = intervals.iter().flat_map(|i| i.values.iter().map(|v| v.0)).collect();
        values.sort_unstable();
        values.dedup();
        let index = |v: u64| values.binary_search(&v).expect("every value was collected");
        let mut repeats: Vec<(u32, Vec<usize>)> = Vec::new();
        let mut dense = Vec::with_capacity(intervals.len());
        for (k, i) in intervals.iter().enumerate() {
            dense.push((i.values.iter().map(|&(v, c)| (index(v), c)).collect(), i.length_s));
            match repeats.iter_mut().find(|r| r.0 == i.repeat) {
                Some(r) => r.1.push(k),
                None => repeats.push((i.repeat, vec![k])),
            }
        }
        Some(Self {
            values,
            intervals: dense,
            repeats: repeats.into_iter().map(|r| r.1).collect(),
        })
    }

    /// `n` resampled values of each statistic in `stats` (one vector per statistic).
    pub fn resample(&self, stats: &[Statistic], n: usize, rng: &mut StdRng) -> Vec<Vec<f64>> {
        let mut out = vec![Vec::with_capacity(n); stats.len()];
        let mut counts = vec![0u64; self.values.len()];
        let mut chosen = Vec::with_capacity(self.intervals.len());
        for _ in 0..n {
            chosen.clear();
            if self.repeats.len() >= 2 {
                for _ in 0..self.repeats.len() {
                    let r = &self.repeats[rng.random_range(0..self.repeats.len())];
                    for _ in 0..r.len() {
                        chosen.push(r[rng.random_range(0..r.len())]);
                    }
                }
            } else {
                for _ in 0..self.intervals.len() {
                    chosen.push(rng.random_range(0..self.intervals.len()));
                }
            }
            counts.iter_mut().for_each(|c| *c = 0);
            let mut total = 0u64;
            let mut secs = 0.0;
            for &k in &chosen {
                let (vals, len) = &self.intervals[k];
                secs += len;
                for &(i, c) in vals {
                    counts[i] += c;
                    total += c;
                }
            }
            for (s, o) in stats.iter().zip(out.iter_mut()) {
                o.push(match *s {
                    Statistic::Rate => total as f64 / secs.max(1e-9),
                    Statistic::Quantile(q) => quantile(&counts, &self.values, total, q),
                });
            }
        }
        out
    }
}

/// The value at quantile `q` of dense bucket counts, as HdrHistogram reports it: the value of
/// the bucket holding the ⌈q·total⌉-th recorded value.
fn quantile(counts: &[u64], values: &[u64], total: u64, q: f64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (c, v) in counts.iter().zip(values) {
        seen += c;
        if seen >= rank {
            return *v as f64;
        }
    }
    *values.last().unwrap_or(&0) as f64
}

/// How much wider than the plain percentile interval an interval over `n` resampling units must
/// be. The percentile bootstrap is too narrow over few units (a run's measured phases may span
/// only four intervals): its spread is the plug-in one, biased by `(n - 1) / n`, and its tails
/// are the normal's where Student's t with `n - 1` degrees of freedom is due. So the interval is
/// widened by `t(n-1) / z · sqrt(n / (n - 1))` at the same level: 1.9 at 4 units, 1.2 at 10,
/// 1.06 at 30.
pub fn small_sample_factor(n: usize, level: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
    if n < 2 {
        return f64::INFINITY;
    }
    let p = (1.0 + level) / 2.0;
    let z = Normal::new(0.0, 1.0).map(|d| d.inverse_cdf(p));
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).map(|d| d.inverse_cdf(p));
    match (z, t) {
        (Ok(z), Ok(t)) if z > 0.0 => t / z * (n as f64 / (n - 1) as f64).sqrt(),
        _ => f64::INFINITY,
    }
}

/// The `(1 - level) / 2` and `(1 + level) / 2` percentiles of `xs` (sorted in place).
pub fn interval(xs: &mut [f64], level: f64) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let at = |p: f64| xs[((p * (xs.len() - 1) as f64).round() as usize).min(xs.len() - 1)];
    Some((at((1.0 - level) / 2.0), at((1.0 + level) / 2.0)))
}

/// A seeded generator: the same two runs always get the same verdict.
pub fn rng() -> StdRng {
    StdRng::seed_from_u64(0x0a1c_0e5c_a1e5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval_of(repeat: u32, values: &[u64]) -> MeasuredInterval {
        let mut v: Vec<(u64, u64)> = Vec::new();
        for &x in values {
            match v.iter_mut().find(|p| p.0 == x) {
                Some(p) => p.1 += 1,
                None => v.push((x, 1)),
            }
        }
        v.sort();
        MeasuredInterval {
            repeat,
            length_s: 1.0,
            values: v,
        }
    }

    #[test]
    fn quantiles_match_a_plain_sort_and_a_rate_counts_per_second() {
        let counts = [2, 0, 5, 3];
        let values = [10, 20, 30, 40];
        assert_eq!(quantile(&counts, &values, 10, 0.5), 30.0);
        assert_eq!(quantile(&counts, &values, 10, 0.2), 10.0);
        assert_eq!(quantile(&counts, &values, 10, 0.99), 40.0);
        let r = Resampler::new(&[interval_of(1, &[5; 10]), interval_of(1, &[5; 10])]).unwrap();
        let out = r.resample(&[Statistic::Rate], 10, &mut rng());
        assert!(out[0].iter().all(|&x| x == 10.0));
    }

    #[test]
    fn spread_between_intervals_widens_the_interval_and_none_narrows_it() {
        // Steady: every interval alike, so every resample gives the same median.
        let steady: Vec<_> = (0..20).map(|_| interval_of(1, &[100, 200, 300])).collect();
        let mut m = Resampler::new(&steady)
            .unwrap()
            .resample(&[Statistic::Quantile(0.5)], 500, &mut rng());
        let (lo, hi) = interval(&mut m[0], 0.95).unwrap();
        assert_eq!((lo, hi), (200.0, 200.0));
        // Noisy: half the intervals slow.
        let noisy: Vec<_> = (0..20)
            .map(|k| interval_of(1, if k % 2 == 0 { &[100, 110, 120] } else { &[300, 310, 320] }))
            .collect();
        let mut m = Resampler::new(&noisy)
            .unwrap()
            .resample(&[Statistic::Quantile(0.5)], 500, &mut rng());
        let (lo, hi) = interval(&mut m[0], 0.95).unwrap();
        assert!(lo <= 120.0 && hi >= 300.0, "{lo}..{hi}");
        assert!(Resampler::new(&noisy[..1]).is_none());
    }

    #[test]
    fn few_units_widen_the_interval_and_many_hardly() {
        let f = |n| small_sample_factor(n, 0.95);
        assert!((f(4) - 1.875).abs() < 0.01, "{}", f(4));
        assert!((f(10) - 1.216).abs() < 0.01, "{}", f(10));
        assert!(f(30) < 1.07 && f(1000) < 1.003);
        assert!(f(1).is_infinite());
    }

    #[test]
    fn repeats_are_resampled_first() {
        // Two repeats that disagree: resampling repeats often draws one of them twice.
        let mut xs: Vec<_> = (0..10).map(|_| interval_of(1, &[100])).collect();
        xs.extend((0..10).map(|_| interval_of(2, &[200])));
        let mut m = Resampler::new(&xs)
            .unwrap()
            .resample(&[Statistic::Quantile(0.99)], 400, &mut rng());
        let (lo, hi) = interval(&mut m[0], 0.95).unwrap();
        assert_eq!((lo, hi), (100.0, 200.0));
    }
}
