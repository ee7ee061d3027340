//! Finding the vault file, getting the credential that unlocks it, and opening it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tresor::providers::{
    AgeProvider, KeychainProvider, KeychainStore, PKCS11_MODULE_ENV, Pkcs11Provider,
};
use tresor::{AuditLevel, Credential, Error, FileWitness, Options, Vault};
use zeroize::Zeroizing;

use crate::args::{AuditReads, Global, NewProviderArgs};
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
    /// A key provider: age identities, the OS keychain, a TPM, a PKCS#11 token.
    Provider,
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
    if let Some(c) = age_identities(g)? {
        return Ok((c, Kind::Provider));
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
        "no key or passphrase: pass --key-file, --passphrase-file or --age-identity (or set \
         TRESOR_KEY_FILE, {PASSPHRASE_ENV} or TRESOR_AGE_IDENTITY), or run in a terminal to be \
         asked"
    )))
}

/// How age plugins and encrypted SSH keys talk to the person at the terminal: messages ("touch
/// your YubiKey") on standard error, PINs and passphrases asked without echo.
#[derive(Clone, Copy)]
struct AgeUi;

impl age::Callbacks for AgeUi {
    fn display_message(&self, message: &str) {
        eprintln!("{}", escape(message));
    }

    fn confirm(&self, _message: &str, _yes: &str, _no: Option<&str>) -> Option<bool> {
        None
    }

    fn request_public_string(&self, _description: &str) -> Option<String> {
        None
    }

    fn request_passphrase(&self, description: &str) -> Option<age::secrecy::SecretString> {
        if !can_prompt() {
            return None;
        }
        let answer = crate::prompt::hidden(&format!("{}: ", escape(description))).ok()?;
        Some(age::secrecy::SecretString::from(answer.to_string()))
    }
}

/// The age identities of `--age-identity` (or `TRESOR_AGE_IDENTITY`) as a credential.
pub fn age_identities(g: &Global) -> CliResult<Option<Credential>> {
    if g.age_identity.is_empty() {
        return Ok(None);
    }
    let mut provider = AgeProvider::new(std::iter::empty::<&str>(), Vec::new())?.callbacks(AgeUi);
    for p in &g.age_identity {
        provider = provider.identity_file(p)?;
    }
    Ok(Some(Credential::provider(Arc::new(provider))))
}

/// The credential that opens the vault's keychain slots: the entries their slots name.
pub fn keychain_unlocker() -> Credential {
    Credential::provider(Arc::new(KeychainProvider::unlocker()))
}

/// The credential that opens the vault's TPM slots with the TPM the environment names; `None`
/// when this build has no TPM support.
pub fn tpm_unlocker() -> Option<Credential> {
    #[cfg(feature = "tpm")]
    {
        Some(Credential::provider(Arc::new(
            tresor::providers::TpmProvider::new(),
        )))
    }
    #[cfg(not(feature = "tpm"))]
    {
        None
    }
}

/// The credential of a new `--tpm` slot, with what the command's output line says of it.
#[cfg(feature = "tpm")]
fn new_tpm(p: &NewProviderArgs) -> CliResult<(Credential, String)> {
    let provider = tresor::providers::TpmProvider::new().pcrs(p.pcrs.iter().copied())?;
    let pcrs = provider.pcr_selection();
    let note = if pcrs.is_empty() {
        format!("; sealed to the TPM at {}", escape(&provider.tcti_name()))
    } else {
        let list: Vec<String> = pcrs.iter().map(u8::to_string).collect();
        format!(
            "; sealed to the TPM at {}, bound to SHA-256 PCRs {}",
            escape(&provider.tcti_name()),
            list.join(",")
        )
    };
    Ok((Credential::provider(Arc::new(provider)), note))
}

#[cfg(not(feature = "tpm"))]
fn new_tpm(_: &NewProviderArgs) -> CliResult<(Credential, String)> {
    Err(CliError::new(
        "this tresor was built without TPM support: --tpm needs the command line built with \
         the `tpm` feature (`cargo install tresor-cli --features tpm`, with libtss2-dev \
         installed)",
    ))
}

/// Asks for a PKCS#11 token's PIN on the terminal (after TRESOR_PKCS11_PIN and the URI's
/// `pin-value=`/`pin-source=`); none without a terminal.
fn pkcs11_pin(what: &str) -> Option<tresor::secrecy::SecretString> {
    if !can_prompt() {
        return None;
    }
    let pin = crate::prompt::hidden(&format!("PIN for {}: ", escape(what))).ok()?;
    Some(tresor::secrecy::SecretString::from(pin.to_string()))
}

/// The credential that opens the vault's PKCS#11 slots, when a module is configured
/// (TRESOR_PKCS11_MODULE): the token and key each slot names, the PIN from TRESOR_PKCS11_PIN or
/// a prompt.
pub fn pkcs11_unlocker() -> Option<Credential> {
    std::env::var_os(PKCS11_MODULE_ENV).filter(|m| !m.is_empty())?;
    Some(Credential::provider(Arc::new(
        Pkcs11Provider::unlocker().pin_callback(pkcs11_pin),
    )))
}

/// Whether a credential was named (a flag or an environment variable): then the keychain is
/// not tried.
fn credential_given(g: &Global) -> bool {
    g.key_file.is_some()
        || g.passphrase_file.is_some()
        || !g.age_identity.is_empty()
        || std::env::var_os(PASSPHRASE_ENV).is_some()
}

/// The credential of a new key slot kept outside the vault (`--age`, `--keychain`), labelled
/// `label`, with what the command's output line says of it; `None` when neither was asked for.
pub fn new_provider(p: &NewProviderArgs, label: &str) -> CliResult<Option<(Credential, String)>> {
    if !p.age.is_empty() {
        let provider = AgeProvider::for_recipients(&p.age)?.callbacks(AgeUi);
        let note = match p.age.len() {
            1 => "; wrapped to 1 age recipient".to_string(),
            n => format!("; wrapped to {n} age recipients"),
        };
        return Ok(Some((Credential::provider(Arc::new(provider)), note)));
    }
    if p.tpm {
        return new_tpm(p).map(Some);
    }
    if let Some(uri) = &p.pkcs11 {
        let provider = Pkcs11Provider::new(uri)?.pin_callback(pkcs11_pin);
        return Ok(Some((
            Credential::provider(Arc::new(provider)),
            "; its key wrapped by a key on a PKCS#11 token".to_string(),
        )));
    }
    if !p.keychain {
        return Ok(None);
    }
    let built: Vec<&str> = KeychainStore::built_in().iter().map(|s| s.name()).collect();
    let store = match &p.keychain_store {
        Some(name) => KeychainStore::from_name(name)
            .filter(|s| s.is_built_in())
            .ok_or_else(|| {
                CliError::new(format!(
                    "unknown credential store {}: this build has {}",
                    quote(name),
                    built.join(", ")
                ))
            })?,
        None => KeychainStore::platform_default()
            .ok_or_else(|| CliError::new("this build of tresor reaches no OS credential store"))?,
    };
    if store == KeychainStore::Keyutils && p.keychain_store.is_none() {
        eprintln!(
            "note: no Secret Service answers: the key goes to the kernel keyring, which forgets \
             it at reboot (and after some days unused); keep another slot"
        );
    }
    let provider = KeychainProvider::new_entry(store, label)?;
    let note = match provider.entry() {
        Some((store, service, user)) => format!(
            "; key in the {store} credential store, entry {}",
            escape(&format!("{service}/{user}"))
        ),
        None => String::new(),
    };
    Ok(Some((Credential::provider(Arc::new(provider)), note)))
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
    /// The credential that opened it (`unlock` hands a passphrase on to the agent it starts).
    pub credential: Credential,
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
    let options = adjust(open_options(g, &path)?);
    // No credential named: the OS keychain opens the vault if one of its slots keeps its key
    // there, else the TPM (when this build has TPM support), else a PKCS#11 token when a module
    // is configured (TRESOR_PKCS11_MODULE). A vault without such slots answers WrongKey at once,
    // without any store, TPM or token asked.
    let mut failed: Vec<String> = Vec::new();
    if !credential_given(g) {
        let mut tries = vec![("the OS keychain", keychain_unlocker())];
        if let Some(c) = tpm_unlocker() {
            tries.push(("the TPM", c));
        }
        if let Some(c) = pkcs11_unlocker() {
            tries.push(("the PKCS#11 token", c));
        }
        for (who, unlocker) in tries {
            match open_waiting(g, &path, &unlocker, options.clone()) {
                Ok(vault) => {
                    note_unfinished(&vault, &shown);
                    return Ok(Opened {
                        vault,
                        kind: Kind::Provider,
                        credential: unlocker,
                    });
                }
                Err(Error::WrongKey) => {}
                Err(Error::Provider(why)) => {
                    failed.push(format!("{who} did not open {shown}: {why}"))
                }
                Err(e) => return Err(open_error(&path, e)),
            }
        }
    }
    let (credential, kind) = match credential(g, &path, false) {
        Ok(c) => c,
        Err(e) => {
            return Err(if failed.is_empty() {
                e
            } else {
                CliError::new(format!("{}; and {e}", failed.join("; ")))
            });
        }
    };
    for why in failed {
        eprintln!("note: {}", escape(&why));
    }
    let vault = open_waiting(g, &path, &credential, options).map_err(|e| open_error(&path, e))?;
    note_unfinished(&vault, &shown);
    Ok(Opened {
        vault,
        kind,
        credential,
    })
}

/// Opens the vault, retrying for up to `--wait` seconds while another process has the file
/// open (a short command that will soon close it).
fn open_waiting(
    g: &Global,
    path: &Path,
    credential: &Credential,
    options: Options,
) -> tresor::Result<Vault> {
    let wait = Duration::from_secs_f64(if g.wait.is_finite() {
        g.wait.clamp(0.0, 86_400.0)
    } else {
        0.0
    });
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(10);
    loop {
        match Vault::open(path, credential, options.clone()) {
            Err(Error::Locked) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(Error::Locked);
                }
                std::thread::sleep(pause.min(deadline - now));
                pause = (pause * 2).min(Duration::from_millis(250));
            }
            other => return other,
        }
    }
}

/// A note on stderr when a compaction or a rotation of the vault was cut short.
fn note_unfinished(vault: &Vault, shown: &str) {
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
}

/// Messages for a failed open, naming the file.
fn open_error(path: &Path, e: Error) -> CliError {
    let shown = quote(&path.display().to_string());
    match e {
        Error::WrongKey => CliError::new(format!(
            "wrong key: the key, passphrase or age identity given does not open the vault {shown}"
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
        Error::Locked => CliError::new(format!(
            "locked: {shown} is open in another process, and was for all of --wait (no agent \
             or `tresor serve` holds it, or commands would go through it): wait for that \
             process to close it, raise --wait, or start an agent (`tresor unlock`) so that \
             commands share one open vault"
        )),
        other => CliError::new(describe(&other, None)),
    }
}
