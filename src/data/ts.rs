//! Multivariate series in the `.ts` format of the UEA/UCR archives and
//! sktime/aeon: `ts("BasicMotions_TRAIN.ts")`.
//!
//! A header of `@key value` lines (`@problemName`, `@dimensions`,
//! `@seriesLength`, `@classLabel true Standing Running …`, …; `#` comments),
//! then `@data` and one example per line: the channels separated by `:`,
//! each channel's values by `,`, the class label last. Only equal-length
//! series without missing values and with class labels are read (the
//! header's `@equalLength false`, `@timeStamps true`, `@targetLabel true` and
//! a `?` value are errors saying so). An example becomes `[channels,
//! length]`, channel-major. Labels are strings, mapped to classes in sorted
//! order; a label not in `@classLabel` is an error at its line and column.

use std::collections::BTreeSet;
use std::path::Path;

use super::{DataError, Dataset, Label, Loaded, Targets, fields, number, read_text};
use crate::language::check::environment::{Environment, RealEnvironment};

/// The examples of a `.ts` file.
#[derive(Clone, Debug, PartialEq)]
pub struct TsTable {
    pub channels: usize,
    pub length: usize,
    /// Row-major values, `channels × length` per example, channel-major.
    pub values: Vec<f32>,
    /// The label of each example, and the line and column where it is written.
    pub labels: Vec<(Label, usize, usize)>,
}

impl TsTable {
    /// The distinct labels, sorted as `ucr`'s (numbers, then names): label
    /// `names[c]` is class `c`.
    pub fn class_names(&self) -> Vec<Label> {
        self.labels.iter().map(|(l, _, _)| l.clone()).collect::<BTreeSet<_>>().into_iter().collect()
    }
}

/// What the header says about the rows.
#[derive(Default)]
struct Header {
    dimensions: Option<usize>,
    length: Option<usize>,
    labels: Option<Vec<String>>,
}

/// Reads and validates a `.ts` file through `env` (the checker's probe and loading).
pub fn read_ts(env: &dyn Environment, path: &Path) -> Result<TsTable, DataError> {
    let text = read_text(env, path)?;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let header = read_header(path, &mut lines)?;
    let mut table = TsTable { channels: 0, length: 0, values: Vec::new(), labels: Vec::new() };
    for (line_no, line) in lines {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        read_row(path, line_no, line, &header, &mut table)?;
    }
    if table.labels.is_empty() {
        return Err(DataError::file(path, "the file has no examples after `@data`"));
    }
    Ok(table)
}

/// The header lines up to and including `@data`.
fn read_header<'t>(path: &Path, lines: &mut impl Iterator<Item = (usize, &'t str)>) -> Result<Header, DataError> {
    let mut header = Header::default();
    for (line_no, line) in lines.by_ref() {
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let Some(rest) = text.strip_prefix('@') else {
            return Err(DataError::at(path, line_no, "a value row before `@data`: the header ends with a line `@data`"));
        };
        let mut words = rest.split_whitespace();
        let key = words.next().unwrap_or("").to_ascii_lowercase();
        let value: Vec<&str> = words.collect();
        let flag = value.first().map(|v| v.eq_ignore_ascii_case("true"));
        let count = |what: &str| -> Result<Option<usize>, DataError> {
            match value.first().map(|v| v.parse::<usize>()) {
                Some(Ok(n)) if n > 0 => Ok(Some(n)),
                _ => Err(DataError::at(path, line_no, format!("`@{what}` needs a positive whole number"))),
            }
        };
        let unsupported = |why: &str| Err(DataError::at(path, line_no, why.to_string()));
        match key.as_str() {
            "data" => return Ok(header),
            "dimensions" | "dimension" => header.dimensions = count(&key)?,
            "serieslength" => header.length = count(&key)?,
            "equallength" if flag == Some(false) => {
                return unsupported("series of unequal length are not supported: `ts` needs `@equalLength true`");
            }
            "timestamps" if flag == Some(true) => {
                return unsupported("series with time stamps are not supported: `ts` reads `@timeStamps false`");
            }
            "targetlabel" if flag == Some(true) => {
                return unsupported("regression targets (`@targetLabel true`) are not supported: `ts` reads class labels");
            }
            "classlabel" if flag == Some(true) => header.labels = Some(value[1..].iter().map(|l| l.to_string()).collect()),
            "classlabel" => return unsupported("`ts` needs class labels: `@classLabel true` and the labels"),
            // @problemName, @univariate, @missing (a `?` is refused where it is) and others say nothing lpn needs.
            _ => {}
        }
    }
    Err(DataError::file(path, "no `@data` line: the header of a .ts file ends with `@data`, then one example per line"))
}

/// One example: channels separated by `:`, values by `,`, the label last.
fn read_row(path: &Path, line_no: usize, line: &str, header: &Header, table: &mut TsTable) -> Result<(), DataError> {
    let mut parts: Vec<(usize, &str)> = Vec::new();
    let mut start = 0;
    for piece in line.split(':') {
        parts.push((line[..start].chars().count(), piece));
        start += piece.len() + 1;
    }
    let Some(&(label_at, label)) = parts.last().filter(|_| parts.len() >= 2) else {
        return Err(DataError::at(
            path,
            line_no,
            "this row has no `:` before a class label: channels are separated by `:`, the label comes last",
        ));
    };
    let channels = &parts[..parts.len() - 1];
    let label_column = label_at + 1 + (label.len() - label.trim_start().len());
    let label = label.trim();
    if label.is_empty() {
        return Err(DataError::at_column(path, line_no, label_column, "the class label (after the last `:`) is empty"));
    }
    if let Some(known) = &header.labels
        && !known.iter().any(|k| k == label)
    {
        return Err(DataError::at_column(
            path,
            line_no,
            label_column,
            format!("the label `{label}` is not one of `@classLabel`'s ({})", known.join(", ")),
        ));
    }
    let expected_channels = header.dimensions.or((table.channels > 0).then_some(table.channels));
    if let Some(expected) = expected_channels
        && channels.len() != expected
    {
        return Err(DataError::at_column(
            path,
            line_no,
            label_column,
            format!("this row has {} channels, but {expected} are expected (channels are separated by `:`)", channels.len()),
        ));
    }
    for (k, &(offset, channel)) in channels.iter().enumerate() {
        let values = fields(channel);
        let expected = header.length.or((table.length > 0).then_some(table.length));
        if let Some(expected) = expected
            && values.len() != expected
        {
            return Err(DataError::at_column(
                path,
                line_no,
                offset + 1,
                format!("channel {} has {} values, but the series are {expected} long (equal-length series)", k + 1, values.len()),
            ));
        }
        for (i, &(column, field)) in values.iter().enumerate() {
            if field == "?" {
                return Err(DataError::at_column(
                    path,
                    line_no,
                    offset + column,
                    "a missing value `?`: lpn does not fill in missing values",
                ));
            }
            let name = || format!("value {} of channel {}", i + 1, k + 1);
            table.values.push(number(field, name, offset + column, i + 1 == values.len(), path, line_no)?);
        }
        table.length = values.len();
    }
    table.channels = channels.len();
    // Read as `ucr` reads a label, so `1` and `1.0` are one class and classes sort alike.
    table.labels.push((super::label(label, path, line_no, label_column)?, line_no, label_column));
    Ok(())
}

/// Loads `ts(path)` for a model whose input is `input`; `known` are the
/// training data's labels in class order (for validation and test data).
pub(super) fn load_ts(path: &Path, input: &[usize], known: Option<&[Label]>) -> Result<Loaded, DataError> {
    let table = read_ts(&RealEnvironment::default(), path)?;
    if input.iter().product::<usize>() != table.channels * table.length {
        return Err(DataError::file(
            path,
            format!(
                "the series are {} channels × {} samples, but the model's input is {input:?}: use `input [{}, {}]`",
                table.channels, table.length, table.channels, table.length
            ),
        ));
    }
    let names = table.class_names();
    let keys: Vec<Label> = match known {
        Some(known) => known.to_vec(),
        None if names.len() < 2 => return Err(super::numpy::one_class(path, format!("`{}`", names[0]))),
        None => names,
    };
    let mut classes = Vec::with_capacity(table.labels.len());
    for (label, line, column) in &table.labels {
        match keys.binary_search(label) {
            Ok(class) => classes.push(class),
            Err(_) => {
                return Err(DataError::at_column(
                    path,
                    *line,
                    *column,
                    format!("the label `{label}` has no example in the training data: a class without training examples cannot be learnt"),
                ));
            }
        }
    }
    let len = classes.len();
    let data = Dataset { inputs: table.values, targets: Targets::Classes(classes), len, shape: input.to_vec(), stream: None };
    Ok(Loaded { data, classes: Some(keys.len()), labels: Some(keys) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::check::environment::FakeEnvironment;

    const MOTIONS: &str = "# two channels, three samples\n@problemName Tiny\n@univariate false\n@dimensions 2\n@equalLength true\n@seriesLength 3\n@classLabel true walk stand run\n@data\n1,2,3:4,5,6:walk\n0.5, 0.25 ,0:1,1,1:stand\n\n-1,-2,-3:0,0,0:walk\n";

    fn read(text: &str) -> Result<TsTable, DataError> {
        read_ts(&FakeEnvironment::with_memory(1 << 30).file("m.ts", text), Path::new("m.ts"))
    }

    #[test]
    fn rows_become_channels_by_length_with_sorted_string_classes() {
        let table = read(MOTIONS).unwrap();
        assert_eq!((table.channels, table.length), (2, 3));
        assert_eq!(table.values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.5, 0.25, 0.0, 1.0, 1.0, 1.0, -1.0, -2.0, -3.0, 0.0, 0.0, 0.0]);
        assert_eq!(
            table.labels.iter().map(|(l, line, column)| (l.to_string(), *line, *column)).collect::<Vec<_>>(),
            [("walk".to_string(), 9, 13), ("stand".to_string(), 10, 20), ("walk".to_string(), 12, 16)]
        );
        assert_eq!(table.class_names(), [Label::Name("stand".into()), Label::Name("walk".into())]);
    }

    #[test]
    fn bad_rows_and_headers_are_named_at_their_line_and_column() {
        let with = |row: &str| MOTIONS.replace("0.5, 0.25 ,0:1,1,1:stand", row);
        let cases = [
            (with("0.5,0.25,0:1,1,1:sit"), "m.ts:10:18: the label `sit` is not one of `@classLabel`'s (walk, stand, run)"),
            (with("0.5,0.25,0:stand"), "m.ts:10:12: this row has 1 channels, but 2 are expected"),
            (with("0.5,0.25:1,1,1:stand"), "m.ts:10:1: channel 1 has 2 values, but the series are 3 long"),
            (with("0.5,?,0:1,1,1:stand"), "m.ts:10:5: a missing value `?`"),
            (with("0.5,x,0:1,1,1:stand"), "m.ts:10:5: value 2 of channel 1 is `x`, not a number"),
            (with("0.5,0.25,0,1,1,1"), "m.ts:10: this row has no `:` before a class label"),
            (MOTIONS.replace("@equalLength true", "@equalLength false"), "m.ts:5: series of unequal length are not supported"),
            (MOTIONS.replace("@data\n", ""), "m.ts:8: a value row before `@data`"),
            (MOTIONS[..MOTIONS.find("@data").unwrap()].to_string(), "m.ts: no `@data` line"),
        ];
        for (text, start) in cases {
            let message = read(&text).unwrap_err().to_string();
            assert!(message.starts_with(start), "{message}\n  should start with\n{start}");
        }
    }

    #[test]
    fn validation_labels_map_onto_the_training_classes_by_name() {
        let dir = std::env::temp_dir().join(format!("lpn-ts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (train, val) = (dir.join("train.ts"), dir.join("val.ts"));
        std::fs::write(&train, MOTIONS).unwrap();
        // Only `walk` rows: class 1 of the training data, not class 0 of its own.
        std::fs::write(&val, MOTIONS.replace("0.5, 0.25 ,0:1,1,1:stand", "0,0,0:0,0,0:walk")).unwrap();
        let trained = load_ts(&train, &[2, 3], None).unwrap();
        assert_eq!(trained.data.targets, Targets::Classes(vec![1, 0, 1]));
        let loaded = load_ts(&val, &[2, 3], trained.labels.as_deref()).unwrap();
        assert_eq!((loaded.data.targets, loaded.classes), (Targets::Classes(vec![1, 1, 1]), Some(2)));
        std::fs::write(&val, MOTIONS.replace("stand", "run")).unwrap();
        let unknown = load_ts(&val, &[2, 3], trained.labels.as_deref()).err().unwrap().to_string();
        assert!(
            unknown.ends_with(
                "val.ts:10:20: the label `run` has no example in the training data: a class without training examples cannot be learnt"
            ),
            "{unknown}"
        );
        assert!(load_ts(&train, &[3, 2], None).is_ok());
        assert!(load_ts(&train, &[2, 4], None).err().unwrap().to_string().contains("use `input [2, 3]`"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
