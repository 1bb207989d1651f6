//! End to end: a model trained on `pairs(x=…, y=…)`, CSV files of
//! (input, target) rows made here, whose targets are shorter than its inputs
//! (a 2× downsampling), with validation and test parts split off and the
//! inputs normalised; then `lpnc predict` on the weights.
// Trains the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

mod common;

use std::io::Write;
use std::path::Path;

const EXAMPLES: usize = 120;
const LENGTH: usize = 32;

/// Inputs of `LENGTH` values drawn from a seeded generator (uniform, shifted
/// and scaled so normalising them matters), and their 2× downsampling: the
/// mean of each pair of neighbours.
fn make_pairs(seed: u64) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let mut state = seed;
    let mut uniform = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let inputs: Vec<Vec<f64>> = (0..EXAMPLES).map(|_| (0..LENGTH).map(|_| 5.0 + 4.0 * uniform()).collect()).collect();
    let targets = inputs.iter().map(|x| x.chunks(2).map(|p| (p[0] + p[1]) / 2.0).collect()).collect();
    (inputs, targets)
}

fn csv(rows: &[Vec<f64>]) -> String {
    rows.iter().map(|r| r.iter().map(|v| format!("{v:.6}")).collect::<Vec<_>>().join(",") + "\n").collect()
}

const PROGRAM: &str = "model halve {
  input [1, 32]
  conv(out=1, k=2, stride=2)
}
data {
  train = pairs(x=\"x.csv\", y=\"y.csv.gz\")
  val_split = 0.2
  test_split = 0.1
  normalize = zscore
}
train {
  loss = mse
  optimizer = adam(lr=1e-1)
  epochs = 30
  batch = 16
  seed = 1
}
";

#[test]
fn a_downsampler_learns_from_pairs_of_csv_rows_and_predicts() {
    let dir = common::fresh_dir("pairs", "downsample");
    std::fs::create_dir_all(&dir).unwrap();
    let (inputs, targets) = make_pairs(7);
    std::fs::write(dir.join("x.csv"), csv(&inputs)).unwrap();
    // The targets gzip-compressed, under a header line.
    let header = (0..LENGTH / 2).map(|i| format!("y{i}")).collect::<Vec<_>>().join(",") + "\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all((header + &csv(&targets)).as_bytes()).unwrap();
    std::fs::write(dir.join("y.csv.gz"), gz.finish().unwrap()).unwrap();

    std::fs::write(dir.join("halve.lpn"), PROGRAM).unwrap();
    let program = common::program(PROGRAM, &dir);
    let out = dir.join("run");
    let report = lpn::train::train(&program, &lpn::train::Options::new(&out)).unwrap();
    let counts = report.examples.as_ref().unwrap();
    assert_eq!((counts.train, counts.val, counts.test), (84, 24, Some(12)));

    // The trivial predictor (the targets' mean) scores their variance.
    let all: Vec<f64> = targets.iter().flatten().copied().collect();
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    let variance = all.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / all.len() as f64;
    let test = report.test.as_ref().unwrap().loss;
    assert!(test < 0.02 * variance, "test loss {test} not clearly below the trivial predictor's {variance}");
    assert!(report.epochs.last().unwrap().val_accuracy.is_none());

    // `lpnc predict` applies the stored normalisation and prints y0, …, y15.
    let fresh = make_pairs(8);
    std::fs::write(dir.join("new.csv"), csv(&fresh.0[..3])).unwrap();
    let predicted = common::lpnc()
        .arg("predict")
        .arg(dir.join("halve.lpn"))
        .args(["--quiet", "--weights"])
        .arg(out.join("model.safetensors"))
        .arg("--input")
        .arg(dir.join("new.csv"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&predicted.stdout);
    assert!(predicted.status.success(), "{}", String::from_utf8_lossy(&predicted.stderr));
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), (0..LENGTH / 2).map(|i| format!("y{i}")).collect::<Vec<_>>().join(","));
    let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows.len(), 3);
    for (row, expected) in rows.iter().zip(&fresh.1) {
        let worst = row.iter().zip(expected).map(|(p, t)| (p - t).abs()).fold(0.0, f64::max);
        assert!(worst < 0.1, "prediction {row:?}\n  far from {expected:?}");
    }
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
