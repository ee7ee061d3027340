//! Ready [`KeyProvider`](crate::KeyProvider)s for keys people already have, each behind a cargo
//! feature of its own:
//!
//! - `AgeProvider` (feature `age`): the slot's key-encryption key is an age file for one or
//!   more age recipients (X25519 `age1…`, SSH public keys, any installed age plugin's recipients
//!   such as `age1yubikey1…`), opened with the matching identities.
//! - `KeychainProvider` (features `keyring`, or one store alone: `keyring-keyutils`,
//!   `keyring-secret-service`, `keyring-apple`, `keyring-windows`): the key-encryption key lives
//!   in the OS credential store; the slot holds the entry's name.
//! - `TpmProvider` (feature `tpm`, unix): the key-encryption key is sealed to a TPM 2.0,
//!   optionally bound to PCR values; the slot holds the sealed object.
//! - `Pkcs11Provider` (feature `pkcs11`): the key-encryption key is wrapped by a key that
//!   never leaves a PKCS#11 token (an HSM, a smart card, a YubiKey's PIV applet), found by a
//!   PKCS#11 URI.
//!
//! Their blob encodings are in `docs/FORMAT.md` ("Provider slots").

#[cfg(feature = "age")]
mod age;
#[cfg(feature = "keyring-core")]
mod keychain;
#[cfg(feature = "pkcs11")]
mod pkcs11;
#[cfg(all(feature = "tpm", unix))]
mod tpm;

#[cfg(feature = "age")]
pub use self::age::{AGE_PROVIDER_ID, AgeProvider};
#[cfg(feature = "keyring-core")]
pub use self::keychain::{KEYCHAIN_PROVIDER_ID, KEYCHAIN_SERVICE, KeychainProvider, KeychainStore};
#[cfg(feature = "pkcs11")]
pub use self::pkcs11::{
    PKCS11_MODULE_ENV, PKCS11_PIN_ENV, PKCS11_PROVIDER_ID, PinCallback, Pkcs11Provider,
};
#[cfg(all(feature = "tpm", unix))]
pub use self::tpm::{DEFAULT_TCTI, TPM_PROVIDER_ID, TPM_TCTI_ENV, TpmProvider};
