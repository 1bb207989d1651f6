//! Inputs read from a `.npy` file a batch at a time (`stream = …` of the
//! data section), so a training set larger than memory trains.
//!
//! A streamed data set keeps its targets in memory (a class index each) and,
//! for its inputs, the file and the row of each example: a subset (the
//! training, validation or test part) is a list of rows, and a batch is read
//! with positioned reads into a buffer the size of the batch, converted to
//! `f32` by the same code that reads a file whole, and rescaled by the same
//! [`Normalization::apply`]. The values, and so the training, are the same
//! bit for bit as with the file in memory; only where they come from differs.
//!
//! Positioned reads rather than a memory map: the pages of a mapping that a
//! process has touched count in its resident memory until they are released,
//! so an epoch over a mapped 2 GB file would grow to 2 GB; the page cache
//! behind `read` does not count. Reading also needs no `unsafe` (mapping a
//! file is, as the file may change under it), no new crate, and copies
//! nothing that the conversion to `f32` would not copy anyway.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::predict_input::{Dtype, NpyHeader};
use super::{DataError, Normalization};
use crate::language::check::environment::Environment;
use crate::language::ir::{Source, Stream};

/// Above this many bytes of inputs as `f32`, `stream = auto` streams an
/// `npy` source; below it, reading the file whole is as cheap and faster.
pub const STREAM_ABOVE: u64 = 256 << 20;

/// Bytes read at a time by the passes over a whole file (checking its
/// values, fitting `normalize`).
const PASS_BYTES: usize = 4 << 20;

/// Why `source` cannot stream; `None` when it can.
pub fn cannot_stream(source: &Source, env: &dyn Environment) -> Option<String> {
    let Source::Npy { path, .. } = source else {
        return Some("only `npy` sources stream; this one is read whole".into());
    };
    super::numpy::is_gzip(env, path).then(|| "the `.npy` file is gzip-compressed, and a compressed file is decompressed whole".into())
}

/// Whether the inputs of `source` are read a batch at a time under `setting`.
pub fn streams(setting: Stream, source: &Source, env: &dyn Environment) -> bool {
    let can = || cannot_stream(source, env).is_none();
    match setting {
        Stream::Never => false,
        Stream::Always => can(),
        Stream::Auto => can() && input_bytes(source, env).is_some_and(|bytes| bytes > STREAM_ABOVE),
    }
}

/// Bytes of the inputs of an `npy` source once read whole as `f32`.
fn input_bytes(source: &Source, env: &dyn Environment) -> Option<u64> {
    let Source::Npy { path, .. } = source else { return None };
    let facts = super::numpy::probe_npy(env, path).ok()?;
    Some(facts.header.shape.iter().fold(4u64, |n, &d| n.saturating_mul(d as u64)))
}

/// What streaming `source` changes in the memory loading it takes, for the
/// checker's estimate: its inputs as `f32` are not held, but the file row
/// of each example and the buffer of a pass over the file are. `(not held,
/// held)`; `None` for a source that is not an `npy` file.
pub fn memory_trade(source: &Source, env: &dyn Environment) -> Option<(u64, u64)> {
    let Source::Npy { path, .. } = source else { return None };
    let examples = super::numpy::probe_npy(env, path).ok()?.examples as u64;
    let rows = examples.saturating_mul(std::mem::size_of::<usize>() as u64);
    Some((input_bytes(source, env)?, rows.saturating_add(PASS_BYTES as u64)))
}

/// An open `.npy` file of inputs.
#[derive(Debug)]
struct NpyFile {
    path: PathBuf,
    file: File,
    dtype: Dtype,
    data_offset: u64,
    /// Values of one example.
    per_example: usize,
}

/// The inputs of a data set, read from a `.npy` file on demand: example `i`
/// of the set is row `rows[i]` of the file.
#[derive(Clone, Debug)]
pub struct StreamedInputs {
    file: Arc<NpyFile>,
    rows: Vec<usize>,
    /// Applied to every batch read (`normalize`, fitted on the training part).
    normalization: Option<Normalization>,
}

impl PartialEq for StreamedInputs {
    fn eq(&self, other: &Self) -> bool {
        self.file.path == other.file.path && self.rows == other.rows && self.normalization == other.normalization
    }
}

impl StreamedInputs {
    /// Opens the array at `path` whose header is `header` (already checked
    /// against the model's input), and reads it through once to find values
    /// that are not finite 32-bit numbers, as reading it whole would.
    pub fn open(path: &Path, header: &NpyHeader) -> Result<StreamedInputs, DataError> {
        let file = File::open(path).map_err(|e| DataError::file(path, format!("the file cannot be read: {e}")))?;
        let per_example = header.shape.get(1..).map_or(1, |rest| rest.iter().product());
        let examples = header.shape.first().copied().unwrap_or(0);
        let file = NpyFile { path: path.to_path_buf(), file, dtype: header.dtype, data_offset: header.data_offset, per_example };
        let inputs = StreamedInputs { file: Arc::new(file), rows: (0..examples).collect(), normalization: None };
        inputs.for_each_example(|_| {})?;
        Ok(inputs)
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The examples at `indices` of this set, in that order.
    pub fn subset(&self, indices: &[usize]) -> StreamedInputs {
        StreamedInputs {
            file: self.file.clone(),
            rows: indices.iter().map(|&i| self.rows[i]).collect(),
            normalization: self.normalization.clone(),
        }
    }

    /// Rescales every batch read from now on.
    pub fn normalize(&mut self, normalization: &Normalization) {
        self.normalization = Some(normalization.clone());
    }

    /// Appends the values of the examples at `indices` to `out`, rescaled.
    /// Runs of consecutive rows are read at once (an evaluation, which goes
    /// through a set in order, reads a batch in one call).
    pub fn gather(&self, indices: &[usize], shape: &[usize], out: &mut Vec<f32>) -> Result<(), DataError> {
        let start = out.len();
        let mut k = 0;
        while k < indices.len() {
            let first = self.rows[indices[k]];
            let mut run = 1;
            while k + run < indices.len() && self.rows[indices[k + run]] == first + run {
                run += 1;
            }
            self.read_rows(first, run, out)?;
            k += run;
        }
        if let Some(normalization) = &self.normalization {
            normalization.apply(&mut out[start..], shape);
        }
        Ok(())
    }

    /// Calls `visit` with each example's values in order, unscaled, reading
    /// about [`PASS_BYTES`] at a time.
    pub fn for_each_example(&self, mut visit: impl FnMut(&[f32])) -> Result<(), DataError> {
        let per = self.file.per_example.max(1);
        let chunk = (PASS_BYTES / (per * self.file.dtype.size()).max(1)).max(1);
        let plain = StreamedInputs { normalization: None, ..self.clone() };
        let mut values = Vec::with_capacity(chunk * per);
        for start in (0..self.len()).step_by(chunk) {
            values.clear();
            let indices: Vec<usize> = (start..(start + chunk).min(self.len())).collect();
            plain.gather(&indices, &[per], &mut values)?;
            values.chunks(per).for_each(&mut visit);
        }
        Ok(())
    }

    /// Appends rows `first .. first + count` of the file to `out` as `f32`.
    fn read_rows(&self, first: usize, count: usize, out: &mut Vec<f32>) -> Result<(), DataError> {
        let f = &*self.file;
        let row_bytes = f.per_example * f.dtype.size();
        let mut raw = vec![0u8; count * row_bytes];
        let at = f.data_offset + (first * row_bytes) as u64;
        read_exact_at(&f.file, &mut raw, at).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    "the file ends before its examples do: it was cut short after it was checked".to_string()
                }
                _ => format!("the file cannot be read: {e}"),
            };
            DataError::file(&f.path, why)
        })?;
        f.dtype.convert(&f.path, &raw, first, f.per_example, out)
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Dataset, Splits, load};
    use crate::language::check::environment::RealEnvironment;
    use crate::language::ir::{DataSpec, Normalize};
    use crate::language::schema::Task;

    // tests/reference/make_npy_train_fixtures.py: 40 examples [1, 16], big-endian f8.
    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npy_train").join(name)
    }

    /// A little-endian f4 `.npy` of `values` in examples of `per`, in the temp folder.
    fn npy_file(name: &str, values: &[f32], per: usize) -> PathBuf {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {per}), }}", values.len() / per);
        let pad = 64 - (10 + header.len() + 1) % 64;
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&((header.len() + pad + 1) as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(std::iter::repeat_n(b' ', pad));
        bytes.push(b'\n');
        values.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        let path = std::env::temp_dir().join(format!("lpn-stream-test-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn spec(stream: Stream, normalize: Normalize) -> DataSpec {
        DataSpec {
            train: Source::Npy { path: fixture("cls_x_be.npy"), labels: fixture("cls_y.npy") },
            val: None,
            test: None,
            val_split: 0.2,
            test_split: 0.2,
            normalize,
            task: Task::Classify,
            classes: None,
            stream,
            targets: None,
        }
    }

    /// Every input of a part, read as training reads them.
    fn all_inputs(part: &Dataset) -> Vec<f32> {
        let mut out = Vec::new();
        part.gather_inputs(&(0..part.len).collect::<Vec<_>>(), &mut out).unwrap();
        out
    }

    #[test]
    fn a_streamed_source_gives_the_parts_and_values_of_the_file_read_whole() {
        for normalize in [Normalize::None, Normalize::Zscore, Normalize::Minmax] {
            let streamed: Splits = load(&spec(Stream::Always, normalize), &[1, 16]).unwrap();
            let whole: Splits = load(&spec(Stream::Never, normalize), &[1, 16]).unwrap();
            assert_eq!(streamed.normalization, whole.normalization);
            let parts = |s: &Splits| [s.train.clone(), s.val.clone(), s.test.clone().unwrap()];
            for (a, b) in parts(&streamed).iter().zip(&parts(&whole)) {
                assert!(a.stream.is_some() && a.inputs.is_empty(), "not streamed");
                assert!(b.stream.is_none());
                assert_eq!((a.len, &a.targets), (b.len, &b.targets));
                // Bit for bit, normalised with the training part's figures.
                let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
                assert_eq!(bits(all_inputs(a)), bits(b.inputs.clone()), "{normalize:?}");
            }
            assert_eq!(streamed.train.len + streamed.val.len + streamed.test.as_ref().unwrap().len, 40);
        }
    }

    #[test]
    fn a_batch_in_any_order_reads_the_rows_it_names() {
        let values: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let path = npy_file("rows.npy", &values, 2);
        let header = crate::data::numpy::probe_npy(&RealEnvironment::default(), &path).unwrap().header;
        let inputs = StreamedInputs::open(&path, &header).unwrap();
        let part = inputs.subset(&[5, 1, 2, 3]);
        let mut out = Vec::new();
        // Rows 2, 3 are one run, then row 5, row 5 again and row 1.
        part.gather(&[2, 3, 0, 0, 1], &[2], &mut out).unwrap();
        assert_eq!(out, [4., 5., 6., 7., 10., 11., 10., 11., 2., 3.]);
        let norm = Normalization { kind: "zscore".into(), shift: vec![1.0], scale: vec![2.0] };
        let mut scaled = part.clone();
        scaled.normalize(&norm);
        out.clear();
        scaled.gather(&[1], &[2], &mut out).unwrap();
        assert_eq!(out, [0.5, 1.0]);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_value_that_is_not_finite_is_found_when_the_file_is_opened() {
        let mut values = vec![0.5f32; 5 * 3];
        values[2 * 3 + 1] = f32::NAN;
        let path = npy_file("nan.npy", &values, 3);
        let header = crate::data::numpy::probe_npy(&RealEnvironment::default(), &path).unwrap().header;
        let e = StreamedInputs::open(&path, &header).unwrap_err().to_string();
        assert!(e.ends_with("example 2 (counting from 0) holds `NaN` at value 1, not a finite 32-bit number"), "{e}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn auto_streams_only_large_uncompressed_npy_files() {
        let env = RealEnvironment::default();
        let npy = spec(Stream::Auto, Normalize::None).train;
        // 40 × 16 values: far below the threshold.
        assert!(!streams(Stream::Auto, &npy, &env));
        assert!(streams(Stream::Always, &npy, &env));
        assert!(!streams(Stream::Never, &npy, &env));
        let sines = Source::Sines { n: 10, components: 1, max_freq: 0.5, noise: 0.0, seed: 1 };
        assert!(!streams(Stream::Always, &sines, &env));
        assert!(cannot_stream(&sines, &env).unwrap().contains("only `npy` sources stream"));
    }
}
