//! Opening the vault again and again with one credential, for commands that follow it over
//! time (`audit --follow`, `watch`): between looks the file is closed, so that other commands
//! (and `tresor serve`) can open it. The credential is read (or asked for) once.

use std::path::PathBuf;

use tresor::{AuditLevel, Credential, Error, Options, Vault};

use crate::args::Global;
use crate::error::{CliError, CliResult, describe, quote};
use crate::unlock;

/// What a look at the vault found.
pub enum Look {
    /// The vault, open.
    Open(Vault),
    /// Another process holds it (`tresor serve`, another command).
    Locked,
}

/// The vault file, its credential and its open options.
pub struct Poller {
    path: PathBuf,
    credential: Credential,
    options: Options,
    looked: bool,
}

impl Poller {
    /// Opens the vault once as any command does (asking for the passphrase if need be) and
    /// keeps the credential for the next looks. The first open is audited at the level of
    /// `--audit-reads`; later looks do not record their reads (a follower would otherwise
    /// fill the log with records of itself). While another process holds the vault, `wait`
    /// says so on stderr and tries again; without it that is an error.
    pub fn start(g: &Global, wait: bool) -> CliResult<(Poller, Vault)> {
        let path = unlock::vault_path(g);
        let given = g.key_file.is_some()
            || g.passphrase_file.is_some()
            || !g.age_identity.is_empty()
            || std::env::var_os(unlock::PASSPHRASE_ENV).is_some();
        let options = unlock::open_options(g, &path)?;
        let credential = if given {
            unlock::credential(g, &path, false)?.0
        } else {
            // The OS keychain first, as every command tries it; else a prompt.
            match Vault::open(&path, &unlock::keychain_unlocker(), options.clone()) {
                Ok(v) => {
                    drop(v);
                    unlock::keychain_unlocker()
                }
                Err(_) => unlock::credential(g, &path, false)?.0,
            }
        };
        let mut p = Poller {
            path,
            credential,
            options,
            looked: false,
        };
        let mut said = false;
        loop {
            match p.look()? {
                Look::Open(v) => return Ok((p, v)),
                Look::Locked if !wait => return Err(p.locked()),
                Look::Locked => {
                    if !said {
                        eprintln!("tresor: {}; waiting for it", p.locked());
                        said = true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
            }
        }
    }

    /// Opens the vault for one look.
    pub fn look(&mut self) -> CliResult<Look> {
        let options = if self.looked {
            self.options.clone().read_audit(AuditLevel::Off)
        } else {
            self.options.clone()
        };
        match Vault::open(&self.path, &self.credential, options) {
            Ok(v) => {
                self.looked = true;
                Ok(Look::Open(v))
            }
            Err(Error::Locked) => Ok(Look::Locked),
            Err(e) => Err(CliError::new(format!(
                "cannot open {}: {}",
                quote(&self.path.display().to_string()),
                describe(&e, None)
            ))),
        }
    }

    /// The vault file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The message for a vault held by another process.
    pub fn locked(&self) -> CliError {
        CliError::new(format!(
            "{} is held open by another process (`tresor serve`?): it cannot be read until that \
             process stops",
            quote(&self.path.display().to_string())
        ))
    }
}
