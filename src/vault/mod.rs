//! The [`Vault`]: opening and creating vault files, and the transaction machinery every
//! operation goes through (role check, audit record, commit).
//!
//! Every write runs in one redb write transaction committed with `Durability::Immediate`; its
//! audit record (and any buffered read records) are appended in the same transaction, so a
//! mutation and its record commit together or not at all. A failed commit poisons the handle:
//! later writes fail with [`Error::Poisoned`] until the vault is reopened.

mod admin;
mod batch;
pub use admin::Progress;
mod lifecycle;
mod secrets;
mod tokens;
pub use tokens::{MAX_TOKEN_LABEL_LEN, NewToken, TOKEN_PREFIX, TokenInfo};

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use redb::{
    Builder, Database, ReadTransaction, ReadableDatabase, ReadableTable, StorageBackend,
    WriteTransaction,
};

use crate::audit::{self, AuditLevel, Checkpoint, Operation};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::crypto::{self, Key};
use crate::encoding::{self, AuditEntry, AuditHead, Header, Settings, SlotRecord, TableId, tag};
use crate::error::{Error, Result};
use crate::secret::{DEFAULT_VALUE_LIMIT, MAX_VALUE_LIMIT};
use crate::slot::{self, Credential, KdfParams, Role, SlotSpec, Unwrapped};
use crate::storage::{
    self, AUDIT, AUDIT_HEAD_KEY, DELETED, Keys, META, RETIRED, SECRETS, SLOTS, VERSION_IDS,
    VERSIONS,
};

/// Buffered read records kept in memory at most; the next read commits them.
const MAX_PENDING: usize = 4096;

/// The actor named in records of what the vault does by itself (automatic purges, pruning).
pub const SYSTEM_ACTOR: &str = "system";

/// How to open (or create) a vault.
///
/// ```
/// use tresor::{AuditLevel, ManualClock, Options, Timestamp};
///
/// let clock = ManualClock::new(Timestamp::from_unix(1_700_000_000));
/// let options = Options::new()
///     .clock(clock.clone())
///     .read_audit(AuditLevel::Durable)
///     .actor("billing-service")
///     .retention_days(30);
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) read_audit: AuditLevel,
    pub(crate) max_value_len: usize,
    pub(crate) actor: Option<String>,
    pub(crate) verify_integrity: bool,
    pub(crate) strict_validity: bool,
    pub(crate) expect_checkpoint: Option<Checkpoint>,
    pub(crate) retention_days: u16,
    pub(crate) purge_protection: bool,
    pub(crate) max_versions: Option<u32>,
    pub(crate) label: String,
    pub(crate) role: Role,
    pub(crate) kdf: KdfParams,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
            read_audit: AuditLevel::Buffered,
            max_value_len: DEFAULT_VALUE_LIMIT,
            actor: None,
            verify_integrity: false,
            strict_validity: false,
            expect_checkpoint: None,
            retention_days: 90,
            purge_protection: false,
            max_versions: None,
            label: "owner".to_string(),
            role: Role::Owner,
            kdf: KdfParams::DEFAULT,
        }
    }
}

impl Options {
    /// The defaults: system clock, buffered read audit, 25 KiB values, 90-day retention.
    pub fn new() -> Self {
        Self::default()
    }

    /// The clock every time rule reads (default: the system clock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How reads are audited (default [`AuditLevel::Buffered`]).
    pub fn read_audit(mut self, level: AuditLevel) -> Self {
        self.read_audit = level;
        self
    }

    /// The largest value accepted, in bytes (default 25 KiB, at most 4 MiB).
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes;
        self
    }

    /// The actor named in audit records (default: the label of the slot that unlocked the vault).
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Check the whole file at open: redb's page checksums, every record's authentication, and
    /// the audit chain. For files that may be hostile; it reads the whole file.
    pub fn verify_integrity(mut self, on: bool) -> Self {
        self.verify_integrity = on;
        self
    }

    /// Refuse values outside their `not_before`..`expires_on` window with
    /// [`Error::OutsideValidity`] (Azure's default, and tresor's, is to report the window and
    /// return the value).
    pub fn strict_validity(mut self, on: bool) -> Self {
        self.strict_validity = on;
        self
    }

    /// Fail the open with [`Error::RolledBack`] unless the file contains this checkpoint's chain.
    pub fn expect_checkpoint(mut self, cp: Checkpoint) -> Self {
        self.expect_checkpoint = Some(cp);
        self
    }

    /// At creation: days a deleted secret is kept before it is purged (7–90, default 90).
    pub fn retention_days(mut self, days: u16) -> Self {
        self.retention_days = days;
        self
    }

    /// At creation: turn purge protection on (it can never be turned off).
    pub fn purge_protection(mut self, on: bool) -> Self {
        self.purge_protection = on;
        self
    }

    /// At creation: keep at most `n` versions of every secret (a secret can set its own).
    pub fn max_versions(mut self, n: u32) -> Self {
        self.max_versions = Some(n);
        self
    }

    /// At creation: the label of the first key slot (default `"owner"`).
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// At creation: the Argon2id parameters of a first passphrase slot (default
    /// [`KdfParams::DEFAULT`]).
    pub fn kdf(mut self, kdf: KdfParams) -> Self {
        self.kdf = kdf;
        self
    }
}

/// The vault's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VaultSettings {
    /// Days a deleted secret is kept (7–90), fixed at creation.
    pub retention_days: u16,
    /// Whether purge protection is on (once on, it stays on).
    pub purge_protection: bool,
    /// The vault-wide version limit, if any.
    pub max_versions: Option<u32>,
}

impl From<&Settings> for VaultSettings {
    fn from(s: &Settings) -> Self {
        VaultSettings {
            retention_days: s.retention_days,
            purge_protection: s.purge_protection,
            max_versions: s.max_versions,
        }
    }
}

pub(crate) struct Store {
    pub db: GuardedDb,
    pub keys: Keys,
}

/// The redb database, closed under a panic guard: after redb panicked on a damaged file (a
/// panic the vault turned into an error), its close can panic again on a poisoned lock, and a
/// panic must not escape a `drop` of the vault.
pub(crate) struct GuardedDb(Option<Database>);

impl std::ops::Deref for GuardedDb {
    type Target = Database;
    fn deref(&self) -> &Database {
        // Present from construction until `drop` takes it.
        self.0
            .as_ref()
            .expect("the database is open until the vault is dropped")
    }
}

impl std::ops::DerefMut for GuardedDb {
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
    store: RwLock<Store>,
    pub vault_id: [u8; 16],
    pub clock: Arc<dyn Clock>,
    read_audit: AuditLevel,
    pub max_value_len: usize,
    pub strict: bool,
    head: Mutex<AuditHead>,
    pending: Mutex<Vec<AuditEntry>>,
    poisoned: AtomicBool,
    /// The earliest time something deleted may be due for purge (a hint: `None` = nothing).
    purge_hint: Mutex<Option<Timestamp>>,
    /// The slot that unlocked this handle and its key-encryption key (for rotation).
    unlocked: Mutex<Option<(u32, Key)>>,
}

/// An open vault. `Send + Sync`: share it (or clones of it) between threads; reads run in
/// parallel, writes are serialised.
///
/// Each handle acts as one identity (an actor and a [`Role`]): the unlocking slot's, or a
/// narrower one from [`Vault::as_identity`].
///
/// ```
/// use tresor::{Credential, Options, Vault};
///
/// let key = Credential::generate_key()?;
/// let vault = Vault::create_in_memory(&key, Options::new())?;
/// let v1 = vault.set("db-password", "hunter2")?;
/// vault.set("db-password", "correct horse")?;
/// assert_eq!(vault.get("db-password")?.expose(), b"correct horse");
/// assert_eq!(vault.get_version("db-password", &v1.version)?.expose(), b"hunter2");
/// assert_eq!(vault.list_versions("db-password")?.len(), 2);
/// vault.verify_audit()?;
/// # Ok::<(), tresor::Error>(())
/// ```
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
    actor: Arc<str>,
    role: Role,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("vault_id", &crypto::hex(&self.inner.vault_id))
            .field("actor", &self.actor)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
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
    records: Vec<AuditEntry>,
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

    fn push_record(
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
fn auth_mac(
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

fn write_head(
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
fn upgrade_format1(txn: &WriteTransaction, keys: &Keys) -> Result<()> {
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
fn read_head(
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
fn append_audit(
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

fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(META)?;
    txn.open_table(SLOTS)?;
    txn.open_table(SECRETS)?;
    txn.open_table(VERSIONS)?;
    txn.open_table(VERSION_IDS)?;
    txn.open_table(DELETED)?;
    txn.open_table(RETIRED)?;
    txn.open_table(AUDIT)?;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// redb reports a file that is not a redb database at all (an empty file, a wrong magic number)
/// as an I/O error of kind `InvalidData`; for a vault that is a foreign file: [`Error::Corrupted`].
fn not_a_database(e: redb::DatabaseError) -> Error {
    match Error::from(e) {
        Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            Error::Corrupted(format!("not a tresor vault: {io}"))
        }
        other => other,
    }
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
    fn store(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    fn store_mut(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(
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
    fn commit(&self, store: &Store, txn: WriteTransaction, records: Vec<AuditEntry>) -> Result<()> {
        self.commit_with(store, txn, records, None)
    }

    /// [`Inner::commit`] of a transaction that changed the settings to `settings`.
    fn commit_with(
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
    fn flush_with(&self, store: &Store) -> Result<()> {
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
    fn note(&self, entry: AuditEntry, always: bool) -> Result<()> {
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

    fn due_now(&self, now: Timestamp) -> bool {
        lock(&self.purge_hint).is_some_and(|t| t <= now)
    }

    /// Updates the purge hint after a commit: `rescanned` is the earliest date left after a
    /// purge pass (if one ran), `new_due` a date the write created.
    fn update_hint(&self, rescanned: Option<Option<Timestamp>>, new_due: Option<Timestamp>) {
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
    /// Creates a new vault file at `path` (which must not exist), with one owner key slot opened
    /// by `credential`.
    ///
    /// ```no_run
    /// use tresor::{Credential, Options, Vault};
    ///
    /// let vault = Vault::create("app.tresor", &Credential::passphrase("correct horse"), Options::new())?;
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn create(
        path: impl AsRef<Path>,
        credential: &Credential,
        options: Options,
    ) -> Result<Vault> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path.as_ref())?;
        let created = (|| {
            let db = Builder::new().create_with_backend(redb::backends::FileBackend::new(file)?)?;
            Self::init(db, credential, options)
        })();
        if created.is_err() {
            // The file is ours (`create_new`): a refused or failed creation leaves nothing behind.
            let _ = std::fs::remove_file(path.as_ref());
        }
        created
    }

    /// Creates a vault in memory (redb's in-memory backend): same rules and cryptography, nothing
    /// on disk. For tests and fuzzing.
    pub fn create_in_memory(credential: &Credential, options: Options) -> Result<Vault> {
        Self::create_with_backend(redb::backends::InMemoryBackend::new(), credential, options)
    }

    /// Creates a vault on a custom redb [`StorageBackend`] (fault injection, custom media).
    pub fn create_with_backend(
        backend: impl StorageBackend,
        credential: &Credential,
        options: Options,
    ) -> Result<Vault> {
        let db = Builder::new().create_with_backend(backend)?;
        Self::init(db, credential, options)
    }

    /// Opens the vault file at `path` with `credential`.
    ///
    /// Fails with [`Error::WrongKey`] when no slot opens with it, [`Error::Locked`] when another
    /// handle has the file open, [`Error::Corrupted`] for a damaged or foreign file, and
    /// [`Error::UnsupportedFormat`] for a file written by a newer tresor.
    ///
    /// ```no_run
    /// use tresor::{Credential, Options, Vault};
    ///
    /// let key = Credential::key_file("vault.key")?;
    /// let vault = Vault::open("app.tresor", &key, Options::new())?;
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn open(
        path: impl AsRef<Path>,
        credential: &Credential,
        options: Options,
    ) -> Result<Vault> {
        let path = path.as_ref();
        Self::check_options(&options)?;
        // First, without modifying the file: refuse a wrong key, a damaged or foreign file, or a
        // rolled-back copy before anything is written (redb rewrites its bookkeeping on a
        // read-write open). A file that needs crash recovery skips this step.
        let known = guard_panics(|| match Builder::new().open_read_only(path) {
            Ok(ro) => {
                let txn = ro.begin_read()?;
                let u = unseal(&txn, credential, None, options.expect_checkpoint.as_ref())?;
                Ok(Some((u.slot_id, u.kek)))
            }
            Err(redb::DatabaseError::RepairAborted) => Ok(None),
            Err(e) => Err(not_a_database(e)),
        })?;
        let verify = options.verify_integrity;
        let db = guard_panics(|| {
            let mut b = Builder::new();
            b.set_check_integrity_on_open(verify);
            b.open(path).map_err(not_a_database)
        })?;
        guard_panics(|| Self::unlock(db, credential, options, known))
    }

    /// Opens a vault on a custom redb [`StorageBackend`].
    pub fn open_with_backend(
        backend: impl StorageBackend,
        credential: &Credential,
        options: Options,
    ) -> Result<Vault> {
        let verify = options.verify_integrity;
        let db = guard_panics(|| {
            let mut b = Builder::new();
            b.set_check_integrity_on_open(verify);
            Ok(b.create_with_backend(backend)?)
        })?;
        guard_panics(|| Self::unlock(db, credential, options, None))
    }

    fn check_options(options: &Options) -> Result<()> {
        if options.max_value_len == 0 || options.max_value_len > MAX_VALUE_LIMIT {
            return Err(Error::invalid("the value limit is 1 byte to 4 MiB"));
        }
        if let Some(actor) = &options.actor {
            if actor.is_empty() || actor.chars().count() > slot::MAX_LABEL_LEN {
                return Err(Error::invalid("an actor name has 1 to 128 characters"));
            }
            slot::check_not_system(actor)?;
        }
        Ok(())
    }

    fn new_inner(
        db: Database,
        keys: Keys,
        vault_id: [u8; 16],
        head: AuditHead,
        options: &Options,
    ) -> Inner {
        Inner {
            store: RwLock::new(Store {
                db: GuardedDb(Some(db)),
                keys,
            }),
            vault_id,
            clock: options.clock.clone(),
            read_audit: options.read_audit,
            max_value_len: options.max_value_len,
            strict: options.strict_validity,
            head: Mutex::new(head),
            pending: Mutex::new(Vec::new()),
            poisoned: AtomicBool::new(false),
            purge_hint: Mutex::new(None),
            unlocked: Mutex::new(None),
        }
    }

    fn init(db: Database, credential: &Credential, options: Options) -> Result<Vault> {
        Self::check_options(&options)?;
        if !(7..=90).contains(&options.retention_days) {
            return Err(Error::invalid("retention is 7 to 90 days"));
        }
        if options.max_versions == Some(0) {
            return Err(Error::invalid("max_versions is at least 1"));
        }
        let now = options.clock.now();
        let vault_id: [u8; 16] = crypto::random()?;
        let keys = Keys::new(crypto::random_key()?);
        let settings = Settings {
            retention_days: options.retention_days,
            purge_protection: options.purge_protection,
            max_versions: options.max_versions,
        };
        let spec = SlotSpec::new(credential.clone(), options.label.clone())
            .role(options.role)
            .kdf(options.kdf);
        let (slot_rec, kek) = slot::new_slot(&spec, &vault_id, 1, &keys.mk, now)?;
        let genesis = AuditHead {
            seq: 0,
            mac: audit::genesis(&keys.audit, &vault_id),
            settings,
        };
        let txn = db.begin_write()?;
        create_tables(&txn)?;
        {
            let mut meta = txn.open_table(META)?;
            let header = encoding::encode_header(&Header {
                vault_id,
                created: now,
            });
            meta.insert(storage::META_HEADER, header.as_slice())?;
            let mut slots = txn.open_table(SLOTS)?;
            let bytes = encoding::encode(tag::SLOT, &slot_rec, 128);
            slots.insert(1u32, bytes.as_slice())?;
        }
        write_head(&txn, &keys, &vault_id, &genesis)?;
        let inner = Self::new_inner(db, keys, vault_id, genesis, &options);
        *lock(&inner.unlocked) = Some((1, kek));
        let vault = Vault {
            actor: options
                .actor
                .clone()
                .unwrap_or(options.label.clone())
                .into(),
            role: options.role,
            inner: Arc::new(inner),
        };
        {
            let store = vault.inner.store();
            let mut cx = WriteCx::new(&txn, &store.keys, &vault.inner.vault_id, now);
            cx.write_settings(&settings)?;
            drop(cx);
            let record = vault
                .inner
                .entry(&vault.actor, Operation::VaultCreate, None, None, None);
            vault.inner.commit(&store, txn, vec![record])?;
        }
        Ok(vault)
    }

    fn unlock(
        db: Database,
        credential: &Credential,
        options: Options,
        known: Option<(u32, Key)>,
    ) -> Result<Vault> {
        Self::check_options(&options)?;
        let Unsealed {
            vault_id,
            slot_id,
            slot: rec,
            keys,
            kek,
            head,
        } = {
            let txn = db.begin_read()?;
            unseal(
                &txn,
                credential,
                known.as_ref(),
                options.expect_checkpoint.as_ref(),
            )?
        };
        let role = Role::from_code(rec.desc.role)?;
        let inner = Self::new_inner(db, keys, vault_id, head, &options);
        *lock(&inner.unlocked) = Some((slot_id, kek));
        let vault = Vault {
            actor: options
                .actor
                .clone()
                .unwrap_or(rec.desc.label.clone())
                .into(),
            role,
            inner: Arc::new(inner),
        };
        if options.verify_integrity {
            vault.verify_records()?;
        }
        vault.compute_purge_hint()?;
        vault.inner.note(
            vault
                .inner
                .entry(&vault.actor, Operation::VaultOpen, None, None, None),
            false,
        )?;
        vault.purge_if_due()?;
        Ok(vault)
    }

    /// The vault's id (random, fixed at creation).
    pub fn vault_id(&self) -> [u8; 16] {
        self.inner.vault_id
    }

    /// The actor this handle's audit records name.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// This handle's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The id of the key slot whose credential unlocked (or created) this vault, as listed by
    /// [`Vault::slots`]; `None` once that slot has been removed. Tools use it to act on "the
    /// slot I came in with" (changing its passphrase, say).
    ///
    /// ```
    /// use tresor::{Credential, Options, SlotSpec, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// assert_eq!(vault.unlocked_slot(), Some(1));
    /// let other = vault.add_slot(&SlotSpec::new(Credential::generate_key()?, "spare"))?;
    /// assert_eq!(vault.unlocked_slot(), Some(1));
    /// vault.remove_slot(1)?;
    /// assert_eq!(vault.unlocked_slot(), None);
    /// # let _ = other;
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn unlocked_slot(&self) -> Option<u32> {
        lock(&self.inner.unlocked).as_ref().map(|(id, _)| *id)
    }

    /// A handle on the same open vault acting as another identity: `actor` is recorded in
    /// audit records, `role` limits what it may do. The role must be one this handle's role
    /// includes (an owner may hand out any role, a writer only writer or reader).
    ///
    /// ```
    /// use tresor::{Credential, Error, Options, Role, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// let reader = vault.as_identity("report-job", Role::Reader)?;
    /// assert!(matches!(reader.set("x", "y"), Err(Error::Forbidden { .. })));
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn as_identity(&self, actor: impl Into<String>, role: Role) -> Result<Vault> {
        if !self.role.includes(role) {
            return Err(Error::invalid(
                "a handle cannot grant a role it does not include",
            ));
        }
        let actor = actor.into();
        if actor.is_empty() || actor.chars().count() > slot::MAX_LABEL_LEN {
            return Err(Error::invalid("an actor name has 1 to 128 characters"));
        }
        slot::check_not_system(&actor)?;
        Ok(Vault {
            inner: self.inner.clone(),
            actor: actor.into(),
            role,
        })
    }

    /// Commits buffered read records now (they are also committed with the next write and when
    /// the last handle is dropped).
    pub fn flush(&self) -> Result<()> {
        self.inner.flush_with(&self.inner.store())
    }

    /// Flushes buffered audit records and closes this handle (the file closes when the last
    /// clone is dropped).
    pub fn close(self) -> Result<()> {
        self.flush()
    }

    /// Refuses `op` unless this handle's role allows it; a refusal is always audited.
    fn authorize(&self, op: Operation, name: Option<&str>) -> Result<()> {
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

    fn write_unguarded<T>(
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
    fn purge_if_due(&self) -> Result<()> {
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
    fn compute_purge_hint(&self) -> Result<()> {
        let store = self.inner.store();
        let txn = store.db.begin_read()?;
        let hint = lifecycle::earliest_due(&txn, &store.keys, &self.inner.vault_id)?;
        *lock(&self.inner.purge_hint) = hint;
        Ok(())
    }
}

impl<'a> WriteCx<'a> {
    fn new(
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

/// What unlocking found: the keys, the slot that opened, the chain head.
struct Unsealed {
    vault_id: [u8; 16],
    slot_id: u32,
    slot: SlotRecord,
    keys: Keys,
    kek: Key,
    head: AuditHead,
}

/// Reads the header and key slots, opens a slot with `credential` (or with `known`, a slot id
/// and key-encryption key found by an earlier read of the same file, to spare a second Argon2id
/// run), and checks the header MAC, the settings, the audit head and an expected checkpoint.
/// Reads only.
fn unseal(
    txn: &ReadTransaction,
    credential: &Credential,
    known: Option<&(u32, Key)>,
    checkpoint: Option<&Checkpoint>,
) -> Result<Unsealed> {
    let meta = txn
        .open_table(META)
        .map_err(|_| Error::corrupted("not a tresor vault (no metadata table)"))?;
    let header = encoding::decode_header(
        meta.get(storage::META_HEADER)?
            .ok_or_else(|| Error::corrupted("not a tresor vault (no header)"))?
            .value(),
    )?;
    let vault_id = header.vault_id;
    let slots = txn.open_table(SLOTS)?;
    let mut unlocked = None;
    if let Some((id, kek)) = known
        && let Some(bytes) = slots.get(*id)?
    {
        let rec: SlotRecord = encoding::decode(tag::SLOT, bytes.value())?;
        if let Unwrapped::Key(mk) = slot::unwrap(&rec, &vault_id, *id, kek) {
            unlocked = Some((*id, rec, mk, kek.clone()));
        }
    }
    let mut damaged = false;
    if unlocked.is_none() {
        for row in slots.iter()? {
            let (id, bytes) = row?;
            let id = id.value();
            let rec: SlotRecord = encoding::decode(tag::SLOT, bytes.value())?;
            let Some(kek) = slot::kek_for(credential, &rec.desc)? else {
                continue;
            };
            match slot::unwrap(&rec, &vault_id, id, &kek) {
                Unwrapped::Key(mk) => {
                    unlocked = Some((id, rec, mk, kek));
                    break;
                }
                Unwrapped::Damaged => damaged = true,
                Unwrapped::WrongKey => {}
            }
        }
    }
    let Some((slot_id, rec, mk, kek)) = unlocked else {
        return Err(if damaged {
            Error::corrupted("a key slot that matches the credential is damaged or altered")
        } else {
            Error::WrongKey
        });
    };
    let keys = Keys::new(mk);
    let settings = read_settings(&meta, &keys, &vault_id)?;
    let expected = auth_mac(&meta, &slots, &keys, &settings)?;
    let stored = meta
        .get(storage::META_AUTH)?
        .ok_or_else(|| Error::corrupted("header MAC is missing"))?;
    if !crypto::mac_eq(&expected, stored.value()) {
        return Err(Error::corrupted(
            "the header, key slots or settings were altered (header MAC mismatch)",
        ));
    }
    let head = read_head(&txn.open_table(AUDIT)?, &meta, &keys, &vault_id)?;
    if head.settings != settings {
        return Err(Error::corrupted(
            "the settings do not match the audit head (rows from another copy of the vault)",
        ));
    }
    check_tail(txn, &keys, &vault_id, &head)?;
    if let Some(cp) = checkpoint {
        check_checkpoint(txn, &keys, &vault_id, &head, cp)?;
    }
    Ok(Unsealed {
        vault_id,
        slot_id,
        slot: rec,
        keys,
        kek,
        head,
    })
}

/// The audit head must name the last record of the audit table (its sequence number and MAC):
/// a head put back from an older copy of the file is refused. One decryption.
fn check_tail(
    txn: &ReadTransaction,
    keys: &Keys,
    vault_id: &[u8; 16],
    head: &AuditHead,
) -> Result<()> {
    let table = txn.open_table(AUDIT)?;
    let mismatch = || Error::corrupted("the audit head does not match the last audit record");
    match table.range(..AUDIT_HEAD_KEY)?.next_back().transpose()? {
        None if head.seq == 0 => Ok(()),
        None => Err(mismatch()),
        Some((k, v)) => {
            let seq = k.value();
            if seq != head.seq {
                return Err(mismatch());
            }
            let row = audit::open_row(keys, vault_id, seq, v.value())?;
            if !crypto::mac_eq(&row.mac, &head.mac) {
                return Err(mismatch());
            }
            Ok(())
        }
    }
}

/// The file must contain the chain a checkpoint names: a row ending at the checkpoint's
/// sequence number (checkpoints are taken at the head, which always ends a row) with its MAC.
fn check_checkpoint(
    txn: &ReadTransaction,
    keys: &Keys,
    vault_id: &[u8; 16],
    head: &AuditHead,
    cp: &Checkpoint,
) -> Result<()> {
    if cp.seq > head.seq {
        return Err(Error::RolledBack(
            "the vault file is older than the checkpoint (a rolled-back copy)",
        ));
    }
    let mac = if cp.seq == 0 {
        audit::genesis(&keys.audit, vault_id)
    } else {
        let table = txn.open_table(AUDIT)?;
        let sealed = table.get(cp.seq)?.ok_or(Error::RolledBack(
            "the checkpoint's audit record is missing",
        ))?;
        audit::open_row(keys, vault_id, cp.seq, sealed.value())?.mac
    };
    if !crypto::mac_eq(&mac[..16], &cp.mac) {
        return Err(Error::RolledBack(
            "the vault does not contain the checkpoint's audit chain",
        ));
    }
    Ok(())
}
