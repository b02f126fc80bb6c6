//! A directory of files from inline text, for tests that need an app or a repository.

/// A temp dir holding `files` (`path`, `text`), parent directories created.
pub fn dir_of(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}
