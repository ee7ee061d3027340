//! # tresor
//!
//! An embedded, single-file secrets vault: the safety of Azure Key Vault and HashiCorp Vault,
//! in one [redb](https://docs.rs/redb) file, in-process, offline.
//!
//! - Secrets are **encrypted and versioned**; names, tags and dates are encrypted too
//!   (XChaCha20-Poly1305 under subkeys of a random 256-bit master key).
//! - The master key is wrapped in **key slots**: a passphrase (Argon2id), an external 256-bit key
//!   (key file, environment variable), or a [`KeyProvider`]: the app's own, or a ready one in
//!   `providers` (age recipients with feature `age`, the OS keychain with feature `keyring`, a TPM
//!   with feature `tpm`, a PKCS#11 token with feature `pkcs11`).
//!   Each slot has a [`Role`].
//! - **Soft-delete** with a retention period, **recover**, **purge**, and **purge protection**
//!   that once on cannot be turned off.
//! - **Append-only, tamper-evident audit records** of every operation, MAC-chained, committed in
//!   the same transaction as the change they record.
//!
//! ```
//! use tresor::{Credential, Options, Vault};
//!
//! let key = Credential::generate_key()?;
//! let vault = Vault::create_in_memory(&key, Options::new())?;
//! vault.set("db-password", "hunter2")?;
//! let secret = vault.get("db-password")?;
//! assert_eq!(secret.expose_str(), Some("hunter2"));
//! assert!(vault.verify_audit()? >= 2);
//! # Ok::<(), tresor::Error>(())
//! ```
//!
//! The file format is described in `docs/FORMAT.md`; the threat model in `docs/SECURITY.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod actor;
#[cfg(all(unix, feature = "agent"))]
pub mod agent;
mod audit;
mod clock;
mod crypto;
mod digest;
mod encoding;
mod error;
mod files;
#[doc(hidden)]
pub mod fuzzing;
mod limits;
mod memlock;
#[cfg(any(
    feature = "age",
    feature = "keyring-core",
    all(feature = "tpm", unix),
    feature = "pkcs11"
))]
pub mod providers;
mod secret;
mod slot;
mod storage;
mod vault;
mod witness;

pub use access::{Operation, Principal, Role};
pub use actor::{SYSTEM_ACTOR, is_invisible_char};
pub use audit::{AuditLevel, AuditRecord, Checkpoint};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use error::{Error, Result};
pub use limits::{
    DEFAULT_VALUE_LIMIT, MAX_CONTENT_TYPE_LEN, MAX_NAME_LEN, MAX_TAG_LEN, MAX_TAGS, MAX_VALUE_LIMIT,
};
pub use secret::{
    DeletedSecret, Expect, GetOptions, Page, PropertiesUpdate, Secret, SecretProperties,
    SetOptions, VersionId, validate_name,
};
pub use slot::{Credential, KdfParams, KeyProvider, ProviderError, SlotInfo, SlotKind, SlotSpec};
pub use vault::{Change, ChangeKind, Event, SUBSCRIPTION_CAPACITY, Subscription};
pub use vault::{
    MAX_TOKEN_LABEL_LEN, Maintenance, NewToken, Options, Progress, TOKEN_PREFIX, TokenInfo, Vault,
    VaultSettings,
};
pub use witness::{FileWitness, Witness, WitnessState};

/// The README's examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The redb version this build stores vaults with (for [`Vault::create_with_backend`]).
pub use redb;
/// Re-exported so that callers can name the value types without depending on secrecy.
pub use secrecy;
