//! "Did you mean ...?" for misspelt instructions and flags.

/// The candidate nearest to `word` by edit distance, when it is near enough to be a typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let (best, distance) = candidates
        .iter()
        .map(|c| (*c, edit_distance(&word, &c.to_ascii_lowercase())))
        .min_by_key(|(_, d)| *d)?;
    let limit = (word.chars().count().max(best.len()) / 3).max(1);
    (distance > 0 && distance <= limit).then_some(best)
}

/// Edit distance counting a swap of two neighbours as one edit (optimal string alignment).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j - 1] + cost)
                .min(d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn near_misses_are_suggested_and_far_ones_are_not() {
        let words = ["from", "run", "copy", "workdir"];
        assert_eq!(did_you_mean("FRUM", &words), Some("from"));
        assert_eq!(did_you_mean("wrokdir", &words), Some("workdir"));
        assert_eq!(did_you_mean("cpy", &words), Some("copy"));
        assert_eq!(did_you_mean("banana", &words), None);
        assert_eq!(did_you_mean("from", &words), None);
    }
}
