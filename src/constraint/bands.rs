//! The maths of the band constraints (docs/constraints.md): the band operator
//! K(W), each constraint's stopband operator Q, and its smallest eigenvalue,
//! the lowest stopband energy ratio ρ any kernel of that length can reach.
//!
//! Plain `f64` linear algebra (nalgebra), no tensors: the checker uses it to
//! reject infeasible specs, and the lowering reuses it to build projections.

use crate::language::diagnostic::RatioWords;
use nalgebra::{DMatrix, SymmetricEigen};

use crate::language::schema::{Band, Family};

// The shared maths of every quadratic-operator family, where callers of the
// band maths have always found it.
pub use crate::constraint::quadratic::{
    EIGENVALUE_TIE, NoDesign, PIVOT_TOL, admissible_basis, admissible_projector, canonical_basis, min_taps_with, ordered_basis,
    smallest_eigenvalue,
};

/// `sinc(x) = sin(πx)/(πx)`, `sinc(0) = 1`.
pub fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// `K(W)[m, n] = W·sinc(W·(m − n))`: `hᵀK(W)h` is the energy of `h` in `|ν| ≤ W`.
pub fn band_operator(k: usize, w: f64) -> DMatrix<f64> {
    DMatrix::from_fn(k, k, |m, n| w * sinc(w * (m as f64 - n as f64)))
}

/// The default transition width of a length-k Hamming-windowed design, in
/// Nyquist units.
pub fn default_transition(k: usize) -> f64 {
    6.6 / k as f64
}

/// A band constraint in normalised frequency (1 = Nyquist).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BandSpec {
    pub family: Family,
    /// The cutoff, or the low edge of a band.
    pub low: f64,
    /// The high edge of a band (equal to `low` for low/high-pass).
    pub high: f64,
    /// Transition width; `None` means the default for the kernel length.
    pub transition: Option<f64>,
    /// The sample rate the user gave, if any: only for showing frequencies in Hz.
    pub fs: Option<f64>,
}

/// The stopband as a union of intervals of `[0, 1]`, after moving each edge half
/// a transition width into the stopband and clamping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stopband {
    /// `(a, b)` pieces; an empty piece has `a >= b`.
    pub pieces: [(f64, f64); 2],
}

impl Stopband {
    pub fn is_empty(&self) -> bool {
        self.pieces.iter().all(|(a, b)| a >= b)
    }
}

impl Stopband {
    /// In words, in Nyquist units, or in Hz when the sample rate is known.
    pub fn describe(&self, fs: Option<f64>) -> String {
        intervals_words(&self.pieces, fs)
    }

    /// The non-empty pieces.
    pub fn intervals(&self) -> Vec<(f64, f64)> {
        self.pieces.iter().copied().filter(|(a, b)| a < b).collect()
    }
}

/// Where a band constraint really acts on a kernel axis of `taps` taps: the
/// transition width in force, the stopband (each edge half a transition
/// beyond its cutoff, clamped to [0, 1]) and the passband (each edge half a
/// transition inside its cutoff); between them lie the transitions, where
/// nothing is asked. In Nyquist units.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BandEdges {
    pub taps: usize,
    pub transition: f64,
    pub stopband: Vec<(f64, f64)>,
    /// Empty when the transitions swallow it.
    pub passband: Vec<(f64, f64)>,
}

impl BandEdges {
    /// `stopband ν ≥ 0.42, passband ν ≤ 0.0 (transition 0.44)`, in Hz with a sample rate.
    pub fn describe(&self, fs: Option<f64>) -> String {
        let pass = if self.passband.is_empty() { "none".to_string() } else { intervals_words(&self.passband, fs) };
        format!("stopband {}, passband {pass} (transition {})", intervals_words(&self.stopband, fs), freq_words(self.transition, fs))
    }
}

impl BandEdges {
    /// For report.json: the edges in the units the user wrote (Hz with a
    /// sample rate, else fractions of Nyquist), and the stopband in words.
    pub fn to_json(&self, fs: Option<f64>) -> serde_json::Value {
        let scale = fs.map(|fs| fs / 2.0).unwrap_or(1.0);
        let pieces = |v: &[(f64, f64)]| -> Vec<[f64; 2]> { v.iter().map(|&(a, b)| [a * scale, b * scale]).collect() };
        serde_json::json!({
            "units": if fs.is_some() { "Hz" } else { "nyquist" },
            "taps": self.taps,
            "transition": self.transition * scale,
            "stopband": pieces(&self.stopband),
            "passband": pieces(&self.passband),
            "stopband_words": intervals_words(&self.stopband, fs),
        })
    }
}

/// Intervals of [0, 1] in words (`ν ≤ 0.1 or ν ≥ 0.6`), in Hz with a sample rate.
pub fn intervals_words(pieces: &[(f64, f64)], fs: Option<f64>) -> String {
    let parts: Vec<String> = pieces
        .iter()
        .filter(|(a, b)| a < b)
        .map(|&(a, b)| {
            let (f, lo, hi) = match fs {
                Some(fs) => ("f", freq_words(a, Some(fs)), freq_words(b, Some(fs))),
                None => ("ν", freq_words(a, None), freq_words(b, None)),
            };
            match (a <= 0.0, b >= 1.0) {
                (true, true) => format!("every frequency ({lo} ≤ {f} ≤ {hi})"),
                (true, false) => format!("{f} ≤ {hi}"),
                (false, true) => format!("{f} ≥ {lo}"),
                (false, false) => format!("{lo} ≤ {f} ≤ {hi}"),
            }
        })
        .collect();
    parts.join(" or ")
}

/// A normalised frequency (1 = Nyquist) as the user wrote it: in Hz with a sample rate.
pub fn freq_words(nu: f64, fs: Option<f64>) -> String {
    match fs {
        Some(fs) => format!("{} Hz", crate::language::diagnostic::fmt_num(nu * fs / 2.0)),
        None => crate::language::diagnostic::fmt_num(nu),
    }
}

impl BandSpec {
    /// Which band: a `BandSpec` is only ever made for a band family.
    pub fn shape(&self) -> Band {
        self.family.band().expect("a BandSpec is made for band families only")
    }

    /// The stopband for one kernel axis of length `k`.
    pub fn stopband(&self, k: usize) -> Stopband {
        let half = self.transition.unwrap_or_else(|| default_transition(k)) / 2.0;
        let clamp = |x: f64| x.clamp(0.0, 1.0);
        let pieces = match self.shape() {
            Band::Lowpass => [(clamp(self.low + half), 1.0), (1.0, 0.0)],
            Band::Highpass => [(0.0, clamp(self.low - half)), (1.0, 0.0)],
            Band::Bandpass => [(0.0, clamp(self.low - half)), (clamp(self.high + half), 1.0)],
            Band::Bandstop => [(clamp(self.low + half), clamp(self.high - half)), (1.0, 0.0)],
        };
        // A piece that is a single point holds no energy.
        let pieces = pieces.map(|(a, b)| if b - a <= 1e-12 { (1.0, 0.0) } else { (a, b) });
        Stopband { pieces }
    }

    /// The transition width in force on a kernel axis of `k` taps.
    pub fn transition_for(&self, k: usize) -> f64 {
        self.transition.unwrap_or_else(|| default_transition(k))
    }

    /// The edges this constraint really has on a kernel axis of `k` taps.
    pub fn edges(&self, k: usize) -> BandEdges {
        let transition = self.transition_for(k);
        let half = transition / 2.0;
        let pieces: Vec<(f64, f64)> = match self.shape() {
            Band::Lowpass => vec![(0.0, self.low - half)],
            Band::Highpass => vec![(self.low + half, 1.0)],
            Band::Bandpass => vec![(self.low + half, self.high - half)],
            Band::Bandstop => vec![(0.0, self.low - half), (self.high + half, 1.0)],
        };
        let passband = pieces.into_iter().map(|(a, b)| (a.clamp(0.0, 1.0), b.clamp(0.0, 1.0))).filter(|(a, b)| b - a > 1e-12).collect();
        BandEdges { taps: k, transition, stopband: self.stopband(k).intervals(), passband }
    }

    /// The passband as written (the cutoffs, before transitions), for overlap checks.
    pub fn passband(&self) -> Vec<(f64, f64)> {
        match self.shape() {
            Band::Lowpass => vec![(0.0, self.low)],
            Band::Highpass => vec![(self.low, 1.0)],
            Band::Bandpass => vec![(self.low, self.high)],
            Band::Bandstop => vec![(0.0, self.low), (self.high, 1.0)],
        }
    }

    /// The energy operator of the stopband along one axis: `hᵀSh` = stopband energy.
    fn stopband_operator_1d(&self, k: usize) -> DMatrix<f64> {
        let stop = self.stopband(k);
        let mut q = DMatrix::zeros(k, k);
        for (a, b) in stop.pieces {
            if a < b {
                // Energy in [a, b] = energy below b − energy below a.
                q += band_operator(k, b) - band_operator(k, a);
            }
        }
        q
    }

    /// The passband-side operator along one axis (`I − Q`), for the 2-D box.
    fn pass_operator_1d(&self, k: usize) -> DMatrix<f64> {
        DMatrix::identity(k, k) - self.stopband_operator_1d(k)
    }

    /// The stopband operator Q for a kernel of the given shape (`[k]` or
    /// `[kh, kw]`, flattened row-major). In 2-D the passband is the separable
    /// box: `Q₂ = I − P_h ⊗ P_w` with `P = I − Q` of each axis.
    pub fn stopband_operator(&self, dims: &[usize]) -> DMatrix<f64> {
        match dims {
            [k] => self.stopband_operator_1d(*k),
            [kh, kw] => {
                let pass = self.pass_operator_1d(*kh).kronecker(&self.pass_operator_1d(*kw));
                DMatrix::identity(kh * kw, kh * kw) - pass
            }
            _ => panic!("band constraints act on 1-D or 2-D kernels, not {dims:?}"),
        }
    }

    /// The smallest stopband energy ratio a kernel of this shape can have:
    /// `λ_min(Q)`.
    pub fn lambda_min(&self, dims: &[usize]) -> f64 {
        match dims {
            // Q₂ = I − P_h ⊗ P_w with P = I − Q positive semi-definite: the
            // eigenvalues of a Kronecker product are the products of the
            // factors', so λ_min(Q₂) = 1 − (1 − λ_min(Q_h))(1 − λ_min(Q_w)),
            // two small eigen-solves instead of one of size kh·kw.
            [kh, kw] => {
                let pass = |k: usize| 1.0 - smallest_eigenvalue(self.stopband_operator_1d(k));
                1.0 - pass(*kh) * pass(*kw)
            }
            _ => smallest_eigenvalue(self.stopband_operator(dims)),
        }
    }

    /// Every eigenvalue of the stopband operator Q for a kernel of this shape,
    /// ascending: the ρ of each direction of the kernel space. In 2-D (the
    /// separable box, `Q₂ = I − P_h ⊗ P_w`) they are `1 − (1 − λ_i)(1 − μ_j)`
    /// over the eigenvalues λ, μ of the two axes' operators.
    pub fn stopband_spectrum(&self, dims: &[usize]) -> Vec<f64> {
        let axis = |k: usize| -> Vec<f64> { SymmetricEigen::new(self.stopband_operator_1d(k)).eigenvalues.iter().copied().collect() };
        let mut all: Vec<f64> = match dims {
            [k] => axis(*k),
            [kh, kw] => {
                let (a, b) = (axis(*kh), axis(*kw));
                a.iter().flat_map(|x| b.iter().map(move |y| 1.0 - (1.0 - x) * (1.0 - y))).collect()
            }
            _ => panic!("band constraints act on 1-D or 2-D kernels, not {dims:?}"),
        };
        all.sort_by(f64::total_cmp);
        all
    }

    /// The dimension of the admissible subspace at `tol`: how many independent
    /// kernels have `ρ ≤ tol` (what `mode=project` and `mode=reparam` keep).
    pub fn admissible_dimension(&self, dims: &[usize], tol: f64) -> usize {
        crate::constraint::quadratic::admissible_dimension(&self.stopband_spectrum(dims), tol)
    }

    /// The designed filter `mode=freeze` sets (see [`design_kernel`]), or
    /// why there is none: a linear-phase filter of even length has zero gain
    /// at Nyquist, so it cannot be a high-pass or band-stop one.
    pub fn designed_kernel(&self, dims: &[usize]) -> Result<Vec<f64>, NoDesign> {
        let passes_nyquist = match self.shape() {
            Band::Highpass | Band::Bandstop => true,
            Band::Lowpass | Band::Bandpass => false,
        };
        if passes_nyquist && dims.iter().any(|k| k % 2 == 0) {
            let taps = dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×");
            return Err(NoDesign {
                reason: format!(
                    "mode=freeze designs a linear-phase filter, and one of even length ({taps} taps) has zero gain at Nyquist, so it cannot be a {} filter",
                    self.family.words()
                ),
                help: "use an odd kernel size (as scipy.signal.firwin requires for a filter that passes Nyquist)".into(),
            });
        }
        Ok(design_kernel(self, dims))
    }

    /// The shortest 1-D kernel (up to `limit` taps) whose `λ_min` is at most `tol`.
    pub fn min_taps(&self, tol: f64, from: usize, limit: usize) -> Option<usize> {
        min_taps_with(|k| self.lambda_min(&[k]), tol, from, limit)
    }
}

/// A Hamming-windowed sinc design, as `scipy.signal.firwin(k, cutoff)`:
/// `h[n] = w[n]·Σ_bands (b·sinc(b·m) − a·sinc(a·m))`, `m = n − (k−1)/2`, then
/// scaled to unit gain at the centre of its first passband (DC, Nyquist for a
/// high-pass, the band centre for a band-pass). A high-pass is the spectral
/// inversion δ[n − M] − (windowed low-pass), as firwin makes it (odd k).
pub fn design(spec: &BandSpec, k: usize) -> Vec<f64> {
    let mid = (k as f64 - 1.0) / 2.0;
    let window = |n: usize| if k == 1 { 1.0 } else { 0.54 - 0.46 * (2.0 * std::f64::consts::PI * n as f64 / (k as f64 - 1.0)).cos() };
    // Sum of ideal band-pass impulse responses over [a, b] pieces.
    let ideal = |pieces: &[(f64, f64)]| -> Vec<f64> {
        (0..k)
            .map(|n| {
                let m = n as f64 - mid;
                window(n) * pieces.iter().map(|&(a, b)| b * sinc(b * m) - a * sinc(a * m)).sum::<f64>()
            })
            .collect()
    };
    let gain_at =
        |h: &[f64], nu: f64| -> f64 { h.iter().enumerate().map(|(n, x)| x * (std::f64::consts::PI * nu * (n as f64 - mid)).cos()).sum() };
    let scaled = |h: Vec<f64>, nu: f64| -> Vec<f64> {
        let g = gain_at(&h, nu);
        h.into_iter().map(|x| x / g).collect()
    };
    match spec.shape() {
        Band::Lowpass => scaled(ideal(&[(0.0, spec.low)]), 0.0),
        // firwin's form: δ minus the unscaled windowed low-pass, unit gain at Nyquist.
        Band::Highpass => scaled(ideal(&[(spec.low, 1.0)]), 1.0),
        Band::Bandpass => scaled(ideal(&[(spec.low, spec.high)]), (spec.low + spec.high) / 2.0),
        Band::Bandstop => scaled(ideal(&[(0.0, spec.low), (spec.high, 1.0)]), 0.0),
    }
}

/// The designed filter for a kernel of shape `[k]` or `[kh, kw]` (the 2-D one
/// is the separable outer product, the box passband), flattened row-major.
pub fn design_kernel(spec: &BandSpec, dims: &[usize]) -> Vec<f64> {
    match dims {
        [k] => design(spec, *k),
        [kh, kw] => {
            let (a, b) = (design(spec, *kh), design(spec, *kw));
            a.iter().flat_map(|x| b.iter().map(move |y| x * y)).collect()
        }
        _ => panic!("designed filters are 1-D or 2-D, not {dims:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recurrence for `e^(−iπνn)` in [`magnitude_response`] against a
    /// sin and cos per tap, on a long kernel (its rounding grows with n).
    #[test]
    fn magnitude_response_matches_direct_evaluation() {
        let h: Vec<f64> = (0..511).map(|i| ((i * 7919) % 1000) as f64 / 1000.0 - 0.5).collect();
        for (nu, got) in magnitude_response(&h, 1024) {
            let (mut re, mut im) = (0.0, 0.0);
            for (n, x) in h.iter().enumerate() {
                let phase = std::f64::consts::PI * nu * n as f64;
                re += x * phase.cos();
                im -= x * phase.sin();
            }
            let want = (re * re + im * im).sqrt();
            assert!((got - want).abs() <= 1e-11 * (1.0 + want), "ν {nu}: {got} vs {want}");
        }
    }

    fn lowpass(cutoff: f64, transition: Option<f64>) -> BandSpec {
        BandSpec { family: Family::Lowpass, low: cutoff, high: cutoff, transition, fs: None }
    }

    #[test]
    fn band_operator_measures_energy_by_parseval() {
        // A unit impulse has a flat spectrum: the share below W is W.
        let k = band_operator(9, 0.3);
        let mut h = nalgebra::DVector::zeros(9);
        h[4] = 1.0;
        assert!(((h.transpose() * &k * &h)[0] - 0.3).abs() < 1e-12);
        // K(1) is the identity: all energy is below Nyquist.
        assert!((band_operator(5, 1.0) - DMatrix::identity(5, 5)).abs().max() < 1e-12);
    }

    #[test]
    fn notes_example_bound() {
        // docs: k = 15, low-pass with ν_s = 0.06 has λ_min ≈ 0.26; with ν_s = 0.62 far below 0.01.
        let narrow = lowpass(0.06, Some(0.0)).lambda_min(&[15]);
        assert!((narrow - 0.26).abs() < 0.01, "{narrow}");
        let wide = lowpass(0.62, Some(0.0)).lambda_min(&[15]);
        assert!(wide < 1e-6, "{wide}");
    }

    #[test]
    fn stopband_edges_move_by_half_the_transition() {
        let s = lowpass(0.2, Some(0.1)).stopband(15);
        assert!((s.pieces[0].0 - 0.25).abs() < 1e-12);
        let s = BandSpec { family: Family::Bandstop, low: 0.3, high: 0.32, transition: Some(0.1), fs: None }.stopband(15);
        assert!(s.is_empty());
    }

    #[test]
    fn eigenvalues_lie_in_unit_interval() {
        for family in [Family::Lowpass, Family::Highpass, Family::Bandpass, Family::Bandstop] {
            let spec = BandSpec { family, low: 0.2, high: 0.5, transition: None, fs: None };
            let eig = SymmetricEigen::new(spec.stopband_operator(&[11]));
            for &l in eig.eigenvalues.iter() {
                assert!((-1e-9..=1.0 + 1e-9).contains(&l), "{family:?} {l}");
            }
        }
    }

    #[test]
    fn two_d_lowpass_bound_is_one_minus_square_of_1d_concentration() {
        let spec = lowpass(0.3, Some(0.0));
        let one_d = spec.lambda_min(&[5]);
        let two_d = spec.lambda_min(&[5, 5]);
        // λ_min(I − K⊗K) = 1 − λ_max(K)² and λ_max(K) = 1 − λ_min(I − K).
        assert!((two_d - (1.0 - (1.0 - one_d).powi(2))).abs() < 1e-9);
    }

    #[test]
    fn edges_follow_the_default_transition() {
        // k = 15: transition 6.6/15 = 0.44. A low-pass at 0.2 stops ν ≥ 0.42 and
        // has no passband left (0.2 − 0.22 < 0).
        let e = lowpass(0.2, None).edges(15);
        assert!((e.transition - 0.44).abs() < 1e-12);
        assert_eq!(e.stopband.len(), 1);
        assert!((e.stopband[0].0 - 0.42).abs() < 1e-12 && e.stopband[0].1 == 1.0);
        assert!(e.passband.is_empty());
        // k = 63 band-pass (0.1, 0.4): stopband ν ≤ 0.1 − 3.3/63, ν ≥ 0.4 + 3.3/63.
        let spec = BandSpec { family: Family::Bandpass, low: 0.1, high: 0.4, transition: None, fs: None };
        let e = spec.edges(63);
        let half = 3.3 / 63.0;
        assert_eq!(e.stopband.len(), 2);
        assert!((e.stopband[0].1 - (0.1 - half)).abs() < 1e-12 && (e.stopband[1].0 - (0.4 + half)).abs() < 1e-12);
        assert!((e.passband[0].0 - (0.1 + half)).abs() < 1e-12 && (e.passband[0].1 - (0.4 - half)).abs() < 1e-12);
        // GunPoint's band-pass (0.02, 0.5) on 9 taps: the lower stopband is clamped away.
        let gun = BandSpec { family: Family::Bandpass, low: 0.02, high: 0.5, transition: None, fs: None }.edges(9);
        assert_eq!(gun.stopband.len(), 1);
        assert!((gun.stopband[0].0 - (0.5 + 3.3 / 9.0)).abs() < 1e-12);
        // In Hz for the report: an ECG low-pass at 40 Hz, fs = 360, k = 31.
        let ecg = BandSpec { family: Family::Lowpass, low: 40.0 / 180.0, high: 40.0 / 180.0, transition: None, fs: Some(360.0) };
        let json = ecg.edges(31).to_json(ecg.fs);
        let from = json["stopband"][0][0].as_f64().unwrap();
        assert!((from - (40.0 + 180.0 * 3.3 / 31.0)).abs() < 1e-9, "{json}");
        assert_eq!(json["units"], "Hz");
    }

    #[test]
    fn admissible_dimension_of_the_digits_3x3_lowpass() {
        // numpy: eigenvalues of I − K(0.7) on 3 taps, then 1 − (1−λi)(1−λj):
        // 0.00741869, 0.15179854 (twice), 0.27517705, 0.74858689, …
        let spec = lowpass(0.5, Some(0.4));
        let s = spec.stopband_spectrum(&[3, 3]);
        for (got, want) in s.iter().zip([0.00741869, 0.15179854, 0.15179854, 0.27517705, 0.74858689]) {
            assert!((got - want).abs() < 1e-7, "{s:?}");
        }
        assert_eq!(spec.admissible_dimension(&[3, 3], 0.05), 1);
        // ν_s = 0.8: 0.00095043, 0.04908686 (twice), 0.09490398 → 4 at tol 0.1.
        assert_eq!(lowpass(0.6, Some(0.4)).admissible_dimension(&[3, 3], 0.1), 4);
        // 1-D: the count matches the full eigen-solve of Q.
        let one = lowpass(0.2, None);
        let full = SymmetricEigen::new(one.stopband_operator(&[15])).eigenvalues.iter().filter(|&&l| l <= 0.01).count();
        assert_eq!(one.admissible_dimension(&[15], 0.01), full);
    }

    #[test]
    fn min_taps_is_the_first_feasible_length() {
        let spec = lowpass(0.06, Some(0.0));
        let k = spec.min_taps(0.01, 15, 512).unwrap();
        assert!(spec.lambda_min(&[k]) <= 0.01);
        assert!(spec.lambda_min(&[k - 1]) > 0.01);
    }
}

/// The bands as a quadratic family: Q is the stopband's energy operator.
impl crate::constraint::quadratic::Operator for BandSpec {
    fn operator(&self, dims: &[usize]) -> DMatrix<f64> {
        self.stopband_operator(dims)
    }

    fn lambda_min(&self, dims: &[usize]) -> f64 {
        BandSpec::lambda_min(self, dims)
    }

    fn spectrum(&self, dims: &[usize]) -> Vec<f64> {
        self.stopband_spectrum(dims)
    }

    fn designed_kernel(&self, dims: &[usize]) -> Result<Vec<f64>, NoDesign> {
        BandSpec::designed_kernel(self, dims)
    }

    fn ratio_words(&self, dims: &[usize]) -> RatioWords {
        RatioWords {
            region: format!("the stopband {}", self.stopband(dims[0]).describe(self.fs)),
            measure: "stopband energy",
            operator: "the stopband operator",
            relax: "widen the band",
            design: "a Hamming-windowed design of this length cannot do better (a wider transition can)",
        }
    }

    fn loosen_words(&self) -> &'static str {
        "a wider band or a narrower transition raises it too"
    }

    fn key(&self) -> Vec<u64> {
        vec![0, self.family as u64, self.low.to_bits(), self.high.to_bits(), self.transition.unwrap_or(-1.0).to_bits()]
    }

    fn band(&self) -> Option<&BandSpec> {
        Some(self)
    }
}

/// `|H(ν)|` of a 1-D kernel on `points` frequencies evenly spread over
/// `[0, 1]` (Nyquist units), by direct evaluation of `Σ h[n]·e^(−iπνn)`.
pub fn magnitude_response(h: &[f64], points: usize) -> Vec<(f64, f64)> {
    (0..points)
        .map(|i| {
            let nu = i as f64 / (points - 1) as f64;
            // e^(−iπνn) by repeated multiplication with e^(−iπν): one sin/cos
            // per frequency instead of one per tap (the report evaluates every
            // kernel every epoch); the rounding grows like n·ε, far below what
            // the figures show.
            let (step_sin, step_cos) = (std::f64::consts::PI * nu).sin_cos();
            let (mut c, mut s) = (1.0, 0.0);
            let (mut re, mut im) = (0.0, 0.0);
            for x in h {
                re += x * c;
                im -= x * s;
                (c, s) = (c * step_cos - s * step_sin, s * step_cos + c * step_sin);
            }
            (nu, (re * re + im * im).sqrt())
        })
        .collect()
}

/// Points of the dense grid the response figures are read off: `ν = i/1023`,
/// `i = 0..1024`, over `[0, 1]` (the bins of a 2046-point real FFT).
pub const FIGURE_GRID: usize = 1024;

/// Figures of one kernel against a band spec, read off `|H|` on the dense
/// grid [`FIGURE_GRID`] (tests/reference/response_figures.py computes the same
/// with numpy's FFT).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ResponseFigures {
    /// `20·log10(max |H| over the stopband / max |H| over the passband as
    /// written)`: the passband is the cutoffs' band, *not* trimmed by the
    /// transition, so it is never empty (`[0, cutoff]` for a low-pass);
    /// negative when the stopband is below the passband's peak. `None` when
    /// the stopband holds no grid point or the passband's peak is 0 (a zero
    /// kernel). If no grid point falls inside a (very narrow) written
    /// passband, the reference is the peak over the whole band.
    pub stopband_gain_db: Option<f64>,
    /// `20·log10(max |H| / min |H|)` over the passband trimmed by half a
    /// transition at each inner edge (the part clear of the transition
    /// bands). `None` when nothing is left of it: the kernel is too short for
    /// its band (a low-pass with cutoff ≤ Δ/2, Δ = 6.6/k by default, as for
    /// k = 15, cutoff = 0.2), and a ripple over the transition band would only
    /// measure the roll-off; `None` also for a zero kernel. Infinite (null in
    /// report.json) only if |H| is exactly 0 at a grid point inside it.
    pub passband_ripple_db: Option<f64>,
    /// `Σ h`: the gain at frequency 0.
    pub dc_gain: f64,
}

impl BandSpec {
    /// Whether `nu` is inside the passband with half a transition of margin.
    fn in_passband(&self, nu: f64, k: usize) -> bool {
        let half = self.transition.unwrap_or_else(|| default_transition(k)) / 2.0;
        self.passband().iter().any(|&(a, b)| nu >= (a + if a > 0.0 { half } else { 0.0 }) && nu <= (b - if b < 1.0 { half } else { 0.0 }))
    }

    pub fn figures(&self, h: &[f64]) -> ResponseFigures {
        let k = h.len();
        let stop = self.stopband(k);
        let response = magnitude_response(h, FIGURE_GRID);
        let db = |x: f64| 20.0 * x.log10();
        let peak = |m: &mut dyn Iterator<Item = f64>| m.fold(None, |best: Option<f64>, x| Some(best.map_or(x, |b| b.max(x))));
        let written = self.passband();
        let in_written = |nu: f64| written.iter().any(|&(a, b)| nu >= a && nu <= b);
        let reference = peak(&mut response.iter().filter(|(nu, _)| in_written(*nu)).map(|(_, m)| *m))
            .or_else(|| peak(&mut response.iter().map(|(_, m)| *m)))
            .filter(|r| *r > 0.0);
        let stop_max = peak(&mut response.iter().filter(|(nu, _)| stop.pieces.iter().any(|&(a, b)| *nu >= a && *nu <= b)).map(|(_, m)| *m));
        let trimmed: Vec<f64> = response.iter().filter(|(nu, _)| self.in_passband(*nu, k)).map(|(_, m)| *m).collect();
        let (hi, lo) = trimmed.iter().fold((0.0f64, f64::INFINITY), |(hi, lo), &m| (hi.max(m), lo.min(m)));
        let ripple = (hi > 0.0).then(|| db(hi) - db(lo));
        ResponseFigures {
            stopband_gain_db: match (stop_max, reference) {
                (Some(s), Some(r)) => Some(db(s) - db(r)),
                _ => None,
            },
            passband_ripple_db: ripple,
            dc_gain: h.iter().sum(),
        }
    }
}

/// `|H(ν1, ν2)|` of a 2-D kernel (`kh × kw`, row-major) at the centres of a
/// `cells × cells` grid over `[−1, 1]²` (Nyquist units), by direct
/// evaluation of `Σ h[m, n]·e^(−iπ(ν1·m + ν2·n))`: `(ν1, ν2, |H|)`.
pub fn magnitude_response_2d(h: &[f64], kh: usize, kw: usize, cells: usize) -> Vec<(f64, f64, f64)> {
    let centre = |i: usize| -1.0 + (2 * i + 1) as f64 / cells as f64;
    let mut out = Vec::with_capacity(cells * cells);
    for i in 0..cells {
        for j in 0..cells {
            let (n1, n2) = (centre(i), centre(j));
            let (mut re, mut im) = (0.0, 0.0);
            for m in 0..kh {
                for n in 0..kw {
                    let phase = std::f64::consts::PI * (n1 * m as f64 + n2 * n as f64);
                    re += h[m * kw + n] * phase.cos();
                    im -= h[m * kw + n] * phase.sin();
                }
            }
            out.push((n1, n2, (re * re + im * im).sqrt()));
        }
    }
    out
}
