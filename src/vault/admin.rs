//! Administration: key slots, settings, master key rotation, compaction, whole-vault copies,
//! and reading and verifying the audit log.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use redb::{
    Builder, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableHandle, WriteTransaction,
};
use secrecy::SecretString;

use super::{
    Inner, Vault, VaultSettings, append_audit, auth_mac, entries_of, finish, lock, read_head,
    read_settings, take_pending,
};
use crate::access::Operation;
use crate::audit::{self, AuditRecord, Checkpoint};
use crate::crypto;
use crate::digest::{self, Txn};
use crate::encoding::{
    self, AuditEntry, AuditHead, SecretRecord, SlotRecord, TableId, VersionRecord, seq_key, tag,
};
use crate::error::{Error, Result};
use crate::memlock::KeyBox;
use crate::slot::{self, Credential, KdfParams, SlotInfo, SlotSpec, Unwrapped};
use crate::storage::{
    self, AUDIT, AUDIT_HEAD_KEY, DELETED, Keys, META, NameHash, RETIRED, SECRETS, SLOTS,
    VERSION_IDS, VERSIONS,
};
use crate::witness::WitnessState;

/// Work that rewrites much of the file, left unfinished ([`Vault::unfinished_maintenance`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Maintenance {
    /// A compaction ([`Vault::compact`]).
    Compaction,
    /// A master-key rotation ([`Vault::rotate_master_key`]).
    Rotation,
}

/// Progress of [`Vault::rotate_master_key`]: records re-encrypted so far, of `total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Records done.
    pub done: u64,
    /// Records in all.
    pub total: u64,
}

/// Verifies the whole audit chain in `txn`; returns the number of records. `each` sees every
/// record of the verified chain, in order.
fn verify_chain(
    txn: &ReadTransaction,
    keys: &Keys,
    vault_id: &[u8; 16],
    mut each: impl FnMut(&AuditEntry),
) -> Result<u64> {
    let table = txn.open_table(AUDIT)?;
    let head = read_head(&table, &txn.open_table(META)?, keys, vault_id)?;
    let mut mac = audit::genesis(&keys.audit, vault_id);
    let mut count = 0u64;
    for row in table.range(..AUDIT_HEAD_KEY)? {
        let (k, v) = row?;
        let seq = k.value();
        let broken = Error::AuditBroken { seq: count + 1 };
        let Ok(row) = audit::open_row(keys, vault_id, seq, v.value()) else {
            return Err(broken);
        };
        if row.first_seq() != count + 1 || !row.chains_from(&keys.audit, &mac) {
            return Err(broken);
        }
        mac = row.mac;
        count = seq;
        row.entries.iter().for_each(&mut each);
    }
    if head.seq != count || !crypto::mac_eq(&head.mac, &mac) {
        return Err(Error::AuditBroken {
            seq: count.min(head.seq) + 1,
        });
    }
    Ok(count)
}

fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<()> {
    storage::copy_rows(&from.open_table(def)?, &mut to.open_table(def)?)
}

/// What the audit log says of a secret: live or soft-deleted, with its current version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recorded {
    Live([u8; 16]),
    Deleted([u8; 16]),
}

/// Applies one audit record to the secrets it says exist (by lowercase name): the successful
/// operations that create, replace, delete, recover, restore or purge a secret.
fn replay(state: &mut HashMap<String, Recorded>, e: &AuditEntry) {
    let (None, Some(name)) = (&e.outcome, &e.name) else {
        return;
    };
    let key = name.to_ascii_lowercase();
    match (Operation::from_code(e.operation), e.version) {
        (Some(Operation::SecretSet | Operation::SecretRestore), Some(v)) => {
            state.insert(key, Recorded::Live(v));
        }
        (Some(Operation::SecretDelete), Some(v)) => {
            state.insert(key, Recorded::Deleted(v));
        }
        (Some(Operation::SecretRecover), _) => {
            if let Some(Recorded::Deleted(v)) = state.get(&key).copied() {
                state.insert(key, Recorded::Live(v));
            }
        }
        (Some(Operation::SecretPurge), _) => {
            state.remove(&key);
        }
        _ => {}
    }
}

/// Rewrites the table `def` in key order (through a scratch table, within `txn`), so that its
/// leaves are full. Rows are copied as they are: the associated data of a sealed row names its
/// table and key, not the page it sits in.
fn repack<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<()> {
    let scratch_name = format!("{}.repack", def.name());
    let scratch = TableDefinition::<K, V>::new(&scratch_name);
    let copy = |from: TableDefinition<K, V>, to: TableDefinition<K, V>| {
        storage::copy_rows(&txn.open_table(from)?, &mut txn.open_table(to)?)
    };
    copy(def, scratch)?;
    txn.delete_table(def)?;
    copy(scratch, def)?;
    txn.delete_table(scratch)?;
    Ok(())
}

impl Vault {
    /// The vault's settings (not audited: it holds no secret data).
    pub fn settings(&self) -> Result<VaultSettings> {
        super::guard_panics(|| {
            let store = self.inner.store();
            let txn = store.db.begin_read()?;
            let s = read_settings(&txn.open_table(META)?, &store.keys, &self.inner.vault_id)?;
            Ok(VaultSettings::from(&s))
        })
    }

    /// Turns purge protection on. There is no way to turn it off again.
    pub fn enable_purge_protection(&self) -> Result<()> {
        self.write(Operation::SettingsUpdate, None, |cx| {
            let mut s = cx.settings()?;
            s.purge_protection = true;
            cx.write_settings(&s)
        })
    }

    /// Sets (or clears) the vault-wide version limit; applies from each secret's next write.
    pub fn set_max_versions(&self, max: Option<u32>) -> Result<()> {
        if max == Some(0) {
            return Err(Error::invalid("max_versions is at least 1"));
        }
        self.write(Operation::SettingsUpdate, None, |cx| {
            let mut s = cx.settings()?;
            s.max_versions = max;
            cx.write_settings(&s)
        })
    }

    /// The key slots.
    pub fn slots(&self) -> Result<Vec<SlotInfo>> {
        self.read(Operation::SlotList, None, |cx| {
            let mut out = Vec::new();
            for row in cx.txn.open_table(SLOTS)?.iter()? {
                let (id, bytes) = row?;
                let rec: SlotRecord = encoding::decode(tag::SLOT, bytes.value())?;
                out.push(slot::info(id.value(), &rec)?);
            }
            Ok((out, None))
        })
    }

    /// Adds a key slot.
    ///
    /// ```
    /// use tresor::{Credential, KdfParams, Options, Role, SlotSpec, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// let ci = Credential::generate_key()?;
    /// vault.add_slot(&SlotSpec::new(ci, "ci").role(Role::Reader))?;
    /// assert_eq!(vault.slots()?.len(), 2);
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn add_slot(&self, spec: &SlotSpec) -> Result<SlotInfo> {
        self.write(Operation::SlotAdd, None, |cx| {
            let id = {
                let slots = cx.txn.open_table(SLOTS)?;
                let last = slots.last()?.map(|(k, _)| k.value()).unwrap_or(0);
                last.checked_add(1)
                    .ok_or_else(|| Error::invalid("no slot ids left"))?
            };
            let (rec, _) = slot::new_slot(spec, cx.vault_id, id, &cx.keys.mk, cx.now)?;
            let bytes = encoding::encode(tag::SLOT, &rec, 128);
            cx.txn.open_table(SLOTS)?.insert(id, bytes.as_slice())?;
            cx.write_auth()?;
            slot::info(id, &rec)
        })
    }

    /// Removes a key slot (never the last one).
    pub fn remove_slot(&self, id: u32) -> Result<()> {
        self.write(Operation::SlotRemove, None, |cx| {
            {
                let mut slots = cx.txn.open_table(SLOTS)?;
                if slots.get(id)?.is_none() {
                    return Err(Error::NotFound);
                }
                if slots.len()? <= 1 {
                    return Err(Error::LastSlot);
                }
                slots.remove(id)?;
            }
            cx.write_auth()
        })?;
        let mut unlocked = lock(&self.inner.unlocked);
        if unlocked.as_ref().is_some_and(|(s, _)| *s == id) {
            *unlocked = None;
        }
        Ok(())
    }

    /// Changes the passphrase of a passphrase slot: the master key is re-wrapped, nothing else
    /// is re-encrypted (O(1)).
    pub fn change_passphrase(&self, id: u32, new: &SecretString, kdf: KdfParams) -> Result<()> {
        let kek = self.write(Operation::PassphraseChange, None, |cx| {
            let rec: SlotRecord = {
                let slots = cx.txn.open_table(SLOTS)?;
                let bytes = slots.get(id)?.ok_or(Error::NotFound)?;
                encoding::decode(tag::SLOT, bytes.value())?
            };
            let (rec, kek) =
                slot::with_new_passphrase(&rec, new, kdf, cx.vault_id, id, &cx.keys.mk)?;
            let bytes = encoding::encode(tag::SLOT, &rec, 128);
            cx.txn.open_table(SLOTS)?.insert(id, bytes.as_slice())?;
            cx.write_auth()?;
            Ok(kek)
        })?;
        let mut unlocked = lock(&self.inner.unlocked);
        if unlocked.as_ref().is_some_and(|(s, _)| *s == id) {
            *unlocked = Some((id, kek));
        }
        Ok(())
    }

    /// Re-encrypts every record under a new master key and re-wraps every key slot, in one
    /// transaction: a crash in the middle leaves the old vault intact.
    ///
    /// Re-wrapping a slot needs its key-encryption key: the slot that unlocked this handle is
    /// known; pass the credentials of every other slot in `credentials` (otherwise
    /// [`Error::MissingCredential`]). Names are re-hashed and the audit chain is re-keyed (after
    /// verifying it), so checkpoints and secret backups taken before the rotation no longer match.
    /// `progress` is called as records are re-encrypted.
    ///
    /// Records sealed under the old master key stay in the file's free pages until redb reuses
    /// them; call [`Vault::compact`] afterwards (the command line's `rotate-key` does) so that
    /// none is left: a removed slot's holder, who may still unwrap the old master key from an
    /// older copy of the file, then finds nothing sealed under it in this one.
    pub fn rotate_master_key(
        &self,
        credentials: &[Credential],
        mut progress: impl FnMut(Progress),
    ) -> Result<()> {
        self.authorize(Operation::KeyRotate, None)?;
        if self.inner.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned);
        }
        // Marked before the rotation's one transaction, cleared by it: a rotation cut short
        // (which can leave the file much larger) is reported by the next open.
        self.mark_maintenance(Some(Maintenance::Rotation))?;
        let result = self.inner.guard_write(|| {
            rotate(
                &self.inner,
                self.entry(Operation::KeyRotate, None, None, None),
                credentials,
                &mut progress,
            )
        });
        if let Err(e) = &result
            && !matches!(e, Error::Poisoned)
        {
            self.inner.note(
                self.pending(Operation::KeyRotate, None, None, Some(e)),
                true,
            )?;
            if !self.inner.poisoned.load(Ordering::SeqCst) {
                // Refused before anything was written (a missing credential, a broken chain).
                self.mark_maintenance(None)?;
            }
        }
        result
    }

    /// Compacts the file so that the space of purged and overwritten records is released (and
    /// their bytes leave the file). Waits for other operations on this vault to finish.
    ///
    /// The tables of secrets, versions and the version index are first rebuilt in key order in
    /// one transaction (their rows arrive in keyed-hash order, which leaves B-tree leaves about
    /// a third empty): a 10,000-secret vault of 256-byte values goes from about 660 to about 490
    /// bytes per secret. The file grows by about the size of those tables during that
    /// transaction, before redb's compaction moves pages down and truncates it.
    ///
    /// The `Compact` audit record is committed first (with any buffered records), so that no
    /// commit follows the compaction and re-grows the file; a compaction that then fails is
    /// recorded as a failure. Returns whether redb moved anything.
    pub fn compact(&self) -> Result<bool> {
        self.authorize(Operation::Compact, None)?;
        self.inner
            .note(self.pending(Operation::Compact, None, None, None), true)?;
        self.flush()?;
        // Marked before the work, cleared once done: a compaction cut short (a crash, a
        // failed write) is reported by the next open.
        self.mark_maintenance(Some(Maintenance::Compaction))?;
        let result = {
            let mut store = self.inner.store_mut();
            self.inner.guard_write(|| {
                // Rows arrive in keyed-hash order, which leaves B-tree leaves about two thirds
                // full; rebuilt in key order, in one transaction, they fill them. The file grows
                // for that transaction; redb's compaction then moves pages down and truncates.
                let txn = store.db.begin_write()?;
                repack(&txn, SECRETS)?;
                repack(&txn, VERSIONS)?;
                repack(&txn, VERSION_IDS)?;
                repack(&txn, DELETED)?;
                repack(&txn, RETIRED)?;
                txn.commit()?;
                compact_passes(&mut store.db)
            })
        };
        let result = result.and_then(|moved| {
            self.mark_maintenance(None)?;
            // Clearing the mark is a commit, which allocates pages past the compacted end (redb
            // grows a file in steps): compacted again, the file ends at its size. A crash in
            // between leaves it compacted all but that commit, with no mark to report.
            let mut store = self.inner.store_mut();
            let again = self.inner.guard_write(|| compact_passes(&mut store.db))?;
            Ok(moved || again)
        });
        if let Err(e) = &result {
            self.inner
                .note(self.pending(Operation::Compact, None, None, Some(e)), true)?;
        }
        result
    }

    /// A compaction or a master-key rotation that was cut short (a crash, a failed write) and
    /// may have left the file much larger than its contents: [`Vault::compact`] releases the
    /// space (and clears this).
    pub fn unfinished_maintenance(&self) -> Result<Option<Maintenance>> {
        let store = self.inner.store();
        let txn = store.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let Some(v) = meta.get(storage::META_MAINTENANCE)? else {
            return Ok(None);
        };
        Ok(match v.value() {
            b"rotation" => Some(Maintenance::Rotation),
            _ => Some(Maintenance::Compaction),
        })
    }

    /// Sets or clears the maintenance mark, in a commit of its own that adds no audit record
    /// (buffered read records stay buffered).
    fn mark_maintenance(&self, mark: Option<Maintenance>) -> Result<()> {
        let store = self.inner.store();
        self.inner.guard_write(|| {
            let txn = Inner::begin(&store)?;
            {
                let mut meta = txn.open_table(META)?;
                match mark {
                    Some(Maintenance::Rotation) => {
                        meta.insert(storage::META_MAINTENANCE, b"rotation".as_slice())?;
                    }
                    Some(Maintenance::Compaction) => {
                        meta.insert(storage::META_MAINTENANCE, b"compaction".as_slice())?;
                    }
                    None => {
                        if meta.get(storage::META_MAINTENANCE)?.is_none() {
                            return Ok(());
                        }
                        meta.remove(storage::META_MAINTENANCE)?;
                    }
                }
            }
            self.inner.commit_bookkeeping(&store, txn)
        })
    }

    /// Writes a consistent copy of the whole vault to `path` (which must not exist) while it
    /// stays open. The copy opens with the same credentials.
    pub fn backup_to(&self, path: impl AsRef<Path>) -> Result<()> {
        self.authorize(Operation::VaultBackup, None)?;
        self.flush()?;
        let file = crate::files::create_private(path.as_ref())?;
        let result = super::guard_panics(|| {
            let store = self.inner.store();
            let from = store.db.begin_read()?;
            let copy =
                Builder::new().create_with_backend(redb::backends::FileBackend::new(file)?)?;
            let to = copy.begin_write()?;
            copy_table(&from, &to, META)?;
            copy_table(&from, &to, SLOTS)?;
            copy_table(&from, &to, SECRETS)?;
            copy_table(&from, &to, VERSIONS)?;
            copy_table(&from, &to, VERSION_IDS)?;
            copy_table(&from, &to, DELETED)?;
            copy_table(&from, &to, RETIRED)?;
            copy_table(&from, &to, AUDIT)?;
            super::tokens::copy(&from, &to)?;
            to.commit()?;
            Ok(())
        });
        if result.is_err() {
            let _ = std::fs::remove_file(path.as_ref());
        }
        let err = result.as_ref().err();
        self.inner
            .note(self.pending(Operation::VaultBackup, None, None, err), true)?;
        result
    }

    /// Up to `limit` audit records after sequence number `after` (0 for the first), oldest
    /// first. Buffered records are committed first.
    pub fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        self.authorize(Operation::AuditRead, None)?;
        self.flush()?;
        self.read(Operation::AuditRead, None, |cx| {
            let mut out = Vec::new();
            let table = cx.txn.open_table(AUDIT)?;
            // Rows are keyed by their last record: the first row at or after `after + 1`
            // holds that record.
            'rows: for row in table.range(after.saturating_add(1)..AUDIT_HEAD_KEY)? {
                let (k, v) = row?;
                let row = audit::open_row(cx.keys, cx.vault_id, k.value(), v.value())?;
                for entry in row.entries {
                    if out.len() == limit {
                        break 'rows;
                    }
                    if entry.seq > after {
                        out.push(AuditRecord::from_entry(entry)?);
                    }
                }
            }
            Ok((out, None))
        })
    }

    /// The sequence number of the last committed audit record (buffered records first committed).
    /// It is taken as a checkpoint is: the call needs the auditor's right and is recorded as
    /// `AuditCheckpoint` (at the read level), so the log is one record longer afterwards.
    pub fn audit_len(&self) -> Result<u64> {
        Ok(self.checkpoint()?.seq())
    }

    /// Verifies the whole audit chain: every record authenticates, sequence numbers run without
    /// gaps, every MAC chains to the previous one, and the last matches the sealed head.
    /// Returns the number of records; a broken chain is [`Error::AuditBroken`].
    pub fn verify_audit(&self) -> Result<u64> {
        self.authorize(Operation::AuditVerify, None)?;
        self.flush()?;
        self.read(Operation::AuditVerify, None, |cx| {
            Ok((verify_chain(&cx.txn, cx.keys, cx.vault_id, |_| {})?, None))
        })
    }

    /// The head of the audit chain as a [`Checkpoint`]: keep it outside the vault and pass it to
    /// [`Options::expect_checkpoint`](crate::Options::expect_checkpoint) to detect a rolled-back file.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        self.authorize(Operation::AuditCheckpoint, None)?;
        self.flush()?;
        self.read(Operation::AuditCheckpoint, None, |cx| {
            let head = read_head(
                &cx.txn.open_table(AUDIT)?,
                &cx.txn.open_table(META)?,
                cx.keys,
                cx.vault_id,
            )?;
            Ok((Checkpoint::new(head.seq, &head.mac), None))
        })
    }

    /// A full check: redb's page checksums, every record's authentication and place, the audit
    /// chain, and the secrets against the chain: replaying its successful sets, deletes,
    /// recoveries, restores and purges must give exactly the live and deleted secrets found,
    /// with their current versions (a secret removed with all its rows, or put back after its
    /// purge, is [`Error::Corrupted`]). Returns the number of records checked.
    pub fn check_integrity(&self) -> Result<u64> {
        self.authorize(Operation::AuditVerify, None)?;
        self.flush()?;
        super::guard_panics(|| {
            {
                let mut store = self.inner.store_mut();
                if !store.db.check_integrity()? {
                    return Err(Error::corrupted(
                        "the storage engine's integrity check failed",
                    ));
                }
            }
            self.verify_records()
        })
    }

    /// Opens every record of every table: returns how many; any failure is an error.
    pub(crate) fn verify_records(&self) -> Result<u64> {
        let store = self.inner.store();
        let keys = &store.keys;
        let vid = &self.inner.vault_id;
        let txn = store.db.begin_read()?;
        let mut n = 0u64;
        // Per secret: (first kept sequence, current sequence, current version id).
        let mut live = HashMap::new();
        // Per lowercase name: what the tables hold.
        let mut found: HashMap<String, Recorded> = HashMap::new();
        for (def, which) in [(SECRETS, TableId::Secrets), (DELETED, TableId::Deleted)] {
            for row in txn.open_table(def)?.iter()? {
                let (k, v) = row?;
                let hash = k.value();
                let rec: SecretRecord = keys.open(vid, which, &hash, tag::SECRET, v.value())?;
                if keys.name_hash(&rec.name) != hash {
                    return Err(Error::corrupted(
                        "a secret record is stored under another name",
                    ));
                }
                if rec.first_seq > rec.current.seq {
                    return Err(Error::corrupted(
                        "a secret record's versions are out of order",
                    ));
                }
                let entry = (rec.first_seq, rec.current.seq, rec.current.id);
                if live.insert(hash, entry).is_some() {
                    return Err(Error::corrupted("a secret is both live and deleted"));
                }
                let state = match which {
                    TableId::Secrets => Recorded::Live(rec.current.id),
                    _ => Recorded::Deleted(rec.current.id),
                };
                found.insert(rec.name.to_ascii_lowercase(), state);
                n += 1;
            }
        }
        // Every kept version between a secret's first and current sequence has its row, retired
        // versions lie before the first, and every older version (kept, retired) has exactly one
        // index entry pointing at it: a removed row or a stale record replayed into its own row
        // (both authenticate) breaks one of these; a secret removed whole, the audit replay below.
        let mut kept: HashMap<NameHash, u64> = HashMap::new();
        let mut ids: HashMap<(NameHash, u64), [u8; 16]> = HashMap::new();
        for (def, which) in [(VERSIONS, TableId::Versions), (RETIRED, TableId::Retired)] {
            for row in txn.open_table(def)?.iter()? {
                let (k, v) = row?;
                let (hash, seq) = k.value();
                let ver: VersionRecord =
                    keys.open(vid, which, &seq_key(&hash, seq), tag::VERSION, v.value())?;
                let Some(&(first, current, _)) = live.get(&hash) else {
                    return Err(Error::corrupted("an orphaned or misplaced version record"));
                };
                let in_place = match which {
                    TableId::Versions => first <= seq && seq < current,
                    _ => seq < first,
                };
                if ver.seq != seq || !in_place || ids.insert((hash, seq), ver.id).is_some() {
                    return Err(Error::corrupted("an orphaned or misplaced version record"));
                }
                if which == TableId::Versions {
                    *kept.entry(hash).or_default() += 1;
                }
                n += 1;
            }
        }
        for (hash, &(first, current, _)) in &live {
            if kept.get(hash).copied().unwrap_or(0) != current - first {
                return Err(Error::corrupted("a kept version of a secret is missing"));
            }
        }
        let mut indexed = 0usize;
        for row in txn.open_table(VERSION_IDS)?.iter()? {
            let (k, seq) = row?;
            let (hash, id) = k.value();
            let seq = seq.value();
            if ids.get(&(hash, seq)) == Some(&id) {
                indexed += 1;
            } else if live
                .get(&hash)
                .is_none_or(|&(_, current, current_id)| (current, current_id) != (seq, id))
            {
                // Files written before the index held only older versions also have an entry
                // for each current version; any other entry is out of place.
                return Err(Error::corrupted(
                    "an orphaned or misplaced version index entry",
                ));
            }
            n += 1;
        }
        if indexed != ids.len() {
            return Err(Error::corrupted("a version index entry is missing"));
        }
        n += super::tokens::verify(&txn, keys, vid)?;
        // The chain says which secrets exist: a secret removed with all its rows, put back from
        // an older copy, or added from another vault with the same key contradicts it.
        let mut recorded: HashMap<String, Recorded> = HashMap::new();
        n += verify_chain(&txn, keys, vid, |e| replay(&mut recorded, e))?;
        if recorded != found {
            return Err(Error::corrupted(
                "the secrets do not match the audit log (a secret removed, replaced or added \
                 outside tresor)",
            ));
        }
        // Every row of every table against the state digests of the head: a row replaced by an
        // older copy of itself (properties, an older value, a revoked token, a removed slot)
        // authenticates and agrees with the log, but not with the digest.
        let head = read_head(&txn.open_table(AUDIT)?, &txn.open_table(META)?, keys, vid)?;
        if let Some(expected) = head.digests {
            digest::verify(&txn, &keys.state, &expected, 0..digest::TABLES.len())?;
        }
        Ok(n)
    }
}

/// Rows of one table, taken out for re-encryption.
type Rows<K> = Vec<(K, Vec<u8>)>;

fn take_rows<K>(txn: &WriteTransaction, def: TableDefinition<K, &'static [u8]>) -> Result<Rows<K>>
where
    K: redb::Key + 'static + for<'a> redb::Value<SelfType<'a> = K>,
{
    let mut rows = Vec::new();
    {
        let table = txn.open_table(def)?;
        for row in table.iter()? {
            let (k, v) = row?;
            rows.push((k.value(), v.value().to_vec()));
        }
    }
    txn.delete_table(def)?;
    txn.open_table(def)?;
    Ok(rows)
}

fn rotate(
    inner: &Inner,
    record: AuditEntry,
    credentials: &[Credential],
    progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    let mut store = inner.store_mut();
    let vid = inner.vault_id;
    let txn = store.db.begin_write()?;
    let old = &store.keys;

    // Every slot's key-encryption key, checked against the current master key.
    let mut slots: Vec<(u32, SlotRecord, crypto::Key)> = Vec::new();
    {
        let unlocked = lock(&inner.unlocked);
        for row in txn.open_table(SLOTS)?.iter()? {
            let (id, bytes) = row?;
            let id = id.value();
            let rec: SlotRecord = encoding::decode(tag::SLOT, bytes.value())?;
            let mut kek = unlocked
                .as_ref()
                .filter(|(s, _)| *s == id)
                .map(|(_, k)| k.clone());
            if kek.is_none() {
                for c in credentials {
                    // A provider that cannot open this slot may be another slot's: the slot
                    // is reported missing if no credential opens it.
                    let k = match slot::kek_for(c, &rec.desc) {
                        Err(Error::Provider(_)) => None,
                        other => other?,
                    };
                    if let Some(k) = k
                        && let Unwrapped::Key(mk) = slot::unwrap(&rec, &vid, id, &k)
                        && crypto::mac_eq(mk.as_ref(), old.mk.as_ref())
                    {
                        kek = Some(k);
                        break;
                    }
                }
            }
            let Some(kek) = kek else {
                return Err(Error::MissingCredential {
                    slot: id,
                    label: rec.desc.label.clone(),
                });
            };
            slots.push((id, rec, kek));
        }
    }

    let new = Keys::new(crypto::random_key()?);
    let settings = read_settings(&txn.open_table(META)?, old, &vid)?;

    let secrets = take_rows(&txn, SECRETS)?;
    let deleted = take_rows(&txn, DELETED)?;
    let versions = take_rows(&txn, VERSIONS)?;
    let retired = take_rows(&txn, RETIRED)?;
    let old_head = read_head(&txn.open_table(AUDIT)?, &txn.open_table(META)?, old, &vid)?;
    let mut audit_rows = take_rows(&txn, AUDIT)?;
    audit_rows.retain(|(seq, _)| *seq != AUDIT_HEAD_KEY);
    let ids: Vec<((NameHash, [u8; 16]), u64)> = {
        let mut rows = Vec::new();
        for row in txn.open_table(VERSION_IDS)?.iter()? {
            let (k, v) = row?;
            rows.push((k.value(), v.value()));
        }
        txn.delete_table(VERSION_IDS)?;
        txn.open_table(VERSION_IDS)?;
        rows
    };
    let total = (secrets.len()
        + deleted.len()
        + versions.len()
        + retired.len()
        + audit_rows.len()
        + ids.len()) as u64;
    let mut done = 0u64;
    let mut tick = |progress: &mut dyn FnMut(Progress)| {
        done += 1;
        if done.is_multiple_of(256) || done == total {
            progress(Progress { done, total });
        }
    };

    let mut rehash: HashMap<NameHash, NameHash> = HashMap::new();
    for (def, which, rows) in [
        (SECRETS, TableId::Secrets, secrets),
        (DELETED, TableId::Deleted, deleted),
    ] {
        let mut table = txn.open_table(def)?;
        for (hash, bytes) in rows {
            let rec: SecretRecord = old.open(&vid, which, &hash, tag::SECRET, &bytes)?;
            let h2 = new.name_hash(&rec.name);
            rehash.insert(hash, h2);
            let sealed = new.seal(
                &vid,
                which,
                &h2,
                tag::SECRET,
                &rec,
                rec.current.value.len() + 256,
            )?;
            table.insert(h2, sealed.as_slice())?;
            tick(progress);
        }
    }
    let moved = |h: &NameHash| {
        rehash
            .get(h)
            .copied()
            .ok_or_else(|| Error::corrupted("a version record has no secret"))
    };
    for (def, which, rows) in [
        (VERSIONS, TableId::Versions, versions),
        (RETIRED, TableId::Retired, retired),
    ] {
        let mut table = txn.open_table(def)?;
        for ((hash, seq), bytes) in rows {
            let v: VersionRecord =
                old.open(&vid, which, &seq_key(&hash, seq), tag::VERSION, &bytes)?;
            let h2 = moved(&hash)?;
            let sealed = new.seal(
                &vid,
                which,
                &seq_key(&h2, seq),
                tag::VERSION,
                &v,
                v.value.len() + 256,
            )?;
            table.insert((h2, seq), sealed.as_slice())?;
            tick(progress);
        }
    }
    {
        let mut table = txn.open_table(VERSION_IDS)?;
        for ((hash, id), seq) in ids {
            table.insert((moved(&hash)?, id), seq)?;
            tick(progress);
        }
    }

    // The audit chain: verified under the old key, re-chained under the new one.
    let mut old_mac = audit::genesis(&old.audit, &vid);
    let mut head = AuditHead {
        seq: 0,
        mac: audit::genesis(&new.audit, &vid),
        settings,
        time: old_head.time,
        // Recomputed under the new key when the rotation commits.
        digests: None,
    };
    {
        let mut table = txn.open_table(AUDIT)?;
        for (seq, bytes) in audit_rows {
            let broken = Error::AuditBroken { seq: head.seq + 1 };
            let row = audit::open_row(old, &vid, seq, &bytes).map_err(|_| broken)?;
            if row.first_seq() != head.seq + 1 || !row.chains_from(&old.audit, &old_mac) {
                return Err(Error::AuditBroken { seq: head.seq + 1 });
            }
            old_mac = row.mac;
            // Re-sealed as a block under the new key (a single record of an older file too).
            let mut entries: Vec<_> = row.entries.iter().map(AuditEntry::as_ref).collect();
            let (last, mac, sealed) =
                audit::seal_block(&new, &vid, head.seq, &head.mac, &mut entries)?;
            table.insert(last, sealed.as_slice())?;
            head.seq = last;
            head.mac = mac;
            tick(progress);
        }
    }
    if old_head.seq != head.seq || !crypto::mac_eq(&old_head.mac, &old_mac) {
        return Err(Error::AuditBroken { seq: head.seq + 1 });
    }

    // Slots re-wrapped, settings re-sealed, header MAC recomputed.
    {
        let mut table = txn.open_table(SLOTS)?;
        for (id, rec, kek) in &slots {
            let rec = slot::wrap(rec.desc.clone(), &vid, *id, kek, &new.mk)?;
            table.insert(*id, encoding::encode(tag::SLOT, &rec, 128).as_slice())?;
        }
    }
    {
        let mut meta = txn.open_table(META)?;
        let sealed = new.seal(
            &vid,
            TableId::Meta,
            storage::META_SETTINGS.as_bytes(),
            tag::SETTINGS,
            &settings,
            16,
        )?;
        meta.insert(storage::META_SETTINGS, sealed.as_slice())?;
    }
    {
        let mac = auth_mac(
            &txn.open_table(META)?,
            &txn.open_table(SLOTS)?,
            &new,
            &settings,
        )?;
        txn.open_table(META)?
            .insert(storage::META_AUTH, mac.as_slice())?;
    }
    super::tokens::reseal(&txn, old, &new, &vid)?;
    txn.open_table(META)?.remove(storage::META_MAINTENANCE)?;

    let pending = take_pending(&inner.pending);
    let records = [record];
    let mut entries = entries_of(&pending, &records);
    let mut head_guard = lock(&inner.head);
    let before = Checkpoint::new(head_guard.seq, &head_guard.mac);
    let committed = (|| {
        let txn = Txn::new(txn, &new.state);
        let head = append_audit(&txn, &new, &vid, head, &mut entries)?;
        // Every row changed key: the state digests are recomputed under the new master key.
        let head = finish(&txn, &new, &vid, head, true)?;
        // The rotation re-keys every MAC of the chain: until it has committed, the witness
        // accepts the chain before it as well as after it.
        let mut both = WitnessState::new(vid, Checkpoint::new(head.seq, &head.mac));
        both.also = Some(before);
        inner.store_witness_state(&both)?;
        txn.commit()?;
        Ok(head)
    })();
    match committed {
        Ok(h) => {
            *head_guard = h;
            store.keys = KeyBox::new(new);
            inner.store_witness(&h)
        }
        Err(e) => {
            inner.poisoned.store(true, Ordering::SeqCst);
            Err(e)
        }
    }
}

/// redb's compaction until nothing moves (each pass moves what it can; a few reach the end, at
/// most eight are run); whether anything moved.
fn compact_passes(db: &mut redb::Database) -> Result<bool> {
    let mut moved = false;
    for _ in 0..8 {
        if !db.compact()? {
            break;
        }
        moved = true;
    }
    Ok(moved)
}
