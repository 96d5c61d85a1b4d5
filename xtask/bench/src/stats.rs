//! Summaries of repeated runs: median with min/max spread.

use serde::Serialize;

/// A figure measured over several runs.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
    /// Every run's value, in run order.
    pub samples: Vec<f64>,
}

impl Summary {
    /// Summarises `samples` (non-finite values are dropped).
    pub fn of(samples: &[f64]) -> Summary {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let median = match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Summary {
            median,
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            runs: sorted.len(),
            samples: samples.to_vec(),
        }
    }

    /// Run-by-run ratio `num[i] / den[i]`: both sides of each pair come
    /// from the same round, so drift on a shared machine cancels out.
    pub fn ratio(num: &[f64], den: &[f64]) -> Summary {
        let pairs: Vec<f64> = num.iter().zip(den).map(|(n, d)| n / d).collect();
        Summary::of(&pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        let s = Summary::of(&[3.0, 1.0, 2.0, f64::NAN]);
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
        assert_eq!(Summary::of(&[1.0, 2.0, 3.0, 4.0]).median, 2.5);
    }

    #[test]
    fn ratio_pairs_runs() {
        let r = Summary::ratio(&[2.0, 3.0], &[1.0, 3.0]);
        assert_eq!((r.min, r.max), (1.0, 2.0));
    }
}
