//! Correlation of two symbols' 1 h log returns, aligned on timestamps (never on row numbers).

use super::indicators::pearson;
use crate::time::Timestamp;

/// The correlation of the last `window` returns the two series share, and how many they share.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Aligned {
    /// Pearson correlation of the aligned returns (`None`: a series had no variance).
    pub rho: Option<f64>,
    /// How many timestamps both series have, counted up to `window`.
    pub common: usize,
}

/// Walks both series (sorted by time) back from their ends, keeping the last `window`
/// timestamps present in both, and correlates those. With fewer than `window` common
/// timestamps `rho` is `None` and `common` says how many there were.
pub fn aligned_correlation(
    a: &[(Timestamp, f64)],
    b: &[(Timestamp, f64)],
    window: usize,
) -> Aligned {
    let mut xs = Vec::with_capacity(window);
    let mut ys = Vec::with_capacity(window);
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 && xs.len() < window {
        let (ta, tb) = (a[i - 1].0, b[j - 1].0);
        if ta == tb {
            xs.push(a[i - 1].1);
            ys.push(b[j - 1].1);
            i -= 1;
            j -= 1;
        } else if ta > tb {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    let common = xs.len();
    let rho = if common >= window && window >= 2 {
        pearson(&xs, &ys)
    } else {
        None
    };
    Aligned { rho, common }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(start: i64, values: &[f64]) -> Vec<(Timestamp, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (Timestamp((start + i as i64) * 3_600_000), *v))
            .collect()
    }

    #[test]
    fn alignment_uses_timestamps_not_row_numbers() {
        // b starts one hour later: by rows they would be anti-correlated, by time identical.
        let a = series(0, &[1.0, -1.0, 2.0, -2.0, 3.0]);
        let b = series(1, &[-1.0, 2.0, -2.0, 3.0]);
        let aligned = aligned_correlation(&a, &b, 4);
        assert_eq!(aligned.common, 4);
        assert!((aligned.rho.unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn too_few_common_timestamps_give_no_correlation() {
        let a = series(0, &[1.0, 2.0, 3.0]);
        let b = series(2, &[3.0, 4.0, 5.0]);
        let aligned = aligned_correlation(&a, &b, 3);
        assert_eq!(aligned.common, 1);
        assert_eq!(aligned.rho, None);
    }
}
