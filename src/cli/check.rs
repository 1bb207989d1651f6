//! `lpnc check` and `lpnc inspect`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lpn::language::inspect;

use super::args::MessageFormat;
use super::{HAS_ERRORS, OK, USAGE_OR_IO, load, print_problems};

pub fn check(files: &[PathBuf], format: MessageFormat) -> ExitCode {
    let mut status = OK;
    let (mut errors, mut warnings, mut unread) = (0, 0, 0);
    for path in files {
        let loaded = match load(path) {
            Ok(l) => l,
            Err(message) => {
                eprintln!("{message}");
                status = USAGE_OR_IO;
                unread += 1;
                continue;
            }
        };
        let (_, checked) = lpn::check_source(&loaded.source, &loaded.base_dir);
        print_problems(&checked.problems, &loaded, format);
        let e = checked.problems.iter().filter(|p| p.is_error()).count();
        errors += e;
        warnings += checked.problems.len() - e;
        if e > 0 && status == OK {
            status = HAS_ERRORS;
        }
    }
    if matches!(format, MessageFormat::Human) {
        let files_word = if files.len() == 1 { "file" } else { "files" };
        if unread == 0 {
            eprintln!("checked {} {files_word}: {errors} error(s), {warnings} warning(s)", files.len());
        } else {
            // A file that could not be read was not checked: say so, rather
            // than "0 error(s)" for it.
            eprintln!(
                "checked {} of {} {files_word} ({unread} could not be read): {errors} error(s), {warnings} warning(s)",
                files.len() - unread,
                files.len()
            );
        }
    }
    ExitCode::from(status)
}

pub fn inspect_file(path: &Path) -> ExitCode {
    let loaded = match load(path) {
        Ok(l) => l,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(USAGE_OR_IO);
        }
    };
    let (_, checked) = lpn::check_source(&loaded.source, &loaded.base_dir);
    print_problems(&checked.problems, &loaded, MessageFormat::Human);
    match checked.program {
        Some(program) => {
            say!("model {}", program.model.name);
            say_raw!("{}", inspect::table(&program.model));
            ExitCode::from(OK)
        }
        None => ExitCode::from(HAS_ERRORS),
    }
}
