//! Soft-delete, recover, purge, and secret backups.

use tresor::Error;

use crate::store::Store;

use super::explain;
use crate::args::{BackupArgs, NameArg, RestoreArgs};
use crate::error::{CliError, CliResult, describe, quote};
use crate::{files, output, time};

/// `delete`.
pub fn delete(vault: &dyn Store, a: &NameArg) -> CliResult<()> {
    let d = vault
        .delete(&a.name)
        .map_err(|e| explain(vault, &a.name, None, e))?;
    output::print_text(&format!(
        "deleted {}: recoverable until {} (then purged)\n",
        quote(&d.properties.name),
        time::rfc3339(d.scheduled_purge)
    ))
}

/// A `recover` or `purge` of a name that is not deleted: say whether it is live.
fn not_deleted(vault: &dyn Store, name: &str, e: Error) -> CliError {
    if matches!(e, Error::NotFound) && vault.properties(name, None).is_ok() {
        return CliError::new(format!(
            "not deleted: {} is a live secret (delete it first)",
            quote(name)
        ));
    }
    if matches!(e, Error::NotFound) {
        return CliError::new(format!(
            "not found: no deleted secret named {}",
            quote(name)
        ));
    }
    CliError::new(describe(&e, Some(name)))
}

/// `recover`.
pub fn recover(vault: &dyn Store, a: &NameArg) -> CliResult<()> {
    let p = vault
        .recover(&a.name)
        .map_err(|e| not_deleted(vault, &a.name, e))?;
    output::print_text(&format!(
        "recovered {} (current version {})\n",
        quote(&p.name),
        p.version
    ))
}

/// `purge`.
pub fn purge(vault: &dyn Store, a: &NameArg) -> CliResult<()> {
    vault
        .purge(&a.name)
        .map_err(|e| not_deleted(vault, &a.name, e))?;
    output::print_text(&format!("purged {}\n", quote(&a.name)))
}

/// `backup NAME --out FILE`.
pub fn backup(vault: &dyn Store, a: &BackupArgs) -> CliResult<()> {
    if a.out.exists() {
        return Err(CliError::new(format!(
            "{} already exists (a backup never overwrites a file)",
            quote(&a.out.display().to_string())
        )));
    }
    let blob = vault
        .backup_secret(&a.name)
        .map_err(|e| explain(vault, &a.name, None, e))?;
    files::write_private(&a.out, &blob)?;
    output::print_text(&format!(
        "backed up {} with all its versions to {}\n",
        quote(&a.name),
        quote(&a.out.display().to_string())
    ))
}

/// `restore FILE`.
pub fn restore(vault: &dyn Store, a: &RestoreArgs) -> CliResult<()> {
    let blob = files::read_bounded("backup file", &a.file, files::BLOB_MAX)?;
    let p = vault.restore_secret(&blob).map_err(|e| match e {
        Error::InvalidBackup(why) => CliError::new(format!(
            "invalid backup {}: {why}",
            quote(&a.file.display().to_string())
        )),
        other => CliError::from(other),
    })?;
    output::print_text(&format!(
        "restored {} (current version {})\n",
        quote(&p.name),
        p.version
    ))
}
