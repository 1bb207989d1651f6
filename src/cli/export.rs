//! `lpnc export`: trained weights as a file for another runtime (ONNX).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::ValueEnum;

use super::predict::runnable_for;
use super::{HAS_ERRORS, OK, USAGE_OR_IO};

/// The formats `lpnc export --format` writes.
#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// ONNX, opset 17, dynamic batch axis `batch`.
    Onnx,
}

/// `file` may be left out: the weights carry their .lpn source. Given, it
/// must be the model the weights were trained for (as for `lpnc predict`).
pub fn export(file: Option<&Path>, weights: &Path, format: ExportFormat, out: &Path) -> ExitCode {
    let runnable = match runnable_for(file, weights) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let model = runnable.model();
    let bytes = match format {
        ExportFormat::Onnx => lpn::model::export::onnx_from_weights(model, weights),
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(HAS_ERRORS);
        }
    };
    if let Err(e) = lpn::train::checkpoint::write_durably(out, &bytes) {
        eprintln!("error: cannot write the export: {e}");
        return ExitCode::from(USAGE_OR_IO);
    }
    say!(
        "wrote {} ({} bytes): ONNX opset {}, input `{}` [batch, {}], output `{}` [batch, {}]",
        out.display(),
        bytes.len(),
        lpn::model::export::onnx::OPSET,
        lpn::model::export::INPUT,
        join(&model.input.0),
        lpn::model::export::OUTPUT,
        join(&model.output.0),
    );
    ExitCode::from(OK)
}

fn join(dims: &[usize]) -> String {
    dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}
