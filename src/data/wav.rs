//! Audio in WAV files: `wav("dir_or_file")`, read with the `hound` crate.
//!
//! PCM of 8, 16, 24 or 32 bits and 32-bit float, any number of channels.
//! Integer samples are scaled to [-1, 1) by 2^(bits−1) (8-bit WAV, stored
//! unsigned, is first centred on 128): the same values as `torchaudio.load`
//! with its default `normalize=True`. Float samples are taken as they are.
//! The channels are the input's first axis: a file is `[channels, frames]`.
//! Every file of a source must have the same sample rate and channel count
//! (an error names the first that differs).
//!
//! Two layouts ([`super::folders`]):
//! - class subfolders of `.wav` files: classification, one example per file.
//!   Every clip must have exactly the model's input length (no silent
//!   cutting or padding: the error names the first clip that differs, and
//!   its length);
//! - one file, or a folder of `.wav` files: denoising, each recording cut
//!   into windows of the input's length `stride` apart (windows never span
//!   two files; files in name order), noise added as `signal(...)` adds it
//!   ([`super::noisy_windows`], the same code).

use std::io::Cursor;
use std::path::Path;

use super::folders::{self, Layout};
use super::{DataError, Dataset, Label, Loaded, Targets};
use crate::language::check::environment::{Environment, RealEnvironment};

/// The extensions a `wav` source reads.
pub const EXTENSIONS: &[&str] = &["wav", "wave"];
/// How messages name them.
pub const KINDS: &str = "`.wav`";

/// What a WAV file's header says.
#[derive(Clone, Debug, PartialEq)]
pub struct WavFacts {
    pub channels: usize,
    /// Sample rate in Hz.
    pub rate: u32,
    /// Samples per channel.
    pub frames: usize,
    /// `16-bit PCM`, `32-bit float`.
    pub format: String,
}

impl WavFacts {
    /// Rate and channels in words, to compare files: `16000 Hz, 2 channels`.
    pub fn kind(&self) -> String {
        format!("{} Hz, {} channel{}", self.rate, self.channels, if self.channels == 1 { "" } else { "s" })
    }
}

fn hound_error(path: &Path, e: hound::Error) -> DataError {
    let why = match e {
        // The bytes are in memory: an I/O error is the end of them.
        hound::Error::IoError(_) => "the file ends inside its header".to_string(),
        hound::Error::FormatError(what) => format!("not a WAV file that can be read: {what}"),
        hound::Error::Unsupported => "a WAV encoding that is not supported: only PCM (8, 16, 24, 32 bits) and 32-bit float".into(),
        other => format!("not a WAV file that can be read: {other}"),
    };
    DataError::file(path, why)
}

/// A header's facts, and where its samples start.
fn header(path: &Path, bytes: &[u8]) -> Result<(WavFacts, u64, hound::WavSpec), DataError> {
    let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| hound_error(path, e))?;
    let spec = reader.spec();
    let format = match spec.sample_format {
        hound::SampleFormat::Int => format!("{}-bit PCM", spec.bits_per_sample),
        hound::SampleFormat::Float => format!("{}-bit float", spec.bits_per_sample),
    };
    let facts = WavFacts { channels: spec.channels as usize, rate: spec.sample_rate, frames: reader.duration() as usize, format };
    Ok((facts, reader.into_inner().position(), spec))
}

/// A file's header, read through `env` without its samples (the checker's
/// probe): its facts, and an error when the file is shorter than the
/// header announces.
pub fn probe_wav(env: &dyn Environment, path: &Path) -> Result<WavFacts, DataError> {
    let (start, size) = env.read_start(path, 1 << 16).map_err(|e| DataError::file(path, format!("the file cannot be read: {e}")))?;
    let parsed = match header(path, &start) {
        // A header longer than what was read (large metadata chunks): read it all.
        Err(_) if (start.len() as u64) < size => header(path, &super::read_bytes(env, path)?),
        other => other,
    };
    let (facts, data_start, spec) = parsed?;
    let needed = data_start + (facts.frames * facts.channels) as u64 * (spec.bits_per_sample as u64).div_ceil(8);
    if needed > size {
        let holds = size.saturating_sub(data_start) / (facts.channels as u64 * (spec.bits_per_sample as u64).div_ceil(8)).max(1);
        return Err(DataError::file(
            path,
            format!("the file is cut short: its header announces {} frames, it holds {holds} ({size} of {needed} bytes)", facts.frames),
        ));
    }
    Ok(facts)
}

/// A whole file: its facts and its samples, channel-major (`channels ×
/// frames`), scaled as the module says.
pub fn read_wav(env: &dyn Environment, path: &Path) -> Result<(WavFacts, Vec<f32>), DataError> {
    let bytes = super::read_bytes(env, path)?;
    let (facts, _, spec) = header(path, &bytes)?;
    let mut reader = hound::WavReader::new(Cursor::new(&bytes[..])).map_err(|e| hound_error(path, e))?;
    let at = |i: usize, e: hound::Error| {
        let why = match e {
            // The bytes are in memory: an I/O error is the end of them.
            hound::Error::IoError(_) => "the file ends here, cut short".to_string(),
            other => hound_error(path, other).message,
        };
        DataError::file(path, format!("frame {} of {}: {why}", i / facts.channels.max(1), facts.frames))
    };
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => {
            reader.samples::<f32>().enumerate().map(|(i, s)| s.map_err(|e| at(i, e))).collect::<Result<_, _>>()?
        }
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f64;
            let samples = reader.samples::<i32>().enumerate().map(|(i, s)| s.map(|v| (v as f64 * scale) as f32).map_err(|e| at(i, e)));
            samples.collect::<Result<_, _>>()?
        }
    };
    let mut planar = vec![0.0; interleaved.len()];
    for (i, &x) in interleaved.iter().enumerate() {
        planar[(i % facts.channels) * facts.frames + i / facts.channels] = x;
    }
    Ok((facts, planar))
}

/// The first of `facts` (in the source's order) whose rate or channel
/// count differs from the first file's: its index.
pub fn first_difference(facts: &[WavFacts]) -> Option<usize> {
    let first = facts.first()?;
    facts.iter().position(|f| f.rate != first.rate || f.channels != first.channels)
}

/// The message for a file that differs from the first.
pub fn difference_message(first: &str, first_facts: &WavFacts, file: &str, facts: &WavFacts) -> String {
    format!("`{file}` is {}, but the first file `{first}` is {}: every file of a source needs the same", facts.kind(), first_facts.kind())
}

/// The layout of a `wav` source's path.
pub fn wav_layout(env: &dyn Environment, path: &Path) -> Result<Layout, DataError> {
    folders::layout(env, path, EXTENSIONS, KINDS, true)
}

/// Every file of a source, read, with the same rate and channels.
fn read_all(env: &dyn Environment, root: &Path, layout: &Layout) -> Result<Vec<(WavFacts, Vec<f32>)>, DataError> {
    let files = layout.files();
    let mut read: Vec<(WavFacts, Vec<f32>)> = Vec::with_capacity(files.len());
    for file in &files {
        let (facts, samples) = read_wav(env, file)?;
        if let Some((first, _)) = read.first()
            && (first.rate != facts.rate || first.channels != facts.channels)
        {
            let message = difference_message(&folders::shown(root, files[0]), first, &folders::shown(root, file), &facts);
            return Err(DataError::file(root, message));
        }
        read.push((facts, samples));
    }
    Ok(read)
}

/// The class names of a classification layout, in class order.
fn class_names(layout: &Layout) -> Option<Vec<Label>> {
    match layout {
        Layout::Classes(classes) => Some(classes.iter().map(|c| Label::Name(c.name.clone())).collect()),
        Layout::Files(_) => None,
    }
}

/// `wav(path)` loaded for the model's `input` (`[channels, length]`).
/// `known` are the training classes, for a validation or test source.
pub(super) fn load_wav(path: &Path, windows: super::Windowing, input: &[usize], known: Option<&[Label]>) -> Result<Loaded, DataError> {
    let env = RealEnvironment::default();
    let layout = wav_layout(&env, path)?;
    let read = read_all(&env, path, &layout)?;
    let [channels, length] = input else {
        return Err(DataError::file(path, format!("`wav` gives `[channels, length]` examples, but the model's input is {input:?}")));
    };
    if read[0].0.channels != *channels {
        return Err(DataError::file(
            path,
            format!("the files have {} channels, the model's input {input:?} has {channels}", read[0].0.channels),
        ));
    }
    let Layout::Classes(classes) = &layout else {
        let recordings: Vec<(&Path, &[f32])> = layout.files().into_iter().zip(&read).map(|(p, (_, s))| (p, &s[..])).collect();
        let data = super::noisy_windows(&recordings, *channels, *length, windows, "wav")?;
        return Ok(Loaded { data, classes: None, labels: None });
    };
    let names = class_names(&layout).unwrap_or_default();
    let labels = known.map_or_else(|| names.clone(), <[Label]>::to_vec);
    let mut inputs = super::buffer(read.len(), channels * length, "`wav`")?;
    let mut targets = Vec::with_capacity(read.len());
    let mut files = layout.files().into_iter();
    for (class, folder) in classes.iter().enumerate() {
        let index = labels.binary_search(&names[class]).map_err(|_| unknown_class(path, &folder.name, &labels))?;
        for (facts, samples) in read.iter().skip(targets.len()).take(folder.files.len()) {
            let file = files.next().unwrap_or(path);
            if facts.frames != *length {
                return Err(DataError::file(
                    file,
                    format!(
                        "the clip has {} samples, but the model's input length is {length}: every clip must have exactly that many",
                        facts.frames
                    ),
                ));
            }
            inputs.extend_from_slice(samples);
            targets.push(index);
        }
    }
    let len = targets.len();
    let data = Dataset { inputs, targets: Targets::Classes(targets), len, shape: input.to_vec(), stream: None };
    Ok(Loaded { data, classes: Some(labels.len()), labels: Some(labels) })
}

/// A class folder of a validation or test source that training lacks.
pub(super) fn unknown_class(path: &Path, name: &str, known: &[Label]) -> DataError {
    DataError::file(
        path,
        format!(
            "the class folder `{name}` is not a class of the training data, whose classes are {}: a class without training examples cannot be learnt",
            super::label_list(known)
        ),
    )
}

/// The class names of a `wav` training source (`None` for recordings).
pub fn class_labels_wav(path: &Path) -> Result<Option<Vec<Label>>, DataError> {
    Ok(class_names(&wav_layout(&RealEnvironment::default(), path)?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::language::check::environment::FakeEnvironment;

    /// A WAV file in memory: `frames` of `channels` given by `sample(frame, channel)`.
    pub(crate) fn wav_bytes(spec: hound::WavSpec, frames: usize, sample: impl Fn(usize, usize) -> f64) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut out, spec).unwrap();
        for f in 0..frames {
            for c in 0..spec.channels as usize {
                let x = sample(f, c);
                match spec.sample_format {
                    hound::SampleFormat::Float => writer.write_sample(x as f32).unwrap(),
                    hound::SampleFormat::Int => writer.write_sample(x as i32).unwrap(),
                }
            }
        }
        writer.finalize().unwrap();
        out.into_inner()
    }

    pub(crate) fn pcm(bits: u16, channels: u16, rate: u32) -> hound::WavSpec {
        hound::WavSpec { channels, sample_rate: rate, bits_per_sample: bits, sample_format: hound::SampleFormat::Int }
    }

    #[test]
    fn integer_samples_are_scaled_as_torchaudio_scales_them_and_channels_become_rows() {
        for (bits, full) in [(8u16, 128.0), (16, 32768.0), (24, 8388608.0), (32, 2147483648.0)] {
            // Frame f: channel 0 holds −full (the lowest value), channel 1 holds full/2.
            let bytes = wav_bytes(pcm(bits, 2, 8000), 3, |_, c| if c == 0 { -full } else { full / 2.0 });
            let env = FakeEnvironment::with_memory(1 << 30).file("/a.wav", bytes);
            let (facts, samples) = read_wav(&env, Path::new("/a.wav")).unwrap();
            assert_eq!(facts, WavFacts { channels: 2, rate: 8000, frames: 3, format: format!("{bits}-bit PCM") });
            assert_eq!(samples, [-1.0, -1.0, -1.0, 0.5, 0.5, 0.5], "{bits} bits");
            assert_eq!(probe_wav(&env, Path::new("/a.wav")).unwrap(), facts);
        }
        let float = hound::WavSpec { sample_format: hound::SampleFormat::Float, ..pcm(32, 1, 16000) };
        let env = FakeEnvironment::with_memory(1 << 30).file("/f.wav", wav_bytes(float, 2, |f, _| 1.5 * f as f64));
        assert_eq!(read_wav(&env, Path::new("/f.wav")).unwrap().1, [0.0, 1.5]);
    }

    #[test]
    fn corrupt_and_cut_files_are_named() {
        let whole = wav_bytes(pcm(16, 1, 8000), 100, |f, _| f as f64);
        let env = FakeEnvironment::with_memory(1 << 30)
            .file("/cut.wav", whole[..whole.len() - 10].to_vec())
            .file("/text.wav", b"hello, this is not audio".to_vec());
        let cut = probe_wav(&env, Path::new("/cut.wav")).unwrap_err().to_string();
        assert!(cut.contains("/cut.wav: the file is cut short: its header announces 100 frames, it holds 95"), "{cut}");
        let cut = read_wav(&env, Path::new("/cut.wav")).unwrap_err().to_string();
        assert!(cut.contains("/cut.wav: frame 95 of 100: the file ends here, cut short"), "{cut}");
        let text = probe_wav(&env, Path::new("/text.wav")).unwrap_err().to_string();
        assert!(text.contains("/text.wav: not a WAV file"), "{text}");
    }

    #[test]
    fn files_of_other_rates_or_channels_are_found() {
        let facts = |rate, channels| WavFacts { channels, rate, frames: 1, format: String::new() };
        assert_eq!(first_difference(&[facts(8000, 1), facts(8000, 1), facts(16000, 1), facts(8000, 2)]), Some(2));
        assert_eq!(first_difference(&[facts(8000, 1), facts(8000, 1)]), None);
    }
}
