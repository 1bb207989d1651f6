//! The drawing of `lpnc response`: the figures of `lpn::train::response`
//! (each band-constrained layer's kernels, the run's ρ per epoch) drawn into
//! one SVG file with plotters. A 1-D layer is drawn as |H(ν)| over the spec's
//! mask; a 2-D layer as a heat map of |H(ν1, ν2)| over the whole frequency
//! plane for its kernel with the largest ρ, the separable box passband
//! outlined.

use std::path::Path;

use plotters::prelude::*;

use lpn::constraint::bands::{self, BandSpec};
use lpn::train::Report;
use lpn::train::response::Panel;

/// Cells per axis of a 2-D heat map over ν1, ν2 ∈ [−1, 1].
const CELLS_2D: usize = 64;

fn db(x: f64) -> f64 {
    20.0 * x.max(1e-8).log10()
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws the panels (and the ρ history when a report is given) into an SVG file.
pub fn draw(panels: &[Panel], report: Option<&Report>, out: &Path) -> DrawResult {
    let rows = panels.len() + usize::from(report.is_some_and(|r| !r.epochs.is_empty() && !r.constraints.is_empty()));
    if rows == 0 {
        return Err("the model has no band-constrained layer to draw".into());
    }
    let root = SVGBackend::new(out, (900, 420 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((rows, 1));
    for (panel, area) in panels.iter().zip(&areas) {
        if panel.is_2d() { draw_panel_2d(panel, area)? } else { draw_panel(panel, area)? }
    }
    if let (Some(report), Some(area)) = (report, areas.get(panels.len())) {
        draw_history(report, area)?;
    }
    root.present()?;
    Ok(())
}

/// The frequency axis's words and its scale (Hz when the spec has a sample rate).
fn axis(band: &BandSpec) -> (String, f64) {
    match band.fs {
        Some(fs) => (format!("frequency (Hz, fs = {fs})"), fs / 2.0),
        None => ("frequency (fraction of Nyquist)".to_string(), 1.0),
    }
}

/// The caption's kernel count: "of 4 kernel(s)", or the cap note ("showing 24 of 64 kernels (…)").
fn count_words(panel: &Panel) -> String {
    match panel.cap_note() {
        Some(note) => note,
        None => format!("of {} kernel(s)", panel.kernels.len()),
    }
}

fn draw_panel(panel: &Panel, area: &DrawingArea<SVGBackend, plotters::coord::Shift>) -> DrawResult {
    let band: BandSpec = panel.constraint.band().expect("band panels");
    let taps = panel.shape[0];
    let responses: Vec<Vec<(f64, f64)>> = panel.kernels.iter().take(panel.shown()).map(|h| bands::magnitude_response(h, 512)).collect();
    let peak = responses.iter().flatten().map(|(_, m)| *m).fold(1e-12, f64::max);
    let floor = -80.0;
    let (unit, scale) = axis(&band);
    let title = format!(
        "{}: @{}(mode={}) — |H| {}, dB re peak",
        panel.layer,
        panel.constraint.family.name(),
        panel.constraint.mode,
        count_words(panel)
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

/// The pass intervals of one axis over ν ∈ [−1, 1]: the complement of the
/// axis's stopband in [0, 1], mirrored (a real kernel's |H| is even).
fn pass_intervals(band: &BandSpec, k: usize) -> Vec<(f64, f64)> {
    let mut stops: Vec<(f64, f64)> = band.stopband(k).pieces.iter().copied().filter(|(a, b)| a < b).collect();
    stops.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut pass = Vec::new();
    let mut from = 0.0;
    for (a, b) in stops {
        if a > from {
            pass.push((from, a));
        }
        from = from.max(b);
    }
    if from < 1.0 {
        pass.push((from, 1.0));
    }
    pass.iter().flat_map(|&(a, b)| if a == 0.0 { vec![(-b, b)] } else { vec![(a, b), (-b, -a)] }).collect()
}

/// A 2-D layer: |H(ν1, ν2)| of its kernel with the largest ρ over the whole
/// frequency plane (dB re its peak), with the separable box passband
/// outlined; everything outside the boxes is stopband.
fn draw_panel_2d(panel: &Panel, area: &DrawingArea<SVGBackend, plotters::coord::Shift>) -> DrawResult {
    let band: BandSpec = panel.constraint.band().expect("band panels");
    let (kh, kw) = (panel.shape[0], panel.shape[1]);
    let Some(h) = panel.kernels.first() else { return Ok(()) };
    let grid = bands::magnitude_response_2d(h, kh, kw, CELLS_2D);
    let peak = grid.iter().map(|&(_, _, m)| m).fold(1e-12, f64::max);
    let floor = -60.0;
    let (unit, scale) = axis(&band);
    let title = format!(
        "{} @{}(mode={}): |H(ν1, ν2)| in dB re peak (white 0, black ≤ {floor}) of the kernel with the largest ρ = {:.2e}, {} of {}",
        panel.layer,
        panel.constraint.family.name(),
        panel.constraint.mode,
        panel.rhos.first().copied().unwrap_or(0.0),
        panel.shown(),
        panel.kernels.len()
    );
    // The caption across the row, the plane itself square in the middle.
    let area = area.titled(&title, ("sans-serif", 14))?;
    let (width, height) = area.dim_in_pixel();
    let side = (height as i32 + 48 - 36).min(width as i32);
    let sides = ((width as i32 - side) / 2).max(0);
    let area = area.margin(0, 0, sides, sides);
    let mut chart =
        ChartBuilder::on(&area).margin(12).x_label_area_size(36).y_label_area_size(48).build_cartesian_2d(-scale..scale, -scale..scale)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(format!("ν2 (kernel width), {unit}; green: the passband box, outside it the stopband"))
        .y_desc("ν1 (kernel height)")
        .draw()?;
    let half = 1.0 / CELLS_2D as f64;
    chart.draw_series(grid.iter().map(|&(n1, n2, m)| {
        let t = ((db(m) - db(peak)).max(floor) - floor) / -floor;
        let shade = (255.0 * t).round() as u8;
        Rectangle::new(
            [((n2 - half) * scale, (n1 - half) * scale), ((n2 + half) * scale, (n1 + half) * scale)],
            RGBColor(shade, shade, shade).filled(),
        )
    }))?;
    // The mask: each passband box outlined in green (the x axis's words say
    // so; a legend would hide part of the plane).
    let (rows, cols) = (pass_intervals(&band, kh), pass_intervals(&band, kw));
    for &(a1, b1) in &rows {
        for &(a2, b2) in &cols {
            let outline = Rectangle::new([(a2 * scale, a1 * scale), (b2 * scale, b1 * scale)], GREEN.stroke_width(2));
            chart.draw_series(std::iter::once(outline))?;
        }
    }
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
