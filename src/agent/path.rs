//! Where a vault's holder listens, and the checks on the directory that holds its socket.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The effective user id of this process.
pub(crate) fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The directory of holder sockets: `$XDG_RUNTIME_DIR/tresor`, else `/tmp/tresor-<uid>`.
///
/// ```
/// let dir = tresor::agent::socket_dir();
/// assert!(dir.is_absolute());
/// ```
pub fn socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() => d.join("tresor"),
        _ => PathBuf::from(format!("/tmp/tresor-{}", current_uid())),
    }
}

/// The socket of the holder of the vault file at `vault`: in [`socket_dir`], named by the first
/// 16 hexadecimal characters of the BLAKE3 hash of the file's canonical path. The file must
/// exist (its path is made canonical).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("app.tresor");
/// # std::fs::write(&path, b"").unwrap();
/// let socket = tresor::agent::socket_path(&path)?;
/// assert_eq!(socket.extension().and_then(|e| e.to_str()), Some("sock"));
/// assert_eq!(socket, tresor::agent::socket_path(dir.path().join(".").join("app.tresor"))?);
/// # Ok::<(), tresor::Error>(())
/// ```
pub fn socket_path(vault: impl AsRef<Path>) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let canonical = std::fs::canonicalize(vault.as_ref())?;
    let hash = blake3::hash(canonical.as_os_str().as_bytes());
    let name = crate::crypto::hex(&hash.as_bytes()[..8]);
    Ok(socket_dir().join(format!("{name}.sock")))
}

fn refused(dir: &Path, reason: String) -> Error {
    Error::Agent {
        socket: dir.to_path_buf(),
        reason,
    }
}

/// Creates `dir` (0700) when missing, then checks it as [`check_private_dir`] does.
pub(crate) fn prepare_dir(dir: &Path) -> Result<()> {
    if std::fs::symlink_metadata(dir).is_err() {
        crate::files::create_private_dir(dir)?;
    }
    check_private_dir(dir)
}

/// A socket directory must be a directory (not a link) of this user that no one else may
/// enter: otherwise another user could put a socket of theirs where a client looks.
pub(crate) fn check_private_dir(dir: &Path) -> Result<()> {
    let m = std::fs::symlink_metadata(dir)?;
    if !m.is_dir() {
        return Err(refused(
            dir,
            "the socket directory is not a directory".into(),
        ));
    }
    if m.uid() != current_uid() {
        return Err(refused(
            dir,
            format!(
                "the socket directory belongs to uid {}, not to this user ({})",
                m.uid(),
                current_uid()
            ),
        ));
    }
    if m.mode() & 0o077 != 0 {
        return Err(refused(
            dir,
            format!(
                "the socket directory is open to other users (mode {:04o}); it must be 0700",
                m.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// A socket a client may trust: in a private directory, owned by this user.
pub(crate) fn check_socket(socket: &Path) -> Result<()> {
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        check_private_dir(dir)?;
    }
    let m = std::fs::symlink_metadata(socket).map_err(|e| Error::Agent {
        socket: socket.to_path_buf(),
        reason: format!("no holder: {e}"),
    })?;
    if m.uid() != current_uid() {
        return Err(refused(
            socket,
            format!("the socket belongs to uid {}, not to this user", m.uid()),
        ));
    }
    Ok(())
}
