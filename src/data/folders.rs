//! Folders of media files, as the `wav` and `images` sources read them:
//! torchvision's `ImageFolder` layout (one subfolder per class, its name the
//! class) or, for `wav`, a flat folder of recordings.
//!
//! The order is `ImageFolder`'s, so class indices and example order match a
//! PyTorch run on the same folder: class folders sorted by name (as Python's
//! `sorted` compares strings: by code point, which is UTF-8 byte order),
//! hidden ones included; the files of a class found in its folder and the
//! folders below it (`os.walk`), folders in sorted path order and files
//! sorted by name within each; only files with the source's extensions
//! (any case) count, the rest are skipped. A class folder without such a file
//! is an error, as in torchvision. Folder names are always class *names*,
//! never numbers: folders `10` and `2` are classes 0 and 1, as in
//! `ImageFolder` (a `ucr` file's labels `10` and `2` would be classes 1 and 0).
//! Listing goes through the checker's [`Environment`], so `lpnc check`
//! reports the same problems as training.

use std::path::{Path, PathBuf};

use super::DataError;
use crate::language::check::environment::{EntryKind, Environment};

/// One class: its folder's name and its files, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassFolder {
    pub name: String,
    pub files: Vec<PathBuf>,
}

/// What a source's path holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Layout {
    /// Class subfolders (classification).
    Classes(Vec<ClassFolder>),
    /// One file, or a folder of files without subfolders (recordings).
    Files(Vec<PathBuf>),
}

impl Layout {
    /// Every file, classes in order.
    pub fn files(&self) -> Vec<&Path> {
        match self {
            Layout::Classes(classes) => classes.iter().flat_map(|c| c.files.iter().map(PathBuf::as_path)).collect(),
            Layout::Files(files) => files.iter().map(PathBuf::as_path).collect(),
        }
    }
}

/// Whether a file name ends in one of `extensions` (without the dot, any case).
fn has_extension(name: &str, extensions: &[&str]) -> bool {
    Path::new(name).extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The entries of a folder, sorted by name, each with what it is.
fn sorted_entries(env: &dyn Environment, folder: &Path) -> Result<Vec<(String, EntryKind)>, DataError> {
    let mut names = env.entries(folder).map_err(|e| DataError::file(folder, format!("the folder cannot be read: {e}")))?;
    names.sort();
    Ok(names.into_iter().filter_map(|name| env.kind(&folder.join(&name)).map(|kind| (name, kind))).collect())
}

/// The files with `extensions` in `folder` and every folder below it, in
/// `sorted(os.walk(folder))` order.
fn walk(env: &dyn Environment, folder: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, DataError> {
    let mut folders = vec![folder.to_path_buf()];
    let mut pending = vec![folder.to_path_buf()];
    while let Some(next) = pending.pop() {
        for (name, kind) in sorted_entries(env, &next)? {
            if kind == EntryKind::Folder {
                folders.push(next.join(&name));
                pending.push(next.join(&name));
            }
        }
    }
    // `sorted(os.walk(…))` sorts by the folder's path as a string.
    folders.sort_by(|a, b| a.to_string_lossy().cmp(&b.to_string_lossy()));
    let mut files = Vec::new();
    for each in folders {
        for (name, kind) in sorted_entries(env, &each)? {
            if kind == EntryKind::File && has_extension(&name, extensions) {
                files.push(each.join(name));
            }
        }
    }
    Ok(files)
}

/// What `path` holds for a source reading files with `extensions` (named
/// `kinds` in messages, e.g. "`.wav`"). With `flat_allowed`, a single file
/// or a folder of such files (and no subfolder) is [`Layout::Files`];
/// otherwise files beside the class folders are skipped, as `ImageFolder`
/// skips them. Errors are about the layout, never a file's contents.
pub fn layout(env: &dyn Environment, path: &Path, extensions: &[&str], kinds: &str, flat_allowed: bool) -> Result<Layout, DataError> {
    match env.kind(path) {
        Some(EntryKind::File) if flat_allowed => return Ok(Layout::Files(vec![path.to_path_buf()])),
        Some(EntryKind::File) => {
            return Err(DataError::file(path, "is a file, but this source reads a folder with one subfolder of files per class"));
        }
        Some(EntryKind::Other(what)) => return Err(DataError::file(path, format!("is not a file or a folder: it is {what}"))),
        None => return Err(DataError::file(path, "does not exist")),
        Some(EntryKind::Folder) => {}
    }
    let entries = sorted_entries(env, path)?;
    let class_names: Vec<&String> = entries.iter().filter(|(_, k)| *k == EntryKind::Folder).map(|(n, _)| n).collect();
    let flat: Vec<PathBuf> =
        entries.iter().filter(|(n, k)| *k == EntryKind::File && has_extension(n, extensions)).map(|(n, _)| path.join(n)).collect();
    match (class_names.is_empty(), flat.is_empty(), flat_allowed) {
        (true, false, true) => return Ok(Layout::Files(flat)),
        (true, _, _) => {
            let what = if flat_allowed { format!("no {kinds} file and no class folder") } else { "no class folder".to_string() };
            return Err(DataError::file(path, format!("the folder holds {what}")));
        }
        (false, false, true) => {
            return Err(DataError::file(
                path,
                format!(
                    "the folder holds both {kinds} files (`{}`) and folders (`{}`): a folder of recordings, or one subfolder per class, not both",
                    flat[0].file_name().unwrap_or_default().to_string_lossy(),
                    class_names[0]
                ),
            ));
        }
        (false, _, _) => {}
    }
    let mut classes = Vec::new();
    for name in class_names {
        let files = walk(env, &path.join(name), extensions)?;
        if files.is_empty() {
            return Err(DataError::file(&path.join(name), format!("the class folder `{name}` holds no {kinds} file")));
        }
        classes.push(ClassFolder { name: name.clone(), files });
    }
    if classes.len() < 2 {
        return Err(DataError::file(
            path,
            format!("the folder has one class folder (`{}`); classification needs at least two", classes[0].name),
        ));
    }
    Ok(Layout::Classes(classes))
}

/// A file's path relative to the source's folder, for messages (`dog/1.png`).
pub fn shown(root: &Path, file: &Path) -> String {
    file.strip_prefix(root).ok().filter(|p| !p.as_os_str().is_empty()).unwrap_or(file).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::check::environment::FakeEnvironment;

    fn env(files: &[&str]) -> FakeEnvironment {
        files.iter().fold(FakeEnvironment::with_memory(1 << 30), |env, f| env.file(Path::new("/d").join(f), vec![0u8]))
    }

    #[test]
    fn classes_are_sorted_by_name_as_image_folder_sorts_them_and_files_are_walked_in_order() {
        let env = env(&["b/2.wav", "b/1.WAV", "10/x.wav", "2/y.wav", "2/sub/a.wav", "2/notes.txt", "B/z.wav"]);
        let Layout::Classes(classes) = layout(&env, Path::new("/d"), &["wav"], "`.wav`", true).unwrap() else { panic!("classes") };
        let names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
        // Python: sorted(["b", "10", "2", "B"]) == ["10", "2", "B", "b"].
        assert_eq!(names, ["10", "2", "B", "b"]);
        assert_eq!(classes[1].files, [PathBuf::from("/d/2/y.wav"), PathBuf::from("/d/2/sub/a.wav")]);
        assert_eq!(classes[3].files, [PathBuf::from("/d/b/1.WAV"), PathBuf::from("/d/b/2.wav")]);
    }

    #[test]
    fn a_flat_folder_or_one_file_is_recordings() {
        let env = env(&["b.wav", "a.wav", "readme.md"]);
        assert_eq!(
            layout(&env, Path::new("/d"), &["wav"], "`.wav`", true).unwrap(),
            Layout::Files(vec!["/d/a.wav".into(), "/d/b.wav".into()])
        );
        assert_eq!(layout(&env, Path::new("/d/a.wav"), &["wav"], "`.wav`", true).unwrap(), Layout::Files(vec!["/d/a.wav".into()]));
    }

    #[test]
    fn bad_layouts_are_named() {
        let message = |files: &[&str], flat| layout(&env(files), Path::new("/d"), &["wav"], "`.wav`", flat).unwrap_err().to_string();
        assert!(
            message(&["a/x.wav", "b/y.txt"], true).contains("class folder `b` holds no `.wav` file"),
            "{}",
            message(&["a/x.wav", "b/y.txt"], true)
        );
        assert!(message(&["x.txt"], true).contains("no `.wav` file and no class folder"));
        assert!(message(&["x.png"], false).contains("holds no class folder"));
        assert!(message(&["a/x.wav", "y.wav"], true).contains("both `.wav` files (`y.wav`) and folders (`a`)"));
        assert!(message(&["a/x.wav"], true).contains("one class folder (`a`)"));
        // Files beside class folders are skipped where a flat folder means nothing.
        assert!(layout(&env(&["a/x.png", "b/y.png", "z.png"]), Path::new("/d"), &["png"], "image", false).is_ok());
    }
}
