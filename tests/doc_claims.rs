//! What the reference (`docs/reference.md`, generated from `src/language/schema.rs`),
//! `docs/constraints.md` and the README say the code does, held to what it
//! does: each test reads the sentence and runs the code it describes.
// Trains or runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use lpn::model::constraints::Enforced;
use lpn::model::{Net, Pass};

fn model(source: &str) -> lpn::language::ir::Model {
    lpn::language::check::check_model_only(source).unwrap_or_else(|problems| panic!("{problems:?}"))
}

fn forward(source: &str, input: &[f32], shape: &[usize]) -> Vec<f32> {
    let model = model(source);
    let net = Net::new(&model, 0, DType::F32).unwrap();
    let x = Tensor::from_slice(input, shape, &Device::Cpu).unwrap();
    net.forward(&x, &mut Pass::Eval).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn padding_doc(layer: &str) -> &'static str {
    let def = lpn::language::schema::layer(layer).unwrap();
    def.schema.params.iter().find(|p| p.name == "padding").unwrap().doc
}

/// The reference once said maxpool pads with zeros; it pads with −∞, as
/// PyTorch: over all-negative input a padded window's maximum is its
/// negative value, not 0.
#[test]
fn maxpool_padding_never_wins_as_documented() {
    let doc = padding_doc("maxpool");
    assert!(doc.contains("−∞") && !doc.contains("zeros"), "reference: {doc}");
    // 1-D: windows [pad, -3], [-2, -5], [-1, pad].
    let out = forward("model m {\n  input [1, 4]\n  maxpool(k=2, padding=1)\n}\n", &[-3.0, -2.0, -5.0, -1.0], &[1, 1, 4]);
    assert_eq!(out, [-3.0, -2.0, -1.0]);
    // 2-D: each 2×2 window holds one value and three padded positions.
    let out = forward("model m {\n  input [1, 2, 2]\n  maxpool(k=2, padding=1)\n}\n", &[-4.0, -3.0, -2.0, -1.0], &[1, 1, 2, 2]);
    assert_eq!(out, [-4.0, -3.0, -2.0, -1.0]);
}

/// avgpool's padding is zeros that count in the mean (PyTorch's
/// `count_include_pad=True`).
#[test]
fn avgpool_padding_counts_zeros_as_documented() {
    let doc = padding_doc("avgpool");
    assert!(doc.contains("zeros") && doc.contains("count in the mean"), "reference: {doc}");
    let out = forward("model m {\n  input [1, 4]\n  avgpool(k=2, padding=1)\n}\n", &[-3.0, -2.0, -5.0, -1.0], &[1, 1, 4]);
    assert_eq!(out, [-1.5, -3.5, -0.5]);
}

/// docs/constraints.md, the README and the reference (`dual_lr`): in
/// lagrangian mode the loss term is λ · mean over kernels of max(0, ρ − tol),
/// so kernels already within tol add nothing (it is not λ · (ρ − tol)).
#[test]
fn lagrangian_term_is_lambda_times_mean_excess_as_documented() {
    let formula = "λ · mean over kernels of max(0, ρ";
    let reference = lpn::language::schema::reference_markdown();
    let constraints_md = std::fs::read_to_string("docs/constraints.md").unwrap();
    let readme = std::fs::read_to_string("README.md").unwrap();
    for (name, text) in [("reference", &reference), ("docs/constraints.md", &constraints_md), ("README.md", &readme)] {
        assert!(text.contains(formula), "{name} must state the lagrangian term as `{formula} − tol)`");
    }

    let model = model("model m {\n  input [1, 64]\n  conv(out=8, k=9) @lowpass(cutoff=0.3, mode=lagrangian, tol=0.5)\n}\n");
    let mut net = Net::new(&model, 7, DType::F32).unwrap();
    let mut enforced = Enforced::attach_all(&mut net, &model.walk()).unwrap();
    let e = &mut enforced[0];
    let band = e.spec.band().unwrap();
    let q = band.stopband_operator(&[9]);
    let w: Vec<f64> = net.effective(e.param).unwrap().to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let rho: Vec<f64> = w
        .chunks(9)
        .map(|h| {
            let h = nalgebra::DVector::from_column_slice(h);
            (h.transpose() * &q * &h)[(0, 0)] / h.norm_squared()
        })
        .collect();
    // A tol between the kernels' ρ: some are within it, some not.
    let mut sorted = rho.clone();
    sorted.sort_by(f64::total_cmp);
    let tol = (sorted[3] + sorted[4]) / 2.0;
    assert!(sorted[0] < tol && sorted[7] > tol);
    e.spec.tol = tol;
    let lambda = 2.5;
    e.set_multiplier(lambda);
    let term: f64 = e.loss_term(&net).unwrap().unwrap().to_dtype(DType::F64).unwrap().to_scalar().unwrap();
    let expected = lambda * rho.iter().map(|r| (r - tol).max(0.0)).sum::<f64>() / rho.len() as f64;
    let signed = lambda * rho.iter().map(|r| r - tol).sum::<f64>() / rho.len() as f64;
    assert!((term - expected).abs() < 1e-5 * expected.max(1e-3), "term {term}, λ·mean max(0, ρ−tol) = {expected}");
    assert!((term - signed).abs() > 1e-3, "the term is not λ·mean(ρ − tol) = {signed}");
}

/// Trains `train_section` for one phase of one epoch; the first conv's
/// weights afterwards.
fn conv_after_training(layer_lr: &str, phase_line: &str, dir: &str) -> Vec<u8> {
    let source = format!(
        "model m {{\n  input [1, 32]\n  conv(out=1, k=3) {layer_lr}\n}}\n\
         data sines(n=16)\n\
         train {{\n  optimizer = sgd(lr=0.05)\n  batch = 16\n  seed = 3\n  phase only {{\n    epochs = 1\n    {phase_line}\n  }}\n}}\n"
    );
    let (_, checked) = lpn::check_source(&source, Path::new("."));
    let program = checked.program.unwrap_or_else(|| panic!("{:?}\n{source}", checked.problems));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("doc_claims").join(dir);
    let _ = std::fs::remove_dir_all(&out);
    let options = lpn::train::Options::new(&out);
    lpn::train::train(&program, &options).unwrap();
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    tensors.tensor("conv1.weight").unwrap().data().to_vec()
}

/// The reference (`@lr` and `phase`) and the README: a phase's `@lr(s)`
/// replaces the layer's own scale (the update is lr × s), it does not
/// multiply it.
#[test]
fn a_phase_lr_replaces_the_layers_own_as_documented() {
    let lr = lpn::language::schema::annotation("lr").unwrap().schema.summary;
    let phase = lpn::language::schema::PHASE_SECTION.summary;
    assert!(lr.contains("replaces this scale"), "@lr: {lr}");
    assert!(phase.contains("replaces the layer's own `@lr` scale"), "phase: {phase}");

    // conv1 @lr(0.1), the phase says @lr(0.5): trained as if the layer had 0.5.
    let both = conv_after_training("@lr(0.1)", "conv1 @lr(0.5)", "both");
    let phase_only = conv_after_training("", "conv1 @lr(0.5)", "phase_only");
    let layer_only = conv_after_training("@lr(0.1)", "", "layer_only");
    assert_eq!(both, phase_only, "the phase's scale replaces the layer's");
    assert_ne!(both, layer_only, "the phase's scale has an effect");
}
