//! The figures of `lpnc response`: every band-constrained layer's kernels and
//! their stopband energy ratios ρ, from a weights file, and the run's report
//! next to it (ρ per epoch). The CLI draws them (`src/cli/plot.rs`); the
//! library writes no file.
//!
//! A 1-D layer is drawn as |H(ν)| of up to [`MAX_KERNELS`] kernels (those with
//! the largest ρ); a 2-D layer as a heat map of |H(ν1, ν2)| over the whole
//! frequency plane for its kernel with the largest ρ, the separable box
//! passband outlined. The weights file is validated against the model first
//! (`model::validate_weights`), as `lpnc eval` does.

use std::path::Path;

use crate::language::ir::{Constraint, Program};
use crate::model::params::{self, Kind, ParamName};
use crate::model::{LowerError, Net, ops, validate_weights};
use crate::train::Report;

/// Kernels drawn per 1-D layer (the rest would only blacken the plot); the
/// plot and `lpnc response` say so when a layer has more.
pub const MAX_KERNELS: usize = 24;

pub struct Panel {
    pub layer: String,
    pub constraint: Constraint,
    /// One kernel's shape: `[k]` or `[kh, kw]`.
    pub shape: Vec<usize>,
    /// Every kernel's taps (row-major for 2-D), the largest ρ first.
    pub kernels: Vec<Vec<f64>>,
    /// Each kernel's stopband energy ratio ρ, in the order of `kernels`.
    pub rhos: Vec<f64>,
}

impl Panel {
    pub fn is_2d(&self) -> bool {
        self.shape.len() == 2
    }

    /// How many kernels the plot draws: up to [`MAX_KERNELS`] in 1-D, the
    /// worst one in 2-D (one heat map).
    pub fn shown(&self) -> usize {
        if self.is_2d() { self.kernels.len().min(1) } else { self.kernels.len().min(MAX_KERNELS) }
    }

    /// "showing 24 of 64 kernels (largest ρ first)" when not every kernel is drawn.
    pub fn cap_note(&self) -> Option<String> {
        (self.shown() < self.kernels.len()).then(|| {
            let which = if self.is_2d() { "the one with the largest ρ" } else { "those with the largest ρ" };
            format!("showing {} of {} kernels ({which})", self.shown(), self.kernels.len())
        })
    }
}

/// The band-constrained layers of a program with their kernels from a weights
/// file, after checking that the file fits the model: every tensor present
/// with its shape, none of another model, every value finite.
pub fn panels(program: &Program, weights: &Path) -> Result<Vec<Panel>, String> {
    let tensors = params::read(weights, params::Source::WeightsFile).map_err(|e| e.to_string())?;
    let net = Net::new(&program.model, 0, ops::TRAIN_DTYPE).map_err(|e| e.to_string())?;
    let expected = net.expected_tensors().map_err(|e| LowerError::from(e).to_string())?;
    validate_weights(&expected, &tensors).map_err(|e| format!("{}: {e}", weights.display()))?;
    let mut out = Vec::new();
    for layer in program.model.walk() {
        for c in layer.constraints.iter().filter(|c| c.band().is_some()) {
            let band = c.band().expect("filtered on band");
            let name = ParamName::new(&layer.name, Kind::Weight).to_string();
            let w = &tensors[&name];
            let shape: Vec<usize> = w.dims()[2..].to_vec();
            let taps: usize = shape.iter().product();
            let q = band.stopband_operator(&shape);
            let data: Vec<f64> = w.to_dtype(candle_core::DType::F64).and_then(|t| t.flatten_all()?.to_vec1()).map_err(|e| e.to_string())?;
            let mut kernels: Vec<(f64, Vec<f64>)> = data
                .chunks(taps)
                .map(|h| {
                    let v = nalgebra::DVector::from_column_slice(h);
                    let energy = v.norm_squared();
                    let rho = if energy > 0.0 { (v.transpose() * &q * &v)[0] / energy } else { 0.0 };
                    (rho, h.to_vec())
                })
                .collect();
            kernels.sort_by(|a, b| b.0.total_cmp(&a.0));
            let (rhos, kernels) = kernels.into_iter().unzip();
            out.push(Panel { layer: layer.name.clone(), constraint: c.clone(), shape, kernels, rhos });
        }
    }
    Ok(out)
}

/// Reads the report.json written next to a weights file, if there is one.
pub fn report_next_to(weights: &Path) -> Option<Report> {
    let path = weights.parent()?.join("report.json");
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}
