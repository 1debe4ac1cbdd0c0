//! Small statistics shared by the reports (store, server, CLI, simulator).

/// The nearest-rank percentile `p` (0.0–1.0) of values sorted ascending; `None` when empty.
/// Nearest rank returns an observed value, never an interpolation.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_an_observed_value() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 0.5), Some(5));
        assert_eq!(percentile(&v, 0.9), Some(9));
        assert_eq!(percentile(&v, 0.91), Some(10));
        assert_eq!(percentile(&v, 1.0), Some(10));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[1, 2, 3, 4], 0.5), Some(2));
        assert_eq!(percentile(&[7u32], 0.99), Some(7));
        assert_eq!(percentile::<i64>(&[], 0.5), None);
    }
}
