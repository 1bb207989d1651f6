//! Whether the hard constraints of one layer (mode=project or mode=reparam)
//! leave any weight at all, or any weight but zero. Training would otherwise
//! run, exit 0 and leave the layer at zero (`@nonneg @highpass(0.5)`) or
//! alternate between sets that never meet (`@unitnorm @maxnorm(0.5)`).
//!
//! What is decided, per kernel `h` of `taps` values (every kernel of a layer
//! is constrained alike) and per output unit (the norms):
//!
//! - Linear subspaces, exactly: a band's admissible subspace (the
//!   eigenvectors of its Q with eigenvalue ≤ tol, what the lowering projects
//!   onto), `@symmetric`, `@antisymmetric` and `@dc_gain(0)`. Their
//!   intersection `L` is the null space of `Σ(I − Pᵢ)`, computed as the
//!   reparametrization does (eigenvalues ≤ 1e-9); dimension 0 leaves only 0.
//! - `@dc_gain(v ≠ 0)` is the affine set `L ∩ {Σh = v}`: empty exactly when
//!   every kernel of `L` sums to 0 (`P_L 1 = 0`).
//! - `@nonneg` (a cone): `L ∩ {h ≥ 0} = {0}` exactly when some vector
//!   orthogonal to `L` is strictly positive (Stiemke's alternative). We look
//!   for such a vector by alternating projections between `L^⊥` and
//!   `{z ≥ 1}`; one found is a proof, so the error is never a false one. Not
//!   finding one within the iterations is taken as feasible: conservative,
//!   a rare infeasible set may pass here (the end-of-training check then
//!   reports it). With `@dc_gain(v)`: v < 0 is empty, v = 0 leaves only 0.
//! - Norm balls per output unit: `@unitnorm` with `@maxnorm(c)`, c < 1, is
//!   empty; the smallest norm of a kernel of `L` summing to v is
//!   `|v| / ‖P_L 1‖` (`|v|/√taps` without other subspaces), so a unit of
//!   `n` kernels has norm at least `√n·|v| / ‖P_L 1‖`, against `@maxnorm(c)`
//!   and `@unitnorm` (a lower bound when `@nonneg` also holds: conservative).
//!   `@orthogonal` fixes every singular value at 1 (rows or columns
//!   orthonormal), against `@lipschitz(c < 1)`, `@maxnorm` and `@unitnorm`.
//!
//! Plain `f64` maths (nalgebra), no tensors.

use nalgebra::{DMatrix, DVector};

use crate::constraint::SetSpec;
use crate::constraint::quadratic;
use crate::language::ast::Span;
use crate::language::diagnostic::fmt_num;
use crate::language::ir::Constraint;
use crate::language::schema::Family;

/// Kernels longer than this skip the cone test (each iteration is a
/// taps×taps product): conservative.
const MAX_CONE_TAPS: usize = 256;

/// Alternating-projection sweeps spent looking for a positive vector
/// orthogonal to the subspace.
const CONE_SWEEPS: usize = 500;

/// An eigenvalue of `Σ(I − Pᵢ)` at most this is taken as 0 (as the
/// reparametrization's composed subspace does).
const NULL_TOL: f64 = 1e-9;

/// What a layer's weight looks like to the norm constraints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Units {
    /// Output units (rows): conv output channels, linear out features.
    pub count: usize,
    /// Weights per unit: in/groups·taps for a conv, in features for a linear.
    pub width: usize,
}

/// A set of hard constraints that cannot hold together.
#[derive(Clone, Debug, PartialEq)]
pub struct Infeasible {
    /// The constraints involved (their annotation spans).
    pub spans: Vec<Span>,
    /// Their names, `@nonneg`, `@highpass`.
    pub names: Vec<String>,
    /// True when the set is empty; false when it holds only the zero weight.
    pub empty: bool,
    pub reason: String,
}

fn is_hard(c: &Constraint) -> bool {
    c.mode.keeps_weight_in_set()
}

/// The first set of this layer's hard constraints that cannot hold together.
/// `kernel` is the conv kernel shape (None for a linear layer).
pub fn check(constraints: &[&Constraint], kernel: Option<&[usize]>, units: Option<Units>) -> Option<Infeasible> {
    let hard: Vec<&Constraint> = constraints.iter().copied().filter(|c| is_hard(c)).collect();
    if hard.len() < 2 {
        return None;
    }
    if let Some(found) = norm_conflicts(&hard, units) {
        return Some(found);
    }
    let kernel = kernel?;
    let taps: usize = kernel.iter().product();
    if taps == 0 {
        return None;
    }
    let meet = Intersection::of(&hard, kernel, taps)?;
    subspace_conflicts(&meet, taps)
        .or_else(|| cone_conflicts(&hard, &meet, taps))
        .or_else(|| gain_norm_conflicts(&hard, &meet, taps, units))
}

/// The hard constraint of a family, if the layer has one.
fn find<'a>(hard: &[&'a Constraint], family: Family) -> Option<&'a Constraint> {
    hard.iter().copied().find(|c| c.family == family)
}

fn found(members: &[&Constraint], empty: bool, reason: String) -> Infeasible {
    Infeasible {
        spans: members.iter().map(|c| c.span).collect(),
        names: members.iter().map(|c| format!("@{}", c.family.name())).collect(),
        empty,
        reason,
    }
}

/// Norm balls, spheres and orthogonality that do not meet, whatever the kernel.
fn norm_conflicts(hard: &[&Constraint], units: Option<Units>) -> Option<Infeasible> {
    let find = |family: Family| find(hard, family);
    if let (Some(unit), Some(max)) = (find(Family::UnitNorm), find(Family::MaxNorm)) {
        let c = bound(max);
        if c < 1.0 {
            return Some(found(&[unit, max], true, format!("every output unit's weights must have norm 1, and at most {}", fmt_num(c))));
        }
    }
    if let (Some(ortho), Some(units)) = (find(Family::Orthogonal), units) {
        // Orthonormal rows (out ≤ in) or columns: every singular value is 1,
        // and the rows' squared norms sum to min(out, in).
        let (out, inp) = (units.count as f64, units.width as f64);
        if let Some(lip) = find(Family::Lipschitz).filter(|l| bound(l) < 1.0) {
            return Some(found(
                &[ortho, lip],
                true,
                format!("an orthogonal weight has spectral norm 1, above the bound {}", fmt_num(bound(lip))),
            ));
        }
        let smallest_max_row = if out <= inp { 1.0 } else { (inp / out).sqrt() };
        if let Some(max) = find(Family::MaxNorm).filter(|m| bound(m) < smallest_max_row - 1e-12) {
            return Some(found(
                &[ortho, max],
                true,
                format!(
                    "an orthogonal {}×{} weight has a row of norm at least {}, above the bound {}",
                    units.count,
                    units.width,
                    fmt_num(smallest_max_row),
                    fmt_num(bound(max))
                ),
            ));
        }
        if let Some(unit) = find(Family::UnitNorm).filter(|_| out > inp) {
            return Some(found(
                &[ortho, unit],
                true,
                format!(
                    "an orthogonal {}×{} weight has orthonormal columns, so its rows' squared norms sum to {}, not to {} as {} unit rows would",
                    units.count, units.width, units.width, units.count, units.count
                ),
            ));
        }
    }
    if let (Some(unit), Some(lip)) = (find(Family::UnitNorm), find(Family::Lipschitz)) {
        let c = bound(lip);
        if c < 1.0 {
            return Some(found(
                &[unit, lip],
                true,
                format!("a weight with rows of norm 1 has spectral norm at least 1, above the bound {}", fmt_num(c)),
            ));
        }
    }

    None
}

/// The linear parts of the hard constraints (subspaces through 0), their
/// intersection `L`, and the DC gain an affine one asks for.
struct Intersection<'a> {
    linear: Vec<(&'a Constraint, DMatrix<f64>)>,
    gain: Option<(&'a Constraint, f64)>,
    /// An orthonormal basis of `L`.
    basis: DMatrix<f64>,
    /// `‖P_L 1‖`: the part of a constant kernel `L` allows; it bounds DC gains.
    dc_reach: f64,
}

impl<'a> Intersection<'a> {
    /// None when a quadratic set was not checked through (an error was
    /// reported): no verdict.
    fn of(hard: &[&'a Constraint], kernel: &[usize], taps: usize) -> Option<Intersection<'a>> {
        let mut linear: Vec<(&Constraint, DMatrix<f64>)> = Vec::new();
        let mut gain: Option<(&Constraint, f64)> = None;
        for &c in hard {
            // A quadratic set not checked through (an error was reported): no verdict.
            if c.set.quadratic().is_some_and(|q| q.lambda_min.is_none()) {
                return None;
            }
            // Cones and balls are not linear subspaces: judged below.
            let Some((projector, dc)) = c.set.geometry(kernel).linear_part(taps, c.tol) else { continue };
            match dc {
                Some(v) if v != 0.0 => gain = Some((c, v)),
                // `Σh = 0` is a subspace.
                Some(_) | None => linear.push((c, projector)),
            }
        }
        let eye = DMatrix::<f64>::identity(taps, taps);
        let mut directions = DMatrix::zeros(taps, taps);
        for (_, p) in &linear {
            directions += &eye - p;
        }
        let basis = quadratic::admissible_basis(&directions, NULL_TOL);
        let ones = DVector::from_element(taps, 1.0);
        let dc_reach = (&basis * (basis.transpose() * &ones)).norm();
        Some(Intersection { linear, gain, basis, dc_reach })
    }

    /// The constraints whose subspaces meet in `L`.
    fn members(&self) -> Vec<&'a Constraint> {
        self.linear.iter().map(|(c, _)| *c).collect()
    }
}

/// Subspaces that meet only at 0, or only in kernels that sum to 0 against a DC gain.
fn subspace_conflicts(meet: &Intersection, taps: usize) -> Option<Infeasible> {
    let (linear, gain, members) = (&meet.linear, meet.gain, meet.members());
    let dims_words =
        || linear.iter().map(|(c, p)| format!("`@{}` keeps {} of {taps}", c.family.name(), rank(p))).collect::<Vec<_>>().join(", ");
    if linear.len() >= 2 && meet.basis.ncols() == 0 {
        return Some(found(
            &members,
            gain.is_some(),
            format!("their subspaces meet only at the zero kernel ({}; together 0 dimensions)", dims_words()),
        ));
    }
    if let Some((dc, v)) = gain
        && !linear.is_empty()
        && meet.dc_reach < 1e-9 * (taps as f64).sqrt()
    {
        let mut all = members.clone();
        all.push(dc);
        return Some(found(&all, true, format!("every kernel their subspace allows sums to 0, so none has a DC gain of {}", fmt_num(v))));
    }
    None
}

/// `@nonneg` (a cone) against a DC gain and against the subspace `L`.
fn cone_conflicts(hard: &[&Constraint], meet: &Intersection, taps: usize) -> Option<Infeasible> {
    let (linear, gain, basis, members) = (&meet.linear, meet.gain, &meet.basis, meet.members());
    let in_subspace = basis.ncols();
    let find = |family: Family| find(hard, family);
    if let Some(nonneg) = find(Family::Nonneg) {
        if let Some((dc, v)) = gain
            && v < 0.0
        {
            return Some(found(&[nonneg, dc], true, format!("non-negative taps sum to 0 or more, never to {}", fmt_num(v))));
        }
        if let Some(dc) = hard.iter().copied().find(|c| c.family == Family::DcGain && c.value() == Some(0.0)) {
            return Some(found(&[nonneg, dc], false, "the only kernel with non-negative taps that sum to 0 is the zero kernel".into()));
        }
        if !linear.is_empty() && taps <= MAX_CONE_TAPS && positive_orthogonal(basis, taps) {
            let mut all = vec![nonneg];
            all.extend(members.iter().copied());
            if let Some((dc, _)) = gain {
                all.push(dc);
            }
            let proof = format!(
                "no kernel of their {in_subspace}-dimensional subspace but 0 has only non-negative taps (a strictly positive vector is orthogonal to all of it)"
            );
            let reason = if members.iter().any(|c| matches!(c.family, Family::Highpass | Family::Bandpass)) {
                format!(
                    "a kernel with no negative tap has its largest gain at DC (|H(ν)| ≤ Σh = H(0)), which the band puts in its stopband: {proof}"
                )
            } else {
                proof
            };
            return Some(found(&all, gain.is_some(), reason));
        }
    }

    None
}

/// The smallest norm a unit can have when its kernels must sum to v,
/// against `@maxnorm` and `@unitnorm`.
fn gain_norm_conflicts(hard: &[&Constraint], meet: &Intersection, taps: usize, units: Option<Units>) -> Option<Infeasible> {
    let (linear, gain, dc_reach, members) = (&meet.linear, meet.gain, meet.dc_reach, meet.members());
    let find = |family: Family| find(hard, family);
    if let (Some((dc, v)), Some(units)) = (gain, units) {
        let kernels_per_unit = (units.width / taps).max(1) as f64;
        let reach = if linear.is_empty() { (taps as f64).sqrt() } else { dc_reach };
        let least = kernels_per_unit.sqrt() * v.abs() / reach;
        let per_kernel = v.abs() / reach;
        let kernel_words = if linear.is_empty() {
            format!("|{}|/√{taps} = {}", fmt_num(v), fmt_num(per_kernel))
        } else {
            format!("{} within the other constraints' subspace", fmt_num(per_kernel))
        };
        let unit_words = if kernels_per_unit > 1.0 {
            format!(", and an output unit of {} kernels at least {}", kernels_per_unit, fmt_num(least))
        } else {
            String::new()
        };
        if let Some(max) = find(Family::MaxNorm).filter(|m| least > bound(m) * (1.0 + 1e-9)) {
            let mut all = vec![dc, max];
            all.extend(members.iter().copied());
            return Some(found(
                &all,
                true,
                format!(
                    "a kernel of {taps} taps summing to {} has norm at least {kernel_words}{unit_words}, above the bound {}",
                    fmt_num(v),
                    fmt_num(bound(max))
                ),
            ));
        }
        if let Some(unit) = find(Family::UnitNorm).filter(|_| least > 1.0 + 1e-9) {
            let mut all = vec![dc, unit];
            all.extend(members.iter().copied());
            return Some(found(
                &all,
                true,
                format!("a kernel of {taps} taps summing to {} has norm at least {kernel_words}{unit_words}, above 1", fmt_num(v)),
            ));
        }
    }
    None
}

/// The bound of `@maxnorm(max)` or `@lipschitz(max)` (none for the others).
fn bound(c: &Constraint) -> f64 {
    match c.set {
        SetSpec::MaxNorm { max } | SetSpec::Lipschitz { max } => max,
        SetSpec::Quadratic(_)
        | SetSpec::Mirror { .. }
        | SetSpec::DcGain { .. }
        | SetSpec::Nonneg
        | SetSpec::UnitNorm
        | SetSpec::Orthogonal => f64::INFINITY,
    }
}

/// The rank of a projector (its trace).
fn rank(p: &DMatrix<f64>) -> usize {
    p.trace().round() as usize
}

/// Whether some strictly positive vector is orthogonal to span(basis): then
/// the subspace holds no non-zero non-negative kernel (Stiemke). Alternating
/// projections between the orthogonal complement and `{z ≥ 1}`; a vector is
/// accepted only when, projected exactly onto the complement, its smallest
/// entry is clearly positive, so an answer of true is a proof.
fn positive_orthogonal(basis: &DMatrix<f64>, taps: usize) -> bool {
    let complement = |y: &DVector<f64>| -> DVector<f64> { y - basis * (basis.transpose() * y) };
    let mut y = DVector::from_element(taps, 1.0);
    for _ in 0..CONE_SWEEPS {
        let z = complement(&y);
        let scale = z.amax();
        if scale > 0.0 && z.min() > 1e-6 * scale {
            return true;
        }
        y = z.map(|x| x.max(1.0));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constraint::bands::BandSpec;
    use crate::language::schema::Mode;

    fn band(family: Family, low: f64, high: f64, k: usize) -> Constraint {
        let spec = BandSpec { family, low, high, transition: None, fs: None };
        let mut set = SetSpec::read(family, |_| None, || Some(spec)).expect("a band");
        if let SetSpec::Quadratic(q) = &mut set {
            q.lambda_min = Some(spec.lambda_min(&[k]));
            q.edges = vec![spec.edges(k)];
        }
        Constraint { family, mode: Mode::Project, weight: 1.0, tol: 0.01, dual_lr: 1.0, set, span: Span::default() }
    }

    fn exact(family: Family, value: Option<f64>) -> Constraint {
        let set = SetSpec::read(family, |_| value, || None).expect("an exact family");
        Constraint { family, mode: Mode::Project, weight: 1.0, tol: 1e-3, dual_lr: 1.0, set, span: Span::default() }
    }

    fn units(k: usize) -> Option<Units> {
        Some(Units { count: 8, width: k })
    }

    #[test]
    fn nonneg_with_highpass_leaves_only_zero() {
        for k in [9, 15, 31] {
            let (n, h) = (exact(Family::Nonneg, None), band(Family::Highpass, 0.5, 0.5, k));
            let found = check(&[&n, &h], Some(&[k]), units(k)).expect("infeasible");
            assert!(!found.empty && found.names == ["@nonneg", "@highpass"], "{found:?}");
        }
    }

    #[test]
    fn feasible_combinations_pass() {
        let k = 15;
        let cases: Vec<Vec<Constraint>> = vec![
            vec![exact(Family::Nonneg, None), band(Family::Lowpass, 0.3, 0.3, k)],
            vec![exact(Family::DcGain, Some(1.0)), band(Family::Lowpass, 0.3, 0.3, k)],
            vec![exact(Family::Symmetric, None), band(Family::Lowpass, 0.3, 0.3, k)],
            vec![exact(Family::Symmetric, None), band(Family::Highpass, 0.5, 0.5, k)],
            vec![exact(Family::Nonneg, None), exact(Family::DcGain, Some(1.0)), exact(Family::MaxNorm, Some(0.3))],
            vec![exact(Family::UnitNorm, None), exact(Family::MaxNorm, Some(1.0))],
            vec![exact(Family::Nonneg, None), exact(Family::Symmetric, None), band(Family::Lowpass, 0.3, 0.3, k)],
            vec![exact(Family::DcGain, Some(0.0)), band(Family::Highpass, 0.5, 0.5, k)],
        ];
        for set in &cases {
            let refs: Vec<&Constraint> = set.iter().collect();
            assert_eq!(check(&refs, Some(&[k]), units(k)), None, "{:?}", set.iter().map(|c| c.family).collect::<Vec<_>>());
        }
    }

    #[test]
    fn norm_balls_that_do_not_meet() {
        let (u, m) = (exact(Family::UnitNorm, None), exact(Family::MaxNorm, Some(0.5)));
        assert!(check(&[&u, &m], Some(&[5]), units(5)).unwrap().empty);
        // Σh = 1 on 15 taps: norm ≥ 1/√15 = 0.258 > 0.01.
        let (d, n, m) = (exact(Family::DcGain, Some(1.0)), exact(Family::Nonneg, None), exact(Family::MaxNorm, Some(0.01)));
        let found = check(&[&d, &n, &m], Some(&[15]), units(15)).unwrap();
        assert!(found.empty && found.reason.contains("0.2582"), "{found:?}");
        // 1/√15 = 0.258199: just below the bound it is empty, just above feasible.
        let m = exact(Family::MaxNorm, Some(0.2581));
        assert!(check(&[&d, &m], Some(&[15]), units(15)).is_some());
        let m = exact(Family::MaxNorm, Some(0.2583));
        assert!(check(&[&d, &m], Some(&[15]), units(15)).is_none());
        // Four input kernels per unit: √4·0.258 = 0.516.
        let m = exact(Family::MaxNorm, Some(0.5));
        assert!(check(&[&d, &m], Some(&[15]), Some(Units { count: 8, width: 60 })).is_some());
        // Orthogonal 6×4 (columns orthonormal): rows of norm ≥ √(4/6).
        let (o, m) = (exact(Family::Orthogonal, None), exact(Family::MaxNorm, Some(0.8)));
        assert!(check(&[&o, &m], None, Some(Units { count: 6, width: 4 })).is_some());
        let m = exact(Family::MaxNorm, Some(0.82));
        assert!(check(&[&o, &m], None, Some(Units { count: 6, width: 4 })).is_none());
    }

    #[test]
    fn dc_gain_against_nonneg_and_subspaces() {
        let (n, d) = (exact(Family::Nonneg, None), exact(Family::DcGain, Some(-1.0)));
        assert!(check(&[&n, &d], Some(&[9]), units(9)).unwrap().empty);
        let d0 = exact(Family::DcGain, Some(0.0));
        assert!(!check(&[&n, &d0], Some(&[9]), units(9)).unwrap().empty);
        // Every antisymmetric kernel sums to 0: none has a DC gain of 1.
        let (d1, a) = (exact(Family::DcGain, Some(1.0)), exact(Family::Antisymmetric, None));
        assert!(check(&[&d1, &a], Some(&[15]), units(15)).unwrap().empty);
        // A high-pass subspace at tol 0.01 still holds kernels with a DC gain of
        // 1 (numpy: ‖P_L 1‖ = 0.131 for k = 15, cutoff 0.5), of norm ≥ 1/0.131.
        let h = band(Family::Highpass, 0.5, 0.5, 15);
        assert_eq!(check(&[&d1, &h], Some(&[15]), units(15)), None);
        let m = exact(Family::MaxNorm, Some(7.0));
        let found = check(&[&d1, &h, &m], Some(&[15]), units(15)).expect("norm ≥ 7.64 > 7");
        assert!(found.reason.contains("7.63") || found.reason.contains("7.64"), "{found:?}");
    }

    #[test]
    fn soft_modes_are_not_checked() {
        let mut n = exact(Family::Nonneg, None);
        n.mode = Mode::Penalty;
        let h = band(Family::Highpass, 0.5, 0.5, 15);
        assert_eq!(check(&[&n, &h], Some(&[15]), units(15)), None);
    }
}
