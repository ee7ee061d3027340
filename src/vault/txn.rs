//! The transaction machinery every operation goes through: the open database and keys, the
//! handle's shared state, the role check, audit records appended in the write's own transaction,
//! buffered read records, and the commit that poisons the handle when it fails.

use std::cell::OnceCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::time::Instant;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};

use crate::access::{Operation, Principal, Role};
use crate::audit::{self, AuditLevel, Checkpoint, PendingBatch, PendingRecord};
use crate::clock::{Clock, Timestamp};
use crate::crypto::{self, Key, RandomPool};
use crate::digest::{self, Txn};
use crate::encoding::{
    self, AuditEntry, AuditEntryRef, AuditHead, PrincipalStored, Settings, TableId, tag,
};
use crate::error::{Error, Result};
use crate::memlock::KeyBox;
use crate::storage::{self, AUDIT, AUDIT_HEAD_KEY, Keys, META, SLOTS};
use crate::witness::{Witness, WitnessState};

use super::{Vault, lifecycle};
use crate::actor::SYSTEM_ACTOR;

/// How far past the latest time the audit chain recorded the clock may reach when deciding what
/// is due for purge (one day).
pub(super) const MAX_CLOCK_STEP: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Buffered read records kept in memory at most; the read that fills the buffer commits them.
pub(super) const MAX_PENDING: usize = 4096;

/// The longest buffered read records committed for a full buffer go without an fsync. A full
/// buffer is committed without one (`Durability::None`: in the file for this process, on the
/// disk with the next durable commit) while the last durable commit is more recent than this;
/// otherwise durably. Writes, [`Vault::flush`] and closing are always durable.
pub(super) const DURABLE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) struct Store {
    pub db: GuardedDb,
    pub keys: KeyBox,
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
    pub pending: Mutex<PendingBatch>,
    /// When the last durable commit ended (or the vault was opened).
    pub durable_at: Mutex<Instant>,
    /// Whether a commit without an fsync ([`DURABLE_EVERY`]) waits for a durable one.
    pub undurable: AtomicBool,
    /// The commit of a full buffer of read records running in the background, if one is.
    pub flusher: Arc<Flusher>,
    pub poisoned: AtomicBool,
    /// The earliest time something deleted may be due for purge (a hint: `None` = nothing).
    pub purge_hint: Mutex<Option<Timestamp>>,
    /// The slot that unlocked this handle and its key-encryption key (for rotation).
    pub unlocked: Mutex<Option<(u32, Key)>>,
    /// Where the chain's position is written after every commit, if anywhere.
    pub witness: Option<Arc<dyn Witness>>,
    /// Who hears of committed changes ([`Vault::subscribe`]).
    pub subscribers: super::events::Subscribers,
}

/// The commit of a full buffer of buffered read records, on a thread of its own so that the
/// read that filled the buffer does not wait for it; at most one at a time.
#[derive(Default)]
pub(crate) struct Flusher {
    busy: Mutex<bool>,
    idle: Condvar,
}

impl Flusher {
    /// Waits until no background commit runs.
    pub(super) fn wait(&self) {
        let mut busy = lock(&self.busy);
        while *busy {
            busy = self.idle.wait(busy).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn finish(&self) {
        *lock(&self.busy) = false;
        self.idle.notify_all();
    }

    /// Starts committing the buffered read records of `inner` on a thread of its own, unless a
    /// commit already runs (the buffer waits for the next read then). Where no thread can be
    /// started, commits here.
    fn start(inner: &Arc<Inner>) -> Result<()> {
        let flusher = Arc::clone(&inner.flusher);
        {
            let mut busy = lock(&flusher.busy);
            if *busy {
                return Ok(());
            }
            *busy = true;
        }
        let job = Arc::clone(inner);
        let done = Arc::clone(&flusher);
        let spawned = std::thread::Builder::new()
            .name("tresor-flush".into())
            .spawn(move || {
                {
                    let store = job.store();
                    // A failed commit poisons the handle: the next write or flush reports it,
                    // and the buffer stops growing at twice its size (the reads commit then).
                    let _ = job.flush_full(&store);
                }
                // Before the vault is told the commit is done: the last handle's drop may
                // then close the file at once.
                drop(job);
                done.finish();
            });
        if spawned.is_err() {
            flusher.finish();
            return inner.flush_full(&inner.store());
        }
        Ok(())
    }
}

/// A read transaction with what a read needs.
pub(crate) struct ReadCx<'a> {
    pub txn: ReadTransaction,
    pub keys: &'a Keys,
    pub vault_id: &'a [u8; 16],
    /// The time of the read, taken from the clock the first time it is asked for (most reads
    /// need none unless they are recorded).
    now: &'a OnceCell<Timestamp>,
    clock: &'a dyn Clock,
}

impl ReadCx<'_> {
    /// The time of this read: the same for every call, and the time its audit record carries.
    pub fn now(&self) -> Timestamp {
        *self.now.get_or_init(|| self.clock.now())
    }
}

/// A write transaction with what a write needs, and the audit records it adds.
pub(crate) struct WriteCx<'a> {
    pub txn: &'a Txn<'a>,
    pub keys: &'a Keys,
    pub vault_id: &'a [u8; 16],
    pub now: Timestamp,
    /// What decides whether something is due for purge ([`Inner::purge_clock`]).
    pub purge_now: Timestamp,
    /// Whether this write may destroy data (purge what is due, prune versions for good): only
    /// for handles whose role may purge.
    pub may_destroy: bool,
    /// The credential of the handle writing (named by the records of a batch's items).
    pub principal: Option<PrincipalStored>,
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
    /// Where [`WriteCx::draw`] takes random bytes from while a batch writes its rows (`None`:
    /// one call to the CSPRNG per draw).
    pub pool: Option<RandomPool>,
}

impl WriteCx<'_> {
    /// `N` fresh random bytes (a version id, a nonce): from the batch's pool if one is set.
    pub fn draw<const N: usize>(&mut self) -> Result<[u8; N]> {
        match &mut self.pool {
            Some(pool) => pool.take(),
            None => crypto::random(),
        }
    }

    /// The vault's settings, read inside this transaction.
    pub fn settings(&mut self) -> Result<Settings> {
        if let Some(s) = &self.settings {
            return Ok(*s);
        }
        let meta = self.txn.open_table(META)?;
        let s = read_settings(&*meta, self.keys, self.vault_id)?;
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
        let mac = auth_mac(&*meta, &*slots, self.keys, &settings)?;
        meta.insert(storage::META_AUTH, mac.as_slice())?;
        Ok(())
    }

    /// Adds a record of an operation done on behalf of the caller within this write (for
    /// batches: one record per item).
    pub fn caller_record(&mut self, actor: &str, op: Operation, name: &str, version: [u8; 16]) {
        let principal = self.principal;
        self.push_record(
            actor.to_string(),
            principal,
            op,
            Some(name.to_string()),
            Some(version),
        );
    }

    /// Adds a record of something the vault did by itself.
    pub fn system_record(
        &mut self,
        op: Operation,
        name: Option<String>,
        version: Option<[u8; 16]>,
    ) {
        self.push_record(SYSTEM_ACTOR.to_string(), None, op, name, version);
    }

    pub(super) fn push_record(
        &mut self,
        actor: String,
        principal: Option<PrincipalStored>,
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
            principal,
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

/// Seals `head` into its row of `audit` (after every block; the digest excludes this row).
pub(super) fn write_head(
    txn: &Txn<'_>,
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
        48 + 32 * digest::TABLES.len(),
    )?;
    txn.raw()
        .open_table(AUDIT)?
        .insert(AUDIT_HEAD_KEY, sealed.as_slice())?;
    Ok(())
}

/// Upgrades a file of an older format within the transaction of its first commit: a format-1
/// audit head leaves `meta` (the new head is written to `audit` by the commit), and the header,
/// rewritten with the current format number, gets a new header MAC. Does nothing to a file of
/// the current format.
fn upgrade(txn: &Txn<'_>, keys: &Keys) -> Result<()> {
    let mut meta = txn.open_table(META)?;
    let bytes = meta
        .get(storage::META_HEADER)?
        .ok_or_else(|| Error::corrupted("not a tresor vault (no header)"))?
        .value()
        .to_vec();
    if encoding::header_format(&bytes)? >= encoding::FORMAT_VERSION {
        return Ok(());
    }
    meta.remove(storage::META_AUDIT_HEAD)?;
    let header = encoding::decode_header(&bytes)?;
    meta.insert(
        storage::META_HEADER,
        encoding::encode_header(&header).as_slice(),
    )?;
    let settings = read_settings(&*meta, keys, &header.vault_id)?;
    let mac = auth_mac(&*meta, &*txn.open_table(SLOTS)?, keys, &settings)?;
    meta.insert(storage::META_AUTH, mac.as_slice())?;
    Ok(())
}

/// The time of the last audit record (the head of a format-1 or format-2 file does not carry
/// the chain's latest time); the epoch for an empty log.
fn last_record_time(
    audit: &impl ReadableTable<u64, &'static [u8]>,
    keys: &Keys,
    vault_id: &[u8; 16],
) -> Result<Timestamp> {
    Ok(
        match audit.range(..AUDIT_HEAD_KEY)?.next_back().transpose()? {
            Some((k, v)) => audit::open_row(keys, vault_id, k.value(), v.value())?
                .entries
                .last()
                .map_or(Timestamp::from_unix(0), |e| e.time),
            None => Timestamp::from_unix(0),
        },
    )
}

/// Reads the audit head: its row in `audit`, or in `meta` for a format-1 file not yet upgraded.
pub(super) fn read_head(
    audit: &impl ReadableTable<u64, &'static [u8]>,
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    keys: &Keys,
    vault_id: &[u8; 16],
) -> Result<AuditHead> {
    let (table, key, sealed) = if let Some(sealed) = audit.get(AUDIT_HEAD_KEY)? {
        (
            TableId::Audit,
            AUDIT_HEAD_KEY.to_be_bytes().to_vec(),
            sealed.value().to_vec(),
        )
    } else {
        let sealed = meta
            .get(storage::META_AUDIT_HEAD)?
            .ok_or_else(|| Error::corrupted("audit head is missing"))?;
        (
            TableId::Meta,
            storage::META_AUDIT_HEAD.as_bytes().to_vec(),
            sealed.value().to_vec(),
        )
    };
    let plain = keys.open_bytes(vault_id, table, &key, &sealed)?;
    encoding::decode_head(&plain, || last_record_time(audit, keys, vault_id))
}

/// Appends `entries` to the chain after `head` as blocks, giving them sequence numbers; returns
/// the head that names the last block and the latest time recorded (its digests are brought
/// up to date by [`finish`]). Writes nothing when there is nothing new.
pub(super) fn append_audit(
    txn: &Txn<'_>,
    keys: &Keys,
    vault_id: &[u8; 16],
    head: AuditHead,
    entries: &mut [AuditEntryRef<'_>],
) -> Result<AuditHead> {
    if entries.is_empty() {
        return Ok(head);
    }
    if head.seq.saturating_add(entries.len() as u64) == AUDIT_HEAD_KEY {
        return Err(Error::corrupted("the audit log is full"));
    }
    let mut head = head;
    // The head's time moves only with records of handles that may destroy data: a reader or
    // writer whose clock runs ahead cannot prepare an early purge for a later handle.
    let destroyers = entries.iter().filter(|e| {
        matches!(
            e.principal,
            Some(
                PrincipalStored::Slot { role, .. } | PrincipalStored::Token { role, .. }
            ) if Role::from_code(role).is_some_and(|r| r.allows(Operation::SecretPurge))
        )
    });
    if let Some(latest) = destroyers.map(|e| e.time).max() {
        head.time = head.time.max(latest);
    }
    let mut table = txn.open_table(AUDIT)?;
    for block in entries.chunks_mut(audit::BLOCK_ENTRIES) {
        let (seq, mac, sealed) = audit::seal_block(keys, vault_id, head.seq, &head.mac, block)?;
        table.insert(seq, sealed.as_slice())?;
        head.seq = seq;
        head.mac = mac;
    }
    Ok(head)
}

/// Completes a transaction before its commit: upgrades a file of an older format, brings the
/// state digests up to date (from the changes made through `txn`, or recomputed from every row
/// when `recompute` is set or the file had none) and writes the head.
pub(super) fn finish(
    txn: &Txn<'_>,
    keys: &Keys,
    vault_id: &[u8; 16],
    mut head: AuditHead,
    recompute: bool,
) -> Result<AuditHead> {
    upgrade(txn, keys)?;
    head.digests = Some(match head.digests {
        Some(d) if !recompute => d.apply(&txn.delta()),
        _ => digest::compute_all(txn.raw(), &keys.state)?,
    });
    write_head(txn, keys, vault_id, &head)?;
    Ok(head)
}

/// Appends the `pending` records, then `records`, finishes the transaction and commits it;
/// returns the new head.
pub(super) fn seal_and_commit(
    txn: Txn<'_>,
    keys: &Keys,
    vault_id: &[u8; 16],
    head: AuditHead,
    pending: &PendingBatch,
    records: &[AuditEntry],
    recompute: bool,
) -> Result<AuditHead> {
    let mut entries = entries_of(pending, records);
    let head = append_audit(&txn, keys, vault_id, head, &mut entries)?;
    let head = finish(&txn, keys, vault_id, head, recompute)?;
    txn.commit()?;
    Ok(head)
}

/// The `pending` records, then `records`, as they are encoded.
pub(super) fn entries_of<'a>(
    pending: &'a PendingBatch,
    records: &'a [AuditEntry],
) -> Vec<AuditEntryRef<'a>> {
    pending
        .entries()
        .chain(records.iter().map(AuditEntry::as_ref))
        .collect()
}

/// The records waiting in `pending`, leaving an empty batch with room for a full buffer (so
/// that buffered reads do not grow it step by step).
pub(super) fn take_pending(pending: &Mutex<PendingBatch>) -> PendingBatch {
    let mut guard = lock(pending);
    if guard.is_empty() {
        return PendingBatch::default();
    }
    std::mem::replace(&mut *guard, PendingBatch::with_capacity(MAX_PENDING))
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
    /// Writes where the chain stands to the witness, if the vault keeps one.
    pub(super) fn store_witness(&self, head: &AuditHead) -> Result<()> {
        self.store_witness_state(&WitnessState::new(
            self.vault_id,
            Checkpoint::new(head.seq, &head.mac),
        ))
    }

    pub(super) fn store_witness_state(&self, state: &WitnessState) -> Result<()> {
        match &self.witness {
            Some(w) => w
                .store(state)
                .map_err(|e| Error::WitnessNotUpdated(e.to_string())),
            None => Ok(()),
        }
    }

    /// A write transaction on `store` that keeps the state digest.
    pub(super) fn begin(store: &Store) -> Result<Txn<'_>> {
        Ok(Txn::new(store.db.begin_write()?, &store.keys.state))
    }

    /// The time that decides what is due for purge. Under purge protection: the clock, but
    /// never more than [`MAX_CLOCK_STEP`] past the latest time the audit chain recorded for a
    /// handle that may purge. A clock
    /// set ahead (by mistake, or to destroy protected secrets early) moves purges forward by one
    /// step at most per commit, each step recorded; a clock behind only delays them. Without
    /// purge protection an owner may purge at any time anyway: the clock as it is.
    pub(super) fn purge_clock(&self, now: Timestamp) -> Timestamp {
        let head = lock(&self.head);
        if head.settings.purge_protection {
            now.min(head.time.plus(MAX_CLOCK_STEP))
        } else {
            now
        }
    }

    pub(super) fn store(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn store_mut(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn entry(
        &self,
        actor: &str,
        principal: Option<&Principal>,
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
            principal: principal.map(audit::principal_to),
        }
    }

    /// Appends pending records and `records` to the chain inside `txn`, then commits.
    /// A failed commit poisons the handle.
    pub(super) fn commit(
        &self,
        store: &Store,
        txn: Txn<'_>,
        records: Vec<AuditEntry>,
    ) -> Result<()> {
        self.commit_with(store, txn, records, None)
    }

    /// [`Inner::commit`] of a transaction that changed the settings to `settings`.
    pub(super) fn commit_with(
        &self,
        store: &Store,
        txn: Txn<'_>,
        records: Vec<AuditEntry>,
        settings: Option<Settings>,
    ) -> Result<()> {
        self.commit_records(store, txn, records, settings, true)
    }

    /// Appends the pending records and `records`, then commits: with an fsync when `durable`,
    /// else without one (only for read records, [`DURABLE_EVERY`]).
    fn commit_records(
        &self,
        store: &Store,
        mut txn: Txn<'_>,
        records: Vec<AuditEntry>,
        settings: Option<Settings>,
        durable: bool,
    ) -> Result<()> {
        let mut head = lock(&self.head);
        if !durable {
            txn.non_durable()?;
        }
        let pending = take_pending(&self.pending);
        let mut base = *head;
        if let Some(s) = settings {
            base.settings = s;
        }
        let result = seal_and_commit(
            txn,
            &store.keys,
            &self.vault_id,
            base,
            &pending,
            &records,
            false,
        );
        match result {
            Ok(new_head) => {
                *head = new_head;
                // Still under the head's lock, so that subscribers hear of commits in order.
                self.subscribers.publish(&records, new_head.seq);
                if !durable {
                    // The witness follows durable commits only: it must never be ahead of
                    // what a crash leaves on the disk.
                    self.undurable.store(true, Ordering::SeqCst);
                    return Ok(());
                }
                *lock(&self.durable_at) = Instant::now();
                self.undurable.store(false, Ordering::SeqCst);
                // After the commit, so that a crash leaves the witness behind the file, never
                // ahead of it (still under the head's lock: witnesses are written in order).
                self.store_witness(&new_head)
            }
            Err(e) => {
                self.poisoned.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Commits `txn`, which changed bookkeeping rows only, with no audit record and without the
    /// buffered read records (they stay buffered). A failed commit poisons the handle.
    pub(super) fn commit_bookkeeping(&self, store: &Store, txn: Txn<'_>) -> Result<()> {
        let mut head = lock(&self.head);
        match seal_and_commit(
            txn,
            &store.keys,
            &self.vault_id,
            *head,
            &PendingBatch::default(),
            &[],
            false,
        ) {
            Ok(new_head) => {
                // The chain did not move: the witness needs no update.
                *head = new_head;
                Ok(())
            }
            Err(e) => {
                self.poisoned.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Commits the pending read records, if any, durably (with those a background commit is
    /// committing or an earlier commit left without an fsync).
    pub(super) fn flush_with(&self, store: &Store) -> Result<()> {
        // A background commit that has taken the records holds the write lock until it has
        // committed them: the commit below waits for it, then makes them durable. (Waiting for
        // it here instead could deadlock: it may be waiting for `store`, behind a writer that
        // waits for the caller's hold on it.)
        let background = *lock(&self.flusher.busy);
        if !background && lock(&self.pending).is_empty() && !self.undurable.load(Ordering::SeqCst) {
            return Ok(());
        }
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned);
        }
        self.guard_write(|| self.commit(store, Inner::begin(store)?, Vec::new()))
    }

    /// Commits a full buffer of read records: without an fsync while the last durable commit
    /// is more recent than [`DURABLE_EVERY`], else durably.
    fn flush_full(&self, store: &Store) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned);
        }
        let durable = lock(&self.durable_at).elapsed() >= DURABLE_EVERY;
        self.guard_write(|| {
            self.commit_records(store, Inner::begin(store)?, Vec::new(), None, durable)
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

    /// A record of `op` by `actor` waiting for the next commit.
    #[expect(clippy::too_many_arguments, reason = "the fields of a record")]
    pub(super) fn pending_record<'a>(
        &self,
        time: Timestamp,
        actor: &'a Arc<str>,
        principal: Option<&Principal>,
        op: Operation,
        name: Option<&'a str>,
        version: Option<[u8; 16]>,
        err: Option<&Error>,
    ) -> PendingRecord<'a> {
        PendingRecord {
            time,
            actor,
            operation: op.code(),
            name,
            version,
            outcome: err.map(Error::code),
            principal: principal.map(audit::principal_to),
        }
    }

    /// Records a read or a refusal according to the audit level.
    pub(super) fn note(&self, entry: PendingRecord<'_>, always: bool) -> Result<()> {
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
                    self.flush_full(&self.store())?;
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
        self.subscribers.close();
        if self.poisoned.load(Ordering::SeqCst) {
            return;
        }
        let pending = std::mem::take(self.pending.get_mut().unwrap_or_else(|e| e.into_inner()));
        if pending.is_empty() && !*self.undurable.get_mut() {
            return;
        }
        let store = self.store.get_mut().unwrap_or_else(|e| e.into_inner());
        let head = *self.head.get_mut().unwrap_or_else(|e| e.into_inner());
        // Best effort: a failure here cannot be reported; the records were buffered by choice.
        // A panic of the storage engine on a damaged file must not escape a drop either.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if let Ok(txn) = store.db.begin_write() {
                let txn = Txn::new(txn, &store.keys.state);
                if let Ok(head) =
                    seal_and_commit(txn, &store.keys, &self.vault_id, head, &pending, &[], false)
                    && let Some(w) = &self.witness
                {
                    let cp = Checkpoint::new(head.seq, &head.mac);
                    let _ = w.store(&WitnessState::new(self.vault_id, cp));
                }
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
        self.inner
            .note(self.pending(op, name, None, Some(&err)), true)?;
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
        let now = OnceCell::new();
        let result = guard_panics(|| {
            let store = self.inner.store();
            let cx = ReadCx {
                txn: store.db.begin_read()?,
                keys: &store.keys,
                vault_id: &self.inner.vault_id,
                now: &now,
                clock: &*self.inner.clock,
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
            // The read's record carries the time the read used (if it used one).
            let now = *now.get_or_init(|| self.inner.clock.now());
            let record = self.inner.pending_record(
                now,
                &self.actor,
                self.principal.as_ref(),
                op,
                name,
                version,
                err,
            );
            self.note_read(record, always)?;
        }
        result.map(|(v, _)| v)
    }

    /// Whether a commit without an fsync waits for a durable one ([`DURABLE_EVERY`]).
    pub(crate) fn has_undurable_commit(&self) -> bool {
        self.inner.undurable.load(Ordering::SeqCst)
    }

    /// [`Inner::note`] for a read. A buffered read that fills the buffer has it committed in
    /// the background ([`Flusher`]); should the buffer reach twice its size (the background
    /// commit fell behind, or failed), the reading thread commits it.
    fn note_read(&self, record: PendingRecord<'_>, always: bool) -> Result<()> {
        if self.inner.read_audit != AuditLevel::Buffered {
            return self.inner.note(record, always);
        }
        let len = {
            let mut pending = lock(&self.inner.pending);
            pending.push(record);
            pending.len()
        };
        if len < MAX_PENDING {
            Ok(())
        } else if len < 2 * MAX_PENDING {
            Flusher::start(&self.inner)
        } else {
            self.inner.flush_full(&self.inner.store())
        }
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
        let txn = Inner::begin(&store)?;
        let purge_now = self.inner.purge_clock(now);
        let mut cx = WriteCx::new(&txn, &store.keys, &self.inner.vault_id, now, purge_now);
        cx.may_destroy = self.may_destroy();
        cx.principal = self.principal.as_ref().map(audit::principal_to);
        let result = (|| {
            // Only a handle allowed to purge destroys what is due; others leave it for one.
            if self.may_destroy() && self.inner.due_now(purge_now) {
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
                    principal: self.principal.as_ref().map(audit::principal_to),
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
                self.inner
                    .note(self.pending(op, name, None, Some(&e)), true)?;
                Err(e)
            }
        }
    }

    /// Purges what is due, as the vault itself (on open; writes do it in their own transaction).
    pub(super) fn purge_if_due(&self) -> Result<()> {
        let now = self.inner.clock.now();
        let purge_now = self.inner.purge_clock(now);
        if !self.may_destroy()
            || !self.inner.due_now(purge_now)
            || self.inner.poisoned.load(Ordering::SeqCst)
        {
            return Ok(());
        }
        let store = self.inner.store();
        let txn = Inner::begin(&store)?;
        let mut cx = WriteCx::new(&txn, &store.keys, &self.inner.vault_id, now, purge_now);
        cx.may_destroy = true;
        lifecycle::purge_due(&mut cx)?;
        let records = std::mem::take(&mut cx.records);
        let rescanned = cx.rescanned;
        drop(cx);
        self.inner.commit(&store, txn, records)?;
        self.inner.update_hint(rescanned, None);
        Ok(())
    }

    /// An audit record of `op` by this handle (its actor and credential).
    pub(super) fn entry(
        &self,
        op: Operation,
        name: Option<&str>,
        version: Option<[u8; 16]>,
        err: Option<&Error>,
    ) -> AuditEntry {
        self.inner
            .entry(&self.actor, self.principal.as_ref(), op, name, version, err)
    }

    /// A record of `op` by this handle, now, waiting for the next commit (a refusal, an open).
    pub(super) fn pending<'a>(
        &'a self,
        op: Operation,
        name: Option<&'a str>,
        version: Option<[u8; 16]>,
        err: Option<&Error>,
    ) -> PendingRecord<'a> {
        self.inner.pending_record(
            self.inner.clock.now(),
            &self.actor,
            self.principal.as_ref(),
            op,
            name,
            version,
            err,
        )
    }

    /// Whether this handle may destroy data: purge, and purge or prune what is due by itself.
    pub(super) fn may_destroy(&self) -> bool {
        self.role.allows(Operation::SecretPurge)
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
        txn: &'a Txn<'a>,
        keys: &'a Keys,
        vault_id: &'a [u8; 16],
        now: Timestamp,
        purge_now: Timestamp,
    ) -> Self {
        WriteCx {
            txn,
            keys,
            vault_id,
            now,
            purge_now,
            may_destroy: false,
            principal: None,
            records: Vec::new(),
            version: None,
            name: None,
            new_due: None,
            rescanned: None,
            settings: None,
            new_settings: None,
            pool: None,
        }
    }
}
