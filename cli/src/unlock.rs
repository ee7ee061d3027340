//! Finding the vault file, getting the credential that unlocks it, and opening it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use tresor::{AuditLevel, Credential, Error, FileWitness, Options, Vault};
use zeroize::Zeroizing;

use crate::args::{AuditReads, Global};
use crate::error::{CliError, CliResult, describe, io_error, quote};
use crate::files;
use crate::output::escape;

/// The environment variable holding a passphrase (when no key or passphrase file is given).
pub const PASSPHRASE_ENV: &str = "TRESOR_PASSPHRASE";

/// The directory of profile vaults, relative to the working directory.
pub const PROFILE_DIR: &str = ".tresor";

/// The vault file: `--vault`, `TRESOR_VAULT`, else `./.tresor/<profile>.tresor`.
pub fn vault_path(g: &Global) -> PathBuf {
    match &g.vault {
        Some(p) => p.clone(),
        None => Path::new(PROFILE_DIR).join(format!("{}.tresor", g.profile)),
    }
}

/// How the vault was unlocked (for `passwd`'s default slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A key file.
    Key,
    /// A passphrase.
    Passphrase,
}

/// Reads a key file, with messages that name the file. A key file that its group or other
/// users can read is refused unless `allow_insecure` (`--allow-insecure-key-file`).
pub fn key_file(path: &Path, allow_insecure: bool) -> CliResult<Credential> {
    let shown = quote(&path.display().to_string());
    let file = files::open("key file", path)?;
    #[cfg(unix)]
    if !allow_insecure {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(|e| io_error("cannot read key file", path, &e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CliError::new(format!(
                "key file {shown} is open to its group or other users (mode {:04o}): make it \
                 private with `chmod 600 {}`, or pass --allow-insecure-key-file",
                mode & 0o7777,
                escape(&path.display().to_string())
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = allow_insecure;
    let bytes = files::read_file_bounded("key file", path, file, files::KEY_FILE_MAX)?;
    let not_a_key = || {
        CliError::new(format!(
            "key file {shown} is not a key: it must hold 64 hexadecimal characters or 32 raw bytes"
        ))
    };
    if let Ok(k) = <[u8; 32]>::try_from(bytes.as_slice()) {
        let k = Zeroizing::new(k);
        return Ok(Credential::key(*k));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| not_a_key())?;
    Credential::key_from_hex(text).map_err(|_| not_a_key())
}

/// Reads a passphrase file: its text less one trailing newline.
pub fn passphrase_file(path: &Path) -> CliResult<Credential> {
    let bytes = files::read_bounded("passphrase file", path, files::PASSPHRASE_FILE_MAX)?;
    let mut text: &[u8] = &bytes;
    if let Some(rest) = text.strip_suffix(b"\n") {
        text = rest.strip_suffix(b"\r").unwrap_or(rest);
    }
    let text = std::str::from_utf8(text).map_err(|_| {
        CliError::new(format!(
            "passphrase file {} is not UTF-8 text",
            quote(&path.display().to_string())
        ))
    })?;
    if text.is_empty() {
        return Err(CliError::new(format!(
            "passphrase file {} is empty",
            quote(&path.display().to_string())
        )));
    }
    Ok(Credential::passphrase(text))
}

/// Whether a person can be asked (stdin or stderr is a terminal).
pub fn can_prompt() -> bool {
    std::io::stdin().is_terminal() || std::io::stderr().is_terminal()
}

/// Asks for a passphrase on the terminal, twice when `confirm`.
pub fn prompt_passphrase(prompt: &str, confirm: bool) -> CliResult<Credential> {
    let ask = crate::prompt::hidden;
    let first = ask(prompt)?;
    if first.is_empty() {
        return Err(CliError::new("empty passphrase"));
    }
    if confirm {
        let second = ask("Repeat it: ")?;
        if *first != *second {
            return Err(CliError::new("the passphrases do not match"));
        }
    }
    Ok(Credential::passphrase(first.as_str()))
}

/// The credential given: `--key-file`, `--passphrase-file`, `TRESOR_PASSPHRASE`, or a prompt.
/// `creating` asks a prompted passphrase twice.
pub fn credential(g: &Global, path: &Path, creating: bool) -> CliResult<(Credential, Kind)> {
    if let Some(p) = &g.key_file {
        return Ok((key_file(p, g.allow_insecure_key_file)?, Kind::Key));
    }
    if let Some(p) = &g.passphrase_file {
        return Ok((passphrase_file(p)?, Kind::Passphrase));
    }
    if let Some(v) = std::env::var_os(PASSPHRASE_ENV) {
        let v = Zeroizing::new(
            v.into_string()
                .map_err(|_| CliError::new(format!("{PASSPHRASE_ENV} is not valid UTF-8")))?,
        );
        if v.is_empty() {
            return Err(CliError::new(format!("{PASSPHRASE_ENV} is empty")));
        }
        return Ok((Credential::passphrase(v.as_str()), Kind::Passphrase));
    }
    if can_prompt() {
        let prompt = if creating {
            format!(
                "New passphrase for {}: ",
                escape(&path.display().to_string())
            )
        } else {
            format!("Passphrase for {}: ", escape(&path.display().to_string()))
        };
        return Ok((prompt_passphrase(&prompt, creating)?, Kind::Passphrase));
    }
    Err(CliError::new(format!(
        "no key or passphrase: pass --key-file or --passphrase-file (or set TRESOR_KEY_FILE \
         or {PASSPHRASE_ENV}), or run in a terminal to be asked"
    )))
}

/// The open options from the global flags.
pub fn options(g: &Global) -> Options {
    let mut o = Options::new().read_audit(match g.audit_reads {
        AuditReads::Durable => AuditLevel::Durable,
        AuditReads::Buffered => AuditLevel::Buffered,
        AuditReads::Off => AuditLevel::Off,
    });
    if let Some(a) = &g.actor {
        o = o.actor(a.clone());
    }
    if let Some(cp) = g.expect_checkpoint {
        o = o.expect_checkpoint(cp);
    }
    o
}

/// The rollback witness of the vault file `path`: in `--witness-dir`, else
/// `$XDG_STATE_HOME/tresor/witness`, else `~/.local/state/tresor/witness`; none with
/// `--no-witness` or when no such directory can be named (no `HOME`).
pub fn witness(g: &Global, path: &Path) -> CliResult<Option<FileWitness>> {
    if g.no_witness {
        return Ok(None);
    }
    let dir = match &g.witness_dir {
        Some(d) => d.clone(),
        None => {
            let state = std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(PathBuf::from)
                        .filter(|p| p.is_absolute())
                        .map(|h| h.join(".local/state"))
                });
            match state {
                Some(s) => s.join("tresor/witness"),
                None => return Ok(None),
            }
        }
    };
    match FileWitness::for_vault(&dir, path) {
        Ok(w) => Ok(Some(w)),
        // The vault's own directory is missing: the command fails on the vault itself.
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::new(format!(
            "cannot name the rollback witness of {}: {}",
            quote(&path.display().to_string()),
            describe(&e, None)
        ))),
    }
}

/// The options of an open of the vault file `path`: the global flags and its witness.
pub fn open_options(g: &Global, path: &Path) -> CliResult<Options> {
    let o = options(g);
    Ok(match witness(g, path)? {
        Some(w) => o.witness(w),
        None => o,
    })
}

/// An open vault and how it was unlocked.
pub struct Opened {
    /// The vault.
    pub vault: Vault,
    /// The credential's kind.
    pub kind: Kind,
}

/// Opens the vault with the global flags; `verify` checks the whole file first.
pub fn open(g: &Global, verify: bool) -> CliResult<Opened> {
    open_with(g, |o| o.verify_integrity(verify))
}

/// Opens the vault with the global flags and the options `adjust` makes of them.
pub fn open_with(g: &Global, adjust: impl FnOnce(Options) -> Options) -> CliResult<Opened> {
    let path = vault_path(g);
    let shown = quote(&path.display().to_string());
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::new(format!(
                "no vault at {shown} (create one with `tresor init`)"
            )));
        }
        Err(e) => return Err(io_error("cannot open vault", &path, &e)),
        Ok(m) if !m.is_file() => {
            return Err(CliError::new(format!("{shown} is not a vault file")));
        }
        Ok(m) if m.len() == 0 => {
            return Err(CliError::new(format!(
                "{shown} is not a tresor vault (the file is empty)"
            )));
        }
        Ok(_) => {}
    }
    let (credential, kind) = credential(g, &path, false)?;
    let vault = Vault::open(&path, &credential, adjust(open_options(g, &path)?))
        .map_err(|e| open_error(&path, e))?;
    if let Ok(Some(m)) = vault.unfinished_maintenance() {
        let what = match m {
            tresor::Maintenance::Rotation => "a master-key rotation (`rotate-key`)",
            _ => "a compaction (`compact`)",
        };
        eprintln!(
            "note: {what} of {shown} was cut short; the file may hold much free space: \
             `tresor compact` releases it"
        );
    }
    Ok(Opened { vault, kind })
}

/// Messages for a failed open, naming the file.
fn open_error(path: &Path, e: Error) -> CliError {
    let shown = quote(&path.display().to_string());
    match e {
        Error::WrongKey => CliError::new(format!(
            "wrong key: the key or passphrase given does not open the vault {shown}"
        )),
        Error::Corrupted(why) => CliError::new(format!(
            "{shown} is not a tresor vault, or it is damaged: {why}"
        )),
        Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            CliError::new(format!("{shown} is not a tresor vault: {io}"))
        }
        Error::Io(io) => io_error("cannot open vault", path, &io),
        e @ (Error::BehindWitness { .. } | Error::RolledBack(_)) => CliError::new(format!(
            "{}\nif {shown} was restored from an older copy on purpose, accept it with \
             `tresor witness reset` (as an owner; recorded in the audit log)",
            describe(&e, None)
        )),
        other => CliError::new(describe(&other, None)),
    }
}
