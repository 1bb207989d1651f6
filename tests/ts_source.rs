//! End to end: the `.ts` example (multivariate series, string labels) trains.
// Trains the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

mod common;

use std::path::Path;

#[test]
fn the_motions_example_learns_string_labelled_multivariate_series() {
    let source = std::fs::read_to_string("examples/motions_ts.lpn").unwrap();
    let p = common::program(&source, Path::new("examples"));
    assert_eq!((p.model.input.0.as_slice(), p.data.classes), (&[3usize, 64][..], Some(3)));
    let out = common::fresh_dir("ts", "motions");
    let options = lpn::train::Options { out_dir: out, epochs: Some(20), ..Default::default() };
    let report = lpn::train::train(&p, &options).unwrap();
    let (first, last) = (report.epochs.first().unwrap().train_loss, report.epochs.last().unwrap().train_loss);
    assert!(last < 0.5 * first, "training loss did not fall: {first} → {last}");
    // Three well-separated activities (the script): chance is 1/3.
    let test = report.test.unwrap().accuracy.unwrap();
    assert!(test >= 0.8, "test accuracy {test}");
}
