//! Named tensors and how they are read back: the typed name of every tensor
//! a network stores (`conv2.weight`, `bn1.running_mean`), the one check a
//! tensor read from a file goes through (present, with the shape — and for a
//! checkpoint the type — the network has), and the one wording of what can go
//! wrong, whether the tensors come from `@init(file)`, a checkpoint or a
//! weights file given to `lpnc eval` / `lpnc response`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

/// What a stored tensor of a layer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Weight,
    Bias,
    /// Batch-norm running statistics (not trained, but saved).
    RunningMean,
    RunningVar,
}

impl Kind {
    /// The name's suffix, as PyTorch's `state_dict` spells it.
    pub fn suffix(self) -> &'static str {
        match self {
            Kind::Weight => "weight",
            Kind::Bias => "bias",
            Kind::RunningMean => "running_mean",
            Kind::RunningVar => "running_var",
        }
    }
}

/// A tensor's name in a weights file: `conv2.weight`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ParamName {
    pub layer: String,
    pub kind: Kind,
}

impl ParamName {
    pub fn new(layer: &str, kind: Kind) -> ParamName {
        ParamName { layer: layer.to_string(), kind }
    }

    /// The random stream its initial values are drawn from (`init/conv2.weight`):
    /// one per tensor, so changing one layer's `@init` leaves the others' values.
    pub fn init_stream(&self) -> String {
        format!("init/{self}")
    }
}

impl std::fmt::Display for ParamName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.layer, self.kind.suffix())
    }
}

impl PartialEq<str> for ParamName {
    fn eq(&self, other: &str) -> bool {
        other.strip_suffix(self.kind.suffix()).and_then(|s| s.strip_suffix('.')) == Some(self.layer.as_str())
    }
}

impl serde::Serialize for ParamName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where tensors are read from: what a message calls them.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// A model.safetensors written by `lpnc train`.
    WeightsFile,
    /// A run's checkpoint (the exact training state).
    Checkpoint,
    /// The file of a layer's `@init(file=…)`.
    Init { layer: &'a str, path: &'a Path },
}

impl std::fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::WeightsFile => write!(f, "the weights file"),
            Source::Checkpoint => write!(f, "the checkpoint"),
            Source::Init { layer, path } => write!(f, "{} (`@init` of {layer})", path.display()),
        }
    }
}

/// What a loaded tensor must be.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    pub shape: &'a [usize],
    /// The exact type, where it must be kept (a checkpoint's state); `None`:
    /// any, converted on loading.
    pub dtype: Option<DType>,
}

/// Why tensors could not be loaded: one wording for every source.
#[derive(Debug)]
pub enum LoadError {
    /// Not a safetensors file (`source`: the file, as a message names it).
    Unreadable {
        source: String,
        why: String,
    },
    /// `name` is not there; `others` more of the model's tensors are missing
    /// too; `foreign` is a tensor there that the model does not have; `has`
    /// lists what is there (for a file the user named).
    Missing {
        source: String,
        name: String,
        others: usize,
        foreign: Option<String>,
        has: Option<Vec<String>>,
    },
    /// Tensors the model does not have: weights of another model.
    Foreign {
        source: String,
        name: String,
        more: usize,
    },
    Shape {
        source: String,
        name: String,
        found: Vec<usize>,
        needs: Vec<usize>,
    },
    Type {
        source: String,
        name: String,
        found: DType,
        needs: DType,
    },
    NotFinite {
        source: String,
        name: String,
        bad: usize,
        of: usize,
    },
    Tensor(candle_core::Error),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Unreadable { source, why } => write!(f, "cannot read {source}: {why}"),
            LoadError::Missing { source, name, others, foreign, has } => {
                write!(f, "{source} has no tensor `{name}`")?;
                if *others > 0 {
                    write!(f, " (nor {others} other tensor(s) of this model)")?;
                }
                if let Some(x) = foreign {
                    write!(f, " and has `{x}`, which this model does not have: it was written for another model")?;
                }
                match has {
                    Some(names) => write!(f, " (it has: {})", names.join(", ")),
                    None => Ok(()),
                }
            }
            LoadError::Foreign { source, name, more } => {
                let more = if *more > 0 { format!(" (and {more} more)") } else { String::new() };
                write!(f, "{source} has a tensor `{name}` that this model does not have{more}: it was written for another model")
            }
            LoadError::Shape { source, name, found, needs } => {
                write!(f, "`{name}` has shape {found:?} in {source}, the model needs {needs:?}")
            }
            LoadError::Type { source, name, found, needs } => write!(f, "`{name}` is {found:?} in {source}, the model has {needs:?}"),
            LoadError::NotFinite { name, bad, of, .. } => {
                write!(f, "`{name}` holds {bad} value(s) that are NaN or infinite (of {of}): these weights come from a run that diverged")
            }
            LoadError::Tensor(e) => write!(f, "tensor error: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<candle_core::Error> for LoadError {
    fn from(e: candle_core::Error) -> Self {
        LoadError::Tensor(e)
    }
}

/// Every tensor of the safetensors file `path`, read as `source`.
pub fn read(path: &Path, source: Source) -> Result<HashMap<String, Tensor>, LoadError> {
    let source = match source {
        Source::WeightsFile | Source::Checkpoint => path.display().to_string(),
        Source::Init { .. } => source.to_string(),
    };
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| LoadError::Unreadable { source, why: e.to_string() })
}

/// The one check of a tensor read back: `key` is there, with the shape (and
/// type, where it must be exact) the network has.
pub fn fetch(tensors: &HashMap<String, Tensor>, key: &str, expect: Expect, source: Source) -> Result<Tensor, LoadError> {
    let Some(t) = tensors.get(key) else {
        // A file the user named lists what it has instead.
        let has = matches!(source, Source::Init { .. }).then(|| {
            let mut names: Vec<String> = tensors.keys().cloned().collect();
            names.sort();
            names
        });
        return Err(LoadError::Missing { source: source.to_string(), name: key.to_string(), others: 0, foreign: None, has });
    };
    if t.dims() != expect.shape {
        let (found, needs) = (t.dims().to_vec(), expect.shape.to_vec());
        return Err(LoadError::Shape { source: source.to_string(), name: key.to_string(), found, needs });
    }
    match expect.dtype {
        Some(needs) if t.dtype() != needs => {
            Err(LoadError::Type { source: source.to_string(), name: key.to_string(), found: t.dtype(), needs })
        }
        Some(_) | None => Ok(t.clone()),
    }
}

/// Checks a whole weights file against what a model expects (names and
/// shapes, `Net::expected_tensors`): every expected tensor present with its
/// shape, no tensor the model does not have (weights of another model), every
/// value a finite number (a run that blew up). The first problem found,
/// naming the tensor; missing and extra names are checked before shapes and
/// values, so weights of another model are called that rather than a shape
/// mismatch.
pub fn validate_weights(expected: &[(String, Vec<usize>)], tensors: &HashMap<String, Tensor>) -> Result<(), LoadError> {
    let source = Source::WeightsFile;
    let wanted: HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let mut extra: Vec<&str> = tensors.keys().map(|k| k.as_str()).filter(|k| !wanted.contains(k)).collect();
    extra.sort();
    let missing: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).filter(|n| !tensors.contains_key(*n)).collect();
    if let Some(first) = missing.first() {
        let (name, others, foreign) = (first.to_string(), missing.len() - 1, extra.first().map(|x| x.to_string()));
        return Err(LoadError::Missing { source: source.to_string(), name, others, foreign, has: None });
    }
    if let Some(first) = extra.first() {
        return Err(LoadError::Foreign { source: source.to_string(), name: first.to_string(), more: extra.len() - 1 });
    }
    for (name, shape) in expected {
        let t = fetch(tensors, name, Expect { shape, dtype: None }, source)?;
        let values: Vec<f64> = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let bad = values.iter().filter(|x| !x.is_finite()).count();
        if bad > 0 {
            return Err(LoadError::NotFinite { source: source.to_string(), name: name.clone(), bad, of: values.len() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_reads_as_pytorch_spells_it_and_compares_with_its_text() {
        let name = ParamName::new("conv2", Kind::RunningMean);
        assert_eq!(name.to_string(), "conv2.running_mean");
        assert_eq!(name.init_stream(), "init/conv2.running_mean");
        assert!(name == *"conv2.running_mean");
        assert!(name != *"conv2.running_var" && name != *"conv.running_mean" && name != *"xconv2.running_mean");
    }

    #[test]
    fn every_source_gets_the_same_words() {
        let tensors = HashMap::from([("a.weight".to_string(), Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap())]);
        let expect = Expect { shape: &[3, 2], dtype: None };
        let shape = fetch(&tensors, "a.weight", expect, Source::WeightsFile).unwrap_err().to_string();
        assert_eq!(shape, "`a.weight` has shape [2, 3] in the weights file, the model needs [3, 2]");
        let init = Source::Init { layer: "a", path: Path::new("w.safetensors") };
        let missing = fetch(&tensors, "a.bias", expect, init).unwrap_err().to_string();
        assert_eq!(missing, "w.safetensors (`@init` of a) has no tensor `a.bias` (it has: a.weight)");
        let exact = Expect { shape: &[2, 3], dtype: Some(DType::F64) };
        let dtype = fetch(&tensors, "a.weight", exact, Source::Checkpoint).unwrap_err().to_string();
        assert_eq!(dtype, "`a.weight` is F32 in the checkpoint, the model has F64");
    }
}
