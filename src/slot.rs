//! Key slots: the ways to unlock a vault, and the roles they grant.
//!
//! A vault's master key (MK) is 32 random bytes, never stored in clear. Each key slot stores the
//! MK sealed (XChaCha20-Poly1305) under the slot's key-encryption key (KEK), with the vault id,
//! the slot id and the slot's whole description (label, role, kind, KDF parameters, salt) as
//! associated data. The KEK comes from:
//!
//! - a **passphrase**: Argon2id with the parameters and salt stored in the slot;
//! - an **external key**: 32 bytes from a key file, an environment variable or wherever the app
//!   keeps it; KEK = keyed BLAKE3 of the salt under that key;
//! - a **[`KeyProvider`]**: a random KEK that the app's provider wraps (an OS keychain, a TPM, a
//!   cloud KMS); the slot keeps the provider's opaque blob.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

use crate::access::Role;
use crate::clock::Timestamp;
use crate::crypto::{self, Key, Sealer};
use crate::encoding::{self, SlotDesc, SlotKindStored, SlotRecord};
use crate::error::{Error, Result};

/// The corruption reported for a role code no release writes.
pub(crate) const UNKNOWN_ROLE: &str = "unknown role in key slot";

/// Roles as written on command lines and in configuration (`owner`, `writer`, …).
impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "owner" => Ok(Role::Owner),
            "writer" => Ok(Role::Writer),
            "reader" => Ok(Role::Reader),
            "auditor" => Ok(Role::Auditor),
            _ => Err(Error::invalid("a role is owner, writer, reader or auditor")),
        }
    }
}

/// Argon2id parameters of a passphrase slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// RFC 9106's second recommendation: 64 MiB, t = 3, p = 4 (the default).
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 4,
    };
    /// OWASP's minimum: 19 MiB, t = 2, p = 1. New slots refuse anything weaker.
    pub const MINIMUM: KdfParams = KdfParams {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };
    /// The most memory an unlock will spend (2 GiB): an edited file cannot exhaust memory.
    pub const MAX_MEMORY_KIB: u32 = 2 * 1024 * 1024;
    /// The most passes an unlock will run.
    pub const MAX_ITERATIONS: u32 = 64;
    /// The most lanes an unlock will use.
    pub const MAX_PARALLELISM: u32 = 64;

    fn check_minimum(&self) -> Result<()> {
        let m = Self::MINIMUM;
        if self.memory_kib < m.memory_kib
            || self.iterations < m.iterations
            || self.parallelism < m.parallelism
        {
            return Err(Error::invalid(
                "Argon2id parameters below the minimum (19 MiB, t=2, p=1)",
            ));
        }
        self.check_cap()
    }

    fn check_cap(&self) -> Result<()> {
        if self.memory_kib > Self::MAX_MEMORY_KIB
            || self.iterations > Self::MAX_ITERATIONS
            || self.parallelism > Self::MAX_PARALLELISM
        {
            return Err(Error::invalid("Argon2id parameters above the cap"));
        }
        Ok(())
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// An error a [`KeyProvider`] returns. Its text ends up in [`Error::Provider`]: keep secrets out.
pub type ProviderError = Box<dyn std::error::Error + Send + Sync>;

/// A key the app holds and never reveals: an OS keychain entry, a TPM-sealed key, a cloud KMS key.
///
/// tresor asks it to wrap a random 32-byte key-encryption key when a slot is made, stores the
/// opaque result, and asks it to unwrap that blob at unlock.
///
/// ```
/// use tresor::{KeyProvider, ProviderError};
///
/// /// A toy provider: XOR with a fixed pad (a real one calls a keychain or a KMS).
/// #[derive(Debug)]
/// struct Xor([u8; 32]);
///
/// impl KeyProvider for Xor {
///     fn id(&self) -> &str { "xor-demo" }
///     fn wrap(&self, key: &[u8]) -> Result<Vec<u8>, ProviderError> {
///         Ok(key.iter().zip(self.0).map(|(a, b)| a ^ b).collect())
///     }
///     fn unwrap(&self, blob: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, ProviderError> {
///         Ok(zeroize::Zeroizing::new(blob.iter().zip(self.0).map(|(a, b)| a ^ b).collect()))
///     }
/// }
/// ```
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// A stable name for this provider (stored in the slot; slots are matched by it).
    fn id(&self) -> &str;
    /// Wraps `key` (32 bytes) into an opaque blob.
    fn wrap(&self, key: &[u8]) -> Result<Vec<u8>, ProviderError>;
    /// Unwraps a blob made by [`KeyProvider::wrap`].
    fn unwrap(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, ProviderError>;
}

/// Something that opens a key slot. `Debug` never shows the secret part.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credential {
    /// A passphrase (Argon2id).
    Passphrase(Arc<SecretString>),
    /// A 256-bit external key.
    Key(Arc<SecretBox<[u8; 32]>>),
    /// An app's key provider.
    Provider(Arc<dyn KeyProvider>),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Passphrase(_) => f.write_str("Credential::Passphrase([REDACTED])"),
            Credential::Key(_) => f.write_str("Credential::Key([REDACTED])"),
            Credential::Provider(p) => write!(f, "Credential::Provider({})", p.id()),
        }
    }
}

impl Credential {
    /// A passphrase.
    pub fn passphrase(p: impl Into<String>) -> Self {
        Credential::Passphrase(Arc::new(SecretString::from(p.into())))
    }

    /// A 256-bit key.
    pub fn key(bytes: [u8; 32]) -> Self {
        Credential::Key(Arc::new(SecretBox::new(Box::new(bytes))))
    }

    /// A fresh random 256-bit key (for a new key file, say).
    pub fn generate_key() -> Result<Self> {
        let k = crypto::random_key()?;
        Ok(Self::key(*k))
    }

    /// The key as 64 lowercase hex characters (the key file format), or `None` for another kind.
    pub fn key_hex(&self) -> Option<Zeroizing<String>> {
        match self {
            Credential::Key(k) => Some(Zeroizing::new(crypto::hex(k.expose_secret()))),
            _ => None,
        }
    }

    /// Parses a key from 64 hex characters (surrounding white space ignored).
    pub fn key_from_hex(text: &str) -> Result<Self> {
        let k = Zeroizing::new(
            crypto::unhex::<32>(text.trim())
                .ok_or_else(|| Error::invalid("a key is 64 hexadecimal characters"))?,
        );
        Ok(Self::key(*k))
    }

    /// Reads a key file: 64 hex characters (a trailing newline is fine) or 32 raw bytes.
    pub fn key_file(path: impl AsRef<Path>) -> Result<Self> {
        let bytes = Zeroizing::new(std::fs::read(path)?);
        if bytes.len() == 32 {
            let mut k = Zeroizing::new([0u8; 32]);
            k.copy_from_slice(&bytes);
            return Ok(Self::key(*k));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::invalid("a key file holds 64 hex characters or 32 raw bytes"))?;
        Self::key_from_hex(text)
            .map_err(|_| Error::invalid("a key file holds 64 hex characters or 32 raw bytes"))
    }

    /// Reads a key from an environment variable holding 64 hex characters.
    pub fn key_from_env(var: &str) -> Result<Self> {
        let v = Zeroizing::new(
            std::env::var(var)
                .map_err(|_| Error::invalid(format!("environment variable {var} is not set")))?,
        );
        Self::key_from_hex(&v)
    }

    /// A key provider.
    pub fn provider(p: Arc<dyn KeyProvider>) -> Self {
        Credential::Provider(p)
    }
}

/// How to make a new key slot.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SlotSpec {
    /// What will open the slot.
    pub credential: Credential,
    /// A label, recorded as the actor in audit records made through this slot.
    pub label: String,
    /// What the slot's holder may do.
    pub role: Role,
    /// Argon2id parameters (passphrase slots only).
    pub kdf: KdfParams,
}

impl SlotSpec {
    /// An owner slot labelled `label`, default KDF parameters.
    pub fn new(credential: Credential, label: impl Into<String>) -> Self {
        SlotSpec {
            credential,
            label: label.into(),
            role: Role::Owner,
            kdf: KdfParams::DEFAULT,
        }
    }
    /// Sets the role.
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }
    /// Sets the Argon2id parameters.
    pub fn kdf(mut self, kdf: KdfParams) -> Self {
        self.kdf = kdf;
        self
    }
}

/// The kind of a key slot, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotKind {
    /// Passphrase, with its Argon2id parameters.
    Passphrase(KdfParams),
    /// External 256-bit key.
    Key,
    /// Key provider, with its id.
    Provider(String),
}

/// A key slot as listed (nothing secret in it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlotInfo {
    /// The slot id.
    pub id: u32,
    /// Its label.
    pub label: String,
    /// Its role.
    pub role: Role,
    /// Its kind.
    pub kind: SlotKind,
    /// When it was made.
    pub created: Timestamp,
}

pub(crate) fn info(id: u32, rec: &SlotRecord) -> Result<SlotInfo> {
    let kind = match &rec.desc.kind {
        SlotKindStored::Passphrase {
            memory_kib,
            iterations,
            parallelism,
        } => SlotKind::Passphrase(KdfParams {
            memory_kib: *memory_kib,
            iterations: *iterations,
            parallelism: *parallelism,
        }),
        SlotKindStored::Key => SlotKind::Key,
        SlotKindStored::Provider { provider, .. } => SlotKind::Provider(provider.clone()),
    };
    Ok(SlotInfo {
        id,
        label: rec.desc.label.clone(),
        role: Role::from_code(rec.desc.role).ok_or_else(|| Error::corrupted(UNKNOWN_ROLE))?,
        kind,
        created: rec.desc.created,
    })
}

fn wrap_aad(vault_id: &[u8; 16], slot_id: u32, desc: &SlotDesc) -> Vec<u8> {
    let mut ad = Vec::with_capacity(128);
    ad.extend_from_slice(b"tresor-slot");
    ad.extend_from_slice(&encoding::RECORD_FORMAT.to_le_bytes());
    ad.extend_from_slice(vault_id);
    ad.extend_from_slice(&slot_id.to_le_bytes());
    ad.extend_from_slice(&encoding::encode(encoding::tag::SLOT, desc, 64));
    ad
}

fn argon2_kek(pass: &SecretString, params: KdfParams, salt: &[u8; 16]) -> Result<Key> {
    params.check_cap()?;
    let p = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(|_| Error::invalid("invalid Argon2id parameters"))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut kek = Zeroizing::new([0u8; 32]);
    a.hash_password_into(pass.expose_secret().as_bytes(), salt, kek.as_mut())
        .map_err(|_| Error::invalid("Argon2id failed"))?;
    Ok(kek)
}

fn key_kek(key: &[u8; 32], salt: &[u8; 16]) -> Key {
    Zeroizing::new(crypto::mac(key, &[b"tresor key-slot kek", salt]))
}

/// The KEK of `desc` from `cred`, or `None` when the credential is of another kind (or another
/// provider).
/// What deriving a slot's key costs, in KiB × passes (0 for slots without a KDF).
pub(crate) fn kdf_cost(desc: &SlotDesc) -> u64 {
    match &desc.kind {
        SlotKindStored::Passphrase {
            memory_kib,
            iterations,
            ..
        } => u64::from(*memory_kib)
            .saturating_mul(u64::from(*iterations))
            .max(1),
        _ => 0,
    }
}

pub(crate) fn kek_for(cred: &Credential, desc: &SlotDesc) -> Result<Option<Key>> {
    Ok(match (cred, &desc.kind) {
        (
            Credential::Passphrase(p),
            SlotKindStored::Passphrase {
                memory_kib,
                iterations,
                parallelism,
            },
        ) => {
            let params = KdfParams {
                memory_kib: *memory_kib,
                iterations: *iterations,
                parallelism: *parallelism,
            };
            if params.check_cap().is_err() {
                return Err(Error::corrupted(
                    "key slot asks for Argon2id parameters above the cap",
                ));
            }
            Some(argon2_kek(p, params, &desc.salt)?)
        }
        (Credential::Key(k), SlotKindStored::Key) => Some(key_kek(k.expose_secret(), &desc.salt)),
        (Credential::Provider(p), SlotKindStored::Provider { provider, blob })
            if p.id() == provider =>
        {
            let kek = p.unwrap(blob).map_err(|e| Error::Provider(e.to_string()))?;
            // A provider that hands back something other than a key: as if it were another's.
            if kek.len() != 32 {
                return Ok(None);
            }
            let mut k = Zeroizing::new([0u8; 32]);
            k.copy_from_slice(&kek);
            Some(k)
        }
        _ => None,
    })
}

/// Makes a slot record for `spec` wrapping `mk`; returns it with its KEK.
pub(crate) fn new_slot(
    spec: &SlotSpec,
    vault_id: &[u8; 16],
    slot_id: u32,
    mk: &Key,
    now: Timestamp,
) -> Result<(SlotRecord, Key)> {
    // The label is the default actor of the slot's audit records.
    crate::actor::check(&spec.label, "a slot label")?;
    let salt: [u8; 16] = crypto::random()?;
    let (kind, kek) = match &spec.credential {
        Credential::Passphrase(p) => {
            spec.kdf.check_minimum()?;
            (
                SlotKindStored::Passphrase {
                    memory_kib: spec.kdf.memory_kib,
                    iterations: spec.kdf.iterations,
                    parallelism: spec.kdf.parallelism,
                },
                argon2_kek(p, spec.kdf, &salt)?,
            )
        }
        Credential::Key(k) => (SlotKindStored::Key, key_kek(k.expose_secret(), &salt)),
        Credential::Provider(p) => {
            let kek = crypto::random_key()?;
            let blob = p.wrap(kek.as_ref()).map_err(|e| {
                Error::Provider(format!("new key slot {:?} ({}): {e}", spec.label, p.id()))
            })?;
            (
                SlotKindStored::Provider {
                    provider: p.id().to_string(),
                    blob,
                },
                kek,
            )
        }
    };
    let desc = SlotDesc {
        label: spec.label.clone(),
        role: spec.role.code(),
        kind,
        salt,
        created: now,
    };
    let rec = wrap(desc, vault_id, slot_id, &kek, mk)?;
    Ok((rec, kek))
}

fn kek_check(kek: &Key) -> [u8; 16] {
    let full = crypto::mac(kek, &[b"tresor kek check"]);
    let mut c = [0u8; 16];
    c.copy_from_slice(&full[..16]);
    c
}

/// Seals `mk` under `kek` for the slot described by `desc`.
pub(crate) fn wrap(
    desc: SlotDesc,
    vault_id: &[u8; 16],
    slot_id: u32,
    kek: &Key,
    mk: &Key,
) -> Result<SlotRecord> {
    let wrapped = Sealer::new(kek).seal(&wrap_aad(vault_id, slot_id, &desc), mk.as_ref())?;
    Ok(SlotRecord {
        desc,
        check: kek_check(kek),
        wrapped,
    })
}

/// What opening a slot with a key-encryption key gave.
pub(crate) enum Unwrapped {
    /// The master key.
    Key(Key),
    /// The KEK is not this slot's.
    WrongKey,
    /// The KEK is this slot's, but the slot does not authenticate: it was damaged or altered.
    Damaged,
}

/// Opens the slot with `kek`.
pub(crate) fn unwrap(rec: &SlotRecord, vault_id: &[u8; 16], slot_id: u32, kek: &Key) -> Unwrapped {
    if !crypto::mac_eq(&kek_check(kek), &rec.check) {
        return Unwrapped::WrongKey;
    }
    match Sealer::new(kek).open(&wrap_aad(vault_id, slot_id, &rec.desc), &rec.wrapped) {
        Some(mk) if mk.len() == 32 => {
            let mut k = Zeroizing::new([0u8; 32]);
            k.copy_from_slice(&mk);
            Unwrapped::Key(k)
        }
        _ => Unwrapped::Damaged,
    }
}

/// Rewraps a passphrase slot under a new passphrase (O(1): the master key is unchanged).
pub(crate) fn with_new_passphrase(
    rec: &SlotRecord,
    pass: &SecretString,
    kdf: KdfParams,
    vault_id: &[u8; 16],
    slot_id: u32,
    mk: &Key,
) -> Result<(SlotRecord, Key)> {
    if !matches!(rec.desc.kind, SlotKindStored::Passphrase { .. }) {
        return Err(Error::invalid("not a passphrase slot"));
    }
    kdf.check_minimum()?;
    let salt: [u8; 16] = crypto::random()?;
    let kek = argon2_kek(pass, kdf, &salt)?;
    let desc = SlotDesc {
        kind: SlotKindStored::Passphrase {
            memory_kib: kdf.memory_kib,
            iterations: kdf.iterations,
            parallelism: kdf.parallelism,
        },
        salt,
        ..rec.desc.clone()
    };
    Ok((wrap(desc, vault_id, slot_id, &kek, mk)?, kek))
}
