//! Helpers shared by the integration tests: credentials, a test key provider, a shared in-memory
//! storage backend (so that a vault can be closed and reopened without a file), and raw redb
//! access to a vault file's tables (to damage or rearrange them as an attacker could).

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tresor::redb::{self, ReadableDatabase, ReadableTable, TableDefinition};
use tresor::{AuditRecord, Credential, KeyProvider, ManualClock, ProviderError, Timestamp, Vault};
use zeroize::Zeroizing;

/// The tables of a vault file, as `src/storage.rs` defines them.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub const SLOTS: TableDefinition<u32, &[u8]> = TableDefinition::new("slots");
pub const SECRETS: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("secrets");
pub const VERSIONS: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("versions");
pub const VERSION_IDS: TableDefinition<([u8; 16], [u8; 16]), u64> =
    TableDefinition::new("version_ids");
pub const DELETED: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("deleted");
pub const RETIRED: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("retired");
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// A fixed start time for manual clocks (2023-11-14).
pub const T0: i64 = 1_700_000_000;
pub const DAY: u64 = 86_400;

pub fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_unix(T0))
}

/// A deterministic 256-bit key credential (`n` picks one of many).
pub fn key(n: u8) -> Credential {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = n.wrapping_mul(31).wrapping_add(i as u8);
    }
    Credential::key(k)
}

/// A temporary directory and a vault path inside it (the file does not exist yet).
pub fn temp_path(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    (dir, path)
}

/// A toy key provider for tests: XOR with a pad derived from its id. A real one calls a keychain
/// or a KMS. `fail` makes `unwrap` fail, as a provider whose backing service is down.
#[derive(Debug)]
pub struct XorProvider {
    pub id: String,
    pub pad: [u8; 32],
    pub fail: bool,
}

impl XorProvider {
    pub fn new(id: &str, seed: u8) -> Self {
        let mut pad = [0u8; 32];
        for (i, b) in pad.iter_mut().enumerate() {
            *b = seed ^ (i as u8).wrapping_mul(7);
        }
        XorProvider {
            id: id.to_string(),
            pad,
            fail: false,
        }
    }

    pub fn credential(self) -> Credential {
        Credential::provider(Arc::new(self))
    }
}

impl KeyProvider for XorProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn wrap(&self, key: &[u8]) -> Result<Vec<u8>, ProviderError> {
        Ok(key.iter().zip(self.pad).map(|(a, b)| a ^ b).collect())
    }

    fn unwrap(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        if self.fail {
            return Err("the key service is unavailable".into());
        }
        Ok(Zeroizing::new(
            blob.iter().zip(self.pad).map(|(a, b)| a ^ b).collect(),
        ))
    }
}

/// A redb storage backend over a shared byte vector: a vault on it can be dropped and reopened
/// (as a file can) without touching the disk, and its bytes can be copied at any moment.
#[derive(Debug, Clone, Default)]
pub struct SharedMem(pub Arc<RwLock<Vec<u8>>>);

impl SharedMem {
    pub fn new() -> Self {
        Self::default()
    }

    /// An independent copy of the current bytes.
    pub fn snapshot(&self) -> SharedMem {
        SharedMem(Arc::new(RwLock::new(self.bytes())))
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.0.read().unwrap().clone()
    }

    fn out_of_range() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "out of range")
    }
}

impl redb::StorageBackend for SharedMem {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.0.read().unwrap().len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let data = self.0.read().unwrap();
        let start = usize::try_from(offset).map_err(|_| Self::out_of_range())?;
        let src = data
            .get(start..start + out.len())
            .ok_or_else(Self::out_of_range)?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let len = usize::try_from(len).map_err(|_| Self::out_of_range())?;
        self.0.write().unwrap().resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut buf = self.0.write().unwrap();
        let start = usize::try_from(offset).map_err(|_| Self::out_of_range())?;
        let dst = buf
            .get_mut(start..start + data.len())
            .ok_or_else(Self::out_of_range)?;
        dst.copy_from_slice(data);
        Ok(())
    }
}

/// Opens a vault file with plain redb (the vault must be closed).
pub fn raw(path: &Path) -> redb::Database {
    redb::Database::open(path).expect("raw redb open")
}

/// Runs `f` in one raw write transaction on the vault file at `path`, then commits.
pub fn edit<T>(path: &Path, f: impl FnOnce(&redb::WriteTransaction) -> T) -> T {
    let db = raw(path);
    let txn = db.begin_write().unwrap();
    let out = f(&txn);
    txn.commit().unwrap();
    out
}

/// All rows of a byte-valued table of the vault file at `path`.
pub fn rows<K>(path: &Path, def: TableDefinition<K, &[u8]>) -> Vec<(K, Vec<u8>)>
where
    K: redb::Key + 'static + for<'a> redb::Value<SelfType<'a> = K>,
{
    let db = raw(path);
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(def).unwrap();
    table
        .iter()
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.value(), v.value().to_vec())
        })
        .collect()
}

/// The number of audit records in a (closed) vault file, or in a byte snapshot: the key of the
/// last row of the audit table (rows are keyed by the sequence number of their last record).
pub fn audit_records_in(db: &redb::Database) -> u64 {
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(AUDIT).unwrap();
    let last = table.range(..AUDIT_HEAD_KEY).unwrap().next_back();
    last.map_or(0, |r| r.unwrap().0.value())
}

/// The key of the audit head's row in the audit table (after every block).
pub const AUDIT_HEAD_KEY: u64 = u64::MAX;

/// The sealed audit head of the vault file at `path`.
pub fn audit_head_row(path: &Path) -> Option<Vec<u8>> {
    get_row(path, AUDIT, AUDIT_HEAD_KEY)
}

/// Replaces (or with `None` removes) the audit head row of the vault file at `path`.
pub fn set_audit_head_row(path: &Path, value: Option<&[u8]>) {
    edit(path, |txn| {
        let mut table = txn.open_table(AUDIT).unwrap();
        match value {
            Some(v) => {
                table.insert(AUDIT_HEAD_KEY, v).unwrap();
            }
            None => {
                table.remove(AUDIT_HEAD_KEY).unwrap();
            }
        }
    });
}

/// The number of audit records committed in a snapshot of a vault's shared-memory storage.
pub fn committed_audit_records(mem: &SharedMem) -> u64 {
    let db = redb::Builder::new()
        .create_with_backend(mem.snapshot())
        .expect("open snapshot");
    audit_records_in(&db)
}

/// The whole audit log of a vault (the handle must be allowed to read it).
pub fn audit_log(vault: &Vault) -> Vec<AuditRecord> {
    vault.audit(0, usize::MAX).expect("audit log")
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Flips one bit of the last byte of a byte vector.
pub fn flip_last(mut v: Vec<u8>) -> Vec<u8> {
    let n = v.len() - 1;
    v[n] ^= 1;
    v
}

/// The bytes of one row of a byte-valued table of the vault file at `path`.
pub fn get_row<K>(path: &Path, def: TableDefinition<K, &[u8]>, key: K) -> Option<Vec<u8>>
where
    K: redb::Key + 'static + for<'a> redb::Value<SelfType<'a> = K>,
{
    let db = raw(path);
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(def).unwrap();
    table.get(key).unwrap().map(|g| g.value().to_vec())
}

/// The value of a `meta` row of the vault file at `path`.
pub fn meta_row(path: &Path, key: &str) -> Option<Vec<u8>> {
    let db = raw(path);
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(META).unwrap();
    table.get(key).unwrap().map(|g| g.value().to_vec())
}

/// Replaces (or with `None` removes) a `meta` row of the vault file at `path`.
pub fn set_meta_row(path: &Path, key: &str, value: Option<&[u8]>) {
    edit(path, |txn| {
        let mut table = txn.open_table(META).unwrap();
        match value {
            Some(v) => {
                table.insert(key, v).unwrap();
            }
            None => {
                table.remove(key).unwrap();
            }
        }
    });
}

/// A copy of the file at `from` under a new name in the same directory.
pub fn copy_to(from: &Path, name: &str) -> PathBuf {
    let to = from.with_file_name(name);
    std::fs::copy(from, &to).unwrap();
    to
}
