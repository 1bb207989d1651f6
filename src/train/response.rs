//! `lpnc response`: the magnitude response of every band-constrained layer's
//! kernels, drawn over the spec's mask (passband and stopband), and, when the
//! run's report.json sits next to the weights, ρ per epoch. One SVG file.

use std::path::Path;

use plotters::prelude::*;

use crate::bands::{self, BandSpec};
use crate::ir::{Constraint, Program};
use crate::train::Report;

/// Kernels drawn per layer (the rest would only blacken the plot).
const MAX_KERNELS: usize = 24;

pub struct Panel {
    pub layer: String,
    pub constraint: Constraint,
    /// Each kernel's taps (1-D kernels; 2-D ones are drawn along their rows' outer product axis).
    pub kernels: Vec<Vec<f64>>,
}

/// The band-constrained 1-D layers of a program with their kernels from a weights file.
pub fn panels(program: &Program, weights: &Path) -> Result<Vec<Panel>, String> {
    let tensors = candle_core::safetensors::load(weights, &candle_core::Device::Cpu)
        .map_err(|e| format!("cannot read {}: {e}", weights.display()))?;
    let mut out = Vec::new();
    for layer in program.model.walk() {
        for c in layer.constraints.iter().filter(|c| c.band.is_some()) {
            let name = format!("{}.weight", layer.name);
            let w = tensors.get(&name).ok_or_else(|| format!("{} has no tensor `{name}`", weights.display()))?;
            if w.rank() != 3 {
                continue; // 2-D kernels: no single frequency axis to draw
            }
            let taps = w.dim(2).map_err(|e| e.to_string())?;
            let data: Vec<f32> = w.flatten_all().and_then(|t| t.to_vec1()).map_err(|e| e.to_string())?;
            let kernels = data.chunks(taps).map(|h| h.iter().map(|&x| x as f64).collect()).collect();
            out.push(Panel { layer: layer.name.clone(), constraint: c.clone(), kernels });
        }
    }
    Ok(out)
}

fn db(x: f64) -> f64 {
    20.0 * x.max(1e-8).log10()
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws the panels (and the ρ history when a report is given) into an SVG file.
pub fn draw(panels: &[Panel], report: Option<&Report>, out: &Path) -> DrawResult {
    let rows = panels.len() + usize::from(report.is_some_and(|r| !r.epochs.is_empty() && !r.constraints.is_empty()));
    if rows == 0 {
        return Err("the model has no 1-D band-constrained layer to draw".into());
    }
    let root = SVGBackend::new(out, (900, 360 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((rows, 1));
    for (panel, area) in panels.iter().zip(&areas) {
        draw_panel(panel, area)?;
    }
    if let (Some(report), Some(area)) = (report, areas.get(panels.len())) {
        draw_history(report, area)?;
    }
    root.present()?;
    Ok(())
}

fn draw_panel(panel: &Panel, area: &DrawingArea<SVGBackend, plotters::coord::Shift>) -> DrawResult {
    let band: BandSpec = panel.constraint.band.expect("band panels");
    let taps = panel.kernels.first().map(|k| k.len()).unwrap_or(1);
    let responses: Vec<Vec<(f64, f64)>> = panel.kernels.iter().take(MAX_KERNELS).map(|h| bands::magnitude_response(h, 512)).collect();
    let peak = responses.iter().flatten().map(|(_, m)| *m).fold(1e-12, f64::max);
    let floor = -80.0;
    let unit = match band.fs {
        Some(fs) => format!("frequency (Hz, fs = {fs})"),
        None => "frequency (fraction of Nyquist)".to_string(),
    };
    let scale = band.fs.map(|fs| fs / 2.0).unwrap_or(1.0);
    let title = format!(
        "{}: @{}(mode={}) — |H| of {} kernel(s), dB re peak",
        panel.layer,
        panel.constraint.family.name(),
        panel.constraint.mode,
        responses.len()
    );
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..scale, floor..6.0)?;
    chart.configure_mesh().x_desc(unit).y_desc("gain (dB)").light_line_style(WHITE.mix(0.0)).draw()?;
    // The mask: stopband shaded red, passband shaded green.
    let stop = band.stopband(taps);
    for &(a, b) in stop.pieces.iter().filter(|(a, b)| a < b) {
        chart
            .draw_series(std::iter::once(Rectangle::new([(a * scale, floor), (b * scale, 6.0)], RED.mix(0.12).filled())))?
            .label("stopband")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], RED.mix(0.3).filled()));
    }
    for &(a, b) in band.passband().iter() {
        chart.draw_series(std::iter::once(Rectangle::new([(a * scale, floor), (b * scale, 6.0)], GREEN.mix(0.08).filled())))?;
    }
    for (i, r) in responses.iter().enumerate() {
        let color = Palette99::pick(i).mix(0.8);
        chart.draw_series(LineSeries::new(r.iter().map(|&(nu, m)| (nu * scale, (db(m) - db(peak)).max(floor))), color.stroke_width(1)))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    Ok(())
}

fn draw_history(report: &Report, area: &DrawingArea<SVGBackend, plotters::coord::Shift>) -> DrawResult {
    let epochs = report.epochs.len();
    let series: Vec<(String, Vec<(f64, f64)>)> = report
        .constraints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let points = report
                .epochs
                .iter()
                .filter_map(|e| {
                    e.constraints.get(i).and_then(|m| m.stopband_ratio.or(m.violation)).map(|v| (e.epoch as f64, v.max(1e-12).log10()))
                })
                .collect();
            (format!("{} @{} ({})", c.layer, c.kind, c.mode), points)
        })
        .collect();
    let lo = series.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y)).fold(f64::INFINITY, f64::min).min(-3.0).floor();
    let hi = series.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y)).fold(f64::NEG_INFINITY, f64::max).max(0.0).ceil();
    let mut chart = ChartBuilder::on(area)
        .caption("ρ (or violation) per epoch, log10", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(1.0..(epochs.max(2) as f64), lo..hi)?;
    chart.configure_mesh().x_desc("epoch").y_desc("log10 ρ").draw()?;
    for (i, (label, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i);
        chart
            .draw_series(LineSeries::new(points.iter().cloned(), color.stroke_width(2)))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], Palette99::pick(i).stroke_width(2)));
        let tol = report.constraints[i].tol.log10();
        chart.draw_series(LineSeries::new(vec![(1.0, tol), (epochs.max(2) as f64, tol)], color.mix(0.5).stroke_width(1)))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    Ok(())
}

/// Reads the report.json written next to a weights file, if there is one.
pub fn report_next_to(weights: &Path) -> Option<Report> {
    let path = weights.parent()?.join("report.json");
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}
