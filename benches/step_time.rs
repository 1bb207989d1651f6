//! lpn's side of the lpn-vs-PyTorch benchmark (`benches/compare_pytorch.sh`;
//! PyTorch's side is `benches/torch_step.py`). Three subcommands:
//!
//! ```text
//! cargo bench --bench step_time -- data
//!     writes benches/nets/data/synthetic_28x28.csv (fixed seed), the 2-D nets' data
//! cargo bench --bench step_time -- export NET.lpn DIR
//!     DIR/data.safetensors (x, y: the training set in order), DIR/init.safetensors
//!     (the weights `lpnc train` starts from), DIR/operators.safetensors (each
//!     constraint's Q, projector P and reparametrization basis V) and DIR/meta.json
//! cargo bench --bench step_time -- time NET.lpn [--epochs N] [--warmup W] [--threads T]
//!     trains through `lpn::train::train`, exactly what `lpnc train` runs, and
//!     prints one JSON line: ms/step (median over the timed epochs of the
//!     epoch's step seconds / steps), per-epoch losses, peak RSS
//! ```
//!
//! The reference nets (`benches/nets/*.lpn`) have no validation split and no
//! shuffling, so an epoch is the same sequence of batches on both sides and the
//! epoch's step time (`step_seconds` in the report: without the end-of-epoch
//! constraint figures) is the time of the same steps PyTorch times.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use candle_core::{DType, Device, Tensor};
use lpn::data::Targets;
use lpn::language::ir::{Op, Program};
use lpn::model::constraints::Enforced;
use lpn::model::{Net, Reparam, ops};

// The allocator `lpnc` uses, set up as it sets it up (`lpn::allocator`), so
// the benchmark times what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SYNTHETIC_CLASSES: usize = 10;
const SYNTHETIC_EXAMPLES: usize = 640;
const SIDE: usize = 28;

fn nets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches").join("nets")
}

/// 28×28 images of 10 classes: class c is a Gaussian blob at one of ten
/// places with a grating of its own orientation, randomly shifted and scaled,
/// in white noise. Labels cycle 0..9, so every batch of 64 holds every class.
fn synthetic_csv() -> String {
    let mut rng = lpn::rng::Rng::derive(2024, "synthetic_28x28");
    let mut out = String::with_capacity(SYNTHETIC_EXAMPLES * SIDE * SIDE * 7);
    for i in 0..SYNTHETIC_EXAMPLES {
        let c = i % SYNTHETIC_CLASSES;
        let angle = std::f64::consts::PI * c as f64 / SYNTHETIC_CLASSES as f64;
        let (cx, cy) = (7.0 + 14.0 * ((c % 5) as f64 / 4.0) + rng.range(-2.0, 2.0), 9.0 + 10.0 * (c / 5) as f64 + rng.range(-2.0, 2.0));
        let amp = rng.range(0.7, 1.3);
        let phase = rng.range(0.0, std::f64::consts::TAU);
        out.push_str(&c.to_string());
        for y in 0..SIDE {
            for x in 0..SIDE {
                let (dx, dy) = (x as f64 - cx, y as f64 - cy);
                let blob = (-(dx * dx + dy * dy) / 18.0).exp();
                let grating = (0.9 * (x as f64 * angle.cos() + y as f64 * angle.sin()) + phase).sin();
                let v = amp * blob * (1.0 + 0.5 * grating) + 0.3 * rng.normal();
                out.push_str(&format!(",{v:.3}"));
            }
        }
        out.push('\n');
    }
    out
}

fn write_data() -> Result<PathBuf, String> {
    let dir = nets_dir().join("data");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("synthetic_28x28.csv");
    let text = synthetic_csv();
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        // Through a temporary name: a concurrent reader never sees half a file.
        let tmp = dir.join(format!(".synthetic_28x28.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(path)
}

/// Checks a file as `lpnc train` does and returns its program and folder.
fn compile(path: &Path) -> Result<(Program, PathBuf), String> {
    let source = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let (_, checked) = lpn::check_source(&source, &base);
    if checked.has_errors() {
        let name = path.display().to_string();
        return Err(lpn::language::render::render_human(&checked.problems, &source, &name, false));
    }
    checked.program.map(|p| (p, base)).ok_or_else(|| format!("{}: no program", path.display()))
}

/// The peak resident set of this process, in KiB (Linux; None elsewhere).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn export(path: &Path, dir: &Path) -> Result<(), String> {
    let err = |e: candle_core::Error| e.to_string();
    let (program, _) = compile(path)?;
    let model = &program.model;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dev = Device::Cpu;

    // The training set, in order (no shuffling, no validation split).
    let splits = lpn::data::load(&program.data, &model.input.0).map_err(|e| e.to_string())?;
    let train = &splits.train;
    let mut shape = vec![train.len];
    shape.extend(&train.shape);
    let mut data = HashMap::new();
    data.insert("x".to_string(), Tensor::from_vec(train.inputs.clone(), shape.as_slice(), &dev).map_err(err)?);
    let classes = match &train.targets {
        Targets::Signals(s) => {
            data.insert("y".to_string(), Tensor::from_vec(s.clone(), shape.as_slice(), &dev).map_err(err)?);
            None
        }
        Targets::Regression { values, shape: target } => {
            let dims: Vec<usize> = std::iter::once(train.len).chain(target.iter().copied()).collect();
            data.insert("y".to_string(), Tensor::from_vec(values.clone(), dims.as_slice(), &dev).map_err(err)?);
            None
        }
        Targets::Classes(c) => {
            let labels: Vec<i64> = c.iter().map(|&k| k as i64).collect();
            data.insert("y".to_string(), Tensor::from_vec(labels, train.len, &dev).map_err(err)?);
            splits.classes
        }
    };
    candle_core::safetensors::save(&data, dir.join("data.safetensors")).map_err(err)?;

    // The weights training starts from: the seeded initialisation with each
    // constraint attached and projected modes projected, as `train` does.
    let mut net = Net::new(model, program.train.seed, ops::TRAIN_DTYPE).map_err(|e| e.to_string())?;
    let enforced = Enforced::attach_all(&mut net, &model.walk()).map_err(|e| e.to_string())?;
    Enforced::project_all(&enforced, &net).map_err(err)?;
    candle_core::safetensors::save(&net.tensors().map_err(err)?, dir.join("init.safetensors")).map_err(err)?;

    // Each constraint's operators, from the same functions the lowering uses.
    let layers = model.walk();
    let mut operators = HashMap::new();
    let mut constraints = Vec::new();
    for e in &enforced {
        let layer = layers.iter().find(|l| l.name == e.layer).ok_or("constraint on an unknown layer")?;
        let Op::Conv(conv) = &layer.op else { return Err(format!("{}: only conv constraints are exported", e.layer)) };
        let Some(band) = &e.spec.band() else { return Err(format!("{}: only band constraints are exported", e.layer)) };
        let taps: usize = conv.kernel.iter().product();
        let to_tensor = |m: &nalgebra::DMatrix<f64>| {
            let (r, c) = m.shape();
            let v: Vec<f32> = (0..r).flat_map(|i| (0..c).map(move |j| m[(i, j)] as f32)).collect();
            Tensor::from_vec(v, (r, c), &dev)
        };
        let q = band.stopband_operator(&conv.kernel);
        let (p, _) = lpn::constraint::bands::admissible_projector(&q, e.spec.tol);
        operators.insert(format!("{}.q", e.layer), to_tensor(&q).map_err(err)?);
        operators.insert(format!("{}.p", e.layer), to_tensor(&p).map_err(err)?);
        if let Some(Reparam::Subspace { basis, .. }) = &net.params[e.param].reparam {
            operators.insert(format!("{}.basis", e.layer), basis.to_dtype(DType::F32).map_err(err)?);
        }
        constraints.push(serde_json::json!({
            "layer": e.layer,
            "tensor": net.params[e.param].name,
            "mode": e.spec.mode.name(),
            "weight": e.spec.weight,
            "tol": e.spec.tol,
            "taps": taps,
        }));
    }
    if !operators.is_empty() {
        candle_core::safetensors::save(&operators, dir.join("operators.safetensors")).map_err(err)?;
    }
    let lr = match program.train.optimizer {
        lpn::language::ir::Optimizer::Adam { lr, .. } => lr,
        ref other => return Err(format!("the benchmark's nets use adam, not {other:?}")),
    };
    let meta = serde_json::json!({
        "model": model.name,
        "input": model.input.0,
        "examples": train.len,
        "classes": classes,
        "batch": program.train.batch,
        "loss": program.train.loss,
        "lr": lr,
        "constraints": constraints,
    });
    std::fs::write(dir.join("meta.json"), serde_json::to_string_pretty(&meta).expect("json")).map_err(|e| e.to_string())?;
    Ok(())
}

fn time(path: &Path, epochs: usize, warmup: usize) -> Result<(), String> {
    let (program, _) = compile(path)?;
    let examples = lpn::data::load(&program.data, &program.model.input.0).map_err(|e| e.to_string())?.train.len;
    let steps = examples.div_ceil(program.train.batch.min(examples).max(1));
    let out_dir = std::env::temp_dir().join(format!("lpn-step-time-{}", std::process::id()));
    let mut options = lpn::train::Options::new(&out_dir);
    options.epochs = Some(warmup + epochs);
    let report = lpn::train::train(&program, &options).map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&out_dir);
    let report = report?;
    let per_step: Vec<f64> = report.epochs.iter().map(|e| 1e3 * e.step_seconds / steps as f64).collect();
    let timed = &per_step[warmup.min(per_step.len())..];
    let line = serde_json::json!({
        "side": "lpn",
        "model": program.model.name,
        "threads": candle_core::utils::get_num_threads(),
        "steps_per_epoch": steps,
        "warmup_epochs": warmup,
        "epoch_ms_per_step": per_step,
        "ms_per_step": median(timed),
        "train_loss": report.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>(),
        "peak_rss_kib": peak_rss_kib(),
    });
    println!("{line}");
    Ok(())
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: step_time data\n       step_time export NET.lpn DIR\n       step_time time NET.lpn [--epochs N] [--warmup W] [--threads T]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    lpn::allocator::configure();
    // `cargo bench` appends `--bench`.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let flag = |name: &str, default: usize| -> Result<usize, String> {
        match args.iter().position(|a| a == name) {
            Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).ok_or(format!("{name} takes a number")),
            None => Ok(default),
        }
    };
    let threads = match flag("--threads", 0) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return usage();
        }
    };
    // The same set-up as `lpnc --threads`: rayon's pool and Candle's own.
    // SAFETY: nothing has started another thread yet.
    if let Err(e) = unsafe { lpn::threads::configure((threads > 0).then_some(threads)) } {
        eprintln!("{e}");
        return usage();
    }
    let result = match args.first().map(String::as_str) {
        Some("data") => write_data().map(|p| println!("{}", p.display())),
        Some("export") if args.len() >= 3 => write_data().and_then(|_| export(Path::new(&args[1]), Path::new(&args[2]))),
        Some("time") if args.len() >= 2 => {
            let (epochs, warmup) = match (flag("--epochs", 3), flag("--warmup", 1)) {
                (Ok(e), Ok(w)) => (e, w),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("{e}");
                    return usage();
                }
            };
            write_data().and_then(|_| time(Path::new(&args[1]), epochs.max(1), warmup))
        }
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
