//! `phase NAME { … }` blocks of a train section: staged training. A phase has
//! its own length and optimizer, and lines `LAYER @annotation…` that change a
//! layer for the phase's duration: `@freeze`, `@lr(scale)`, or how one of the
//! layer's own constraints is enforced (`@lowpass(mode=project)`).

use crate::ast::{self, Arg, Stmt};
use crate::check::Ctx;
use crate::check::annotations::{self, LayerFacts};
use crate::check::params;
use crate::diagnostic::Problem;
use std::collections::HashMap;

use crate::ir::{Layer, Model, Op, Phase, PhaseLayer};
use crate::schema::{self, AnnotationRole, LayerKind, Mode, PHASE_SECTION};

/// The model's layers by name, looked up once per phase line.
struct Layers<'m> {
    by_name: HashMap<&'m str, &'m Layer>,
    /// Names of the layers with weights, made `'static` for diagnostics the
    /// first time a line names a layer that does not exist.
    known: Option<Vec<&'static str>>,
    /// Unknown names reported so far.
    unknown: usize,
}

/// A model with more layers with weights than this gets, for a name it does
/// not have, the closest names rather than the list of all (which would make
/// the output grow with the square of the file).
const LIST_ALL_UP_TO: usize = 40;

pub fn check_phases(ctx: &mut Ctx, block: &ast::Block, model: &Model) -> Vec<Phase> {
    let mut phases: Vec<Phase> = Vec::new();
    let mut seen: HashMap<&str, ast::Span> = HashMap::new();
    let walked = model.walk();
    let mut layers = Layers { by_name: HashMap::new(), known: None, unknown: 0 };
    for layer in walked.iter().rev() {
        // The first layer of a name wins, as a search from the front would find.
        layers.by_name.insert(layer.name.as_str(), layer);
    }
    for stmt in &block.stmts {
        let Stmt::Named(named) = stmt else { continue };
        if named.kind.name != "phase" {
            ctx.problems.push(Problem::UnknownChoice {
                span: named.kind.span,
                what: "block in a train section".into(),
                name: named.kind.name.clone(),
                known: vec!["phase"],
            });
            continue;
        }
        if let Some(first) = seen.get(named.name.name.as_str()) {
            ctx.problems.push(Problem::DuplicateParameter {
                span: named.name.span,
                first: *first,
                name: format!("phase {}", named.name.name),
            });
            continue;
        }
        seen.insert(named.name.name.as_str(), named.name.span);
        if let Some(phase) = check_phase(ctx, named, &walked, &mut layers) {
            phases.push(phase);
        }
    }
    phases
}

fn check_phase(ctx: &mut Ctx, named: &ast::NamedBlock, walked: &[&Layer], layers_by_name: &mut Layers) -> Option<Phase> {
    let mut args = Vec::new();
    let mut layers = Vec::new();
    for stmt in &named.block.stmts {
        match stmt {
            Stmt::Setting(s) => args.push(Arg { key: Some(s.key.clone()), value: s.value.clone(), span: s.span }),
            Stmt::Layer(l) => {
                if let Some(layer) = phase_layer(ctx, l, walked, layers_by_name) {
                    layers.push(layer);
                }
            }
            Stmt::Error { .. } => {}
            other => {
                let span = match other {
                    Stmt::Input { span, .. } => *span,
                    Stmt::Named(n) => n.span,
                    _ => named.span,
                };
                ctx.problems.push(Problem::MisplacedStatement {
                    span,
                    what: "this".into(),
                    section: "phase".into(),
                    help: "a phase holds `epochs = N`, optionally `optimizer = …`, and lines `LAYER @annotation…`".into(),
                });
            }
        }
    }
    let call = params::resolve_items(&PHASE_SECTION, &args, named.name.span, &format!("phase {}", named.name.name), &mut ctx.problems);
    let optimizer = call.entry("optimizer").and_then(super::data::optimizer);
    Some(Phase { name: named.name.name.clone(), epochs: call.int("epochs")? as usize, optimizer, layers })
}

fn phase_layer(ctx: &mut Ctx, l: &ast::Layer, walked: &[&Layer], layers: &mut Layers) -> Option<PhaseLayer> {
    let Some(&layer) = layers.by_name.get(l.name.name.as_str()) else {
        // Diagnostics list known names as `&'static str`; layer names are made
        // per file, so this (rare) error path keeps them for the process,
        // once per file.
        let all = layers.known.get_or_insert_with(|| {
            walked.iter().filter(|x| x.parameters > 0).map(|x| &*Box::leak(x.name.clone().into_boxed_str())).collect()
        });
        layers.unknown += 1;
        let known: Vec<&'static str> = if all.len() <= LIST_ALL_UP_TO {
            all.clone()
        } else {
            // The closest name, searched for the first hundred mistakes only
            // (each search reads every name), then the first names.
            let best = if layers.unknown <= 100 { crate::suggest::closest(&l.name.name, all) } else { None };
            match best {
                Some(best) => vec![best],
                None => all[..LIST_ALL_UP_TO].to_vec(),
            }
        };
        ctx.problems.push(Problem::UnknownChoice {
            span: l.name.span,
            what: "layer with weights".into(),
            name: l.name.name.clone(),
            known,
        });
        return None;
    };
    if l.args.is_some() || l.body.is_some() || l.count.is_some() {
        ctx.problems.push(Problem::BadStructure {
            span: l.span,
            reason: format!("in a phase, `{}` names a layer of the model: only annotations may follow it", layer.name),
            help: Some(format!("write `{} @freeze` or `{} @lr(0.1)`", layer.name, layer.name)),
        });
        return None;
    }
    let kernel = match &layer.op {
        Op::Conv(c) => Some(c.kernel.clone()),
        _ => None,
    };
    let kind = match &layer.op {
        Op::Conv(_) => LayerKind::Conv,
        Op::Linear { .. } => LayerKind::Linear,
        Op::BatchNorm { .. } => LayerKind::BatchNorm,
        _ => LayerKind::Activation,
    };
    let mut written = Vec::new();
    for annotation in &l.annotations {
        let Some(def) = schema::annotation(&annotation.name.name) else {
            ctx.problems.push(Problem::UnknownAnnotation {
                span: annotation.name.span,
                name: annotation.name.name.clone(),
                known: schema::annotation_names(),
            });
            continue;
        };
        if def.role == AnnotationRole::Init {
            ctx.problems.push(Problem::NotApplicable {
                span: annotation.span,
                layer_span: l.name.span,
                annotation: "init".into(),
                layer: layer.name.clone(),
                reason: "a phase starts from the weights the previous one left".into(),
                help: Some("put `@init` on the layer in the model".into()),
            });
            continue;
        }
        let call =
            params::resolve(&def.schema, annotation.args.as_ref(), annotation.span, &format!("@{}", def.schema.name), &mut ctx.problems);
        written.push((annotation, def, call));
    }
    let facts = LayerFacts {
        kind,
        layer: "layer",
        name: layer.name.clone(),
        span: l.name.span,
        weights: layer.parameters > 0,
        bias: matches!(&layer.op, Op::Conv(c) if c.bias) || matches!(&layer.op, Op::Linear { bias: true, .. }),
        kernel,
        dilated: matches!(&layer.op, Op::Conv(c) if c.dilation.iter().any(|&d| d > 1)),
        frozen_by: None,
    };
    let attached = annotations::check(ctx, &facts, &written);
    let mut constraints = Vec::new();
    for c in attached.constraints {
        let base = layer.constraints.iter().find(|b| b.family == c.family);
        match base {
            None => ctx.problems.push(Problem::NotApplicable {
                span: c.span,
                layer_span: l.name.span,
                annotation: c.family.name().into(),
                layer: layer.name.clone(),
                reason: "a phase can change how one of the layer's own constraints is enforced, not add a new one".into(),
                help: Some(format!("declare `@{}` on the layer in the model", c.family.name())),
            }),
            Some(b)
                if c.mode != b.mode
                    && (matches!(c.mode, Mode::Reparam | Mode::Freeze) || matches!(b.mode, Mode::Reparam | Mode::Freeze)) =>
            {
                ctx.problems.push(Problem::NotApplicable {
                    span: c.span,
                    layer_span: l.name.span,
                    annotation: c.family.name().into(),
                    layer: layer.name.clone(),
                    reason: format!("switching between mode={} and mode={} mid-training is not supported", b.mode, c.mode),
                    help: Some("phases switch among penalty, project and lagrangian".into()),
                })
            }
            Some(_) => constraints.push(c),
        }
    }
    Some(PhaseLayer { layer: layer.name.clone(), frozen: attached.frozen, lr_scale: attached.lr_scale, constraints })
}
