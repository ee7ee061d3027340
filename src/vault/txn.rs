//! The transaction machinery every operation goes through: the open database and keys, the
//! handle's shared state, the role check, audit records appended in the write's own transaction,
//! buffered read records, and the commit that poisons the handle when it fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

use crate::access::Operation;
use crate::audit::{self, AuditLevel};
use crate::clock::{Clock, Timestamp};
use crate::crypto::Key;
use crate::encoding::{self, AuditEntry, AuditHead, Settings, TableId, tag};
use crate::error::{Error, Result};
use crate::storage::{self, AUDIT, AUDIT_HEAD_KEY, Keys, META, SLOTS};

use super::{SYSTEM_ACTOR, Vault, lifecycle};

/// Buffered read records kept in memory at most; the next read commits them.
pub(super) const MAX_PENDING: usize = 4096;

pub(crate) struct Store {
    pub db: GuardedDb,
    pub keys: Keys,
}

/// The redb database, closed under a panic guard: after redb panicked on a damaged file (a
/// panic the vault turned into an error), its close can panic again on a poisoned lock, and a
/// panic must not escape a `drop` of the vault.
pub(crate) struct GuardedDb(pub(super) Option<Database>);

impl std::ops::Deref for GuardedDb {
    type Target = Database;
    // The one place the library may panic on an `Option`: the database is `Some` from
    // construction until `drop` takes it, and nothing can deref a value being dropped.
    #[expect(clippy::expect_used, reason = "Some from construction until drop")]
    fn deref(&self) -> &Database {
        self.0
            .as_ref()
            .expect("the database is open until the vault is dropped")
    }
}

impl std::ops::DerefMut for GuardedDb {
    #[expect(clippy::expect_used, reason = "Some from construction until drop")]
    fn deref_mut(&mut self) -> &mut Database {
        self.0
            .as_mut()
            .expect("the database is open until the vault is dropped")
    }
}

impl Drop for GuardedDb {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db)));
        }
    }
}

pub(crate) struct Inner {
    pub store: RwLock<Store>,
    pub vault_id: [u8; 16],
    pub clock: Arc<dyn Clock>,
    pub read_audit: AuditLevel,
    pub max_value_len: usize,
    pub strict: bool,
    pub head: Mutex<AuditHead>,
    pub pending: Mutex<Vec<AuditEntry>>,
    pub poisoned: AtomicBool,
    /// The earliest time something deleted may be due for purge (a hint: `None` = nothing).
    pub purge_hint: Mutex<Option<Timestamp>>,
    /// The slot that unlocked this handle and its key-encryption key (for rotation).
    pub unlocked: Mutex<Option<(u32, Key)>>,
}

/// A read transaction with what a read needs.
pub(crate) struct ReadCx<'a> {
    pub txn: ReadTransaction,
    pub keys: &'a Keys,
    pub vault_id: &'a [u8; 16],
    pub now: Timestamp,
}

/// A write transaction with what a write needs, and the audit records it adds.
pub(crate) struct WriteCx<'a> {
    pub txn: &'a WriteTransaction,
    pub keys: &'a Keys,
    pub vault_id: &'a [u8; 16],
    pub now: Timestamp,
    /// Records made by the vault itself during this write (purges, pruning), in order.
    pub records: Vec<AuditEntry>,
    /// The version the operation's own record names.
    pub version: Option<[u8; 16]>,
    /// The secret name the operation's own record names, when the call did not name one.
    pub name: Option<String>,
    /// A purge date created by this write (a deletion or a retired version).
    pub new_due: Option<Timestamp>,
    /// Set by a purge pass: the earliest purge date left after it.
    pub rescanned: Option<Option<Timestamp>>,
    settings: Option<Settings>,
    /// Settings written by this transaction (the audit head takes a copy at commit).
    new_settings: Option<Settings>,
}

impl WriteCx<'_> {
    /// The vault's settings, read inside this transaction.
    pub fn settings(&mut self) -> Result<Settings> {
        if let Some(s) = &self.settings {
            return Ok(*s);
        }
        let meta = self.txn.open_table(META)?;
        let s = read_settings(&meta, self.keys, self.vault_id)?;
        self.settings = Some(s);
        Ok(s)
    }

    /// Writes new settings (and the header MAC that covers them).
    pub fn write_settings(&mut self, s: &Settings) -> Result<()> {
        {
            let mut meta = self.txn.open_table(META)?;
            let sealed = self.keys.seal(
                self.vault_id,
                TableId::Meta,
                storage::META_SETTINGS.as_bytes(),
                tag::SETTINGS,
                s,
                16,
            )?;
            meta.insert(storage::META_SETTINGS, sealed.as_slice())?;
        }
        self.settings = Some(*s);
        self.new_settings = Some(*s);
        self.write_auth()
    }

    /// Recomputes the MAC over header, slots and settings.
    pub fn write_auth(&mut self) -> Result<()> {
        let settings = self.settings()?;
        let mut meta = self.txn.open_table(META)?;
        let slots = self.txn.open_table(SLOTS)?;
        let mac = auth_mac(&meta, &slots, self.keys, &settings)?;
        meta.insert(storage::META_AUTH, mac.as_slice())?;
        Ok(())
    }

    /// Adds a record of an operation done on behalf of the caller within this write (for
    /// batches: one record per item).
    pub fn caller_record(&mut self, actor: &str, op: Operation, name: &str, version: [u8; 16]) {
        self.push_record(actor.to_string(), op, Some(name.to_string()), Some(version));
    }

    /// Adds a record of something the vault did by itself.
    pub fn system_record(
        &mut self,
        op: Operation,
        name: Option<String>,
        version: Option<[u8; 16]>,
    ) {
        self.push_record(SYSTEM_ACTOR.to_string(), op, name, version);
    }

    pub(super) fn push_record(
        &mut self,
        actor: String,
        op: Operation,
        name: Option<String>,
        version: Option<[u8; 16]>,
    ) {
        self.records.push(AuditEntry {
            seq: 0,
            time: self.now,
            actor,
            operation: op.code(),
            name,
            version,
            outcome: None,
        });
    }

    /// Notes a new purge date.
    pub fn due(&mut self, t: Timestamp) {
        self.new_due = Some(self.new_due.map_or(t, |d| d.min(t)));
    }
}

pub(crate) fn read_settings(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    keys: &Keys,
    vault_id: &[u8; 16],
) -> Result<Settings> {
    let sealed = meta
        .get(storage::META_SETTINGS)?
        .ok_or_else(|| Error::corrupted("settings are missing"))?;
    keys.open(
        vault_id,
        TableId::Meta,
        storage::META_SETTINGS.as_bytes(),
        tag::SETTINGS,
        sealed.value(),
    )
}

/// `BLAKE3-keyed(meta key, "tresor auth" || header || for each slot: id || len || record || settings)`.
pub(super) fn auth_mac(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    slots: &impl ReadableTable<u32, &'static [u8]>,
    keys: &Keys,
    settings: &Settings,
) -> Result<[u8; 32]> {
    let mut h = blake3::Hasher::new_keyed(&keys.meta);
    h.update(b"tresor auth");
    let header = meta
        .get(storage::META_HEADER)?
        .ok_or_else(|| Error::corrupted("header is missing"))?;
    h.update(&(header.value().len() as u64).to_le_bytes());
    h.update(header.value());
    for row in slots.iter()? {
        let (id, rec) = row?;
        h.update(&id.value().to_le_bytes());
        h.update(&(rec.value().len() as u64).to_le_bytes());
        h.update(rec.value());
    }
    h.update(&encoding::encode(tag::SETTINGS, settings, 16));
    Ok(*h.finalize().as_bytes())
}

pub(super) fn write_head(
    txn: &WriteTransaction,
    keys: &Keys,
    vault_id: &[u8; 16],
    head: &AuditHead,
) -> Result<()> {
    let sealed = keys.seal(
        vault_id,
        TableId::Audit,
        &AUDIT_HEAD_KEY.to_be_bytes(),
        tag::AUDIT_HEAD,
        head,
        48,
    )?;
    txn.open_table(AUDIT)?
        .insert(AUDIT_HEAD_KEY, sealed.as_slice())?;
    upgrade_format1(txn, keys)
}

/// Upgrades a format-1 file within the transaction of its first commit: the audit head (just
/// written to `audit`) leaves `meta`, and the header, rewritten with the current format number,
/// gets a new header MAC. Does nothing to a format-2 file.
pub(super) fn upgrade_format1(txn: &WriteTransaction, keys: &Keys) -> Result<()> {
    let mut meta = txn.open_table(META)?;
    if meta.get(storage::META_AUDIT_HEAD)?.is_none() {
        return Ok(());
    }
    meta.remove(storage::META_AUDIT_HEAD)?;
    let header = encoding::decode_header(
        meta.get(storage::META_HEADER)?
            .ok_or_else(|| Error::corrupted("not a tresor vault (no header)"))?
            .value(),
    )?;
    meta.insert(
        storage::META_HEADER,
        encoding::encode_header(&header).as_slice(),
    )?;
    let settings = read_settings(&meta, keys, &header.vault_id)?;
    let mac = auth_mac(&meta, &txn.open_table(SLOTS)?, keys, &settings)?;
    meta.insert(storage::META_AUTH, mac.as_slice())?;
    Ok(())
}

/// Reads the audit head: its row in `audit`, or in `meta` for a format-1 file not yet upgraded.
pub(super) fn read_head(
    audit: &impl ReadableTable<u64, &'static [u8]>,
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    keys: &Keys,
    vault_id: &[u8; 16],
) -> Result<AuditHead> {
    if let Some(sealed) = audit.get(AUDIT_HEAD_KEY)? {
        return keys.open(
            vault_id,
            TableId::Audit,
            &AUDIT_HEAD_KEY.to_be_bytes(),
            tag::AUDIT_HEAD,
            sealed.value(),
        );
    }
    let sealed = meta
        .get(storage::META_AUDIT_HEAD)?
        .ok_or_else(|| Error::corrupted("audit head is missing"))?;
    keys.open(
        vault_id,
        TableId::Meta,
        storage::META_AUDIT_HEAD.as_bytes(),
        tag::AUDIT_HEAD,
        sealed.value(),
    )
}

/// Appends `entries` to the chain after `head` as blocks, giving them sequence numbers;
/// writes and returns the new head (which keeps `head.settings`). Writes nothing when there is
/// nothing new.
pub(super) fn append_audit(
    txn: &WriteTransaction,
    keys: &Keys,
    vault_id: &[u8; 16],
    head: AuditHead,
    mut entries: Vec<AuditEntry>,
) -> Result<AuditHead> {
    if entries.is_empty() {
        return Ok(head);
    }
    if head.seq.saturating_add(entries.len() as u64) == AUDIT_HEAD_KEY {
        return Err(Error::corrupted("the audit log is full"));
    }
    let mut head = head;
    {
        let mut table = txn.open_table(AUDIT)?;
        for block in entries.chunks_mut(audit::BLOCK_ENTRIES) {
            let (seq, mac, sealed) = audit::seal_block(keys, vault_id, head.seq, &head.mac, block)?;
            table.insert(seq, sealed.as_slice())?;
            head = AuditHead {
                seq,
                mac,
                settings: head.settings,
            };
        }
    }
    write_head(txn, keys, vault_id, &head)?;
    Ok(head)
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f`, turning a panic inside the storage engine (which redb documents for some damaged
/// files opened without an integrity check, on open and on later reads) into
/// [`Error::Corrupted`].
pub(crate) fn guard_panics<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::corrupted(
            "the storage engine failed on a damaged file",
        ))
    })
}

impl Inner {
    pub(super) fn store(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn store_mut(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn entry(
        &self,
        actor: &str,
        op: Operation,
        name: Option<&str>,
        version: Option<[u8; 16]>,
        err: Option<&Error>,
    ) -> AuditEntry {
        AuditEntry {
            seq: 0,
            time: self.clock.now(),
            actor: actor.to_string(),
            operation: op.code(),
            name: name.map(str::to_string),
            version,
            outcome: err.map(|e| e.code().to_string()),
        }
    }

    /// Appends pending records and `records` to the chain inside `txn`, then commits.
    /// A failed commit poisons the handle.
    pub(super) fn commit(
        &self,
        store: &Store,
        txn: WriteTransaction,
        records: Vec<AuditEntry>,
    ) -> Result<()> {
        self.commit_with(store, txn, records, None)
    }

    /// [`Inner::commit`] of a transaction that changed the settings to `settings`.
    pub(super) fn commit_with(
        &self,
        store: &Store,
        txn: WriteTransaction,
        records: Vec<AuditEntry>,
        settings: Option<Settings>,
    ) -> Result<()> {
        let mut head = lock(&self.head);
        let mut entries = std::mem::take(&mut *lock(&self.pending));
        entries.extend(records);
        let mut base = *head;
        if let Some(s) = settings {
            base.settings = s;
        }
        let result = append_audit(&txn, &store.keys, &self.vault_id, base, entries)
            .and_then(|new_head| txn.commit().map(|()| new_head).map_err(Error::from));
        match result {
            Ok(new_head) => {
                *head = new_head;
                Ok(())
            }
            Err(e) => {
                self.poisoned.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Commits the pending read records, if any.
    pub(super) fn flush_with(&self, store: &Store) -> Result<()> {
        if lock(&self.pending).is_empty() {
            return Ok(());
        }
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned);
        }
        self.guard_write(|| {
            let txn = store.db.begin_write()?;
            self.commit(store, txn, Vec::new())
        })
    }

    /// [`guard_panics`] for a write: a panic inside the storage engine (a damaged file opened
    /// without the integrity check) may cut a transaction anywhere, so it also poisons the handle.
    pub(crate) fn guard_write<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
            self.poisoned.store(true, Ordering::SeqCst);
            Err(Error::corrupted(
                "the storage engine failed on a damaged file",
            ))
        })
    }

    /// Records a read or a refusal according to the audit level.
    pub(super) fn note(&self, entry: AuditEntry, always: bool) -> Result<()> {
        match (self.read_audit, always) {
            (AuditLevel::Off, false) => Ok(()),
            (AuditLevel::Durable, _) => {
                lock(&self.pending).push(entry);
                self.flush_with(&self.store())
            }
            _ => {
                let len = {
                    let mut pending = lock(&self.pending);
                    pending.push(entry);
                    pending.len()
                };
                // Bounded memory for read-mostly processes: a full buffer is committed.
                if len >= MAX_PENDING {
                    self.flush_with(&self.store())?;
                }
                Ok(())
            }
        }
    }

    pub(super) fn due_now(&self, now: Timestamp) -> bool {
        lock(&self.purge_hint).is_some_and(|t| t <= now)
    }

    /// Updates the purge hint after a commit: `rescanned` is the earliest date left after a
    /// purge pass (if one ran), `new_due` a date the write created.
    pub(super) fn update_hint(
        &self,
        rescanned: Option<Option<Timestamp>>,
        new_due: Option<Timestamp>,
    ) {
        let mut hint = lock(&self.purge_hint);
        let base = rescanned.unwrap_or(*hint);
        *hint = match (base, new_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.poisoned.load(Ordering::SeqCst) {
            return;
        }
        let pending = std::mem::take(self.pending.get_mut().unwrap_or_else(|e| e.into_inner()));
        if pending.is_empty() {
            return;
        }
        let store = self.store.get_mut().unwrap_or_else(|e| e.into_inner());
        let head = *self.head.get_mut().unwrap_or_else(|e| e.into_inner());
        // Best effort: a failure here cannot be reported; the records were buffered by choice.
        // A panic of the storage engine on a damaged file must not escape a drop either.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if let Ok(txn) = store.db.begin_write()
                && append_audit(&txn, &store.keys, &self.vault_id, head, pending).is_ok()
            {
                let _ = txn.commit();
            }
        }));
    }
}

impl Vault {
    /// Refuses `op` unless this handle's role allows it; a refusal is always audited.
    pub(super) fn authorize(&self, op: Operation, name: Option<&str>) -> Result<()> {
        if self.role.allows(op) {
            return Ok(());
        }
        let err = Error::Forbidden {
            role: self.role,
            operation: op,
        };
        self.inner.note(
            self.inner.entry(&self.actor, op, name, None, Some(&err)),
            true,
        )?;
        Err(err)
    }

    /// Runs a read: role check, one read transaction, an audit record at the read level.
    /// `f` returns its result and the version its record names.
    pub(crate) fn read<T>(
        &self,
        op: Operation,
        name: Option<&str>,
        f: impl FnOnce(&ReadCx<'_>) -> Result<(T, Option<[u8; 16]>)>,
    ) -> Result<T> {
        self.authorize(op, name)?;
        let result = guard_panics(|| {
            let store = self.inner.store();
            let cx = ReadCx {
                txn: store.db.begin_read()?,
                keys: &store.keys,
                vault_id: &self.inner.vault_id,
                now: self.inner.clock.now(),
            };
            f(&cx)
        });
        // A backup exports every version of a secret: recorded whatever the read level.
        let always = op == Operation::SecretBackup;
        if always || self.inner.read_audit != AuditLevel::Off {
            let (version, err) = match &result {
                Ok((_, v)) => (*v, None),
                Err(e) => (None, Some(e)),
            };
            self.inner.note(
                self.inner.entry(&self.actor, op, name, version, err),
                always,
            )?;
        }
        result.map(|(v, _)| v)
    }

    /// Runs a write: role check, one write transaction with any due purges, the operation's
    /// audit record appended in the same transaction, one durable commit. On error nothing is
    /// written and the refusal is recorded.
    pub(crate) fn write<T>(
        &self,
        op: Operation,
        name: Option<&str>,
        f: impl FnOnce(&mut WriteCx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.inner.guard_write(|| self.write_unguarded(op, name, f))
    }

    pub(super) fn write_unguarded<T>(
        &self,
        op: Operation,
        name: Option<&str>,
        f: impl FnOnce(&mut WriteCx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.authorize(op, name)?;
        if self.inner.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned);
        }
        let store = self.inner.store();
        let now = self.inner.clock.now();
        let txn = store.db.begin_write()?;
        let mut cx = WriteCx::new(&txn, &store.keys, &self.inner.vault_id, now);
        let result = (|| {
            if self.inner.due_now(now) {
                lifecycle::purge_due(&mut cx)?;
            }
            f(&mut cx)
        })();
        match result {
            Ok(v) => {
                let WriteCx {
                    mut records,
                    version,
                    name: found_name,
                    new_due,
                    rescanned,
                    new_settings,
                    ..
                } = cx;
                records.push(AuditEntry {
                    seq: 0,
                    time: now,
                    actor: self.actor.to_string(),
                    operation: op.code(),
                    name: name.map(str::to_string).or(found_name),
                    version,
                    outcome: None,
                });
                // The hint is updated while this transaction still excludes other writers: after
                // the commit, a concurrent write (a delete) could commit and lower the hint
                // first, and this write's older rescan would then overwrite it.
                self.inner.update_hint(rescanned, new_due);
                self.inner.commit_with(&store, txn, records, new_settings)?;
                Ok(v)
            }
            Err(e) => {
                drop(cx);
                drop(txn);
                drop(store);
                self.inner.note(
                    self.inner.entry(&self.actor, op, name, None, Some(&e)),
                    true,
                )?;
                Err(e)
            }
        }
    }

    /// Purges what is due, as the vault itself (on open; writes do it in their own transaction).
    pub(super) fn purge_if_due(&self) -> Result<()> {
        let now = self.inner.clock.now();
        if !self.inner.due_now(now) || self.inner.poisoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        let store = self.inner.store();
        let txn = store.db.begin_write()?;
        let mut cx = WriteCx::new(&txn, &store.keys, &self.inner.vault_id, now);
        lifecycle::purge_due(&mut cx)?;
        let records = std::mem::take(&mut cx.records);
        let rescanned = cx.rescanned;
        drop(cx);
        self.inner.commit(&store, txn, records)?;
        self.inner.update_hint(rescanned, None);
        Ok(())
    }

    /// Scans deleted secrets and retired versions for the earliest purge date.
    pub(super) fn compute_purge_hint(&self) -> Result<()> {
        let store = self.inner.store();
        let txn = store.db.begin_read()?;
        let hint = lifecycle::earliest_due(&txn, &store.keys, &self.inner.vault_id)?;
        *lock(&self.inner.purge_hint) = hint;
        Ok(())
    }
}

impl<'a> WriteCx<'a> {
    pub(super) fn new(
        txn: &'a WriteTransaction,
        keys: &'a Keys,
        vault_id: &'a [u8; 16],
        now: Timestamp,
    ) -> Self {
        WriteCx {
            txn,
            keys,
            vault_id,
            now,
            records: Vec::new(),
            version: None,
            name: None,
            new_due: None,
            rescanned: None,
            settings: None,
            new_settings: None,
        }
    }
}
