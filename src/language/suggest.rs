//! "Did you mean": the closest known name to a misspelt one.

/// Names users bring from other frameworks, and what they mean here.
const ALIASES: &[(&str, &str)] = &[
    ("kernel_size", "k"),
    ("kernel", "k"),
    ("out_channels", "out"),
    ("filters", "out"),
    ("units", "out"),
    ("out_features", "out"),
    ("features", "out"),
    ("use_bias", "bias"),
    ("dense", "linear"),
    ("fc", "linear"),
    ("bn", "batchnorm"),
    ("batch_norm", "batchnorm"),
    ("frozen", "freeze"),
    ("fixed", "freeze"),
    ("learning_rate", "lr"),
    ("batch_size", "batch"),
    ("num_epochs", "epochs"),
    ("n_epochs", "epochs"),
    ("pool", "maxpool"),
    ("max_pool", "maxpool"),
    ("avg_pool", "avgpool"),
    ("gap", "global_avgpool"),
    ("swish", "silu"),
    ("leakyrelu", "leaky_relu"),
    ("crossentropy", "cross_entropy"),
    ("ce", "cross_entropy"),
    ("l2", "mse"),
    ("l1", "mae"),
    ("positive", "nonneg"),
    ("non_negative", "nonneg"),
    ("nonnegative", "nonneg"),
    ("spectral_norm", "lipschitz"),
    ("max_norm", "maxnorm"),
    ("unit_norm", "unitnorm"),
    ("lpf", "lowpass"),
    ("hpf", "highpass"),
    ("low_pass", "lowpass"),
    ("high_pass", "highpass"),
    ("band_pass", "bandpass"),
    ("band_stop", "bandstop"),
    ("notch", "bandstop"),
    ("linear_phase", "symmetric"),
];

/// The known name closest to `name`, if it is close enough to be a likely typo
/// (or a name for the same thing in another framework).
pub fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    if let Some((_, target)) = ALIASES.iter().find(|(alias, _)| *alias == lower)
        && let Some(found) = known.iter().find(|k| *k == target)
    {
        return Some(found);
    }
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
    fn knows_other_frameworks_names() {
        assert_eq!(closest("kernel_size", &["out", "k", "stride"]), Some("k"));
        assert_eq!(closest("dense", &["conv", "linear"]), Some("linear"));
        assert_eq!(closest("frozen", &["freeze", "lr"]), Some("freeze"));
    }

    #[test]
    fn finds_prefixes() {
        assert_eq!(closest("conv1d", &["conv", "linear"]), Some("conv"));
        assert_eq!(closest("lin", &["conv", "linear"]), Some("linear"));
    }
}
