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

use crate::access::{Operation, Principal, Role};
use crate::clock::Timestamp;
use crate::crypto;
use crate::encoding::{
    self, AuditBlock, AuditBlockRef, AuditBlockV2, AuditEntry, AuditEntryRef, AuditStored,
    PrincipalStored, TableId, tag,
};
use crate::error::{Error, Result};
use crate::secret::VersionId;
use crate::storage::Keys;
use std::sync::Arc;
use zeroize::Zeroizing;

/// How reads are audited (writes are always audited in their own transaction).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuditLevel {
    /// A read's record commits before the value is returned (fail-closed; about one fsync per read).
    Durable,
    /// A read's record waits in memory and joins the chain with the next commit: the next
    /// write, an explicit [`flush`](crate::Vault::flush), the drop of the last handle, or, once
    /// 4,096 are waiting, a commit of its own on a background thread (the read that fills the
    /// buffer does not wait for it). That last commit skips the fsync while the previous durable
    /// commit is less than a second old: its records reach the disk with the next durable
    /// commit. A crash can lose the read records no durable commit has carried yet (up to 4,096
    /// in memory, and those of reads that came within a second of the last durable commit,
    /// however many), never a write's, and never leaves the rollback witness ahead of the file.
    /// Call [`flush`](crate::Vault::flush) where a read must be on the disk.
    #[default]
    Buffered,
    /// Reads are not recorded. Refused operations still are.
    Off,
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
    /// The credential that acted: the key slot or token behind the handle (`None` for the
    /// vault's own records and for records written before file format 3).
    pub principal: Option<Principal>,
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
            principal: e.principal.map(principal_from).transpose()?,
        })
    }
}

/// How a principal is stored in an audit record.
pub(crate) fn principal_to(p: &Principal) -> PrincipalStored {
    match p {
        Principal::Slot { id, role } => PrincipalStored::Slot {
            id: *id,
            role: role.code(),
        },
        Principal::Token { id, role } => PrincipalStored::Token {
            id: crypto::unhex::<8>(id).unwrap_or_default(),
            role: role.code(),
        },
    }
}

fn principal_from(p: PrincipalStored) -> Result<Principal> {
    let role =
        |c| Role::from_code(c).ok_or_else(|| Error::corrupted("unknown role in audit record"));
    Ok(match p {
        PrincipalStored::Slot { id, role: r } => Principal::Slot { id, role: role(r)? },
        PrincipalStored::Token { id, role: r } => Principal::Token {
            id: crypto::hex(&id),
            role: role(r)?,
        },
    })
}

/// A record about to wait in memory for the next commit (a buffered read, a refusal), borrowed
/// from the call that makes it; a [`PendingBatch`] keeps it. What it records is exactly what an
/// [`AuditEntry`] would.
pub(crate) struct PendingRecord<'a> {
    pub time: Timestamp,
    pub actor: &'a Arc<str>,
    pub operation: u16,
    pub name: Option<&'a str>,
    pub version: Option<[u8; 16]>,
    pub outcome: Option<&'static str>,
    pub principal: Option<PrincipalStored>,
}

/// Records waiting in memory for the next commit, kept compact so that adding one allocates
/// nothing of its own: names go into one shared string, a run of records by the same actor
/// shares one reference to its name, outcomes are error codes. The [`AuditEntry`] bytes are only
/// produced when the records are sealed, borrowing from here ([`PendingBatch::entries`]).
#[derive(Default)]
pub(crate) struct PendingBatch {
    records: Vec<Waiting>,
    names: String,
    actors: Vec<Arc<str>>,
}

/// One record of a [`PendingBatch`]: its actor and name as places in the batch.
struct Waiting {
    time: Timestamp,
    actor: u32,
    operation: u16,
    name: Option<(u32, u32)>,
    version: Option<[u8; 16]>,
    outcome: Option<&'static str>,
    principal: Option<PrincipalStored>,
}

impl PendingBatch {
    /// An empty batch with room for `n` records (and their names) before it grows.
    pub(crate) fn with_capacity(n: usize) -> Self {
        PendingBatch {
            records: Vec::with_capacity(n),
            names: String::with_capacity(n * 24),
            actors: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, r: PendingRecord<'_>) {
        let actor = match self.actors.last() {
            Some(last) if Arc::ptr_eq(last, r.actor) => self.actors.len() - 1,
            _ => {
                self.actors.push(Arc::clone(r.actor));
                self.actors.len() - 1
            }
        };
        // Names are at most 127 bytes and a batch is bounded: the offsets fit in u32.
        let name = r.name.map(|n| {
            let start = self.names.len();
            self.names.push_str(n);
            (start as u32, self.names.len() as u32)
        });
        self.records.push(Waiting {
            time: r.time,
            actor: actor as u32,
            operation: r.operation,
            name,
            version: r.version,
            outcome: r.outcome,
            principal: r.principal,
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records as they are encoded (numbered when they are sealed), in order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = AuditEntryRef<'_>> {
        self.records.iter().map(|w| AuditEntryRef {
            seq: 0,
            time: w.time,
            actor: self.actors.get(w.actor as usize).map_or("", |a| a),
            operation: w.operation,
            name: w
                .name
                .and_then(|(a, b)| self.names.get(a as usize..b as usize)),
            version: w.version,
            outcome: w.outcome,
            principal: w.principal,
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
    // The MAC of a block covers every byte of the record before it (its last 32 bytes).
    let block_covered = |plain: Zeroizing<Vec<u8>>| {
        let mut covered = plain;
        let body = covered.len().saturating_sub(32);
        covered.truncate(body);
        covered
    };
    let row = match plain.first() {
        Some(&tag::AUDIT) => {
            let stored: AuditStored = encoding::decode(tag::AUDIT, &plain)?;
            let covered = encoding::encode(tag::AUDIT, &stored.entry, 64);
            AuditRow {
                entries: vec![stored.entry.into()],
                mac: stored.mac,
                covered,
            }
        }
        Some(&tag::AUDIT_BLOCK_V2) => {
            let block: AuditBlockV2 = encoding::decode(tag::AUDIT_BLOCK_V2, &plain)?;
            AuditRow {
                entries: block.entries.into_iter().map(AuditEntry::from).collect(),
                mac: block.mac,
                covered: block_covered(plain),
            }
        }
        _ => {
            let block: AuditBlock = encoding::decode(tag::AUDIT_BLOCK, &plain)?;
            AuditRow {
                entries: block.entries,
                mac: block.mac,
                covered: block_covered(plain),
            }
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
    entries: &mut [AuditEntryRef<'_>],
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
