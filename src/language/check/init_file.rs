//! The header of a safetensors file named by `@init(file=…)`, read at check
//! time: an 8-byte little-endian length, then that many bytes of JSON naming
//! every tensor with its dtype and shape. Only the header is read (no tensor
//! data, no Candle), so a wrong file, a missing tensor, a wrong shape or an
//! integer tensor is reported by `lpnc check`, not by the first step of
//! training.

use std::path::Path;

use crate::language::check::environment::Environment;

/// One tensor of the file, as its header describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// As safetensors spells it: `F32`, `BF16`, `I64`, …
    pub dtype: String,
    pub shape: Vec<usize>,
}

/// The dtypes lpn reads weights from (converted to its training precision).
pub const FLOAT_DTYPES: &[&str] = &["F16", "BF16", "F32", "F64"];

/// A header larger than this is not a header: safetensors itself refuses
/// more than 100 MB.
const MAX_HEADER: u64 = 100_000_000;

/// The tensors a safetensors file holds, in the order of its header, or why
/// it is not a safetensors file. Reads the header alone, from `env`.
pub fn read_header(env: &dyn Environment, path: &Path) -> Result<Vec<TensorInfo>, String> {
    let cannot_read = |e: std::io::Error| format!("it cannot be read: {e}");
    let (prefix, size) = env.read_start(path, 8).map_err(cannot_read)?;
    let Ok(prefix) = <[u8; 8]>::try_from(prefix) else {
        return Err(format!("it is {size} bytes long, too short for the 8-byte header length a safetensors file starts with"));
    };
    let length = u64::from_le_bytes(prefix);
    if prefix.iter().all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\n') && length > size - 8 {
        return Err(format!(
            "it starts with text (`{}`) where the 8-byte header length belongs",
            String::from_utf8_lossy(&prefix).trim_end()
        ));
    }
    if length > MAX_HEADER || length > size - 8 {
        return Err(format!("its first 8 bytes give a header length of {length} bytes, but the file has {} bytes after them", size - 8));
    }
    let (start, _) = env.read_start(path, 8 + length).map_err(cannot_read)?;
    let header = start.get(8..).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(header).map_err(|e| format!("its header is not JSON ({e})"))?;
    let Some(entries) = json.as_object() else {
        return Err("its header is not a JSON object".into());
    };
    let mut tensors = Vec::new();
    for (name, entry) in entries {
        if name == "__metadata__" {
            continue;
        }
        let dtype = entry.get("dtype").and_then(|d| d.as_str());
        let shape: Option<Vec<usize>> =
            entry.get("shape").and_then(|s| s.as_array()).and_then(|dims| dims.iter().map(|d| d.as_u64().map(|d| d as usize)).collect());
        match (dtype, shape) {
            (Some(dtype), Some(shape)) => tensors.push(TensorInfo { name: name.clone(), dtype: dtype.to_string(), shape }),
            _ => return Err(format!("its header's entry `{name}` has no dtype and shape")),
        }
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::check::environment::FakeEnvironment;

    fn read(bytes: &[u8]) -> Result<Vec<TensorInfo>, String> {
        read_header(&FakeEnvironment::default().file("w.safetensors", bytes), Path::new("w.safetensors"))
    }

    #[test]
    fn reads_names_dtypes_and_shapes_and_nothing_else() {
        let header = br#"{"__metadata__":{"a":"b"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        // The data is never read: a short file still has a readable header.
        let tensors = read(&bytes).unwrap();
        assert_eq!(tensors, [TensorInfo { name: "w".into(), dtype: "F32".into(), shape: vec![2, 3] }]);
    }

    #[test]
    fn says_why_a_file_is_not_safetensors() {
        let cases: [(&str, &[u8], &str); 5] = [
            ("short", b"abc", "3 bytes long, too short"),
            ("text", b"conv1.weight = [0.1, 0.2]\n", "starts with text (`conv1.we`)"),
            ("binary", b"\x80\x02\x8a\x0alz\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", "header length of"),
            ("notjson", b"\x04\0\0\0\0\0\0\0abcd", "not JSON"),
            ("notobject", b"\x02\0\0\0\0\0\0\0[]", "not a JSON object"),
        ];
        for (name, bytes, expected) in cases {
            let e = read(bytes).unwrap_err();
            assert!(e.contains(expected), "{name}: {e}");
        }
        let e = read_header(&FakeEnvironment::default(), Path::new("missing.safetensors")).unwrap_err();
        assert!(e.starts_with("it cannot be read"), "{e}");
    }
}
