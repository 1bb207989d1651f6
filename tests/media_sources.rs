//! End to end: the `wav` and `images` sources train, on files this test
//! writes (tones in WAV files with `hound`, striped images with `image`).
// Trains the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

mod common;

use std::f64::consts::TAU;
use std::path::{Path, PathBuf};

/// A fresh folder for one test's files.
fn folder(name: &str) -> PathBuf {
    let dir = common::fresh_dir("media", name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 16-bit mono WAV at 16 kHz of `samples` (in [-1, 1]).
fn write_wav(path: &Path, samples: &[f64]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec { channels: 1, sample_rate: 16000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for &x in samples {
        writer.write_sample((x * 32767.0).round() as i16).unwrap();
    }
    writer.finalize().unwrap();
}

/// A tone of `hz` at 16 kHz, `len` samples, starting at `phase`.
fn tone(hz: f64, phase: f64, len: usize) -> Vec<f64> {
    (0..len).map(|i| 0.5 * (TAU * hz * i as f64 / 16000.0 + phase).sin()).collect()
}

#[test]
fn wav_clips_in_class_folders_learn_low_and_high_tones() {
    let dir = folder("tones");
    for i in 0..16 {
        let phase = i as f64 * 0.7;
        write_wav(&dir.join(format!("data/low/{i:02}.wav")), &tone(500.0, phase, 64));
        write_wav(&dir.join(format!("data/high/{i:02}.wav")), &tone(5000.0, phase, 64));
    }
    let source = "model tones {
      input [1, 64]
      conv(out=8, k=15, padding=same) @lowpass(cutoff=6000, fs=16000, mode=penalty, weight=0.01)
      relu
      global_avgpool
      linear(2)
    }
    data { train = wav(\"data\"); test_split = 0.25 }
    train { optimizer = adam(0.02); epochs = 40; batch = 8 }";
    let p = common::program(source, &dir);
    assert_eq!(p.data.classes, Some(2));
    let options = lpn::train::Options { out_dir: dir.join("out"), ..Default::default() };
    let report = lpn::train::train(&p, &options).unwrap();
    // Folder names sorted: `high` is class 0, `low` class 1.
    assert_eq!(report.class_labels.as_deref(), Some(&["high".to_string(), "low".into()][..]));
    let test = report.test.unwrap().accuracy.unwrap();
    assert!(test >= 0.85, "test accuracy {test}");
}

#[test]
fn a_wav_recording_trains_a_denoiser_on_noisy_windows() {
    let dir = folder("denoise");
    write_wav(&dir.join("speech.wav"), &tone(300.0, 0.0, 4096));
    let source = "model d {
      input [1, 64]
      conv(out=8, k=15, padding=same)
      relu
      conv(out=1, k=15, padding=same)
    }
    data wav(\"speech.wav\", noise=0.2, stride=16)
    train { optimizer = adam(0.01); epochs = 6; batch = 16 }";
    let p = common::program(source, &dir);
    let options = lpn::train::Options { out_dir: dir.join("out"), ..Default::default() };
    let report = lpn::train::train(&p, &options).unwrap();
    let (first, last) = (report.epochs.first().unwrap().train_loss, report.epochs.last().unwrap().train_loss);
    assert!(last < 0.5 * first, "training loss did not fall: {first} → {last}");
    // (4096 − 64) / 16 + 1 windows, 20% held out for validation.
    let examples = report.examples.unwrap();
    assert_eq!(examples.train + examples.val, 253);
}

/// Stripes of `period` pixels, across (`horizontal`) or down, `size`×`size`.
fn stripes(size: u32, horizontal: bool, shift: u32) -> image::DynamicImage {
    let img = image::RgbImage::from_fn(size, size, |x, y| {
        let along = if horizontal { y } else { x };
        if ((along + shift) / 2).is_multiple_of(2) { image::Rgb([250, 40, 40]) } else { image::Rgb([10, 10, 90]) }
    });
    image::DynamicImage::ImageRgb8(img)
}

#[test]
fn images_in_class_folders_learn_horizontal_and_vertical_stripes() {
    let dir = folder("stripes");
    for i in 0..12u32 {
        for (class, horizontal) in [("across", true), ("down", false)] {
            let folder = dir.join("data").join(class);
            std::fs::create_dir_all(&folder).unwrap();
            // PNGs of the input's size, and JPEGs of another that are resized.
            stripes(8, horizontal, i % 4).save(folder.join(format!("{i:02}.png"))).unwrap();
            stripes(12, horizontal, i % 4).save(folder.join(format!("{i:02}.jpg"))).unwrap();
        }
    }
    let source = "model s {
      input [1, 8, 8]
      conv(out=8, k=3, padding=same)
      relu
      global_avgpool
      linear(2)
    }
    data { train = images(\"data\", grayscale=true); test_split = 0.25 }
    train { optimizer = adam(0.02); epochs = 40; batch = 8 }";
    let p = common::program(source, &dir);
    let options = lpn::train::Options { out_dir: dir.join("out"), ..Default::default() };
    let report = lpn::train::train(&p, &options).unwrap();
    assert_eq!(report.class_labels.as_deref(), Some(&["across".to_string(), "down".into()][..]));
    let test = report.test.unwrap().accuracy.unwrap();
    assert!(test >= 0.85, "test accuracy {test}");
}
