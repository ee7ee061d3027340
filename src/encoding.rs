//! The bytes of every stored record. Nothing outside this module knows them.
//!
//! Each record is a serde struct encoded with postcard (a documented, stable, non-self-describing
//! format) behind a one-byte tag that names the record kind and its layout version. A reader that
//! meets a tag it does not know refuses the record ([`Error::UnsupportedFormat`] when the tag is a
//! later layout of a known kind, [`Error::Corrupted`] otherwise). `docs/FORMAT.md` describes every
//! layout; the golden-bytes tests below catch an accidental change of encoding.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::clock::Timestamp;
use crate::digest::Digests;
use crate::error::{Error, Result};

/// The file format this build writes in the header, and the newest it reads. Format 2 keeps the
/// audit head in the `audit` table instead of `meta`; a format-1 file is upgraded in place by its
/// first commit (docs/FORMAT.md).
pub(crate) const FORMAT_VERSION: u16 = 3;

/// The format number bound into associated data, key-slot wraps and backup blobs: 1 since the
/// first format (format 2 moved a row; what records bind is unchanged).
pub(crate) const RECORD_FORMAT: u16 = 1;

/// The first bytes of the `header` entry of the `meta` table.
pub(crate) const MAGIC: &[u8; 8] = b"TRESOR\0\0";

/// Record tags: high nibble = kind, low nibble = layout version (1 for format 1; the audit kind
/// has a second layout, [`AuditBlock`]).
pub(crate) mod tag {
    pub const SETTINGS: u8 = 0x11;
    /// The audit head of formats 1 and 2 (read only).
    pub const AUDIT_HEAD_V1: u8 = 0x21;
    /// The audit head with the state digests and the chain's latest time (format 3).
    pub const AUDIT_HEAD: u8 = 0x22;
    pub const SECRET: u8 = 0x31;
    pub const VERSION: u8 = 0x41;
    pub const AUDIT: u8 = 0x51;
    /// Blocks of format 2 (records without a principal; read only).
    pub const AUDIT_BLOCK_V2: u8 = 0x52;
    /// Blocks of records naming their principal (format 3).
    pub const AUDIT_BLOCK: u8 = 0x53;
    pub const SLOT: u8 = 0x61;
    pub const BACKUP: u8 = 0x71;
    pub const HEADER: u8 = 0x81;
    pub const TOKEN: u8 = 0x91;
}

/// Table ids, bound into every record's associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum TableId {
    Meta = 1,
    // 2 was never used (slots are authenticated by the header MAC, not sealed).
    Secrets = 3,
    Versions = 4,
    Deleted = 6,
    Retired = 7,
    Audit = 8,
    Backup = 9,
    Tokens = 10,
}

/// Associated data of a sealed record: `"tresor" || format (u16 LE) || vault id (16) || table id
/// (1) || the record's redb key bytes`. A record moved to another row, table or vault, or read as
/// another format version, fails to authenticate.
pub(crate) fn aad(vault_id: &[u8; 16], table: TableId, key: &[u8]) -> Aad {
    const PREFIX: usize = 6 + 2 + 16 + 1;
    let mut buf = [0u8; AAD_INLINE];
    buf[..6].copy_from_slice(b"tresor");
    buf[6..8].copy_from_slice(&RECORD_FORMAT.to_le_bytes());
    buf[8..24].copy_from_slice(vault_id);
    buf[24] = table as u8;
    if PREFIX + key.len() <= AAD_INLINE {
        buf[PREFIX..PREFIX + key.len()].copy_from_slice(key);
        Aad::Inline(buf, PREFIX + key.len())
    } else {
        let mut v = buf[..PREFIX].to_vec();
        v.extend_from_slice(key);
        Aad::Heap(v)
    }
}

const AAD_INLINE: usize = 96;

/// Associated data, on the stack for the usual short keys (every record read builds one).
pub(crate) enum Aad {
    Inline([u8; AAD_INLINE], usize),
    Heap(Vec<u8>),
}

impl std::ops::Deref for Aad {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Aad::Inline(buf, len) => &buf[..*len],
            Aad::Heap(v) => v,
        }
    }
}

/// Redb key bytes of a `(name hash, sequence)` row, as used in associated data.
pub(crate) fn seq_key(hash: &[u8; 16], seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(hash);
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Encodes `value` behind `tag`. `hint` is the expected size, so that the buffer holding a
/// secret is not reallocated (a reallocation would leave an unwiped copy behind).
pub(crate) fn encode<T: Serialize>(tag: u8, value: &T, hint: usize) -> Zeroizing<Vec<u8>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(hint + 64));
    buf.push(tag);
    // Writing to a Vec cannot fail for these types (no maps with non-string keys, no
    // unsupported serde features).
    let mut out = postcard::to_extend(value, std::mem::take(&mut *buf)).unwrap_or_default();
    std::mem::swap(&mut *buf, &mut out);
    buf
}

/// Decodes a record written by [`encode`] with the same tag; trailing bytes are an error.
pub(crate) fn decode<T: DeserializeOwned>(tag: u8, bytes: &[u8]) -> Result<T> {
    match bytes.first() {
        Some(&t) if t == tag => {}
        Some(&t) if t & 0xf0 == tag & 0xf0 && t > tag => {
            return Err(Error::UnsupportedFormat {
                found: u16::from(t & 0x0f),
                supported: FORMAT_VERSION,
            });
        }
        _ => return Err(Error::corrupted("unknown record kind")),
    }
    let (v, rest) = postcard::take_from_bytes(&bytes[1..])
        .map_err(|_| Error::corrupted("record does not decode"))?;
    if !rest.is_empty() {
        return Err(Error::corrupted("record has trailing bytes"));
    }
    Ok(v)
}

/// A secret value as a byte string: the same postcard bytes as a `Vec<u8>` (a length, then the
/// bytes), decoded with one copy into a buffer of the exact size instead of byte by byte.
mod secret_bytes {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub(super) fn serialize<S: Serializer>(
        v: &Zeroizing<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Zeroizing<Vec<u8>>, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Zeroizing<Vec<u8>>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: Error>(self, b: &[u8]) -> Result<Self::Value, E> {
                Ok(Zeroizing::new(b.to_vec()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // Formats without a byte string type; not postcard's path.
                let mut out = Zeroizing::new(Vec::with_capacity(seq.size_hint().unwrap_or(0)));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_bytes(Bytes)
    }
}

/// The clear header: written once at creation, readable before unlock.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub vault_id: [u8; 16],
    pub created: Timestamp,
}

/// `MAGIC || format (u16 LE) || tag || postcard(Header)`.
pub(crate) fn encode_header(h: &Header) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&encode(tag::HEADER, h, 32));
    out
}

/// Decodes the header; see [`header_format`] for the format number it carries.
pub(crate) fn decode_header(bytes: &[u8]) -> Result<Header> {
    header_format(bytes)?;
    decode(tag::HEADER, &bytes[10..])
}

/// The format number of a header, checked: 1 to [`FORMAT_VERSION`].
pub(crate) fn header_format(bytes: &[u8]) -> Result<u16> {
    if bytes.len() < 10 || &bytes[..8] != MAGIC {
        return Err(Error::corrupted("not a tresor vault"));
    }
    let format = u16::from_le_bytes([bytes[8], bytes[9]]);
    if format > FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            found: format,
            supported: FORMAT_VERSION,
        });
    }
    if format == 0 {
        return Err(Error::corrupted("format version 0"));
    }
    Ok(format)
}

/// Vault settings, sealed in `meta["settings"]` and covered by the header MAC.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    pub retention_days: u16,
    pub purge_protection: bool,
    pub max_versions: Option<u32>,
}

/// The audit chain head, sealed in `audit[2^64 − 1]` and rewritten by every commit. It carries a
/// copy of the settings, the latest time the chain recorded, and the state digest of every table
/// (`None` only when read from a file of format 1 or 2, which had none; the first commit adds it).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AuditHead {
    pub seq: u64,
    pub mac: [u8; 32],
    pub settings: Settings,
    pub time: Timestamp,
    pub digests: Option<Digests>,
}

/// The audit head of formats 1 and 2 (tag 0x21), read only.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AuditHeadV1 {
    pub seq: u64,
    pub mac: [u8; 32],
    pub settings: Settings,
}

/// Decodes an audit head of either layout. A head of formats 1 and 2 has no digests, and its
/// time is unknown: `time` stands in (the caller passes the last record's time).
pub(crate) fn decode_head(
    bytes: &[u8],
    time: impl FnOnce() -> Result<Timestamp>,
) -> Result<AuditHead> {
    if bytes.first() == Some(&tag::AUDIT_HEAD_V1) {
        let h: AuditHeadV1 = decode(tag::AUDIT_HEAD_V1, bytes)?;
        return Ok(AuditHead {
            seq: h.seq,
            mac: h.mac,
            settings: h.settings,
            time: time()?,
            digests: None,
        });
    }
    decode(tag::AUDIT_HEAD, bytes)
}

/// When a secret or a version was soft-deleted, and when it will be purged.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deletion {
    pub deleted_on: Timestamp,
    pub scheduled_purge: Timestamp,
}

/// Properties of one version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredProps {
    pub enabled: bool,
    pub not_before: Option<Timestamp>,
    pub expires_on: Option<Timestamp>,
    pub content_type: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// One version of a secret: sealed in `versions` (older versions), inside a [`SecretRecord`]
/// (the current version), or in `retired` (pruned under purge protection, with `retired` set).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct VersionRecord {
    pub id: [u8; 16],
    pub seq: u64,
    pub props: StoredProps,
    #[serde(with = "secret_bytes")]
    pub value: Zeroizing<Vec<u8>>,
    pub retired: Option<Deletion>,
}

/// A secret: sealed in `secrets` (live) or `deleted` (soft-deleted, with `deleted` set). Holds
/// the current version whole, so that reading the current value is one lookup and one decryption.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct SecretRecord {
    pub name: String,
    /// The oldest version still kept; versions `first_seq..current.seq` live in `versions`.
    pub first_seq: u64,
    pub max_versions: Option<u32>,
    pub deleted: Option<Deletion>,
    pub current: VersionRecord,
}

/// One audit record without its MAC: the bytes the chain MAC covers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuditEntry {
    pub seq: u64,
    pub time: Timestamp,
    pub actor: String,
    pub operation: u16,
    pub name: Option<String>,
    pub version: Option<[u8; 16]>,
    /// `None` for success, else the error code.
    pub outcome: Option<String>,
    /// The credential that acted; `None` for the vault's own records (actor `system`) and for
    /// records written before format 3.
    pub principal: Option<PrincipalStored>,
}

/// The credential behind an audit record: a key slot or a bearer token, with the role the
/// handle acted with.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrincipalStored {
    /// A key slot, by id (variant 0).
    Slot { id: u32, role: u8 },
    /// A bearer token, by the first 8 bytes of its lookup hash (its public id; variant 1).
    Token { id: [u8; 8], role: u8 },
}

/// An audit record as formats 1 and 2 stored it (no principal): read only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuditEntryV1 {
    pub seq: u64,
    pub time: Timestamp,
    pub actor: String,
    pub operation: u16,
    pub name: Option<String>,
    pub version: Option<[u8; 16]>,
    pub outcome: Option<String>,
}

impl From<AuditEntryV1> for AuditEntry {
    fn from(e: AuditEntryV1) -> Self {
        AuditEntry {
            seq: e.seq,
            time: e.time,
            actor: e.actor,
            operation: e.operation,
            name: e.name,
            version: e.version,
            outcome: e.outcome,
            principal: None,
        }
    }
}

/// One audit record as first stored (layout 1 of the audit kind, tag 0x51: sealed in `audit`,
/// keyed by its sequence number). Still read; new records are written as [`AuditBlock`]s.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuditStored {
    pub entry: AuditEntryV1,
    pub mac: [u8; 32],
}

/// The audit records of one commit (layout 3 of the audit kind, tag 0x53: sealed in `audit`,
/// keyed by the sequence number of its last record). `mac` is the chain MAC after the block and
/// covers every byte of the encoded block before it, so it is the last 32 bytes of the record.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuditBlock {
    pub entries: Vec<AuditEntry>,
    pub mac: [u8; 32],
}

/// A block as format 2 wrote it (layout 2, tag 0x52: records without a principal), read only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuditBlockV2 {
    pub entries: Vec<AuditEntryV1>,
    pub mac: [u8; 32],
}

/// [`AuditBlock`] borrowing its records, for writing: the same encoding (its records are
/// [`AuditEntry`]s or [`AuditEntryRef`]s, which encode alike).
#[derive(Serialize)]
pub(crate) struct AuditBlockRef<'a, E = AuditEntry> {
    pub entries: &'a [E],
    pub mac: [u8; 32],
}

/// [`AuditEntry`] borrowing its strings, for writing: the same fields in the same order, so the
/// same encoding (postcard writes `&str` and `String` alike).
#[derive(Serialize, Clone, Copy, Debug)]
pub(crate) struct AuditEntryRef<'a> {
    pub seq: u64,
    pub time: Timestamp,
    pub actor: &'a str,
    pub operation: u16,
    pub name: Option<&'a str>,
    pub version: Option<[u8; 16]>,
    pub outcome: Option<&'a str>,
    pub principal: Option<PrincipalStored>,
}

impl AuditEntry {
    /// The record borrowed, for writing.
    pub(crate) fn as_ref(&self) -> AuditEntryRef<'_> {
        AuditEntryRef {
            seq: self.seq,
            time: self.time,
            actor: &self.actor,
            operation: self.operation,
            name: self.name.as_deref(),
            version: self.version,
            outcome: self.outcome.as_deref(),
            principal: self.principal,
        }
    }
}

/// How a key slot derives its key-encryption key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) enum SlotKindStored {
    /// Argon2id over a passphrase.
    Passphrase {
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    },
    /// Keyed BLAKE3 of a 256-bit external key.
    Key,
    /// A random key wrapped by an app's key provider.
    Provider { provider: String, blob: Vec<u8> },
}

/// Everything about a slot but its wrapped key; its encoding is the associated data of the wrap.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct SlotDesc {
    pub label: String,
    pub role: u8,
    pub kind: SlotKindStored,
    pub salt: [u8; 16],
    pub created: Timestamp,
}

/// A key slot, stored in clear in `slots` (it must be read before unlock) and covered by the
/// header MAC after unlock.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct SlotRecord {
    pub desc: SlotDesc,
    /// First 16 bytes of `BLAKE3-keyed(KEK, "tresor kek check")`: tells a wrong key (mismatch)
    /// from a damaged slot (match, but the wrapped key does not authenticate).
    pub check: [u8; 16],
    /// The master key sealed under the slot's key-encryption key.
    pub wrapped: Vec<u8>,
}

/// A bearer token's record, sealed in `tokens` under the token's lookup hash. The token itself is
/// never stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct TokenRecord {
    pub label: String,
    pub role: u8,
    pub created: Timestamp,
}

/// The plaintext of a secret backup blob.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct BackupPayload {
    pub record: SecretRecord,
    pub versions: Vec<VersionRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hex;

    fn sample_version() -> VersionRecord {
        VersionRecord {
            id: [0xab; 16],
            seq: 3,
            props: StoredProps {
                enabled: true,
                not_before: None,
                expires_on: Some(Timestamp::from_unix(1_800_000_000)),
                content_type: Some("text/plain".into()),
                tags: BTreeMap::from([("env".to_string(), "dev".to_string())]),
                created: Timestamp::from_unix(1_700_000_000),
                updated: Timestamp::from_unix(1_700_000_001),
            },
            value: Zeroizing::new(b"s3cr3t".to_vec()),
            retired: None,
        }
    }

    /// Golden bytes: a change here is a change of the file format and needs a new tag.
    #[test]
    fn golden_version_record() {
        let bytes = encode(tag::VERSION, &sample_version(), 0);
        assert_eq!(
            hex(&bytes),
            "41abababababababababababababababab0301000180c8ceb40d010a746578742f706c61696e0103656e760364657680c49fd50c82c49fd50c0673336372337400"
        );
        let back: VersionRecord = decode(tag::VERSION, &bytes).unwrap();
        assert_eq!(back, sample_version());
    }

    #[test]
    fn golden_header_and_settings() {
        let h = Header {
            vault_id: [1; 16],
            created: Timestamp::from_unix(5),
        };
        // "TRESOR\0\0", format 3 (LE), tag 0x81, 16 bytes of vault id, created = 5 (zigzag 10).
        assert_eq!(
            hex(&encode_header(&h)),
            "545245534f520000030081010101010101010101010101010101010a"
        );
        // A format-1 header still reads.
        let mut older = encode_header(&h);
        older[8] = 1;
        assert_eq!(decode_header(&older).unwrap(), h);
        assert_eq!(decode_header(&encode_header(&h)).unwrap(), h);
        let s = Settings {
            retention_days: 90,
            purge_protection: true,
            max_versions: Some(10),
        };
        assert_eq!(hex(&encode(tag::SETTINGS, &s, 0)), "115a01010a");
    }

    /// A block written through [`AuditBlockRef`] decodes as an [`AuditBlock`], and its MAC is the
    /// record's last 32 bytes (the audit chain relies on both). Records name their principal.
    #[test]
    fn audit_block_layout() {
        let entry = AuditEntry {
            seq: 7,
            time: Timestamp::from_unix(1_700_000_000),
            actor: "owner".into(),
            operation: 2,
            name: Some("db".into()),
            version: None,
            outcome: None,
            principal: Some(PrincipalStored::Slot { id: 1, role: 1 }),
        };
        let entries = vec![
            entry.clone(),
            AuditEntry {
                seq: 8,
                principal: None,
                ..entry
            },
        ];
        let bytes = encode(
            tag::AUDIT_BLOCK,
            &AuditBlockRef {
                entries: &entries,
                mac: [0xcd; 32],
            },
            0,
        );
        assert_eq!(&bytes[bytes.len() - 32..], &[0xcd; 32]);
        assert_eq!(
            hex(&bytes[..bytes.len() - 32]),
            "53020780c49fd50c056f776e6572020102646200000100010108\
             80c49fd50c056f776e65720201026462000000"
        );
        let back: AuditBlock = decode(tag::AUDIT_BLOCK, &bytes).unwrap();
        assert_eq!(back.entries, entries);
        assert_eq!(back.mac, [0xcd; 32]);
    }

    /// Format 2's blocks (records without a principal) keep their bytes and still decode.
    #[test]
    fn audit_block_v2_layout() {
        let entry = AuditEntryV1 {
            seq: 7,
            time: Timestamp::from_unix(1_700_000_000),
            actor: "owner".into(),
            operation: 2,
            name: Some("db".into()),
            version: None,
            outcome: None,
        };
        let block = AuditBlockV2 {
            entries: vec![entry.clone(), AuditEntryV1 { seq: 8, ..entry }],
            mac: [0xcd; 32],
        };
        let bytes = encode(tag::AUDIT_BLOCK_V2, &block, 0);
        assert_eq!(
            hex(&bytes[..bytes.len() - 32]),
            "52020780c49fd50c056f776e65720201026462000008\
             80c49fd50c056f776e657202010264620000"
        );
        let back: AuditBlockV2 = decode(tag::AUDIT_BLOCK_V2, &bytes).unwrap();
        assert_eq!(back, block);
    }

    #[test]
    fn decode_rejects_wrong_tag_newer_layout_and_trailing_bytes() {
        let bytes = encode(tag::VERSION, &sample_version(), 0);
        assert!(matches!(
            decode::<VersionRecord>(tag::SECRET, &bytes),
            Err(Error::Corrupted(_))
        ));
        let mut newer = bytes.to_vec();
        newer[0] = 0x42;
        assert!(matches!(
            decode::<VersionRecord>(tag::VERSION, &newer),
            Err(Error::UnsupportedFormat { .. })
        ));
        let mut trailing = bytes.to_vec();
        trailing.push(0);
        assert!(decode::<VersionRecord>(tag::VERSION, &trailing).is_err());
        assert!(decode::<VersionRecord>(tag::VERSION, &bytes[..bytes.len() - 1]).is_err());
        assert!(decode::<VersionRecord>(tag::VERSION, &[]).is_err());
    }

    /// A block of borrowed records encodes byte for byte as the same block of owned records.
    #[test]
    fn borrowed_audit_records_encode_alike() {
        let owned = vec![
            AuditEntry {
                seq: 7,
                time: Timestamp::from_unix(1_700_000_000),
                actor: "owner".into(),
                operation: 2,
                name: Some("db".into()),
                version: Some([3; 16]),
                outcome: Some("NotFound".into()),
                principal: Some(PrincipalStored::Token {
                    id: [9; 8],
                    role: 2,
                }),
            },
            AuditEntry {
                seq: 8,
                time: Timestamp::from_unix(-5),
                actor: "system".into(),
                operation: 300,
                name: None,
                version: None,
                outcome: None,
                principal: None,
            },
        ];
        let borrowed: Vec<AuditEntryRef<'_>> = owned.iter().map(AuditEntry::as_ref).collect();
        let a = encode(
            tag::AUDIT_BLOCK,
            &AuditBlockRef {
                entries: &owned,
                mac: [1; 32],
            },
            0,
        );
        let b = encode(
            tag::AUDIT_BLOCK,
            &AuditBlockRef {
                entries: &borrowed,
                mac: [1; 32],
            },
            0,
        );
        assert_eq!(&a[..], &b[..]);
        let back: AuditBlock = decode(tag::AUDIT_BLOCK, &b).unwrap();
        assert_eq!(back.entries, owned);
    }
}
