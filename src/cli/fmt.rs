//! `lpnc fmt`: files rewritten in the canonical layout of
//! `lpn::language::format`, or with `--check` a diff of what would change.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lpn::language::format::format_source;

use super::args::MessageFormat;
use super::{HAS_ERRORS, Loaded, OK, USAGE_OR_IO, load, print_problems};

pub fn fmt(files: &[PathBuf], check: bool) -> ExitCode {
    let mut status = OK;
    let mut unformatted = 0;
    for path in files {
        let outcome = match load(path) {
            Ok(loaded) => fmt_one(path, &loaded, check),
            Err(message) => {
                eprintln!("{message}");
                Outcome::Failed(USAGE_OR_IO)
            }
        };
        match outcome {
            Outcome::Formatted => {}
            Outcome::Unformatted => {
                unformatted += 1;
                status = status.max(HAS_ERRORS);
            }
            Outcome::Failed(code) => status = status.max(code),
        }
    }
    if check && unformatted > 0 {
        let files_word = if files.len() == 1 { "file" } else { "files" };
        eprintln!("{unformatted} of {} {files_word} not formatted (run `lpnc fmt` on them)", files.len());
    }
    ExitCode::from(status)
}

enum Outcome {
    /// Already formatted, or now rewritten.
    Formatted,
    /// Not formatted, and `--check` left it so.
    Unformatted,
    Failed(u8),
}

fn fmt_one(path: &Path, loaded: &Loaded, check: bool) -> Outcome {
    let formatted = match format_source(&loaded.source) {
        Ok(formatted) => formatted,
        Err(problems) => {
            print_problems(&problems, loaded, MessageFormat::Human);
            eprintln!("error: {} has syntax errors; it was left unchanged", loaded.display);
            return Outcome::Failed(HAS_ERRORS);
        }
    };
    let stdin = path == Path::new("-");
    if check {
        if formatted == loaded.source {
            return Outcome::Formatted;
        }
        let diff = similar::TextDiff::from_lines(&loaded.source, &formatted);
        let (old, new) = (loaded.display.clone(), format!("{} (formatted)", loaded.display));
        say_raw!("{}", diff.unified_diff().context_radius(3).header(&old, &new));
        return Outcome::Unformatted;
    }
    if stdin {
        say_raw!("{formatted}");
        return Outcome::Formatted;
    }
    if formatted == loaded.source {
        return Outcome::Formatted;
    }
    match write_atomically(path, &formatted) {
        Ok(()) => Outcome::Formatted,
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", loaded.display);
            Outcome::Failed(USAGE_OR_IO)
        }
    }
}

/// Writes `text` to a temporary file next to `path` and renames it over
/// `path`: a crash leaves either the old file or the new one, never half of
/// one. The file keeps its permissions; a symbolic link keeps pointing at
/// the file, which is what gets replaced.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let target = std::fs::canonicalize(path)?;
    let permissions = std::fs::metadata(&target)?.permissions();
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = target.with_file_name(format!(".{name}.lpnc-fmt-{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::set_permissions(&temporary, permissions)?;
        std::fs::rename(&temporary, &target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}
