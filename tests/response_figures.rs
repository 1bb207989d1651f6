//! The response figures of report.json (`stopband_gain_db`,
//! `passband_ripple_db`, `dc_gain`) against numpy: tests/reference/
//! response_figures.py computes them with an FFT on the same grid and writes
//! tests/fixtures/response_figures.json.
// Trains or runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

use std::path::Path;

use lpn::constraint::bands::BandSpec;
use lpn::language::schema::Family;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    family: String,
    low: f64,
    high: f64,
    transition: Option<f64>,
    h: Vec<f64>,
    stopband_gain_db: Option<f64>,
    passband_ripple_db: Option<f64>,
    dc_gain: f64,
}

fn family(name: &str) -> Family {
    match name {
        "lowpass" => Family::Lowpass,
        "highpass" => Family::Highpass,
        "bandpass" => Family::Bandpass,
        "bandstop" => Family::Bandstop,
        other => panic!("unknown family {other}"),
    }
}

fn same(ours: Option<f64>, numpy: Option<f64>, what: &str) {
    match (ours, numpy) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{what}: ours {a}, numpy {b}"),
        (None, None) => {}
        _ => panic!("{what}: ours {ours:?}, numpy {numpy:?}"),
    }
}

#[test]
fn figures_match_numpy_on_the_same_grid() {
    let text = std::fs::read_to_string("tests/fixtures/response_figures.json").unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() >= 10);
    for c in &cases {
        let spec = BandSpec { family: family(&c.family), low: c.low, high: c.high, transition: c.transition, fs: None };
        let f = spec.figures(&c.h);
        same(f.stopband_gain_db, c.stopband_gain_db, &format!("{}: stopband_gain_db", c.name));
        same(f.passband_ripple_db, c.passband_ripple_db, &format!("{}: passband_ripple_db", c.name));
        assert!((f.dc_gain - c.dc_gain).abs() < 1e-12, "{}: dc_gain", c.name);
    }
    // The cases the figures were wrong on: a kernel too short for its
    // transition has a stopband gain relative to its passband (firwin's k = 7
    // design is 28 dB down, not +200 dB) and no ripple to speak of.
    let short = cases.iter().find(|c| c.name == "k7 cutoff 0.2 firwin").unwrap();
    let f = BandSpec { family: Family::Lowpass, low: 0.2, high: 0.2, transition: None, fs: None }.figures(&short.h);
    assert!((-30.0..-25.0).contains(&f.stopband_gain_db.unwrap()), "{f:?}");
    assert_eq!(f.passband_ripple_db, None);
}

#[test]
fn the_denoiser_example_reports_figures_relative_to_its_passband() {
    let source = std::fs::read_to_string("examples/denoiser.lpn").unwrap();
    let (_, checked) = lpn::check_source(&source, Path::new("examples"));
    let program = checked.program.unwrap();
    let dir = std::env::temp_dir().join(format!("lpn-figures-{}", std::process::id()));
    let report = lpn::train::train(&program, &lpn::train::Options { out_dir: dir, epochs: Some(1), ..Default::default() }).unwrap();
    let (conv1, conv2) = (&report.constraints[0], &report.constraints[1]);
    // conv1: k = 15, cutoff 0.2 ≤ Δ/2 = 0.22: no passband clear of the transition.
    let gain = conv1.stopband_gain_db.unwrap();
    assert!(gain.is_finite() && gain < 20.0, "conv1 stopband gain {gain} dB");
    assert_eq!(conv1.passband_ripple_db, None);
    // conv2 (projected, cutoff 0.3): the stopband well below the passband.
    assert!(conv2.stopband_gain_db.unwrap() < -10.0, "{conv2:?}");
    assert!(conv2.passband_ripple_db.is_some_and(|r| r.is_finite() && r >= 0.0), "{conv2:?}");
}
