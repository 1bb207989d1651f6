//! What an editor asks of a `.lpn` file, answered on byte offsets with our own
//! plain types: hover, completion, go to definition, document symbols and
//! quick fixes. No protocol types here (`lpnc lsp`, in `src/cli/lsp/`, turns
//! these into the Language Server Protocol's), so every query is tested on a
//! string, without a server.

pub mod actions;
pub mod complete;
pub mod hover;
pub mod line_index;
pub mod locate;
pub mod navigate;

use std::path::Path;

use crate::language::ast;
use crate::language::check::Environment;
use crate::language::diagnostic::Problem;
use crate::language::ir::Model;

/// One version of a file, checked: what every query reads.
pub struct Analysis {
    pub source: String,
    pub file: ast::File,
    /// Every problem `lpnc check` reports for this text, in the same order.
    pub problems: Vec<Problem>,
    /// The checked model, for shapes and constraint figures: the program's,
    /// or, when only other sections have errors, the model section's alone.
    pub model: Option<Model>,
}

/// Checks `source` as `lpnc check` does (data paths from `base_dir`, files
/// through `env`).
pub fn analyze(source: &str, base_dir: &Path, env: &dyn Environment) -> Analysis {
    let (file, checked) = crate::language::check::check_source_with(source, base_dir, env);
    let model = match checked.program {
        Some(program) => Some(program.model),
        None => crate::language::check::check_model_only_with(source, base_dir, env).ok(),
    };
    Analysis { source: source.to_string(), file, problems: checked.problems, model }
}

/// The first sentence of a schema's summary: a one-line doc.
pub(crate) fn first_sentence(text: &str) -> &str {
    match text.find(". ") {
        Some(end) => &text[..=end],
        None => text,
    }
}
