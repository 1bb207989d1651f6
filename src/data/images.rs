//! Images in class folders: `images("dir", size=[28, 28], grayscale=true)`,
//! torchvision's `ImageFolder` layout and order ([`super::folders`]), PNG
//! and JPEG files decoded by the `image` crate.
//!
//! Each image goes through what `ImageFolder` with
//! `Compose([Grayscale(), Resize(size), ToTensor()])` does to it:
//! - decoded and converted to 8-bit RGB, as torchvision's loader's
//!   `convert("RGB")`: an alpha channel is dropped (not composited), a
//!   gray image repeated in the three channels, 16-bit samples reduced to 8;
//! - `grayscale=true`: one channel by the ITU-R 601 luma weights, with PIL's
//!   `convert("L")` integer arithmetic, L = (19595 R + 38470 G + 7471 B +
//!   2^15) >> 16, i.e. 0.299 R + 0.587 G + 0.114 B rounded (the `image`
//!   crate's own gray conversion uses other weights, Rec. 709's, and is not
//!   used);
//! - an image whose size is not `size` is resized to exactly `size`
//!   (height, width) by bilinear interpolation: the `image` crate's
//!   `Triangle` filter, which widens the filter when shrinking (antialiasing)
//!   as PIL's `BILINEAR` does, on the 8-bit image as PIL resizes it. Values
//!   may differ from PIL's by a unit of 1/255 where the two round
//!   differently. (Unlike `Resize(n)` with one number, the aspect ratio is
//!   not kept: `size` is both sides.)
//! - values scaled to [0, 1] by 1/255 (`ToTensor`); the example is
//!   `[channels, height, width]`, channels 1 (gray) or 3 (R, G, B).

use std::io::Cursor;
use std::path::Path;

use image::{ImageBuffer, Luma, Rgb, RgbImage};

use super::folders::{self, Layout};
use super::{DataError, Dataset, Label, Loaded, Targets};
use crate::language::check::environment::{Environment, RealEnvironment};

/// The extensions an `images` source reads.
pub const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];
/// How messages name them.
pub const KINDS: &str = "PNG or JPEG";

/// The layout of an `images` source's folder: class folders only.
pub fn image_layout(env: &dyn Environment, path: &Path) -> Result<Layout, DataError> {
    folders::layout(env, path, EXTENSIONS, KINDS, false)
}

fn decode_error(path: &Path, e: image::ImageError) -> DataError {
    DataError::file(path, format!("the image cannot be decoded: {e}"))
}

/// An image's width and height from its header, read through `env` (the
/// checker's probe): an error for a file that is no PNG or JPEG.
pub fn probe_image(env: &dyn Environment, path: &Path) -> Result<(u32, u32), DataError> {
    let (start, size) = env.read_start(path, 4096).map_err(|e| DataError::file(path, format!("the file cannot be read: {e}")))?;
    let dimensions = |bytes: &[u8]| -> Result<(u32, u32), DataError> {
        let reader = image::ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| DataError::file(path, e.to_string()))?;
        match reader.format() {
            Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => reader.into_dimensions().map_err(|e| decode_error(path, e)),
            Some(other) => Err(DataError::file(path, format!("a {other:?} image: only PNG and JPEG are read"))),
            None if bytes.is_empty() => Err(DataError::file(path, "the file is empty")),
            None => Err(DataError::file(path, "not a PNG or JPEG file (its first bytes are neither's signature)")),
        }
    };
    match dimensions(&start) {
        // A header past the first bytes read (large metadata): read it all.
        Err(_) if (start.len() as u64) < size => dimensions(&super::read_bytes(env, path)?),
        other => other,
    }
}

/// PIL's `convert("L")` of an RGB image.
pub fn luma(rgb: &RgbImage) -> ImageBuffer<Luma<u8>, Vec<u8>> {
    ImageBuffer::from_fn(rgb.width(), rgb.height(), |x, y| {
        let Rgb([r, g, b]) = *rgb.get_pixel(x, y);
        Luma([((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8])
    })
}

/// One image as the module says: `[channels, height, width]` values in [0, 1].
pub fn read_image(env: &dyn Environment, path: &Path, size: [usize; 2], grayscale: bool) -> Result<Vec<f32>, DataError> {
    let bytes = env.read(path).map_err(|e| DataError::file(path, format!("the file cannot be read: {e}")))?;
    let image = image::load_from_memory(&bytes).map_err(|e| decode_error(path, e))?;
    let rgb = image.to_rgb8();
    let [height, width] = size.map(|s| s as u32);
    // An image of the right size is copied as it is (`resize` does).
    let bilinear = image::imageops::FilterType::Triangle;
    let planes: Vec<Vec<u8>> = if grayscale {
        vec![image::imageops::resize(&luma(&rgb), width, height, bilinear).into_raw()]
    } else {
        let resized = image::imageops::resize(&rgb, width, height, bilinear).into_raw();
        (0..3).map(|c| resized.iter().skip(c).step_by(3).copied().collect()).collect()
    };
    Ok(planes.into_iter().flatten().map(|v| v as f32 / 255.0).collect())
}

/// `images(path, size, grayscale)` loaded for the model's `input`; `known`
/// are the training classes, for a validation or test source.
pub(super) fn load_images(
    path: &Path,
    size: [usize; 2],
    grayscale: bool,
    input: &[usize],
    known: Option<&[Label]>,
) -> Result<Loaded, DataError> {
    let env = RealEnvironment::default();
    let channels = if grayscale { 1 } else { 3 };
    if input != [channels, size[0], size[1]] {
        return Err(DataError::file(
            path,
            format!("the images are {:?}, but the model's input is {input:?}", [channels, size[0], size[1]]),
        ));
    }
    let Layout::Classes(classes) = image_layout(&env, path)? else {
        return Err(DataError::file(path, "the folder holds no class folder"));
    };
    let names: Vec<Label> = classes.iter().map(|c| Label::Name(c.name.clone())).collect();
    let labels = known.map_or_else(|| names.clone(), <[Label]>::to_vec);
    let examples: usize = classes.iter().map(|c| c.files.len()).sum();
    let mut inputs = super::buffer(examples, channels * size[0] * size[1], "`images`")?;
    let mut targets = Vec::with_capacity(examples);
    for (class, folder) in classes.iter().enumerate() {
        let index = labels.binary_search(&names[class]).map_err(|_| super::wav::unknown_class(path, &folder.name, &labels))?;
        for file in &folder.files {
            inputs.extend(read_image(&env, file, size, grayscale)?);
            targets.push(index);
        }
    }
    let data = Dataset { inputs, targets: Targets::Classes(targets), len: examples, shape: input.to_vec(), stream: None };
    Ok(Loaded { data, classes: Some(labels.len()), labels: Some(labels) })
}

/// The class names of an `images` training source.
pub fn class_labels_images(path: &Path) -> Result<Option<Vec<Label>>, DataError> {
    match image_layout(&RealEnvironment::default(), path)? {
        Layout::Classes(classes) => Ok(Some(classes.into_iter().map(|c| Label::Name(c.name)).collect())),
        Layout::Files(_) => Ok(None),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::language::check::environment::FakeEnvironment;

    /// An image file in memory, of `format`.
    pub(crate) fn encoded(image: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn env_with(name: &str, bytes: Vec<u8>) -> FakeEnvironment {
        FakeEnvironment::with_memory(1 << 30).file(Path::new("/i").join(name), bytes)
    }

    #[test]
    fn gray_is_pils_luma_and_values_are_scaled_to_one() {
        // Red, green, blue, white: PIL's convert("L") gives 76, 150, 29, 255.
        let rgb = RgbImage::from_raw(4, 1, vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]).unwrap();
        let env = env_with("a.png", encoded(image::DynamicImage::ImageRgb8(rgb), image::ImageFormat::Png));
        let gray = read_image(&env, Path::new("/i/a.png"), [1, 4], true).unwrap();
        assert_eq!(gray, [76.0 / 255.0, 150.0 / 255.0, 29.0 / 255.0, 1.0]);
        let color = read_image(&env, Path::new("/i/a.png"), [1, 4], false).unwrap();
        // Channel-major: the red plane, then green, then blue.
        assert_eq!(color, [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn alpha_is_dropped_and_other_sizes_are_resized_bilinearly() {
        let rgba = image::RgbaImage::from_raw(1, 1, vec![10, 20, 30, 0]).unwrap();
        let env = env_with("a.png", encoded(image::DynamicImage::ImageRgba8(rgba), image::ImageFormat::Png));
        assert_eq!(read_image(&env, Path::new("/i/a.png"), [1, 1], false).unwrap(), [10.0 / 255.0, 20.0 / 255.0, 30.0 / 255.0]);
        // A 2×1 gray ramp 0, 200 doubled to 4 wide: bilinear with pixel
        // centres aligned (as PIL) gives 0, 50, 150, 200.
        let ramp = image::GrayImage::from_raw(2, 1, vec![0, 200]).unwrap();
        let env = env_with("r.png", encoded(image::DynamicImage::ImageLuma8(ramp), image::ImageFormat::Png));
        let wide = read_image(&env, Path::new("/i/r.png"), [1, 4], true).unwrap();
        assert_eq!(wide.iter().map(|v| (v * 255.0).round() as u8).collect::<Vec<_>>(), [0, 50, 150, 200]);
    }

    #[test]
    fn headers_are_probed_and_bad_files_named() {
        let jpeg = encoded(image::DynamicImage::ImageRgb8(RgbImage::new(5, 3)), image::ImageFormat::Jpeg);
        let env = env_with("a.jpg", jpeg.clone()).file("/i/b.png", b"not an image at all".to_vec()).file("/i/c.jpg", jpeg[..40].to_vec());
        assert_eq!(probe_image(&env, Path::new("/i/a.jpg")).unwrap(), (5, 3));
        assert!(probe_image(&env, Path::new("/i/b.png")).unwrap_err().to_string().contains("/i/b.png: not a PNG or JPEG file"));
        assert!(
            read_image(&env, Path::new("/i/c.jpg"), [3, 5], true)
                .unwrap_err()
                .to_string()
                .contains("/i/c.jpg: the image cannot be decoded")
        );
    }
}
