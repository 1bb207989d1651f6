//! Trained weights on new inputs (`lpnc predict`): the network in evaluation
//! mode, [`BATCH`] examples at a time, read from a CSV or `.npy` file
//! (`data::predict_input`) and written as CSV rows to a writer the caller
//! gives, as they come: memory does not grow with the number of rows.
//!
//! One row per example: for a classifier the probability of each class
//! (softmax of the logits; for `loss = bce`, the sigmoid of the one logit as
//! the second class's) under a header `p<label>` per class, then `class`, the
//! label of the most probable class (the labels recorded in the weights'
//! metadata at training, else the training data's, as `lpnc eval` numbers
//! them: numbers or names, `data::Label`); for a regression or denoising model the flattened
//! output vector under `y0, y1, …`.

use std::io::Write;
use std::path::Path;

use candle_core::Tensor;

use super::{TrainError, trained_net};
use crate::data::predict_input::InputReader;
use crate::data::{self, DataError};
use crate::language::ir::{DataSpec, Loss, Model, Program};
use crate::model::{Net, Pass};

/// Examples per forward pass.
pub const BATCH: usize = 256;

/// What predicting needs of a checked program: its model, the loss (how the
/// outputs read) and, when at hand, its data section (class labels of
/// weights that do not record them).
pub struct Predicting<'a> {
    pub model: &'a Model,
    pub loss: Loss,
    pub data: Option<&'a DataSpec>,
}

impl<'a> From<&'a Program> for Predicting<'a> {
    fn from(program: &'a Program) -> Self {
        Predicting { model: &program.model, loss: program.train.loss, data: Some(&program.data) }
    }
}

/// A trained network ready to predict, and how its outputs read.
pub struct Predictor {
    net: Net,
    output: Output,
    /// The training data's rescaling of the inputs, from the weights' metadata.
    normalization: Option<data::Normalization>,
}

enum Output {
    /// Class probabilities; `binary`: one logit (`loss = bce`).
    Classes { labels: Vec<String>, binary: bool },
    /// The output vector of this many values.
    Values { width: usize },
}

#[derive(Debug)]
pub enum PredictError {
    /// The model or its weights.
    Model(TrainError),
    /// The inputs (file, line, what is wrong).
    Input(DataError),
    /// Writing the predictions.
    Write(std::io::Error),
}

impl std::fmt::Display for PredictError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PredictError::Model(e) => write!(f, "{e}"),
            PredictError::Input(e) => write!(f, "{e}"),
            PredictError::Write(e) => write!(f, "cannot write the predictions: {e}"),
        }
    }
}

impl std::error::Error for PredictError {}

impl From<TrainError> for PredictError {
    fn from(e: TrainError) -> Self {
        PredictError::Model(e)
    }
}
impl From<candle_core::Error> for PredictError {
    fn from(e: candle_core::Error) -> Self {
        PredictError::Model(e.into())
    }
}

impl Predictor {
    /// `program`'s network with the weights of `weights`, checked to fit it.
    pub fn new(program: &Program, weights: &Path) -> Result<Predictor, TrainError> {
        Predictor::of(&Predicting::from(program), weights)
    }

    /// [`Predictor::new`] for what predicting needs of a program.
    pub fn of(what: &Predicting<'_>, weights: &Path) -> Result<Predictor, TrainError> {
        let net = trained_net(what.model, weights)?;
        let provenance = super::provenance::Provenance::read(weights).ok().flatten();
        let width: usize = what.model.output.0.iter().product();
        let output = match what.loss {
            Loss::Mse | Loss::Mae => Output::Values { width },
            Loss::CrossEntropy | Loss::Bce => {
                let binary = what.loss == Loss::Bce;
                let classes = if binary { 2 } else { width };
                // The labels the weights were trained with (their metadata),
                // else the training file's, else class numbers.
                let recorded = provenance.as_ref().and_then(|p| p.class_labels.clone());
                let labels = match recorded {
                    Some(labels) => Some(labels),
                    None => match what.data {
                        Some(spec) => data::class_labels(spec)?.map(|ls| ls.iter().map(ToString::to_string).collect()),
                        None => None,
                    },
                };
                let labels = match labels {
                    Some(labels) if labels.len() == classes => labels,
                    Some(_) | None => (0..classes).map(|c| c.to_string()).collect(),
                };
                Output::Classes { labels, binary }
            }
        };
        Ok(Predictor { net, output, normalization: provenance.and_then(|p| p.normalization) })
    }

    /// The network in evaluation mode (running batch-norm statistics, no
    /// dropout) on a batch `[n, …input]`: its raw outputs `[n, …output]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.net.forward(x, &mut Pass::Eval)
    }

    /// The CSV header of the predictions.
    pub fn header(&self) -> String {
        match &self.output {
            Output::Classes { labels, .. } => {
                labels.iter().map(|l| format!("p{l}")).chain(["class".to_string()]).collect::<Vec<_>>().join(",")
            }
            Output::Values { width } => (0..*width).map(|i| format!("y{i}")).collect::<Vec<_>>().join(","),
        }
    }

    /// One CSV line per example of `out`, the batch's outputs.
    fn lines(&self, out: &Tensor, n: usize) -> candle_core::Result<String> {
        let values: Vec<f32> = out.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
        let per = values.len() / n.max(1);
        let mut text = String::new();
        for row in values.chunks(per.max(1)) {
            let fields: Vec<String> = match &self.output {
                Output::Values { .. } => row.iter().map(f32::to_string).collect(),
                Output::Classes { labels, binary } => {
                    let probabilities = if *binary { sigmoid_pair(row[0]) } else { softmax(row) };
                    // The first largest logit, as `argmax` (and `lpnc eval`) picks; for bce, a logit above 0.
                    let class = if *binary { usize::from(row[0] > 0.0) } else { first_max(row) };
                    probabilities.iter().map(f32::to_string).chain([labels[class].clone()]).collect()
                }
            };
            text.push_str(&fields.join(","));
            text.push('\n');
        }
        Ok(text)
    }
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let exps: Vec<f64> = logits.iter().map(|&x| (x as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

fn sigmoid_pair(logit: f32) -> Vec<f32> {
    let p = 1.0 / (1.0 + (-(logit as f64)).exp());
    vec![(1.0 - p) as f32, p as f32]
}

fn first_max(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// Predicts every example of `input` and writes the CSV (header first) to
/// `sink` as it goes; `progress(done, total)` after each batch (`total`
/// where the file says it, `.npy`). Returns the number of examples.
pub fn predict(
    what: &Predicting<'_>,
    weights: &Path,
    input: &Path,
    sink: &mut dyn Write,
    progress: &mut dyn FnMut(usize, Option<usize>),
) -> Result<usize, PredictError> {
    let predictor = Predictor::of(what, weights)?;
    let shape = &what.model.input.0;
    let mut reader = InputReader::open(input, shape).map_err(PredictError::Input)?;
    writeln!(sink, "{}", predictor.header()).map_err(PredictError::Write)?;
    let mut done = 0;
    let mut values = Vec::new();
    loop {
        values.clear();
        let n = reader.next_batch(BATCH, &mut values).map_err(PredictError::Input)?;
        if n == 0 {
            break;
        }
        if let Some(norm) = &predictor.normalization {
            norm.apply(&mut values, shape);
        }
        let mut dims = vec![n];
        dims.extend(shape);
        let x = Tensor::from_vec(std::mem::take(&mut values), dims, &predictor.net.device)?.to_dtype(predictor.net.dtype)?;
        let out = predictor.forward(&x)?;
        sink.write_all(predictor.lines(&out, n)?.as_bytes()).map_err(PredictError::Write)?;
        done += n;
        progress(done, reader.total());
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_sum_to_one_and_the_class_is_the_first_largest() {
        let p = softmax(&[1000.0, 1000.0, -5.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6 && (p[0] - 0.5).abs() < 1e-6, "{p:?}");
        assert_eq!(first_max(&[0.5, 2.0, 2.0]), 1);
        assert_eq!(sigmoid_pair(0.0), [0.5, 0.5]);
    }
}
