//! Creating and opening vault files: checking the options, unlocking a key slot, and the checks
//! an open makes (header and settings MAC, audit head, expected checkpoint, integrity).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use redb::{
    Builder, Database, ReadTransaction, ReadableDatabase, ReadableTable, StorageBackend,
    WriteTransaction,
};

use crate::access::{Operation, Principal, Role};
use crate::audit::{self, Checkpoint};
use crate::crypto::{self, Key};
use crate::digest::{self, Digests};
use crate::encoding::{self, AuditHead, Header, Settings, SlotRecord, tag};
use crate::error::{Error, Result};
use crate::limits::MAX_VALUE_LIMIT;
use crate::memlock::KeyBox;
use crate::slot::{self, Credential, KdfParams, SlotSpec, Unwrapped};
use crate::storage::{
    self, AUDIT, AUDIT_HEAD_KEY, DELETED, Keys, META, RETIRED, SECRETS, SLOTS, VERSION_IDS,
    VERSIONS,
};

use super::txn::{
    GuardedDb, Inner, Store, WriteCx, auth_mac, guard_panics, lock, read_head, read_settings,
};
use super::{Options, Vault};
use crate::witness::{self, Witness, WitnessState};

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
        let file = crate::files::create_private(path.as_ref())?;
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
                let u = unseal(&txn, credential, None, &options)?;
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

    pub(super) fn check_options(options: &Options) -> Result<()> {
        if options.max_value_len == 0 || options.max_value_len > MAX_VALUE_LIMIT {
            return Err(Error::invalid("the value limit is 1 byte to 4 MiB"));
        }
        if let Some(actor) = &options.actor {
            crate::actor::check(actor, "an actor name")?;
        }
        Ok(())
    }

    pub(super) fn new_inner(
        db: Database,
        keys: Keys,
        vault_id: [u8; 16],
        head: AuditHead,
        options: &Options,
    ) -> Inner {
        Inner {
            store: RwLock::new(Store {
                db: GuardedDb(Some(db)),
                keys: KeyBox::new(keys),
            }),
            vault_id,
            clock: options.clock.clone(),
            read_audit: options.read_audit,
            max_value_len: options.max_value_len,
            strict: options.strict_validity,
            head: Mutex::new(head),
            pending: Mutex::new(Default::default()),
            durable_at: Mutex::new(std::time::Instant::now()),
            undurable: AtomicBool::new(false),
            flusher: Default::default(),
            poisoned: AtomicBool::new(false),
            purge_hint: Mutex::new(None),
            unlocked: Mutex::new(None),
            witness: options.witness.clone(),
            subscribers: Default::default(),
        }
    }

    pub(super) fn init(db: Database, credential: &Credential, options: Options) -> Result<Vault> {
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
            time: now,
            digests: Some(Digests::default()),
        };
        let inner = Self::new_inner(db, keys, vault_id, genesis, &options);
        *lock(&inner.unlocked) = Some((1, kek));
        let vault = Vault {
            actor: options
                .actor
                .clone()
                .unwrap_or(options.label.clone())
                .into(),
            role: options.role,
            principal: Some(Principal::Slot {
                id: 1,
                role: options.role,
            }),
            inner: Arc::new(inner),
        };
        {
            let store = vault.inner.store();
            let txn = Inner::begin(&store)?;
            create_tables(txn.raw())?;
            {
                let header = encoding::encode_header(&Header {
                    vault_id,
                    created: now,
                });
                txn.open_table(META)?
                    .insert(storage::META_HEADER, header.as_slice())?;
                let bytes = encoding::encode(tag::SLOT, &slot_rec, 128);
                txn.open_table(SLOTS)?.insert(1u32, bytes.as_slice())?;
            }
            let mut cx = WriteCx::new(&txn, &store.keys, &vault.inner.vault_id, now, now);
            cx.write_settings(&settings)?;
            drop(cx);
            let record = vault.entry(Operation::VaultCreate, None, None, None);
            vault.inner.commit(&store, txn, vec![record])?;
        }
        Ok(vault)
    }

    pub(super) fn unlock(
        db: Database,
        credential: &Credential,
        options: Options,
        known: Option<(u32, Key)>,
    ) -> Result<Vault> {
        Self::check_options(&options)?;
        let Unsealed {
            witnessed,
            reset,
            vault_id,
            slot_id,
            slot: rec,
            keys,
            kek,
            head,
        } = {
            let txn = db.begin_read()?;
            unseal(&txn, credential, known.as_ref(), &options)?
        };
        let role =
            Role::from_code(rec.desc.role).ok_or_else(|| Error::corrupted(slot::UNKNOWN_ROLE))?;
        if reset && !role.allows(Operation::WitnessReset) {
            // Refused before the handle exists: its first commit would point the witness at the
            // older copy. (The refusal is not recorded in that copy.)
            return Err(Error::Forbidden {
                role,
                operation: Operation::WitnessReset,
            });
        }
        let inner = Self::new_inner(db, keys, vault_id, head, &options);
        *lock(&inner.unlocked) = Some((slot_id, kek));
        let vault = Vault {
            actor: options
                .actor
                .clone()
                .unwrap_or(rec.desc.label.clone())
                .into(),
            role,
            principal: Some(Principal::Slot { id: slot_id, role }),
            inner: Arc::new(inner),
        };
        if options.verify_integrity {
            vault.verify_records()?;
        }
        if reset {
            // An older copy accepted on purpose: only an owner may, and it is recorded (the
            // commit then points the witness at this file).
            vault.write(Operation::WitnessReset, None, |_| Ok(()))?;
        } else if options.witness.is_some()
            && witnessed.map(|w| (w.at, w.also))
                != Some((Checkpoint::new(head.seq, &head.mac), None))
        {
            // First use of this witness, or a file ahead of it (a crash after a commit).
            vault.inner.store_witness(&head)?;
        }
        vault.compute_purge_hint()?;
        vault
            .inner
            .note(vault.pending(Operation::VaultOpen, None, None, None), false)?;
        vault.purge_if_due()?;
        Ok(vault)
    }
}

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<()> {
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

/// redb reports a file that is not a redb database at all (an empty file, a wrong magic number)
/// as an I/O error of kind `InvalidData`; for a vault that is a foreign file: [`Error::Corrupted`].
pub(super) fn not_a_database(e: redb::DatabaseError) -> Error {
    match Error::from(e) {
        Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            Error::Corrupted(format!("not a tresor vault: {io}"))
        }
        other => other,
    }
}

/// The most passphrase slots one unlock derives a key for.
const MAX_KDF_TRIES: usize = 8;

/// The most Argon2id work one unlock does, in KiB × passes: twice that of one slot at the cap
/// (2 GiB, 64 passes), so that any slot a user can make still opens.
const MAX_KDF_WORK: u64 = 2 * KdfParams::MAX_MEMORY_KIB as u64 * KdfParams::MAX_ITERATIONS as u64;

/// What unlocking found: the keys, the slot that opened, the chain head.
pub(super) struct Unsealed {
    /// What the witness held at the open, and whether the open accepted a file behind or beside
    /// it (a reset).
    witnessed: Option<WitnessState>,
    reset: bool,
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
pub(super) fn unseal(
    txn: &ReadTransaction,
    credential: &Credential,
    known: Option<&(u32, Key)>,
    options: &Options,
) -> Result<Unsealed> {
    let checkpoint = options.expect_checkpoint.as_ref();
    let meta = txn
        .open_table(META)
        .map_err(|_| Error::corrupted("not a tresor vault (no metadata table)"))?;
    let (header, format) = {
        let bytes = meta
            .get(storage::META_HEADER)?
            .ok_or_else(|| Error::corrupted("not a tresor vault (no header)"))?;
        (
            encoding::decode_header(bytes.value())?,
            encoding::header_format(bytes.value())?,
        )
    };
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
    let mut failed: Vec<String> = Vec::new();
    if unlocked.is_none() {
        // Slots are tried cheapest first, and one unlock derives at most MAX_KDF_TRIES
        // passphrase keys whose Argon2id cost adds up to at most MAX_KDF_WORK: slots planted in
        // the file with costly parameters cannot make an unlock run unbounded work, and are
        // tried after the cheaper, real ones.
        let mut rows = Vec::new();
        for row in slots.iter()? {
            let (id, bytes) = row?;
            let rec: SlotRecord = encoding::decode(tag::SLOT, bytes.value())?;
            rows.push((slot::kdf_cost(&rec.desc), id.value(), rec));
        }
        rows.sort_by_key(|(cost, id, _)| (*cost, *id));
        let (mut tries, mut work) = (0usize, 0u64);
        for (cost, id, rec) in rows {
            if cost > 0 && matches!(credential, Credential::Passphrase(_)) {
                tries += 1;
                work = work.saturating_add(cost);
                if tries > MAX_KDF_TRIES || work > MAX_KDF_WORK {
                    break;
                }
            }
            let kek = match slot::kek_for(credential, &rec.desc) {
                Ok(Some(kek)) => kek,
                Ok(None) => continue,
                // Parameters above the cap: an edited slot; the others may still open.
                Err(Error::Corrupted(_)) => {
                    damaged = true;
                    continue;
                }
                // A provider that cannot open this slot (its identity, plugin, keychain or
                // entry is missing) does not keep the others from opening; the causes are
                // reported when none does.
                Err(Error::Provider(why)) => {
                    failed.push(format!("key slot {id} ({:?}): {why}", rec.desc.label));
                    continue;
                }
                Err(e) => return Err(e),
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
        } else if !failed.is_empty() {
            Error::Provider(failed.join("; "))
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
    // The small tables (header, settings and MAC; key slots; tokens) against the head's state
    // digests: a removed slot or a revoked token put back from an older copy fails here. A
    // file of format 3 or later always has digests: a head without them came from an older
    // copy of the file.
    match &head.digests {
        Some(d) => digest::verify(txn, &keys.state, d, digest::SMALL)?,
        None if format >= 3 => {
            return Err(Error::corrupted(
                "the audit head has no state digest (a head put back from an older copy)",
            ));
        }
        None => {}
    }
    if let Some(cp) = checkpoint {
        check_checkpoint(txn, &keys, &vault_id, &head, cp)?;
    }
    let (witnessed, reset) = match &options.witness {
        Some(w) => check_witness(
            txn,
            &keys,
            &vault_id,
            &head,
            w.as_ref(),
            options.reset_witness,
        )?,
        None => (None, false),
    };
    Ok(Unsealed {
        witnessed,
        reset,
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
pub(super) fn check_tail(
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
pub(super) fn check_checkpoint(
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
    let mac = mac_at(txn, keys, vault_id, cp.seq)?.ok_or(Error::RolledBack(
        "the checkpoint's audit record is missing",
    ))?;
    if !crypto::mac_eq(&mac, &cp.mac) {
        return Err(Error::RolledBack(
            "the vault does not contain the checkpoint's audit chain",
        ));
    }
    Ok(())
}

/// The first 16 bytes of the chain MAC after record `seq`, when a row of the audit table ends
/// there (the genesis MAC for 0).
fn mac_at(
    txn: &ReadTransaction,
    keys: &Keys,
    vault_id: &[u8; 16],
    seq: u64,
) -> Result<Option<[u8; 16]>> {
    let mac = if seq == 0 {
        audit::genesis(&keys.audit, vault_id)
    } else {
        let table = txn.open_table(AUDIT)?;
        let Some(sealed) = table.get(seq)? else {
            return Ok(None);
        };
        audit::open_row(keys, vault_id, seq, sealed.value())?.mac
    };
    let mut m = [0u8; 16];
    m.copy_from_slice(&mac[..16]);
    Ok(Some(m))
}

/// Checks the file against its witness (unless the open resets it). Returns what the witness
/// held, and whether the file was behind or beside it (only possible with a reset).
fn check_witness(
    txn: &ReadTransaction,
    keys: &Keys,
    vault_id: &[u8; 16],
    head: &AuditHead,
    witness: &dyn Witness,
    reset: bool,
) -> Result<(Option<WitnessState>, bool)> {
    let Some(state) = witness.load(vault_id)? else {
        return Ok((None, false));
    };
    let verdict = witness::judge(&state, head.seq, |seq| mac_at(txn, keys, vault_id, seq))?;
    if reset {
        return Ok((Some(state), !matches!(verdict, witness::Verdict::Current)));
    }
    verdict.into_result()?;
    Ok((Some(state), false))
}
