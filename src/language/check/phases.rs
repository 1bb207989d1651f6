//! `phase NAME { … }` blocks of a train section: staged training. A phase has
//! its own length and optimizer, and lines `LAYER @annotation…` that change a
//! layer for the phase's duration: `@freeze`, `@lr(scale)`, or how one of the
//! layer's own constraints is enforced (`@lowpass(mode=project)`).

use crate::language::ast::{self, Arg, Stmt};
use crate::language::check::Ctx;
use crate::language::check::annotations::{self, LayerFacts};
use crate::language::check::params::{self, Call};
use crate::language::diagnostic::Problem;
use std::collections::HashMap;

use crate::constraint::bands::{default_transition, freq_words};
use crate::language::diagnostic::fmt_num;
use crate::language::ir::{Constraint, DataSpec, Layer, Model, Op, Phase, PhaseLayer};
use crate::language::schema::{self, AnnotationDef, AnnotationRole, Band, LayerKind, Mode, PHASE_SECTION};

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

pub fn check_phases(ctx: &mut Ctx, block: &ast::Block, model: &Model, data: Option<(&DataSpec, ast::Span)>) -> Vec<Phase> {
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
        if let Some(phase) = check_phase(ctx, named, &walked, &mut layers, data) {
            phases.push(phase);
        }
    }
    phases
}

fn check_phase(
    ctx: &mut Ctx,
    named: &ast::NamedBlock,
    walked: &[&Layer],
    layers_by_name: &mut Layers,
    data: Option<(&DataSpec, ast::Span)>,
) -> Option<Phase> {
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
                    Stmt::Setting(_) | Stmt::Layer(_) | Stmt::Error { .. } => named.span,
                };
                ctx.problems.push(Problem::MisplacedStatement {
                    span,
                    what: "this".into(),
                    section: "phase".into(),
                    help: "a phase holds `epochs = N`, optionally `optimizer = …` and `schedule = …`, and lines `LAYER @annotation…`"
                        .into(),
                });
            }
        }
    }
    let call = params::resolve_items(&PHASE_SECTION, &args, named.name.span, &format!("phase {}", named.name.name), &mut ctx.problems);
    let optimizer = call.entry("optimizer").and_then(super::data::optimizer);
    let epochs = call.int("epochs")? as usize;
    let scope = super::schedule::Scope { epochs, what: format!("phase {}", named.name.name), data };
    let schedule = super::schedule::lower(ctx, &call, &scope);
    Some(Phase { name: named.name.name.clone(), epochs, optimizer, schedule, layers })
}

fn phase_layer(ctx: &mut Ctx, l: &ast::Layer, walked: &[&Layer], layers: &mut Layers) -> Option<PhaseLayer> {
    let Some(&layer) = layers.by_name.get(l.name.name.as_str()) else {
        unknown_layer(ctx, l, walked, layers);
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
    let kind = declared_kind(&layer.op);
    let first_problem = ctx.problems.len();
    let written = phase_annotations(ctx, l, layer);
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
        units: super::model::units_of(&layer.op),
        weight_shape: layer.op.weight_shape(),
    };
    let attached = annotations::check(ctx, &facts, &written);
    // Warnings the model's declaration already gave: a phase's band is the
    // model's (E0060 otherwise), so its edges were warned about there, and a
    // subspace at the same hard mode's tol is the same subspace.
    let repeated = |p: &Problem| match p {
        Problem::PassbandSwallowed { .. } | Problem::BandEdgeClamped { .. } => true,
        Problem::SmallSubspace { span, .. } => attached.constraints.iter().any(|c| {
            c.span == *span && layer.constraints.iter().any(|b| b.family == c.family && b.mode.keeps_weight_in_set() && same(b.tol, c.tol))
        }),
        _ => false,
    };
    let tail = ctx.problems.split_off(first_problem);
    ctx.problems.extend(tail.into_iter().filter(|p| !repeated(p)));
    let constraints = phase_constraints(ctx, l, layer, attached.constraints, &written, facts.kernel.as_deref().unwrap_or(&[]));
    check_set_in_force(ctx, layer, &constraints, &facts, first_problem);
    Some(PhaseLayer { layer: layer.name.clone(), frozen: attached.frozen, lr_scale: attached.lr_scale, constraints })
}

/// E0018 for a phase's layer name that names no layer with weights, with
/// the closest name (or the first ones).
fn unknown_layer(ctx: &mut Ctx, l: &ast::Layer, walked: &[&Layer], layers: &mut Layers) {
    // Diagnostics list known names as `&'static str`; layer names are made
    // per file, so they are interned for the process (see `interned`).
    let all = layers.known.get_or_insert_with(|| walked.iter().filter(|x| x.parameters > 0).map(|x| interned(&x.name)).collect());
    layers.unknown += 1;
    let known: Vec<&'static str> = if all.len() <= LIST_ALL_UP_TO {
        all.clone()
    } else {
        // The closest name, searched for the first hundred mistakes only
        // (each search reads every name), then the first names.
        let best = if layers.unknown <= 100 { crate::language::suggest::closest(&l.name.name, all) } else { None };
        match best {
            Some(best) => vec![best],
            None => all[..LIST_ALL_UP_TO].to_vec(),
        }
    };
    ctx.problems.push(Problem::UnknownChoice { span: l.name.span, what: "layer with weights".into(), name: l.name.name.clone(), known });
}

/// `name` as a `&'static str`, kept once per distinct name for the process:
/// `lpnc lsp` checks a file on every keystroke, so leaking per check would
/// grow without bound, while the distinct layer names a user writes are few.
fn interned(name: &str) -> &'static str {
    static NAMES: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> = std::sync::OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match names.get(name) {
        Some(kept) => kept,
        None => {
            let kept: &'static str = Box::leak(name.to_string().into_boxed_str());
            names.insert(kept);
            kept
        }
    }
}

/// An annotation written on a phase's layer, with its schema entry and its
/// resolved arguments.
type Written<'a> = (&'a ast::Annotation, &'static AnnotationDef, Call);

/// The annotations written on a phase's layer, resolved (`@init` has no
/// place in a phase).
fn phase_annotations<'a>(ctx: &mut Ctx, l: &'a ast::Layer, layer: &Layer) -> Vec<Written<'a>> {
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
    written
}

/// The constraints a phase enforces on `layer`: each the model's own, with
/// the phase's mode, weight, tol and dual_lr; a new constraint, a switch to
/// or from reparam/freeze and a redefinition are refused.
fn phase_constraints(
    ctx: &mut Ctx,
    l: &ast::Layer,
    layer: &Layer,
    attached: Vec<Constraint>,
    written: &[Written],
    kernel: &[usize],
) -> Vec<Constraint> {
    let mut constraints = Vec::new();
    for c in attached {
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
            Some(b) => {
                let call = written.iter().find(|(a, _, _)| a.span == c.span).map(|(_, _, call)| call);
                match redefinition(&c, b, kernel) {
                    Some((param, declared, phase)) => ctx.problems.push(Problem::PhaseRedefines {
                        span: call.map(|call| call.span_of(param)).unwrap_or(c.span),
                        declared_span: b.span,
                        constraint: c.family.name().into(),
                        layer: layer.name.clone(),
                        param: param.into(),
                        declared,
                        phase,
                    }),
                    // What the phase enforces is the model's constraint: its band and
                    // value, and the bound computed for them, with the phase's mode,
                    // weight, tol and dual_lr.
                    None => constraints.push(Constraint { set: b.set.in_phase(&c.set), ..c }),
                }
            }
        }
    }
    constraints
}

/// InfeasibleSet when the set in force during the phase leaves no weight
/// but zero.
fn check_set_in_force(ctx: &mut Ctx, layer: &Layer, constraints: &[Constraint], facts: &LayerFacts, first_problem: usize) {
    // The set in force during the phase: the model's constraints with the
    // phase's modes. A phase that makes a constraint hard may leave no weight
    // but zero with the others (checked once, if the line was otherwise sound).
    if !constraints.is_empty() && !ctx.problems[first_problem..].iter().any(Problem::is_error) {
        let in_force: Vec<&Constraint> =
            layer.constraints.iter().map(|b| constraints.iter().find(|c| c.family == b.family).unwrap_or(b)).collect();
        // Only a phase that makes another set hard can newly fail (the model's
        // own set was checked with the model).
        let hard = |c: &&Constraint| c.mode.keeps_weight_in_set();
        let changed = in_force.iter().zip(&layer.constraints).any(|(now, before)| hard(now) != hard(&before));
        let found = if changed { super::feasible_set::check(&in_force, facts.kernel.as_deref(), facts.units) } else { None };
        if let Some(found) = found {
            ctx.problems.push(Problem::InfeasibleSet { spans: found.spans, names: found.names, empty: found.empty, reason: found.reason });
        }
    }
}

/// Two frequencies (Nyquist units) or values the same up to rounding: a
/// cutoff given in Hz is divided by fs/2 on both sides.
fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The first parameter a phase's constraint gives differently from the
/// model's declaration of it: (parameter, declared value, phase value), in the
/// units each side wrote. A phase may change how a constraint is enforced
/// (mode, weight, tol, dual_lr), never what it is: the lowering builds the
/// stopband operator and the admissible subspace from the model's declaration
/// once, so a phase's own band would be reported but not enforced.
fn redefinition(phase: &Constraint, model: &Constraint, kernel: &[usize]) -> Option<(&'static str, String, String)> {
    if let (Some(p), Some(m)) = (phase.band(), model.band()) {
        let edges: &[(&'static str, f64, f64)] = match p.shape() {
            Band::Bandpass | Band::Bandstop => &[("low", p.low, m.low), ("high", p.high, m.high)],
            Band::Lowpass | Band::Highpass => &[("cutoff", p.low, m.low)],
        };
        for &(param, pv, mv) in edges {
            if !same(pv, mv) {
                return Some((param, freq_words(mv, m.fs), freq_words(pv, p.fs)));
            }
        }
        // An unset transition is the default of each axis' length.
        let effective = |t: Option<f64>| -> Vec<f64> { kernel.iter().map(|&k| t.unwrap_or_else(|| default_transition(k))).collect() };
        let (pt, mt) = (effective(p.transition), effective(m.transition));
        if pt.iter().zip(&mt).any(|(a, b)| !same(*a, *b)) {
            let words = |t: Option<f64>, fs: Option<f64>, all: &[f64]| match t {
                Some(t) => freq_words(t, fs),
                None => format!("the default {}", freq_words(all.first().copied().unwrap_or(0.0), fs)),
            };
            return Some(("transition", words(m.transition, m.fs, &mt), words(p.transition, p.fs, &pt)));
        }
    }
    if let (Some((param, pv)), Some((_, mv))) = (phase.set.value(), model.set.value())
        && !same(pv, mv)
    {
        return Some((param, fmt_num(mv), fmt_num(pv)));
    }
    // The reparametrization's subspace is built once from the model's tol.
    if phase.mode == Mode::Reparam && !same(phase.tol, model.tol) {
        return Some(("tol", fmt_num(model.tol), fmt_num(phase.tol)));
    }
    None
}

/// The kind of layer an op was declared as, which its annotations are
/// checked against. Every op is listed: a new one must say its kind here.
fn declared_kind(op: &Op) -> LayerKind {
    match op {
        Op::Conv(_) => LayerKind::Conv,
        Op::Linear { .. } => LayerKind::Linear,
        Op::Activation(_) => LayerKind::Activation,
        Op::MaxPool(_) => LayerKind::MaxPool,
        Op::AvgPool(_) => LayerKind::AvgPool,
        Op::GlobalAvgPool => LayerKind::GlobalAvgPool,
        Op::GlobalMaxPool => LayerKind::GlobalMaxPool,
        Op::BatchNorm { .. } => LayerKind::BatchNorm,
        Op::Dropout { .. } => LayerKind::Dropout,
        Op::Flatten => LayerKind::Flatten,
        Op::Residual { .. } => LayerKind::Residual,
    }
}

#[cfg(test)]
mod tests {
    /// One allocation per distinct name, however often a file is checked.
    #[test]
    fn layer_names_are_interned_once() {
        let first = super::interned("conv_interned_test");
        let again = super::interned(&String::from("conv_interned_test"));
        assert!(std::ptr::eq(first, again));
    }

    use crate::language::schema::LayerKind;

    /// Each layer of a model is of the kind its schema entry declares
    /// (before, everything but conv, linear and batchnorm passed for an activation).
    #[test]
    fn declared_kind_is_the_schema_kind() {
        let source = "model m {\n  input [2, 32]\n  conv(out=2, k=3)\n  relu\n  maxpool(k=2)\n  avgpool(k=2)\n  batchnorm\n  dropout(0.1)\n  residual {\n    conv(k=3)\n  }\n  flatten\n  linear(out=4)\n}\n";
        let model = crate::language::check::check_model_only(source).unwrap_or_else(|p| panic!("{p:?}"));
        let mut seen = 0;
        for layer in &model.layers {
            let name = layer.name.trim_end_matches(|c: char| c.is_ascii_digit());
            let schema = crate::language::schema::layer(name).unwrap_or_else(|| panic!("no schema entry for {name}"));
            assert_eq!(super::declared_kind(&layer.op), schema.kind, "{}", layer.name);
            seen += 1;
        }
        assert_eq!(seen, 9);
        for (global, kind) in [("global_avgpool", LayerKind::GlobalAvgPool), ("global_maxpool", LayerKind::GlobalMaxPool)] {
            let model = crate::language::check::check_model_only(&format!("model m {{\n  input [2, 32]\n  {global}\n}}\n"))
                .unwrap_or_else(|p| panic!("{p:?}"));
            assert_eq!(super::declared_kind(&model.layers[0].op), kind);
        }
    }
}
