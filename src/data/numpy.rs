//! Training data from NumPy arrays: `npy("x.npy", labels="y.npy")` and
//! `npz("d.npz", x="x", y="y")`.
//!
//! The inputs are an array of shape `[n, …input]` (any number type, either
//! byte order, C order: the `.npy` reader of [`super::predict_input`]). The
//! labels' element type says the task: an integer array of shape `[n]` (or
//! `[n, 1]`) holds class labels, mapped to classes in ascending order as a
//! `ucr` file's are; a float array holds regression targets, one per example
//! of any shape (`[n, …target]`), which the checker compares with the model's
//! output shape (E0146) and the training step with the output element by
//! element.
//!
//! A `.npz` is a zip of `.npy` members. Only members stored uncompressed are
//! read (`np.savez`; `np.savez_compressed` deflates them): the `zip` crate is
//! already built for Candle without its compression features, and a
//! deflate decoder is a dependency for a format `np.savez` does not use.
//!
//! Either file, or the `.npz`, may be gzip-compressed as a whole (`gzip
//! x.npy`, told by its magic bytes whatever its name, as the CSV sources
//! are): it is decompressed whole into memory, and so never streams.
//!
//! The checker probes the headers only (shape, type, and whether the file
//! holds the bytes they announce), through its environment; loading reads
//! the values, an example batch at a time for `.npy` files.

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::Path;

use super::predict_input::{InputReader, NpyHeader, read_npy_header};
use super::{DataError, Dataset, Label, Loaded, Targets, label_list};
use crate::language::check::environment::{EntryKind, Environment, RealEnvironment};
use crate::language::schema::Task;

/// Largest class label magnitude read exactly (labels pass through `f32`).
const LARGEST_LABEL: f32 = 16_777_216.0;

/// A probed array: its header, where it came from for messages, and whether
/// its bytes are all there.
#[derive(Clone, Debug)]
pub struct ArrayFacts {
    pub header: NpyHeader,
    /// How many examples it holds (its first axis).
    pub examples: usize,
}

/// The task an input array and a labels array pose for a model whose input
/// is `input`, checked: the inputs fit the input shape, there are as many
/// labels as examples, and the labels have a shape their type allows.
/// `x_path` and `y_path` name the arrays in errors.
pub fn pair_task(x_path: &Path, x: &NpyHeader, y_path: &Path, y: &NpyHeader, input: &[usize]) -> Result<Task, DataError> {
    let per: usize = input.iter().product();
    let dims = |shape: &[usize]| shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
    if x.shape.is_empty() || x.shape[1..].iter().product::<usize>() != per {
        return Err(DataError::file(
            x_path,
            format!(
                "the array has shape {:?}, but the model takes examples of shape {input:?}: it needs shape [n, {}]",
                x.shape,
                dims(input)
            ),
        ));
    }
    let (n, labels) = (x.shape[0], y.shape.first().copied().unwrap_or(0));
    if y.shape.is_empty() || labels != n {
        return Err(DataError::file(
            y_path,
            format!(
                "the labels have shape {:?}, but the inputs hold {n} examples: it needs shape [{n}, …], one label per example",
                y.shape
            ),
        ));
    }
    if n == 0 {
        return Err(DataError::file(x_path, "the array holds no examples"));
    }
    let rest: usize = y.shape[1..].iter().product();
    if y.dtype.is_integer() {
        if rest != 1 {
            return Err(DataError::file(y_path, format!("integer labels are classes, one per example: shape [{n}], not {:?}", y.shape)));
        }
        return Ok(Task::Classify);
    }
    if rest == 0 {
        return Err(DataError::file(y_path, format!("the targets have shape {:?}: no values per example", y.shape)));
    }
    Ok(Task::Regress)
}

/// The header of the `.npy` file at `path`, read through `env`, and an error
/// if the file is shorter than the header announces.
pub fn probe_npy(env: &dyn Environment, path: &Path) -> Result<ArrayFacts, DataError> {
    match env.kind(path) {
        Some(EntryKind::Folder) => return Err(DataError::file(path, "is a folder, not a file")),
        Some(EntryKind::Other(what)) => return Err(DataError::file(path, format!("is not a regular file: it is {what}"))),
        Some(EntryKind::File) | None => {}
    }
    // A version 1 header is at most 64 KiB; larger ones (version 2) are rare.
    let (start, total) = env.read_start(path, (1 << 20) + 12).map_err(|e| read_error(path, &e))?;
    if start.starts_with(&GZIP_MAGIC) {
        // Its size is known only once it is decompressed, whole.
        let plain = super::read_bytes(env, path)?;
        return array_facts(path, &plain, plain.len() as u64);
    }
    array_facts(path, &start, total)
}

/// The first bytes of a gzip-compressed file.
const GZIP_MAGIC: [u8; 2] = [0x1F, 0x8B];

/// Whether the file at `path` is gzip-compressed (`gzip x.npy` writes
/// `x.npy.gz`): it is then decompressed whole, wherever it is read.
pub fn is_gzip(env: &dyn Environment, path: &Path) -> bool {
    env.read_start(path, 2).is_ok_and(|(start, _)| start.starts_with(&GZIP_MAGIC))
}

/// The facts of an array whose first bytes are `start`, out of `total`.
fn array_facts(path: &Path, start: &[u8], total: u64) -> Result<ArrayFacts, DataError> {
    if start.is_empty() {
        return Err(DataError::file(path, "the file is empty"));
    }
    let header = read_npy_header(path, &mut Cursor::new(start))?;
    let needed = header.data_offset.saturating_add(header.data_bytes());
    if total < needed {
        return Err(DataError::file(
            path,
            format!(
                "the header announces {} bytes of values, but the file ends after {}: it is truncated",
                header.data_bytes(),
                total.saturating_sub(header.data_offset)
            ),
        ));
    }
    let examples = header.shape.first().copied().unwrap_or(0);
    Ok(ArrayFacts { header, examples })
}

fn read_error(path: &Path, e: &std::io::Error) -> DataError {
    DataError::file(
        path,
        match e.kind() {
            std::io::ErrorKind::NotFound => "the file does not exist".to_string(),
            _ => format!("the file cannot be read: {e}"),
        },
    )
}

/// The members `x` and `y` of the `.npz` file at `path` (each named with or
/// without its `.npy`), read whole through `env`.
pub fn npz_members(env: &dyn Environment, path: &Path, x: &str, y: &str) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let bytes = super::read_bytes(env, path)?;
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| DataError::file(path, format!("not a readable .npz file (a zip of .npy arrays): {e}")))?;
    let names: Vec<String> = archive.file_names().flatten().map(|n| n.trim_end_matches(".npy").to_string()).collect();
    let mut member = |name: &str| -> Result<Vec<u8>, DataError> {
        let stem = name.trim_end_matches(".npy");
        let Ok(mut file) = archive.by_name(&format!("{stem}.npy")) else {
            let mut sorted = names.clone();
            sorted.sort();
            return Err(DataError::file(path, format!("holds no array `{stem}`; it holds {}", quoted_list(&sorted))));
        };
        if file.compression() != zip::CompressionMethod::Stored {
            return Err(DataError::file(
                path,
                format!(
                    "array `{stem}` is compressed ({}); lpn reads .npz files written by `np.savez`, not `np.savez_compressed`",
                    file.compression()
                ),
            ));
        }
        let mut out = Vec::new();
        file.read_to_end(&mut out).map_err(|e| DataError::file(path, format!("array `{stem}` cannot be read: {e}")))?;
        Ok(out)
    };
    Ok((member(x)?, member(y)?))
}

fn quoted_list(names: &[String]) -> String {
    if names.is_empty() {
        return "no arrays".into();
    }
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// The facts of both members of a `.npz` file, read through `env`, errors
/// naming the member.
pub fn probe_npz(env: &dyn Environment, path: &Path, x: &str, y: &str) -> Result<(ArrayFacts, ArrayFacts), DataError> {
    let (xb, yb) = npz_members(env, path, x, y)?;
    let facts = |name: &str, b: &[u8]| array_facts(path, b, b.len() as u64).map_err(|e| in_member(e, name));
    Ok((facts(x, &xb)?, facts(y, &yb)?))
}

/// An error about a member of a `.npz` file, saying which.
fn in_member(mut e: DataError, name: &str) -> DataError {
    e.message = format!("array `{}`: {}", name.trim_end_matches(".npy"), e.message);
    e
}

/// Loads `npy(path, labels=labels)` for a model whose input is `input`;
/// `known` are the training data's labels (for validation and test data).
pub(super) fn load_npy(path: &Path, labels: &Path, input: &[usize], known: Option<&[Label]>) -> Result<Loaded, DataError> {
    load_npy_as(path, labels, input, known, false)
}

/// As [`load_npy`], the inputs left in the file and read a batch at a time
/// ([`super::stream`]).
pub(super) fn load_npy_streamed(path: &Path, labels: &Path, input: &[usize], known: Option<&[Label]>) -> Result<Loaded, DataError> {
    load_npy_as(path, labels, input, known, true)
}

fn load_npy_as(path: &Path, labels: &Path, input: &[usize], known: Option<&[Label]>, streams: bool) -> Result<Loaded, DataError> {
    let env = RealEnvironment::default();
    let (x, y) = (probe_npy(&env, path)?, probe_npy(&env, labels)?);
    let task = pair_task(path, &x.header, labels, &y.header, input)?;
    let open = |p: &Path| -> Result<Box<dyn std::io::BufRead>, DataError> {
        if is_gzip(&env, p) {
            return Ok(Box::new(Cursor::new(super::read_bytes(&env, p)?)));
        }
        let file = File::open(p).map_err(|e| read_error(p, &e))?;
        Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
    };
    let shape = target_shape(task, &y.header);
    let targets = read_values(labels, open(labels)?, &shape)?;
    if streams {
        let streamed = super::stream::StreamedInputs::open(path, &x.header)?;
        // `assemble` counts the examples by their inputs, here left in the file.
        let mut loaded = assemble(labels, Vec::new(), (targets, shape), task, input, known)?;
        (loaded.data.len, loaded.data.stream) = (streamed.len(), Some(streamed));
        return Ok(loaded);
    }
    let inputs = read_values(path, open(path)?, input)?;
    assemble(labels, inputs, (targets, shape), task, input, known)
}

/// Loads `npz(path, x=x, y=y)`, as [`load_npy`].
pub(super) fn load_npz(path: &Path, x: &str, y: &str, input: &[usize], known: Option<&[Label]>) -> Result<Loaded, DataError> {
    let (xb, yb) = npz_members(&RealEnvironment::default(), path, x, y)?;
    let facts = |name: &str, b: &[u8]| array_facts(path, b, b.len() as u64).map_err(|e| in_member(e, name));
    let (xf, yf) = (facts(x, &xb)?, facts(y, &yb)?);
    let task = pair_task(path, &xf.header, path, &yf.header, input)?;
    let inputs = read_values(path, Box::new(Cursor::new(xb)), input).map_err(|e| in_member(e, x))?;
    let shape = target_shape(task, &yf.header);
    let targets = read_values(path, Box::new(Cursor::new(yb)), &shape).map_err(|e| in_member(e, y))?;
    assemble(path, inputs, (targets, shape), task, input, known)
}

/// The shape of one example's labels: a class label, or a target of the
/// labels array's shape past its first axis (`[1]` for an array `[n]`).
pub fn target_shape(task: Task, labels: &NpyHeader) -> Vec<usize> {
    match (task, labels.shape.get(1..)) {
        (Task::Denoise | Task::Regress, Some(rest)) if !rest.is_empty() => rest.to_vec(),
        (Task::Classify | Task::Denoise | Task::Regress, _) => vec![1],
    }
}

/// Every value of a `.npy` array whose examples have `shape`, as `f32`.
fn read_values(path: &Path, reader: Box<dyn std::io::BufRead>, shape: &[usize]) -> Result<Vec<f32>, DataError> {
    let mut array = InputReader::from_reader(path, reader, shape)?;
    let total = array.total().unwrap_or(0);
    let mut values = super::buffer(total, shape.iter().product(), "the array")?;
    while array.next_batch(4096, &mut values)? > 0 {}
    Ok(values)
}

/// The data set of inputs and labels: classes in ascending label order (the
/// training data's `known` labels for other data), or regression targets.
fn assemble(
    labels_path: &Path,
    inputs: Vec<f32>,
    (targets, target_shape): (Vec<f32>, Vec<usize>),
    task: Task,
    input: &[usize],
    known: Option<&[Label]>,
) -> Result<Loaded, DataError> {
    let len = inputs.len() / input.iter().product::<usize>().max(1);
    let shape = input.to_vec();
    if task != Task::Classify {
        let data = Dataset { inputs, targets: Targets::Regression { values: targets, shape: target_shape }, len, shape, stream: None };
        return Ok(Loaded { data, classes: None, labels: None });
    }
    let labels = integer_labels(labels_path, &targets)?;
    let distinct = distinct_of(&labels);
    let names: Vec<Label> = match known {
        Some(known) => known.to_vec(),
        None if distinct.len() < 2 => return Err(one_class(labels_path, distinct[0])),
        None => distinct.into_iter().map(Label::Number).collect(),
    };
    let mut classes = Vec::with_capacity(labels.len());
    for (example, label) in labels.iter().enumerate() {
        match names.binary_search(&Label::Number(*label)) {
            Ok(class) => classes.push(class),
            Err(_) => {
                return Err(DataError::file(
                    labels_path,
                    format!(
                        "example {example} (counting from 0) has label {label}, which the training data lacks (it has {}): a class without training examples cannot be learnt",
                        label_list(&names)
                    ),
                ));
            }
        }
    }
    let data = Dataset { inputs, targets: Targets::Classes(classes), len, shape, stream: None };
    Ok(Loaded { data, classes: Some(names.len()), labels: Some(names) })
}

/// Class labels read as `f32`, as integers: an error names the first that is not one.
fn integer_labels(path: &Path, values: &[f32]) -> Result<Vec<i64>, DataError> {
    let mut labels = Vec::with_capacity(values.len());
    for (example, &t) in values.iter().enumerate() {
        if t.fract() != 0.0 || t.abs() > LARGEST_LABEL {
            return Err(DataError::file(
                path,
                format!("the label of example {example} (counting from 0) is {t}, not a class label of at most 2^24"),
            ));
        }
        labels.push(t as i64);
    }
    Ok(labels)
}

/// The error for a file whose examples all have `label`.
pub fn one_class(path: &Path, label: impl std::fmt::Display) -> DataError {
    DataError::file(path, format!("all examples have the same label ({label}); classification needs at least two classes"))
}

fn distinct_of(labels: &[i64]) -> Vec<i64> {
    labels.iter().copied().collect::<std::collections::BTreeSet<_>>().into_iter().collect()
}

/// The distinct class labels (ascending: class `c` is `labels[c]`) of the
/// integer labels array whose whole file is `bytes`, at least two of them.
pub fn class_labels_of(path: &Path, bytes: Vec<u8>) -> Result<Vec<i64>, DataError> {
    let values = read_values(path, Box::new(Cursor::new(bytes)), &[1])?;
    let distinct = distinct_of(&integer_labels(path, &values)?);
    if distinct.len() < 2 {
        return Err(one_class(path, distinct.first().copied().unwrap_or(0)));
    }
    Ok(distinct)
}

/// The distinct class labels of a classification `npy` training set;
/// `None` for regression targets.
pub fn class_labels_npy(labels: &Path) -> Result<Option<Vec<Label>>, DataError> {
    let env = RealEnvironment::default();
    if !probe_npy(&env, labels)?.header.dtype.is_integer() {
        return Ok(None);
    }
    let bytes = super::read_bytes(&env, labels)?;
    class_labels_of(labels, bytes).map(|l| Some(l.into_iter().map(Label::Number).collect()))
}

/// As [`class_labels_npy`], for a `.npz` file.
pub fn class_labels_npz(path: &Path, x: &str, y: &str) -> Result<Option<Vec<Label>>, DataError> {
    let (_, yb) = npz_members(&RealEnvironment::default(), path, x, y)?;
    let facts = array_facts(path, &yb, yb.len() as u64).map_err(|e| in_member(e, y))?;
    if !facts.header.dtype.is_integer() {
        return Ok(None);
    }
    class_labels_of(path, yb).map(|l| Some(l.into_iter().map(Label::Number).collect())).map_err(|e| in_member(e, y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    // tests/reference/make_npy_train_fixtures.py
    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npy_train").join(name)
    }

    fn error(result: Result<Loaded, DataError>) -> String {
        match result {
            Ok(_) => panic!("loaded, but should not have"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn integer_labels_are_classes_in_ascending_order_in_every_type() {
        let loaded = load_npy(&fixture("cls_x.npy"), &fixture("cls_y.npy"), &[1, 16], None).unwrap();
        assert_eq!(
            (loaded.data.len, loaded.classes, loaded.labels.as_deref()),
            (40, Some(2), Some(&[Label::Number(3), Label::Number(7)][..]))
        );
        // Labels alternate 3, 7, 3, … (the script), so classes 0, 1, 0, …
        let Targets::Classes(classes) = &loaded.data.targets else { panic!("not classes") };
        assert_eq!(
            classes.iter().map(|&c| c as i64 * 4 + 3).collect::<Vec<_>>(),
            (0..40).map(|i| if i % 2 == 0 { 3 } else { 7 }).collect::<Vec<_>>()
        );
        assert_eq!(loaded.data.inputs.len(), 40 * 16);
        // The same values as big-endian f8 and i2, and as the members of an .npz.
        let big = load_npy(&fixture("cls_x_be.npy"), &fixture("cls_y_be.npy"), &[16], None).unwrap();
        assert_eq!((&big.data.inputs, &big.data.targets), (&loaded.data.inputs, &loaded.data.targets));
        let npz = load_npz(&fixture("train.npz"), "x", "y.npy", &[1, 16], None).unwrap();
        assert_eq!(npz.data, loaded.data);
    }

    #[test]
    fn float_labels_are_regression_targets_of_their_own_shape() {
        let loaded = load_npy(&fixture("reg_x.npy"), &fixture("reg_y.npy"), &[1, 16], None).unwrap();
        assert_eq!((loaded.data.len, loaded.classes), (32, None));
        let Targets::Regression { values: targets, shape } = &loaded.data.targets else { panic!("not targets") };
        assert_eq!(shape, &[1, 16]);
        assert_eq!(targets.len(), 32 * 16);
        assert_ne!(targets, &loaded.data.inputs);
        // A clean sine of amplitude 1.
        assert!(targets.iter().all(|t| t.abs() <= 1.0) && targets.iter().any(|t| t.abs() > 0.9));
    }

    #[test]
    fn validation_labels_map_to_the_training_classes() {
        let val =
            load_npy(&fixture("cls_x.npy"), &fixture("cls_y.npy"), &[1, 16], Some(&[Label::Number(3), Label::Number(7), Label::Number(9)]))
                .unwrap();
        assert_eq!(val.classes, Some(3));
        let unknown = error(load_npy(&fixture("cls_x.npy"), &fixture("cls_y.npy"), &[1, 16], Some(&[Label::Number(3), Label::Number(5)])));
        assert!(unknown.ends_with("cls_y.npy: example 1 (counting from 0) has label 7, which the training data lacks (it has 3, 5): a class without training examples cannot be learnt"), "{unknown}");
    }

    #[test]
    fn float_targets_of_any_shape_are_a_regression() {
        // Targets [40, 5] for inputs [40, 1, 16]: the checker compares them with the model's output.
        let loaded = load_npy(&fixture("cls_x.npy"), &fixture("bad_y_float_shape.npy"), &[1, 16], None).unwrap();
        let Targets::Regression { values, shape } = &loaded.data.targets else { panic!("{:?}", loaded.data.targets) };
        assert_eq!((shape.clone(), values.len(), loaded.data.len, loaded.classes), (vec![5], 200, 40, None));
    }

    #[test]
    fn bad_arrays_are_named_with_the_reason() {
        let x = fixture("cls_x.npy");
        let cases = [
            (
                error(load_npy(&x, &fixture("bad_y_count.npy"), &[1, 16], None)),
                "bad_y_count.npy: the labels have shape [30], but the inputs hold 40 examples",
            ),
            (
                error(load_npy(&x, &fixture("bad_y_one_class.npy"), &[1, 16], None)),
                "bad_y_one_class.npy: all examples have the same label (3)",
            ),
            (
                error(load_npy(&fixture("bad_x_truncated.npy"), &fixture("cls_y.npy"), &[1, 16], None)),
                "bad_x_truncated.npy: the header announces 2560 bytes of values, but the file ends after 2460: it is truncated",
            ),
            (
                error(load_npy(&x, &fixture("cls_y.npy"), &[1, 32], None)),
                "cls_x.npy: the array has shape [40, 1, 16], but the model takes examples of shape [1, 32]: it needs shape [n, 1, 32]",
            ),
            (
                error(load_npz(&fixture("compressed.npz"), "x", "y", &[1, 16], None)),
                "compressed.npz: array `x` is compressed (Deflated); lpn reads .npz files written by `np.savez`",
            ),
            (
                error(load_npz(&fixture("train.npz"), "inputs", "y", &[1, 16], None)),
                "train.npz: holds no array `inputs`; it holds `x`, `y`",
            ),
            (error(load_npz(&fixture("train.npz"), "x", "y", &[1, 32], None)), "train.npz: the array has shape [40, 1, 16]"),
        ];
        for (message, start) in cases {
            assert!(message.contains(start), "{message}\n  should contain\n{start}");
        }
    }
}
