//! `lpnc train FILE --set KEY=VALUE`: settings of the data and train
//! sections (and of a phase, `phase.NAME.epochs=…`) given on the command
//! line, written into the syntax tree in place of the file's, so the one
//! checker types and ranges them as it does the file's own lines.
//!
//! Each override's text is placed after the file's (`Placed`), and the spans
//! of what it holds point there: a diagnostic about an override is told
//! apart by its span and shown with the override as its own source.

use crate::language::ast::{Block, File, Ident, Section, SectionBody, Setting, Span, Stmt, Value};
use crate::language::diagnostic::Problem;
use crate::language::suggest;

/// Where an override's text lies: from `offset` in the numbering of spans
/// that continues after the file's.
#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    pub text: String,
    pub offset: usize,
}

/// Places each override after the file (`source_len` bytes) and the ones
/// before it, a byte apart so no span touches two.
pub fn place(overrides: &[String], source_len: usize) -> Vec<Placed> {
    let mut offset = source_len + 1;
    overrides
        .iter()
        .map(|text| {
            let placed = Placed { text: text.clone(), offset };
            offset += text.len() + 1;
            placed
        })
        .collect()
}

/// The override a span points into, if any.
pub fn containing(placed: &[Placed], span: Span) -> Option<&Placed> {
    placed.iter().find(|p| span.start >= p.offset && span.start <= p.offset + p.text.len())
}

/// Writes every override into `file`; the problems of those that cannot be.
pub fn apply(file: &mut File, placed: &[Placed]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for p in placed {
        let whole = Span::new(p.offset, p.offset + p.text.len());
        match crate::language::syntax::parse_override(&p.text, p.offset) {
            Ok((key, value)) => {
                if let Err(problem) = apply_one(file, &key, value, whole) {
                    problems.push(*problem);
                }
            }
            Err(problem) => problems.push(*problem),
        }
    }
    problems
}

const TARGETS: &[&str] = &["data", "train", "phase"];

fn apply_one(file: &mut File, key: &[Ident], value: Value, whole: Span) -> Result<(), Box<Problem>> {
    let bad = |span: Span, reason: String, help: Option<String>| Box::new(Problem::BadOverride { span, reason, help });
    let form = "write `--set SECTION.SETTING=VALUE` (`train.epochs=50`, `data.val_split=0`) or `--set phase.NAME.SETTING=VALUE`";
    match key {
        [section, setting] if section.name == "data" || section.name == "train" => {
            set(section_block(file, section, whole), setting, value, whole);
            Ok(())
        }
        [phase, name, setting] if phase.name == "phase" => {
            let train = Ident { name: "train".into(), span: phase.span };
            let block = section_block(file, &train, whole);
            let phases: Vec<&str> = block
                .stmts
                .iter()
                .filter_map(|s| match s {
                    Stmt::Named(n) if n.kind.name == "phase" => Some(n.name.name.as_str()),
                    _ => None,
                })
                .collect();
            let help = match suggest::closest(&name.name, &phases) {
                Some(best) => Some(format!("did you mean `{best}`?")),
                None if phases.is_empty() => Some("the train section has no phases".into()),
                None => Some(format!("its phases: {}", phases.join(", "))),
            };
            let Some(named) = block.stmts.iter_mut().find_map(|s| match s {
                Stmt::Named(n) if n.kind.name == "phase" && n.name.name == name.name => Some(n),
                _ => None,
            }) else {
                return Err(bad(name.span, format!("the train section has no phase `{}`", name.name), help));
            };
            set(&mut named.block, setting, value, whole);
            Ok(())
        }
        [first, ..] if !TARGETS.contains(&first.name.as_str()) => {
            let help = match suggest::closest(&first.name, TARGETS) {
                Some(best) => format!("did you mean `{best}`? {form}"),
                None => form.to_string(),
            };
            Err(bad(first.span, format!("`--set` cannot change `{}`: only the data and train sections and phases", first.name), Some(help)))
        }
        _ => Err(bad(whole, "this `--set` names no setting".into(), Some(form.into()))),
    }
}

/// The block of the file's first section `keyword` (a `data SOURCE` line
/// becomes `data { train = SOURCE }`; a section the file lacks is added).
fn section_block<'f>(file: &'f mut File, keyword: &Ident, whole: Span) -> &'f mut Block {
    let index = match file.sections.iter().position(|s| s.keyword.name == keyword.name) {
        Some(i) => i,
        None => {
            let body = SectionBody::Block(Block { stmts: Vec::new(), span: whole });
            file.sections.push(Section { keyword: keyword.clone(), name: None, body, span: whole });
            file.sections.len() - 1
        }
    };
    let section = &mut file.sections[index];
    if let SectionBody::Inline(value) = &section.body {
        let key = Ident { name: "train".into(), span: value.span };
        let setting = Setting { key, value: value.clone(), span: value.span };
        section.body = SectionBody::Block(Block { stmts: vec![Stmt::Setting(setting)], span: section.span });
    }
    match &mut section.body {
        SectionBody::Block(block) => block,
        SectionBody::Inline(_) => unreachable!("made a block above"),
    }
}

/// Replaces the block's `key = …` lines with the override's.
fn set(block: &mut Block, key: &Ident, value: Value, whole: Span) {
    block.stmts.retain(|s| !matches!(s, Stmt::Setting(s) if s.key.name == key.name));
    block.stmts.push(Stmt::Setting(Setting { key: key.clone(), value, span: whole }));
}
