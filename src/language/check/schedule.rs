//! `schedule = …` in the train section and in a phase: the parts of a
//! learning-rate schedule from their resolved calls, and the checks that need
//! the run around them (a part after one that never ends, `plateau` without
//! validation data, a `step` that never decays within its scope).

use crate::language::ast::Span;
use crate::language::check::Ctx;
use crate::language::check::params::Call;
use crate::language::diagnostic::Problem;
use crate::language::ir::{DataSpec, LrPart, LrSchedule};

/// Where a schedule runs: how many epochs its scope has, and the data (to
/// know whether there is a validation figure for `plateau`).
pub struct Scope<'d> {
    pub epochs: usize,
    /// "the run" or "phase NAME", for messages.
    pub what: String,
    pub data: Option<(&'d DataSpec, Span)>,
}

/// The schedule `owner` (a train section's or phase's resolved settings)
/// declares, checked against its scope; `None` when it declares none or a
/// part of it is wrong.
pub fn lower(ctx: &mut Ctx, owner: &Call, scope: &Scope) -> Option<LrSchedule> {
    let calls = owner.entries("schedule")?;
    let mut parts = Vec::with_capacity(calls.len());
    for (i, call) in calls.iter().enumerate() {
        if let Some(before) = i.checked_sub(1).map(|b| calls[b])
            && !ends(before)
        {
            ctx.problems.push(Problem::ScheduleNeverEnds {
                span: call.span,
                before_span: before.span,
                before: before.schema.name.into(),
                after: call.schema.name.into(),
            });
            return None;
        }
        // Every part is checked, so each mistake in a chain is reported.
        parts.push(part(ctx, call, scope));
    }
    Some(LrSchedule { parts: parts.into_iter().collect::<Option<_>>()? })
}

/// Whether a part hands over to the next one: only a warm-up has a length.
fn ends(call: &Call) -> bool {
    call.schema.name == "warmup"
}

fn part(ctx: &mut Ctx, call: &Call, scope: &Scope) -> Option<LrPart> {
    Some(match call.schema.name {
        "step" => {
            let every = call.int("every")? as usize;
            if every >= scope.epochs {
                ctx.problems.push(Problem::ScheduleNeverSteps {
                    span: call.span_of("every"),
                    every,
                    epochs: scope.epochs,
                    scope: scope.what.clone(),
                });
            }
            LrPart::Step { every, gamma: call.f64("gamma")? }
        }
        "cosine" => LrPart::Cosine { min_lr: call.f64("min_lr")? },
        "warmup" => LrPart::Warmup { steps: call.int("steps")? as usize, start_factor: call.f64("start_factor")? },
        "plateau" => {
            if let Some((data, data_span)) = scope.data
                && data.val.is_none()
                && data.val_split == 0.0
            {
                ctx.problems.push(Problem::NoValidationData { span: call.span, setting: "schedule = plateau(…)".into(), data_span });
            }
            LrPart::Plateau {
                patience: call.int("patience")? as usize,
                factor: call.f64("factor")?,
                min_lr: call.f64("min_lr")?,
                threshold: call.f64("threshold")?,
                cooldown: call.int("cooldown")? as usize,
            }
        }
        other => unreachable!("schedule {other} has no lowering"),
    })
}
