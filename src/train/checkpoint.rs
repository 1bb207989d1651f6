//! Checkpoints: everything a run needs to go on as if it had never stopped —
//! each parameter's own tensor (reparametrization coordinates, not the kernel
//! they make), batch-norm statistics, optimizer moments and step counts (one per parameter),
//! lagrangian multipliers, the shuffle and dropout generators, the current
//! epoch's data order and position, and the epochs reported so far.
//!
//! One safetensors file holds it all (the non-tensor state as JSON in the
//! header's metadata), written to a temporary name, flushed to disk and renamed
//! over the old one: a reader finds the old checkpoint or the new one, never
//! half of either, whatever moment the process is killed.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{EpochReport, TrainError};
use crate::language::ir::{Init, Program, Source};
use crate::rng::Rng;

pub const FILE: &str = "checkpoint.safetensors";
const METADATA_KEY: &str = "lpn.checkpoint";
/// Bumped when the layout changes, so an old file is refused with a reason.
/// 2: the run's digest (`RunDigest`) replaced the source text's.
/// 3: Adam's step count per parameter (`optimizer_steps`), not one per run.
const FORMAT: u32 = 3;

/// The non-tensor part of a checkpoint.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct State {
    pub format: u32,
    pub model: String,
    /// What determines the run: its checked program and the bytes it reads.
    pub run_digest: RunDigest,
    pub seed: u64,
    /// Epochs the run was planned for.
    pub epochs: usize,
    /// Epochs finished.
    pub epochs_done: usize,
    /// Steps finished in the epoch after those (0 at an epoch's end).
    pub steps_done: usize,
    /// That epoch's order of training examples (empty at an epoch's end).
    pub order: Vec<usize>,
    /// Running sum of that epoch's task loss (per example) and its seconds.
    pub epoch_loss_sum: f64,
    pub epoch_seconds: f64,
    pub shuffle: Rng,
    pub dropout: Rng,
    /// Each parameter's optimizer step count, by parameter name (absent: 0).
    pub optimizer_steps: BTreeMap<String, i32>,
    /// One per enforced constraint, in report order.
    pub multipliers: Vec<f64>,
    pub reports: Vec<EpochReport>,
    /// The learning-rate plateau's state, when a `plateau` schedule ran
    /// (absent in checkpoints written before schedules existed).
    #[serde(default)]
    pub lr_plateau: Option<super::lr::PlateauState>,
}

/// A checkpoint read back: its state and its tensors by name.
pub struct Checkpoint {
    pub state: State,
    pub tensors: HashMap<String, Tensor>,
}

/// A short, stable digest of bytes (FNV-1a, 64 bits): a check that nothing
/// changed, not a defence against forgery.
pub fn digest(bytes: &[u8]) -> String {
    format!("{:016x}", fnv1a(FNV_OFFSET, bytes))
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a of `bytes` continued from the state `h`.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// [`digest`] of a file's bytes, read a piece at a time: a data file may be
/// larger than memory (`stream = …`).
pub fn digest_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let (mut h, mut piece) = (FNV_OFFSET, vec![0u8; 1 << 20]);
    loop {
        match std::io::Read::read(&mut file, &mut piece) {
            Ok(0) => return Ok(format!("{h:016x}")),
            Ok(n) => h = fnv1a(h, &piece[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// What determines a run, so that a checkpoint is resumed only by the same
/// training: each section of the checked program (not its source text, so a
/// comment or a layout change does not count; not where a data file was
/// found, so the same file reached by another path does not count either),
/// and the bytes of every file the run reads.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RunDigest {
    pub model: String,
    pub data: String,
    pub train: String,
    pub files: Vec<FileDigest>,
}

/// A file a run reads: what it is for, where it was read, its digest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FileDigest {
    pub role: String,
    pub path: String,
    pub digest: String,
}

/// This machine, for listing a source's folder.
const ENV: crate::language::check::RealEnvironment = crate::language::check::RealEnvironment { available_memory: None };

/// The files of a `wav` or `images` source, each with the source's role.
fn folder_files(
    role: &str,
    layout: Result<crate::data::folders::Layout, crate::data::DataError>,
) -> Result<Vec<(String, PathBuf)>, TrainError> {
    Ok(layout.map_err(TrainError::Data)?.files().into_iter().map(|f| (role.to_string(), f.to_path_buf())).collect())
}

impl RunDigest {
    pub fn of(program: &Program) -> Result<RunDigest, TrainError> {
        let of_json = |v: serde_json::Result<String>| digest(v.expect("the program serializes").as_bytes());
        let mut read: Vec<(String, &Path)> = Vec::new();
        let mut listed: Vec<(String, PathBuf)> = Vec::new();
        let data = &program.data;
        for (role, source) in
            [("training data", Some(&data.train)), ("validation data", data.val.as_ref()), ("test data", data.test.as_ref())]
        {
            match source {
                Some(Source::Ucr { path } | Source::Signal { path, .. } | Source::Npz { path, .. } | Source::Ts { path }) => {
                    read.push((role.to_string(), path))
                }
                Some(Source::Npy { path, labels }) => read.extend([(role.to_string(), path.as_path()), (format!("{role} labels"), labels)]),
                Some(Source::Pairs { x, y }) => read.extend([(format!("{role} inputs"), x.as_path()), (format!("{role} targets"), y)]),
                // Every file of a folder, each with its own digest.
                Some(Source::Wav { path, .. }) => listed.extend(folder_files(role, crate::data::wav::wav_layout(&ENV, path))?),
                Some(Source::Images { path, .. }) => listed.extend(folder_files(role, crate::data::images::image_layout(&ENV, path))?),
                Some(Source::Sines { .. } | Source::Waveforms { .. }) | None => {}
            }
        }
        for layer in program.model.walk() {
            if let Some(Init::File { path, .. }) = &layer.init {
                read.push((format!("`@init` of {}", layer.name), path));
            }
        }
        let files = read
            .into_iter()
            .chain(listed.iter().map(|(role, path)| (role.clone(), path.as_path())))
            .map(|(role, path)| {
                let digest = digest_file(path).map_err(|e| TrainError::Io(path.to_path_buf(), e))?;
                Ok(FileDigest { role, path: path.display().to_string(), digest })
            })
            .collect::<Result<_, TrainError>>()?;
        Ok(RunDigest {
            model: of_json(serde_json::to_string(&program.model)),
            data: of_json(serde_json::to_string(&program.data)),
            train: of_json(serde_json::to_string(&program.train)),
            files,
        })
    }

    /// What changed from `self` (the checkpoint's) to `now`, in words; empty
    /// when nothing did.
    pub fn changes(&self, now: &RunDigest) -> Vec<String> {
        let mut out = Vec::new();
        for (section, was, is) in [("model", &self.model, &now.model), ("data", &self.data, &now.data), ("train", &self.train, &now.train)]
        {
            if was != is {
                out.push(format!("the {section} section changed"));
            }
        }
        for file in &now.files {
            match self.files.iter().find(|f| f.role == file.role) {
                Some(was) if was.digest != file.digest => out.push(format!("the {} file {} changed", file.role, file.path)),
                Some(_) => {}
                None => out.push(format!("the {} file {} was added", file.role, file.path)),
            }
        }
        for was in &self.files {
            if !now.files.iter().any(|f| f.role == was.role) {
                out.push(format!("the {} file {} is no longer read", was.role, was.path));
            }
        }
        out
    }
}

pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Writes the checkpoint atomically (temporary file, fsync, rename, fsync of
/// the folder so the rename itself survives a power cut).
pub fn save(dir: &Path, state: &State, tensors: Vec<(String, Tensor)>) -> Result<PathBuf, TrainError> {
    let path = path_in(dir);
    let metadata = HashMap::from([(METADATA_KEY.to_string(), serde_json::to_string(state).expect("state serializes"))]);
    let bytes = safetensors::serialize(tensors, Some(metadata))
        .map_err(|e| TrainError::Io(path.clone(), std::io::Error::other(format!("cannot encode the checkpoint: {e}"))))?;
    write_durably(&path, &bytes)?;
    Ok(path)
}

/// Marks the temporary files of `write_durably` (`.NAME.tmp-PID-N`).
pub const TEMPORARY_MARK: &str = ".tmp-";

/// Temporary file + flush + fsync + rename + fsync of the folder. The
/// temporary name is unique to the process and the write, so two writers
/// never share one (a folder's lock keeps two runs apart; this keeps their
/// files whole even without it).
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let io = |e| TrainError::Io(path.to_path_buf(), e);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let unique = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}{TEMPORARY_MARK}{}-{unique}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.flush().map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Not every platform can open a folder to sync it; the data is safe either way.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Reads the checkpoint in `dir`; every failure says what is wrong with it.
pub fn load(dir: &Path, device: &Device) -> Result<Checkpoint, TrainError> {
    let path = path_in(dir);
    let bad = |why: String| TrainError::Resume(format!("{}: {why}", path.display()));
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TrainError::Resume(format!(
                "no checkpoint in {}: a run writes {FILE} at the end of its first epoch (or when interrupted)",
                dir.display()
            )));
        }
        Err(e) => return Err(TrainError::Io(path, e)),
    };
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not a checkpoint ({e})")))?;
    let json = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| bad("a safetensors file but not an lpn checkpoint (no training state in it)".into()))?;
    // The format first: an older layout is refused for what it is, not for
    // whichever field it lacks.
    #[derive(Deserialize)]
    struct Format {
        format: u32,
    }
    let format: Format = serde_json::from_str(json).map_err(|e| bad(format!("its training state cannot be read ({e})")))?;
    if format.format != FORMAT {
        return Err(bad(format!(
            "written in checkpoint format {}, this lpnc reads format {FORMAT}; start the run again without --resume",
            format.format
        )));
    }
    let state: State = serde_json::from_str(json).map_err(|e| bad(format!("its training state cannot be read ({e})")))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| bad(format!("its tensors cannot be read ({e})")))?;
    Ok(Checkpoint { state, tensors })
}

pub const FORMAT_VERSION: u32 = FORMAT;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_of_one_file_at_once_never_share_a_temporary_file() {
        // Two runs into one folder once failed here on a shared `NAME.tmp`: one
        // renamed it away while the other was still writing it.
        let dir = std::env::temp_dir().join(format!("lpn-durable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("report.json");
        let writers: Vec<_> = (0..4u8)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        write_durably(&path, &[w; 4096]).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("a writer failed");
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() == 4096 && bytes.iter().all(|&b| b == bytes[0]), "a torn file");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 1, "temporary files left: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_digest_read_in_pieces_is_the_digest_of_its_bytes() {
        // Over two pieces of 1 MiB and a bit, so the state carries across reads.
        let bytes: Vec<u8> = (0..(2 << 20) + 77u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let path = std::env::temp_dir().join(format!("lpn-digest-{}", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(digest_file(&path).unwrap(), digest(&bytes));
        assert_eq!(digest(b""), "cbf29ce484222325");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn the_run_digest_ignores_comments_and_layout_and_names_what_changed() {
        let base = "model m {\n  input [1, 32]\n  conv(out=1, k=9)\n}\ndata sines(n=20)\ntrain {\n  epochs = 2\n}\n";
        let of = |s: &str| {
            let (_, checked) = crate::check_source(s, Path::new("."));
            RunDigest::of(&checked.program.unwrap()).unwrap()
        };
        let reference = of(base);
        let commented = "// header\nmodel m {   // the model\n  input [1, 32]\n\n  conv(out=1,   k=9)  // one layer\n}\ndata sines(n=20)\ntrain { epochs = 2 }\n";
        assert_eq!(reference.changes(&of(commented)), Vec::<String>::new());
        assert_eq!(reference.changes(&of(&base.replace("k=9", "k=7"))), ["the model section changed"]);
        assert_eq!(reference.changes(&of(&base.replace("n=20", "n=21"))), ["the data section changed"]);
        assert_eq!(reference.changes(&of(&base.replace("epochs = 2", "epochs = 3"))), ["the train section changed"]);
    }
}
