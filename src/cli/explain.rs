//! `lpnc explain`: a code, a name of the language, the list of codes, or the
//! whole reference.

use std::io::Write;
use std::process::ExitCode;

use lpn::language::diagnostic::CODES;
use lpn::language::{codes, schema};

use super::{OK, USAGE_OR_IO};

pub fn explain(what: &str) -> ExitCode {
    if what == "reference" {
        say_raw!("{}", schema::reference_markdown());
        return ExitCode::from(OK);
    }
    if what == "list" {
        for (code, title) in CODES {
            say!("{code}  {title}");
        }
        return ExitCode::from(OK);
    }
    if let Some(text) = codes::explanation(what) {
        say_raw!("{text}");
        return ExitCode::from(OK);
    }
    if let Some(text) = schema::describe(what) {
        say_raw!("{text}");
        return ExitCode::from(OK);
    }
    let mut known: Vec<&str> = CODES.iter().map(|(c, _)| *c).collect();
    known.extend(schema::layer_names());
    known.extend(schema::annotation_names());
    eprintln!("error: nothing is called `{what}`");
    // A look-alike or invisible character: name it, and try the name in ASCII.
    let stray = what.char_indices().find(|&(_, c)| lpn::language::confusables::is_suspicious(c));
    let spelt = stray.and_then(|(at, _)| lpn::language::confusables::ascii_spelling(what, at)).map(|(_, word)| word);
    if let Some((_, c)) = stray {
        eprintln!("note: it contains {}", lpn::language::confusables::describe(c));
    }
    if let Some(best) = spelt.as_deref().filter(|w| known.contains(w)).or_else(|| lpn::language::suggest::closest(what, &known)) {
        eprintln!("help: did you mean `{best}`?");
    }
    eprintln!("help: `lpnc explain list` lists every code; names of layers, annotations, data sources, optimizers and losses work too");
    ExitCode::from(USAGE_OR_IO)
}
