//! `lpnc inspect`: the checked model as a table.

use crate::language::ir::{Layer, Model};
use crate::language::schema::Family;

pub fn table(model: &Model) -> String {
    let mut rows: Vec<[String; 5]> = vec![["layer".into(), "op".into(), "output".into(), "params".into(), "constraints".into()]];
    rows.push(["input".into(), String::new(), model.input.to_string(), String::new(), String::new()]);
    for layer in model.walk() {
        rows.push([
            layer.name.clone(),
            layer.op.describe(),
            layer.output.to_string(),
            if layer.parameters > 0 { layer.parameters.to_string() } else { String::new() },
            annotations(layer),
        ]);
    }
    let constrained = model.walk().iter().filter(|l| !l.constraints.is_empty()).count();
    rows.push([
        "total".into(),
        String::new(),
        model.output.to_string(),
        model.parameter_count().to_string(),
        format!("{constrained} constrained layer(s)"),
    ]);

    let widths: Vec<usize> = (0..5).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            // Numbers right-aligned, text left-aligned.
            if c == 3 {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if c < 4 {
                    line.push_str(&" ".repeat(pad));
                }
            }
            if c < 4 {
                line.push_str("  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if i == 0 || i == rows.len() - 2 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 8));
            out.push('\n');
        }
    }
    out.push_str(&band_notes(model));
    out
}

/// Where each band constraint really acts: the stopband and passband after
/// the transition, per kernel axis length (they differ from the written
/// cutoffs by half a transition each).
fn band_notes(model: &Model) -> String {
    let mut lines = Vec::new();
    for layer in model.walk() {
        for c in layer.constraints.iter().filter(|c| !c.edges().is_empty()) {
            let fs = c.band().and_then(|b| b.fs);
            let mut seen = Vec::new();
            for e in c.edges() {
                if seen.contains(&e.taps) {
                    continue;
                }
                seen.push(e.taps);
                let axis = if c.edges().len() > 1 { format!(" (axes of {} taps)", e.taps) } else { String::new() };
                let dimension = c
                    .admissible_dimension()
                    .filter(|_| c.mode.keeps_weight_in_set())
                    .map(|d| format!("; admissible dimension {d} of {} at tol={}", kernel_size(c.edges()), fmt(c.tol)))
                    .unwrap_or_default();
                lines.push(format!("  {} @{}{axis}: {}{dimension}", layer.name, c.family.name(), e.describe(fs)));
            }
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    format!("\nband edges (each half a transition from its cutoff):\n{}\n", lines.join("\n"))
}

/// Taps of a whole kernel (k, or kh·kw).
fn kernel_size(edges: &[crate::constraint::bands::BandEdges]) -> usize {
    edges.iter().map(|e| e.taps).product()
}

fn annotations(layer: &Layer) -> String {
    let mut parts: Vec<String> = layer
        .constraints
        .iter()
        .map(|c| {
            let args = match (c.family, c.band()) {
                (Family::Bandpass | Family::Bandstop, Some(b)) => format!("({}, {})", fmt(b.low), fmt(b.high)),
                (_, Some(b)) => format!("({})", fmt(b.low)),
                (_, None) => c.value().map(|v| format!("({})", fmt(v))).unwrap_or_default(),
            };
            // The bound tells how far below tol a band constraint can go.
            let bound = c.lambda_min().map(|b| format!(" (ρ ≥ {})", fmt(b))).unwrap_or_default();
            format!("@{}{args} {}{bound}", c.family.name(), c.mode)
        })
        .collect();
    if layer.frozen {
        parts.push("frozen".into());
    }
    if layer.lr_scale != 1.0 {
        parts.push(format!("lr×{}", fmt(layer.lr_scale)));
    }
    parts.join(", ")
}

fn fmt(x: f64) -> String {
    crate::language::diagnostic::fmt_num(x)
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_shows_band_edges_and_admissible_dimension() {
        let source = "model m {\n input [1, 128]\n conv(out=4, k=15) @lowpass(cutoff=0.2)\n conv(out=1, k=9, padding=same) @highpass(cutoff=40, fs=200, transition=20, mode=penalty)\n}\ndata sines()\n";
        let (_, checked) = crate::check_source(source, std::path::Path::new("."));
        let table = super::table(&checked.program.expect("checks").model);
        // k = 15: transition 6.6/15 = 0.44, so the stopband starts at 0.2 + 0.22.
        assert!(table.contains("conv1 @lowpass: stopband ν ≥ 0.42, passband none (transition 0.44)"), "{table}");
        // numpy: 4 eigenvalues of I − K(0.42) on 15 taps are ≤ 0.01.
        assert!(table.contains("admissible dimension 4 of 15 at tol=0.01"), "{table}");
        // In Hz with fs: stopband f ≤ 40 − 10, passband f ≥ 40 + 10; no dimension for a penalty.
        assert!(table.contains("conv2 @highpass: stopband f ≤ 30 Hz, passband f ≥ 50 Hz (transition 20 Hz)\n"), "{table}");
    }
}
