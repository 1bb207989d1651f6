//! `lpnc fmt` as a person or a CI job runs it: files rewritten in place only
//! when they change, `--check` with a diff and its exit codes, `-` for
//! editors, files with syntax errors left byte for byte.
// The binary needs the `train` feature.
#![cfg(feature = "train")]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const MESSY: &str = "model m{\n  input [1,64]\n    conv( out=1,k=3 )   // one filter\n}\ndata sines(n=16)\n";
const FORMATTED: &str = "model m {\n  input [1, 64]\n  conv(out=1, k=3)  // one filter\n}\n\ndata sines(n=16)\n";
const BROKEN: &str = "model   m {\n  input [1, 64]\n  conv(k=3 k=5)\n}\n";

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fmt_cli").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_prints_a_diff_and_exits_1_for_an_unformatted_file() {
    let dir = scratch("check");
    let messy = write(&dir, "messy.lpn", MESSY);
    let formatted = write(&dir, "formatted.lpn", FORMATTED);

    let out = run(common::lpnc().arg("fmt").arg("--check").arg(&formatted), "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));

    let out = run(common::lpnc().arg("fmt").arg("--check").arg(&messy).arg(&formatted), "");
    let diff = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(diff.contains(&format!("--- {}\n+++ {} (formatted)\n", messy.display(), messy.display())), "{diff}");
    assert!(diff.contains("\n-    conv( out=1,k=3 )   // one filter\n"), "{diff}");
    assert!(diff.contains("\n+  conv(out=1, k=3)  // one filter\n"), "{diff}");
    assert!(diff.contains("\n+\n data sines(n=16)\n"), "{diff}");
    assert!(!diff.contains("formatted.lpn"), "a formatted file has no diff: {diff}");
    assert!(text(&out.stderr).contains("1 of 2 files not formatted"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), MESSY, "--check writes nothing");
}

#[test]
fn rewrites_files_in_place_only_when_they_change() {
    let dir = scratch("rewrite");
    let messy = write(&dir, "messy.lpn", MESSY);
    let formatted = write(&dir, "formatted.lpn", FORMATTED);
    let before = std::fs::metadata(&formatted).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));

    let out = run(common::lpnc().arg("fmt").arg(&messy).arg(&formatted), "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), FORMATTED);
    assert_eq!(std::fs::metadata(&formatted).unwrap().modified().unwrap(), before, "a formatted file is not written");
    let mut left: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, ["formatted.lpn", "messy.lpn"], "no temporary file is left behind");
}

#[test]
fn a_dash_formats_standard_input_to_standard_output() {
    let out = run(common::lpnc().args(["fmt", "-"]), MESSY);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), FORMATTED);

    let out = run(common::lpnc().args(["fmt", "-"]), BROKEN);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing for the editor to paste: {}", text(&out.stdout));
    assert!(text(&out.stderr).contains("<stdin>:3:12"), "{}", text(&out.stderr));
}

#[test]
fn a_file_with_syntax_errors_is_left_unchanged_with_its_diagnostics() {
    let dir = scratch("broken");
    let broken = write(&dir, "broken.lpn", BROKEN);
    let messy = write(&dir, "messy.lpn", MESSY);
    for check in [false, true] {
        let mut cmd = common::lpnc();
        cmd.arg("fmt").args(check.then_some("--check")).arg(&broken).arg(&messy);
        let out = run(&mut cmd, "");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(std::fs::read(&broken).unwrap(), BROKEN.as_bytes());
        // As `lpnc check` prints it.
        let check_out = run(common::lpnc().arg("check").arg(&broken), "");
        let check_report = text(&check_out.stderr);
        let report = check_report.split("checked 1 file").next().unwrap();
        assert!(stderr.contains(report), "{stderr}\nis not what check says:\n{report}");
        assert!(stderr.contains("broken.lpn has syntax errors; it was left unchanged"), "{stderr}");
    }
    // The other file was still formatted, on the run without --check.
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), FORMATTED);

    let out = run(common::lpnc().arg("fmt").arg(dir.join("missing.lpn")), "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
