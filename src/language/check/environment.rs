//! What the checker asks of the machine it runs on: the files a program
//! names (data sets, `@init` weights) and the memory training may use. The
//! checker takes it as a parameter, so it touches nothing itself: `lpnc`
//! passes [`RealEnvironment`], tests a [`FakeEnvironment`] with files in
//! memory and a fixed budget, instead of writing temporary files or changing
//! the process's environment variables.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What is at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Folder,
    /// Neither: a named pipe, a device, a socket (in words, for messages),
    /// which reading would wait on forever or fail on.
    Other(&'static str),
}

/// The machine as the checker (and the data readers it shares with
/// training) sees it.
pub trait Environment {
    /// What is at `path`, or `None` when nothing is (or it cannot be seen).
    fn kind(&self, path: &Path) -> Option<EntryKind>;
    /// The whole file.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// The file's first `len` bytes (fewer when it is shorter) and its size:
    /// a header without reading what follows it.
    fn read_start(&self, path: &Path, len: u64) -> std::io::Result<(Vec<u8>, u64)>;
    /// The names of what a folder holds, in no particular order (the
    /// `wav` and `images` sources' class folders and files).
    fn entries(&self, folder: &Path) -> std::io::Result<Vec<String>>;
    /// Bytes that training may use (E0046).
    fn available_memory(&self) -> u64;
    /// What checks have read from files, kept between checks by a caller
    /// that checks the same file again and again (`lpnc lsp`, on every
    /// change); `None`, the default: read every time.
    fn memo(&self) -> Option<&FileMemo> {
        None
    }
}

/// Answers computed from files (the samples in a recording's column), each
/// by path and question, valid while the file keeps its modification time
/// and size.
#[derive(Default)]
pub struct FileMemo {
    entries: std::cell::RefCell<HashMap<(PathBuf, String), Remembered>>,
}

/// An answer, with the stamp of the file it was computed from.
type Remembered = (Stamp, Box<dyn std::any::Any>);

/// A file's modification time and size.
type Stamp = (std::time::SystemTime, u64);

impl FileMemo {
    /// The answer to `question` about the file at `path`: remembered while
    /// the file is unchanged, else `compute`d (and remembered). A file whose
    /// time cannot be read is never remembered.
    pub fn remember<T: Clone + 'static>(&self, path: &Path, question: &str, compute: impl FnOnce() -> T) -> T {
        let Some(stamp) = std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len()))) else {
            return compute();
        };
        let key = (path.to_path_buf(), question.to_string());
        if let Some((seen, answer)) = self.entries.borrow().get(&key)
            && *seen == stamp
            && let Some(answer) = answer.downcast_ref::<T>()
        {
            return answer.clone();
        }
        let answer = compute();
        self.entries.borrow_mut().insert(key, (stamp, Box::new(answer.clone())));
        answer
    }
}

/// This machine, remembering what checks read from its files (`FileMemo`)
/// for as long as it lives: for `lpnc lsp`, which checks a document on
/// every change.
#[derive(Default)]
pub struct CachedEnvironment {
    pub real: RealEnvironment,
    memo: FileMemo,
}

impl Environment for CachedEnvironment {
    fn kind(&self, path: &Path) -> Option<EntryKind> {
        self.real.kind(path)
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.real.read(path)
    }
    fn read_start(&self, path: &Path, len: u64) -> std::io::Result<(Vec<u8>, u64)> {
        self.real.read_start(path, len)
    }
    fn entries(&self, folder: &Path) -> std::io::Result<Vec<String>> {
        self.real.entries(folder)
    }
    fn available_memory(&self) -> u64 {
        self.real.available_memory()
    }
    fn memo(&self) -> Option<&FileMemo> {
        Some(&self.memo)
    }
}

/// This machine: its file system, and its memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealEnvironment {
    /// The memory budget, when given; else `LPN_AVAILABLE_MEMORY` (bytes)
    /// when set, else MemAvailable on Linux, else a generous 64 GiB.
    pub available_memory: Option<u64>,
}

impl Environment for RealEnvironment {
    fn kind(&self, path: &Path) -> Option<EntryKind> {
        let meta = std::fs::metadata(path).ok()?;
        Some(match meta.file_type() {
            kind if kind.is_file() => EntryKind::File,
            kind if kind.is_dir() => EntryKind::Folder,
            kind => EntryKind::Other(other_kind(&kind)),
        })
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn read_start(&self, path: &Path, len: u64) -> std::io::Result<(Vec<u8>, u64)> {
        let file = std::fs::File::open(path)?;
        let size = file.metadata()?.len();
        let mut start = Vec::new();
        file.take(len).read_to_end(&mut start)?;
        Ok((start, size))
    }

    fn entries(&self, folder: &Path) -> std::io::Result<Vec<String>> {
        std::fs::read_dir(folder)?.map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned())).collect()
    }

    fn available_memory(&self) -> u64 {
        self.available_memory.unwrap_or_else(system_memory)
    }
}

/// What a file that is neither a regular file nor a folder is, in words:
/// `a named pipe (FIFO)`.
fn other_kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    let _ = kind;
    "neither a file nor a folder"
}

/// Memory this process could use: `LPN_AVAILABLE_MEMORY` (bytes) when set
/// (to try a budget from the command line), else MemAvailable on Linux, else
/// a generous 64 GiB.
fn system_memory() -> u64 {
    if let Some(bytes) = std::env::var("LPN_AVAILABLE_MEMORY").ok().and_then(|v| v.parse().ok()) {
        return bytes;
    }
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(64 << 30)
}

/// A machine in memory, for tests: files by path (folders are the paths
/// above them), and a fixed memory budget.
#[derive(Clone, Debug, Default)]
pub struct FakeEnvironment {
    files: HashMap<PathBuf, Vec<u8>>,
    others: HashMap<PathBuf, &'static str>,
    pub available_memory: u64,
}

impl FakeEnvironment {
    /// No files, and `available_memory` bytes for training.
    pub fn with_memory(available_memory: u64) -> FakeEnvironment {
        FakeEnvironment { available_memory, ..FakeEnvironment::default() }
    }

    /// Adds a file (its folders exist with it).
    pub fn file(mut self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> FakeEnvironment {
        self.files.insert(path.into(), contents.into());
        self
    }

    /// Adds something that is neither a file nor a folder, such as
    /// `"a named pipe (FIFO)"`.
    pub fn other(mut self, path: impl Into<PathBuf>, what: &'static str) -> FakeEnvironment {
        self.others.insert(path.into(), what);
        self
    }

    fn not_found(path: &Path) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} is not in the fake environment", path.display()))
    }
}

impl Environment for FakeEnvironment {
    fn kind(&self, path: &Path) -> Option<EntryKind> {
        if self.files.contains_key(path) {
            return Some(EntryKind::File);
        }
        if let Some(what) = self.others.get(path) {
            return Some(EntryKind::Other(what));
        }
        self.files.keys().chain(self.others.keys()).any(|p| p.starts_with(path)).then_some(EntryKind::Folder)
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.files.get(path).cloned().ok_or_else(|| Self::not_found(path))
    }

    fn read_start(&self, path: &Path, len: u64) -> std::io::Result<(Vec<u8>, u64)> {
        let bytes = self.files.get(path).ok_or_else(|| Self::not_found(path))?;
        let end = bytes.len().min(usize::try_from(len).unwrap_or(usize::MAX));
        Ok((bytes[..end].to_vec(), bytes.len() as u64))
    }

    fn entries(&self, folder: &Path) -> std::io::Result<Vec<String>> {
        if self.kind(folder) != Some(EntryKind::Folder) {
            return Err(Self::not_found(folder));
        }
        let mut names: Vec<String> = self
            .files
            .keys()
            .chain(self.others.keys())
            .filter_map(|p| p.strip_prefix(folder).ok()?.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn available_memory(&self) -> u64 {
        self.available_memory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_files_have_folders_above_them() {
        let env = FakeEnvironment::with_memory(1).file("data/a.csv", "1,2\n").other("data/pipe", "a named pipe (FIFO)");
        assert_eq!(env.kind(Path::new("data/a.csv")), Some(EntryKind::File));
        assert_eq!(env.kind(Path::new("data")), Some(EntryKind::Folder));
        assert_eq!(env.kind(Path::new("data/pipe")), Some(EntryKind::Other("a named pipe (FIFO)")));
        assert_eq!(env.kind(Path::new("dat")), None);
        assert_eq!(env.read_start(Path::new("data/a.csv"), 2).unwrap(), (b"1,".to_vec(), 4));
        assert_eq!(env.read(Path::new("nothing")).unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }

    /// A recording of `samples` lines, padded to `size` bytes.
    fn recording(samples: usize, size: usize) -> String {
        let mut text: String = (0..samples).map(|i| format!("{i}\n")).collect();
        text.insert_str(0, &"0".repeat(size - text.len()));
        text
    }

    /// Checks `source`, which reads `file`, through one `CachedEnvironment`:
    /// with `fits` written the data fits the model; with `misfits` (the same
    /// size) written at the same modification time the memo still answers
    /// (while the real environment sees the mismatch); after a new time the
    /// file is read again.
    fn assert_remembered_while_unchanged(file: &str, source: &str, (fits, misfits): (&str, &str)) {
        assert_eq!(fits.len(), misfits.len(), "the same size, so only the time tells them apart");
        let dir = std::env::temp_dir().join(format!("lpn-memo-{}-{file}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        std::fs::write(&path, fits).unwrap();
        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        let env = CachedEnvironment::default();
        let mismatch = |env: &dyn Environment| {
            let (_, checked) = crate::language::check::check_source_with(source, &dir, env);
            checked.problems.iter().any(|p| matches!(p, crate::language::diagnostic::Problem::DataShapeMismatch { .. }))
        };
        assert!(!mismatch(&env), "{file}: the first contents fit the model");
        std::fs::write(&path, misfits).unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(written).unwrap();
        assert!(!mismatch(&env), "{file}: the memo answers for an unchanged stamp");
        assert!(mismatch(&RealEnvironment::default()), "{file}: the file really does not fit now");
        let later = written + std::time::Duration::from_secs(10);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(later).unwrap();
        assert!(mismatch(&env), "{file}: a changed file is read again");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// 8 samples fill windows of 6; then 3 samples.
    #[test]
    fn the_cached_environment_reads_a_recording_again_only_when_it_changes() {
        let source = "model m {\n  input [1, 6]\n  conv(out=1, k=3)\n}\ndata signal(\"rec.csv\")\n";
        assert_remembered_while_unchanged("rec.csv", source, (&recording(8, 40), &recording(3, 40)));
    }

    /// Rows of 4 values fit `input [1, 4]`; then rows of 6.
    #[test]
    fn the_cached_environment_reads_a_ucr_table_again_only_when_it_changes() {
        let source = "model m {\n  input [1, 4]\n  conv(out=2, k=3)\n}\ndata ucr(\"t.csv\")\n";
        assert_remembered_while_unchanged("t.csv", source, ("1,10,10,10,10\n2,10,10,10,10\n", "1,1,1,1,1,1,1\n2,1,1,1,1,1,1\n"));
    }

    #[test]
    fn the_real_environment_sees_files_and_folders() {
        let env = RealEnvironment { available_memory: Some(7) };
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(env.kind(&manifest.join("Cargo.toml")), Some(EntryKind::File));
        assert_eq!(env.kind(manifest), Some(EntryKind::Folder));
        assert_eq!(env.kind(&manifest.join("no such file")), None);
        let whole = std::fs::read(manifest.join("Cargo.toml")).unwrap();
        assert_eq!(env.read_start(&manifest.join("Cargo.toml"), 9).unwrap(), (whole[..9].to_vec(), whole.len() as u64));
        assert_eq!(env.available_memory(), 7);
    }
}
