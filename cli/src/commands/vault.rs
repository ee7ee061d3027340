//! The vault as a whole: key files, creation, settings, copies, compaction, integrity,
//! master key rotation.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use tresor::{Credential, Error, Vault};
use zeroize::Zeroizing;

use crate::args::{
    CopyArgs, Global, InitArgs, KeygenArgs, OtherCredentials, RotateArgs, SettingsArgs,
};
use crate::error::{CliError, CliResult, io_error, quote};
use crate::parse::MaxVersions;
use crate::{files, output, unlock};

/// `keygen PATH`.
pub fn keygen(a: &KeygenArgs) -> CliResult<()> {
    if let Some(parent) = a.path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        create_private_dir(parent)?;
    }
    let key = Credential::generate_key()?;
    let hex = key
        .key_hex()
        .ok_or_else(|| CliError::new("the generated key has no hex form"))?;
    let mut text = Zeroizing::new(String::with_capacity(65));
    text.push_str(&hex);
    text.push('\n');
    files::write_private(&a.path, text.as_bytes())?;
    output::print_text(&format!(
        "wrote a new 256-bit key to {} (mode 0600): anyone who reads it can open the vaults it unlocks\n",
        quote(&a.path.display().to_string())
    ))
}

/// Creates a directory and its missing parents, readable by the owner only (mode 0700).
fn create_private_dir(dir: &Path) -> CliResult<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| io_error("cannot create directory", dir, &e))
}

/// `init`.
pub fn init(g: &Global, a: &InitArgs) -> CliResult<()> {
    let path = unlock::vault_path(g);
    let shown = quote(&path.display().to_string());
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(CliError::new(format!(
            "{shown} already exists (init never overwrites a file)"
        )));
    }
    let (credential, note) = match unlock::new_provider(&a.provider, &a.label)? {
        Some(c) => c,
        None => (unlock::credential(g, &path, true)?.0, String::new()),
    };
    if g.vault.is_none() {
        create_private_dir(Path::new(unlock::PROFILE_DIR))?;
    }
    let mut o = unlock::open_options(g, &path)?
        .retention_days(a.retention_days)
        .purge_protection(a.purge_protection)
        .label(a.label.clone())
        .kdf(g.kdf);
    if let Some(actor) = &g.actor {
        o = o.actor(actor.clone());
    }
    if let Some(n) = a.max_versions {
        o = o.max_versions(n);
    }
    let created = Vault::create(&path, &credential, o)
        .map_err(|e| match e {
            Error::Io(io) => io_error("cannot create vault", &path, &io),
            other => CliError::from(other),
        })
        .and_then(|v| {
            files::restrict(&path)?;
            v.close().map_err(CliError::from)
        });
    if let Err(e) = created {
        // The file did not exist before: leave nothing half-made behind.
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    output::print_text(&format!(
        "created vault {shown} (retention {} days, purge protection {}{})\n",
        a.retention_days,
        if a.purge_protection { "on" } else { "off" },
        note
    ))
}

/// `copy --out FILE`.
pub fn copy(vault: &Vault, a: &CopyArgs) -> CliResult<()> {
    let shown = quote(&a.out.display().to_string());
    if std::fs::symlink_metadata(&a.out).is_ok() {
        return Err(CliError::new(format!(
            "{shown} already exists (a copy never overwrites a file)"
        )));
    }
    vault.backup_to(&a.out).map_err(|e| match e {
        Error::Io(io) => io_error("cannot write the copy", &a.out, &io),
        other => CliError::from(other),
    })?;
    files::restrict(&a.out)?;
    output::print_text(&format!(
        "copied the vault to {shown}: it opens with the same keys and passphrases\n"
    ))
}

/// `compact`.
pub fn compact(vault: &Vault) -> CliResult<()> {
    let done = vault.compact()?;
    output::print_text(if done {
        "compacted: the space of purged and overwritten records is released\n"
    } else {
        "nothing to compact\n"
    })
}

/// `check`: opens with the storage engine's check, then checks every record and the chain.
pub fn check(g: &Global) -> CliResult<()> {
    let opened = unlock::open(g, true)?;
    let n = opened.vault.check_integrity()?;
    opened.vault.close()?;
    output::print_text(&format!(
        "ok: page checksums, {n} records and the audit chain verify\n"
    ))
}

/// `settings`.
pub fn settings(vault: &Vault, a: &SettingsArgs) -> CliResult<()> {
    if a.purge_protection.is_some() {
        vault.enable_purge_protection()?;
    }
    if let Some(mv) = a.max_versions {
        vault.set_max_versions(match mv {
            MaxVersions::Limit(n) => Some(n),
            MaxVersions::Unlimited => None,
        })?;
    }
    show_settings(vault, a)
}

/// `settings` without a change: the vault's settings.
pub fn show_settings(vault: &dyn crate::store::Store, a: &SettingsArgs) -> CliResult<()> {
    let s = vault.settings()?;
    if a.json.json {
        output::print_json(&output::settings_json(&s))
    } else {
        output::print_table(&output::settings_table(&s))
    }
}

/// `rotate-key`.
pub fn rotate_key(g: &Global, vault: &Vault, a: &RotateArgs) -> CliResult<()> {
    rotate_and_compact(g, vault, &a.others)
}

/// Rotates the master key with the other slots' credentials, then compacts the file so that no
/// record sealed under the old master key is left in it; prints what happened.
pub fn rotate_and_compact(g: &Global, vault: &Vault, others: &OtherCredentials) -> CliResult<()> {
    let mut credentials = Vec::new();
    for p in &others.also_key_file {
        credentials.push(unlock::key_file(p, g.allow_insecure_key_file)?);
    }
    for p in &others.also_passphrase_file {
        credentials.push(unlock::passphrase_file(p)?);
    }
    // Slots kept outside the vault: the age identities given, the keychain's entries, and the
    // PKCS#11 tokens when a module is configured.
    if let Some(c) = unlock::age_identities(g)? {
        credentials.push(c);
    }
    credentials.push(unlock::keychain_unlocker());
    credentials.extend(unlock::tpm_unlocker());
    if let Some(c) = unlock::pkcs11_unlocker() {
        credentials.push(c);
    }
    let bar = ProgressBar::new(0).with_message("re-encrypting");
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} records") {
        bar.set_style(style.progress_chars("=> "));
    }
    let result = vault.rotate_master_key(&credentials, |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    });
    bar.finish_and_clear();
    result?;
    // The old records' pages are free but still hold their bytes: compaction removes them.
    vault.compact()?;
    let cp = vault.checkpoint()?;
    output::print_text(&format!(
        "rotated the master key: every record re-encrypted, every key slot re-wrapped, and the \
         file compacted (no record under the old key is left in it)\n\
         checkpoints and secret backups taken before now no longer match; new checkpoint: {cp}\n"
    ))
}
