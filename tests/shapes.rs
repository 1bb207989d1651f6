//! Shape inference against the output-size formulas of PyTorch's Conv1d/Conv2d
//! and pooling layers (`floor((L + 2p − d(k−1) − 1)/s) + 1`), parameter counts
//! against PyTorch's `numel()`, and layer naming.

fn layers(source: &str) -> Vec<(String, Vec<usize>, usize)> {
    let model = lpn::language::check::check_model_only(source)
        .unwrap_or_else(|problems| panic!("{:#?}", problems.iter().map(|p| p.to_diagnostic().message).collect::<Vec<_>>()));
    model.walk().iter().map(|l| (l.name.clone(), l.output.0.clone(), l.parameters)).collect()
}

fn outputs(source: &str) -> Vec<Vec<usize>> {
    layers(source).into_iter().map(|(_, s, _)| s).collect()
}

#[test]
fn conv1d_output_lengths_follow_pytorch() {
    // L=100: k=7 valid → 94; then k=7 valid stride 2 → floor((94-7)/2)+1 = 44.
    let s = outputs("model m {\n input [2, 100]\n conv(out=4, k=7, padding=valid)\n conv(k=7, padding=valid, stride=2)\n}");
    assert_eq!(s, [vec![4, 94], vec![4, 44]]);
    // k=5 dilation 3 padding 0 → 100-12 = 88; k=7 padding 3 stride 3 → floor((88+6-7)/3)+1 = 30.
    let s = outputs("model m {\n input [2, 100]\n conv(k=5, dilation=3, padding=0)\n conv(k=7, padding=3, stride=3)\n}");
    assert_eq!(s, [vec![2, 88], vec![2, 30]]);
}

#[test]
fn same_padding_keeps_length_and_divides_by_stride() {
    let s = outputs("model m {\n input [1, 101]\n conv(out=3, k=8)\n conv(k=5, stride=2)\n conv(k=4, dilation=2)\n}");
    assert_eq!(s, [vec![3, 101], vec![3, 51], vec![3, 51]]); // ceil(101 / 2) = 51
}

#[test]
fn conv2d_and_pooling() {
    // 28×28, k=[3,5] valid → 26×24; maxpool 2 → 13×12; avgpool k=3 s=2 p=1 → 7×6.
    let s = outputs(
        "model m {\n input [1, 28, 28]\n conv(out=8, k=[3, 5], padding=valid)\n maxpool(k=2)\n avgpool(k=3, stride=2, padding=1)\n flatten\n linear(out=10)\n}",
    );
    assert_eq!(s, [vec![8, 26, 24], vec![8, 13, 12], vec![8, 7, 6], vec![336], vec![10]]);
}

#[test]
fn parameter_counts_follow_pytorch() {
    let l = layers(
        "model m {\n input [4, 32]\n conv(out=8, k=3, groups=2)\n batchnorm\n conv(out=8, k=3, bias=false)\n global_avgpool\n linear(out=5)\n}",
    );
    let counts: Vec<usize> = l.iter().map(|(_, _, p)| *p).collect();
    // Conv1d(4, 8, 3, groups=2): 8·2·3 + 8 = 56; BatchNorm1d(8): 16; Conv1d(8, 8, 3, bias=False): 192; Linear(8, 5): 45.
    assert_eq!(counts, [56, 16, 192, 0, 45]);
}

#[test]
fn names_are_deterministic_and_scoped() {
    let l = layers("model m {\n input [4, 32]\n conv(k=3)\n repeat 2 {\n  residual {\n   conv(k=3)\n   relu\n  }\n }\n conv(k=3)\n}");
    let names: Vec<&str> = l.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv1",
            "repeat1.1.residual1",
            "repeat1.1.residual1.conv1",
            "repeat1.1.residual1.relu1",
            "repeat1.2.residual1",
            "repeat1.2.residual1.conv1",
            "repeat1.2.residual1.relu1",
            "conv2"
        ]
    );
}

#[test]
fn shape_errors_carry_the_inferred_shapes() {
    let problems = lpn::language::check::check_model_only(
        "model m {\n input [1, 10]\n conv(out=4, k=3, padding=valid, stride=2)\n conv(k=7, padding=valid)\n}",
    )
    .unwrap_err();
    let d = problems[0].to_diagnostic();
    assert_eq!(d.code, "E0040");
    assert!(d.message.contains("[4, 4]"), "{}", d.message);
    let problems = lpn::language::check::check_model_only("model m {\n input [3, 16]\n residual {\n  conv(out=5, k=3)\n }\n}").unwrap_err();
    let d = problems[0].to_diagnostic();
    assert_eq!(d.code, "E0041");
    assert!(d.message.contains("[3, 16]") && d.message.contains("[5, 16]"), "{}", d.message);
}

#[test]
fn one_error_stops_shape_guessing_downstream() {
    // After the bad conv, the linear's rank is unknown: no second, made-up error.
    let problems =
        lpn::language::check::check_model_only("model m {\n input [1, 10]\n conv(k=30, padding=valid)\n linear(out=3)\n}").unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:#?}");
}
