//! Regression from (input, target) pairs in two CSV files:
//! `pairs(x="in.csv", y="out.csv")`.
//!
//! Row i of `x` is example i's input, reshaped to the model's input as a
//! `ucr` row is; row i of `y` is its target, a flat row the training step
//! lays out in the model's output shape (the checker has compared the row's
//! width with the output's size, E0146). Both files are read by the CSV
//! reader of [`crate::data`]: gzip read as its text, comma-separated, errors
//! at `file:line:column`. Every row is as wide as its file's first row and
//! every value a finite number; a first row without any number in it (`t0,
//! t1, …`) is a header and skipped, as `signal` skips one.
//!
//! `normalize` rescales the inputs only: the targets stay in their own units,
//! as a PyTorch user normalises the inputs of a regression and reads the
//! outputs in the targets' units.

use std::path::Path;

use super::{DataError, Dataset, Loaded, Targets, csv_rows, end_column, number, read_text};
use crate::language::check::environment::{Environment, RealEnvironment};

/// The rows of a CSV of numbers, every row as wide.
#[derive(Clone, Debug, PartialEq)]
pub struct NumberTable {
    /// Row-major values, `width` per row.
    pub values: Vec<f32>,
    pub width: usize,
    /// The 1-based line of each row.
    pub lines: Vec<usize>,
}

impl NumberTable {
    pub fn rows(&self) -> usize {
        self.lines.len()
    }
}

/// Reads a CSV of numbers through `env` (the checker's probe and loading).
pub fn read_table(env: &dyn Environment, path: &Path) -> Result<NumberTable, DataError> {
    let text = read_text(env, path)?;
    let mut table = NumberTable { values: Vec::new(), width: 0, lines: Vec::new() };
    let mut first: Option<usize> = None; // line of the first row
    for row in csv_rows(path, &text) {
        let (line_no, line, fields) = row?;
        if first.is_none() && fields.iter().all(|&(_, f)| f.parse::<f64>().is_err()) {
            first = Some(line_no); // a header: names only
            table.width = fields.len();
            continue;
        }
        let at = *first.get_or_insert(line_no);
        if table.width == 0 {
            table.width = fields.len();
        }
        if fields.len() != table.width {
            let column = fields.get(table.width).map_or_else(|| end_column(line), |f| f.0);
            return Err(DataError::at_column(
                path,
                line_no,
                column,
                format!("this row has {} values, but the first row (line {at}) has {}", fields.len(), table.width),
            ));
        }
        let last = fields.len() - 1;
        for (k, &(column, field)) in fields.iter().enumerate() {
            table.values.push(number(field, || format!("field {}", k + 1), column, k == last, path, line_no)?);
        }
        table.lines.push(line_no);
    }
    if table.lines.is_empty() {
        return Err(DataError::file(path, "the file holds no rows of numbers, only a header line"));
    }
    Ok(table)
}

/// An error if the inputs and the targets are not as many: at the first row
/// of the longer file that has no partner in the other.
pub fn rows_pair_up(x_path: &Path, x: &NumberTable, y_path: &Path, y: &NumberTable) -> Result<(), DataError> {
    let (longer_path, longer, shorter_path, shorter) = match x.rows().cmp(&y.rows()) {
        std::cmp::Ordering::Equal => return Ok(()),
        std::cmp::Ordering::Greater => (x_path, x, y_path, y),
        std::cmp::Ordering::Less => (y_path, y, x_path, x),
    };
    Err(DataError::at(
        longer_path,
        longer.lines[shorter.rows()],
        format!(
            "this file has {} rows, but {} has {}: row {} has no partner (row i of `x` is the input whose target is row i of `y`)",
            longer.rows(),
            shorter_path.display(),
            shorter.rows(),
            shorter.rows() + 1
        ),
    ))
}

/// Loads `pairs(x=x, y=y)` for a model whose input is `input`.
pub(super) fn load_pairs(x_path: &Path, y_path: &Path, input: &[usize]) -> Result<Loaded, DataError> {
    let env = RealEnvironment::default();
    let (x, y) = (read_table(&env, x_path)?, read_table(&env, y_path)?);
    let numel: usize = input.iter().product();
    if x.width != numel {
        return Err(DataError::at(
            x_path,
            x.lines[0],
            format!("rows have {} values, but the model's input {input:?} holds {numel}", x.width),
        ));
    }
    rows_pair_up(x_path, &x, y_path, &y)?;
    let (len, shape) = (x.rows(), vec![y.width]);
    let data =
        Dataset { inputs: x.values, targets: Targets::Regression { values: y.values, shape }, len, shape: input.to_vec(), stream: None };
    Ok(Loaded { data, classes: None, labels: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::check::environment::FakeEnvironment;

    fn read(text: &str) -> Result<NumberTable, DataError> {
        read_table(&FakeEnvironment::with_memory(1 << 30).file("t.csv", text), Path::new("t.csv"))
    }

    #[test]
    fn rows_of_numbers_with_an_optional_header() {
        let table = read("t0,t1,t2\n1,2,3\n\n4, 5 ,\"6\"\n").unwrap();
        assert_eq!((table.width, table.values.clone(), table.lines.clone()), (3, vec![1., 2., 3., 4., 5., 6.], vec![2, 4]));
        assert_eq!(read("1,2\n3,4\n").unwrap().lines, vec![1, 2]);
    }

    #[test]
    fn bad_rows_are_named_at_their_line_and_column() {
        let cases = [
            ("1,2,3\n4,5\n", "t.csv:2:4: this row has 2 values, but the first row (line 1) has 3"),
            ("a,b\n1,2,3\n", "t.csv:2:5: this row has 3 values, but the first row (line 1) has 2"),
            ("1,2\n3,x\n", "t.csv:2:3: field 2 is `x`, not a number"),
            ("1,2\n3,nan\n", "t.csv:2:3: field 2 is `nan`, not a finite number"),
            ("1,2\n3,\n", "t.csv:2:3: field 2 is empty, not a number (a comma at the end of the row?)"),
            ("1\t2\n", "t.csv:1:2: the values are separated by tabs"),
            ("x,y\n", "t.csv: the file holds no rows of numbers, only a header line"),
            ("", "t.csv: the file is empty"),
        ];
        for (text, start) in cases {
            let message = read(text).unwrap_err().to_string();
            assert!(message.starts_with(start), "{text:?}: {message}\n  should start with\n{start}");
        }
    }

    #[test]
    fn row_counts_must_agree() {
        let (x, y) = (read("1\n2\n3\n").unwrap(), read("h\n1\n2\n").unwrap());
        let e = rows_pair_up(Path::new("x.csv"), &x, Path::new("y.csv"), &y).unwrap_err().to_string();
        assert!(e.starts_with("x.csv:3: this file has 3 rows, but y.csv has 2: row 3 has no partner"), "{e}");
        let e = rows_pair_up(Path::new("y.csv"), &y, Path::new("x.csv"), &x).unwrap_err().to_string();
        assert!(e.starts_with("x.csv:3: this file has 3 rows, but y.csv has 2"), "{e}");
        assert!(rows_pair_up(Path::new("x.csv"), &x, Path::new("x.csv"), &x).is_ok());
    }

    #[test]
    fn pairs_load_inputs_in_the_input_shape_and_flat_targets() {
        let dir = std::env::temp_dir().join(format!("lpn-pairs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (x, y) = (dir.join("x.csv"), dir.join("y.csv.gz"));
        std::fs::write(&x, "1,2,3,4\n5,6,7,8\n").unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, b"y0,y1\n1.5,3.5\n5.5,7.5\n").unwrap();
        std::fs::write(&y, gz.finish().unwrap()).unwrap();
        let loaded = load_pairs(&x, &y, &[1, 4]).unwrap();
        assert_eq!((loaded.data.len, loaded.data.shape.clone(), loaded.classes), (2, vec![1, 4], None));
        assert_eq!(loaded.data.inputs, vec![1., 2., 3., 4., 5., 6., 7., 8.]);
        assert_eq!(loaded.data.targets, Targets::Regression { values: vec![1.5, 3.5, 5.5, 7.5], shape: vec![2] });
        let e = load_pairs(&x, &y, &[1, 3]).err().unwrap().to_string();
        assert!(e.ends_with("x.csv:1: rows have 4 values, but the model's input [1, 3] holds 3"), "{e}");
        std::fs::write(&y, "1,2\n").unwrap();
        let e = load_pairs(&x, &y, &[1, 4]).err().unwrap().to_string();
        assert!(
            e.contains("x.csv:2: this file has 2 rows, but ")
                && e.ends_with("row 2 has no partner (row i of `x` is the input whose target is row i of `y`)"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
