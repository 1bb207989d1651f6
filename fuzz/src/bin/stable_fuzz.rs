//! A grammar-aware mutation fuzzer for lpn's front end that runs on stable Rust.
//!
//!     cargo run --release --manifest-path fuzz/Cargo.toml --no-default-features \
//!         --bin stable_fuzz -- --inputs 1000000 --jobs 2
//!
//! It mutates a seed corpus (`tests/ui/*.lpn`, `examples/*.lpn`,
//! `tests/fuzz_regressions/*.lpn` and any `--corpus DIR`) with byte flips,
//! deletions, duplications, splices, line moves and insertions of the
//! language's own tokens (every layer, annotation, parameter and section name
//! from `lpn::language::schema`, brackets, huge/negative/odd numbers, unicode), and runs
//! each input through `lpn_fuzz::run_frontend` (parse, check, inspect, miette
//! and JSON rendering, invariants). Inputs whose set of diagnostics is new join
//! the corpus, a cheap stand-in for coverage.
//!
//! Each job is a child process (`--worker`) that announces every input before
//! running it, so nothing is lost when one dies: a panic is caught in the
//! child; a crash that kills it (stack overflow, abort, out of memory) or an
//! input that runs past `--timeout-ms` is seen by the parent, which saves the
//! input under `--out` (default `fuzz/artifacts/stable`) and starts a new
//! child. `--replay FILE…` runs saved inputs once and says what happens.

use std::collections::HashSet;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

// ------------------------------------------------------------ random numbers

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ------------------------------------------------------------ the vocabulary

const PUNCTUATION: &[&str] =
    &["(", ")", "[", "]", "{", "}", ",", "=", "@", "\"", "\n", "\n", "\n", " ", ";", ".", "//", "\\", "\r\n", "\r", "\t", "/"];
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "4",
    "8",
    "15",
    "16",
    "64",
    "256",
    "-1",
    "-0",
    "+1",
    "0.0",
    "0.5",
    "0.2",
    "0.49",
    "0.999999",
    "1.0",
    "1.5",
    "2.0",
    "1e-3",
    "1e-300",
    "1e-400",
    "1e300",
    "1e400",
    "-1e400",
    "1e308",
    "4e-324",
    "99999999999999999999",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "4294967296",
    "65536",
    "1000000000",
    ".5",
    "5.",
    "0x10",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "1_000",
    "1e",
    "1e+",
    "--1",
    "00",
    "007",
    "3.14159265358979323846264338",
];
const UNICODE: &[&str] = &["é", "ß", "😀", "\u{0}", "\u{202E}", "\u{FEFF}", "\u{2028}", "µ", "Ω", "中", "\u{300}", "ｃｏｎｖ", "\u{7f}"];
const WORDS: &[&str] = &[
    "input",
    "model",
    "data",
    "train",
    "phase",
    "repeat",
    "residual",
    "m",
    "net",
    "x",
    "y",
    "true",
    "false",
    "same",
    "valid",
    "_",
    "conv1",
    "repeat1.conv1",
    "repeat1.2.conv1",
    "\"data/train.csv\"",
    "\"\"",
    "\"a\\\"b\"",
    "\"/dev/null\"",
    "\"missing.csv\"",
];

fn vocabulary() -> Vec<String> {
    use lpn::language::schema;
    let mut words: Vec<String> = Vec::new();
    words.extend(schema::layer_names().iter().map(|s| s.to_string()));
    words.extend(schema::annotation_names().iter().map(|s| s.to_string()));
    words.extend(schema::SECTION_NAMES.iter().map(|s| s.to_string()));
    words.extend(schema::Mode::NAMES.iter().map(|s| s.to_string()));
    words.extend(schema::INIT_SCHEMES.iter().map(|s| s.to_string()));
    let mut tables: Vec<schema::Schema> = Vec::new();
    tables.extend(schema::LAYERS.iter().map(|l| l.schema));
    tables.extend(schema::ANNOTATIONS.iter().map(|a| a.schema));
    tables.extend(schema::SOURCES.iter().copied());
    tables.extend(schema::OPTIMIZERS.iter().copied());
    tables.extend(schema::LOSSES.iter().copied());
    tables.extend([schema::DATA_SECTION, schema::TRAIN_SECTION, schema::PHASE_SECTION]);
    for table in &tables {
        words.push(table.name.to_string());
        for p in table.params {
            words.push(p.name.to_string());
            words.push(format!("{}=", p.name));
        }
    }
    for layer in schema::layer_names() {
        words.push(format!("{layer}("));
    }
    for annotation in schema::annotation_names() {
        words.push(format!(" @{annotation}("));
        words.push(format!(" @{annotation}"));
    }
    words.extend(WORDS.iter().map(|s| s.to_string()));
    words.extend(NUMBERS.iter().map(|s| s.to_string()));
    words.extend(PUNCTUATION.iter().map(|s| s.to_string()));
    words.extend(UNICODE.iter().map(|s| s.to_string()));
    words.sort();
    words.dedup();
    words
}

// ------------------------------------------------------------ mutations

struct Mutator {
    rng: Rng,
    vocab: Vec<String>,
    max_len: usize,
}

impl Mutator {
    fn token(&mut self) -> String {
        self.vocab[self.rng.below(self.vocab.len())].clone()
    }

    fn range(&mut self, len: usize, max: usize) -> (usize, usize) {
        let start = self.rng.below(len + 1);
        let n = 1 + self.rng.below(max.max(1));
        (start, (start + n).min(len))
    }

    fn line_bounds(bytes: &[u8]) -> Vec<(usize, usize)> {
        let mut lines = Vec::new();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\n' {
                lines.push((start, i + 1));
                start = i + 1;
            }
        }
        if start < bytes.len() {
            lines.push((start, bytes.len()));
        }
        lines
    }

    fn mutate_once(&mut self, buf: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        let len = buf.len();
        match self.rng.below(16) {
            0 if len > 0 => {
                let i = self.rng.below(len);
                buf[i] ^= 1 << self.rng.below(8);
            }
            1 if len > 0 => {
                const BYTES: &[u8] = b"()[]{},=@\"\n\r\\/;.-+e09 \t_x\x00\xff";
                let i = self.rng.below(len);
                buf[i] = *self.rng.pick(BYTES);
            }
            2 => {
                let max = if self.rng.chance(4) { len / 2 + 1 } else { 16 };
                let (s, e) = self.range(len, max);
                buf.drain(s..e);
            }
            3 => {
                let (s, e) = self.range(len, 256);
                let piece = buf[s..e].to_vec();
                let at = self.rng.below(buf.len() + 1);
                buf.splice(at..at, piece);
            }
            4..=6 => {
                let at = self.rng.below(len + 1);
                let mut token = self.token();
                if self.rng.chance(3) {
                    token = format!(" {token} ");
                }
                buf.splice(at..at, token.into_bytes());
            }
            7 if !corpus.is_empty() => {
                let other = &corpus[self.rng.below(corpus.len())];
                let (s, e) = self.range(other.len(), 512);
                let piece = other[s..e].to_vec();
                let (rs, re) = self.range(len, 64);
                let (rs, re) = if self.rng.chance(2) { (rs, rs) } else { (rs, re) };
                buf.splice(rs..re, piece);
            }
            8 => {
                let lines = Self::line_bounds(buf);
                if lines.len() >= 2 {
                    let (a, b) = lines[self.rng.below(lines.len())];
                    let line = buf[a..b].to_vec();
                    match self.rng.below(4) {
                        0 => {
                            buf.drain(a..b);
                        }
                        1 => {
                            let most = if self.rng.chance(8) { 200 } else { 3 };
                            let times = 1 + self.rng.below(most);
                            for _ in 0..times {
                                buf.splice(a..a, line.iter().copied());
                            }
                        }
                        _ => {
                            buf.drain(a..b);
                            let lines = Self::line_bounds(buf);
                            let at = if lines.is_empty() { 0 } else { lines[self.rng.below(lines.len())].0 };
                            buf.splice(at..at, line);
                        }
                    }
                }
            }
            9 => {
                // A number replaced by an odd one.
                let starts: Vec<usize> =
                    (0..len).filter(|&i| buf[i].is_ascii_digit() && (i == 0 || !buf[i - 1].is_ascii_alphanumeric())).collect();
                if !starts.is_empty() {
                    let s = *self.rng.pick(&starts);
                    let e = (s..len).find(|&i| !(buf[i].is_ascii_digit() || buf[i] == b'.')).unwrap_or(len);
                    let n = self.rng.pick(NUMBERS).to_string();
                    buf.splice(s..e, n.into_bytes());
                }
            }
            10 => {
                // A name replaced by another word of the language.
                let starts: Vec<usize> =
                    (0..len).filter(|&i| buf[i].is_ascii_alphabetic() && (i == 0 || !buf[i - 1].is_ascii_alphanumeric())).collect();
                if !starts.is_empty() {
                    let s = *self.rng.pick(&starts);
                    let e = (s..len).find(|&i| !(buf[i].is_ascii_alphanumeric() || buf[i] == b'_')).unwrap_or(len);
                    let w = self.token();
                    buf.splice(s..e, w.into_bytes());
                }
            }
            11 => {
                // Deep or long runs of one bracket.
                let b = *self.rng.pick(&["(", "[", "{", ")", "]", "}", "f(", "[1,", "repeat 2 {\n", "residual {\n", "@lowpass"]);
                let most = if self.rng.chance(4) { 3000 } else { 40 };
                let n = 1 + self.rng.below(most);
                let at = self.rng.below(len + 1);
                buf.splice(at..at, b.repeat(n).into_bytes());
            }
            12 => {
                // Wrap a range in brackets.
                let (open, close) = *self.rng.pick(&[("(", ")"), ("[", "]"), ("{\n", "\n}"), ("\"", "\""), ("repeat 2 {\n", "\n}\n")]);
                let (s, e) = self.range(len, 200);
                buf.splice(e..e, close.bytes());
                buf.splice(s..s, open.bytes());
            }
            13 if len > 0 => {
                let at = self.rng.below(len);
                buf.truncate(at);
            }
            14 => {
                let at = self.rng.below(len + 1);
                let u = self.rng.pick(UNICODE).to_string();
                buf.splice(at..at, u.into_bytes());
            }
            _ => {
                let at = self.rng.below(len + 1);
                let n = 1 + self.rng.below(4);
                let mut text = String::new();
                for _ in 0..n {
                    text.push_str(&self.token());
                    if self.rng.chance(2) {
                        text.push(' ');
                    }
                }
                buf.splice(at..at, text.into_bytes());
            }
        }
    }

    fn generate(&mut self, corpus: &[Vec<u8>]) -> String {
        let mut buf = if corpus.is_empty() || self.rng.chance(20) {
            // Token soup from scratch.
            let n = self.rng.below(120);
            (0..n).map(|_| self.token()).collect::<Vec<_>>().join(if self.rng.chance(2) { " " } else { "" }).into_bytes()
        } else {
            corpus[self.rng.below(corpus.len())].clone()
        };
        let most = if self.rng.chance(4) { 16 } else { 4 };
        let rounds = 1 + self.rng.below(most);
        for _ in 0..rounds {
            self.mutate_once(&mut buf, corpus);
        }
        buf.truncate(self.max_len);
        match String::from_utf8(buf) {
            Ok(s) => s,
            // `lpnc` refuses files that are not UTF-8; keep the rest of the input.
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }
}

// ------------------------------------------------------------ options

struct Options {
    inputs: u64,
    jobs: usize,
    timeout: Duration,
    max_len: usize,
    seed: u64,
    out: PathBuf,
    corpus: Vec<PathBuf>,
    rss_limit_mb: u64,
    replay: Vec<PathBuf>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn parse_options(args: &[String]) -> Options {
    let mut o = Options {
        inputs: 1_000_000,
        jobs: 1,
        timeout: Duration::from_millis(2000),
        max_len: 8 * 1024,
        seed: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1),
        out: root().join("fuzz/artifacts/stable"),
        corpus: vec![root().join("tests/ui"), root().join("examples"), root().join("tests/fuzz_regressions")],
        rss_limit_mb: 4096,
        replay: vec![],
    };
    let mut i = 0;
    let value = |i: &mut usize| -> String {
        *i += 1;
        args.get(*i).cloned().unwrap_or_else(|| usage(&format!("{} needs a value", args[*i - 1])))
    };
    while i < args.len() {
        match args[i].as_str() {
            "--inputs" => o.inputs = value(&mut i).parse().unwrap_or_else(|_| usage("--inputs N")),
            "--jobs" => o.jobs = value(&mut i).parse().unwrap_or_else(|_| usage("--jobs N")),
            "--timeout-ms" => o.timeout = Duration::from_millis(value(&mut i).parse().unwrap_or_else(|_| usage("--timeout-ms N"))),
            "--max-len" => o.max_len = value(&mut i).parse().unwrap_or_else(|_| usage("--max-len BYTES")),
            "--seed" => o.seed = value(&mut i).parse().unwrap_or_else(|_| usage("--seed N")),
            "--out" => o.out = PathBuf::from(value(&mut i)),
            "--corpus" => o.corpus.push(PathBuf::from(value(&mut i))),
            "--rss-limit-mb" => o.rss_limit_mb = value(&mut i).parse().unwrap_or_else(|_| usage("--rss-limit-mb N")),
            "--replay" => o.replay.extend(args[i + 1..].iter().map(PathBuf::from)),
            "--help" | "-h" => usage(""),
            other => usage(&format!("unknown option {other}")),
        }
        if args[i] == "--replay" {
            break;
        }
        i += 1;
    }
    o
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("error: {problem}");
    }
    eprintln!(
        "usage: stable_fuzz [--inputs N] [--jobs N] [--timeout-ms N] [--max-len BYTES] [--seed N] [--out DIR] [--corpus DIR]… \
         [--rss-limit-mb N]\n       stable_fuzz --replay FILE…"
    );
    std::process::exit(2)
}

fn load_corpus(dirs: &[PathBuf]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        paths.sort();
        for path in paths {
            if let Ok(bytes) = std::fs::read(&path) {
                out.push(bytes);
            }
        }
    }
    out
}

// ------------------------------------------------------------ the worker

thread_local! {
    static LAST_PANIC: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn send(out: &mut impl Write, tag: u8, payload: &[u8]) {
    let ok = out.write_all(&[tag]).and_then(|_| out.write_all(&(payload.len() as u32).to_le_bytes())).and_then(|_| out.write_all(payload));
    if ok.is_err() {
        // The parent is gone.
        std::process::exit(0);
    }
}

fn worker(seed: u64, count: u64, max_len: usize, corpus_dirs: &[PathBuf]) {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        LAST_PANIC.with(|p| *p.borrow_mut() = format!("panicked at {location}: {message}"));
    }));
    let mut corpus = load_corpus(corpus_dirs);
    let mut signatures: HashSet<u64> = HashSet::new();
    let mut m = Mutator { rng: Rng(seed), vocab: vocabulary(), max_len };
    let base = root().join("tests/ui");
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    for _ in 0..count {
        let input = m.generate(&corpus);
        send(&mut out, b'I', input.as_bytes());
        if out.flush().is_err() {
            return;
        }
        let start = Instant::now();
        let result = std::panic::catch_unwind(|| lpn_fuzz::run_frontend_in(&input, &base));
        let micros = start.elapsed().as_micros().min(u32::MAX as u128) as u32;
        match result {
            Ok(Ok(outcome)) => {
                send(&mut out, b'D', &micros.to_le_bytes());
                if signatures.insert(signature(&outcome)) {
                    if corpus.len() < 20_000 {
                        corpus.push(input.into_bytes());
                    } else {
                        let i = m.rng.below(corpus.len());
                        corpus[i] = input.into_bytes();
                    }
                }
            }
            Ok(Err(broken)) => send(&mut out, b'V', broken.as_bytes()),
            Err(_) => {
                let message = LAST_PANIC.with(|p| p.borrow().clone());
                send(&mut out, b'P', message.as_bytes());
            }
        }
    }
    let _ = out.flush();
}

/// Whether an input is new: the codes it produced and whether a program came
/// out.
fn signature(outcome: &lpn_fuzz::Outcome) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    outcome.codes.hash(&mut h);
    outcome.program.hash(&mut h);
    outcome.sections.min(4).hash(&mut h);
    h.finish()
}

// ------------------------------------------------------------ the parent

#[derive(Default)]
struct Stats {
    executed: AtomicU64,
    panics: AtomicU64,
    violations: AtomicU64,
    crashes: AtomicU64,
    timeouts: AtomicU64,
    slowest_micros: AtomicU64,
}

enum Msg {
    Input(Vec<u8>),
    Done(u32),
    Panic(String),
    Violation(String),
}

fn read_msgs(mut stdout: impl Read, tx: mpsc::Sender<Msg>) {
    loop {
        let mut head = [0u8; 5];
        if stdout.read_exact(&mut head).is_err() {
            return;
        }
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut payload = vec![0u8; len];
        if stdout.read_exact(&mut payload).is_err() {
            return;
        }
        let msg = match head[0] {
            b'I' => Msg::Input(payload),
            b'D' => Msg::Done(u32::from_le_bytes(payload[..4].try_into().unwrap_or([0; 4]))),
            b'P' => Msg::Panic(String::from_utf8_lossy(&payload).into_owned()),
            _ => Msg::Violation(String::from_utf8_lossy(&payload).into_owned()),
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

struct Findings {
    out: PathBuf,
    seen: Mutex<HashSet<String>>,
    saved: AtomicU64,
}

impl Findings {
    /// Saves an input once per distinct message; returns the path if saved.
    fn save(&self, kind: &str, message: &str, input: &[u8]) -> Option<PathBuf> {
        let key = format!("{kind}: {message}");
        let mut seen = self.seen.lock().unwrap();
        if !seen.insert(key) || self.saved.load(Ordering::Relaxed) >= 200 {
            return None;
        }
        let n = self.saved.fetch_add(1, Ordering::Relaxed);
        let _ = std::fs::create_dir_all(&self.out);
        let path = self.out.join(format!("{kind}-{n:03}.lpn"));
        let _ = std::fs::write(&path, input);
        let _ = std::fs::write(path.with_extension("txt"), format!("{kind}: {message}\n"));
        Some(path)
    }
}

fn spawn_worker(o: &Options, seed: u64, count: u64, slot: usize) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new("/bin/sh");
    // The memory limit is the shell's `ulimit -v`: an input that needs more
    // dies like a crash and is saved.
    let mut script = format!("ulimit -v {} 2>/dev/null; exec \"$0\" --worker {seed} {count} {}", o.rss_limit_mb * 1024, o.max_len);
    for dir in &o.corpus {
        script.push_str(&format!(" '{}'", dir.display()));
    }
    cmd.arg("-c").arg(script).arg(exe);
    let _ = std::fs::create_dir_all(&o.out);
    let stderr = std::fs::File::create(o.out.join(format!(".worker{slot}.stderr")))?;
    cmd.stdout(Stdio::piped()).stderr(stderr).stdin(Stdio::null()).spawn()
}

fn run_slot(o: &Options, slot: usize, mut quota: u64, stats: &Stats, findings: &Findings) {
    let mut restarts = 0u64;
    while quota > 0 {
        let seed = o.seed.wrapping_add((slot as u64) << 32).wrapping_add(restarts.wrapping_mul(0x9E37_79B9));
        restarts += 1;
        let mut child = match spawn_worker(o, seed, quota, slot) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("cannot start a worker: {e}");
                return;
            }
        };
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || read_msgs(stdout, tx));
        let mut current: Option<Vec<u8>> = None;
        loop {
            let wait = if current.is_some() { o.timeout } else { Duration::from_secs(3600) };
            match rx.recv_timeout(wait) {
                Ok(Msg::Input(bytes)) => current = Some(bytes),
                Ok(done) => {
                    let input = current.take().unwrap_or_default();
                    quota = quota.saturating_sub(1);
                    stats.executed.fetch_add(1, Ordering::Relaxed);
                    match done {
                        Msg::Done(micros) => {
                            if u64::from(micros) > stats.slowest_micros.fetch_max(u64::from(micros), Ordering::Relaxed) {
                                let _ = std::fs::create_dir_all(&o.out);
                                let _ = std::fs::write(o.out.join(format!("slowest-{slot}.lpn")), &input);
                            }
                        }
                        Msg::Panic(message) => {
                            stats.panics.fetch_add(1, Ordering::Relaxed);
                            if let Some(path) = findings.save("panic", &message, &input) {
                                eprintln!("\nPANIC {message}\n  saved {}", path.display());
                            }
                        }
                        Msg::Violation(message) => {
                            stats.violations.fetch_add(1, Ordering::Relaxed);
                            if let Some(path) = findings.save("invariant", &message, &input) {
                                eprintln!("\nINVARIANT {message}\n  saved {}", path.display());
                            }
                        }
                        Msg::Input(_) => unreachable!(),
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let input = current.take().unwrap_or_default();
                    let _ = child.kill();
                    let _ = child.wait();
                    quota = quota.saturating_sub(1);
                    stats.executed.fetch_add(1, Ordering::Relaxed);
                    stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    let message = format!("ran past {} ms ({} bytes)", o.timeout.as_millis(), input.len());
                    if let Some(path) = findings.save("timeout", &format!("{message} #{}", stats.timeouts.load(Ordering::Relaxed)), &input)
                    {
                        eprintln!("\nTIMEOUT {message}\n  saved {}", path.display());
                    }
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                    if let Some(input) = current.take() {
                        quota = quota.saturating_sub(1);
                        stats.executed.fetch_add(1, Ordering::Relaxed);
                        stats.crashes.fetch_add(1, Ordering::Relaxed);
                        let stderr = std::fs::read_to_string(o.out.join(format!(".worker{slot}.stderr"))).unwrap_or_default();
                        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_string();
                        let message = format!("worker died ({status}): {last}");
                        if let Some(path) = findings.save("crash", &format!("{message} #{}", stats.crashes.load(Ordering::Relaxed)), &input)
                        {
                            eprintln!("\nCRASH {message}\n  saved {}", path.display());
                        }
                    } else if quota > 0 {
                        // Finished its share early (it counts its own inputs).
                        quota = 0;
                    }
                    break;
                }
            }
        }
        let _ = reader.join();
    }
}

fn replay(paths: &[PathBuf]) -> i32 {
    let base = root().join("tests/ui");
    let mut bad = 0;
    for path in paths {
        let source = match std::fs::read(path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                bad += 1;
                continue;
            }
        };
        let start = Instant::now();
        let result = std::panic::catch_unwind(|| lpn_fuzz::run_frontend_in(&source, &base));
        let took = start.elapsed();
        match result {
            Ok(Ok(_)) => println!("ok        {:>9.3} ms  {}", took.as_secs_f64() * 1e3, path.display()),
            Ok(Err(broken)) => {
                bad += 1;
                println!("INVARIANT {:>9.3} ms  {}: {broken}", took.as_secs_f64() * 1e3, path.display())
            }
            Err(_) => {
                bad += 1;
                println!("PANIC     {:>9.3} ms  {}", took.as_secs_f64() * 1e3, path.display())
            }
        }
    }
    if bad > 0 { 1 } else { 0 }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        let seed = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
        let count = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
        let max_len = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(16384);
        let dirs: Vec<PathBuf> = args.iter().skip(4).map(PathBuf::from).collect();
        worker(seed, count, max_len, &dirs);
        return;
    }
    let o = parse_options(&args);
    if !o.replay.is_empty() {
        std::process::exit(replay(&o.replay));
    }
    let corpus = load_corpus(&o.corpus);
    eprintln!(
        "stable_fuzz: {} inputs, {} job(s), seed {}, {} seed files, {} words; timeout {} ms, max {} bytes; findings in {}",
        o.inputs,
        o.jobs,
        o.seed,
        corpus.len(),
        vocabulary().len(),
        o.timeout.as_millis(),
        o.max_len,
        o.out.display()
    );
    let stats = Arc::new(Stats::default());
    let findings = Findings { out: o.out.clone(), seen: Mutex::new(HashSet::new()), saved: AtomicU64::new(0) };
    let start = Instant::now();
    std::thread::scope(|scope| {
        let jobs = o.jobs.max(1);
        for slot in 0..jobs {
            let quota = o.inputs / jobs as u64 + u64::from((slot as u64) < o.inputs % jobs as u64);
            let (o, stats, findings) = (&o, &stats, &findings);
            scope.spawn(move || run_slot(o, slot, quota, stats, findings));
        }
        let stats = Arc::clone(&stats);
        let total = o.inputs;
        scope.spawn(move || {
            let mut last = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let done = stats.executed.load(Ordering::Relaxed);
                if done >= total {
                    break;
                }
                if last.elapsed() >= Duration::from_secs(10) {
                    last = Instant::now();
                    report(&stats, start.elapsed(), false);
                }
            }
        });
    });
    report(&stats, start.elapsed(), true);
    let bad = stats.panics.load(Ordering::Relaxed)
        + stats.violations.load(Ordering::Relaxed)
        + stats.crashes.load(Ordering::Relaxed)
        + stats.timeouts.load(Ordering::Relaxed);
    std::process::exit(if bad > 0 { 1 } else { 0 });
}

fn report(stats: &Stats, elapsed: Duration, last: bool) {
    let done = stats.executed.load(Ordering::Relaxed);
    eprintln!(
        "{}{done} inputs in {:.0} s ({:.0}/s): {} panics, {} invariant failures, {} crashes, {} timeouts; slowest input {:.1} ms",
        if last { "done: " } else { "" },
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64().max(1e-9),
        stats.panics.load(Ordering::Relaxed),
        stats.violations.load(Ordering::Relaxed),
        stats.crashes.load(Ordering::Relaxed),
        stats.timeouts.load(Ordering::Relaxed),
        stats.slowest_micros.load(Ordering::Relaxed) as f64 / 1e3,
    );
}
