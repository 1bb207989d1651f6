//! The language: everything `lpnc check` needs, and no tensors. Source text
//! is parsed (`syntax`, grammar in `grammar/lpn.pest`) into a spanned `ast`,
//! checked against the vocabulary (`schema`) by `check`, which collects every
//! `diagnostic` and produces the validated `ir`; `render` turns diagnostics
//! into miette reports or JSON; `format` prints a parsed file back in the
//! canonical layout of `lpnc fmt`.

pub mod ast;
pub mod check;
pub mod codes;
pub mod confusables;
pub mod diagnostic;
pub mod format;
pub mod ide;
pub mod inspect;
pub mod ir;
pub mod overrides;
pub mod render;
pub mod schema;
pub mod shape;
pub mod suggest;
pub mod syntax;
