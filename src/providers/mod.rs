//! Ready [`KeyProvider`](crate::KeyProvider)s for keys people already have, each behind a cargo
//! feature of its own:
//!
//! - [`AgeProvider`] (feature `age`): the slot's key-encryption key is an age file for one or
//!   more age recipients (X25519 `age1…`, SSH public keys, any installed age plugin's recipients
//!   such as `age1yubikey1…`), opened with the matching identities.
//! - [`KeychainProvider`] (features `keyring`, or one store alone: `keyring-keyutils`,
//!   `keyring-secret-service`, `keyring-apple`, `keyring-windows`): the key-encryption key lives
//!   in the OS credential store; the slot holds the entry's name.
//! - [`TpmProvider`] (feature `tpm`, unix): the key-encryption key is sealed to a TPM 2.0,
//!   optionally bound to PCR values; the slot holds the sealed object.
//!
//! Their blob encodings are in `docs/FORMAT.md` ("Provider slots").

#[cfg(feature = "age")]
mod age;
#[cfg(feature = "keyring-core")]
mod keychain;
#[cfg(all(feature = "tpm", unix))]
mod tpm;

#[cfg(feature = "age")]
pub use self::age::{AGE_PROVIDER_ID, AgeProvider};
#[cfg(feature = "keyring-core")]
pub use self::keychain::{KEYCHAIN_PROVIDER_ID, KEYCHAIN_SERVICE, KeychainProvider, KeychainStore};
#[cfg(all(feature = "tpm", unix))]
pub use self::tpm::{DEFAULT_TCTI, TPM_PROVIDER_ID, TPM_TCTI_ENV, TpmProvider};
