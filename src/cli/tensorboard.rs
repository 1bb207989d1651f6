//! TensorBoard's event file beside `metrics.csv`: the same per-epoch figures
//! as scalars (step = epoch), so `tensorboard --logdir runs/` shows a run's
//! curves next to other runs'. Made from metrics.csv's text, so the two
//! always hold the same figures: rewritten whole when a run starts or resumes
//! (from the rows it keeps), one record appended per epoch.
//!
//! The format is TensorFlow's record file of `Event` protocol buffers: per
//! record the length (u64, little-endian), its masked CRC-32C, the bytes, their
//! masked CRC-32C; the first event names the file version. The messages are
//! `prost` structs with the field numbers of TensorFlow's `event.proto` and
//! `summary.proto` (no protoc, no TensorFlow).

use std::time::{SystemTime, UNIX_EPOCH};

/// The file's name in the run folder (TensorBoard reads files whose name
/// holds `tfevents`; a fixed name lets a resumed run rewrite it).
pub const FILE_NAME: &str = "events.out.tfevents.lpn";

/// `tensorflow.Event` (the fields lpn writes; `file_version` and `summary`
/// are a oneof there, which has the same encoding).
#[derive(Clone, PartialEq, prost::Message)]
struct TfEvent {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` with a scalar.
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

/// The whole file for metrics.csv's `text`: the version event, then one
/// event per row.
pub fn file_from_csv(text: &str) -> Vec<u8> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().map(|h| h.split(',').collect()).unwrap_or_default();
    let now = wall_time();
    let mut out = record(&TfEvent { wall_time: now, step: 0, file_version: Some("brain.Event:2".into()), summary: None });
    for line in lines {
        out.extend(row_record(&header, line, now));
    }
    out
}

/// The record of one metrics.csv row under `header` (empty for a row
/// without an epoch number).
pub fn row_record(header: &[&str], line: &str, wall_time: f64) -> Vec<u8> {
    let cells: Vec<&str> = line.split(',').collect();
    let Some(step) = cells.first().and_then(|e| e.parse::<i64>().ok()) else { return Vec::new() };
    // Every numeric column but the epoch; blank cells (no validation data, a
    // figure not measured) are left out, as TensorBoard has no missing value.
    let value = header
        .iter()
        .zip(&cells)
        .skip(1)
        .filter_map(|(tag, cell)| Some(SummaryValue { tag: tag.to_string(), simple_value: Some(cell.parse::<f64>().ok()? as f32) }))
        .collect();
    record(&TfEvent { wall_time, step, file_version: None, summary: Some(Summary { value }) })
}

/// Seconds since the Unix epoch.
pub fn wall_time() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// One TFRecord: length, its masked CRC, the bytes, their masked CRC.
fn record(event: &TfEvent) -> Vec<u8> {
    let data = prost::Message::encode_to_vec(event);
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend(len);
    out.extend(masked_crc(&len).to_le_bytes());
    out.extend(&data);
    out.extend(masked_crc(&data).to_le_bytes());
    out
}

/// TFRecord's masked CRC-32C: rotated right by 15 bits plus a constant.
fn masked_crc(bytes: &[u8]) -> u32 {
    crc32c(bytes).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: the
/// files are a few kilobytes.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check value of CRC-32C (RFC 3720's test vector).
    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    /// Reads the records back (checking both CRCs) and decodes the events:
    /// the version first, then each row's figures under their columns' names.
    #[test]
    fn rows_become_scalar_events() {
        let csv = "epoch,phase,lr,train_loss,val_loss,val_accuracy\n0,,0.001,1.5,,\n1,,0.001,0.75,0.5,0.9\n";
        let bytes = file_from_csv(csv);
        let mut events = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            assert_eq!(u32::from_le_bytes(rest[8..12].try_into().unwrap()), masked_crc(&rest[..8]));
            let data = &rest[12..12 + len];
            assert_eq!(u32::from_le_bytes(rest[12 + len..16 + len].try_into().unwrap()), masked_crc(data));
            events.push(<TfEvent as prost::Message>::decode(data).unwrap());
            rest = &rest[16 + len..];
        }
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
        let scalars = |e: &TfEvent| -> Vec<(String, f32)> {
            e.summary.as_ref().unwrap().value.iter().map(|v| (v.tag.clone(), v.simple_value.unwrap())).collect()
        };
        assert_eq!(events[1].step, 0);
        assert_eq!(scalars(&events[1]), [("lr".into(), 0.001), ("train_loss".into(), 1.5)]);
        assert_eq!(events[2].step, 1);
        assert_eq!(
            scalars(&events[2]),
            [("lr".into(), 0.001), ("train_loss".into(), 0.75), ("val_loss".into(), 0.5), ("val_accuracy".into(), 0.9)]
        );
    }
}
