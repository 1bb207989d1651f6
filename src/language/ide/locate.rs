//! What stands at a byte offset of the syntax tree: a section keyword, a
//! layer's name, an annotation, a parameter's name, a value that names
//! something. Hover and go-to-definition start here.

use crate::language::ast::{self, Args, Ident, Section, SectionBody, Span, Stmt, Value, ValueKind};
use crate::language::schema::{self, DATA_SECTION, PHASE_SECTION, ParamType, Schema, TRAIN_SECTION, Table};

/// One thing under the cursor.
#[derive(Clone, Copy, Debug)]
pub enum Site<'a> {
    /// `model`, `data` or `train`.
    Section(&'a Section),
    /// A layer's name in the model (`conv`), or a phase line's (`conv1`).
    Layer { layer: &'a ast::Layer, in_phase: bool },
    /// `@lowpass(…)`, on the name.
    Annotation { annotation: &'a ast::Annotation, layer: &'a ast::Layer, in_phase: bool },
    /// A parameter's or a setting's name, with the schema it belongs to.
    Param { schema: &'static Schema, key: &'a Ident },
    /// A name among a table's entries: `adam` in `optimizer = adam(…)`.
    Entry { table: Table, name: &'a str, span: Span },
    /// A name among a parameter's choices: `project` in `mode=project`.
    Choice { schema: &'static Schema, param: &'static str, name: &'a str, span: Span },
}

/// The innermost thing at `offset` (a span contains its start, and its end
/// too, so a cursor just after a name still finds it).
pub fn site_at(file: &ast::File, offset: usize) -> Option<Site<'_>> {
    file.sections.iter().find(|s| covers(s.span, offset)).and_then(|section| in_section(section, offset))
}

pub(crate) fn covers(span: Span, offset: usize) -> bool {
    span.start <= offset && offset <= span.end
}

fn in_section(section: &Section, offset: usize) -> Option<Site<'_>> {
    if covers(section.keyword.span, offset) {
        return Some(Site::Section(section));
    }
    let settings = section_schema(&section.keyword.name);
    match &section.body {
        SectionBody::Inline(value) => in_value(value, ParamType::Entry(Table::Source), offset),
        SectionBody::Block(block) => in_block(block, settings, false, offset),
    }
}

/// The settings a section's block takes (`model` has layers instead).
pub(crate) fn section_schema(keyword: &str) -> Option<&'static Schema> {
    match keyword {
        "data" => Some(&DATA_SECTION),
        "train" => Some(&TRAIN_SECTION),
        _ => None,
    }
}

fn in_block<'a>(block: &'a ast::Block, settings: Option<&'static Schema>, in_phase: bool, offset: usize) -> Option<Site<'a>> {
    let stmt = block.stmts.iter().find(|s| covers(stmt_span(s), offset))?;
    match stmt {
        Stmt::Input { .. } | Stmt::Error { .. } => None,
        Stmt::Setting(setting) => {
            let schema = settings?;
            if covers(setting.key.span, offset) {
                return Some(Site::Param { schema, key: &setting.key });
            }
            in_value(&setting.value, schema.param(&setting.key.name)?.ty, offset)
        }
        Stmt::Layer(layer) => in_layer(layer, in_phase, offset),
        Stmt::Named(named) => in_block(&named.block, Some(&PHASE_SECTION), true, offset),
    }
}

pub(crate) fn stmt_span(stmt: &Stmt) -> Span {
    match stmt {
        Stmt::Input { span, .. } | Stmt::Error { span } => *span,
        Stmt::Setting(s) => s.span,
        Stmt::Layer(l) => l.span,
        Stmt::Named(n) => n.span,
    }
}

fn in_layer(layer: &ast::Layer, in_phase: bool, offset: usize) -> Option<Site<'_>> {
    if covers(layer.name.span, offset) {
        return Some(Site::Layer { layer, in_phase });
    }
    if let Some(annotation) = layer.annotations.iter().find(|a| covers(a.span, offset)) {
        if covers(annotation.name.span, offset) || annotation.args.is_none() {
            return Some(Site::Annotation { annotation, layer, in_phase });
        }
        let def = schema::annotation(&annotation.name.name)?;
        return in_args(annotation.args.as_ref()?, &def.schema, offset);
    }
    if let Some(body) = layer.body.as_ref().filter(|b| covers(b.span, offset)) {
        return in_block(body, None, in_phase, offset);
    }
    let def = schema::layer(&layer.name.name)?;
    in_args(layer.args.as_ref()?, &def.schema, offset)
}

fn in_args<'a>(args: &'a Args, schema: &'static Schema, offset: usize) -> Option<Site<'a>> {
    let arg = args.items.iter().find(|a| covers(a.span, offset))?;
    let key = arg.key.as_ref()?;
    if covers(key.span, offset) {
        return Some(Site::Param { schema, key });
    }
    let param = schema.param(&key.name)?;
    match (&param.ty, &arg.value.kind) {
        (ParamType::Choice { .. } | ParamType::Padding, ValueKind::Ident(name)) if covers(arg.value.span, offset) => {
            Some(Site::Choice { schema, param: param.name, name, span: arg.value.span })
        }
        (ty, _) => in_value(&arg.value, *ty, offset),
    }
}

/// A value that names a table's entry, and the arguments of its call.
fn in_value(value: &Value, ty: ParamType, offset: usize) -> Option<Site<'_>> {
    let ParamType::Entry(table) = ty else { return None };
    match &value.kind {
        ValueKind::Ident(name) => Some(Site::Entry { table, name, span: value.span }),
        ValueKind::Call { name, .. } if covers(name.span, offset) => Some(Site::Entry { table, name: &name.name, span: name.span }),
        ValueKind::Call { name, args } => in_args(args, schema::find(table.entries(), &name.name)?, offset),
        // `warmup(…) then cosine(…)`: the part under the cursor.
        ValueKind::Chain(parts) => parts.iter().find(|part| covers(part.span, offset)).and_then(|part| in_value(part, ty, offset)),
        ValueKind::Number { .. } | ValueKind::Str(_) | ValueKind::List(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at<'a>(file: &'a ast::File, source: &str, needle: &str) -> Option<Site<'a>> {
        site_at(file, source.find(needle).expect("needle in source") + 1)
    }

    #[test]
    fn finds_layers_annotations_params_and_entries() {
        let source = "model m {\n  input [1, 64]\n  conv(out=4, k=9) @lowpass(cutoff=0.2, mode=penalty)\n}\ndata sines(noise=0.1)\ntrain {\n  optimizer = adam(lr=1e-3)\n  phase warm {\n    epochs = 2\n    conv1 @freeze\n  }\n}\n";
        let (file, _) = crate::language::syntax::parse(source);
        assert!(matches!(at(&file, source, "conv("), Some(Site::Layer { in_phase: false, .. })));
        assert!(matches!(at(&file, source, "lowpass"), Some(Site::Annotation { .. })));
        assert!(
            matches!(at(&file, source, "cutoff"), Some(Site::Param { schema, key }) if schema.name == "lowpass" && key.name == "cutoff")
        );
        assert!(matches!(at(&file, source, "penalty"), Some(Site::Choice { param: "mode", name: "penalty", .. })));
        assert!(matches!(at(&file, source, "out="), Some(Site::Param { schema, .. }) if schema.name == "conv"));
        assert!(matches!(at(&file, source, "sines"), Some(Site::Entry { table: Table::Source, name: "sines", .. })));
        assert!(matches!(at(&file, source, "noise"), Some(Site::Param { schema, .. }) if schema.name == "sines"));
        assert!(matches!(at(&file, source, "optimizer"), Some(Site::Param { schema, .. }) if schema.name == "train"));
        assert!(matches!(at(&file, source, "adam"), Some(Site::Entry { table: Table::Optimizer, .. })));
        assert!(matches!(at(&file, source, "lr="), Some(Site::Param { schema, .. }) if schema.name == "adam"));
        assert!(matches!(at(&file, source, "epochs"), Some(Site::Param { schema, .. }) if schema.name == "phase"));
        assert!(matches!(at(&file, source, "conv1"), Some(Site::Layer { in_phase: true, layer }) if layer.name.name == "conv1"));
        assert!(matches!(at(&file, source, "train {"), Some(Site::Section(_))));
        assert!(at(&file, source, "64]").is_none());
    }
}
