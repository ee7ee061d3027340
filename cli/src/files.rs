//! Files the command line writes: never over an existing file, readable by the owner only.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{CliResult, io_error};

/// Creates `path` (which must not exist) readable and writable by the owner only.
pub fn create_private(path: &Path) -> CliResult<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map_err(|e| io_error("cannot create", path, &e))
}

/// Writes `bytes` to a new private file at `path`; on failure the partial file is removed.
pub fn write_private(path: &Path, bytes: &[u8]) -> CliResult<()> {
    let mut file = create_private(path)?;
    let result = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = result {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(io_error("cannot write", path, &e));
    }
    Ok(())
}

/// Makes an existing file readable and writable by the owner only (a no-op off Unix).
pub fn restrict(path: &Path) -> CliResult<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_error("cannot set the permissions of", path, &e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Reads a whole file.
pub fn read(what: &str, path: &Path) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| io_error(&format!("cannot read {what}"), path, &e))
}
