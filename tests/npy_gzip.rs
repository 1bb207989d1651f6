//! Gzip-compressed NumPy files (`gzip x.npy`): `npy` and `npz` read them as
//! their plain twins, checked and loaded alike; they are decompressed whole,
//! so they never stream, and `stream = always` says so (E0140).

use std::path::{Path, PathBuf};

use lpn::language::ir::{DataSpec, Normalize, Source, Stream};
use lpn::language::schema::Task;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npy_train").join(name)
}

/// A fresh folder holding `name.gz`, the fixture `name` gzip-compressed
/// (and `bytes` to replace its compressed bytes, when given).
fn gzipped(folder: &str, names: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lpn-npy-gzip-{}-{folder}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in names {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, &std::fs::read(fixture(name)).unwrap()).unwrap();
        std::fs::write(dir.join(format!("{name}.gz")), encoder.finish().unwrap()).unwrap();
    }
    dir
}

fn spec(train: Source, stream: Stream) -> DataSpec {
    DataSpec {
        train,
        val: None,
        test: None,
        val_split: 0.25,
        test_split: 0.0,
        normalize: Normalize::Zscore,
        task: Task::Classify,
        classes: None,
        stream,
        targets: None,
    }
}

#[test]
fn gzipped_npy_and_npz_files_load_as_their_plain_twins() {
    let dir = gzipped("load", &["cls_x.npy", "cls_y_be.npy", "train.npz"]);
    let plain =
        lpn::data::load(&spec(Source::Npy { path: fixture("cls_x.npy"), labels: fixture("cls_y_be.npy") }, Stream::Never), &[1, 16])
            .unwrap();
    let npy = Source::Npy { path: dir.join("cls_x.npy.gz"), labels: dir.join("cls_y_be.npy.gz") };
    // `always` cannot stream a compressed file: loading reads it whole.
    for stream in [Stream::Auto, Stream::Always] {
        let packed = lpn::data::load(&spec(npy.clone(), stream), &[1, 16]).unwrap();
        assert!(packed.train.stream.is_none());
        assert_eq!(packed, plain);
    }
    let npz = Source::Npz { path: dir.join("train.npz.gz"), x: "x".into(), y: "y".into() };
    assert_eq!(lpn::data::load(&spec(npz, Stream::Auto), &[1, 16]).unwrap(), plain);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_cut_gzip_stream_is_an_error_naming_the_file() {
    let dir = gzipped("cut", &["cls_x.npy"]);
    let path = dir.join("cls_x.npy.gz");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let Err(e) = lpn::data::load(&spec(Source::Npy { path: path.clone(), labels: fixture("cls_y.npy") }, Stream::Auto), &[1, 16]) else {
        panic!("a cut file loaded")
    };
    assert_eq!(e.path.as_deref(), Some(path.as_path()));
    assert!(e.message.contains("gzip-compressed but cannot be decompressed"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_checker_reads_gzipped_files_and_counts_them_whole() {
    let dir = gzipped("check", &["cls_x.npy", "cls_y.npy"]);
    let source = |stream: &str| {
        format!(
            "model m {{\n  input [1, 16]\n  flatten\n  linear(out=2)\n}}\ndata {{\n  train = npy(\"cls_x.npy.gz\", labels=\"cls_y.npy.gz\")\n  stream = {stream}\n}}\n"
        )
    };
    let machine = lpn::FakeEnvironment::with_memory(0)
        .file(dir.join("cls_x.npy.gz"), std::fs::read(dir.join("cls_x.npy.gz")).unwrap())
        .file(dir.join("cls_y.npy.gz"), std::fs::read(dir.join("cls_y.npy.gz")).unwrap());
    let (_, checked) = lpn::check_source_with(&source("auto"), &dir, &machine);
    let codes: Vec<String> = checked.problems.iter().map(|p| p.to_diagnostic().code.to_string()).collect();
    assert_eq!(codes, ["E0046"], "{:?}", checked.problems);
    // Counted whole: 40 examples of 16 f32 and a class index, the training set twice.
    let lpn::language::diagnostic::Problem::ModelTooLarge { data, streamed, .. } = &checked.problems[0] else { unreachable!() };
    assert_eq!((*data, *streamed), (2 * 40 * (16 * 4 + 8), false));
    let (_, checked) = lpn::check_source_with(&source("always"), &dir, &machine);
    let e0140: Vec<_> = checked.problems.iter().map(|p| p.to_diagnostic()).filter(|d| d.code == "E0140").collect();
    assert_eq!(e0140.len(), 1, "{:?}", checked.problems);
    assert!(e0140[0].message.contains("gzip-compressed"), "{}", e0140[0].message);
    std::fs::remove_dir_all(dir).unwrap();
}
