//! Materialising the data a checked program declares: the built-in generators
//! (`sines`, `waveforms`) and the CSV readers (`ucr`, `signal`; `pairs` in
//! [`pairs`]), split into training, validation and test sets.
//!
//! Plain `f32` vectors, no tensors: the training code turns them into tensors.
//! All randomness comes from [`Rng`], one derived stream per purpose, so the
//! data is the same bit for bit for a given seed. The checker has already
//! probed the files lightly; this module reads them fully and still reports
//! every problem as a [`DataError`] naming the file and the line, never a panic.

use std::f64::consts::{PI, TAU};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::language::check::environment::{EntryKind, Environment, RealEnvironment};
use crate::language::ir::{DataSpec, Normalize, Source, Stream};
use crate::rng::Rng;

pub mod folders;
pub mod images;
pub mod numpy;
pub mod pairs;
pub mod predict_input;
pub mod stream;
pub mod ts;
pub mod wav;

/// Examples in row-major f32: example i occupies `inputs[i*per_example .. (i+1)*per_example]`,
/// laid out in the model's input shape (e.g. `[1, 1024]` or `[1, 8, 8]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub inputs: Vec<f32>,
    pub targets: Targets,
    /// Number of examples.
    pub len: usize,
    /// Shape of one example (the model's input shape, without batch axis).
    pub shape: Vec<usize>,
    /// Where the inputs are read from a batch at a time (`stream = …`);
    /// `inputs` is then empty.
    pub stream: Option<stream::StreamedInputs>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// Same layout as the inputs: the clean signals (denoising).
    Signals(Vec<f32>),
    /// Class index per example (classification).
    Classes(Vec<usize>),
    /// Regression targets, `shape` per example as the data gives them (a
    /// `pairs` row, a float `npy` array's example); the training step lays
    /// each out in the model's output shape, whose size the checker matched.
    Regression { values: Vec<f32>, shape: Vec<usize> },
}

impl Targets {
    /// What the targets make the model learn, for messages.
    fn task_words(&self) -> &'static str {
        match self {
            Targets::Signals(_) => "denoising",
            Targets::Classes(_) => "classification",
            Targets::Regression { .. } => "regression",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Splits {
    pub train: Dataset,
    pub val: Dataset,
    pub test: Option<Dataset>,
    /// Number of classes, for classification.
    pub classes: Option<usize>,
    /// The rescaling applied to every part's inputs (`normalize`), fitted on
    /// the training part; `None` for `normalize = none`.
    pub normalization: Option<Normalization>,
}

/// A per-channel rescaling of inputs, x → (x − shift[c]) / scale[c], with the
/// training part's figures (`normalize = zscore | minmax`). Channel c is the
/// input's first axis for inputs of rank 2 or more; a `[features]` input is
/// one channel. Stored with the weights so `lpnc predict` applies the same.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    /// `zscore` or `minmax`, for people reading the metadata.
    pub kind: String,
    pub shift: Vec<f32>,
    pub scale: Vec<f32>,
}

impl Normalization {
    /// The figures of `data`'s inputs; `None` for `Normalize::None`. A
    /// channel with no spread keeps scale 1 (it is only shifted).
    pub fn fit(how: Normalize, data: &Dataset) -> Result<Option<Normalization>, DataError> {
        if how == Normalize::None {
            return Ok(None);
        }
        let channels = channels_of(&data.shape);
        let per_channel = data.per_example() / channels.max(1);
        let mut stats = vec![(0.0f64, 0.0f64, f64::INFINITY, f64::NEG_INFINITY, 0usize); channels];
        // Example by example, channel by channel: the sums run in the same
        // order whether the inputs are in memory or streamed.
        let add = |example: &[f32]| {
            for (k, chunk) in example.chunks(per_channel.max(1)).enumerate() {
                let s = &mut stats[k % channels];
                for &x in chunk {
                    let x = x as f64;
                    (s.0, s.1, s.2, s.3, s.4) = (s.0 + x, s.1 + x * x, s.2.min(x), s.3.max(x), s.4 + 1);
                }
            }
        };
        match &data.stream {
            Some(streamed) => streamed.for_each_example(add)?,
            None => data.inputs.chunks(data.per_example().max(1)).for_each(add),
        }
        let (kind, pairs): (&str, Vec<(f64, f64)>) = match how {
            Normalize::None => return Ok(None),
            Normalize::Zscore => (
                "zscore",
                stats
                    .iter()
                    .map(|s| {
                        let n = s.4.max(1) as f64;
                        let mean = s.0 / n;
                        (mean, (s.1 / n - mean * mean).max(0.0).sqrt())
                    })
                    .collect(),
            ),
            Normalize::Minmax => ("minmax", stats.iter().map(|s| if s.4 == 0 { (0.0, 1.0) } else { (s.2, s.3 - s.2) }).collect()),
        };
        let scale = pairs.iter().map(|&(_, spread)| if spread > 0.0 && spread.is_finite() { spread as f32 } else { 1.0 }).collect();
        Ok(Some(Normalization { kind: kind.into(), shift: pairs.iter().map(|&(shift, _)| shift as f32).collect(), scale }))
    }

    /// Rescales examples of `shape`, laid out one after another, in place.
    pub fn apply(&self, inputs: &mut [f32], shape: &[usize]) {
        let channels = self.shift.len().max(1);
        let per_channel = shape.iter().product::<usize>() / channels;
        for (k, chunk) in inputs.chunks_mut(per_channel.max(1)).enumerate() {
            let (shift, scale) = (self.shift[k % channels], self.scale[k % channels]);
            for x in chunk {
                *x = (*x - shift) / scale;
            }
        }
    }
}

/// Channels of an input shape for [`Normalization`].
fn channels_of(shape: &[usize]) -> usize {
    if shape.len() >= 2 { shape[0] } else { 1 }
}

/// A problem with the data, found before the first training step. Shown as
/// `path:line:column: message` (the parts that apply), as editors and
/// compilers write locations.
#[derive(Debug, Clone, PartialEq)]
pub struct DataError {
    pub path: Option<PathBuf>,
    /// 1-based line of the file, where one applies.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the line, where one applies: the start
    /// of the offending field, or the end of a row that is too short.
    pub column: Option<usize>,
    pub message: String,
}

impl DataError {
    fn new(message: impl Into<String>) -> Self {
        DataError { path: None, line: None, column: None, message: message.into() }
    }
    fn file(path: &Path, message: impl Into<String>) -> Self {
        DataError { path: Some(path.to_path_buf()), line: None, column: None, message: message.into() }
    }
    fn at(path: &Path, line: usize, message: impl Into<String>) -> Self {
        DataError { path: Some(path.to_path_buf()), line: Some(line), column: None, message: message.into() }
    }
    fn at_column(path: &Path, line: usize, column: usize, message: impl Into<String>) -> Self {
        DataError { path: Some(path.to_path_buf()), line: Some(line), column: Some(column), message: message.into() }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}:", path.display())?;
        }
        match (self.line, self.column) {
            (Some(line), Some(column)) if self.path.is_some() => write!(f, "{line}:{column}:")?,
            (Some(line), None) if self.path.is_some() => write!(f, "{line}:")?,
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}:")?,
            (Some(line), None) => write!(f, "line {line}:")?,
            (None, _) => {}
        }
        if self.path.is_some() || self.line.is_some() {
            f.write_str(" ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for DataError {}

impl Dataset {
    /// Number of scalars in one example.
    pub fn per_example(&self) -> usize {
        self.shape.iter().product()
    }

    /// The examples at `indices`, in that order (repeats allowed).
    ///
    /// Panics if an index is `>= self.len` (a programming error, not a data error).
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let per = self.per_example();
        let gather = |xs: &[f32]| {
            let mut out = Vec::with_capacity(indices.len() * per);
            for &i in indices {
                assert!(i < self.len, "subset index {i} out of range for a data set of {} examples", self.len);
                out.extend_from_slice(&xs[i * per..(i + 1) * per]);
            }
            out
        };
        let targets = match &self.targets {
            Targets::Signals(s) => Targets::Signals(gather(s)),
            Targets::Classes(c) => Targets::Classes(indices.iter().map(|&i| c[i]).collect()),
            Targets::Regression { values, shape } => {
                let per: usize = shape.iter().product();
                let values = indices.iter().flat_map(|&i| values[i * per..(i + 1) * per].iter().copied()).collect();
                Targets::Regression { values, shape: shape.clone() }
            }
        };
        let stream = self.stream.as_ref().map(|streamed| streamed.subset(indices));
        let inputs = if stream.is_some() { Vec::new() } else { gather(&self.inputs) };
        Dataset { inputs, targets, len: indices.len(), shape: self.shape.clone(), stream }
    }

    /// Appends the inputs of the examples at `indices`, in that order, to
    /// `out`: copied, or read from the file of a streamed set.
    pub fn gather_inputs(&self, indices: &[usize], out: &mut Vec<f32>) -> Result<(), DataError> {
        if let Some(streamed) = &self.stream {
            return streamed.gather(indices, &self.shape, out);
        }
        let per = self.per_example();
        for &i in indices {
            out.extend_from_slice(&self.inputs[i * per..(i + 1) * per]);
        }
        Ok(())
    }
}

/// Room for `examples × per_example` values of a data set, or an error
/// saying the data does not fit in memory: a failed allocation would abort
/// the process instead. (`lpnc check` estimates the same need, E0046; this is
/// for what it could not foresee.)
fn buffer<T>(examples: usize, per_example: usize, what: &str) -> Result<Vec<T>, DataError> {
    let mut values = Vec::new();
    match examples.checked_mul(per_example).map(|count| values.try_reserve_exact(count)) {
        Some(Ok(())) => Ok(values),
        _ => {
            let needed = (examples as u128 * per_example as u128 * std::mem::size_of::<T>() as u128).min(u64::MAX as u128) as u64;
            Err(DataError::new(format!(
                "{what}: {examples} examples of {per_example} values need {} of memory, more than this process can have; \
                 use fewer or shorter examples",
                crate::language::diagnostic::bytes(needed)
            )))
        }
    }
}

/// [`Dataset::subset`] with an error instead of an abort when memory runs out.
fn try_subset(data: &Dataset, indices: &[usize], what: &str) -> Result<Dataset, DataError> {
    let gather = |xs: &[f32], per: usize| -> Result<Vec<f32>, DataError> {
        let mut out = buffer(indices.len(), per, what)?;
        for &i in indices {
            out.extend_from_slice(&xs[i * per..(i + 1) * per]);
        }
        Ok(out)
    };
    let per = data.per_example();
    let targets = match &data.targets {
        Targets::Signals(s) => Targets::Signals(gather(s, per)?),
        Targets::Classes(c) => Targets::Classes(indices.iter().map(|&i| c[i]).collect()),
        Targets::Regression { values, shape } => {
            Targets::Regression { values: gather(values, shape.iter().product())?, shape: shape.clone() }
        }
    };
    let stream = data.stream.as_ref().map(|streamed| streamed.subset(indices));
    let inputs = if stream.is_some() { Vec::new() } else { gather(&data.inputs, per)? };
    Ok(Dataset { inputs, targets, len: indices.len(), shape: data.shape.clone(), stream })
}

/// Loads the training, validation and test data of `spec`. `input` is the
/// model's input shape (without batch axis).
///
/// Classification data must give the model something to learn for every
/// class, so a label with no training example is an error: a label of the
/// validation or test file that the training file lacks, and a label whose
/// every example `val_split` moves to the validation set. (The class count of
/// a `ucr` file is its number of distinct labels, so no class can be absent
/// otherwise; a model output with more logits than that is the checker's
/// E0044.)
pub fn load(spec: &DataSpec, input: &[usize]) -> Result<Splits, DataError> {
    // A stratified split (`test_split`) keeps every class in training.
    let split_off = if spec.val.is_none() && !stratified(spec) { Some(spec.val_split) } else { None };
    let train = load_source(&spec.train, input, None, split_off, spec.stream)?;
    if matches!(train.data.targets, Targets::Classes(_)) && train.classes.unwrap_or(0) < 2 {
        return Err(DataError::new("the training data has fewer than two classes; classification needs at least two"));
    }
    let other = |source: &Source, what: &str| -> Result<Dataset, DataError> {
        let loaded = load_source(source, input, train.labels.as_deref(), None, spec.stream)?;
        let (theirs, ours) = (loaded.data.targets.task_words(), train.data.targets.task_words());
        if theirs != ours {
            return Err(DataError::new(format!("the {what} data is for {theirs}, but the training data is for {ours}")));
        }
        if let (Targets::Regression { shape: theirs, .. }, Targets::Regression { shape: ours, .. }) =
            (&loaded.data.targets, &train.data.targets)
            && theirs.iter().product::<usize>() != ours.iter().product::<usize>()
        {
            return Err(DataError::new(format!("the {what} data has targets of shape {theirs:?}, the training data of shape {ours:?}")));
        }
        if let (Some(theirs), Some(ours)) = (loaded.classes, train.classes)
            && theirs > ours
        {
            return Err(DataError::new(format!("the {what} data has {theirs} classes, the training data only {ours}")));
        }
        Ok(loaded.data)
    };
    let (train_set, val, test) = if stratified(spec) {
        let val_share = if spec.val.is_some() { 0.0 } else { spec.val_split };
        let [tr, va, te] = stratified_indices(&groups(&train.data), val_share, spec.test_split, seed_of(&spec.train));
        let val = match &spec.val {
            Some(v) => other(v, "validation")?,
            None => try_subset(&train.data, &va, "the validation part of the data")?,
        };
        let test = try_subset(&train.data, &te, "the test part of the data")?;
        (try_subset(&train.data, &tr, "the training part of the data")?, val, Some(test))
    } else {
        let test = spec.test.as_ref().map(|t| other(t, "test")).transpose()?;
        let (train_set, val) = match &spec.val {
            Some(v) => (try_subset(&train.data, &(0..train.data.len).collect::<Vec<_>>(), "the training data")?, other(v, "validation")?),
            None => split(&train.data, spec.val_split, seed_of(&spec.train))?,
        };
        (train_set, val, test)
    };
    if let (Targets::Classes(labels), Some(classes)) = (&train_set.targets, train.classes) {
        let mut seen = vec![false; classes];
        for &label in labels {
            seen[label] = true;
        }
        if let Some(missing) = seen.iter().position(|&s| !s) {
            let why = match spec.train {
                Source::Waveforms { n, classes, seed, .. } => waveforms_missing_class(n, classes, seed, split_off),
                Source::Sines { .. }
                | Source::Ucr { .. }
                | Source::Signal { .. }
                | Source::Npy { .. }
                | Source::Npz { .. }
                | Source::Ts { .. }
                | Source::Pairs { .. }
                | Source::Wav { .. }
                | Source::Images { .. } => None,
            };
            return Err(DataError::new(why.unwrap_or_else(|| {
                format!("class {missing} has no example in the training data: a class without examples cannot be learnt")
            })));
        }
    }
    let (mut train_set, mut val, mut test) = (train_set, val, test);
    let normalization = Normalization::fit(spec.normalize, &train_set)?;
    if let Some(norm) = &normalization {
        if matches!(train_set.targets, Targets::Signals(_)) {
            return Err(DataError::new("`normalize` rescales the inputs of classification data, but this data is for denoising"));
        }
        for part in [Some(&mut train_set), Some(&mut val), test.as_mut()].into_iter().flatten() {
            match &mut part.stream {
                Some(streamed) => streamed.normalize(norm),
                None => norm.apply(&mut part.inputs, &part.shape),
            }
        }
    }
    Ok(Splits { train: train_set, val, test, classes: train.classes, normalization })
}

/// The seed of the validation split of a `ucr` file, which has no seed of its own.
pub const UCR_SPLIT_SEED: u64 = 0;

/// The seed of a source, [`UCR_SPLIT_SEED`] for sources without one (the val split's stream).
fn seed_of(source: &Source) -> u64 {
    match source {
        Source::Sines { seed, .. } | Source::Waveforms { seed, .. } | Source::Signal { seed, .. } | Source::Wav { seed, .. } => *seed,
        Source::Ucr { .. } | Source::Npy { .. } | Source::Npz { .. } | Source::Ts { .. } | Source::Pairs { .. } | Source::Images { .. } => {
            UCR_SPLIT_SEED
        }
    }
}

/// The training and validation indices of a data set of `len` examples, each
/// ascending. Validation takes the first round(len·fraction) examples of a
/// seeded permutation (at least one when the fraction is positive and there
/// are two examples, and never all of them).
pub fn split_indices(len: usize, fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(DataError::new(format!("`val_split` must be at least 0 and below 1, not {fraction}")));
    }
    let mut take = (len as f64 * fraction).round() as usize;
    if fraction > 0.0 && len >= 2 {
        take = take.max(1);
    }
    take = take.min(len.saturating_sub(1));
    let perm = Rng::derive(seed, "val_split").permutation(len);
    let mut val: Vec<usize> = perm[..take].to_vec();
    let mut train: Vec<usize> = perm[take..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    Ok((train, val))
}

/// Whether `spec` splits its test set off the training source (`test_split`
/// without a `test` source): then validation and test parts are drawn per
/// class ([`stratified_indices`]). Without it, `val_split` keeps its earlier
/// unstratified draw ([`split_indices`]), so runs that do not ask for a test
/// split get the same data as before.
pub fn stratified(spec: &DataSpec) -> bool {
    spec.test.is_none() && spec.test_split > 0.0
}

/// The group of each example for a stratified split: its class, or one group
/// for denoising data.
fn groups(data: &Dataset) -> Vec<usize> {
    match &data.targets {
        Targets::Classes(c) => c.clone(),
        Targets::Signals(_) | Targets::Regression { .. } => vec![0; data.len],
    }
}

/// How a group (class) of `n` examples divides into (training, validation,
/// test) with these shares: round(n·share) each, but at least one example
/// stays for training (validation gives way first).
pub fn stratified_counts(n: usize, val: f64, test: f64) -> (usize, usize, usize) {
    let mut n_test = (n as f64 * test).round() as usize;
    let mut n_val = (n as f64 * val).round() as usize;
    let keep = n.min(1);
    n_val = n_val.min(n - keep - n_test.min(n - keep));
    n_test = n_test.min(n - keep - n_val);
    (n - n_val - n_test, n_val, n_test)
}

/// The training, validation and test indices (each ascending) of examples in
/// `groups` (a class each): every group is permuted by one seeded stream and
/// divided as [`stratified_counts`] says, validation first, then test.
pub fn stratified_indices(groups: &[usize], val: f64, test: f64, seed: u64) -> [Vec<usize>; 3] {
    let mut members: std::collections::BTreeMap<usize, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, &g) in groups.iter().enumerate() {
        members.entry(g).or_default().push(i);
    }
    let mut rng = Rng::derive(seed, "stratified_split");
    let mut parts: [Vec<usize>; 3] = Default::default();
    for indices in members.values() {
        let perm = rng.permutation(indices.len());
        let (_, n_val, n_test) = stratified_counts(indices.len(), val, test);
        for (k, &p) in perm.iter().enumerate() {
            let part = if k < n_val {
                1
            } else if k < n_val + n_test {
                2
            } else {
                0
            };
            parts[part].push(indices[p]);
        }
    }
    for part in &mut parts {
        part.sort_unstable();
    }
    parts
}

/// Training and validation sets out of one data set ([`split_indices`]); both
/// keep the original order of their examples.
fn split(data: &Dataset, fraction: f64, seed: u64) -> Result<(Dataset, Dataset), DataError> {
    let (train, val) = split_indices(data.len, fraction, seed)?;
    Ok((try_subset(data, &train, "the training part of the data")?, try_subset(data, &val, "the validation part of the data")?))
}

struct Loaded {
    data: Dataset,
    classes: Option<usize>,
    /// The distinct labels of a UCR file, ascending: label `labels[c]` is class `c`.
    labels: Option<Vec<Label>>,
}

/// One source. `known` are the training set's labels, for a UCR validation or
/// test file; `split_off` is the `val_split` the training source will undergo;
/// `stream` says whether an `npy` file's inputs are read a batch at a time.
fn load_source(
    source: &Source,
    input: &[usize],
    known: Option<&[Label]>,
    split_off: Option<f64>,
    stream: Stream,
) -> Result<Loaded, DataError> {
    match source {
        &Source::Sines { n, components, max_freq, noise, seed } => {
            let data = sines(n, components, max_freq, noise, seed, input)?;
            Ok(Loaded { data, classes: None, labels: None })
        }
        &Source::Waveforms { n, classes, noise, seed } => {
            let data = waveforms(n, classes, noise, seed, input)?;
            Ok(Loaded { data, classes: Some(classes), labels: None })
        }
        Source::Ucr { path } => ucr(path, input, known, split_off),
        &Source::Signal { ref path, column, stride, noise, seed } => {
            let data = signal(path, column, Windowing { stride, noise, seed }, input)?;
            Ok(Loaded { data, classes: None, labels: None })
        }
        Source::Npy { path, labels } if stream::streams(stream, source, &RealEnvironment::default()) => {
            numpy::load_npy_streamed(path, labels, input, known)
        }
        &Source::Wav { ref path, stride, noise, seed, .. } => wav::load_wav(path, Windowing { stride, noise, seed }, input, known),
        Source::Images { path, size, grayscale } => images::load_images(path, *size, *grayscale, input, known),
        Source::Npy { path, labels } => numpy::load_npy(path, labels, input, known),
        Source::Npz { path, x, y } => numpy::load_npz(path, x, y, input, known),
        Source::Ts { path } => ts::load_ts(path, input, known),
        Source::Pairs { x, y } => pairs::load_pairs(x, y, input),
    }
}

/// The length L of a `[1, L]` input, for the sources that make 1-channel signals.
fn signal_length(input: &[usize], what: &str) -> Result<usize, DataError> {
    match input {
        [1, len] if *len > 0 => Ok(*len),
        _ => Err(DataError::new(format!("`{what}` gives 1-channel signals `[1, length]`, but the model's input is {input:?}"))),
    }
}

fn sines(n: usize, components: usize, max_freq: f64, noise: f64, seed: u64, input: &[usize]) -> Result<Dataset, DataError> {
    let len = signal_length(input, "sines")?;
    if !(max_freq > 0.0 && max_freq <= 1.0) {
        return Err(DataError::new(format!("`sines`: `max_freq` must be above 0 and at most 1 (Nyquist), not {max_freq}")));
    }
    if components == 0 {
        return Err(DataError::new("`sines`: `components` must be at least 1"));
    }
    let mut rng = Rng::derive(seed, "sines");
    let scale = 1.0 / (components as f64).sqrt();
    let mut inputs = buffer(n, len, "`sines`")?;
    let mut targets = buffer(n, len, "`sines`")?;
    let mut clean: Vec<f64> = buffer(1, len, "`sines`")?;
    clean.resize(len, 0.0);
    for _ in 0..n {
        clean.fill(0.0);
        for _ in 0..components {
            // (0.1·max_freq, max_freq]: uniform() is in [0, 1).
            let freq = max_freq - 0.9 * max_freq * rng.uniform();
            let phase = rng.range(0.0, TAU);
            let amp = rng.range(0.3, 1.0) * scale;
            for (t, c) in clean.iter_mut().enumerate() {
                *c += amp * (PI * freq * t as f64 + phase).sin();
            }
        }
        // The noise is drawn even when its level is 0, so the clean signals do
        // not depend on `noise`.
        for &c in &clean {
            targets.push(c as f32);
            inputs.push((c + noise * rng.normal()) as f32);
        }
    }
    Ok(Dataset { inputs, targets: Targets::Signals(targets), len: n, shape: input.to_vec(), stream: None })
}

fn waveforms(n: usize, classes: usize, noise: f64, seed: u64, input: &[usize]) -> Result<Dataset, DataError> {
    let len = signal_length(input, "waveforms")?;
    if !(2..=5).contains(&classes) {
        return Err(DataError::new(format!("`waveforms` has 2 to 5 classes, not {classes}")));
    }
    let mut rng = Rng::derive(seed, "waveforms");
    let mut inputs = buffer(n, len, "`waveforms`")?;
    let labels = waveform_labels(&mut rng, n, classes);
    let span = (len.max(2) - 1) as f64;
    for &class in &labels {
        let freq = rng.range(0.02, 0.08);
        let phase = rng.range(0.0, TAU);
        let amp = rng.range(0.5, 1.5);
        for t in 0..len {
            let t = t as f64;
            let theta = PI * freq * t + phase;
            // Position within the period, in [0, 1).
            let u = (theta / TAU).rem_euclid(1.0);
            let clean = match class {
                0 => theta.sin(),
                1 => {
                    if theta.sin() >= 0.0 {
                        1.0
                    } else {
                        -1.0
                    }
                }
                2 => 2.0 * u - 1.0,
                3 => 1.0 - 4.0 * (u - 0.5).abs(),
                // Chirp: the frequency sweeps linearly from freq/2 to 2·freq over the window.
                _ => {
                    let (f0, f1) = (0.5 * freq, 2.0 * freq);
                    (PI * (f0 * t + (f1 - f0) * t * t / (2.0 * span)) + phase).sin()
                }
            };
            inputs.push((amp * clean + noise * rng.normal()) as f32);
        }
    }
    Ok(Dataset { inputs, targets: Targets::Classes(labels), len: n, shape: input.to_vec(), stream: None })
}

/// The bytes of a data file, decompressed when it is gzip-compressed (it
/// starts with gzip's magic bytes `1f 8b`, whatever its name: `f.csv.gz` as
/// `gzip f.csv` writes it). A folder, a missing or unreadable file and a
/// corrupt or truncated gzip stream are errors. The file is read from `env`
/// (the checker's environment; training reads this machine's files).
pub fn read_bytes(env: &dyn Environment, path: &Path) -> Result<Vec<u8>, DataError> {
    match env.kind(path) {
        Some(EntryKind::Folder) => return Err(DataError::file(path, "is a folder, not a file")),
        // A named pipe would be waited on, a device read without end.
        Some(EntryKind::Other(what)) => return Err(DataError::file(path, format!("is not a regular file: it is {what}"))),
        Some(EntryKind::File) | None => {}
    }
    let bytes = env.read(path).map_err(|e| {
        DataError::file(
            path,
            match e.kind() {
                std::io::ErrorKind::NotFound => "the file does not exist".to_string(),
                std::io::ErrorKind::PermissionDenied => "the file cannot be read: permission denied".to_string(),
                _ => format!("the file cannot be read: {e}"),
            },
        )
    })?;
    if !bytes.starts_with(&[0x1F, 0x8B]) {
        return Ok(bytes);
    }
    let mut plain = Vec::new();
    // Several gzip members one after another are one file, as `gunzip` reads them.
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&bytes[..]), &mut plain)
        .map_err(|e| DataError::file(path, format!("the file is gzip-compressed but cannot be decompressed: {e}")))?;
    Ok(plain)
}

/// The whole file as UTF-8 text, without a byte-order mark, with old Mac line
/// ends (`\r` alone) read as newlines (Windows' `\r\n` needs nothing). A
/// folder, a missing or unreadable file, text that is not UTF-8 and a file
/// without any non-blank line are errors. A gzip-compressed file is read
/// decompressed ([`read_bytes`]).
pub fn read_text(env: &dyn Environment, path: &Path) -> Result<String, DataError> {
    let bytes = read_bytes(env, path)?;
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(DataError::file(path, "the file is UTF-16 text; save it as UTF-8 (or plain ASCII) comma-separated values"));
    }
    let mut text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let bytes = e.as_bytes();
            let at = e.utf8_error().valid_up_to();
            // Valid up to `at` by definition.
            let before = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
            let before = before.strip_prefix('\u{FEFF}').unwrap_or(before);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
            return Err(DataError::at_column(
                path,
                line,
                column,
                format!("byte 0x{:02X} is not UTF-8 text; save the file as UTF-8 (or plain ASCII)", bytes[at]),
            ));
        }
    };
    if text.starts_with('\u{FEFF}') {
        text.drain(..'\u{FEFF}'.len_utf8());
    }
    if text.contains('\r') && !text.contains('\n') {
        text = text.replace('\r', "\n");
    }
    if text.trim().is_empty() {
        return Err(DataError::file(
            path,
            if text.is_empty() { "the file is empty" } else { "the file is empty: it holds only blank lines" },
        ));
    }
    Ok(text)
}

/// The comma-separated fields of a line, each trimmed of blanks and of
/// surrounding double quotes, with the 1-based column (in characters) where
/// it starts.
fn fields(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut column = 1;
    for piece in line.split(',') {
        let trimmed = piece.trim_start();
        let lead = piece[..piece.len() - trimmed.len()].chars().count();
        let mut field = trimmed.trim_end();
        if field.len() >= 2 && field.starts_with('"') && field.ends_with('"') {
            field = field[1..field.len() - 1].trim();
        }
        out.push((column + lead, field));
        column += piece.chars().count() + 1;
    }
    out
}

/// A row of a CSV: its 1-based line number, the line, and its fields.
type CsvRow<'t> = (usize, &'t str, Vec<(usize, &'t str)>);

/// The non-blank rows of a comma-separated text: each row's 1-based line, the
/// line, and its fields ([`fields`]); a row written with another separator is
/// an error ([`other_separator`]).
fn csv_rows<'t>(path: &Path, text: &'t str) -> impl Iterator<Item = Result<CsvRow<'t>, DataError>> {
    text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()).map(move |(i, line)| match other_separator(path, i + 1, line) {
        Some(e) => Err(e),
        None => Ok((i + 1, line, fields(line))),
    })
}

/// The column just past the last non-blank character of a line.
fn end_column(line: &str) -> usize {
    line.trim_end().chars().count() + 1
}

/// A row written with another separator than commas (tab-, semicolon- or
/// space-separated files), if it is one: tabs and semicolons anywhere, spaces
/// between numbers in a row without commas (not in a header such as `ECG (mV)`).
fn other_separator(path: &Path, line_no: usize, line: &str) -> Option<DataError> {
    let start = line.len() - line.trim_start().len();
    let body = line.trim();
    let spaces = !body.contains(',') && body.split_whitespace().count() >= 2 && body.split_whitespace().all(|t| t.parse::<f64>().is_ok());
    for (name, sep) in [("tabs", '\t'), ("semicolons", ';'), ("spaces", ' ')] {
        if sep == ' ' && !spaces {
            continue;
        }
        if let Some(at) = body.find(sep) {
            let column = line[..start + at].chars().count() + 1;
            return Some(DataError::at_column(
                path,
                line_no,
                column,
                format!("the values are separated by {name}, but lpn reads comma-separated values: replace the {name} with commas"),
            ));
        }
    }
    None
}

/// A row that is a single field, which lacks what `needs`.
fn single_field(path: &Path, line_no: usize, line: &str, needs: &str) -> DataError {
    DataError::at_column(path, line_no, end_column(line), format!("this row has a single field, but {needs}"))
}

/// A CSV field as a finite f32. `name` says which field it is, for messages
/// (only called on an error); `last`: the row's last field.
fn number(field: &str, name: impl Fn() -> String, column: usize, last: bool, path: &Path, line: usize) -> Result<f32, DataError> {
    let reason = match field.parse::<f64>() {
        Ok(x) if x.is_finite() && (x as f32).is_finite() => return Ok(x as f32),
        Ok(x) if x.is_finite() => format!("{} is `{field}`, too large for 32-bit floats", name()),
        Ok(x) if x.is_nan() => format!("{} is `{field}`, not a finite number (lpn does not fill in missing values)", name()),
        Ok(_) => format!("{} is `{field}`, not a finite number", name()),
        Err(_) if field.is_empty() && last => format!("{} is empty, not a number (a comma at the end of the row?)", name()),
        Err(_) if field.is_empty() => format!("{} is empty, not a number", name()),
        Err(_) => format!("{} is `{field}`, not a number", name()),
    };
    Err(DataError::at_column(path, line, column, reason))
}

/// A class label as written in a classification file: a whole number (`2`,
/// `-1`, `3.0`) or a name (`standing`). A file's classes are its distinct
/// labels in sorted order: numbers first, in numeric order (`-1 < 2 < 10`),
/// then names in byte order (`B < a < b`, as UTF-8 bytes compare), so a
/// file may mix both. `2` and `2.0` are the same class; `2` and `02x` are not.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    Number(i64),
    Name(String),
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Number(n) => write!(f, "{n}"),
            Label::Name(name) => f.write_str(name),
        }
    }
}

/// One row of a UCR-style CSV: its label, and where the label is written.
#[derive(Clone, Debug, PartialEq)]
pub struct UcrRow {
    pub label: Label,
    /// 1-based line of the row.
    pub line: usize,
    /// 1-based column where the label starts.
    pub column: usize,
}

/// The rows of a UCR-style CSV: a label, then the values, every row as wide.
#[derive(Clone)]
pub struct UcrTable {
    pub rows: Vec<UcrRow>,
    /// Row-major values, `width` per row.
    pub values: Vec<f32>,
    pub width: usize,
    /// Line of the first row (for messages about all rows).
    pub first_line: usize,
}

/// Reads and validates a UCR-style CSV (also used by the checker's probe):
/// every row a label and the same number of finite values, comma-separated.
/// Errors name the line and the column of the offending field.
pub fn read_ucr(env: &dyn Environment, path: &Path) -> Result<UcrTable, DataError> {
    let text = read_text(env, path)?;
    let mut values = Vec::new();
    let mut rows: Vec<UcrRow> = Vec::new();
    let mut first: Option<(usize, usize)> = None; // (fields, line) of the first row
    for row in csv_rows(path, &text) {
        let (line_no, line, fields) = row?;
        if fields.len() < 2 {
            return Err(single_field(path, line_no, line, "a row needs a label and at least one value"));
        }
        match first {
            None => first = Some((fields.len(), line_no)),
            Some((width, at)) if width != fields.len() => {
                // Where the row goes wrong: its first extra field, or its end.
                let column = fields.get(width).map_or_else(|| end_column(line), |f| f.0);
                return Err(DataError::at_column(
                    path,
                    line_no,
                    column,
                    format!("this row has {} values after the label, but the first row (line {at}) has {}", fields.len() - 1, width - 1),
                ));
            }
            _ => {}
        }
        let (column, text) = fields[0];
        let row = UcrRow { label: label(text, path, line_no, column)?, line: line_no, column };
        // A first row of names, label and values alike, is a header.
        let header = rows.is_empty() && matches!(row.label, Label::Name(_));
        let last = fields.len() - 1;
        for (k, &(column, field)) in fields.iter().enumerate().skip(1) {
            let value = number(field, || format!("field {}", k + 1), column, k == last, path, line_no);
            values.push(value.map_err(|mut e| {
                if header {
                    e.message.push_str(" (the first row looks like a header line; ucr files have none: remove it)");
                }
                e
            })?);
        }
        rows.push(row);
    }
    let Some((width, first_line)) = first else {
        return Err(DataError::file(path, "the file has no rows"));
    };
    Ok(UcrTable { rows, values, width: width - 1, first_line })
}

/// The distinct labels of some rows, ascending: label `labels[c]` is class `c`.
pub fn distinct_labels(rows: &[UcrRow]) -> Vec<Label> {
    rows.iter().map(|r| r.label.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect()
}

/// The label of each class of a classification program, class `c` first at
/// `c`: a `ucr` training file's distinct labels (ascending, as [`load`]
/// numbers them), `waveforms`' class numbers; `None` for other tasks.
pub fn class_labels(spec: &DataSpec) -> Result<Option<Vec<Label>>, DataError> {
    match &spec.train {
        Source::Ucr { path } => Ok(Some(distinct_labels(&read_ucr(&RealEnvironment::default(), path)?.rows))),
        Source::Waveforms { classes, .. } => Ok(Some((0..*classes as i64).map(Label::Number).collect())),
        Source::Sines { .. } | Source::Signal { .. } | Source::Pairs { .. } => Ok(None),
        Source::Npy { labels, .. } => numpy::class_labels_npy(labels),
        Source::Npz { path, x, y } => numpy::class_labels_npz(path, x, y),
        Source::Ts { path } => Ok(Some(ts::read_ts(&RealEnvironment::default(), path)?.class_names())),
        Source::Wav { path, .. } => wav::class_labels_wav(path),
        Source::Images { path, .. } => images::class_labels_images(path),
    }
}

/// Labels for messages: `1, 2, 5`, the first dozen of many.
fn label_list(labels: &[Label]) -> String {
    let mut shown: Vec<String> = labels.iter().take(12).map(|l| l.to_string()).collect();
    if labels.len() > 12 {
        shown.push(format!("… ({} in all)", labels.len()));
    }
    shown.join(", ")
}

/// The class of each row, given the training data's labels (ascending). A
/// label the training data lacks is an error at its row: the model has no
/// output for it and could not learn it.
pub fn classes_of(path: &Path, rows: &[UcrRow], known: &[Label]) -> Result<Vec<usize>, DataError> {
    rows.iter()
        .map(|row| {
            known.binary_search(&row.label).map_err(|_| {
                DataError::at_column(
                    path,
                    row.line,
                    row.column,
                    format!(
                        "the label `{}` does not occur in the training data, whose labels are {}: a class without training examples cannot be learnt",
                        row.label,
                        label_list(known)
                    ),
                )
            })
        })
        .collect()
}

/// The class of each `waveforms` example, the first draws of its generator.
/// Balanced: example i has class i % classes, then shuffled.
fn waveform_labels(rng: &mut Rng, n: usize, classes: usize) -> Vec<usize> {
    rng.permutation(n).into_iter().map(|i| i % classes).collect()
}

/// Largest `waveforms(n=…)` whose labels the checker draws to find a class
/// that `val_split` leaves without training examples; past it every class has
/// tens of thousands of examples and `val_split` (below 1) keeps some of each.
pub const WAVEFORMS_CHECKED_UP_TO: usize = 1_000_000;

/// Why `waveforms(n, classes, seed)` with `val_split` (None: a separate
/// validation source) leaves a class with no training example, if it does.
pub fn waveforms_missing_class(n: usize, classes: usize, seed: u64, val_split: Option<f64>) -> Option<String> {
    if n < classes {
        let examples = if n == 1 { "1 example".to_string() } else { format!("{n} examples") };
        let none = match classes - n {
            1 => format!("class {n} has none"),
            2 => format!("classes {n} and {} have none", n + 1),
            _ => format!("classes {n} to {} have none", classes - 1),
        };
        return Some(format!("`n = {n}` makes {examples} for {classes} classes, so {none}: a class without examples cannot be learnt"));
    }
    let fraction = val_split?;
    if n > WAVEFORMS_CHECKED_UP_TO {
        return None;
    }
    let labels = waveform_labels(&mut Rng::derive(seed, "waveforms"), n, classes);
    let (train, _) = split_indices(n, fraction, seed).ok()?;
    let mut kept = vec![false; classes];
    for &i in &train {
        kept[labels[i]] = true;
    }
    let lost = kept.iter().position(|&k| !k)?;
    let count = labels.iter().filter(|&&l| l == lost).count();
    let (examples, all) = if count == 1 { ("1 example".to_string(), "it") } else { (format!("{count} examples"), "all of them") };
    Some(format!(
        "class {lost} has {examples}, and `val_split = {fraction}` moves {all} to the validation set, so the training data has none: \
         raise `n`, lower `val_split`, or give the validation data as `val = …`"
    ))
}

/// A training file whose validation set is split off with `val_split =
/// fraction` keeps at least one training example of every label; otherwise
/// an error at the first row of the label that loses all of them.
pub fn split_keeps_every_class(path: &Path, table: &UcrTable, fraction: f64) -> Result<(), DataError> {
    let (train, _) = split_indices(table.rows.len(), fraction, UCR_SPLIT_SEED)?;
    let kept: std::collections::BTreeSet<&Label> = train.iter().map(|&i| &table.rows[i].label).collect();
    let Some(lost) = table.rows.iter().find(|r| !kept.contains(&&r.label)) else {
        return Ok(());
    };
    let count = table.rows.iter().filter(|r| r.label == lost.label).count();
    let (examples, all) = if count == 1 { ("1 example".to_string(), "it") } else { (format!("{count} examples"), "all of them") };
    Err(DataError::at_column(
        path,
        lost.line,
        lost.column,
        format!(
            "the label `{}` has {examples}, and `val_split = {fraction}` moves {all} to the validation set, so the training data has none: \
             add examples of it, lower `val_split`, or give the validation data as `val = ucr(\"…\")`",
            lost.label
        ),
    ))
}

fn ucr(path: &Path, input: &[usize], known: Option<&[Label]>, split_off: Option<f64>) -> Result<Loaded, DataError> {
    let numel: usize = input.iter().product();
    let table = read_ucr(&RealEnvironment::default(), path)?;
    if table.width != numel {
        return Err(DataError::at(
            path,
            table.first_line,
            format!("rows have {} values after the label, but the model's input {input:?} holds {numel}", table.width),
        ));
    }
    // Labels → classes: the training file's distinct labels in ascending order.
    let labels = match known {
        Some(known) => known.to_vec(),
        None => {
            let distinct = distinct_labels(&table.rows);
            if distinct.len() < 2 {
                return Err(DataError::file(
                    path,
                    format!(
                        "all rows have the same label ({}); classification needs at least two classes",
                        distinct.first().map(ToString::to_string).unwrap_or_default()
                    ),
                ));
            }
            if let Some(fraction) = split_off {
                split_keeps_every_class(path, &table, fraction)?;
            }
            distinct
        }
    };
    let classes = classes_of(path, &table.rows, &labels)?;
    let len = classes.len();
    let n_classes = labels.len();
    Ok(Loaded {
        data: Dataset { inputs: table.values, targets: Targets::Classes(classes), len, shape: input.to_vec(), stream: None },
        classes: Some(n_classes),
        labels: Some(labels),
    })
}

/// A class label ([`Label`]): a whole number, possibly written `2.0` or
/// `-1`, or a name. A number that is not whole (`1.5`) is an error, not a
/// name: it is most likely a regression target in a classification file.
pub(crate) fn label(field: &str, path: &Path, line: usize, column: usize) -> Result<Label, DataError> {
    let refuse = |why: String| Err(DataError::at_column(path, line, column, why));
    if field.is_empty() {
        return refuse("the label (field 1) is empty; every row starts with its class label, a whole number or a name".into());
    }
    match field.parse::<f64>() {
        Ok(x) if x.is_finite() && x.fract() != 0.0 => refuse(format!(
            "the label `{field}` is a number but not a whole one; class labels are whole numbers such as `0`, `1`, `-1` or names such as `walking`"
        )),
        Ok(x) if x.is_finite() && x.abs() > 1e15 => refuse(format!("the label `{field}` is too large for a class label")),
        Ok(x) if x.is_finite() => Ok(Label::Number(x as i64)),
        // `nan`, `inf` and anything else that is not a finite number: a name.
        Ok(_) | Err(_) => Ok(Label::Name(field.to_string())),
    }
}

/// One column of a CSV recording (`column` counts from 0); a first row that
/// is not a number there is a header.
pub fn read_column(env: &dyn Environment, path: &Path, column: usize) -> Result<Vec<f32>, DataError> {
    let text = read_text(env, path)?;
    let mut samples = Vec::new();
    let mut seen_row = false;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let first_row = !seen_row;
        seen_row = true;
        if let Some(e) = other_separator(path, line_no, line) {
            return Err(e);
        }
        let fields = fields(line);
        let Some(&(at, field)) = fields.get(column) else {
            if fields.len() == 1 {
                return Err(single_field(
                    path,
                    line_no,
                    line,
                    &format!("`column={column}` asks for its field {} (columns count from 0)", column + 1),
                ));
            }
            return Err(DataError::at_column(
                path,
                line_no,
                end_column(line),
                format!(
                    "this row has {} fields, but `column={column}` asks for its field {} (columns count from 0)",
                    fields.len(),
                    column + 1
                ),
            ));
        };
        // A first row that is not a number is a header.
        if first_row && field.parse::<f64>().is_err() {
            continue;
        }
        let name = || format!("field {} (`column={column}`)", column + 1);
        samples.push(number(field, name, at, column + 1 == fields.len(), path, line_no)?);
    }
    if samples.is_empty() {
        return Err(DataError::file(path, format!("the file holds no samples in `column={column}`, only a header line")));
    }
    Ok(samples)
}

fn signal(path: &Path, column: usize, windowing: Windowing, input: &[usize]) -> Result<Dataset, DataError> {
    let len = signal_length(input, "signal")?;
    let samples = read_column(&RealEnvironment::default(), path, column)?;
    if samples.len() < len {
        return Err(DataError::file(
            path,
            format!(
                "the recording has {} samples in `column={column}`, fewer than the window length {len} (the model's input length)",
                samples.len()
            ),
        ));
    }
    noisy_windows(&[(path, &samples)], 1, len, windowing, "signal")
}

/// How recordings are cut into noisy windows (`signal`, `wav`): `stride`
/// samples apart (default: the window length), with white noise of standard
/// deviation `noise` from the stream seeded by `seed`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Windowing {
    pub stride: Option<usize>,
    pub noise: f64,
    pub seed: u64,
}

/// Denoising examples from recordings, each `channels × frames` values,
/// channel-major: windows of `len` frames, `windowing.stride` apart, never
/// across two recordings; the input is the window plus white noise, the
/// target the clean window. The noise is drawn in the order the values are
/// laid out (window by window, channel by channel), from one stream for all
/// the recordings.
pub(crate) fn noisy_windows(
    recordings: &[(&Path, &[f32])],
    channels: usize,
    len: usize,
    windowing: Windowing,
    what: &str,
) -> Result<Dataset, DataError> {
    let stride = windowing.stride.unwrap_or(len);
    let Some(&(first, _)) = recordings.first() else { return Err(DataError::new(format!("`{what}`: no recording"))) };
    if stride == 0 {
        return Err(DataError::file(first, "`stride` must be at least 1"));
    }
    let frames = |samples: &[f32]| samples.len() / channels.max(1);
    let count = |samples: &[f32]| if frames(samples) >= len { (frames(samples) - len) / stride + 1 } else { 0 };
    let windows: usize = recordings.iter().map(|(_, s)| count(s)).sum();
    if windows == 0 {
        return Err(DataError::file(
            first,
            format!("no recording is as long as the window length {len} (the model's input length): there are no windows"),
        ));
    }
    let mut rng = Rng::derive(windowing.seed, "signal");
    let mut inputs = buffer(windows, channels * len, &format!("`{what}`"))?;
    let mut targets = buffer(windows, channels * len, &format!("`{what}`"))?;
    for &(_, samples) in recordings {
        let n = frames(samples);
        for w in 0..count(samples) {
            for c in 0..channels {
                for &x in &samples[c * n + w * stride..c * n + w * stride + len] {
                    targets.push(x);
                    inputs.push((x as f64 + windowing.noise * rng.normal()) as f32);
                }
            }
        }
    }
    Ok(Dataset { inputs, targets: Targets::Signals(targets), len: windows, shape: vec![channels, len], stream: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::schema::Task;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A file in the temp folder, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &str) -> TempFile {
            TempFile::new_bytes(name, contents.as_bytes())
        }
        fn new_bytes(name: &str, contents: &[u8]) -> TempFile {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let n = COUNT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("lpn-data-test-{}-{n}-{name}", std::process::id()));
            std::fs::write(&path, contents).expect("write temp file");
            TempFile(path)
        }
        fn ucr(&self) -> Source {
            Source::Ucr { path: self.0.clone() }
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn spec(train: Source, val: Option<Source>, test: Option<Source>, val_split: f64) -> DataSpec {
        let task = match train {
            Source::Waveforms { .. } | Source::Ucr { .. } => Task::Classify,
            _ => Task::Denoise,
        };
        DataSpec {
            train,
            val,
            test,
            val_split,
            test_split: 0.0,
            normalize: Normalize::None,
            task,
            classes: None,
            stream: Stream::Auto,
            targets: None,
        }
    }

    fn sines(n: usize, seed: u64) -> Source {
        Source::Sines { n, components: 3, max_freq: 0.1, noise: 0.3, seed }
    }

    fn signals(t: &Targets) -> &[f32] {
        match t {
            Targets::Signals(s) => s,
            Targets::Classes(_) | Targets::Regression { .. } => panic!("expected signals"),
        }
    }

    fn classes(t: &Targets) -> &[usize] {
        match t {
            Targets::Classes(c) => c,
            Targets::Signals(_) | Targets::Regression { .. } => panic!("expected classes"),
        }
    }

    /// The error of loading `train` alone into `input`, as displayed.
    fn error(train: Source, input: &[usize]) -> String {
        load(&spec(train, None, None, 0.2), input).map(|_| ()).expect_err("expected an error").to_string()
    }

    fn assert_error(err: &DataError, file: &TempFile, line: Option<usize>, words: &[&str]) {
        assert_eq!(err.path.as_deref(), Some(file.0.as_path()), "{err}");
        assert_eq!(err.line, line, "{err}");
        let shown = err.to_string();
        let prefix = match (line, err.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}: ", file.0.display()),
            (Some(l), None) => format!("{}:{l}: ", file.0.display()),
            _ => format!("{}: ", file.0.display()),
        };
        assert!(shown.starts_with(&prefix), "{shown}");
        for w in words {
            assert!(shown.contains(w), "`{w}` missing from: {shown}");
        }
    }

    /// As `assert_error`, and the error names this column.
    fn assert_at(err: &DataError, file: &TempFile, line: usize, column: usize, words: &[&str]) {
        assert_eq!(err.column, Some(column), "{err}");
        assert_error(err, file, Some(line), words);
    }

    fn ucr_error(contents: &str, input: &[usize]) -> (TempFile, DataError) {
        let file = TempFile::new("bad.csv", contents);
        let err = load(&spec(file.ucr(), None, None, 0.2), input).map(|_| ()).expect_err("expected an error");
        (file, err)
    }

    #[test]
    fn sines_are_deterministic_and_shaped() {
        let input = [1, 64];
        let a = load(&spec(sines(20, 5), None, None, 0.0), &input).unwrap();
        let b = load(&spec(sines(20, 5), None, None, 0.0), &input).unwrap();
        let c = load(&spec(sines(20, 6), None, None, 0.0), &input).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.train.inputs, c.train.inputs);
        assert_eq!(a.train.len, 20);
        assert_eq!(a.train.shape, vec![1, 64]);
        assert_eq!(a.train.per_example(), 64);
        assert_eq!(a.train.inputs.len(), 20 * 64);
        assert_eq!(signals(&a.train.targets).len(), 20 * 64);
        assert_eq!(a.val.len, 0);
        assert!(a.test.is_none());
        assert_eq!(a.classes, None);
        // The noise is there, and of the requested size.
        let diff: Vec<f64> = a.train.inputs.iter().zip(signals(&a.train.targets)).map(|(x, y)| (x - y) as f64).collect();
        let std = (diff.iter().map(|d| d * d).sum::<f64>() / diff.len() as f64).sqrt();
        assert!((std - 0.3).abs() < 0.03, "{std}");
    }

    #[test]
    fn sines_clean_energy_is_below_max_freq() {
        let (len, max_freq) = (256, 0.1);
        let source = Source::Sines { n: 16, components: 3, max_freq, noise: 0.5, seed: 3 };
        let splits = load(&spec(source, None, None, 0.0), &[1, len]).unwrap();
        let clean = signals(&splits.train.targets);
        // Bin k of an L-point DFT is at 2k/L in Nyquist units: count the bins at or below max_freq.
        let limit = (max_freq * len as f64 / 2.0).floor() as usize;
        let (mut below, mut total) = (0.0, 0.0);
        for x in clean.chunks(len) {
            for k in 0..=len / 2 {
                let (mut re, mut im) = (0.0, 0.0);
                for (t, &v) in x.iter().enumerate() {
                    let w = 2.0 * PI * (k * t) as f64 / len as f64;
                    re += v as f64 * w.cos();
                    im -= v as f64 * w.sin();
                }
                let p = re * re + im * im;
                total += p;
                if k <= limit {
                    below += p;
                }
            }
        }
        assert!(below / total >= 0.95, "{}", below / total);
    }

    #[test]
    fn waveforms_refuse_a_class_without_training_examples() {
        let source = |n, classes| Source::Waveforms { n, classes, noise: 0.1, seed: 1 };
        let err = load(&spec(source(2, 3), None, None, 0.0), &[1, 16]).unwrap_err();
        assert!(err.to_string().contains("class 2 has none"), "{err}");
        // One example of each class: the split moves one of them out.
        let err = load(&spec(source(3, 3), None, None, 0.2), &[1, 16]).unwrap_err();
        assert!(err.to_string().contains("moves it to the validation set"), "{err}");
        assert_eq!(waveforms_missing_class(3, 3, 1, Some(0.2)), Some(err.to_string()));
        // Enough examples: every class stays.
        assert!(load(&spec(source(30, 3), None, None, 0.2), &[1, 16]).is_ok());
        assert_eq!(waveforms_missing_class(30, 3, 1, Some(0.2)), None);
    }

    #[test]
    fn waveforms_are_balanced_deterministic_and_distinct() {
        let source = |seed| Source::Waveforms { n: 50, classes: 5, noise: 0.1, seed };
        let a = load(&spec(source(1), None, None, 0.0), &[1, 128]).unwrap();
        let b = load(&spec(source(1), None, None, 0.0), &[1, 128]).unwrap();
        let c = load(&spec(source(2), None, None, 0.0), &[1, 128]).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.train.inputs, c.train.inputs);
        assert_eq!(a.classes, Some(5));
        assert_eq!(a.train.inputs.len(), 50 * 128);
        let labels = classes(&a.train.targets);
        for class in 0..5 {
            assert_eq!(labels.iter().filter(|&&l| l == class).count(), 10);
        }
        // Shuffled, not in class order.
        assert_ne!(labels, (0..50).map(|i| i % 5).collect::<Vec<_>>());
        // A square wave sits near ±amplitude; a sine spends more time near 0.
        let near_zero = |class: usize| {
            let mut count = 0;
            for (i, &l) in labels.iter().enumerate() {
                if l == class {
                    count += a.train.inputs[i * 128..(i + 1) * 128].iter().filter(|x| x.abs() < 0.25).count();
                }
            }
            count
        };
        assert!(near_zero(1) * 3 < near_zero(0), "{} {}", near_zero(1), near_zero(0));
    }

    #[test]
    fn ucr_labels_map_in_ascending_numeric_order() {
        let train = TempFile::new("train.csv", "10,1,2\n-1,3,4\n\n2,5,6\n10,7,8\n2,9,10\n");
        let test = TempFile::new("test.csv", "2,0.5,0.25\n-1,1e-3,-2\n10,0,0\n");
        let splits = load(&spec(train.ucr(), Some(test.ucr()), Some(test.ucr()), 0.2), &[1, 2]).unwrap();
        assert_eq!(splits.classes, Some(3));
        // -1 < 2 < 10 (numeric, not text, order).
        assert_eq!(classes(&splits.train.targets), &[2, 0, 1, 2, 1]);
        assert_eq!(splits.train.inputs, vec![1., 2., 3., 4., 5., 6., 7., 8., 9., 10.]);
        assert_eq!(classes(&splits.val.targets), &[1, 0, 2]);
        assert_eq!(splits.val.inputs, vec![0.5, 0.25, 1e-3, -2., 0., 0.]);
        assert_eq!(splits.test.as_ref().unwrap().len, 3);
    }

    #[test]
    fn ucr_name_labels_sort_after_numbers_in_byte_order() {
        let train = TempFile::new("names.csv", "walk,1\nSit,2\n2.0,3\nsit,4\n-1,5\nwalk,6\n2,7\n");
        let test = TempFile::new("names_test.csv", "sit,0\n-1.0,0\nwalk,0\n");
        let splits = load(&spec(train.ucr(), None, Some(test.ucr()), 0.0), &[1, 1]).unwrap();
        // -1 < 2 (= 2.0) < `Sit` < `sit` < `walk`.
        assert_eq!(splits.classes, Some(5));
        assert_eq!(classes(&splits.train.targets), &[4, 2, 1, 3, 0, 4, 1]);
        assert_eq!(classes(&splits.test.as_ref().unwrap().targets), &[3, 0, 4]);
        let labels = class_labels(&spec(train.ucr(), None, None, 0.0)).unwrap().unwrap();
        let shown: Vec<String> = labels.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["-1", "2", "Sit", "sit", "walk"]);
        // A name the training file lacks is an error at its row.
        let other = TempFile::new("names_other.csv", "sit,0\nrun,0\n");
        let err = load(&spec(train.ucr(), None, Some(other.ucr()), 0.0), &[1, 1]).unwrap_err();
        assert_at(&err, &other, 2, 1, &["`run`", "does not occur", "-1, 2, Sit, sit, walk"]);
    }

    /// `text` gzip-compressed, as `gzip` writes it.
    fn gzip(text: &str) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_files_read_as_their_text() {
        let text = "1,0.5,1\n2,0.25,2\n1,0.75,3\n";
        let plain = TempFile::new("plain.csv", text);
        let packed = TempFile::new_bytes("packed.csv.gz", &gzip(text));
        let input = [1, 2];
        assert_eq!(load(&spec(packed.ucr(), None, None, 0.0), &input), load(&spec(plain.ucr(), None, None, 0.0), &input));
        // Two members one after the other (`cat a.gz b.gz`) are one file; any name will do.
        let halves = [gzip("1,0.5,1\n"), gzip("2,0.25,2\n1,0.75,3\n")].concat();
        let joined = TempFile::new_bytes("joined.data", &halves);
        assert_eq!(load(&spec(joined.ucr(), None, None, 0.0), &input), load(&spec(plain.ucr(), None, None, 0.0), &input));
        let recording = TempFile::new_bytes("rec.csv.gz", &gzip("ecg\n1\n2\n3\n4\n"));
        assert_eq!(read_column(&RealEnvironment::default(), &recording.0, 0).unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        // Errors name the line of the decompressed text.
        let bad = TempFile::new_bytes("bad.csv.gz", &gzip("1,0.5\n2,x\n"));
        let err = load(&spec(bad.ucr(), None, None, 0.0), &[1, 1]).unwrap_err();
        assert_at(&err, &bad, 2, 3, &["`x`", "not a number"]);
        let mut cut = gzip(text);
        cut.truncate(cut.len() - 12);
        let truncated = TempFile::new_bytes("cut.csv.gz", &cut);
        let err = load(&spec(truncated.ucr(), None, None, 0.0), &input).unwrap_err();
        assert_error(&err, &truncated, None, &["gzip-compressed", "cannot be decompressed"]);
    }

    #[test]
    fn stratified_counts_keep_one_for_training() {
        assert_eq!(stratified_counts(10, 0.2, 0.2), (6, 2, 2));
        assert_eq!(stratified_counts(5, 0.2, 0.2), (3, 1, 1));
        assert_eq!(stratified_counts(2, 0.5, 0.5), (1, 0, 1));
        assert_eq!(stratified_counts(1, 0.4, 0.4), (1, 0, 0));
        assert_eq!(stratified_counts(0, 0.4, 0.4), (0, 0, 0));
        assert_eq!(stratified_counts(3, 0.0, 0.1), (3, 0, 0));
    }

    #[test]
    fn test_split_is_stratified_seeded_and_covers_the_file() {
        // 20 rows of label 1, 10 of label 2: each row's value is its row number.
        let mut csv = String::new();
        for i in 0..30 {
            csv.push_str(&format!("{},{i}\n", if i % 3 == 2 { 2 } else { 1 }));
        }
        let file = TempFile::new("strat.csv", &csv);
        let mut s = spec(file.ucr(), None, None, 0.2);
        s.test_split = 0.3;
        let a = load(&s, &[1, 1]).unwrap();
        assert_eq!(a, load(&s, &[1, 1]).unwrap());
        let test = a.test.as_ref().unwrap();
        let count = |d: &Dataset, class| classes(&d.targets).iter().filter(|&&c| c == class).count();
        // Per class: 20 → 4 val, 6 test; 10 → 2 val, 3 test.
        assert_eq!([count(&a.train, 0), count(&a.val, 0), count(test, 0)], [10, 4, 6]);
        assert_eq!([count(&a.train, 1), count(&a.val, 1), count(test, 1)], [5, 2, 3]);
        let mut all: Vec<f32> = [&a.train.inputs, &a.val.inputs, &test.inputs].into_iter().flatten().copied().collect();
        all.sort_by(f32::total_cmp);
        assert_eq!(all, (0..30).map(|i| i as f32).collect::<Vec<_>>());
        // Targets follow their rows.
        for (x, &c) in test.inputs.iter().zip(classes(&test.targets)) {
            assert_eq!(c, if *x as usize % 3 == 2 { 1 } else { 0 }, "{x}");
        }
        // A test source wins over `test_split`; without `test_split` nothing is held out.
        let mut with_file = s.clone();
        with_file.test = Some(file.ucr());
        assert_eq!(load(&with_file, &[1, 1]).unwrap().test.unwrap().len, 30);
        s.test_split = 0.0;
        assert!(load(&s, &[1, 1]).unwrap().test.is_none());
    }

    #[test]
    fn normalization_per_channel_from_the_training_part_only() {
        // Two channels of two samples: channel 0 holds 1..4, channel 1 holds 10, 10, 30, 30.
        let data = Dataset {
            inputs: vec![1., 2., 10., 10., 3., 4., 30., 30.],
            targets: Targets::Classes(vec![0, 1]),
            len: 2,
            shape: vec![2, 2],
            stream: None,
        };
        let z = Normalization::fit(Normalize::Zscore, &data).unwrap().unwrap();
        assert_eq!(z.shift, vec![2.5, 20.0]);
        assert!((z.scale[0] - 1.25f32.sqrt()).abs() < 1e-6 && z.scale[1] == 10.0, "{z:?}");
        let mut x = data.inputs.clone();
        z.apply(&mut x, &data.shape);
        assert_eq!(&x[2..4], &[-1.0, -1.0]);
        let m = Normalization::fit(Normalize::Minmax, &data).unwrap().unwrap();
        assert_eq!((m.shift.clone(), m.scale.clone()), (vec![1.0, 10.0], vec![3.0, 20.0]));
        let mut x = data.inputs.clone();
        m.apply(&mut x, &data.shape);
        assert_eq!(x, vec![0.0, 1.0 / 3.0, 0.0, 0.0, 2.0 / 3.0, 1.0, 1.0, 1.0]);
        assert_eq!(Normalization::fit(Normalize::None, &data), Ok(None));
        // Loading: figures of the training part, applied to every part.
        let train = TempFile::new("norm.csv", "1,0\n2,2\n1,4\n2,6\n");
        let test = TempFile::new("norm_test.csv", "1,8\n2,-2\n");
        let mut s = spec(train.ucr(), None, Some(test.ucr()), 0.0);
        s.normalize = Normalize::Minmax;
        let splits = load(&s, &[1]).unwrap();
        assert_eq!(splits.normalization.as_ref().map(|n| (n.shift.clone(), n.scale.clone())), Some((vec![0.0], vec![6.0])));
        assert_eq!(splits.train.inputs, vec![0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]);
        assert_eq!(splits.test.unwrap().inputs, vec![8.0 / 6.0, -2.0 / 6.0]);
    }

    #[test]
    fn pairs_split_and_normalize_their_inputs_but_keep_their_targets() {
        // Target row i is 10·i + (0, 1): it tells which input row (i, i) went where.
        let x = TempFile::new("pairs_x.csv", &(0..10).map(|i| format!("{i},{i}\n")).collect::<String>());
        let y = TempFile::new("pairs_y.csv", &(0..10).map(|i| format!("{},{}\n", 10 * i, 10 * i + 1)).collect::<String>());
        let mut s = spec(Source::Pairs { x: x.0.clone(), y: y.0.clone() }, None, None, 0.2);
        (s.task, s.test_split, s.normalize) = (Task::Regress, 0.3, Normalize::Minmax);
        let splits = load(&s, &[2]).unwrap();
        let parts = [&splits.train, &splits.val, splits.test.as_ref().unwrap()];
        assert_eq!(parts.map(|p| p.len), [5, 2, 3]);
        let norm = splits.normalization.clone().unwrap();
        let mut rows = Vec::new();
        for part in parts {
            let Targets::Regression { values, shape } = &part.targets else { panic!("{:?}", part.targets) };
            assert_eq!(shape, &[2]);
            for (input, target) in part.inputs.chunks(2).zip(values.chunks(2)) {
                let row = (target[0] / 10.0) as usize;
                // Targets raw, inputs rescaled with the training part's figures.
                assert_eq!(target, [10.0 * row as f32, 10.0 * row as f32 + 1.0]);
                assert_eq!(input[0], (row as f32 - norm.shift[0]) / norm.scale[0]);
                rows.push(row);
            }
        }
        rows.sort_unstable();
        assert_eq!(rows, (0..10).collect::<Vec<_>>());
        // Validation data must be a regression with targets of the same size.
        let three = TempFile::new("pairs_y3.csv", &(0..10).map(|i| format!("{i},{i},{i}\n")).collect::<String>());
        let mut s =
            spec(Source::Pairs { x: x.0.clone(), y: y.0.clone() }, Some(Source::Pairs { x: x.0.clone(), y: three.0.clone() }), None, 0.0);
        s.task = Task::Regress;
        assert_eq!(load(&s, &[2]).unwrap_err().to_string(), "the validation data has targets of shape [3], the training data of shape [2]");
        s.val = Some(sines(4, 1));
        assert!(load(&s, &[2]).is_err());
        let labelled = TempFile::new("pairs_ucr.csv", "1,0,0\n2,1,1\n");
        s.val = Some(labelled.ucr());
        assert_eq!(
            load(&s, &[2]).unwrap_err().to_string(),
            "the validation data is for classification, but the training data is for regression"
        );
    }

    #[test]
    fn ucr_rows_reshape_to_the_input() {
        let file = TempFile::new("grid.csv", "1,1,2,3,4\n0,5,6,7,8.0\n");
        let splits = load(&spec(file.ucr(), None, None, 0.0), &[1, 2, 2]).unwrap();
        assert_eq!(splits.train.shape, vec![1, 2, 2]);
        assert_eq!(splits.train.per_example(), 4);
        assert_eq!(classes(&splits.train.targets), &[1, 0]);
    }

    #[test]
    fn gunpoint_loads() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/gunpoint_train.csv");
        let splits = load(&spec(Source::Ucr { path }, None, None, 0.2), &[1, 150]).unwrap();
        assert_eq!(splits.classes, Some(2));
        assert_eq!(splits.train.len + splits.val.len, 50);
        assert_eq!(splits.val.len, 10);
        assert_eq!(splits.train.inputs.len(), 40 * 150);
        let all = splits.train.subset(&[]);
        assert_eq!(all.len, 0);
    }

    #[test]
    fn val_split_sizes_and_determinism() {
        let input = [1, 16];
        for (n, fraction, expected) in [(100, 0.2, 20), (10, 0.25, 3), (10, 0.01, 1), (2, 0.9, 1), (1, 0.5, 0), (50, 0.0, 0)] {
            let splits = load(&spec(sines(n, 1), None, None, fraction), &input).unwrap();
            assert_eq!(splits.val.len, expected, "n={n} fraction={fraction}");
            assert_eq!(splits.train.len, n - expected, "n={n} fraction={fraction}");
            assert_eq!(splits.val.inputs.len(), expected * 16);
        }
        // Same seed, same split; the two parts together are the whole set.
        let whole = load(&spec(sines(30, 4), None, None, 0.0), &input).unwrap().train;
        let a = load(&spec(sines(30, 4), None, None, 0.3), &input).unwrap();
        let b = load(&spec(sines(30, 4), None, None, 0.3), &input).unwrap();
        assert_eq!(a, b);
        let mut rows: Vec<&[f32]> = a.train.inputs.chunks(16).chain(a.val.inputs.chunks(16)).collect();
        let mut expected: Vec<&[f32]> = whole.inputs.chunks(16).collect();
        rows.sort_by(|x, y| x.partial_cmp(y).unwrap());
        expected.sort_by(|x, y| x.partial_cmp(y).unwrap());
        assert_eq!(rows, expected);
        // Targets follow their inputs.
        let i = 0;
        let row = &a.val.inputs[i * 16..(i + 1) * 16];
        let j = whole.inputs.chunks(16).position(|r| r == row).unwrap();
        assert_eq!(&signals(&a.val.targets)[..16], &signals(&whole.targets)[j * 16..(j + 1) * 16]);
    }

    #[test]
    fn subset_gathers_inputs_and_targets() {
        let d = Dataset {
            inputs: vec![0., 1., 2., 3., 4., 5.],
            targets: Targets::Classes(vec![7, 8, 9]),
            len: 3,
            shape: vec![2],
            stream: None,
        };
        let s = d.subset(&[2, 0, 2]);
        assert_eq!(s.inputs, vec![4., 5., 0., 1., 4., 5.]);
        assert_eq!(s.targets, Targets::Classes(vec![9, 7, 9]));
        assert_eq!(s.len, 3);
    }

    #[test]
    fn signal_windows_and_noise() {
        let mut csv = String::from("time,value\n");
        for i in 0..100 {
            csv.push_str(&format!("{i},{}\n", i as f32 * 0.5));
        }
        let file = TempFile::new("rec.csv", &csv);
        let source = |stride, seed| Source::Signal { path: file.0.clone(), column: 1, stride, noise: 0.1, seed };
        let a = load(&spec(source(None, 1), None, None, 0.0), &[1, 32]).unwrap();
        assert_eq!(a.train.len, 3);
        assert_eq!(&signals(&a.train.targets)[32..34], &[16.0, 16.5]);
        let b = load(&spec(source(Some(10), 1), None, None, 0.0), &[1, 32]).unwrap();
        assert_eq!(b.train.len, 7); // starts 0, 10, …, 60
        assert_eq!(signals(&b.train.targets)[32], 5.0);
        let c = load(&spec(source(None, 1), None, None, 0.0), &[1, 32]).unwrap();
        let d = load(&spec(source(None, 2), None, None, 0.0), &[1, 32]).unwrap();
        assert_eq!(a, c);
        assert_ne!(a.train.inputs, d.train.inputs);
        assert_eq!(a.train.targets, d.train.targets);
        let diff = a.train.inputs.iter().zip(signals(&a.train.targets)).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(diff > 0.0 && diff < 0.6, "{diff}");
        // Split seed comes from the source: val split with 3 windows → 1 in val.
        let e = load(&spec(source(None, 1), None, None, 0.2), &[1, 32]).unwrap();
        assert_eq!((e.train.len, e.val.len), (2, 1));
    }

    #[test]
    fn ecg_recording_without_header_value() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/ecg_mitbih208_360hz.csv");
        let source = Source::Signal { path, column: 0, stride: None, noise: 0.1, seed: 1 };
        let splits = load(&spec(source, None, None, 0.0), &[1, 1000]).unwrap();
        assert_eq!(splits.train.len, 108);
        assert_eq!(signals(&splits.train.targets)[0], -0.245);
    }

    #[test]
    fn missing_and_empty_files() {
        let missing = TempFile(std::env::temp_dir().join(format!("lpn-data-test-{}-does-not-exist.csv", std::process::id())));
        let err = load(&spec(missing.ucr(), None, None, 0.2), &[1, 2]).unwrap_err();
        assert_error(&err, &missing, None, &["does not exist"]);
        let (file, err) = ucr_error("\n  \n", &[1, 2]);
        assert_error(&err, &file, None, &["empty", "blank lines"]);
        let empty = TempFile::new("empty.csv", "");
        let err =
            load(&spec(Source::Signal { path: empty.0.clone(), column: 0, stride: None, noise: 0.1, seed: 1 }, None, None, 0.2), &[1, 4])
                .unwrap_err();
        assert_error(&err, &empty, None, &["empty"]);
        let header_only = TempFile::new("header.csv", "ecg\n");
        let err = load(
            &spec(Source::Signal { path: header_only.0.clone(), column: 0, stride: None, noise: 0.1, seed: 1 }, None, None, 0.2),
            &[1, 4],
        )
        .unwrap_err();
        assert_error(&err, &header_only, None, &["no samples"]);
    }

    #[test]
    fn ucr_errors_name_file_line_and_column() {
        let (f, e) = ucr_error("1,1,2,3\n2,1,2\n", &[1, 3]);
        assert_at(&e, &f, 2, 6, &["2 values", "first row (line 1) has 3"]);
        let (f, e) = ucr_error("1,1,2,3\n2,1,2,3,4\n", &[1, 3]);
        assert_at(&e, &f, 2, 9, &["4 values", "first row (line 1) has 3"]);
        let (f, e) = ucr_error("1,1,2,3\n\n2, 1,abc,3\n", &[1, 3]);
        assert_at(&e, &f, 3, 6, &["field 3", "`abc`", "not a number"]);
        let (f, e) = ucr_error("1,1,2,3\n2,1,,3\n", &[1, 3]);
        assert_at(&e, &f, 2, 5, &["field 3 is empty"]);
        let (f, e) = ucr_error("1,1,2,3\n2,1,2,\n", &[1, 3]);
        assert_at(&e, &f, 2, 7, &["field 4 is empty", "comma at the end"]);
        let (f, e) = ucr_error("1,1,2,3\n2,1,2,NaN\n", &[1, 3]);
        assert_at(&e, &f, 2, 7, &["field 4", "`NaN`", "not a finite number"]);
        let (f, e) = ucr_error("1,inf,2,3\n2,1,2,3\n", &[1, 3]);
        assert_at(&e, &f, 1, 3, &["field 2", "`inf`", "not a finite number"]);
        let (f, e) = ucr_error("1,1e39,2,3\n2,1,2,3\n", &[1, 3]);
        assert_at(&e, &f, 1, 3, &["field 2", "`1e39`", "32-bit"]);
        let (f, e) = ucr_error("\n1,1,2,3\n2,1,2,3\n", &[1, 4]);
        assert_error(&e, &f, Some(2), &["3 values", "[1, 4]", "holds 4"]);
        let (f, e) = ucr_error("1,1,2,3\n1.5,1,2,3\n", &[1, 3]);
        assert_at(&e, &f, 2, 1, &["`1.5`", "not a whole one"]);
        let (f, e) = ucr_error("1,1,2,3\n  ,1,2,3\n", &[1, 3]);
        assert_at(&e, &f, 2, 3, &["label (field 1) is empty"]);
        let (f, e) = ucr_error("1,1,2,3\n1e20,1,2,3\n", &[1, 3]);
        assert_at(&e, &f, 2, 1, &["`1e20`", "too large"]);
        let (f, e) = ucr_error("label,a,b,c\n1,1,2,3\n", &[1, 3]);
        assert_at(&e, &f, 1, 7, &["`a`", "not a number", "header"]);
        // A name with number values is no header: the error, if any, is elsewhere.
        let (f, e) = ucr_error("walk,1,2,3\nwalk,1,x,3\n", &[1, 3]);
        assert_at(&e, &f, 2, 8, &["`x`", "not a number"]);
        assert!(!e.message.contains("header"), "{e}");
        let (f, e) = ucr_error("3,1,2,3\n3,4,5,6\n", &[1, 3]);
        assert_error(&e, &f, None, &["same label (3)", "two classes"]);
        let (f, e) = ucr_error("sit,1,2,3\nsit,4,5,6\n", &[1, 3]);
        assert_error(&e, &f, None, &["same label (sit)", "two classes"]);
        let (f, e) = ucr_error("3\n", &[1, 3]);
        assert_at(&e, &f, 1, 2, &["single field", "label and at least one value"]);
        let (f, e) = ucr_error("1\t0.5\t0.25\n", &[1, 2]);
        assert_at(&e, &f, 1, 2, &["separated by tabs", "comma"]);
        let (f, e) = ucr_error("1;0,5;0,25\n", &[1, 2]);
        assert_at(&e, &f, 1, 2, &["separated by semicolons"]);
        let (f, e) = ucr_error("1 0.5 0.25\n", &[1, 2]);
        assert_at(&e, &f, 1, 2, &["separated by spaces"]);
        let (f, e) = ucr_error("1,0.5\n2,0.25\n1,\u{e9}t\u{e9}\n", &[1, 1]);
        assert_at(&e, &f, 3, 3, &["`\u{e9}t\u{e9}`", "not a number"]);
    }

    #[test]
    fn encodings_and_line_ends() {
        // Byte-order mark, CRLF, quotes, blanks and trailing blank lines are fine.
        for text in ["\u{FEFF}1,0.5,1\r\n2,0.25,2\r\n", "1,0.5,1\r2,0.25,2\r", " 1 , \"0.5\", 1\n\n2,0.25,2\n\n\n  \n"] {
            let file = TempFile::new("ok.csv", text);
            let splits = load(&spec(file.ucr(), None, None, 0.0), &[1, 2]).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(splits.train.inputs, vec![0.5, 1.0, 0.25, 2.0], "{text:?}");
        }
        let latin1 = TempFile::new_bytes("latin1.csv", b"1,0.5\n2,\xe90.25\n");
        let err = load(&spec(latin1.ucr(), None, None, 0.0), &[1, 1]).unwrap_err();
        assert_at(&err, &latin1, 2, 3, &["byte 0xE9", "not UTF-8"]);
        let utf16 = TempFile::new_bytes("utf16.csv", b"\xff\xfe1\x00,\x002\x00");
        let err = load(&spec(utf16.ucr(), None, None, 0.0), &[1, 1]).unwrap_err();
        assert_error(&err, &utf16, None, &["UTF-16"]);
        let folder = TempFile(std::env::temp_dir());
        let err = load(&spec(folder.ucr(), None, None, 0.0), &[1, 1]).unwrap_err();
        assert_error(&err, &folder, None, &["is a folder"]);
        std::mem::forget(folder);
    }

    #[test]
    fn a_class_the_split_moves_to_validation_is_an_error() {
        // Five rows of label 1 and one of label 2: find a val_split that moves the
        // lone example of label 2 to the validation set.
        let file = TempFile::new("lone.csv", "1,0\n1,1\n1,2\n1,3\n1,4\n2,5\n");
        let table = read_ucr(&RealEnvironment::default(), &file.0).unwrap();
        let fraction = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
            .into_iter()
            .find(|&f| split_indices(6, f, UCR_SPLIT_SEED).unwrap().1.contains(&5))
            .expect("some fraction moves row 6 to validation");
        assert!(split_keeps_every_class(&file.0, &table, fraction).is_err());
        let err = load(&spec(file.ucr(), None, None, fraction), &[1, 1]).unwrap_err();
        assert_at(&err, &file, 6, 1, &["`2`", "1 example", "validation", "val_split"]);
        // With a separate validation file, or no split, it loads.
        assert!(load(&spec(file.ucr(), None, None, 0.0), &[1, 1]).is_ok());
        assert!(load(&spec(file.ucr(), Some(file.ucr()), None, fraction), &[1, 1]).is_ok());
    }

    #[test]
    fn signal_errors_name_file_and_line() {
        let source = |file: &TempFile, column| Source::Signal { path: file.0.clone(), column, stride: None, noise: 0.1, seed: 1 };
        let short = TempFile::new("short.csv", "v\n1\n2\n3\n");
        let err = load(&spec(source(&short, 0), None, None, 0.2), &[1, 8]).unwrap_err();
        assert_error(&err, &short, None, &["3 samples", "window length 8"]);
        let bad = TempFile::new("bad.csv", "v\n1\n2\nx\n");
        let err = load(&spec(source(&bad, 0), None, None, 0.2), &[1, 2]).unwrap_err();
        assert_at(&err, &bad, 4, 1, &["field 1 (`column=0`)", "`x`", "not a number"]);
        let nan = TempFile::new("nan.csv", "1,2\n3,nan\n");
        let err = load(&spec(source(&nan, 1), None, None, 0.2), &[1, 2]).unwrap_err();
        assert_at(&err, &nan, 2, 3, &["field 2 (`column=1`)", "`nan`", "not a finite number"]);
        let narrow = TempFile::new("narrow.csv", "1,2\n3\n");
        let err = load(&spec(source(&narrow, 1), None, None, 0.2), &[1, 1]).unwrap_err();
        assert_at(&err, &narrow, 2, 2, &["single field", "`column=1`"]);
        let narrow = TempFile::new("narrow3.csv", "1,2,3\n3,4\n");
        let err = load(&spec(source(&narrow, 2), None, None, 0.2), &[1, 1]).unwrap_err();
        assert_at(&err, &narrow, 2, 4, &["2 fields", "`column=2`"]);
        let header_only = TempFile::new("h.csv", "time,ecg\n");
        let err = load(&spec(source(&header_only, 1), None, None, 0.2), &[1, 1]).unwrap_err();
        assert_error(&err, &header_only, None, &["no samples", "`column=1`", "header"]);
    }

    #[test]
    fn generators_need_signal_inputs_and_tasks_must_agree() {
        assert!(error(sines(4, 1), &[3, 64]).contains("[3, 64]"));
        assert!(error(Source::Waveforms { n: 4, classes: 3, noise: 0.1, seed: 1 }, &[1, 8, 8]).contains("1-channel"));
        let s = spec(sines(4, 1), Some(Source::Waveforms { n: 4, classes: 3, noise: 0.1, seed: 1 }), None, 0.2);
        assert!(load(&s, &[1, 16]).unwrap_err().to_string().contains("validation data is for classification"));
        let s = spec(
            Source::Waveforms { n: 4, classes: 2, noise: 0.1, seed: 1 },
            None,
            Some(Source::Waveforms { n: 4, classes: 3, noise: 0.1, seed: 1 }),
            0.2,
        );
        assert!(load(&s, &[1, 16]).unwrap_err().to_string().contains("test data has 3 classes"));
    }

    #[test]
    fn display_forms() {
        let e = DataError { path: Some("a.csv".into()), line: Some(3), column: Some(7), message: "bad".into() };
        assert_eq!(e.to_string(), "a.csv:3:7: bad");
        assert_eq!(DataError { path: None, ..e.clone() }.to_string(), "line 3, column 7: bad");
        let e = DataError { column: None, ..e };
        assert_eq!(e.to_string(), "a.csv:3: bad");
        assert_eq!(DataError { line: None, ..e.clone() }.to_string(), "a.csv: bad");
        assert_eq!(DataError { path: None, line: None, ..e }.to_string(), "bad");
    }
}
