//! Memory: what `lpnc check` counts (E0046: the model's training state and
//! the data sets as loaded), on a machine the test describes; and loading
//! data that cannot fit fails with an error, not an abort.

use std::path::Path;

use lpn::FakeEnvironment;
use lpn::language::diagnostic::Problem;
use lpn::language::ir::{DataSpec, Source};
use lpn::language::schema::Task;

/// The data bytes E0046 counts, on a machine with no memory at all (so it
/// always reports) and the files of `with(no_memory)`.
fn data_bytes_with(source: &str, with: impl Fn(FakeEnvironment) -> FakeEnvironment) -> u64 {
    let (_, checked) = lpn::check_source_with(source, Path::new("."), &with(FakeEnvironment::with_memory(0)));
    let found = checked.problems.iter().find_map(|p| match p {
        Problem::ModelTooLarge { data, .. } => Some(*data),
        _ => None,
    });
    found.unwrap_or_else(|| panic!("no E0046: {:?}", checked.problems))
}

fn data_bytes(source: &str) -> u64 {
    data_bytes_with(source, |no_files| no_files)
}

#[test]
fn the_estimate_counts_generated_data() {
    // sines: inputs and clean targets, f32; the training set twice (loading
    // holds it whole while splitting off the validation part).
    let source = "model m {\n  input [1, 1000]\n  conv(out=1, k=3)\n}\ndata sines(n=300)\n";
    assert_eq!(data_bytes(source), 2 * 300 * 1000 * 4 * 2);
    // waveforms: inputs and one class index each.
    let source = "model m {\n  input [1, 100]\n  flatten\n  linear(out=3)\n}\ndata waveforms(classes=3, n=50)\n";
    assert_eq!(data_bytes(source), 2 * 50 * (100 * 4 + 8));
    // Separate validation and test sets count once each.
    let source =
        "model m {\n  input [1, 10]\n  conv(out=1, k=3)\n}\ndata {\n  train = sines(n=20)\n  val = sines(n=7)\n  test = sines(n=5)\n}\n";
    assert_eq!(data_bytes(source), (2 * 20 + 7 + 5) * 10 * 4 * 2);
}

#[test]
fn the_estimate_counts_files_by_their_rows() {
    // Five rows of a label and 64 values: each 64 f32 and a class index.
    let row = |label: usize| format!("{label},{}\n", vec!["0.5"; 64].join(","));
    let table: String = (0..5).map(|i| row(i % 2)).collect();
    let source = "model m {\n  input [1, 64]\n  flatten\n  linear(out=2)\n}\ndata ucr(\"data/t.csv\")\n";
    assert_eq!(data_bytes_with(source, |env| env.file("./data/t.csv", table.clone())), 2 * 5 * (64 * 4 + 8));
    // A recording of 40 samples (and a header) cut into windows of the
    // input's length, `stride` apart: (40 - 16) / 4 + 1 windows.
    let recording: String = std::iter::once("ecg\n".to_string()).chain((0..40).map(|i| format!("{i}\n"))).collect();
    let source = "model m {\n  input [1, 16]\n  conv(out=1, k=3)\n}\ndata signal(\"data/r.csv\", column=0, stride=4)\n";
    assert_eq!(data_bytes_with(source, |env| env.file("./data/r.csv", recording.clone())), 2 * 7 * 16 * 4 * 2);
}

#[test]
fn the_estimate_counts_a_streamed_npy_source_as_its_index_and_a_buffer() {
    let fixture = |name: &str| std::fs::read(Path::new("tests/fixtures/npy_train").join(name)).unwrap();
    let files = |env: FakeEnvironment| env.file("./x.npy", fixture("cls_x.npy")).file("./y.npy", fixture("cls_y.npy"));
    let source = |stream: &str| {
        format!(
            "model m {{\n  input [1, 16]\n  flatten\n  linear(out=2)\n}}\ndata {{\n  train = npy(\"x.npy\", labels=\"y.npy\")\n  stream = {stream}\n}}\n"
        )
    };
    // Read whole: 40 examples of 16 f32 and a class index, the training set twice.
    assert_eq!(data_bytes_with(&source("never"), files), 2 * 40 * (16 * 4 + 8));
    // `auto` reads a file this small whole too.
    assert_eq!(data_bytes_with(&source("auto"), files), 2 * 40 * (16 * 4 + 8));
    // Streamed: a class index and a file row each, and the 4 MiB buffer of a pass over the file.
    assert_eq!(data_bytes_with(&source("always"), files), 2 * (40 * (8 + 8) + (4 << 20)));
}

/// Issue 12: `sines(n=4000)` on a `[1, 1000000]` input passed the check and
/// training then died allocating the data.
#[test]
fn data_too_large_for_the_machine_is_refused_by_check() {
    let source = "model m {\n  input [1, 1000000]\n  conv(out=1, k=3)\n}\ndata sines(n=4000)\n";
    let (_, checked) = lpn::check_source_with(source, Path::new("."), &FakeEnvironment::with_memory(16 << 30));
    let e0046: Vec<_> = checked.problems.iter().filter(|p| p.to_diagnostic().code == "E0046").collect();
    assert_eq!(e0046.len(), 1, "{:?}", checked.problems);
    let d = e0046[0].to_diagnostic();
    assert!(d.message.contains("59.6 GiB of data"), "{}", d.message);
    assert!(d.help.unwrap().contains("most of it is the data"));
    // The same model on a tenth of the data fits.
    let (_, checked) = lpn::check_source_with(&source.replace("n=4000", "n=400"), Path::new("."), &FakeEnvironment::with_memory(16 << 30));
    assert!(!checked.has_errors(), "{:?}", checked.problems);
}

/// What the checker cannot foresee (here: more values than an address space
/// holds) is an error from loading, not an abort of the process.
#[test]
fn loading_data_that_cannot_fit_is_an_error() {
    let spec = DataSpec {
        train: Source::Sines { n: 1 << 40, components: 1, max_freq: 0.5, noise: 0.1, seed: 1 },
        val: None,
        test: None,
        val_split: 0.2,
        test_split: 0.0,
        normalize: lpn::language::ir::Normalize::None,
        task: Task::Denoise,
        classes: None,
        stream: lpn::language::ir::Stream::Auto,
        targets: None,
    };
    let Err(e) = lpn::data::load(&spec, &[1, 1 << 22]) else { panic!("loaded 2^62 values") };
    assert!(e.to_string().contains("`sines`: 1099511627776 examples of 4194304 values need"), "{e}");
    assert!(e.to_string().contains("use fewer or shorter examples"), "{e}");
}
