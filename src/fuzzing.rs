//! Entry points for the fuzz targets under `fuzz/` and the reliability tests under `tests/`.
//!
//! **Not part of the stable API.** Hidden from the documentation; anything here may change or
//! go away in any release. Each function reaches a crate-private piece (the record encoding,
//! key slot parsing, the AEAD) that the public API only reaches through a valid, authenticated
//! file, so that fuzzers and tests can feed it arbitrary bytes directly.

use crate::encoding::{
    self, AuditHead, AuditStored, BackupPayload, SecretRecord, Settings, SlotRecord, VersionRecord,
    tag,
};
use crate::error::Result;
use crate::slot::{self, Credential, SlotInfo, Unwrapped};
use crate::vault::Vault;

/// Length of the random nonce at the front of every sealed record.
pub const NONCE_LEN: usize = crate::crypto::NONCE_LEN;

/// Decodes `bytes` as every record kind in turn. For each kind that decodes, re-encodes the
/// value and decodes it again, and panics if the round trip changes it (a fuzz target treats
/// that panic as a finding). Returns how many kinds accepted the bytes.
pub fn decode_any_record(bytes: &[u8]) -> usize {
    fn round_trip<T>(t: u8, bytes: &[u8]) -> usize
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        match encoding::decode::<T>(t, bytes) {
            Ok(v) => {
                let again = encoding::encode(t, &v, bytes.len());
                let back: T = encoding::decode(t, &again)
                    .unwrap_or_else(|e| panic!("re-encoded record does not decode: {e}"));
                assert_eq!(back, v, "record changed in a round trip");
                1
            }
            Err(_) => 0,
        }
    }
    let mut n = 0;
    if let Ok(h) = encoding::decode_header(bytes) {
        let again = encoding::encode_header(&h);
        assert_eq!(encoding::decode_header(&again).ok(), Some(h));
        n += 1;
    }
    n += round_trip::<Settings>(tag::SETTINGS, bytes);
    n += round_trip::<AuditHead>(tag::AUDIT_HEAD, bytes);
    n += round_trip::<SecretRecord>(tag::SECRET, bytes);
    n += round_trip::<VersionRecord>(tag::VERSION, bytes);
    n += round_trip::<AuditStored>(tag::AUDIT, bytes);
    n += round_trip::<SlotRecord>(tag::SLOT, bytes);
    n += round_trip::<BackupPayload>(tag::BACKUP, bytes);
    n
}

/// Parses `bytes` as a stored key slot (as the `slots` table holds it), lists it as
/// [`crate::Vault::slots`] would, and tries to open it with `credential` for slot id `slot_id`
/// of the vault `vault_id`. Returns the listing and whether the credential opened the slot.
///
/// Passphrase credentials run Argon2id with the slot's parameters (up to the cap): fuzz with
/// key credentials.
pub fn parse_slot(
    bytes: &[u8],
    vault_id: &[u8; 16],
    slot_id: u32,
    credential: &Credential,
) -> Result<(SlotInfo, bool)> {
    let rec: SlotRecord = encoding::decode(tag::SLOT, bytes)?;
    let info = slot::info(slot_id, &rec)?;
    let opened = match slot::kek_for(credential, &rec.desc)? {
        Some(kek) => matches!(
            slot::unwrap(&rec, vault_id, slot_id, &kek),
            Unwrapped::Key(_)
        ),
        None => false,
    };
    Ok((info, opened))
}

/// A backup blob of `vault` whose authenticated payload is `plaintext` (arbitrary bytes), so
/// that [`crate::Vault::restore_secret`]'s checks after authentication can be fuzzed.
pub fn backup_blob_from_plaintext(vault: &Vault, plaintext: &[u8]) -> Result<Vec<u8>> {
    vault.seal_backup_plaintext(plaintext)
}

/// Seals `plaintext` with the record AEAD (XChaCha20-Poly1305, fresh random nonce) under `key`:
/// `nonce || ciphertext || tag`, exactly as records are stored.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    crate::crypto::Sealer::new(key).seal(aad, plaintext)
}

/// Opens a box made by [`seal`]; `None` when it does not authenticate.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    crate::crypto::Sealer::new(key)
        .open(aad, sealed)
        .map(|p| p.to_vec())
}

/// The constant-time comparison every MAC check of the engine goes through.
pub fn mac_eq(a: &[u8], b: &[u8]) -> bool {
    crate::crypto::mac_eq(a, b)
}
