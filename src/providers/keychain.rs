//! [`KeychainProvider`]: key slots whose key lives in the OS credential store.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::crypto;
use crate::error::{Error, Result};
use crate::slot::{KeyProvider, ProviderError};

/// The provider id of keychain slots (stored in the slot).
pub const KEYCHAIN_PROVIDER_ID: &str = "keyring";

/// The service name of the entries [`KeychainProvider::new_entry`] makes.
pub const KEYCHAIN_SERVICE: &str = "tresor";

/// The blob layout this build writes (`docs/FORMAT.md`).
const BLOB_LAYOUT: u8 = 1;
/// The longest store name, service or user name a blob may hold.
const NAME_MAX: usize = 1024;

/// An OS credential store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeychainStore {
    /// The Linux kernel keyring (keyutils): always there, in memory only. Entries are linked
    /// into the session keyring and the user's persistent keyring: they do not survive a reboot,
    /// and the persistent keyring expires after some days unused (3 by default).
    Keyutils,
    /// The freedesktop Secret Service over D-Bus (GNOME Keyring, KWallet, KeePassXC): on disk,
    /// encrypted under the login password, in the default collection.
    SecretService,
    /// The macOS keychain.
    AppleKeychain,
    /// The Windows credential manager.
    WindowsCredentials,
}

impl KeychainStore {
    /// Every store, in the order [`KeychainStore::platform_default`] prefers them.
    const ALL: [KeychainStore; 4] = [
        KeychainStore::AppleKeychain,
        KeychainStore::WindowsCredentials,
        KeychainStore::SecretService,
        KeychainStore::Keyutils,
    ];

    /// Its name as stored in slots and written on command lines: `keyutils`, `secret-service`,
    /// `apple-keychain`, `windows`.
    pub fn name(self) -> &'static str {
        match self {
            KeychainStore::Keyutils => "keyutils",
            KeychainStore::SecretService => "secret-service",
            KeychainStore::AppleKeychain => "apple-keychain",
            KeychainStore::WindowsCredentials => "windows",
        }
    }

    /// The store named `name` (see [`KeychainStore::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether this build can reach the store (its feature is on and this is its platform).
    pub fn is_built_in(self) -> bool {
        match self {
            KeychainStore::Keyutils => {
                cfg!(all(feature = "keyring-keyutils", target_os = "linux"))
            }
            KeychainStore::SecretService => cfg!(all(
                feature = "keyring-secret-service",
                unix,
                not(any(
                    target_os = "macos",
                    target_os = "ios",
                    target_os = "android"
                ))
            )),
            KeychainStore::AppleKeychain => {
                cfg!(all(feature = "keyring-apple", target_os = "macos"))
            }
            KeychainStore::WindowsCredentials => {
                cfg!(all(feature = "keyring-windows", target_os = "windows"))
            }
        }
    }

    /// The stores this build can reach.
    pub fn built_in() -> Vec<Self> {
        Self::ALL.into_iter().filter(|s| s.is_built_in()).collect()
    }

    /// The store new slots go to by default: the macOS keychain, the Windows credential
    /// manager, or on Linux and the BSDs the Secret Service when its D-Bus session answers,
    /// else the kernel keyring. `None` when this build reaches no store.
    pub fn platform_default() -> Option<Self> {
        let built = Self::built_in();
        for s in &built {
            match s {
                KeychainStore::SecretService if built.len() > 1 => {
                    if s.open().is_ok() {
                        return Some(*s);
                    }
                }
                _ => return Some(*s),
            }
        }
        None
    }

    /// Connects to the store.
    fn open(self) -> std::result::Result<Arc<keyring_core::CredentialStore>, String> {
        let unreachable = |e: keyring_core::Error| {
            format!(
                "the {} credential store cannot be reached: {}",
                self.name(),
                describe(e)
            )
        };
        match self {
            #[cfg(all(feature = "keyring-keyutils", target_os = "linux"))]
            KeychainStore::Keyutils => linux_keyutils_keyring_store::Store::new()
                .map(|s| s as Arc<keyring_core::CredentialStore>)
                .map_err(unreachable),
            #[cfg(all(
                feature = "keyring-secret-service",
                unix,
                not(any(target_os = "macos", target_os = "ios", target_os = "android"))
            ))]
            KeychainStore::SecretService => zbus_secret_service_keyring_store::Store::new()
                .map(|s| s as Arc<keyring_core::CredentialStore>)
                .map_err(unreachable),
            #[cfg(all(feature = "keyring-apple", target_os = "macos"))]
            KeychainStore::AppleKeychain => apple_native_keyring_store::keychain::Store::new()
                .map(|s| s as Arc<keyring_core::CredentialStore>)
                .map_err(unreachable),
            #[cfg(all(feature = "keyring-windows", target_os = "windows"))]
            KeychainStore::WindowsCredentials => windows_native_keyring_store::Store::new()
                .map(|s| s as Arc<keyring_core::CredentialStore>)
                .map_err(unreachable),
            #[allow(unreachable_patterns)]
            _ => {
                let _ = unreachable;
                Err(format!(
                    "this build of tresor cannot reach the {} credential store (not built in \
                     for this platform)",
                    self.name()
                ))
            }
        }
    }
}

impl fmt::Display for KeychainStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The text of a credential store error, without the secret data some variants carry.
fn describe(e: keyring_core::Error) -> String {
    use keyring_core::Error as E;
    match e {
        E::NoEntry => "no such entry".to_string(),
        E::NoStorageAccess(p) => format!("access refused: {p}"),
        E::PlatformFailure(p) => format!("platform failure: {p}"),
        E::BadEncoding(_) | E::BadDataFormat(..) => "the entry's data is malformed".to_string(),
        E::Ambiguous(v) => format!("{} entries match the name", v.len()),
        other => other.to_string(),
    }
}

/// A key provider that keeps a slot's key-encryption key in an OS credential store: the kernel
/// keyring or the Secret Service on Linux, the macOS keychain, the Windows credential manager.
///
/// The slot's blob names the store and the entry (service and user name), never the key
/// (`docs/FORMAT.md`). Unlocking reads the entry the blob names, so any `KeychainProvider`
/// unlocks any keychain slot whose entry this user's store holds; [`KeychainProvider::unlocker`]
/// is the one to pass to [`Vault::open`](crate::Vault::open).
///
/// ```no_run
/// use std::sync::Arc;
/// use tresor::providers::{KeychainProvider, KeychainStore};
/// use tresor::{Credential, Options, SlotSpec, Vault};
///
/// let store = KeychainStore::platform_default().ok_or("no credential store on this machine")?;
/// let vault = Vault::create("app.tresor", &Credential::passphrase("a long passphrase"), Options::new())?;
/// // A reader slot whose key the OS keychain keeps (service "tresor", a fresh entry).
/// let provider = KeychainProvider::new_entry(store, "laptop")?;
/// vault.add_slot(&SlotSpec::new(Credential::provider(Arc::new(provider)), "laptop")
///     .role(tresor::Role::Reader))?;
/// drop(vault);
///
/// // Later, without a passphrase:
/// let unlocker = Credential::provider(Arc::new(KeychainProvider::unlocker()));
/// let vault = Vault::open("app.tresor", &unlocker, Options::new())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeychainProvider {
    /// Where [`KeyProvider::wrap`] puts the key; `None` for an unlocker.
    entry: Option<(KeychainStore, String, String)>,
}

impl fmt::Debug for KeychainProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entry {
            Some((store, service, user)) => {
                write!(f, "KeychainProvider({store}: {service}/{user})")
            }
            None => f.write_str("KeychainProvider(unlocker)"),
        }
    }
}

impl KeychainProvider {
    /// A provider that makes slots whose key goes to the entry `service`/`user` of `store`. A
    /// new slot refuses an entry that already exists (it would be another slot's key).
    pub fn new(store: KeychainStore, service: impl Into<String>, user: impl Into<String>) -> Self {
        KeychainProvider {
            entry: Some((store, service.into(), user.into())),
        }
    }

    /// A provider that makes a slot whose key goes to a fresh entry of `store`: service
    /// [`KEYCHAIN_SERVICE`] (`tresor`), user `<slot label>/<32 random hex digits>` (the random
    /// part keeps two slots, of one vault or of two, from ever sharing an entry).
    pub fn new_entry(store: KeychainStore, label: &str) -> Result<Self> {
        let id: [u8; 16] = crypto::random()?;
        Ok(Self::new(
            store,
            KEYCHAIN_SERVICE,
            format!("{label}/{}", crypto::hex(&id)),
        ))
    }

    /// A provider that only unlocks: it reads the entry each keychain slot's blob names.
    pub fn unlocker() -> Self {
        KeychainProvider { entry: None }
    }

    /// The entry new slots go to (`None` for an unlocker).
    pub fn entry(&self) -> Option<(KeychainStore, &str, &str)> {
        self.entry
            .as_ref()
            .map(|(store, service, user)| (*store, service.as_str(), user.as_str()))
    }

    /// Deletes the entry new slots go to (when the slot made with it is removed, say). An
    /// unlocker has none: it fails.
    pub fn delete(&self) -> Result<()> {
        let Some((store, service, user)) = &self.entry else {
            return Err(Error::invalid("an unlocker names no keychain entry"));
        };
        delete(*store, service, user)
    }
}

impl KeyProvider for KeychainProvider {
    fn id(&self) -> &str {
        KEYCHAIN_PROVIDER_ID
    }

    fn wrap(&self, key: &[u8]) -> std::result::Result<Vec<u8>, ProviderError> {
        let Some((store, service, user)) = &self.entry else {
            return Err("this keychain provider only unlocks: name an entry to make a slot".into());
        };
        if [service, user]
            .iter()
            .any(|n| n.is_empty() || n.len() > NAME_MAX)
        {
            return Err("a keychain entry's service and user are 1 to 1024 bytes".into());
        }
        let named =
            |e: keyring_core::Error| format!("{store} entry {service}/{user}: {}", describe(e));
        let s = store.open()?;
        let entry = keyring_core::Entry::new_in_store(&s, service, user).map_err(named)?;
        match entry.get_secret() {
            Ok(old) => {
                drop(Zeroizing::new(old));
                return Err(format!(
                    "the {store} entry {service}/{user} already exists (another slot's key?): \
                     refusing to overwrite it"
                )
                .into());
            }
            Err(keyring_core::Error::NoEntry) => {}
            Err(e) => return Err(named(e).into()),
        }
        entry.set_secret(key).map_err(named)?;
        // Read it back: a store that accepts and loses writes would make a slot nobody opens.
        let back = Zeroizing::new(entry.get_secret().map_err(named)?);
        if back.as_slice() != key {
            return Err(format!("the {store} entry {service}/{user} did not keep the key").into());
        }
        Ok(encode(*store, service, user))
    }

    fn unwrap(&self, blob: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, ProviderError> {
        let (store, service, user) = decode(blob)?;
        let s = store.open()?;
        let named = |e: keyring_core::Error| match e {
            keyring_core::Error::NoEntry => format!(
                "the {store} credential store has no entry {service}/{user} (deleted, or made \
                 on another machine, user or login session)"
            ),
            other => format!("{store} entry {service}/{user}: {}", describe(other)),
        };
        let entry = keyring_core::Entry::new_in_store(&s, &service, &user).map_err(named)?;
        let kek = Zeroizing::new(entry.get_secret().map_err(named)?);
        if kek.len() != 32 {
            return Err(
                format!("the {store} entry {service}/{user} does not hold a 32-byte key").into(),
            );
        }
        Ok(kek)
    }
}

fn delete(store: KeychainStore, service: &str, user: &str) -> Result<()> {
    let s = store.open().map_err(Error::Provider)?;
    keyring_core::Entry::new_in_store(&s, service, user)
        .and_then(|e| e.delete_credential())
        .map_err(|e| Error::Provider(format!("{store} entry {service}/{user}: {}", describe(e))))
}

/// `u8 layout (1) || name(store) || name(service) || name(user)`, each name a u16le length and
/// UTF-8 bytes.
fn encode(store: KeychainStore, service: &str, user: &str) -> Vec<u8> {
    let mut out = vec![BLOB_LAYOUT];
    for s in [store.name(), service, user] {
        // Lengths are checked at most NAME_MAX before.
        out.extend_from_slice(&(s.len().min(usize::from(u16::MAX)) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out
}

fn decode(blob: &[u8]) -> std::result::Result<(KeychainStore, String, String), String> {
    let bad = || "the keychain slot's blob is malformed".to_string();
    let (&layout, mut rest) = blob.split_first().ok_or_else(bad)?;
    if layout != BLOB_LAYOUT {
        return Err(format!(
            "the keychain slot's blob has layout {layout}, this build reads layout {BLOB_LAYOUT}"
        ));
    }
    let mut names = Vec::with_capacity(3);
    for _ in 0..3 {
        let (len, tail) = rest.split_at_checked(2).ok_or_else(bad)?;
        let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
        if len == 0 || len > NAME_MAX {
            return Err(bad());
        }
        let (name, tail) = tail.split_at_checked(len).ok_or_else(bad)?;
        names.push(String::from_utf8(name.to_vec()).map_err(|_| bad())?);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(bad());
    }
    let user = names.pop().ok_or_else(bad)?;
    let service = names.pop().ok_or_else(bad)?;
    let store_name = names.pop().ok_or_else(bad)?;
    let store = KeychainStore::from_name(&store_name).ok_or_else(|| {
        format!("the keychain slot names an unknown credential store {store_name:?}")
    })?;
    Ok((store, service, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_round_trips_and_refuses_damage() {
        let blob = encode(KeychainStore::SecretService, "tresor", "laptop/00ff");
        assert_eq!(
            decode(&blob),
            Ok((
                KeychainStore::SecretService,
                "tresor".to_string(),
                "laptop/00ff".to_string()
            ))
        );
        assert_eq!(&blob[..3], &[1, 14, 0]);
        for cut in 0..blob.len() {
            assert!(decode(&blob[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let mut other = blob.clone();
        other[0] = 2;
        assert!(decode(&other).unwrap_err().contains("layout 2"));
        let unknown = {
            let mut b = vec![1u8, 3, 0];
            b.extend_from_slice(b"tpm");
            b.extend_from_slice(&[1, 0, b's', 1, 0, b'u']);
            b
        };
        assert!(
            decode(&unknown)
                .unwrap_err()
                .contains("unknown credential store")
        );
    }

    #[test]
    fn store_names_round_trip() {
        for s in KeychainStore::ALL {
            assert_eq!(KeychainStore::from_name(s.name()), Some(s));
        }
        assert_eq!(KeychainStore::from_name("kwallet"), None);
    }

    #[test]
    fn unlocker_refuses_to_make_slots() {
        let e = KeychainProvider::unlocker().wrap(&[0u8; 32]).unwrap_err();
        assert!(e.to_string().contains("only unlocks"));
    }
}
