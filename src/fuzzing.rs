//! Entry points for the fuzz targets under `fuzz/` and the reliability tests under `tests/`.
//!
//! **Not part of the stable API.** Hidden from the documentation; anything here may change or
//! go away in any release. Each function reaches a crate-private piece (the record encoding,
//! key slot parsing, the AEAD) that the public API only reaches through a valid, authenticated
//! file, so that fuzzers and tests can feed it arbitrary bytes directly.

use crate::encoding::{
    self, AuditBlock, AuditBlockV2, AuditEntryV1, AuditHead, AuditHeadV1, AuditStored,
    BackupPayload, PrincipalStored, SecretRecord, Settings, SlotRecord, VersionRecord, tag,
};
use crate::error::Result;
use crate::slot::{self, Credential, SlotInfo, Unwrapped};
use crate::vault::Vault;

/// Whether `vault` made a commit without an fsync (a full buffer of read records, committed in
/// the background) that no durable commit has carried to the disk yet.
pub fn has_undurable_commit(vault: &Vault) -> bool {
    vault.has_undurable_commit()
}

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
    n += round_trip::<AuditHeadV1>(tag::AUDIT_HEAD_V1, bytes);
    n += round_trip::<SecretRecord>(tag::SECRET, bytes);
    n += round_trip::<VersionRecord>(tag::VERSION, bytes);
    n += round_trip::<AuditStored>(tag::AUDIT, bytes);
    n += round_trip::<AuditBlock>(tag::AUDIT_BLOCK, bytes);
    n += round_trip::<AuditBlockV2>(tag::AUDIT_BLOCK_V2, bytes);
    n += round_trip::<SlotRecord>(tag::SLOT, bytes);
    n += round_trip::<BackupPayload>(tag::BACKUP, bytes);
    n
}

/// One encoded record of every kind, named (seeds for the fuzz corpora). The key slot is made
/// for the credential `Credential::key([0x42; 32])`, vault id `[0; 16]` and slot id 0.
pub fn sample_records() -> Result<Vec<(&'static str, Vec<u8>)>> {
    use std::collections::BTreeMap;

    use zeroize::Zeroizing;

    use crate::clock::Timestamp;
    use crate::encoding::{AuditEntry, Header, StoredProps};

    let t = Timestamp::from_unix(1_800_000_000);
    let version = |seq: u64, value: &[u8]| VersionRecord {
        id: [seq as u8; 16],
        seq,
        props: StoredProps {
            enabled: true,
            not_before: None,
            expires_on: Some(t),
            content_type: Some("text/plain".into()),
            tags: BTreeMap::from([("env".to_string(), "dev".to_string())]),
            created: t,
            updated: t,
        },
        value: Zeroizing::new(value.to_vec()),
        retired: None,
    };
    let secret = SecretRecord {
        name: "Db-Password".into(),
        first_seq: 1,
        max_versions: Some(5),
        deleted: None,
        current: version(2, b"v2"),
    };
    let legacy = AuditEntryV1 {
        seq: 7,
        time: t,
        actor: "owner".into(),
        operation: 1,
        name: Some("db-password".into()),
        version: Some([2; 16]),
        outcome: None,
    };
    let entry = AuditEntry {
        principal: Some(PrincipalStored::Slot { id: 1, role: 1 }),
        ..AuditEntry::from(legacy.clone())
    };
    let spec = slot::SlotSpec::new(Credential::key([0x42; 32]), "owner");
    let (slot_rec, _) = slot::new_slot(&spec, &[0; 16], 0, &crate::crypto::random_key()?, t)?;
    Ok(vec![
        (
            "header",
            encoding::encode_header(&Header {
                vault_id: [9; 16],
                created: t,
            }),
        ),
        (
            "settings",
            encoding::encode(
                tag::SETTINGS,
                &Settings {
                    retention_days: 90,
                    purge_protection: true,
                    max_versions: Some(3),
                },
                0,
            )
            .to_vec(),
        ),
        (
            "audit-head",
            encoding::encode(
                tag::AUDIT_HEAD,
                &AuditHead {
                    seq: 7,
                    mac: [7; 32],
                    settings: Settings {
                        retention_days: 90,
                        purge_protection: true,
                        max_versions: Some(3),
                    },
                    time: crate::clock::Timestamp::from_unix(1_700_000_000),
                    digests: Some(crate::digest::Digests(
                        [[9; 32]; crate::digest::TABLES.len()],
                    )),
                },
                0,
            )
            .to_vec(),
        ),
        ("secret", encoding::encode(tag::SECRET, &secret, 0).to_vec()),
        (
            "version",
            encoding::encode(tag::VERSION, &version(1, b"v1"), 0).to_vec(),
        ),
        (
            "audit",
            encoding::encode(
                tag::AUDIT,
                &AuditStored {
                    entry: legacy.clone(),
                    mac: [1; 32],
                },
                0,
            )
            .to_vec(),
        ),
        (
            "audit-block-v2",
            encoding::encode(
                tag::AUDIT_BLOCK_V2,
                &AuditBlockV2 {
                    entries: vec![legacy.clone(), AuditEntryV1 { seq: 2, ..legacy }],
                    mac: [2; 32],
                },
                0,
            )
            .to_vec(),
        ),
        (
            "audit-block",
            encoding::encode(
                tag::AUDIT_BLOCK,
                &AuditBlock {
                    entries: vec![entry.clone(), AuditEntry { seq: 2, ..entry }],
                    mac: [2; 32],
                },
                0,
            )
            .to_vec(),
        ),
        ("slot", encoding::encode(tag::SLOT, &slot_rec, 0).to_vec()),
        (
            "backup",
            encoding::encode(
                tag::BACKUP,
                &BackupPayload {
                    record: secret,
                    versions: vec![version(1, b"v1")],
                },
                0,
            )
            .to_vec(),
        ),
    ])
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

/// Seals `plaintext` under a given `nonce` with the AEAD this build uses (ring with the feature
/// `fast-aead`, else RustCrypto): `nonce || ciphertext || tag`.
pub fn seal_with_nonce(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    crate::crypto::Sealer::new(key)
        .seal_with_nonce(nonce, aad, plaintext)
        .unwrap_or_else(|e| panic!("sealing failed: {e}"))
}

/// Seals `plaintext` under a given `nonce` with RustCrypto's `chacha20poly1305` (the reference).
pub fn reference_seal(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    use crate::crypto::reference;
    reference::seal(&reference::cipher(key), nonce, aad, plaintext)
        .unwrap_or_else(|| panic!("reference sealing failed"))
}

/// Opens `sealed` with RustCrypto's `chacha20poly1305` (the reference).
pub fn reference_open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    use crate::crypto::reference;
    reference::open(&reference::cipher(key), aad, sealed).map(|p| p.to_vec())
}

/// Checks this build's AEAD against the reference on one input and panics on any difference:
/// the same box from both, each opening the other's box, both refusing the box with one bit of
/// `flip` changed (an index into the box, taken modulo its length) or another associated data,
/// and both giving the same answer for `sealed_guess` opened as a box.
pub fn aead_cross_check(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
    flip: usize,
    sealed_guess: &[u8],
) {
    let ours = seal_with_nonce(key, nonce, aad, plaintext);
    let theirs = reference_seal(key, nonce, aad, plaintext);
    assert_eq!(ours, theirs, "the two AEADs seal differently");
    assert_eq!(
        open(key, aad, &theirs).as_deref(),
        Some(plaintext),
        "this build does not open the reference's box"
    );
    assert_eq!(
        reference_open(key, aad, &ours).as_deref(),
        Some(plaintext),
        "the reference does not open this build's box"
    );
    let mut altered = ours.clone();
    let at = flip % altered.len();
    altered[at] ^= 1 << (flip / altered.len() % 8);
    assert_eq!(open(key, aad, &altered), None, "an altered box opened");
    assert_eq!(
        reference_open(key, aad, &altered),
        None,
        "an altered box opened"
    );
    let mut other_aad = aad.to_vec();
    other_aad.push(0);
    assert_eq!(open(key, &other_aad, &ours), None, "another aad opened");
    assert_eq!(
        open(key, aad, sealed_guess),
        reference_open(key, aad, sealed_guess),
        "the two AEADs disagree on a box"
    );
}
