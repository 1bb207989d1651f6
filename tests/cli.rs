//! The `lpnc` binary as a person runs it: exit codes, what goes to stderr,
//! colours, standard input, files that are not regular files, thread
//! counts, options refused before anything runs.
// Trains or runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A folder of this test's own under Cargo's scratch space.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `lpnc` to the end, killing it after 60 s (a hang is a failure, not
/// a stuck test run).
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("lpnc did not finish within 60 s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const BAD: &str = "model m {\n  input [1, 64]\n  cnv(out=1, k=3)\n}\ndata sines(n=16)\n";
const GOOD: &str = "model m {\n  input [1, 64]\n  conv(out=1, k=3, padding=same)\n}\ndata sines(n=16)\n";

#[test]
fn a_file_that_cannot_be_read_is_not_counted_as_checked() {
    let dir = scratch("unread");
    std::fs::write(dir.join("good.lpn"), GOOD).unwrap();
    let out = run(common::lpnc().arg("check").arg(dir.join("missing.lpn")));
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(!text.contains("checked 1 file: 0 error(s)"), "claims a missing file was checked:\n{text}");
    assert!(text.contains("checked 0 of 1 file (1 could not be read)"), "{text}");
    let out = run(common::lpnc().arg("check").arg(dir.join("good.lpn")).arg(dir.join("missing.lpn")));
    assert!(stderr(&out).contains("checked 1 of 2 files (1 could not be read): 0 error(s), 0 warning(s)"), "{}", stderr(&out));
}

/// `script` runs lpnc on a pseudo-terminal, where it would use colours.
fn on_a_terminal(file: &std::path::Path, no_color: Option<&str>) -> String {
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c"]).arg(format!("{} check {}", common::lpnc_shell(), file.display())).arg("/dev/null");
    cmd.env_remove("NO_COLOR");
    if let Some(value) = no_color {
        cmd.env("NO_COLOR", value);
    }
    let out = run(&mut cmd);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn no_color_turns_colours_off_on_a_terminal() {
    let dir = scratch("no_color");
    let file = dir.join("bad.lpn");
    std::fs::write(&file, BAD).unwrap();
    let coloured = on_a_terminal(&file, None);
    assert!(coloured.contains("E0010"), "lpnc did not run on the terminal:\n{coloured}");
    assert!(coloured.contains("\x1b["), "a terminal without NO_COLOR gets colours:\n{coloured}");
    let plain = on_a_terminal(&file, Some("1"));
    assert!(plain.contains("E0010"), "{plain}");
    assert!(!plain.contains("\x1b["), "NO_COLOR=1 must turn colours off:\n{plain}");
    // An empty NO_COLOR means nothing (https://no-color.org).
    assert!(on_a_terminal(&file, Some("")).contains("\x1b["));
}

fn with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_dash_reads_the_program_from_standard_input() {
    let out = with_stdin(common::lpnc().args(["check", "-"]), BAD);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("<stdin>:3:3"), "{text}");
    assert!(text.contains("checked 1 file: 1 error(s)"), "{text}");

    // Data paths are relative to the current folder.
    let dir = scratch("stdin");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy("tests/ui/data/two_class_16.csv", dir.join("data/rows.csv")).unwrap();
    let program = "model m {\n  input [1, 16]\n  flatten\n  linear(out=2)\n}\ndata ucr(\"data/rows.csv\")\n";
    let out = with_stdin(common::lpnc().args(["inspect", "-"]).current_dir(&dir), program);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("model m"));
    let out = with_stdin(common::lpnc().args(["check", "-"]).current_dir(dir.join("data")), program);
    assert!(stderr(&out).contains("looked for ./data/rows.csv"), "{}", stderr(&out));
}

#[test]
fn a_named_pipe_as_data_is_not_a_regular_file() {
    let dir = scratch("fifo");
    let fifo = dir.join("rows.csv");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    std::fs::write(dir.join("m.lpn"), "model m {\n  input [1, 16]\n  flatten\n  linear(out=2)\n}\ndata ucr(\"rows.csv\")\n").unwrap();
    let out = run(common::lpnc().arg("check").arg(dir.join("m.lpn")));
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("rows.csv: is not a regular file: it is a named pipe (FIFO)"), "{text}");
    assert!(!text.contains("does not exist"), "{text}");
}

#[test]
fn more_threads_than_cpus_warns_with_both_numbers() {
    let dir = scratch("threads");
    std::fs::write(dir.join("good.lpn"), GOOD).unwrap();
    let cpus = std::thread::available_parallelism().map(usize::from).unwrap();
    let many = cpus * 8 + 1;
    let out = run(common::lpnc().arg("--threads").arg(many.to_string()).arg("check").arg(dir.join("good.lpn")));
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("warning: {many} threads were asked for")), "{text}");
    assert!(text.contains(&format!("only {cpus} CPU(s)")), "{text}");
    // The same through the environment.
    let out = run(common::lpnc().env("LPN_THREADS", many.to_string()).arg("check").arg(dir.join("good.lpn")));
    assert!(stderr(&out).contains(&format!("warning: {many} threads")), "{}", stderr(&out));
    // As many as the CPUs: no warning.
    let out = run(common::lpnc().arg("--threads").arg(cpus.to_string()).arg("check").arg(dir.join("good.lpn")));
    assert!(!stderr(&out).contains("threads were asked for"), "{}", stderr(&out));
}

#[test]
fn zero_epochs_is_refused_as_in_the_file() {
    let dir = scratch("epochs");
    std::fs::write(dir.join("good.lpn"), GOOD).unwrap();
    let out =
        run(common::lpnc().arg("train").arg(dir.join("good.lpn")).arg("--out").arg(dir.join("run")).args(["--epochs", "0", "--quiet"]));
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("--epochs") && text.contains("must be at least 1"), "{text}");
    assert!(!dir.join("run").exists(), "nothing may be written");
}

#[test]
fn explain_names_a_look_alike_character() {
    let out = run(common::lpnc().args(["explain", "lowp\u{0430}ss"]));
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("note: it contains U+0430 CYRILLIC SMALL LETTER A (looks like `a`)"), "{text}");
    assert!(text.contains("help: did you mean `lowpass`?"), "{text}");
}

/// `lpnc` keeps its process off transparent huge pages (src/allocator.rs,
/// `configure`: their whole-page zeroing slowed a training's first
/// epoch) unless `MIMALLOC_ALLOW_THP` says otherwise: read from the
/// `THP_enabled` line of `/proc/PID/status` of a running `lpnc lsp` once it
/// has answered `initialize` (so `main` has run), on a kernel that reports it.
#[cfg(target_os = "linux")]
#[test]
fn lpnc_runs_without_transparent_huge_pages_unless_told() {
    use std::io::Read;
    let reports = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s.contains("THP_enabled:"));
    if !reports || std::env::var("LPN_TEST_RUNNER").is_ok_and(|r| !r.trim().is_empty()) {
        eprintln!("skipped: this kernel does not report THP_enabled, or lpnc runs under an emulator");
        return;
    }
    for (allow, expected) in [(None, "0"), (Some("1"), "1")] {
        let mut command = common::lpnc();
        command.arg("lsp").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        match allow {
            Some(value) => command.env("MIMALLOC_ALLOW_THP", value),
            None => command.env_remove("MIMALLOC_ALLOW_THP"),
        };
        let mut child = command.spawn().expect("lpnc lsp starts");
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":null,"rootUri":null,"capabilities":{}}}"#;
        let mut stdin = child.stdin.take().expect("piped stdin");
        write!(stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("the request is written");
        stdin.flush().expect("the request is sent");
        let mut first = [0u8; 16];
        child.stdout.take().expect("piped stdout").read_exact(&mut first).expect("lpnc lsp answers");
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).expect("the process's status");
        let _ = child.kill();
        let _ = child.wait();
        let line = status.lines().find(|l| l.starts_with("THP_enabled:")).expect("a THP_enabled line");
        assert_eq!(line.split_whitespace().nth(1), Some(expected), "MIMALLOC_ALLOW_THP={allow:?}: {line}");
    }
}
