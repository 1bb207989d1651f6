//! lpn inside a Rust program: train `examples/denoiser.lpn` for a few epochs
//! through the library's `Trainer` (or take weights `lpnc train` wrote),
//! load the trained model as a Candle module and denoise a signal with it.
//!
//! ```text
//! cargo run --release --example embed                      # trains into a temporary folder first
//! cargo run --release --example embed -- runs/denoiser/model.safetensors
//! ```
//!
//! `tests/embed.rs` runs these functions in `cargo test`.

use std::error::Error;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use lpn::train::{Event, Flow, Observer, Options, Trainer};

/// The model file, found wherever the example or its test runs from.
pub const DENOISER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/denoiser.lpn");

/// The length of the signals the denoiser takes (its `input [1, 1024]`).
const LENGTH: usize = 1024;

/// Keeps each epoch's training loss: an observer of the run.
#[derive(Default)]
pub struct EpochLosses(pub Vec<(usize, f64)>);

impl Observer for EpochLosses {
    fn event(&mut self, event: &Event<'_>) {
        if let Event::EpochDone { report, .. } = event {
            self.0.push((report.epoch, report.train_loss));
        }
    }
}

/// The checked program of `examples/denoiser.lpn`.
pub fn denoiser() -> Result<lpn::Program, Box<dyn Error>> {
    let source = std::fs::read_to_string(DENOISER)?;
    Ok(lpn::compile(&source, &lpn::CompileOptions::for_file(DENOISER))?)
}

/// A finished training: the weights file it wrote, and each epoch's loss.
pub struct Trained {
    pub weights: PathBuf,
    pub losses: Vec<(usize, f64)>,
}

/// Trains the denoiser for `epochs` epochs into `run_dir`, epoch by epoch.
pub fn train(run_dir: &Path, epochs: usize) -> Result<Trained, Box<dyn Error>> {
    let program = denoiser()?;
    // A new run, replacing whatever an earlier one left in the folder.
    let options = Options { epochs: Some(epochs), force: true, ..Options::new(run_dir) };
    let mut losses = EpochLosses::default();
    let mut trainer = Trainer::new(&program, &options, &mut losses)?;
    while trainer.run_epoch()? == Flow::Continue {}
    trainer.finish()?;
    Ok(Trained { weights: run_dir.join("model.safetensors"), losses: losses.0 })
}

/// How far a signal is from the clean one, before and after the model.
pub struct Figures {
    pub noisy_mse: f64,
    pub denoised_mse: f64,
}

/// Loads the trained denoiser from `weights` and runs it on a noisy sum of
/// sines it has never seen (the kind `sines` draws: three components below
/// a tenth of Nyquist, noise of standard deviation 0.3).
pub fn denoise(weights: &Path) -> Result<Figures, Box<dyn Error>> {
    let program = denoiser()?;
    let device = Device::Cpu;
    let model = lpn::Model::load(&program, weights, &device)?;
    let (clean, noisy) = test_signal();
    let x = Tensor::from_slice(&noisy, (1, 1, LENGTH), &device)?;
    let denoised: Vec<f32> = model.forward(&x)?.flatten_all()?.to_vec1()?;
    Ok(Figures { noisy_mse: mse(&noisy, &clean), denoised_mse: mse(&denoised, &clean) })
}

/// A clean signal and the same with white noise of standard deviation 0.3.
fn test_signal() -> (Vec<f32>, Vec<f32>) {
    let pi = std::f64::consts::PI;
    let components = [(0.8, 0.02, 0.0), (0.6, 0.05, 1.0), (0.5, 0.09, 2.0)];
    let clean: Vec<f32> = (0..LENGTH)
        .map(|t| {
            let sum: f64 = components.iter().map(|(amp, freq, phase)| amp * (pi * freq * t as f64 + phase).sin()).sum();
            (sum / 3f64.sqrt()) as f32
        })
        .collect();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noisy = clean.iter().map(|&c| c + 0.3 * normal(&mut state) as f32).collect();
    (clean, noisy)
}

/// A standard normal value (Box–Muller over a xorshift generator).
fn normal(state: &mut u64) -> f64 {
    let mut uniform = || {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        ((*state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let (u, v) = (uniform(), uniform());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn mse(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>() / a.len() as f64
}

fn main() -> Result<(), Box<dyn Error>> {
    let given = std::env::args_os().nth(1).map(PathBuf::from);
    let run_dir = std::env::temp_dir().join(format!("lpn-embed-{}", std::process::id()));
    let weights = match given {
        Some(path) => path,
        None => {
            let trained = train(&run_dir, 5)?;
            for (epoch, loss) in trained.losses {
                println!("epoch {epoch}: training loss {loss:.4}");
            }
            trained.weights
        }
    };
    let figures = denoise(&weights)?;
    println!("mean squared error to the clean signal: noisy {:.4}, denoised {:.4}", figures.noisy_mse, figures.denoised_mse);
    // The run folder this example made, if it made one.
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok(())
}
