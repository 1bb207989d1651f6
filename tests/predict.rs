//! `lpnc predict` and self-describing weights, as a person runs them: a
//! shipped example trained for one epoch, then predictions on CSV and `.npy`
//! inputs made here, checked against `lpnc eval`; weights used without the
//! .lpn file; weights of another model refused; older weights without
//! metadata; bad inputs named at their line; the output written whole or
//! not at all.
#![cfg(feature = "train")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{fresh_dir, lpnc};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn example(name: &str) -> PathBuf {
    Path::new(ROOT).join("examples").join(format!("{name}.lpn"))
}

/// `lpnc train FILE --epochs 1` into `dir`; the weights' path.
fn train(file: &Path, dir: &Path) -> PathBuf {
    let out = lpnc().args(["train", "--quiet", "--epochs", "1", "--out"]).arg(dir).arg(file).output().unwrap();
    assert!(out.status.success(), "train {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    dir.join("model.safetensors")
}

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    lpnc().args(args.iter().map(|a| a.as_ref())).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A `.npy` file (format 1.0) of big-endian float64 values.
fn npy_f64_be(shape: &[usize], values: &[f64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!("{{'descr': '>f8', 'fortran_order': False, 'shape': ({},), }}", dims.join(", "));
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(values.iter().flat_map(|x| x.to_be_bytes()));
    bytes
}

/// The predictions' rows (header apart), each split into fields.
fn rows(csv: &str) -> (String, Vec<Vec<String>>) {
    let mut lines = csv.lines();
    let header = lines.next().expect("a header").to_string();
    (header, lines.map(|l| l.split(',').map(str::to_string).collect()).collect())
}

/// Every row's probabilities sum to 1 and its class is the most probable one.
fn check_probabilities(header: &str, rows: &[Vec<String>]) {
    let labels: Vec<&str> = header.split(',').map(|h| h.strip_prefix('p').unwrap_or(h)).collect();
    assert_eq!(labels.last(), Some(&"class"), "{header}");
    for row in rows {
        let p: Vec<f64> = row[..row.len() - 1].iter().map(|x| x.parse().unwrap()).collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{row:?}");
        let best = (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b });
        assert_eq!(labels[best], row[row.len() - 1], "{row:?}");
    }
}

/// The accuracy `lpnc eval` prints, as printed (`49.3`).
fn eval_accuracy(out: &Output) -> String {
    let text = stdout(out);
    assert!(out.status.success(), "{text}{}", stderr(out));
    text.split("accuracy ").nth(1).and_then(|a| a.trim().strip_suffix('%')).expect("an accuracy").to_string()
}

#[test]
fn predictions_agree_with_eval_from_csv_from_npy_and_from_the_weights_alone() {
    let dir = fresh_dir("predict", "gunpoint");
    let weights = train(&example("gunpoint_classifier"), &dir);
    let test = std::fs::read_to_string(Path::new(ROOT).join("examples/data/gunpoint_test.csv")).unwrap();
    let (mut labels, mut csv, mut values) = (Vec::new(), String::from("a header,of,words\n"), Vec::new());
    for line in test.lines().filter(|l| !l.trim().is_empty()) {
        let (label, rest) = line.split_once(',').unwrap();
        labels.push((label.trim().parse::<f64>().unwrap() as i64).to_string());
        csv.push_str(rest);
        csv.push('\n');
        values.extend(rest.split(',').map(|x| x.trim().parse::<f64>().unwrap()));
    }
    std::fs::write(dir.join("in.csv"), &csv).unwrap();
    std::fs::write(dir.join("in.npy"), npy_f64_be(&[labels.len(), 1, 150], &values)).unwrap();
    let file = example("gunpoint_classifier");
    let from_csv = run(&[&"predict", &file, &"--weights", &weights, &"--input", &dir.join("in.csv"), &"--out", &dir.join("p.csv")]);
    assert!(from_csv.status.success(), "{}", stderr(&from_csv));
    let predicted = std::fs::read_to_string(dir.join("p.csv")).unwrap();
    let (header, table) = rows(&predicted);
    assert_eq!(header, "p1,p2,class");
    assert_eq!(table.len(), labels.len());
    check_probabilities(&header, &table);
    let right = table.iter().zip(&labels).filter(|(row, label)| row[2] == **label).count();
    let accuracy = format!("{:.1}", 100.0 * right as f64 / labels.len() as f64);
    assert_eq!(accuracy, eval_accuracy(&run(&[&"eval", &file, &"--weights", &weights])));
    // The same rows from a .npy array, and with the weights alone (to stdout).
    let from_npy = run(&[&"predict", &"--weights", &weights, &"--input", &dir.join("in.npy"), &"--quiet"]);
    assert!(from_npy.status.success(), "{}", stderr(&from_npy));
    assert_eq!(stdout(&from_npy), predicted);
    assert_eq!(stderr(&from_npy), "", "--quiet");
    assert_eq!(accuracy, eval_accuracy(&run(&[&"eval", &"--weights", &weights])));
    let response = run(&[&"response", &"--weights", &weights, &"--out", &dir.join("r.svg")]);
    assert!(response.status.success() && dir.join("r.svg").is_file(), "{}", stderr(&response));
}

#[test]
fn every_shipped_example_predicts_from_its_weights_alone() {
    let mut names: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lpn"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    for name in &names {
        let dir = fresh_dir("predict-every", name);
        let weights = train(&example(name), &dir);
        let source = std::fs::read_to_string(example(name)).unwrap();
        let program = common::program(&source, &Path::new(ROOT).join("examples"));
        let (input, output) = (&program.model.input.0, &program.model.output.0);
        let per: usize = input.iter().product();
        let n = 5;
        let values: Vec<f64> = (0..n * per).map(|i| (i * 37 % 101) as f64 / 50.0 - 1.0).collect();
        let mut shape = vec![n];
        shape.extend(input);
        std::fs::write(dir.join("in.npy"), npy_f64_be(&shape, &values)).unwrap();
        let out = run(&[&"predict", &"--weights", &weights, &"--input", &dir.join("in.npy"), &"--out", &dir.join("p.csv")]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let (header, table) = rows(&std::fs::read_to_string(dir.join("p.csv")).unwrap());
        assert_eq!(table.len(), n, "{name}");
        if header.ends_with(",class") {
            check_probabilities(&header, &table);
        } else {
            assert_eq!(header.split(',').count(), output.iter().product::<usize>(), "{name}: {header}");
            assert!(table.iter().flatten().all(|x| x.parse::<f32>().unwrap().is_finite()), "{name}");
        }
    }
}

const DENOISER: &str = "model m {\n  input [1, 64]\n  conv(out=4, k=9)\n  relu\n  conv(out=1, k=5)\n}\ndata sines(n=32)\n";

/// A fresh folder with `DENOISER` as `m.lpn`, trained into `run/`; the
/// folder and the weights' path.
fn trained_denoiser(name: &str) -> (PathBuf, PathBuf) {
    let dir = fresh_dir("predict", name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("m.lpn"), DENOISER).unwrap();
    let weights = train(&dir.join("m.lpn"), &dir.join("run"));
    (dir, weights)
}

#[test]
fn weights_of_another_model_are_refused_with_the_layer_that_changed() {
    let (dir, weights) = trained_denoiser("mismatch");
    // A comment and a new layout are the same model.
    std::fs::write(dir.join("same.lpn"), format!("// notes\n{}", DENOISER.replace("k=9", "k = 9"))).unwrap();
    std::fs::write(dir.join("in.csv"), (0..64).map(|i| i.to_string()).collect::<Vec<_>>().join(",") + "\n").unwrap();
    let same = run(&[&"predict", &dir.join("same.lpn"), &"--weights", &weights, &"--input", &dir.join("in.csv")]);
    assert!(same.status.success(), "{}", stderr(&same));
    assert_eq!(rows(&stdout(&same)).1.len(), 1);
    std::fs::write(dir.join("other.lpn"), DENOISER.replace("out=4", "out=8")).unwrap();
    for command in ["predict", "eval", "response"] {
        let mut cmd = lpnc();
        cmd.arg(command).arg(dir.join("other.lpn")).arg("--weights").arg(&weights);
        match command {
            "predict" => cmd.arg("--input").arg(dir.join("in.csv")),
            "response" => cmd.arg("--out").arg(dir.join("r.svg")),
            _ => &mut cmd,
        };
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{command}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(message.contains("does not fit"), "{command}: {message}");
        assert!(
            message.contains("layer 1 differs: the weights have `conv1: conv1d 1→4 k=9 → [4, 64]`, the file has `conv1: conv1d 1→8 k=9"),
            "{command}: {message}"
        );
    }
}

#[test]
fn weights_without_metadata_load_with_a_note_when_the_file_is_given() {
    let (dir, weights) = trained_denoiser("old-weights");
    let tensors = candle_core::safetensors::load(&weights, &candle_core::Device::Cpu).unwrap();
    let old = dir.join("old.safetensors");
    candle_core::safetensors::save(&tensors, &old).unwrap();
    std::fs::write(dir.join("in.csv"), "0.5,".repeat(63) + "0.5\n").unwrap();
    let new = run(&[&"predict", &"--weights", &weights, &"--input", &dir.join("in.csv")]);
    let with_file = run(&[&"predict", &dir.join("m.lpn"), &"--weights", &old, &"--input", &dir.join("in.csv")]);
    assert!(with_file.status.success(), "{}", stderr(&with_file));
    assert!(stderr(&with_file).contains("carries no lpn metadata"), "{}", stderr(&with_file));
    assert_eq!(stdout(&with_file), stdout(&new));
    let alone = run(&[&"eval", &"--weights", &old]);
    assert_eq!(alone.status.code(), Some(2));
    assert!(stderr(&alone).contains("carries no .lpn source") && stderr(&alone).contains("name the .lpn file too"), "{}", stderr(&alone));
}

#[test]
fn data_of_an_embedded_source_is_looked_up_beside_the_weights_first() {
    let dir = fresh_dir("predict", "beside");
    let weights = train(&example("gunpoint_classifier"), &dir.join("run"));
    // Moved away from the data: the folder it was trained from still has it.
    let moved = dir.join("moved");
    std::fs::create_dir_all(moved.join("data")).unwrap();
    std::fs::copy(&weights, moved.join("model.safetensors")).unwrap();
    let everywhere = eval_accuracy(&run(&[&"eval", &"--weights", &moved.join("model.safetensors")]));
    assert_eq!(everywhere, eval_accuracy(&run(&[&"eval", &"--weights", &weights])));
    // Data beside the weights wins: a test file of three rows.
    let data = Path::new(ROOT).join("examples/data");
    std::fs::copy(data.join("gunpoint_train.csv"), moved.join("data/gunpoint_train.csv")).unwrap();
    let test = std::fs::read_to_string(data.join("gunpoint_test.csv")).unwrap();
    let three: Vec<&str> = test.lines().take(3).collect();
    std::fs::write(moved.join("data/gunpoint_test.csv"), three.join("\n") + "\n").unwrap();
    let inputs: Vec<&str> = three.iter().map(|l| l.split_once(',').unwrap().1).collect();
    std::fs::write(moved.join("in.csv"), inputs.join("\n") + "\n").unwrap();
    let predicted = run(&[&"predict", &"--weights", &moved.join("model.safetensors"), &"--input", &moved.join("in.csv")]);
    let right = rows(&stdout(&predicted))
        .1
        .iter()
        .zip(&three)
        .filter(|(row, line)| (line.split(',').next().unwrap().trim().parse::<f64>().unwrap() as i64).to_string() == row[2])
        .count();
    let beside = eval_accuracy(&run(&[&"eval", &"--weights", &moved.join("model.safetensors")]));
    assert_eq!(beside, format!("{:.1}", 100.0 * right as f64 / 3.0));
}

#[test]
fn bad_input_is_named_at_its_line_and_an_earlier_output_is_kept() {
    let (dir, weights) = trained_denoiser("bad-input");
    let row = "1,".repeat(63) + "1\n";
    std::fs::write(dir.join("in.csv"), format!("{row}{row}1,2,3\n")).unwrap();
    std::fs::write(dir.join("p.csv"), "earlier\n").unwrap();
    let out = run(&[&"predict", &"--weights", &weights, &"--input", &dir.join("in.csv"), &"--out", &dir.join("p.csv")]);
    assert_eq!(out.status.code(), Some(1));
    let expected = format!("{}:3:6: this row has 3 values, but the model's input [1, 64] holds 64", dir.join("in.csv").display());
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(dir.join("p.csv")).unwrap(), "earlier\n");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().contains(".tmp")), "{left:?}");
}

/// The GunPoint files with their labels as names, `1` → `point` and `2` →
/// `gun`: in byte order `gun` comes first, so class 0 is label 2's rows.
fn named_gunpoint(dir: &Path) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for name in ["gunpoint_train.csv", "gunpoint_test.csv"] {
        let text = std::fs::read_to_string(Path::new(ROOT).join("examples/data").join(name)).unwrap();
        let mut named = String::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (label, rest) = line.split_once(',').unwrap();
            let name = match label.trim().parse::<f64>().unwrap() as i64 {
                1 => "point",
                2 => "gun",
                other => panic!("GunPoint has labels 1 and 2, not {other}"),
            };
            named.push_str(&format!("{name},{rest}\n"));
        }
        std::fs::write(dir.join("data").join(name), named).unwrap();
    }
    let program = std::fs::read_to_string(example("gunpoint_classifier")).unwrap();
    std::fs::write(dir.join("named.lpn"), program).unwrap();
}

#[test]
fn named_labels_reach_report_json_the_weights_and_the_predictions() {
    let dir = fresh_dir("predict", "named-labels");
    named_gunpoint(&dir);
    let weights = train(&dir.join("named.lpn"), &dir.join("run"));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("run/report.json")).unwrap()).unwrap();
    assert_eq!(report["class_labels"], serde_json::json!(["gun", "point"]));
    let provenance = lpn::train::provenance::Provenance::read(&weights).unwrap().unwrap();
    assert_eq!(provenance.class_labels, Some(vec!["gun".to_string(), "point".to_string()]));
    let test = std::fs::read_to_string(dir.join("data/gunpoint_test.csv")).unwrap();
    let (labels, inputs): (Vec<&str>, Vec<&str>) = test.lines().map(|l| l.split_once(',').unwrap()).unzip();
    std::fs::write(dir.join("in.csv"), inputs.join("\n") + "\n").unwrap();
    let predicted = run(&[&"predict", &"--weights", &weights, &"--input", &dir.join("in.csv"), &"--quiet"]);
    assert!(predicted.status.success(), "{}", stderr(&predicted));
    let (header, table) = rows(&stdout(&predicted));
    assert_eq!(header, "pgun,ppoint,class");
    check_probabilities(&header, &table);
    let right = table.iter().zip(&labels).filter(|(row, label)| row[2] == **label).count();
    let accuracy = format!("{:.1}", 100.0 * right as f64 / labels.len() as f64);
    assert_eq!(accuracy, eval_accuracy(&run(&[&"eval", &dir.join("named.lpn"), &"--weights", &weights])));
}

#[test]
fn test_split_holds_out_a_stratified_test_part_reported_in_report_json() {
    let dir = fresh_dir("predict", "test-split");
    named_gunpoint(&dir);
    let program = std::fs::read_to_string(dir.join("named.lpn")).unwrap();
    let program = program.replace("  test = ucr(\"data/gunpoint_test.csv\")\n", "  test_split = 0.2\n");
    assert!(program.contains("test_split"), "the example's data section changed");
    std::fs::write(dir.join("split.lpn"), program).unwrap();
    train(&dir.join("split.lpn"), &dir.join("run"));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("run/report.json")).unwrap()).unwrap();
    // GunPoint's 50 training rows: 24 of `point`, 26 of `gun`; per class
    // round(0.2·n) to validation and as many to test: 5 + 5, 5 + 5.
    assert_eq!(report["examples"], serde_json::json!({"train": 30, "val": 10, "test": 10}));
    assert!(report["test"]["accuracy"].is_number(), "{}", report["test"]);
}

#[test]
fn normalized_inputs_are_rescaled_by_predict_as_in_training() {
    let dir = fresh_dir("predict", "normalize");
    named_gunpoint(&dir);
    let program = std::fs::read_to_string(dir.join("named.lpn")).unwrap();
    let program = program.replace("  val_split = 0.2\n", "  val_split = 0.2\n  normalize = minmax\n");
    assert!(program.contains("minmax"), "the example's data section changed");
    std::fs::write(dir.join("norm.lpn"), program).unwrap();
    let weights = train(&dir.join("norm.lpn"), &dir.join("run"));
    // GunPoint rows are z-normalised series: min-max moves them a long way.
    let norm = lpn::train::provenance::Provenance::read(&weights).unwrap().unwrap().normalization.expect("stored with the weights");
    assert_eq!((norm.kind.as_str(), norm.shift.len()), ("minmax", 1));
    assert!(norm.shift[0] < -1.0 && norm.scale[0] > 2.0, "{norm:?}");
    let test = std::fs::read_to_string(dir.join("data/gunpoint_test.csv")).unwrap();
    let (labels, inputs): (Vec<&str>, Vec<&str>) = test.lines().map(|l| l.split_once(',').unwrap()).unzip();
    std::fs::write(dir.join("in.csv"), inputs.join("\n") + "\n").unwrap();
    let predicted = run(&[&"predict", &"--weights", &weights, &"--input", &dir.join("in.csv"), &"--quiet"]);
    assert!(predicted.status.success(), "{}", stderr(&predicted));
    let (_, table) = rows(&stdout(&predicted));
    let right = table.iter().zip(&labels).filter(|(row, label)| row[2] == **label).count();
    let accuracy = format!("{:.1}", 100.0 * right as f64 / labels.len() as f64);
    assert_eq!(accuracy, eval_accuracy(&run(&[&"eval", &dir.join("norm.lpn"), &"--weights", &weights])));
    // The same network without the metadata, on inputs rescaled here: the same predictions.
    let tensors = candle_core::safetensors::load(&weights, &candle_core::Device::Cpu).unwrap();
    candle_core::safetensors::save(&tensors, dir.join("bare.safetensors")).unwrap();
    let rescaled: Vec<String> = inputs
        .iter()
        .map(|row| {
            let values = row.split(',').map(|x| (x.trim().parse::<f64>().unwrap() as f32 - norm.shift[0]) / norm.scale[0]);
            values.map(|v| v.to_string()).collect::<Vec<_>>().join(",")
        })
        .collect();
    std::fs::write(dir.join("rescaled.csv"), rescaled.join("\n") + "\n").unwrap();
    let bare =
        run(&[&"predict", &dir.join("norm.lpn"), &"--weights", &dir.join("bare.safetensors"), &"--input", &dir.join("rescaled.csv")]);
    assert!(bare.status.success(), "{}", stderr(&bare));
    let (_, expected) = rows(&stdout(&bare));
    for (a, b) in table.iter().zip(&expected) {
        for (x, y) in a[..2].iter().zip(&b[..2]) {
            assert!((x.parse::<f64>().unwrap() - y.parse::<f64>().unwrap()).abs() < 1e-5, "{a:?} {b:?}");
        }
    }
}

/// Weights copied to where their data files are not (another machine):
/// `predict` and `export` run the embedded model section alone, with the
/// class names recorded in the weights, and predict exactly as where the
/// data is; `eval` (which needs the test data) still says what is missing.
#[test]
fn weights_predict_and_export_without_their_data_files() {
    let dir = fresh_dir("predict", "no-data");
    named_gunpoint(&dir);
    let weights = train(&dir.join("named.lpn"), &dir.join("run"));
    let inputs = dir.join("inputs.csv");
    let test = std::fs::read_to_string(dir.join("data/gunpoint_test.csv")).unwrap();
    std::fs::write(&inputs, test.lines().map(|l| l.split_once(',').unwrap().1.to_string() + "\n").collect::<String>()).unwrap();
    let with_data = run(&[&"predict", &"--weights", &weights, &"--input", &inputs, &"--quiet"]);
    assert!(with_data.status.success(), "{}", stderr(&with_data));

    std::fs::remove_dir_all(dir.join("data")).unwrap();
    let alone = run(&[&"predict", &"--weights", &weights, &"--input", &inputs]);
    assert!(alone.status.success(), "{}", stderr(&alone));
    assert!(stderr(&alone).contains("running its model section alone"), "{}", stderr(&alone));
    assert_eq!(stdout(&alone), stdout(&with_data));
    assert!(stdout(&alone).starts_with("pgun,ppoint,class\n"), "{}", stdout(&alone));

    let onnx = dir.join("model.onnx");
    let exported = run(&[&"export", &"--weights", &weights, &"--out", &onnx]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    assert!(onnx.exists());

    let eval = run(&[&"eval", &"--weights", &weights]);
    assert_eq!(eval.status.code(), Some(1), "{}", stderr(&eval));
    assert!(stderr(&eval).contains("gunpoint_train.csv"), "{}", stderr(&eval));
}
