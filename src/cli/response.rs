//! `lpnc response`: the response plot of a trained model's band-constrained layers.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::{HAS_ERRORS, OK};

pub fn response(path: Option<&Path>, weights: &Path, out: &Path) -> ExitCode {
    let program = match super::predict::program_for(path, weights) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let panels = match lpn::train::response::panels(&program, weights) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(HAS_ERRORS);
        }
    };
    let report = lpn::train::response::report_next_to(weights);
    match super::plot::draw(&panels, report.as_ref(), out) {
        Ok(()) => {
            say!("wrote {} ({} layer(s){})", out.display(), panels.len(), if report.is_some() { ", ρ per epoch" } else { "" });
            for panel in &panels {
                if let Some(note) = panel.cap_note() {
                    say!("{}: {note}", panel.layer);
                }
            }
            ExitCode::from(OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(HAS_ERRORS)
        }
    }
}
