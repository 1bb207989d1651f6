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

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{EpochReport, TrainError};
use crate::rng::Rng;

pub const FILE: &str = "checkpoint.safetensors";
const METADATA_KEY: &str = "lpn.checkpoint";
/// Bumped when the layout changes, so an old file is refused with a reason.
/// 2: Adam's step count per parameter (`optimizer_steps`), not one per run.
const FORMAT: u32 = 2;

/// The non-tensor part of a checkpoint.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct State {
    pub format: u32,
    pub model: String,
    /// Digest of the `.lpn` source the run was started from.
    pub source_digest: Option<String>,
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
}

/// A checkpoint read back: its state and its tensors by name.
pub struct Checkpoint {
    pub state: State,
    pub tensors: HashMap<String, Tensor>,
}

/// A short, stable digest of a source text (FNV-1a, 64 bits).
pub fn digest(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
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

/// Temporary file + flush + fsync + rename + fsync of the folder.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let io = |e| TrainError::Io(path.to_path_buf(), e);
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
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
