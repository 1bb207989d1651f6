//! The same model trained with no constraint and with each mode of one
//! constraint, side by side: task metric, the constraint's ρ, seconds per epoch.
//!
//!   cargo run --release --example compare_modes
//!
//! Uses the ECG denoiser (`@lowpass` on its first layer) and the waveforms
//! classifier (`@lowpass` on its front end) from this folder.

use std::path::Path;
use std::time::Instant;

struct Case {
    file: &'static str,
    /// The annotation as written in the file, replaced for each mode.
    annotation: &'static str,
    /// The same constraint with `MODE` (and its mode's parameters).
    template: &'static str,
}

const MODES: &[(&str, &str)] = &[
    ("none", ""),
    ("penalty", "mode=penalty, weight=1.0"),
    ("project", "mode=project"),
    ("reparam", "mode=reparam"),
    ("freeze", "mode=freeze"),
    ("lagrangian", "mode=lagrangian"),
];

/// ρ (max over kernels) of the unconstrained run's first layer, measured
/// against the spec the constrained runs use.
fn unconstrained_rho(spec_source: &str, base: &Path, run: &Path) -> Option<f64> {
    let (_, checked) = lpn::check_source(spec_source, base);
    let program = checked.program?;
    let layer = program.model.walk().into_iter().find(|l| l.name == "conv1")?.clone();
    let band = layer.constraints.first()?.band()?;
    let tensors = candle_core::safetensors::load(run.join("model.safetensors"), &candle_core::Device::Cpu).ok()?;
    let w = tensors.get("conv1.weight")?;
    let k = *w.dims().last()?;
    let q = band.stopband_operator(&[k]);
    let data: Vec<f32> = w.flatten_all().ok()?.to_vec1().ok()?;
    data.chunks(k)
        .map(|h| {
            let h = nalgebra::DVector::from_iterator(k, h.iter().map(|&x| x as f64));
            (h.transpose() * &q * &h)[0] / h.norm_squared()
        })
        .reduce(f64::max)
}

fn main() {
    let cases = [
        Case {
            file: "ecg_denoiser.lpn",
            annotation: "@lowpass(cutoff=40, fs=360, mode=project, tol=0.01)",
            template: "@lowpass(cutoff=40, fs=360, MODE)",
        },
        Case {
            file: "waveforms_frozen_frontend.lpn",
            annotation: "@lowpass(cutoff=0.25, mode=freeze)",
            template: "@lowpass(cutoff=0.25, MODE)",
        },
    ];
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for case in &cases {
        let source = std::fs::read_to_string(base.join(case.file)).expect("example exists");
        assert!(source.contains(case.annotation), "{} no longer holds {}", case.file, case.annotation);
        println!("\n{} — first layer's @lowpass in each mode", case.file);
        println!("{:<11} {:>12} {:>14} {:>12} {:>8} {:>10}", "mode", "val loss", "val accuracy", "ρ (max)", "held", "s/epoch");
        for (mode, args) in MODES {
            let annotation = if *mode == "none" { String::new() } else { case.template.replace("MODE", args) };
            let variant = source.replace(case.annotation, &annotation);
            let (_, checked) = lpn::check_source(&variant, &base);
            let Some(program) = checked.program else {
                println!("{mode:<11} does not check: {:?}", checked.problems.iter().map(|p| p.to_diagnostic().message).collect::<Vec<_>>());
                continue;
            };
            let out = std::env::temp_dir().join(format!("lpn-compare-{}-{mode}", case.file));
            let started = Instant::now();
            let options = lpn::train::Options { out_dir: out, epochs: None, seed: None, force: true, ..Default::default() };
            let report = match lpn::train::train(&program, &options) {
                Ok(r) => r,
                Err(e) => {
                    println!("{mode:<11} failed: {e}");
                    continue;
                }
            };
            let per_epoch = started.elapsed().as_secs_f64() / report.epochs.len().max(1) as f64;
            let last = report.epochs.last().expect("trained");
            // The ρ of the first layer's kernels whatever the mode: measured with
            // the same spec even when no constraint was attached.
            let rho = report.constraints.iter().find(|c| c.layer == "conv1").and_then(|c| c.stopband_ratio).or_else(|| {
                let spec_source = source.replace(case.annotation, &case.template.replace("MODE", "mode=project"));
                unconstrained_rho(&spec_source, &base, &std::env::temp_dir().join(format!("lpn-compare-{}-none", case.file)))
            });
            let held =
                report.constraints.iter().find(|c| c.layer == "conv1").map(|c| if c.satisfied { "yes" } else { "no" }).unwrap_or("-");
            println!(
                "{:<11} {:>12.5} {:>14} {:>12} {:>8} {:>10.2}",
                mode,
                last.val_loss.unwrap_or(f64::NAN),
                last.val_accuracy.map(|a| format!("{:.1}%", a * 100.0)).unwrap_or_else(|| "-".into()),
                rho.map(|r| format!("{r:.2e}")).unwrap_or_else(|| "-".into()),
                held,
                per_epoch
            );
        }
    }
}
