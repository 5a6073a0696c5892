//! Splitting whole cents by weights so the parts add up exactly.

/// Splits `total` into parts proportional to `weights`, in whole units,
/// by the largest-remainder method: every part gets the floor of its exact
/// share, and the units left over go one each to the largest remainders
/// (ties to the earlier weight, so the split is deterministic). The parts
/// always add up to `total`; all zeros when no weight is positive.
/// Negative weights count as zero.
pub fn largest_remainder(total: i64, weights: &[i128]) -> Vec<i64> {
    let weights: Vec<i128> = weights.iter().map(|w| (*w).max(0)).collect();
    let sum: i128 = weights.iter().sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    // Split the magnitude; a negative total is the mirror image.
    let sign = if total < 0 { -1 } else { 1 };
    let magnitude = i128::from(total).abs();
    let mut parts: Vec<i128> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(i128, usize)> = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let exact = magnitude * w;
        parts.push(exact / sum);
        remainders.push((exact % sum, i));
    }
    let left = magnitude - parts.iter().sum::<i128>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders.into_iter().take(left as usize) {
        parts[i] += 1;
    }
    parts.into_iter().map(|p| sign * p as i64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_add_up_and_leftovers_go_to_the_largest_remainders() {
        assert_eq!(largest_remainder(100, &[1, 1, 1]), vec![34, 33, 33]);
        assert_eq!(largest_remainder(10, &[1, 2, 7]), vec![1, 2, 7]);
        assert_eq!(largest_remainder(5, &[0, 0]), vec![0, 0]);
        assert_eq!(largest_remainder(7, &[3, -4, 0]), vec![7, 0, 0]);
        assert_eq!(largest_remainder(-100, &[1, 1, 1]), vec![-34, -33, -33]);
        assert_eq!(largest_remainder(2, &[1, 1, 1]), vec![1, 1, 0]);
    }
}
