//! Self-describing weights: what `model.safetensors` says about the model it
//! belongs to, in the safetensors header's `__metadata__` (string → string),
//! so that `lpnc predict`, `eval` and `response` can run from the weights
//! file alone and refuse weights of another model with the reason.
//!
//! One key, `lpn`, holds a JSON object (one key, because safetensors writes
//! its metadata map in a random order, and the file must be the same bytes
//! on every run): `format` (this layout's version, `1`), `version` (the lpn
//! that wrote it), `model` (the model's name), `model_digest`
//! ([`model_digest`]), `layers` (one line per layer: name, op, output shape,
//! to say which layer changed when the digests differ), `source` (`text`, the
//! .lpn file, and `dir`, the absolute folder its data paths were relative to;
//! null when trained from the library without them) and `class_labels` (the
//! class labels, class 0 first, as strings, ready for named classes; null
//! for other tasks). A file without the key (older weights) is read as `None`.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{self, DataError};
use crate::language::ir::{Model, Program};
use crate::train::checkpoint::digest;

pub const FORMAT: &str = "1";
/// The metadata key of the JSON object.
const KEY: &str = "lpn";

/// A .lpn program's text and the folder its relative data paths start from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgramSource {
    pub text: String,
    pub dir: PathBuf,
}

/// What a weights file says of its model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub format: String,
    pub version: String,
    pub model: String,
    pub model_digest: String,
    pub layers: Vec<String>,
    pub source: Option<ProgramSource>,
    pub class_labels: Option<Vec<String>>,
    /// The rescaling of the inputs (`normalize`), fitted on the training
    /// part; `lpnc predict` applies it to new inputs.
    #[serde(default)]
    pub normalization: Option<data::Normalization>,
    /// The training loss, which says how the outputs read (class
    /// probabilities or values), so `lpnc predict` can run the model
    /// section alone where the data files are not at hand.
    #[serde(default)]
    pub loss: Option<crate::language::ir::Loss>,
}

/// The digest that ties weights to a model: FNV-1a (64 bits) of the checked
/// model section as JSON (the IR: layers, shapes, constraints, inits), so a
/// comment or a layout change does not count, while a layer's size, a
/// constraint or the model's name does. The data and train sections are
/// left out: trained weights may be evaluated on other data.
pub fn model_digest(model: &Model) -> String {
    digest(serde_json::to_string(model).expect("the model serializes").as_bytes())
}

/// One line per layer: `conv2: conv1d 16→16 k=9 → [16, 150]`.
pub fn layer_lines(model: &Model) -> Vec<String> {
    model.walk().iter().map(|l| format!("{}: {} → {:?}", l.name, l.op.describe(), l.output.0)).collect()
}

impl Provenance {
    /// The provenance of weights trained from `program` (written from
    /// `source`, when known). Reads a `ucr` training file for its labels.
    pub fn of(program: &Program, source: Option<&ProgramSource>) -> Result<Provenance, DataError> {
        let labels = data::class_labels(&program.data)?;
        Ok(Provenance {
            format: FORMAT.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            model: program.model.name.clone(),
            model_digest: model_digest(&program.model),
            layers: layer_lines(&program.model),
            source: source.cloned(),
            class_labels: labels.map(|l| l.iter().map(ToString::to_string).collect()),
            normalization: None,
            loss: Some(program.train.loss),
        })
    }

    /// The header metadata to write.
    pub fn metadata(&self) -> HashMap<String, String> {
        HashMap::from([(KEY.to_string(), serde_json::to_string(self).expect("the provenance serializes"))])
    }

    /// The provenance in a weights file's header; `None` for a file written
    /// without it (before lpn wrote it). Reads the header only.
    pub fn read(path: &Path) -> Result<Option<Provenance>, String> {
        let metadata = read_metadata(path)?;
        let Some(json) = metadata.get(KEY) else { return Ok(None) };
        serde_json::from_str(json).map(Some).map_err(|e| format!("{}: its `{KEY}` metadata cannot be read: {e}", path.display()))
    }

    /// Why these weights do not belong to `program`'s model, in words, or
    /// `None` when they do (the same digest).
    pub fn mismatch(&self, program: &Program) -> Option<String> {
        let digest = model_digest(&program.model);
        if digest == self.model_digest {
            return None;
        }
        let now = layer_lines(&program.model);
        let what = if self.model != program.model.name {
            format!("the model's name changed from `{}` to `{}`", self.model, program.model.name)
        } else if let Some(i) = (0..self.layers.len().max(now.len())).find(|&i| self.layers.get(i) != now.get(i)) {
            let shown = |l: Option<&String>| l.map_or_else(|| "no layer".to_string(), |l| format!("`{l}`"));
            format!("layer {} differs: the weights have {}, the file has {}", i + 1, shown(self.layers.get(i)), shown(now.get(i)))
        } else {
            "every layer has the same size, so a constraint, an `@init`, `@lr` or `@freeze` or another model setting changed".to_string()
        };
        Some(format!(
            "the weights were trained for model `{}` (digest {}), not for this file's model `{}` (digest {}): {what}",
            self.model, self.model_digest, program.model.name, digest
        ))
    }
}

/// The `__metadata__` of a safetensors file, reading its header only.
fn read_metadata(path: &Path) -> Result<HashMap<String, String>, String> {
    let unreadable = |why: String| format!("cannot read {}: {why}", path.display());
    let mut file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|_| unreadable("not a safetensors file (too short)".into()))?;
    let len = u64::from_le_bytes(len);
    // safetensors itself refuses headers over 100 MB.
    if len > 100_000_000 {
        return Err(unreadable("not a safetensors file (its header length is implausible)".into()));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(|_| unreadable("not a safetensors file (its header is cut short)".into()))?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| unreadable(format!("not a safetensors file (its header is not JSON: {e})")))?;
    let metadata = header.get("__metadata__").and_then(|m| m.as_object());
    Ok(metadata.into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(source: &str) -> Program {
        let (_, checked) = crate::check_source(source, Path::new("."));
        checked.program.expect("checks")
    }

    const BASE: &str = "model m {\n  input [1, 32]\n  conv(out=4, k=9)\n  relu\n  conv(out=1, k=5)\n}\ndata sines(n=20)\n";

    #[test]
    fn the_digest_ignores_layout_and_comments_and_the_data() {
        let base = model_digest(&program(BASE).model);
        let relaid =
            "// a comment\nmodel m {\n\n  input [1, 32]   // in\n  conv(out=4,   k=9)\n  relu\n  conv(out=1, k=5)\n}\ndata sines(n=40)\n";
        assert_eq!(model_digest(&program(relaid).model), base);
        assert_ne!(model_digest(&program(&BASE.replace("k=9", "k=7")).model), base);
    }

    #[test]
    fn a_mismatch_names_the_layer_that_changed() {
        let trained = Provenance::of(&program(BASE), None).unwrap();
        assert_eq!(trained.mismatch(&program(BASE)), None);
        let why = trained.mismatch(&program(&BASE.replace("out=4", "out=8"))).unwrap();
        assert!(
            why.contains("layer 1 differs: the weights have `conv1: conv1d 1→4 k=9 → [4, 32]`, the file has `conv1: conv1d 1→8"),
            "{why}"
        );
        let why = trained.mismatch(&program(&BASE.replace("model m", "model other"))).unwrap();
        assert!(why.contains("the model's name changed from `m` to `other`"), "{why}");
        let constrained = BASE.replace("k=5)", "k=5) @lowpass(cutoff=0.2)");
        assert!(trained.mismatch(&program(&constrained)).unwrap().contains("every layer has the same size"));
    }

    const CLASSIFIER: &str =
        "model c {\n  input [1, 32]\n  conv(out=4, k=9)\n  global_maxpool\n  linear(out=3)\n}\ndata waveforms(n=30, classes=3)\n";

    #[test]
    fn metadata_reads_back_from_a_safetensors_header() {
        let source = ProgramSource { text: BASE.into(), dir: PathBuf::from("/somewhere") };
        let written = Provenance::of(&program(CLASSIFIER), Some(&source)).unwrap();
        let path = std::env::temp_dir().join(format!("lpn-provenance-{}.safetensors", std::process::id()));
        let tensor = candle_core::Tensor::zeros(2, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let bytes = safetensors::serialize([("a", tensor)], Some(written.metadata())).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let read = Provenance::read(&path).unwrap().unwrap();
        assert_eq!(read, written);
        assert_eq!(read.class_labels.as_deref(), Some(&["0".to_string(), "1".into(), "2".into()][..]));
        let tensor = candle_core::Tensor::zeros(2, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        std::fs::write(&path, safetensors::serialize([("a", tensor)], None).unwrap()).unwrap();
        assert_eq!(Provenance::read(&path).unwrap(), None);
        std::fs::remove_file(&path).unwrap();
    }
}
