//! Our conv1d — the direct kernel (`lpn::model::ops::conv`) and the sum of
//! shifted matmuls (`ops::conv_by_matmuls`) — against Candle's own
//! `Tensor::conv1d`, forward + backward, side by side in one run, reported as
//! ratios. Also reports how far Candle's weight gradient is from ours (ours
//! matches numpy, see tests/ops_reference.rs).
//!
//!   cargo bench --bench conv1d
//!
//! With `step`, times instead a whole training step of the 1-D reference net
//! (the one `benches/torch_conv1d_step.py` times in PyTorch), built from .lpn
//! source and run as `lpn::train` runs a step, split into its phases:
//!
//!   cargo bench --bench conv1d -- step [--threads N] [--steps N]
//!
//! With `wide`, times the kernels alone (forward, input gradient, weight
//! gradient) on the wide layers of the nets people train for time series
//! (FCN, ResNet), one JSON line per case, at RAYON_NUM_THREADS threads;
//! `benches/conv1d_wide.sh` runs it against PyTorch
//! (`benches/torch_conv1d_wide.py`, the same cases):
//!
//!   cargo bench --bench conv1d -- wide

use std::time::Instant;

use candle_core::{Device, Tensor, Var};

fn time<F: FnMut()>(mut f: F, reps: usize) -> f64 {
    f(); // warm up
    let start = Instant::now();
    for _ in 0..reps {
        f();
    }
    start.elapsed().as_secs_f64() / reps as f64
}

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "wide") {
        return wide();
    }
    if args.iter().any(|a| a == "step") {
        let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok());
        return step(value("--threads"), value("--steps").unwrap_or(100));
    }
    kernels()
}

const REFERENCE_NET: &str = "model reference {
  input [1, 1024]
  conv(out=16, k=15, padding=7)
  relu
  conv(out=16, k=15, padding=7)
  relu
  conv(out=1, k=15, padding=7)
}

data sines(n=64)

train {
  optimizer = adam(lr=1e-3)
  loss = mse
  batch = 64
}
";

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One training step as `lpn::train` runs it with no constraint attached:
/// forward, loss, backward, the per-gradient sum of squares, the optimizer.
fn step(threads: Option<usize>, steps: usize) -> candle_core::Result<()> {
    // SAFETY: called before anything runs in parallel; the bench is single-threaded until here.
    let threads = unsafe { lpn::threads::configure(threads) }.map_err(candle_core::Error::msg)?;
    let (_, checked) = lpn::check_source(REFERENCE_NET, std::path::Path::new("."));
    let program = checked.program.expect("the reference net checks");
    let mut net = lpn::model::Net::new(&program.model, 0, lpn::model::ops::TRAIN_DTYPE).expect("net");
    let mut enforced = lpn::model::constraints::Enforced::attach_all(&mut net, &program.model.walk()).expect("no constraints");
    assert!(enforced.is_empty());
    enforced.clear();
    let mut optimizer = lpn::train::optim::Optimizer::new(&program.train.optimizer, net.params.len());
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (64, 1, 1024), &dev)?;
    let y = Tensor::randn(0f32, 1.0, (64, 1, 1024), &dev)?;
    let phases = ["forward+loss", "backward", "grad norms", "optimizer"];
    let mut times = vec![Vec::new(); phases.len() + 1];
    for i in 0..steps + 10 {
        let t0 = Instant::now();
        let out = net.forward(&x, &mut lpn::model::Pass::Train { dropout: &mut lpn::rng::Rng::derive(0, "dropout") })?;
        let loss = lpn::model::ops::mse(&out, &y)?;
        let value = loss.to_scalar::<f32>()?;
        assert!(value.is_finite());
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let per_param: Vec<Option<Tensor>> = net.params.iter().map(|p| grads.get(p.var.as_tensor()).cloned()).collect();
        let t2 = Instant::now();
        let mut norm_sq = 0.0;
        for g in per_param.iter().flatten() {
            norm_sq += g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        }
        assert!(norm_sq.is_finite());
        let t3 = Instant::now();
        optimizer.step(&net.params, &per_param)?;
        lpn::model::constraints::Enforced::project_all(&enforced, &net)?;
        let t4 = Instant::now();
        if i >= 10 {
            let marks = [t0, t1, t2, t3, t4];
            for p in 0..phases.len() {
                times[p].push((marks[p + 1] - marks[p]).as_secs_f64() * 1e3);
            }
            times[phases.len()].push((t4 - t0).as_secs_f64() * 1e3);
        }
    }
    let total = median(&mut times[phases.len()].clone());
    let min = times[phases.len()].iter().copied().fold(f64::INFINITY, f64::min);
    println!("lpn threads={threads} median {total:.3} ms/step (min {min:.3}, {steps} steps)");
    for (p, name) in phases.iter().enumerate() {
        println!("  {name:<14} {:>8.3} ms (median)", median(&mut times[p]));
    }
    Ok(())
}

/// The wide cases `(B, Cin, Cout, L, k)`, padding `(k − 1) / 2` on each side:
/// the FCN's three layers (Wang et al. 2017) on series of 512, a ResNet
/// block's on 1000, and two shorter ones. `benches/torch_conv1d_wide.py` has
/// the same list.
const WIDE: [(usize, usize, usize, usize, usize); 6] = [
    (16, 1, 128, 512, 8),
    (16, 128, 256, 512, 5),
    (16, 256, 128, 512, 3),
    (16, 64, 64, 1000, 8),
    (16, 128, 128, 150, 5),
    (16, 64, 128, 100, 3),
];

/// Median milliseconds of `f` over 9 runs after 2 warm-ups.
fn median_ms(mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut ms: Vec<f64> = (0..9)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    median(&mut ms)
}

fn wide() -> candle_core::Result<()> {
    use lpn_kernels::{ConvGeometry, conv1d};
    let values = |n: usize, seed: usize| -> Vec<f32> { (0..n).map(|i| ((i * 7919 + seed) % 1000) as f32 / 1000.0 - 0.5).collect() };
    for (b, cin, cout, l, k) in WIDE {
        let pad = (k - 1) / 2;
        let g = ConvGeometry {
            batch: b,
            in_channels: cin,
            out_channels: cout,
            groups: 1,
            kernel: [k],
            stride: [1],
            padding: [(pad, pad)],
            dilation: [1],
            input: [l],
        };
        let (x, w, gy) = (values(g.input_len(), 1), values(g.weight_len(), 2), values(g.output_len(), 3));
        let fwd = median_ms(|| drop(conv1d::forward(&x, &w, None, &g)));
        let gx = median_ms(|| drop(conv1d::grad_input(&gy, &w, &g)));
        let gw = median_ms(|| drop(conv1d::grad_weight(&gy, &x, &g)));
        println!(r#"{{"side":"lpn","case":[{b},{cin},{cout},{l},{k}],"forward":{fwd},"grad_input":{gx},"grad_weight":{gw}}}"#);
    }
    Ok(())
}

fn kernels() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    println!(
        "{:<28} {:>10} {:>13} {:>12} {:>13} {:>14} {:>12}",
        "case (B, Cin→Cout, L, k)", "ours (ms)", "matmuls (ms)", "candle (ms)", "candle/ours", "candle/matmuls", "grad_w diff"
    );
    for &(b, cin, cout, l, k) in
        &[(32, 1, 16, 1024, 15), (32, 16, 16, 1024, 15), (32, 16, 1, 1024, 15), (16, 32, 32, 150, 5), (64, 8, 16, 256, 9)]
    {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, cin, l), &dev)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (cout, cin, k), &dev)?)?;
        let pad = (k - 1) / 2;
        let g = Tensor::randn(0f32, 1.0, (b, cout, l + 2 * pad - k + 1), &dev)?;
        let conv = lpn::language::ir::Conv {
            in_channels: cin,
            out_channels: cout,
            kernel: vec![k],
            stride: vec![1],
            padding: vec![(pad, pad)],
            dilation: vec![1],
            groups: 1,
            bias: false,
        };
        let ours = || -> candle_core::Result<Tensor> {
            let y = lpn::model::ops::conv(x.as_tensor(), w.as_tensor(), None, &conv)?;
            let grads = (y * &g)?.sum_all()?.backward()?;
            Ok(grads.get(w.as_tensor()).unwrap().clone())
        };
        let shifted = || -> candle_core::Result<Tensor> {
            let y = lpn::model::ops::conv_by_matmuls(x.as_tensor(), w.as_tensor(), None, &conv)?;
            let grads = (y * &g)?.sum_all()?.backward()?;
            Ok(grads.get(w.as_tensor()).unwrap().clone())
        };
        let theirs = || -> candle_core::Result<Tensor> {
            let y = x.as_tensor().conv1d(w.as_tensor(), pad, 1, 1, 1)?;
            let grads = (y * &g)?.sum_all()?.backward()?;
            Ok(grads.get(w.as_tensor()).unwrap().clone())
        };
        let reps = 5;
        let t_ours = time(|| drop(ours().unwrap()), reps);
        let t_theirs = time(|| drop(theirs().unwrap()), reps);
        let t_shifted = time(|| drop(shifted().unwrap()), reps);
        let diff = (ours()? - theirs()?)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let scale = ours()?.abs()?.max_all()?.to_scalar::<f32>()?;
        println!(
            "{:<28} {:>10.2} {:>13.2} {:>12.2} {:>12.2}x {:>13.2}x {:>11.1}%",
            format!("({b}, {cin}→{cout}, {l}, {k})"),
            t_ours * 1e3,
            t_shifted * 1e3,
            t_theirs * 1e3,
            t_theirs / t_ours,
            t_theirs / t_shifted,
            100.0 * diff / scale
        );
    }
    println!(
        "forward + backward, mean of 5 after a warm-up; ratios > 1 mean Candle is slower; grad_w diff = max |ours − Candle's| / max |ours|"
    );
    Ok(())
}
