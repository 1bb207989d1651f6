//! The checker sees the machine only through the environment it is given:
//! files that exist only in a `FakeEnvironment` are read, files on this disk
//! that it lacks are missing, and what is neither file nor folder is refused.

use std::path::Path;

use lpn::FakeEnvironment;

/// Ten rows, labels 0 and 1, four values each.
fn table() -> String {
    (0..10).map(|i| format!("{},{i},1,2,3\n", i % 2)).collect()
}

fn codes(source: &str, env: &FakeEnvironment) -> Vec<String> {
    let (_, checked) = lpn::check_source_with(source, Path::new("base"), env);
    checked.problems.iter().map(|p| p.to_diagnostic().code.to_string()).collect()
}

const UCR: &str = "model m {\n  input [1, 4]\n  flatten\n  linear(out=2)\n}\ndata ucr(\"data/t.csv\")\n";

#[test]
fn data_files_come_from_the_environment() {
    let env = FakeEnvironment::with_memory(16 << 30).file("base/data/t.csv", table());
    assert_eq!(codes(UCR, &env), Vec::<String>::new());
    // The rows are read: a model input of another width does not fit them.
    assert_eq!(codes(&UCR.replace("[1, 4]", "[1, 5]"), &env), ["E0052"]);
    // Missing, a folder, a named pipe.
    assert_eq!(codes(UCR, &FakeEnvironment::with_memory(16 << 30)), ["E0050"]);
    let folder = FakeEnvironment::with_memory(16 << 30).file("base/data/t.csv/inner.csv", table());
    assert_eq!(codes(UCR, &folder), ["E0051"]);
    let pipe = FakeEnvironment::with_memory(16 << 30).other("base/data/t.csv", "a named pipe (FIFO)");
    let (_, checked) = lpn::check_source_with(UCR, Path::new("base"), &pipe);
    let message = checked.problems[0].to_diagnostic().message;
    assert!(message.contains("is not a regular file: it is a named pipe (FIFO)"), "{message}");
}

#[test]
fn init_files_come_from_the_environment() {
    let source = "model m {\n  input [1, 16]\n  conv(out=2, k=3) @init(file=\"w.safetensors\")\n  conv(out=1, k=3)\n}\ndata sines()\n";
    let header = br#"{"conv1.weight":{"dtype":"F32","shape":[2,1,3],"data_offsets":[0,24]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0; 24]);
    let env = FakeEnvironment::with_memory(16 << 30).file("base/w.safetensors", bytes);
    assert_eq!(codes(source, &env), Vec::<String>::new());
    assert_eq!(codes(&source.replace("out=2", "out=3"), &env), ["E0074"]);
    assert_eq!(codes(source, &FakeEnvironment::with_memory(16 << 30)), ["E0050"]);
}
