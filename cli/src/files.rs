//! Files the command line writes (never over an existing file, readable by the owner only from
//! their first byte) and reads (never more than a stated bound).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{CliError, CliResult, io_error, quote};

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

/// The largest key file read: a key is 32 raw bytes or 64 hex characters and a newline.
pub const KEY_FILE_MAX: usize = 256;

/// The largest passphrase file read.
pub const PASSPHRASE_FILE_MAX: usize = 4096;

/// The largest secret backup (`restore`) or import file read: 64 MiB (a secret's versions
/// with values at the vault's 4 MiB maximum, or thousands of secrets in one import).
pub const BLOB_MAX: usize = 64 * 1024 * 1024;

/// Opens `path` for reading, with messages that name it.
pub fn open(what: &str, path: &Path) -> CliResult<File> {
    File::open(path).map_err(|e| io_error(&format!("cannot read {what}"), path, &e))
}

/// Reads at most `max` bytes of a file: a larger file (or a device like `/dev/zero`) is an
/// error after `max + 1` bytes, never read whole.
pub fn read_bounded(what: &str, path: &Path, max: usize) -> CliResult<Zeroizing<Vec<u8>>> {
    let file = open(what, path)?;
    read_file_bounded(what, path, file, max)
}

/// [`read_bounded`] of a file already open.
pub fn read_file_bounded(
    what: &str,
    path: &Path,
    file: File,
    max: usize,
) -> CliResult<Zeroizing<Vec<u8>>> {
    let shown = format!("{what} {}", quote(&path.display().to_string()));
    read_stream_bounded(&shown, file, max)
}

/// Reads at most `max` bytes from `reader` (through `Read::take`, `max + 1` bytes at most);
/// more is an error naming `what`. The buffer grows by copying into a new zeroizing buffer,
/// so no copy of the bytes read is left behind unwiped.
pub fn read_stream_bounded(
    what: &str,
    reader: impl Read,
    max: usize,
) -> CliResult<Zeroizing<Vec<u8>>> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut reader = reader.take(limit);
    let mut buf = Zeroizing::new(Vec::with_capacity(4096));
    let mut chunk = Zeroizing::new([0u8; 8192]);
    loop {
        let n = match reader.read(&mut chunk[..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::new(format!("cannot read {what}: {e}"))),
        };
        if buf.len() + n > buf.capacity() {
            let mut bigger =
                Zeroizing::new(Vec::with_capacity((buf.len() + n).max(buf.capacity() * 2)));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > max {
            return Err(CliError::new(format!(
                "{what} is too large: the limit is {max} bytes"
            )));
        }
    }
    Ok(buf)
}
