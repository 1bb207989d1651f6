//! Hover: what the checker knows about the thing under the cursor, in
//! Markdown. A layer: its output shape, parameter count and the schema's
//! one-line doc; a constraint: its family and mode, the band edges in force,
//! λ_min and the tolerances that are feasible; a parameter: type, default,
//! range and doc. On a diagnostic's span, its code's long explanation
//! (`lpnc explain CODE`) follows.

use crate::language::ast::{self, Span};
use crate::language::diagnostic::{CODES, fmt_num};
use crate::language::ide::locate::{Site, covers, site_at};
use crate::language::ide::{Analysis, first_sentence};
use crate::language::ir::{Constraint, Layer, Model};
use crate::language::schema::{self, AnnotationRole, DATA_SECTION, Mode, Param, Schema, TRAIN_SECTION};

#[derive(Clone, Debug, PartialEq)]
pub struct Hover {
    /// What the text is about (the editor highlights it).
    pub span: Span,
    pub markdown: String,
}

pub fn hover(analysis: &Analysis, offset: usize) -> Option<Hover> {
    let site = site_at(&analysis.file, offset).and_then(|site| describe(analysis, site));
    let explained = explanations(analysis, offset);
    match (site, explained) {
        (Some(mut hover), Some((_, text))) => {
            hover.markdown.push_str(&format!("\n\n---\n\n{text}"));
            Some(hover)
        }
        (Some(hover), None) => Some(hover),
        (None, Some((span, text))) => Some(Hover { span, markdown: text }),
        (None, None) => None,
    }
}

fn describe(analysis: &Analysis, site: Site) -> Option<Hover> {
    let model = analysis.model.as_ref();
    let (span, markdown) = match site {
        Site::Section(section) => (section.keyword.span, section_text(&section.keyword.name)),
        Site::Layer { layer, in_phase: false } => (layer.name.span, layer_text(layer, model)),
        Site::Layer { layer, in_phase: true } => (layer.name.span, phase_layer_text(&layer.name.name, model?)),
        Site::Annotation { annotation, layer, in_phase } => {
            (annotation.name.span, annotation_text(annotation, if in_phase { None } else { instances(model, layer) }))
        }
        Site::Param { schema, key } => (key.span, param_text(schema.param(&key.name)?, schema)),
        Site::Entry { table, name, span } => {
            let entry = schema::find(table.entries(), name)?;
            (span, format!("**{}** — {}\n\n{}", entry.name, table.what(), entry.summary))
        }
        Site::Choice { schema, param, name, span } => (span, choice_text(schema, param, name)?),
    };
    Some(Hover { span, markdown })
}

/// The checked layers made from one written layer (several inside `repeat`).
fn instances<'m>(model: Option<&'m Model>, layer: &ast::Layer) -> Option<Vec<&'m Layer>> {
    let found: Vec<&Layer> = model?.walk().into_iter().filter(|l| l.span == layer.name.span).collect();
    (!found.is_empty()).then_some(found)
}

fn section_text(keyword: &str) -> String {
    match keyword {
        "data" => format!("**data** — section\n\n{}", DATA_SECTION.summary),
        "train" => format!("**train** — section\n\n{}", TRAIN_SECTION.summary),
        _ => "**model** — section\n\nThe network: `input [...]`, then one layer per line, from input to output.".into(),
    }
}

fn layer_text(layer: &ast::Layer, model: Option<&Model>) -> String {
    let mut text = match schema::layer(&layer.name.name) {
        Some(def) => format!("**{}** — layer\n\n{}", def.schema.name, first_sentence(def.schema.summary)),
        None => format!("**{}** — not a layer", layer.name.name),
    };
    match instances(model, layer) {
        Some(found) => {
            text.push_str("\n\n");
            text.push_str(&found.iter().map(|l| instance_line(l)).collect::<Vec<_>>().join("\n"));
        }
        None => text.push_str("\n\n_Output shape and parameters: shown once the model section checks without errors._"),
    }
    text
}

/// `` - `conv1` (conv1d 1→32 k=9): output `[32, 150]`, 320 parameters ``
fn instance_line(layer: &Layer) -> String {
    format!("- `{}` ({}): output `{}`, {} parameters", layer.name, layer.op.describe(), layer.output, layer.parameters)
}

fn phase_layer_text(name: &str, model: &Model) -> String {
    match model.walk().into_iter().find(|l| l.name == name) {
        Some(layer) => format!("**{name}** — layer of model `{}`\n\n{}", model.name, instance_line(layer)),
        None => format!("**{name}** — no layer of model `{}` has this name", model.name),
    }
}

fn annotation_text(annotation: &ast::Annotation, layers: Option<Vec<&Layer>>) -> String {
    let Some(def) = schema::annotation(&annotation.name.name) else {
        return format!("**@{}** — not an annotation", annotation.name.name);
    };
    let mut text = format!("**@{}** — annotation\n\n{}", def.schema.name, first_sentence(def.schema.summary));
    if let AnnotationRole::Constraint { default_mode, .. } = def.role {
        let constraints: Vec<(&Layer, &Constraint)> = layers
            .unwrap_or_default()
            .into_iter()
            .filter_map(|l| l.constraints.iter().find(|c| c.span == annotation.span).map(|c| (l, c)))
            .collect();
        match constraints.first() {
            Some((_, c)) => text.push_str(&format!("\n\nmode={}: {}", c.mode, c.mode.summary())),
            None => text.push_str(&format!("\n\ndefault mode={default_mode}: {}", default_mode.summary())),
        }
        for (layer, constraint) in constraints {
            text.push_str(&constraint_figures(layer, constraint));
        }
    }
    text
}

/// Band edges, λ_min and the feasible tolerance of one checked constraint.
fn constraint_figures(layer: &Layer, c: &Constraint) -> String {
    let mut text = format!("\n\n`{}`:", layer.name);
    let fs = c.band().and_then(|b| b.fs);
    for edges in c.edges() {
        text.push_str(&format!("\n- band edges on {} taps: {}", edges.taps, edges.describe(fs)));
    }
    // `tol` acts only in some modes (a penalty has none).
    let tol_acts = schema::annotation(c.family.name())
        .and_then(|a| a.schema.param("tol"))
        .is_some_and(|p| p.modes.is_empty() || p.modes.contains(&c.mode));
    let tol = if tol_acts { format!("tol = {} here", fmt_num(c.tol)) } else { format!("tol does not act in mode={}", c.mode) };
    match c.lambda_min() {
        Some(bound) => text.push_str(&format!(
            "\n- λ_min = {}: no kernel of this shape has ρ below it, so tol ≥ {} is feasible ({tol})",
            fmt_num(bound),
            fmt_num(bound)
        )),
        None => text.push_str(&format!("\n- {tol}")),
    }
    if let Some(dimension) = c.admissible_dimension().filter(|_| c.mode.keeps_weight_in_set()) {
        text.push_str(&format!("\n- admissible dimension: {dimension} independent kernels have ρ ≤ tol"));
    }
    text
}

fn param_text(param: &Param, owner: &Schema) -> String {
    let mut facts = format!("{}; default: {}", param.ty, param.default);
    if let Some(range) = param.ty.range() {
        facts.push_str(&format!("; {range}"));
    }
    if !param.modes.is_empty() {
        facts.push_str(&format!("; used in mode={}", param.modes.iter().map(|m| m.name()).collect::<Vec<_>>().join("|")));
    }
    format!("**{}** — parameter of `{}`\n\n{facts}\n\n{}", param.name, owner.name, param.doc)
}

fn choice_text(owner: &Schema, param: &str, name: &str) -> Option<String> {
    if param == "mode" {
        let mode = Mode::from_name(name)?;
        return Some(format!("**mode={mode}**\n\n{}", mode.summary()));
    }
    let param = owner.param(param)?;
    Some(format!("**{name}** — a value of `{}`\n\n{}", param.name, param.doc))
}

/// The long explanations of the codes of the diagnostics whose primary span
/// holds `offset`, and the first such span.
fn explanations(analysis: &Analysis, offset: usize) -> Option<(Span, String)> {
    let mut span = None;
    let mut texts: Vec<String> = Vec::new();
    for problem in &analysis.problems {
        let diagnostic = problem.to_diagnostic();
        let Some(label) = diagnostic.labels.first().filter(|l| covers(l.span, offset)) else { continue };
        let title = CODES.iter().find(|(code, _)| *code == diagnostic.code).map(|(_, t)| *t).unwrap_or_default();
        let body = crate::language::codes::explanation(diagnostic.code).unwrap_or_default();
        let text = format!("**{}**: {title} (`lpnc explain {}`)\n\n{}", diagnostic.code, diagnostic.code, body.trim_end());
        if !texts.contains(&text) {
            texts.push(text);
        }
        span.get_or_insert(label.span);
    }
    Some((span?, texts.join("\n\n---\n\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::check::FakeEnvironment;

    fn analyze(source: &str) -> Analysis {
        crate::language::ide::analyze(source, std::path::Path::new("."), &FakeEnvironment::with_memory(1 << 30))
    }

    fn hover_at(analysis: &Analysis, needle: &str) -> String {
        let offset = analysis.source.find(needle).expect("needle") + 1;
        hover(analysis, offset).expect("a hover").markdown
    }

    const SOURCE: &str = "model m {\n  input [1, 128]\n  repeat 2 {\n    conv(out=4, k=15) @lowpass(cutoff=0.2)\n  }\n}\ndata sines()\ntrain {\n  phase warm {\n    epochs = 1\n    repeat1.1.conv1 @freeze\n  }\n}\n";

    #[test]
    fn a_layer_shows_every_instance_with_shape_and_parameters() {
        let analysis = analyze(SOURCE);
        let text = hover_at(&analysis, "conv(");
        assert!(text.starts_with("**conv** — layer\n\nConvolution"), "{text}");
        // 1→4 channels, 15 taps: 4·1·15 weights + 4 biases = 64; then 4→4: 4·4·15 + 4 = 244.
        assert!(text.contains("- `repeat1.1.conv1` (conv1d 1→4 k=15): output `[4, 128]`, 64 parameters"), "{text}");
        assert!(text.contains("- `repeat1.2.conv1` (conv1d 4→4 k=15): output `[4, 128]`, 244 parameters"), "{text}");
        let text = hover_at(&analysis, "repeat1.1.conv1 @");
        assert!(text.contains("`repeat1.1.conv1` (conv1d 1→4 k=15)"), "{text}");
    }

    #[test]
    fn a_constraint_shows_its_mode_edges_and_lambda_min() {
        let analysis = analyze(SOURCE);
        let text = hover_at(&analysis, "lowpass");
        let layer = analysis.model.as_ref().unwrap().walk().into_iter().find(|l| l.name == "repeat1.1.conv1").unwrap();
        let c = &layer.constraints[0];
        assert!(text.contains("mode=project: projects the weight"), "{text}");
        // The same figures `lpnc inspect` prints (k = 15: stopband from 0.2 + 0.22).
        assert!(text.contains("band edges on 15 taps: stopband ν ≥ 0.42, passband none (transition 0.44)"), "{text}");
        let bound = fmt_num(c.lambda_min().unwrap());
        assert!(
            text.contains(&format!(
                "λ_min = {bound}: no kernel of this shape has ρ below it, so tol ≥ {bound} is feasible (tol = 0.01 here)"
            )),
            "{text}"
        );
        assert!(text.contains("admissible dimension: 4 independent kernels"), "{text}");
    }

    #[test]
    fn a_penalty_says_that_tol_does_not_act() {
        let analysis = analyze("model m {\n  input [1, 64]\n  conv(out=1, k=17) @lowpass(cutoff=0.2, mode=penalty)\n}\ndata sines()\n");
        let text = hover_at(&analysis, "lowpass");
        assert!(text.contains("is feasible (tol does not act in mode=penalty)"), "{text}");
    }

    #[test]
    fn parameters_entries_and_modes_read_from_the_schema() {
        let source = "model m {\n  input [1, 64]\n  conv(out=4, k=9) @lowpass(cutoff=0.2, mode=penalty)\n}\ndata sines(noise=0.1)\ntrain {\n  optimizer = adam(lr=1e-3)\n}\n";
        let analysis = analyze(source);
        let text = hover_at(&analysis, "cutoff");
        assert!(text.starts_with("**cutoff** — parameter of `lowpass`\n\na frequency; default: required"), "{text}");
        assert!(hover_at(&analysis, "penalty").contains("adds weight · violation to the loss"));
        assert!(hover_at(&analysis, "adam").starts_with("**adam** — optimizer"));
        assert!(hover_at(&analysis, "lr=").contains("parameter of `adam`"));
        assert!(hover_at(&analysis, "noise").contains("standard deviation of the added noise"));
    }

    #[test]
    fn a_diagnostic_brings_its_long_explanation() {
        let analysis = analyze("model m {\n  input [1, 64]\n  conv(out=4, k=9) @lowpas(cutoff=0.2)\n}\ndata sines()\n");
        let text = hover_at(&analysis, "lowpas");
        assert!(text.contains("not an annotation"), "{text}");
        assert!(text.contains("**E0020**: unknown annotation (`lpnc explain E0020`)\n\n# E0020: unknown annotation"), "{text}");
        // The model has an error: no shapes.
        assert!(hover_at(&analysis, "conv(").contains("once the model section checks"));
    }

    #[test]
    fn shapes_show_while_only_other_sections_have_errors() {
        // An `@init` file in the document's folder (a safetensors header, then
        // the data), and a data file that is missing.
        let header = br#"{"conv1.weight":{"dtype":"F32","shape":[4,1,9],"data_offsets":[0,144]}}"#;
        let mut weights = (header.len() as u64).to_le_bytes().to_vec();
        weights.extend_from_slice(header);
        weights.extend([0u8; 144]);
        let env = FakeEnvironment::with_memory(1 << 30).file("doc/w.safetensors", weights);
        let source = "model m {\n  input [1, 64]\n  conv(out=4, k=9) @init(file=\"w.safetensors\")\n}\ndata ucr(\"missing.csv\")\n";
        let analysis = crate::language::ide::analyze(source, std::path::Path::new("doc"), &env);
        let codes: Vec<&str> = analysis.problems.iter().map(|p| p.to_diagnostic().code).collect();
        assert_eq!(codes, ["E0050"]);
        // 4·1·9 weights + 4 biases.
        let text = hover_at(&analysis, "conv(");
        assert!(text.contains("- `conv1` (conv1d 1→4 k=9): output `[4, 64]`, 40 parameters"), "{text}");
    }
}
