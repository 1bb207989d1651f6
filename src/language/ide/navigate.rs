//! Go to definition (a phase line's layer name → the layer in the model)
//! and the outline of a file (document symbols: sections, layers with their
//! checked names, settings, phases).

use crate::language::ast::{self, SectionBody, Span, Stmt};
use crate::language::ide::Analysis;
use crate::language::ide::locate::{Site, site_at};
use crate::language::ir::{Layer, Model};

/// Where the thing at `offset` is defined: for a phase line's layer name
/// (`conv1 @freeze`), the layer of the model it names; for an annotation
/// on that line, the same constraint on the model's layer, if it has one.
pub fn definition(analysis: &Analysis, offset: usize) -> Option<Span> {
    let model = analysis.model.as_ref()?;
    match site_at(&analysis.file, offset)? {
        Site::Layer { layer, in_phase: true } => Some(named(model, &layer.name.name)?.span),
        Site::Annotation { annotation, layer, in_phase: true } => {
            let target = named(model, &layer.name.name)?;
            let family = &annotation.name.name;
            Some(target.constraints.iter().find(|c| c.family.name() == family).map(|c| c.span).unwrap_or(target.span))
        }
        Site::Section(_)
        | Site::Layer { in_phase: false, .. }
        | Site::Annotation { in_phase: false, .. }
        | Site::Param { .. }
        | Site::Entry { .. }
        | Site::Choice { .. } => None,
    }
}

/// The first layer of that name, as the checker's phase lookup finds it.
fn named<'m>(model: &'m Model, name: &str) -> Option<&'m Layer> {
    model.walk().into_iter().find(|l| l.name == name)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolKind {
    Section,
    Input,
    Layer,
    /// `repeat` and `residual`.
    Structure,
    Setting,
    Phase,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Symbol {
    pub name: String,
    pub detail: Option<String>,
    pub kind: SymbolKind,
    /// The whole statement.
    pub span: Span,
    /// The name, which the editor selects.
    pub selection: Span,
    pub children: Vec<Symbol>,
}

/// The outline: one symbol per section, with its statements inside.
pub fn symbols(analysis: &Analysis) -> Vec<Symbol> {
    let model = analysis.model.as_ref();
    let mut out = Vec::new();
    for section in &analysis.file.sections {
        let name = match &section.name {
            Some(name) => format!("{} {}", section.keyword.name, name.name),
            None => section.keyword.name.clone(),
        };
        let (children, detail) = match &section.body {
            SectionBody::Block(block) => (block_symbols(block, model), None),
            SectionBody::Inline(value) => (Vec::new(), Some(analysis.source[value.span.start..value.span.end].to_string())),
        };
        out.push(Symbol { name, detail, kind: SymbolKind::Section, span: section.span, selection: section.keyword.span, children });
    }
    out
}

fn block_symbols(block: &ast::Block, model: Option<&Model>) -> Vec<Symbol> {
    block.stmts.iter().filter_map(|stmt| stmt_symbol(stmt, model)).collect()
}

fn stmt_symbol(stmt: &Stmt, model: Option<&Model>) -> Option<Symbol> {
    let symbol = match stmt {
        Stmt::Error { .. } => return None,
        Stmt::Input { span, .. } => leaf("input".into(), None, SymbolKind::Input, *span, *span),
        Stmt::Setting(s) => leaf(s.key.name.clone(), None, SymbolKind::Setting, s.span, s.key.span),
        Stmt::Named(named) => Symbol {
            name: format!("{} {}", named.kind.name, named.name.name),
            detail: None,
            kind: SymbolKind::Phase,
            span: named.span,
            selection: named.name.span,
            children: block_symbols(&named.block, model),
        },
        Stmt::Layer(layer) => layer_symbol(layer, model),
    };
    Some(symbol)
}

fn leaf(name: String, detail: Option<String>, kind: SymbolKind, span: Span, selection: Span) -> Symbol {
    Symbol { name, detail, kind, span, selection, children: Vec::new() }
}

/// A written layer, named as the checker names it (`conv1`) when it made
/// one layer of it, with its output shape; inside a `repeat`, each copy's name.
fn layer_symbol(layer: &ast::Layer, model: Option<&Model>) -> Symbol {
    let made: Vec<&Layer> = model.map(|m| m.walk().into_iter().filter(|l| l.span == layer.name.span).collect()).unwrap_or_default();
    let (name, detail) = match made.as_slice() {
        [one] => (one.name.clone(), Some(format!("{} → {}", layer.name.name, one.output))),
        [] => (layer.name.name.clone(), None),
        several => (layer.name.name.clone(), Some(several.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", "))),
    };
    let (kind, children) = match &layer.body {
        Some(body) => (SymbolKind::Structure, block_symbols(body, model)),
        None => (SymbolKind::Layer, Vec::new()),
    };
    Symbol { name, detail, kind, span: layer.span, selection: layer.name.span, children }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::check::FakeEnvironment;

    const SOURCE: &str = "model m {\n  input [1, 64]\n  conv(out=4, k=17) @lowpass(cutoff=0.2)\n  repeat 2 {\n    conv(k=3)\n  }\n  conv(out=1, k=3)\n}\ndata sines()\ntrain {\n  batch = 8\n  phase warm {\n    epochs = 1\n    conv1 @lr(0.5) @lowpass(cutoff=0.2, mode=penalty)\n  }\n}\n";

    fn analyze(source: &str) -> Analysis {
        crate::language::ide::analyze(source, std::path::Path::new("."), &FakeEnvironment::with_memory(1 << 30))
    }

    #[test]
    fn a_phase_line_leads_to_its_layer_and_constraint() {
        let analysis = analyze(SOURCE);
        assert!(analysis.problems.is_empty(), "{:?}", analysis.problems);
        let at = |needle: &str| definition(&analysis, SOURCE.find(needle).unwrap() + 1);
        let conv = SOURCE.find("conv(out").unwrap();
        assert_eq!(at("conv1 @"), Some(Span::new(conv, conv + 4)));
        let lowpass = SOURCE.find("@lowpass(cutoff").unwrap();
        assert_eq!(at("lowpass(cutoff=0.2, mode").map(|s| s.start), Some(lowpass));
        assert_eq!(at("conv(k=3)"), None, "a model layer is its own definition");
    }

    #[test]
    fn the_outline_names_layers_as_the_checker_does() {
        let analysis = analyze(SOURCE);
        let outline = symbols(&analysis);
        let names: Vec<&str> = outline.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["model m", "data", "train"]);
        let model: Vec<(&str, Option<&str>)> = outline[0].children.iter().map(|s| (s.name.as_str(), s.detail.as_deref())).collect();
        assert_eq!(model, [("input", None), ("conv1", Some("conv → [4, 64]")), ("repeat", None), ("conv2", Some("conv → [1, 64]"))]);
        let repeat = &outline[0].children[2];
        assert_eq!(repeat.kind, SymbolKind::Structure);
        assert_eq!(repeat.children[0].detail.as_deref(), Some("repeat1.1.conv1, repeat1.2.conv1"));
        assert_eq!(outline[1].detail.as_deref(), Some("sines()"));
        let train: Vec<&str> = outline[2].children.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(train, ["batch", "phase warm"]);
        assert_eq!(outline[2].children[1].children[1].name, "conv1");
    }
}
