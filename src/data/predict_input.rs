//! New inputs without labels, for `lpnc predict`: CSV rows (one example per
//! row, the flattened input shape's values; a first row that is not numbers
//! is a header) and NumPy `.npy` arrays of shape `[n, …input]`, told apart
//! by the `.npy` magic bytes. Both are read in batches, so memory does not
//! grow with the number of rows; errors are [`DataError`]s with file and
//! line, worded as the training data's are (the same field reader).
//!
//! The `.npy` reader is our own (about a hundred lines): the format is a
//! magic string, a Python-literal header (`descr`, `fortran_order`, `shape`)
//! and raw C-order values; the crates that read it (`ndarray-npy`, `npyz`)
//! read whole arrays into memory or bring a dependency tree for what a
//! streaming loop of `read_exact` does.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::{DataError, end_column, fields, number, other_separator};
use crate::language::check::environment::{EntryKind, Environment, RealEnvironment};

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Examples read from a file of inputs, a batch at a time.
pub struct InputReader {
    path: PathBuf,
    /// The model's input shape and its number of values.
    shape: Vec<usize>,
    per_example: usize,
    format: Format,
}

enum Format {
    Csv(Csv),
    Npy(Npy),
}

struct Csv {
    lines: Box<dyn BufRead>,
    /// Lines read so far (1-based number of the last one).
    line_no: usize,
    seen_row: bool,
    /// Rows of values read so far (a header is not one).
    rows: usize,
}

struct Npy {
    bytes: Box<dyn BufRead>,
    dtype: Dtype,
    /// Examples in the array, and those read so far.
    examples: usize,
    done: usize,
}

/// An element type of a `.npy` array.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dtype {
    kind: NumKind,
    size: usize,
    big_endian: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum NumKind {
    Float,
    Int,
    Unsigned,
}

impl InputReader {
    /// Opens `path` for a model whose input has `shape` (without the batch
    /// axis). A `.npy` header is read and checked here.
    pub fn open(path: &Path, shape: &[usize]) -> Result<InputReader, DataError> {
        match RealEnvironment::default().kind(path) {
            Some(EntryKind::Folder) => return Err(DataError::file(path, "is a folder, not a file")),
            Some(EntryKind::Other(what)) => return Err(DataError::file(path, format!("is not a regular file: it is {what}"))),
            Some(EntryKind::File) => {}
            None => return Err(DataError::file(path, "the file does not exist")),
        }
        let file = File::open(path).map_err(|e| DataError::file(path, format!("the file cannot be read: {e}")))?;
        InputReader::from_reader(path, Box::new(BufReader::with_capacity(1 << 16, file)), shape)
    }

    /// Reads from `reader`; `path` names it in messages.
    pub fn from_reader(path: &Path, mut reader: Box<dyn BufRead>, shape: &[usize]) -> Result<InputReader, DataError> {
        let start = reader.fill_buf().map_err(|e| DataError::file(path, format!("the file cannot be read: {e}")))?;
        let format = if start.starts_with(NPY_MAGIC) {
            let (dtype, examples) = npy_header(path, &mut reader, shape)?;
            Format::Npy(Npy { bytes: reader, dtype, examples, done: 0 })
        } else if start.is_empty() {
            return Err(DataError::file(path, "the file is empty"));
        } else {
            Format::Csv(Csv { lines: reader, line_no: 0, seen_row: false, rows: 0 })
        };
        Ok(InputReader { path: path.to_path_buf(), shape: shape.to_vec(), per_example: shape.iter().product(), format })
    }

    /// How many examples the file holds, where its header says (`.npy`).
    pub fn total(&self) -> Option<usize> {
        match &self.format {
            Format::Npy(n) => Some(n.examples),
            Format::Csv(_) => None,
        }
    }

    /// Appends up to `max` examples to `out` (row-major, the model's input
    /// layout) and returns how many; 0 at the end of the file.
    pub fn next_batch(&mut self, max: usize, out: &mut Vec<f32>) -> Result<usize, DataError> {
        let per = self.per_example;
        match &mut self.format {
            Format::Csv(csv) => (0..max).try_fold(0, |n, _| Ok(n + usize::from(csv.row(&self.path, &self.shape, per, out)?))),
            Format::Npy(npy) => npy.batch(&self.path, per, max, out),
        }
    }
}

impl Csv {
    /// The next row's values appended to `out`; false at the end of the file.
    fn row(&mut self, path: &Path, shape: &[usize], per: usize, out: &mut Vec<f32>) -> Result<bool, DataError> {
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.lines.read_line(&mut line).map_err(|e| {
                let why = match e.kind() {
                    std::io::ErrorKind::InvalidData => "this line is not UTF-8 text; save the file as UTF-8 (or plain ASCII)".into(),
                    _ => format!("the file cannot be read: {e}"),
                };
                DataError::at(path, self.line_no + 1, why)
            })?;
            if read == 0 {
                if self.rows == 0 {
                    return Err(DataError::file(path, "the file has no rows"));
                }
                return Ok(false);
            }
            self.line_no += 1;
            let text = line.trim_end_matches(['\n', '\r']);
            let text = if self.line_no == 1 { text.strip_prefix('\u{FEFF}').unwrap_or(text) } else { text };
            if text.trim().is_empty() {
                continue;
            }
            let first_row = !self.seen_row;
            self.seen_row = true;
            if let Some(e) = other_separator(path, self.line_no, text) {
                return Err(e);
            }
            let fields = fields(text);
            // A first row that is not numbers is a header, as in `signal` files.
            if first_row && fields.iter().any(|(_, f)| f.parse::<f64>().is_err()) {
                continue;
            }
            if fields.len() != per {
                return Err(wrong_width(path, self.line_no, text, &fields, shape, per));
            }
            let last = fields.len() - 1;
            for (k, &(column, field)) in fields.iter().enumerate() {
                out.push(number(field, || format!("value {}", k + 1), column, k == last, path, self.line_no)?);
            }
            self.rows += 1;
            return Ok(true);
        }
    }
}

/// A row with another number of values than the model's input holds.
fn wrong_width(path: &Path, line: usize, text: &str, fields: &[(usize, &str)], shape: &[usize], per: usize) -> DataError {
    let column = fields.get(per).map_or_else(|| end_column(text), |f| f.0);
    let hint =
        if fields.len() == per + 1 { " (is the first value a label? predict reads inputs only: remove the label column)" } else { "" };
    DataError::at_column(
        path,
        line,
        column,
        format!("this row has {} values, but the model's input {shape:?} holds {per}{hint}", fields.len()),
    )
}

impl Npy {
    fn batch(&mut self, path: &Path, per: usize, max: usize, out: &mut Vec<f32>) -> Result<usize, DataError> {
        let n = max.min(self.examples - self.done);
        let mut raw = vec![0u8; n * per * self.dtype.size];
        self.bytes.read_exact(&mut raw).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    format!("the file ends before its {} examples do (at most {} are whole): it is truncated", self.examples, self.done)
                }
                _ => format!("the file cannot be read: {e}"),
            };
            DataError::file(path, why)
        })?;
        self.dtype.convert(path, &raw, self.done, per, out)?;
        self.done += n;
        Ok(n)
    }
}

impl Dtype {
    /// Whether the values are integers (signed or unsigned).
    pub fn is_integer(self) -> bool {
        match self.kind {
            NumKind::Int | NumKind::Unsigned => true,
            NumKind::Float => false,
        }
    }

    /// Reads a `descr` such as `<f4`, `>i8`, `|u1`.
    fn parse(descr: &str) -> Option<Dtype> {
        let mut chars = descr.chars();
        let big_endian = match chars.next()? {
            '<' | '|' => false,
            '>' => true,
            '=' => cfg!(target_endian = "big"),
            _ => return None,
        };
        let kind = match chars.next()? {
            'f' => NumKind::Float,
            'i' => NumKind::Int,
            'u' => NumKind::Unsigned,
            _ => return None,
        };
        let size: usize = chars.as_str().parse().ok()?;
        let known = match kind {
            NumKind::Float => matches!(size, 4 | 8),
            NumKind::Int | NumKind::Unsigned => matches!(size, 1 | 2 | 4 | 8),
        };
        known.then_some(Dtype { kind, size, big_endian })
    }

    /// The bytes of whole examples of `per` values, the first being example
    /// `first`, appended to `out` as `f32`; an error names the first value
    /// that is not a finite 32-bit number.
    pub fn convert(self, path: &Path, raw: &[u8], first: usize, per: usize, out: &mut Vec<f32>) -> Result<(), DataError> {
        for (i, bytes) in raw.chunks_exact(self.size).enumerate() {
            let x = self.value(bytes);
            if !x.is_finite() || !(x as f32).is_finite() {
                let (example, value) = (first + i / per, i % per);
                return Err(DataError::file(
                    path,
                    format!("example {example} (counting from 0) holds `{x}` at value {value}, not a finite 32-bit number"),
                ));
            }
            out.push(x as f32);
        }
        Ok(())
    }

    /// Bytes of one value.
    pub fn size(self) -> usize {
        self.size
    }

    /// One value from its `size` bytes.
    fn value(self, bytes: &[u8]) -> f64 {
        let mut b = [0u8; 8];
        if self.big_endian {
            b[8 - self.size..].copy_from_slice(bytes);
            b.reverse();
        } else {
            b[..self.size].copy_from_slice(bytes);
        }
        // `b` now holds the value little-endian in its first `size` bytes.
        match (self.kind, self.size) {
            (NumKind::Float, 4) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            (NumKind::Float, _) => f64::from_le_bytes(b),
            (NumKind::Unsigned, _) => u64::from_le_bytes(b) as f64,
            (NumKind::Int, size) => {
                // Sign-extend from `size` bytes.
                let shift = 64 - 8 * size as u32;
                ((i64::from_le_bytes(b) << shift) >> shift) as f64
            }
        }
    }
}

/// Reads and checks a `.npy` header: the element type, C order, and a shape
/// `[n, …]` whose other axes hold as many values as the model's input.
/// Returns the type and `n`.
fn npy_header(path: &Path, reader: &mut Box<dyn BufRead>, input: &[usize]) -> Result<(Dtype, usize), DataError> {
    let NpyHeader { dtype, shape, .. } = read_npy_header(path, reader)?;
    let per: usize = input.iter().product();
    let fits = !shape.is_empty() && shape[1..].iter().product::<usize>() == per;
    if !fits {
        return Err(DataError::file(
            path,
            format!("the array has shape {shape:?}, but the model takes examples of shape {input:?}: it needs shape [n, {}]", join(input)),
        ));
    }
    Ok((dtype, shape[0]))
}

/// What a `.npy` header says: the element type, the shape, and how many
/// bytes precede the values.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyHeader {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data_offset: u64,
}

impl NpyHeader {
    /// Bytes of the values the header announces.
    pub fn data_bytes(&self) -> u64 {
        self.shape.iter().fold(self.dtype.size as u64, |n, &d| n.saturating_mul(d as u64))
    }
}

/// Reads a `.npy` header (after the magic check): the element type, which
/// must be a number type, C order, and the shape.
pub fn read_npy_header(path: &Path, reader: &mut dyn Read) -> Result<NpyHeader, DataError> {
    let bad = |why: String| DataError::file(path, format!("not a readable .npy file: {why}"));
    let mut start = [0u8; 8];
    reader.read_exact(&mut start).map_err(|e| bad(e.to_string()))?;
    if !start.starts_with(NPY_MAGIC) {
        return Err(bad("it does not start with the .npy magic bytes `\\x93NUMPY`".into()));
    }
    let header_len = match start[6] {
        1 => {
            let mut len = [0u8; 2];
            reader.read_exact(&mut len).map_err(|e| bad(e.to_string()))?;
            u16::from_le_bytes(len) as usize
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            reader.read_exact(&mut len).map_err(|e| bad(e.to_string()))?;
            u32::from_le_bytes(len) as usize
        }
        v => return Err(bad(format!("format version {v} is not one lpn knows (1, 2 or 3)"))),
    };
    if header_len > 1 << 20 {
        return Err(bad(format!("its header claims {header_len} bytes")));
    }
    let mut header = vec![0u8; header_len];
    reader.read_exact(&mut header).map_err(|e| bad(e.to_string()))?;
    let header = String::from_utf8_lossy(&header);
    let descr = quoted_value(&header, "descr").ok_or_else(|| bad(format!("no `descr` in its header `{}`", header.trim())))?;
    let dtype = Dtype::parse(&descr).ok_or_else(|| {
        DataError::file(
            path,
            format!("the array's type `{descr}` is not a number type lpn reads (float32/64, signed or unsigned integers)"),
        )
    })?;
    if header_value(&header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(DataError::file(path, "the array is in Fortran order; save it in C order (`np.save(f, np.ascontiguousarray(a))`)"));
    }
    let shape =
        header_value(&header, "shape").and_then(parse_shape).ok_or_else(|| bad(format!("no shape in its header `{}`", header.trim())))?;
    let data_offset = header_len as u64 + if start[6] == 1 { 10 } else { 12 };
    Ok(NpyHeader { dtype, shape, data_offset })
}

fn join(shape: &[usize]) -> String {
    shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

/// The text after `'key':` in a header dict, up to its end.
fn header_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header.find(&format!("'{key}'")).or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

/// A quoted string value of the header dict.
fn quoted_value(header: &str, key: &str) -> Option<String> {
    let rest = header_value(header, key)?;
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &rest[1..];
    Some(body[..body.find(quote)?].to_string())
}

/// `(3, 1, 150)` or `(3,)` → the dimensions.
fn parse_shape(value: &str) -> Option<Vec<usize>> {
    let body = value.strip_prefix('(')?;
    let body = &body[..body.find(')')?];
    body.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8], shape: &[usize]) -> Result<InputReader, DataError> {
        InputReader::from_reader(Path::new("x.in"), Box::new(std::io::Cursor::new(bytes.to_vec())), shape)
    }

    fn all(r: &mut InputReader, batch: usize) -> Result<Vec<f32>, DataError> {
        let mut out = Vec::new();
        while r.next_batch(batch, &mut out)? > 0 {}
        Ok(out)
    }

    /// A `.npy` file as numpy 1.x writes it: version 1, header padded to 64 bytes.
    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = NPY_MAGIC.to_vec();
        bytes.extend([1, 0]);
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        bytes
    }

    #[test]
    fn npy_of_every_type_and_byte_order_reads_the_same_values() {
        let values = [1.0f64, -2.0, 3.0, 100.0];
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("<f4", values.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect()),
            (">f4", values.iter().flat_map(|&x| (x as f32).to_be_bytes()).collect()),
            ("<f8", values.iter().flat_map(|&x| x.to_le_bytes()).collect()),
            (">f8", values.iter().flat_map(|&x| x.to_be_bytes()).collect()),
            ("|i1", values.iter().flat_map(|&x| (x as i8).to_le_bytes()).collect()),
            ("<i2", values.iter().flat_map(|&x| (x as i16).to_le_bytes()).collect()),
            (">i2", values.iter().flat_map(|&x| (x as i16).to_be_bytes()).collect()),
            ("<i4", values.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect()),
            (">i8", values.iter().flat_map(|&x| (x as i64).to_be_bytes()).collect()),
            ("<i8", values.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect()),
        ];
        for (descr, data) in cases {
            let mut r = reader(&npy(descr, "(2, 1, 2)", &data), &[1, 2]).unwrap();
            assert_eq!(r.total(), Some(2), "{descr}");
            assert_eq!(all(&mut r, 1).unwrap(), [1.0, -2.0, 3.0, 100.0], "{descr}");
        }
        let unsigned: Vec<u8> = [1u16, 65535].iter().flat_map(|x| x.to_be_bytes()).collect();
        assert_eq!(all(&mut reader(&npy(">u2", "(2,)", &unsigned), &[1]).unwrap(), 5).unwrap(), [1.0, 65535.0]);
    }

    #[test]
    fn npy_files_written_by_numpy_read_back_in_every_type() {
        // tests/reference/make_npy_fixtures.py
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npy");
        for name in ["le_f4", "be_f4", "le_f8", "be_f8", "i1", "le_i2", "be_i4", "le_i8", "be_i8", "v2_le_f4"] {
            let mut r = InputReader::open(&dir.join(format!("{name}.npy")), &[1, 3]).unwrap();
            assert_eq!(r.total(), Some(2), "{name}");
            assert_eq!(all(&mut r, 1).unwrap(), [1.0, -2.0, 3.0, 100.0, 0.0, -7.0], "{name}");
        }
        let mut unsigned = InputReader::open(&dir.join("unsigned_u2.npy"), &[3]).unwrap();
        assert_eq!(all(&mut unsigned, 2).unwrap(), [1.0, 2.0, 3.0, 100.0, 0.0, 7.0]);
        let fortran = InputReader::open(&dir.join("fortran.npy"), &[3]).err().unwrap();
        assert!(fortran.to_string().contains("Fortran order"), "{fortran}");
    }

    #[test]
    fn npy_headers_that_do_not_fit_are_named() {
        let data = [0u8; 24];
        let err = |descr: &str, shape: &str| reader(&npy(descr, shape, &data), &[1, 3]).err().unwrap().to_string();
        assert_eq!(
            err("<f4", "(2, 4)"),
            "x.in: the array has shape [2, 4], but the model takes examples of shape [1, 3]: it needs shape [n, 1, 3]"
        );
        assert!(err("<c8", "(2, 3)").contains("type `<c8` is not a number type"), "{}", err("<c8", "(2, 3)"));
        let mut fortran = npy("<f4", "(2, 3)", &data);
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran.splice(at..at + 5, *b"True ");
        assert!(reader(&fortran, &[1, 3]).err().unwrap().to_string().contains("Fortran order"));
        let mut short = reader(&npy("<f4", "(3, 3)", &data), &[1, 3]).unwrap();
        assert!(all(&mut short, 8).unwrap_err().to_string().contains("truncated"));
        let nan: Vec<u8> = [0.0f32, f32::NAN, 1.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let message = all(&mut reader(&npy("<f4", "(1, 3)", &nan), &[3]).unwrap(), 1).unwrap_err().to_string();
        assert_eq!(message, "x.in: example 0 (counting from 0) holds `NaN` at value 1, not a finite 32-bit number");
    }

    #[test]
    fn csv_rows_read_in_batches_after_a_header() {
        let text = "a,b,c\n1,2,3\n\n4, 5 ,6\r\n7,8,9\n";
        let mut r = reader(text.as_bytes(), &[3]).unwrap();
        let mut out = Vec::new();
        assert_eq!(r.next_batch(2, &mut out).unwrap(), 2);
        assert_eq!(r.next_batch(2, &mut out).unwrap(), 1);
        assert_eq!(r.next_batch(2, &mut out).unwrap(), 0);
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        assert_eq!(r.total(), None);
    }

    #[test]
    fn a_ragged_or_wrong_width_csv_is_named_at_its_line_and_column() {
        let ragged = all(&mut reader(b"1,2,3\n4,5\n", &[1, 3]).unwrap(), 10).unwrap_err();
        assert_eq!(ragged.to_string(), "x.in:2:4: this row has 2 values, but the model's input [1, 3] holds 3");
        let labelled = all(&mut reader(b"1,0.5,0.25,0.125\n", &[3]).unwrap(), 10).unwrap_err();
        assert!(labelled.to_string().starts_with("x.in:1:12: this row has 4 values, but the model's input [3] holds 3 (is the first"));
        let word = all(&mut reader(b"1,2,3\n1,x,3\n", &[3]).unwrap(), 10).unwrap_err();
        assert_eq!(word.to_string(), "x.in:2:3: value 2 is `x`, not a number");
        let tabs = all(&mut reader(b"1\t2\t3\n", &[3]).unwrap(), 10).unwrap_err();
        assert!(tabs.to_string().starts_with("x.in:1:2: the values are separated by tabs"), "{tabs}");
        let header_only = all(&mut reader(b"a,b,c\n", &[3]).unwrap(), 10).unwrap_err();
        assert_eq!(header_only.to_string(), "x.in: the file has no rows");
    }
}
