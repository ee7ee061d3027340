//! The audit log: what is recorded, how reads are recorded, and the chain that makes it
//! tamper-evident.
//!
//! Every operation, allowed or refused, appends one record: sequence number, time, actor,
//! operation, secret name, version, outcome. The records of one commit are sealed together in
//! rows of up to 64 (blocks; a buffered read's record joins the next commit's blocks) and the
//! rows are chained: the row ending at record *n* carries
//! `MAC_n = BLAKE3-keyed(audit key, MAC_prev || encoded block)`, with the first `MAC_prev`
//! derived from the vault id. The head `(n, MAC_n)` is sealed in its own row after the blocks and
//! written in the same transaction as the block, so
//! [`Vault::verify_audit`](crate::Vault::verify_audit) notices an altered, removed, reordered or
//! truncated record. A [`Checkpoint`] exported from the head lets a later open notice a file
//! rolled back to an older copy.

use std::fmt;
use std::str::FromStr;

use crate::clock::Timestamp;
use crate::crypto;
use crate::encoding::{self, AuditBlock, AuditBlockRef, AuditEntry, AuditStored, TableId, tag};
use crate::error::{Error, Result};
use crate::secret::VersionId;
use crate::slot::Role;
use crate::storage::Keys;
use zeroize::Zeroizing;

/// How reads are audited (writes are always audited in their own transaction).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuditLevel {
    /// A read's record commits before the value is returned (fail-closed; about one fsync per read).
    Durable,
    /// A read's record joins the chain in memory and reaches the disk with the next commit, an
    /// explicit [`flush`](crate::Vault::flush), or when the vault is dropped. A crash can lose the
    /// last unflushed read records, never a write's.
    #[default]
    Buffered,
    /// Reads are not recorded. Refused operations still are.
    Off,
}

macro_rules! operations {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $role:ident, $text:literal;)*) => {
        /// An operation, as named in audit records (Azure Key Vault's event names where one exists).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Operation {
            $($(#[$doc])* $name,)*
        }

        impl Operation {
            /// The stable numeric code stored in audit records.
            pub fn code(self) -> u16 {
                match self { $(Operation::$name => $code,)* }
            }

            /// The operation with this code.
            pub fn from_code(c: u16) -> Option<Self> {
                match c { $($code => Some(Operation::$name),)* _ => None }
            }

            /// The name (`"SecretGet"`, …).
            pub fn as_str(self) -> &'static str {
                match self { $(Operation::$name => stringify!($name),)* }
            }

            /// The least role allowed to perform it.
            pub fn least_role(self) -> Role {
                match self { $(Operation::$name => Role::$role,)* }
            }

            /// A verb phrase for messages ("read a secret").
            pub fn describe(self) -> &'static str {
                match self { $(Operation::$name => $text,)* }
            }
        }
    };
}

operations! {
    /// Write a new version.
    SecretSet = 1, Writer, "write secrets";
    /// Read a value.
    SecretGet = 2, Reader, "read secrets";
    /// Change a version's properties.
    SecretUpdate = 3, Writer, "update secrets";
    /// Soft-delete a secret.
    SecretDelete = 4, Writer, "delete secrets";
    /// List secrets.
    SecretList = 5, Reader, "list secrets";
    /// List a secret's versions.
    SecretListVersions = 6, Reader, "list versions";
    /// Purge a deleted secret.
    SecretPurge = 7, Owner, "purge secrets";
    /// Back a secret up.
    SecretBackup = 8, Writer, "back secrets up";
    /// Restore a secret from a backup.
    SecretRestore = 9, Writer, "restore secrets";
    /// Recover a deleted secret.
    SecretRecover = 10, Writer, "recover secrets";
    /// Read a deleted secret's properties.
    SecretGetDeleted = 11, Reader, "read deleted secrets";
    /// List deleted secrets.
    SecretListDeleted = 12, Reader, "list deleted secrets";
    /// Read a version's properties.
    SecretGetProperties = 13, Reader, "read secret properties";
    /// List secrets near or past expiry.
    SecretListExpiring = 14, Reader, "list expiring secrets";
    /// A version removed by `max_versions` (recorded with actor `system`).
    SecretPrune = 15, Writer, "prune versions";
    /// Write many secrets in one transaction (each also gets its own `SecretSet` record).
    SecretImport = 16, Writer, "import secrets";
    /// Create the vault.
    VaultCreate = 32, Owner, "create the vault";
    /// Unlock and open the vault.
    VaultOpen = 33, Auditor, "open the vault";
    /// Add a key slot.
    SlotAdd = 34, Owner, "add key slots";
    /// Remove a key slot.
    SlotRemove = 35, Owner, "remove key slots";
    /// List key slots.
    SlotList = 36, Owner, "list key slots";
    /// Change a slot's passphrase.
    PassphraseChange = 37, Owner, "change passphrases";
    /// Change a vault setting.
    SettingsUpdate = 38, Owner, "change settings";
    /// Rotate the master key.
    KeyRotate = 40, Owner, "rotate the master key";
    /// Compact the file.
    Compact = 41, Owner, "compact the vault";
    /// Copy the whole vault.
    VaultBackup = 42, Owner, "copy the vault";
    /// Purge deleted secrets past their scheduled purge date.
    PurgeExpired = 43, Writer, "purge expired secrets";
    /// Read the audit log.
    AuditRead = 48, Auditor, "read the audit log";
    /// Verify the audit chain.
    AuditVerify = 49, Auditor, "verify the audit log";
    /// Export a checkpoint.
    AuditCheckpoint = 50, Auditor, "take checkpoints";
    /// Create a bearer token (for `tresor serve`).
    TokenCreate = 52, Owner, "create tokens";
    /// List bearer tokens.
    TokenList = 53, Owner, "list tokens";
    /// Revoke a bearer token.
    TokenRevoke = 54, Owner, "revoke tokens";
    /// A bearer token presented that the vault does not know (recorded as a refusal).
    TokenAuthenticate = 55, Reader, "authenticate tokens";
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// One audit record, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When it happened.
    pub time: Timestamp,
    /// Who: the unlocking slot's label, an identity the app named, or `system`.
    pub actor: String,
    /// What.
    pub operation: Operation,
    /// On which secret, where one was named.
    pub name: Option<String>,
    /// Which version, where one was involved.
    pub version: Option<VersionId>,
    /// `None` for success, else the error code ([`Error::code`]).
    pub error: Option<String>,
}

impl AuditRecord {
    pub(crate) fn from_entry(e: AuditEntry) -> Result<Self> {
        Ok(AuditRecord {
            seq: e.seq,
            time: e.time,
            actor: e.actor,
            operation: Operation::from_code(e.operation)
                .ok_or_else(|| Error::corrupted("unknown operation in audit record"))?,
            name: e.name,
            version: e.version.map(VersionId),
            error: e.outcome,
        })
    }
}

/// The chain MAC before the first record.
pub(crate) fn genesis(audit_key: &[u8; 32], vault_id: &[u8; 16]) -> [u8; 32] {
    crypto::mac(audit_key, &[b"tresor audit genesis", vault_id])
}

/// The chain MAC of a record whose encoding is `encoded`, following `prev`.
pub(crate) fn chain(audit_key: &[u8; 32], prev: &[u8; 32], encoded: &[u8]) -> [u8; 32] {
    crypto::mac(audit_key, &[prev, encoded])
}

/// The most records one block holds: a commit with more (a large import, a full buffer of read
/// records) writes several blocks. Blocks of a few KiB share B-tree leaves; one block per large
/// commit would be a value of many pages, which compaction cannot move.
pub(crate) const BLOCK_ENTRIES: usize = 64;

/// One row of the `audit` table, opened: its records (one or more, consecutive, the last one's
/// sequence number being the row key) and the chain MAC after them.
pub(crate) struct AuditRow {
    pub entries: Vec<AuditEntry>,
    pub mac: [u8; 32],
    /// The bytes the row's MAC covers after the previous MAC (decrypted record bytes: wiped
    /// when dropped).
    covered: Zeroizing<Vec<u8>>,
}

impl AuditRow {
    /// Whether the row's MAC chains from `prev`.
    pub(crate) fn chains_from(&self, audit_key: &[u8; 32], prev: &[u8; 32]) -> bool {
        crypto::mac_eq(&chain(audit_key, prev, &self.covered), &self.mac)
    }

    /// The sequence number of the row's first record.
    pub(crate) fn first_seq(&self) -> u64 {
        self.entries.first().map_or(0, |e| e.seq)
    }
}

/// Opens the audit row stored under `key`: a block of records, or a single record as older
/// files hold them. A row whose records are not numbered `…, key` without gaps is
/// [`Error::Corrupted`].
pub(crate) fn open_row(
    keys: &Keys,
    vault_id: &[u8; 16],
    key: u64,
    sealed: &[u8],
) -> Result<AuditRow> {
    let plain = keys.open_bytes(vault_id, TableId::Audit, &key.to_be_bytes(), sealed)?;
    let row = if plain.first() == Some(&tag::AUDIT) {
        let stored: AuditStored = encoding::decode(tag::AUDIT, &plain)?;
        let covered = encoding::encode(tag::AUDIT, &stored.entry, 64);
        AuditRow {
            entries: vec![stored.entry],
            mac: stored.mac,
            covered,
        }
    } else {
        let block: AuditBlock = encoding::decode(tag::AUDIT_BLOCK, &plain)?;
        // Decoded, so the record ends with the 32 bytes of the MAC: what it covers is the rest.
        let mut covered = plain;
        let body = covered.len() - 32;
        covered.truncate(body);
        AuditRow {
            entries: block.entries,
            mac: block.mac,
            covered,
        }
    };
    let n = row.entries.len() as u64;
    let numbered = n > 0
        && key >= n
        && row
            .entries
            .iter()
            .zip(key - n + 1..)
            .all(|(e, seq)| e.seq == seq);
    if !numbered {
        return Err(Error::corrupted("an audit row is out of place"));
    }
    Ok(row)
}

/// Numbers `entries` from `after + 1`, chains them after `prev` and seals them as one block.
/// Returns the row key (the last sequence number), the new chain MAC and the sealed row.
pub(crate) fn seal_block(
    keys: &Keys,
    vault_id: &[u8; 16],
    after: u64,
    prev: &[u8; 32],
    entries: &mut [AuditEntry],
) -> Result<(u64, [u8; 32], Vec<u8>)> {
    for (e, seq) in entries.iter_mut().zip(after + 1..) {
        e.seq = seq;
    }
    let last = after + entries.len() as u64;
    let mut plain = encoding::encode(
        tag::AUDIT_BLOCK,
        &AuditBlockRef {
            entries,
            mac: [0; 32],
        },
        96 * entries.len(),
    );
    let body = plain.len() - 32;
    let mac = chain(&keys.audit, prev, &plain[..body]);
    plain[body..].copy_from_slice(&mac);
    let sealed = keys.seal_bytes(vault_id, TableId::Audit, &last.to_be_bytes(), &plain)?;
    Ok((last, mac, sealed))
}

/// The head of the audit chain, as a short printable string:
/// `tresor-cp1-<sequence>-<first 16 bytes of the head MAC in hex>`.
///
/// ```
/// let cp: tresor::Checkpoint = "tresor-cp1-42-00112233445566778899aabbccddeeff".parse().unwrap();
/// assert_eq!(cp.seq(), 42);
/// assert_eq!(cp.to_string(), "tresor-cp1-42-00112233445566778899aabbccddeeff");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    pub(crate) seq: u64,
    pub(crate) mac: [u8; 16],
}

impl Checkpoint {
    pub(crate) fn new(seq: u64, mac: &[u8; 32]) -> Self {
        let mut m = [0u8; 16];
        m.copy_from_slice(&mac[..16]);
        Checkpoint { seq, mac: m }
    }

    /// The sequence number of the last record the checkpoint covers.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tresor-cp1-{}-{}", self.seq, crypto::hex(&self.mac))
    }
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checkpoint({self})")
    }
}

impl FromStr for Checkpoint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let rest = s
            .trim()
            .strip_prefix("tresor-cp1-")
            .ok_or(Error::InvalidCheckpoint)?;
        let (seq, mac) = rest.split_once('-').ok_or(Error::InvalidCheckpoint)?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidCheckpoint);
        }
        Ok(Checkpoint {
            seq: seq.parse().map_err(|_| Error::InvalidCheckpoint)?,
            mac: crypto::unhex::<16>(mac).ok_or(Error::InvalidCheckpoint)?,
        })
    }
}
