//! Files the library creates: private to their owner from the first byte (mode 0600, in
//! directories made 0700), never widened and narrowed afterwards.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates `path` (which must not exist) for reading and writing, mode 0600 on Unix.
pub(crate) fn create_private(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Creates the directory `dir` and its missing parents, each new one mode 0700 on Unix;
/// existing directories are left as they are.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}
