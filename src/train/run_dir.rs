//! One run per folder. While a run writes into a folder it holds a lock file
//! there (`run.lock`: its pid, start time and command), so a second run into
//! the same folder is refused with the first one's pid instead of both
//! writing the same files. A run starts only in a folder without another
//! run's files, unless told to replace them (`--force`) or to continue them
//! (`--resume`): every file in a run folder belongs to one run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{TrainError, checkpoint};

pub const LOCK_FILE: &str = "run.lock";

/// The files a run leaves in its folder (`metrics.csv` is written by
/// `lpnc train`, not the library, but belongs to the run all the same).
pub const RUN_FILES: &[&str] = &["model.safetensors", "report.json", checkpoint::FILE, "metrics.csv"];

/// Who holds a folder's lock.
#[derive(Clone, Debug, PartialEq)]
pub struct Holder {
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub started: u64,
    pub command: String,
}

impl Holder {
    fn me() -> Holder {
        let started = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        Holder { pid: std::process::id(), started, command }
    }

    fn to_text(&self) -> String {
        format!("pid {}\nstarted {}\ncommand {}\n", self.pid, self.started, self.command)
    }

    fn parse(text: &str) -> Option<Holder> {
        let mut lines = text.lines();
        let pid = lines.next()?.strip_prefix("pid ")?.parse().ok()?;
        let started = lines.next()?.strip_prefix("started ")?.parse().ok()?;
        let command = lines.next()?.strip_prefix("command ")?.to_string();
        Some(Holder { pid, started, command })
    }

    /// Seconds since the holder started.
    pub fn age(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0).saturating_sub(self.started)
    }
}

/// Whether a process is still running. Where this cannot be told, it is
/// taken to be (a lock is then never taken over, only reported).
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(target_os = "linux")]
    {
        // A zombie (exited, not yet reaped by its parent) holds nothing.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// A held lock; dropping it releases the folder.
pub struct Lock {
    path: PathBuf,
    /// The lock this one replaced, left by a process that is gone.
    pub took_over: Option<Holder>,
}

impl Lock {
    /// Takes the folder's lock, or says which run holds it. A lock left by a
    /// process that no longer runs (killed with -9, a power cut) is taken over.
    pub fn acquire(dir: &Path) -> Result<Lock, TrainError> {
        let path = dir.join(LOCK_FILE);
        let io = |e| TrainError::Io(path.clone(), e);
        // The lock appears with its content at once: written under a private
        // name, then linked to `run.lock`, which fails if that exists.
        static TRIES: AtomicU64 = AtomicU64::new(0);
        let private = dir.join(format!(".{LOCK_FILE}.{}-{}", std::process::id(), TRIES.fetch_add(1, Ordering::Relaxed)));
        {
            let mut f = std::fs::File::create(&private).map_err(io)?;
            f.write_all(Holder::me().to_text().as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        let mut took_over = None;
        let result = loop {
            match std::fs::hard_link(&private, &path) {
                Ok(()) => break Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    match Holder::parse(&text) {
                        Some(holder) if !alive(holder.pid) && took_over.is_none() => {
                            let _ = std::fs::remove_file(&path);
                            took_over = Some(holder);
                        }
                        holder => break Err(TrainError::Locked { dir: dir.to_path_buf(), holder }),
                    }
                }
                Err(e) => break Err(io(e)),
            }
        };
        let _ = std::fs::remove_file(&private);
        result?;
        remove_stale_temporaries(dir);
        Ok(Lock { path, took_over })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Temporary files of writes that a killed process left half done
/// (`checkpoint::write_durably` names them `.NAME.tmp-PID-N`); only the lock's
/// holder writes in the folder, so none of them is still being written.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(checkpoint::TEMPORARY_MARK) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The files of a run already in `dir`.
pub fn run_files_in(dir: &Path) -> Vec<String> {
    RUN_FILES.iter().filter(|f| dir.join(f).exists()).map(|f| f.to_string()).collect()
}

/// Makes `dir` ready for a new run: refuses it if it holds another run's
/// files, unless `replace`, which removes them first (so nothing of the old
/// run is left beside the new one). Returns the files removed.
pub fn claim_for_new_run(dir: &Path, replace: bool) -> Result<Vec<String>, TrainError> {
    let found = run_files_in(dir);
    if found.is_empty() {
        return Ok(found);
    }
    if !replace {
        return Err(TrainError::RunExists { dir: dir.to_path_buf(), files: found });
    }
    for f in &found {
        let path = dir.join(f);
        std::fs::remove_file(&path).map_err(|e| TrainError::Io(path, e))?;
    }
    Ok(found)
}
