//! [`AgeProvider`]: key slots wrapped to age recipients.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::slot::{KeyProvider, ProviderError};

/// The provider id of age slots (stored in the slot).
pub const AGE_PROVIDER_ID: &str = "age";

/// The largest identity file read (age's own limit is 16 MiB; real files are a few lines).
const IDENTITY_FILE_MAX: u64 = 1 << 20;

/// A key provider that wraps a slot's key-encryption key to one or more age recipients, and
/// unwraps it with age identities.
///
/// Recipients are X25519 (`age1…`), SSH public keys (`ssh-ed25519 …`, `ssh-rsa …`) and the
/// recipients of any installed age plugin (`age1yubikey1…`, `age1tpm1…`, …: the plugin binary
/// `age-plugin-NAME` must be on `PATH`, when the slot is made and when it is opened). Identities
/// come from identity files: age's format (X25519 `AGE-SECRET-KEY-1…` and plugin
/// `AGE-PLUGIN-…` lines, any number of them) or an SSH private key.
///
/// The slot's blob is the binary age file of the 32-byte key-encryption key (`docs/FORMAT.md`),
/// so `age -d -i IDENTITY` opens it too.
///
/// ```
/// use std::sync::Arc;
/// use tresor::providers::AgeProvider;
/// use tresor::{Credential, Options, SlotSpec, Vault};
///
/// # let dir = tempfile::tempdir()?;
/// # let identity_file = dir.path().join("key.txt");
/// # let identity = age::x25519::Identity::generate();
/// # use age::secrecy::ExposeSecret;
/// # std::fs::write(&identity_file, identity.to_string().expose_secret())?;
/// # let recipient = identity.to_public().to_string();
/// // A vault whose owner slot opens with an age identity (`age-keygen`'s key.txt).
/// let wrap = AgeProvider::for_recipients([recipient.as_str()])?;
/// let vault = Vault::create_in_memory(&Credential::provider(Arc::new(wrap)), Options::new())?;
/// # let path = dir.path().join("v.tresor");
/// # vault.backup_to(&path)?;
/// # drop(vault);
///
/// // Later: unlock with the identity file.
/// let unwrap = AgeProvider::from_identity_file(&identity_file)?;
/// let vault = Vault::open(&path, &Credential::provider(Arc::new(unwrap)), Options::new())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AgeProvider {
    recipients: Vec<String>,
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    /// Where the identities came from (file paths), for messages.
    sources: Vec<String>,
    /// Plugin binaries named by identities but not installed.
    missing_plugins: Vec<String>,
    ui: Ui,
}

impl fmt::Debug for AgeProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgeProvider")
            .field("recipients", &self.recipients)
            .field("identities", &self.identities.len())
            .field("sources", &self.sources)
            .field("missing_plugins", &self.missing_plugins)
            .finish()
    }
}

impl AgeProvider {
    /// A provider that wraps to `recipients` and unwraps with `identities` (either may be
    /// empty: a provider used only to make slots needs no identity, one used only to unlock
    /// needs no recipient). Fails on a string that is no age recipient.
    pub fn new<R: AsRef<str>>(
        recipients: impl IntoIterator<Item = R>,
        identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    ) -> Result<Self> {
        let recipients = recipients
            .into_iter()
            .map(|r| normalize_recipient(r.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        Ok(AgeProvider {
            recipients,
            identities,
            sources: Vec::new(),
            missing_plugins: Vec::new(),
            ui: Ui(Arc::new(age::NoCallbacks)),
        })
    }

    /// A provider that makes slots for `recipients` (it cannot unlock).
    pub fn for_recipients<R: AsRef<str>>(recipients: impl IntoIterator<Item = R>) -> Result<Self> {
        Self::new(recipients, Vec::new())
    }

    /// A provider that unlocks with the identities of the file at `path`.
    pub fn from_identity_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::new(std::iter::empty::<&str>(), Vec::new())?.identity_file(path)
    }

    /// Sets how plugins and encrypted SSH keys talk to a person (messages such as "touch your
    /// YubiKey", PIN and passphrase requests). The default answers no request. Set it before
    /// [`AgeProvider::identity_file`]: identities read earlier keep the callbacks they had.
    pub fn callbacks(mut self, callbacks: impl age::Callbacks) -> Self {
        self.ui = Ui(Arc::new(callbacks));
        self
    }

    /// Adds the identities of the file at `path`: an age identity file (any number of
    /// `AGE-SECRET-KEY-1…` and `AGE-PLUGIN-…` lines, `#` comments) or an SSH private key
    /// (ed25519 or RSA, OpenSSH or PEM). A plugin identity whose plugin is not installed is kept
    /// aside and named if no other identity opens a slot.
    pub fn identity_file(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let mut text = Zeroizing::new(String::new());
        std::fs::File::open(path)
            .and_then(|f| f.take(IDENTITY_FILE_MAX + 1).read_to_string(&mut text))
            .map_err(|e| {
                Error::invalid(format!("cannot read the age identity file {shown}: {e}"))
            })?;
        if text.len() as u64 > IDENTITY_FILE_MAX {
            return Err(Error::invalid(format!(
                "the age identity file {shown} is larger than 1 MiB"
            )));
        }
        self.add_identities(&text, &shown)?;
        self.sources.push(shown);
        Ok(self)
    }

    /// Adds the identities in `text` (the contents of an identity file; `source` names it in
    /// messages).
    pub fn identities_text(mut self, text: &str, source: &str) -> Result<Self> {
        self.add_identities(text, source)?;
        self.sources.push(source.to_string());
        Ok(self)
    }

    /// The recipients slots are wrapped to.
    pub fn recipients(&self) -> &[String] {
        &self.recipients
    }

    fn add_identities(&mut self, text: &str, source: &str) -> Result<()> {
        if text.trim_start().starts_with("age-encryption.org/") {
            return Err(Error::invalid(format!(
                "{source} is an encrypted age file: passphrase-protected identity files are not \
                 supported; decrypt it to a private file first"
            )));
        }
        if text.contains("-----BEGIN ") {
            let id = age::ssh::Identity::from_buffer(text.as_bytes(), Some(source.to_string()))
                .map_err(|e| {
                    Error::invalid(format!(
                        "{source} is not an SSH private key age can use: {e}"
                    ))
                })?;
            if let age::ssh::Identity::Unsupported(_) = id {
                return Err(Error::invalid(format!(
                    "{source} is an SSH key of a kind age does not support (use ed25519 or RSA)"
                )));
            }
            self.identities
                .push(Box::new(id.with_callbacks(self.ui.clone())));
            return Ok(());
        }
        let mut plugins: BTreeMap<String, Vec<age::plugin::Identity>> = BTreeMap::new();
        let mut found = 0usize;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Ok(id) = age::x25519::Identity::from_str(line) {
                self.identities.push(Box::new(id));
            } else if let Ok(id) = age::plugin::Identity::from_str(line) {
                plugins.entry(id.plugin().to_string()).or_default().push(id);
            } else {
                // The line number only: the line may be secret.
                return Err(Error::invalid(format!(
                    "line {} of {source} is not an age identity",
                    n + 1
                )));
            }
            found += 1;
        }
        if found == 0 {
            return Err(Error::invalid(format!("{source} holds no age identity")));
        }
        for (name, ids) in plugins {
            match age::plugin::IdentityPluginV1::new(&name, &ids, self.ui.clone()) {
                Ok(p) => self.identities.push(Box::new(p)),
                Err(_) => self.missing_plugins.push(format!("age-plugin-{name}")),
            }
        }
        Ok(())
    }

    fn missing_note(&self) -> String {
        if self.missing_plugins.is_empty() {
            String::new()
        } else {
            format!(
                "; not installed (not found on PATH): {}",
                self.missing_plugins.join(", ")
            )
        }
    }
}

/// Checks that `r` is an age recipient; returns it without an SSH key's comment.
fn normalize_recipient(r: &str) -> Result<String> {
    let r = r.trim();
    if r.starts_with("ssh-") {
        let mut fields = r.split_whitespace();
        let key = match (fields.next(), fields.next()) {
            (Some(kind), Some(data)) => format!("{kind} {data}"),
            _ => return Err(Error::invalid(format!("not an SSH public key: {r}"))),
        };
        return match age::ssh::Recipient::from_str(&key) {
            Ok(_) => Ok(key),
            Err(e) => Err(Error::invalid(format!(
                "not an SSH public key age can encrypt to ({e:?}): {r}"
            ))),
        };
    }
    if age::x25519::Recipient::from_str(r).is_ok() || age::plugin::Recipient::from_str(r).is_ok() {
        return Ok(r.to_string());
    }
    Err(Error::invalid(format!(
        "not an age recipient (age1…, ssh-ed25519 …, ssh-rsa … or a plugin's age1NAME1…): {r}"
    )))
}

impl KeyProvider for AgeProvider {
    fn id(&self) -> &str {
        AGE_PROVIDER_ID
    }

    fn wrap(&self, key: &[u8]) -> std::result::Result<Vec<u8>, ProviderError> {
        if self.recipients.is_empty() {
            return Err("no age recipient to wrap the slot's key to".into());
        }
        let mut boxed: Vec<Box<dyn age::Recipient + Send>> = Vec::new();
        let mut plugins: BTreeMap<String, Vec<age::plugin::Recipient>> = BTreeMap::new();
        for r in &self.recipients {
            if r.starts_with("ssh-") {
                let rec = age::ssh::Recipient::from_str(r)
                    .map_err(|e| format!("not an SSH recipient ({e:?}): {r}"))?;
                boxed.push(Box::new(rec));
            } else if let Ok(rec) = age::x25519::Recipient::from_str(r) {
                boxed.push(Box::new(rec));
            } else {
                let rec = age::plugin::Recipient::from_str(r)
                    .map_err(|e| format!("not an age recipient ({e}): {r}"))?;
                plugins
                    .entry(rec.plugin().to_string())
                    .or_default()
                    .push(rec);
            }
        }
        for (name, recs) in plugins {
            let plugin = age::plugin::RecipientPluginV1::new(&name, &recs, &[], self.ui.clone())
                .map_err(|_| {
                    format!("the age plugin age-plugin-{name} is not installed (not found on PATH)")
                })?;
            boxed.push(Box::new(plugin));
        }
        let encryptor = age::Encryptor::with_recipients(
            boxed.iter().map(|r| r.as_ref() as &dyn age::Recipient),
        )
        .map_err(|e| format!("age cannot wrap to these recipients: {e}"))?;
        let mut out = Vec::with_capacity(256 + 200 * self.recipients.len());
        let mut w = encryptor.wrap_output(&mut out)?;
        w.write_all(key)?;
        w.finish()?;
        Ok(out)
    }

    fn unwrap(&self, blob: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, ProviderError> {
        if self.identities.is_empty() {
            return Err(format!("no age identity was given{}", self.missing_note()).into());
        }
        let decryptor = age::Decryptor::new_buffered(blob)
            .map_err(|e| format!("the slot does not hold an age file: {e}"))?;
        let reader = decryptor
            .decrypt(
                self.identities
                    .iter()
                    .map(|i| i.as_ref() as &dyn age::Identity),
            )
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => format!(
                    "none of the age identities given ({}) opens it{}",
                    self.sources.join(", "),
                    self.missing_note()
                ),
                other => format!("age: {}", other.to_string().trim_end()),
            })?;
        let mut kek = Zeroizing::new(Vec::with_capacity(33));
        reader.take(33).read_to_end(&mut kek)?;
        if kek.len() != 32 {
            return Err("the slot's age file does not hold a 32-byte key".into());
        }
        Ok(kek)
    }
}

/// age's callbacks, type-erased so that the provider is not generic.
#[derive(Clone)]
struct Ui(Arc<dyn DynCallbacks>);

trait DynCallbacks: Send + Sync {
    fn message(&self, m: &str);
    fn ask_confirm(&self, m: &str, yes: &str, no: Option<&str>) -> Option<bool>;
    fn ask_public(&self, d: &str) -> Option<String>;
    fn ask_passphrase(&self, d: &str) -> Option<age::secrecy::SecretString>;
}

impl<C: age::Callbacks> DynCallbacks for C {
    fn message(&self, m: &str) {
        self.display_message(m)
    }
    fn ask_confirm(&self, m: &str, yes: &str, no: Option<&str>) -> Option<bool> {
        self.confirm(m, yes, no)
    }
    fn ask_public(&self, d: &str) -> Option<String> {
        self.request_public_string(d)
    }
    fn ask_passphrase(&self, d: &str) -> Option<age::secrecy::SecretString> {
        self.request_passphrase(d)
    }
}

impl age::Callbacks for Ui {
    fn display_message(&self, message: &str) {
        self.0.message(message)
    }
    fn confirm(&self, message: &str, yes_string: &str, no_string: Option<&str>) -> Option<bool> {
        self.0.ask_confirm(message, yes_string, no_string)
    }
    fn request_public_string(&self, description: &str) -> Option<String> {
        self.0.ask_public(description)
    }
    fn request_passphrase(&self, description: &str) -> Option<age::secrecy::SecretString> {
        self.0.ask_passphrase(description)
    }
}
