//! The redb tables of a vault file, the keys derived from the master key, and sealing of
//! records into rows.

use redb::{ReadableTable, Table, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::crypto::{self, Key, Sealer};
use crate::encoding::{self, TableId};
use crate::error::{Error, Result};

/// A 128-bit keyed hash of a case-folded secret name: the redb key of a secret.
pub(crate) type NameHash = [u8; 16];

/// `header` (clear), `settings` (sealed), `auth` (MAC); `audit_head` (sealed) in format-1 files.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Key slot id → clear slot record.
pub(crate) const SLOTS: TableDefinition<u32, &[u8]> = TableDefinition::new("slots");
/// Name hash → sealed secret record (with its current version).
pub(crate) const SECRETS: TableDefinition<NameHash, &[u8]> = TableDefinition::new("secrets");
/// (name hash, sequence) → sealed older version.
pub(crate) const VERSIONS: TableDefinition<(NameHash, u64), &[u8]> =
    TableDefinition::new("versions");
/// (name hash, version id) → sequence: finds an older version by id in one lookup (the current
/// version is in the secret's record; files written before this rule also index it).
pub(crate) const VERSION_IDS: TableDefinition<(NameHash, [u8; 16]), u64> =
    TableDefinition::new("version_ids");
/// Name hash → sealed soft-deleted secret record.
pub(crate) const DELETED: TableDefinition<NameHash, &[u8]> = TableDefinition::new("deleted");
/// (name hash, sequence) → sealed version pruned under purge protection, awaiting its purge date.
pub(crate) const RETIRED: TableDefinition<(NameHash, u64), &[u8]> = TableDefinition::new("retired");
/// Sequence number of a block's last record → sealed block of audit records (older files also
/// hold rows of one record each); [`AUDIT_HEAD_KEY`] → sealed audit head.
pub(crate) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// Lookup hash of a bearer token → sealed token record (created by the first token).
pub(crate) const TOKENS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("tokens");

pub(crate) const META_HEADER: &str = "header";
pub(crate) const META_SETTINGS: &str = "settings";
pub(crate) const META_AUTH: &str = "auth";
/// Set while a compaction or a master-key rotation is under way (`compact`, `rotate`): a file
/// that still has it at the next open was left by one cut short.
pub(crate) const META_MAINTENANCE: &str = "maintenance";
/// Where format-1 files keep the audit head (format 2: [`AUDIT_HEAD_KEY`]).
pub(crate) const META_AUDIT_HEAD: &str = "audit_head";
/// The row of `audit` holding the sealed audit head, after every block: the head and the newest
/// block share a leaf, so a commit rewrites one tree fewer than with the head in `meta`.
pub(crate) const AUDIT_HEAD_KEY: u64 = u64::MAX;

/// Copies every row of `src` into `dst` as it is (sealed rows stay valid: their associated data
/// names the table and key, not the file or page).
pub(crate) fn copy_rows<K, V>(
    src: &impl ReadableTable<K, V>,
    dst: &mut Table<'_, K, V>,
) -> Result<()>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    for row in src.iter()? {
        let (k, v) = row?;
        dst.insert(k.value(), v.value())?;
    }
    Ok(())
}

/// The subkeys of one master key.
pub(crate) struct Keys {
    pub mk: Key,
    data: Sealer,
    name: Key,
    pub audit: Key,
    pub meta: Key,
    /// Keys the state digest (see `digest`).
    pub state: Key,
    pub backup: Sealer,
}

impl Keys {
    pub(crate) fn new(mk: Key) -> Self {
        let data = crypto::derive("tresor 2026 record encryption key v1", &mk);
        let backup = crypto::derive("tresor 2026 backup encryption key v1", &mk);
        Keys {
            data: Sealer::new(&data),
            name: crypto::derive("tresor 2026 name hash key v1", &mk),
            audit: crypto::derive("tresor 2026 audit chain key v1", &mk),
            meta: crypto::derive("tresor 2026 header mac key v1", &mk),
            state: crypto::derive("tresor 2026 state digest key v1", &mk),
            backup: Sealer::new(&backup),
            mk,
        }
    }

    /// The redb key of a name: the keyed hash of its lowercase form (names compare
    /// case-insensitively). Valid names are folded on the stack.
    pub(crate) fn name_hash(&self, name: &str) -> NameHash {
        let mut buf = [0u8; crate::limits::MAX_NAME_LEN];
        let bytes = name.as_bytes();
        let full = if let Some(b) = buf.get_mut(..bytes.len()) {
            b.copy_from_slice(bytes);
            b.make_ascii_lowercase();
            crypto::mac(&self.name, &[b])
        } else {
            crypto::mac(&self.name, &[name.to_ascii_lowercase().as_bytes()])
        };
        let mut h = [0u8; 16];
        h.copy_from_slice(&full[..16]);
        h
    }

    /// Encodes and seals a record for the row `key` of `table`, under a fresh random nonce.
    pub(crate) fn seal<T: Serialize>(
        &self,
        vault_id: &[u8; 16],
        table: TableId,
        key: &[u8],
        tag: u8,
        value: &T,
        hint: usize,
    ) -> Result<Vec<u8>> {
        let nonce = crypto::random()?;
        self.seal_with_nonce(vault_id, table, key, tag, value, hint, &nonce)
    }

    /// [`Keys::seal`] under a nonce the caller drew (from a [`crypto::RandomPool`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn seal_with_nonce<T: Serialize>(
        &self,
        vault_id: &[u8; 16],
        table: TableId,
        key: &[u8],
        tag: u8,
        value: &T,
        hint: usize,
        nonce: &[u8; crypto::NONCE_LEN],
    ) -> Result<Vec<u8>> {
        let plain = encoding::encode(tag, value, hint);
        self.data
            .seal_with_nonce(nonce, &encoding::aad(vault_id, table, key), &plain)
    }

    /// Seals an already encoded record for the row `key` of `table`.
    pub(crate) fn seal_bytes(
        &self,
        vault_id: &[u8; 16],
        table: TableId,
        key: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>> {
        self.data.seal(&encoding::aad(vault_id, table, key), plain)
    }

    /// Opens a record of the row `key` of `table` without decoding it.
    pub(crate) fn open_bytes(
        &self,
        vault_id: &[u8; 16],
        table: TableId,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.data
            .open(&encoding::aad(vault_id, table, key), sealed)
            .ok_or_else(|| {
                Error::corrupted("a record does not authenticate (altered, moved or damaged)")
            })
    }

    /// Opens and decodes a record of the row `key` of `table`.
    pub(crate) fn open<T: DeserializeOwned>(
        &self,
        vault_id: &[u8; 16],
        table: TableId,
        key: &[u8],
        tag: u8,
        sealed: &[u8],
    ) -> Result<T> {
        encoding::decode(tag, &self.open_bytes(vault_id, table, key, sealed)?)
    }
}
