//! "Did you mean": the closest known name to a misspelt one.

/// The known name closest to `name`, if it is close enough to be a likely typo.
pub fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for &candidate in known {
        let distance = strsim::damerau_levenshtein(&lower, candidate);
        // Allow about one edit per three letters, and prefixes like `conv1d` → `conv`.
        let limit = (candidate.len().max(lower.len()) / 3).max(1);
        let prefix = candidate.len() >= 3 && (lower.starts_with(candidate) || candidate.starts_with(&lower)) && lower.len() >= 3;
        if distance <= limit || prefix {
            let score = if prefix { distance.min(limit) } else { distance };
            if best.is_none_or(|(d, _)| score < d) {
                best = Some((score, candidate));
            }
        }
    }
    best.map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn finds_typos() {
        let known = ["lowpass", "highpass", "bandpass", "bandstop"];
        assert_eq!(closest("lowpas", &known), Some("lowpass"));
        assert_eq!(closest("low_pass", &known), Some("lowpass"));
        assert_eq!(closest("LowPass", &known), Some("lowpass"));
        assert_eq!(closest("bandstp", &known), Some("bandstop"));
        assert_eq!(closest("xyz", &known), None);
    }

    #[test]
    fn finds_prefixes() {
        assert_eq!(closest("conv1d", &["conv", "linear"]), Some("conv"));
        assert_eq!(closest("lin", &["conv", "linear"]), Some("linear"));
    }
}
