//! The bad-data corpus: every file in `tests/bad_data/data/` is read by a case
//! below, which puts it in a small program and
//!
//! - checks the program (`lpnc check`, which also runs before `lpnc train`):
//!   a bad file must give an error, an `ok_` file none;
//! - loads the data as training does, before its first step
//!   (`lpn::data::load`): a bad file must give an error naming the file, and
//!   the line and column where they apply; an `ok_` file must load.
//!
//! Both messages, with the program, are the case's snapshot
//! (`tests/snapshots/bad_data__NAME.snap`; review with `cargo insta review`).

use std::path::{Path, PathBuf};

use lpn::data::{self, Targets};
use lpn::language::ir::{DataSpec, Source};
use lpn::language::schema::Task;

const DIR: &str = "tests/bad_data";

#[derive(Clone, Copy)]
enum Src {
    Ucr(&'static str),
    /// File and `column=`.
    Signal(&'static str, usize),
}

impl Src {
    fn file(self) -> &'static str {
        match self {
            Src::Ucr(f) | Src::Signal(f, _) => f,
        }
    }
    fn lpn(self) -> String {
        match self {
            Src::Ucr(f) => format!("ucr(\"data/{f}\")"),
            Src::Signal(f, c) => format!("signal(\"data/{f}\", column={c})"),
        }
    }
    fn source(self) -> Source {
        let path = Path::new(DIR).join("data").join(self.file());
        match self {
            Src::Ucr(_) => Source::Ucr { path },
            Src::Signal(_, column) => Source::Signal { path, column, stride: None, noise: 0.1, seed: 1 },
        }
    }
}

/// Where the load-time error must point.
#[derive(Clone, Copy)]
enum At {
    /// The file as a whole.
    File(&'static str),
    /// File, line and column.
    Cell(&'static str, usize, usize),
    /// File and line (a fact about a whole row).
    Line(&'static str, usize),
    /// No file: the model's input, not the data, is at fault.
    Nowhere,
    /// Loading succeeds: only the checker, which knows the model's output, objects.
    Loads,
}

struct Case {
    name: &'static str,
    /// What is wrong (or, for `ok_` cases, what must just work).
    what: &'static str,
    train: Src,
    val: Option<Src>,
    test: Option<Src>,
    val_split: f64,
    input: &'static [usize],
    /// Logits of a classifier; `None`: a denoiser.
    logits: Option<usize>,
    at: At,
}

const fn ucr(name: &'static str, what: &'static str, file: &'static str, at: At) -> Case {
    Case { name, what, train: Src::Ucr(file), val: None, test: None, val_split: 0.0, input: &[1, 4], logits: Some(2), at }
}

const fn signal(name: &'static str, what: &'static str, file: &'static str, at: At) -> Case {
    Case { name, what, train: Src::Signal(file, 1), val: None, test: None, val_split: 0.0, input: &[1, 16], logits: None, at }
}

const CASES: &[Case] = &[
    ucr("missing_file", "a file that does not exist", "no_such_file.csv", At::File("no_such_file.csv")),
    ucr("folder", "a folder where a file is expected", "folder.csv", At::File("folder.csv")),
    ucr("empty", "an empty file", "empty.csv", At::File("empty.csv")),
    ucr("blank_lines", "a file of blank lines only", "blank_lines.csv", At::File("blank_lines.csv")),
    ucr("header_row", "a header line, which UCR files do not have", "header_row.csv", At::Cell("header_row.csv", 1, 7)),
    ucr("ragged_short", "a row with a value too few", "ragged_short.csv", At::Cell("ragged_short.csv", 3, 17)),
    ucr("ragged_long", "a row with a value too many", "ragged_long.csv", At::Cell("ragged_long.csv", 4, 23)),
    ucr("not_a_number", "a value that is text", "not_a_number.csv", At::Cell("not_a_number.csv", 2, 8)),
    ucr("empty_value", "an empty value between two commas", "empty_value.csv", At::Cell("empty_value.csv", 3, 8)),
    ucr("trailing_comma", "a comma at the end of every row", "trailing_comma.csv", At::Cell("trailing_comma.csv", 1, 23)),
    ucr("nan_value", "a NaN value", "nan_value.csv", At::Cell("nan_value.csv", 4, 13)),
    ucr("infinite_value", "an infinite value", "infinite_value.csv", At::Cell("infinite_value.csv", 2, 18)),
    ucr("too_large_for_f32", "a value beyond 32-bit floats", "too_large_for_f32.csv", At::Cell("too_large_for_f32.csv", 3, 13)),
    ucr("label_fraction", "a label that is not an integer", "label_fraction.csv", At::Cell("label_fraction.csv", 3, 1)),
    ucr("label_text", "a name among number labels: three classes (1, 2, `cat`) for two logits", "label_text.csv", At::Loads),
    ucr("label_empty", "an empty label", "label_empty.csv", At::Cell("label_empty.csv", 2, 1)),
    ucr("label_huge", "a label too large to be a class number", "label_huge.csv", At::Cell("label_huge.csv", 3, 1)),
    ucr("one_class", "a single class", "one_class.csv", At::File("one_class.csv")),
    Case {
        test: Some(Src::Ucr("label_not_in_training.csv")),
        ..ucr(
            "test_label_not_in_training",
            "a test label the training data lacks",
            "two_class.csv",
            At::Cell("label_not_in_training.csv", 3, 1),
        )
    },
    Case {
        val: Some(Src::Ucr("label_not_in_training.csv")),
        ..ucr(
            "val_label_not_in_training",
            "a validation label the training data lacks",
            "two_class.csv",
            At::Cell("label_not_in_training.csv", 3, 1),
        )
    },
    Case {
        val_split: LONE_SPLIT,
        logits: Some(3),
        ..ucr(
            "class_only_in_val_split",
            "a class whose only example the validation split takes",
            "lone_class.csv",
            At::Cell("lone_class.csv", LONE_LINE, 1),
        )
    },
    Case { logits: Some(4), ..ucr("label_gap", "labels 0, 1 and 3 for a 4-class model: no example of 2", "label_gap.csv", At::Loads) },
    ucr("row_length", "rows of 6 values for an input of 4", "six_values.csv", At::Line("six_values.csv", 1)),
    Case {
        input: &[2, 4],
        ..ucr("row_channels", "rows of 4 values for a 2-channel input of 8", "two_class.csv", At::Line("two_class.csv", 1))
    },
    ucr("latin1", "a byte that is not UTF-8 (Latin-1 µ)", "latin1.csv", At::Cell("latin1.csv", 3, 18)),
    ucr("utf16", "UTF-16 text", "utf16.csv", At::File("utf16.csv")),
    ucr("tab_separated", "tab-separated values (the UCR 2018 .tsv layout)", "tab_separated.tsv", At::Cell("tab_separated.tsv", 1, 2)),
    ucr("semicolons", "semicolon-separated values with decimal commas", "semicolons.csv", At::Cell("semicolons.csv", 1, 2)),
    signal(
        "recording_text_value",
        "a recording with a value that is text",
        "recording_text_value.csv",
        At::Cell("recording_text_value.csv", 11, 8),
    ),
    signal("recording_nan", "a recording with a NaN", "recording_nan.csv", At::Cell("recording_nan.csv", 17, 8)),
    signal("recording_short", "a recording shorter than one window", "recording_short.csv", At::File("recording_short.csv")),
    signal(
        "recording_header_only",
        "a recording with a header and no samples",
        "recording_header_only.csv",
        At::File("recording_header_only.csv"),
    ),
    Case {
        train: Src::Signal("recording.csv", 2),
        ..signal("recording_missing_column", "`column=2` of a 2-column recording", "recording.csv", At::Cell("recording.csv", 1, 9))
    },
    Case { input: &[2, 16], ..signal("recording_channels", "a recording for a 2-channel input", "recording.csv", At::Nowhere) },
    // Files that must just work.
    ucr("ok_crlf", "Windows line ends", "ok_crlf.csv", At::Loads),
    ucr("ok_bom", "a byte-order mark", "ok_bom.csv", At::Loads),
    ucr("ok_trailing_blank_lines", "blank lines at the end", "ok_trailing_blank_lines.csv", At::Loads),
    ucr("ok_labels_named", "labels that are names, `sit` and `walk`", "ok_labels_named.csv", At::Loads),
    ucr("ok_labels_minus_one_one", "labels -1 and 1, written `-1.0` and `+1` too", "ok_labels_minus_one_one.csv", At::Loads),
    ucr("ok_quoted_and_spaced", "quoted fields and blanks around fields", "ok_quoted_and_spaced.csv", At::Loads),
    ucr("ok_old_mac_line_ends", "line ends of a lone `\\r`", "ok_old_mac_line_ends.csv", At::Loads),
    Case { val_split: 0.25, ..ucr("ok_val_split", "a validation split that leaves every class in training", "two_class.csv", At::Loads) },
    signal(
        "ok_recording_bom_crlf",
        "a recording with a byte-order mark, a header, CRLF and blank lines at the end",
        "ok_recording_bom_crlf.csv",
        At::Loads,
    ),
];

/// `lone_class.csv`: label 3's only example is on this line, and `val_split`
/// of this fraction moves it to the validation set (asserted below).
const LONE_LINE: usize = LONE_INDEX + 1;
const LONE_INDEX: usize = 6;
const LONE_SPLIT: f64 = 0.2;

fn program(case: &Case) -> String {
    let model = match case.logits {
        Some(k) => format!("  conv(out=4, k=3)\n  relu\n  global_avgpool\n  linear(out={k})"),
        None => format!("  conv(out=4, k=3)\n  relu\n  conv(out={}, k=3)", case.input[0]),
    };
    let input: Vec<String> = case.input.iter().map(|d| d.to_string()).collect();
    let mut data = format!("  train = {}\n", case.train.lpn());
    if let Some(v) = case.val {
        data += &format!("  val = {}\n", v.lpn());
    } else {
        data += &format!("  val_split = {}\n", case.val_split);
    }
    if let Some(t) = case.test {
        data += &format!("  test = {}\n", t.lpn());
    }
    format!("// {}\nmodel m {{\n  input [{}]\n{model}\n}}\n\ndata {{\n{data}}}\n", case.what, input.join(", "))
}

fn spec(case: &Case) -> DataSpec {
    DataSpec {
        train: case.train.source(),
        val: case.val.map(Src::source),
        test: case.test.map(Src::source),
        val_split: case.val_split,
        test_split: 0.0,
        normalize: lpn::language::ir::Normalize::None,
        task: if case.logits.is_some() { Task::Classify } else { Task::Denoise },
        classes: None,
        stream: lpn::language::ir::Stream::Auto,
        targets: None,
    }
}

/// What loading gave, in words.
fn loaded(splits: &data::Splits) -> String {
    let targets = match &splits.train.targets {
        Targets::Classes(c) => format!("classes {c:?}"),
        Targets::Signals(s) => format!("{} target values", s.len()),
        Targets::Regression { values, shape } => format!("{} regression target values of shape {shape:?}", values.len()),
    };
    let first: Vec<f32> = splits.train.inputs.iter().take(splits.train.per_example().min(4)).copied().collect();
    format!(
        "loads: {} training examples of shape {:?} ({targets}), {} validation, first values {first:?}",
        splits.train.len, splits.train.shape, splits.val.len
    )
}

fn run(case: &Case) -> String {
    let source = program(case);
    // The same memory everywhere, so E0046 never depends on the machine.
    let (_, checked) = lpn::check_source_with(&source, Path::new(DIR), &lpn::RealEnvironment { available_memory: Some(16 << 30) });
    let name = format!("bad_data/{}.lpn", case.name);
    let check = lpn::language::render::render_human(&checked.problems, &source, &name, false);
    let ok_case = case.name.starts_with("ok_");
    if ok_case {
        assert!(check.is_empty(), "{}: should check clean:\n{check}", case.name);
    } else {
        assert!(checked.has_errors(), "{}: the checker found no error:\n{check}", case.name);
    }

    let load = match (data::load(&spec(case), case.input), case.at) {
        (Ok(splits), At::Loads) => loaded(&splits),
        (Ok(_), _) => panic!("{}: loading should fail", case.name),
        (Err(e), At::Loads) => panic!("{}: loading should succeed: {e}", case.name),
        (Err(e), at) => {
            let shown = e.to_string();
            let path = |file: &str| PathBuf::from(DIR).join("data").join(file);
            let expected = match at {
                At::File(f) => Some((path(f), None, None)),
                At::Line(f, line) => Some((path(f), Some(line), None)),
                At::Cell(f, line, column) => Some((path(f), Some(line), Some(column))),
                At::Nowhere | At::Loads => None,
            };
            match expected {
                Some((file, line, column)) => {
                    assert_eq!((e.path.as_deref(), e.line, e.column), (Some(file.as_path()), line, column), "{}: {shown}", case.name);
                    let mut prefix = format!("{}:", file.display());
                    for n in [line, column].into_iter().flatten() {
                        prefix += &format!("{n}:");
                    }
                    assert!(shown.starts_with(&prefix), "{}: `{shown}` should start with `{prefix}`", case.name);
                    // The checker names the same file, and the same line and column.
                    let place = prefix.trim_start_matches(&format!("{DIR}/"));
                    let place = if column.is_some() { place } else { place.trim_end_matches(|c: char| c == ':' || c.is_ascii_digit()) };
                    assert!(check.contains(place), "{}: the checker does not name `{place}`:\n{check}", case.name);
                }
                None => assert!(e.path.is_none(), "{}: {shown}", case.name),
            }
            format!("error: {shown}")
        }
    };
    format!("{source}\n--- lpnc check ---\n{check}\n--- load ---\n{load}\n")
}

#[test]
fn every_case_matches_its_snapshot() {
    for case in CASES {
        insta::assert_snapshot!(case.name, run(case));
    }
}

#[test]
fn the_corpus_is_complete() {
    let bad = CASES.iter().filter(|c| !c.name.starts_with("ok_")).count();
    assert!(bad >= 15, "only {bad} bad-data cases");
    let mut names = std::collections::BTreeSet::new();
    for case in CASES {
        assert!(names.insert(case.name), "{} twice", case.name);
    }
    // Every file of the corpus is read by some case.
    let used: std::collections::BTreeSet<&str> =
        CASES.iter().flat_map(|c| [Some(c.train), c.val, c.test]).flatten().map(Src::file).collect();
    for entry in std::fs::read_dir(Path::new(DIR).join("data")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(used.contains(name.as_str()), "tests/bad_data/data/{name} is read by no case");
    }
}

#[test]
fn the_lone_class_is_split_off() {
    // `lone_class.csv` has ten rows; the one on LONE_LINE is label 3's only example.
    let (_, val) = data::split_indices(10, LONE_SPLIT, data::UCR_SPLIT_SEED).unwrap();
    assert!(val.contains(&LONE_INDEX), "val_split={LONE_SPLIT} takes rows {val:?}; move label 3 to one of them");
}

/// A file that cannot be read (permission 000) is an error at check time and at
/// load time, not a panic. As root the permission does not stop reading; then
/// the file must simply load.
#[cfg(unix)]
#[test]
fn unreadable_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("lpn-bad-data-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let file = dir.join("data/locked.csv");
    std::fs::copy(Path::new(DIR).join("data/two_class.csv"), &file).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    let readable = std::fs::read(&file).is_ok();
    let case = Case { train: Src::Ucr("locked.csv"), ..ucr("unreadable", "a file without read permission", "locked.csv", At::Loads) };
    let source = program(&case);
    let (_, checked) = lpn::check_source(&source, &dir);
    let spec = DataSpec { train: Source::Ucr { path: file.clone() }, ..spec(&case) };
    let loaded = data::load(&spec, case.input);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if readable {
        assert!(!checked.has_errors(), "{:?}", checked.problems);
        assert!(loaded.is_ok());
    } else {
        let messages: Vec<String> = checked.problems.iter().map(|p| p.to_diagnostic().message).collect();
        assert!(messages.iter().any(|m| m == "data/locked.csv: the file cannot be read: permission denied"), "{messages:?}");
        let err = loaded.unwrap_err();
        assert_eq!(err.to_string(), format!("{}: the file cannot be read: permission denied", file.display()));
    }
}
