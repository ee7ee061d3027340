//! The state digest: one keyed digest per table over every row it holds, sealed in the audit
//! head and kept current by each commit for the rows that commit changes.
//!
//! A table's digest is the XOR of `BLAKE3-keyed(Kstate, table || u32le(len key) || key || value)`
//! over its rows (the audit head's own row excluded). Without the master key nobody can compute a
//! row's term, so a row replaced by an older copy of itself, removed, or put back after its
//! removal changes the table's digest in a way no edit of the file can compensate: the check
//! recomputes the digest from the rows and compares it with the one in the head. A commit updates
//! the digests in O(rows changed): every write goes through [`Txn`], whose tables fold the old
//! and the new bytes of each row they touch into a running difference.

use std::borrow::Borrow;
use std::cell::Cell;
use std::ops::{Deref, RangeBounds};

use redb::{
    Key as RedbKey, ReadTransaction, ReadableTable, Table, TableDefinition, TableError,
    TableHandle, Value, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use crate::crypto::{self, Key};
use crate::error::{Error, Result};
use crate::storage::{
    AUDIT, AUDIT_HEAD_KEY, DELETED, META, RETIRED, SECRETS, SLOTS, TOKENS, VERSION_IDS, VERSIONS,
};

/// The tables a digest covers, in the order of [`Digests`]: every table of a vault.
pub(crate) const TABLES: [&str; 9] = [
    "meta",
    "slots",
    "secrets",
    "versions",
    "version_ids",
    "deleted",
    "retired",
    "audit",
    "tokens",
];

/// The tables a plain open checks: small ones (a few rows each), read whole at every open.
pub(crate) const SMALL: [usize; 3] = [0, 1, 8];

/// One 32-byte digest per table of [`TABLES`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Digests(pub [[u8; 32]; TABLES.len()]);

impl Digests {
    fn fold(&mut self, other: &Digests) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            xor(a, b);
        }
    }

    /// `self` with the changes in `delta` applied.
    pub(crate) fn apply(mut self, delta: &Digests) -> Digests {
        self.fold(delta);
        self
    }
}

fn xor(a: &mut [u8; 32], b: &[u8; 32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

/// Where a table stands in [`TABLES`]; `None` for scratch tables (compaction's), which are
/// empty again by the end of the transaction that makes them.
fn index_of(name: &str) -> Option<usize> {
    TABLES.iter().position(|t| *t == name)
}

/// The term one row adds to its table's digest.
fn term(key: &Key, table: usize, k: &[u8], v: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(&[table as u8]);
    h.update(&(k.len() as u32).to_le_bytes());
    h.update(k);
    h.update(v);
    *h.finalize().as_bytes()
}

/// The digest of every row of `table` (for `audit`, the head's row excluded).
fn fold_table<K: RedbKey + 'static, V: Value + 'static>(
    key: &Key,
    index: usize,
    table: &impl ReadableTable<K, V>,
) -> Result<[u8; 32]> {
    let mut acc = [0u8; 32];
    for row in table.iter()? {
        let (k, v) = row?;
        let (k, v) = (k.value(), v.value());
        let kb = K::as_bytes(&k);
        if index == AUDIT_INDEX && kb.as_ref() == AUDIT_HEAD_KEY_BYTES {
            continue;
        }
        xor(
            &mut acc,
            &term(key, index, kb.as_ref(), V::as_bytes(&v).as_ref()),
        );
    }
    Ok(acc)
}

const AUDIT_INDEX: usize = 7;
const AUDIT_HEAD_KEY_BYTES: [u8; 8] = AUDIT_HEAD_KEY.to_le_bytes();

/// Something whose tables can be read: a read or a write transaction.
pub(crate) trait Source {
    /// The digest of the table `def` (zero for a table the file does not have).
    fn digest_of<K: RedbKey + 'static, V: Value + 'static>(
        &self,
        key: &Key,
        def: TableDefinition<K, V>,
    ) -> Result<[u8; 32]>;
}

impl Source for ReadTransaction {
    fn digest_of<K: RedbKey + 'static, V: Value + 'static>(
        &self,
        key: &Key,
        def: TableDefinition<K, V>,
    ) -> Result<[u8; 32]> {
        let index = index_of(def.name()).ok_or_else(|| Error::corrupted("unknown table"))?;
        match self.open_table(def) {
            Ok(t) => fold_table(key, index, &t),
            Err(TableError::TableDoesNotExist(_)) => Ok([0; 32]),
            Err(e) => Err(e.into()),
        }
    }
}

impl Source for WriteTransaction {
    fn digest_of<K: RedbKey + 'static, V: Value + 'static>(
        &self,
        key: &Key,
        def: TableDefinition<K, V>,
    ) -> Result<[u8; 32]> {
        let index = index_of(def.name()).ok_or_else(|| Error::corrupted("unknown table"))?;
        // Opening a table in a write transaction creates it: an empty table digests to zero
        // either way, and every vault table exists after the first commit of this format.
        fold_table(key, index, &self.open_table(def)?)
    }
}

/// The digest of table number `index` of [`TABLES`], recomputed from its rows.
pub(crate) fn table_digest(src: &impl Source, key: &Key, index: usize) -> Result<[u8; 32]> {
    match index {
        0 => src.digest_of(key, META),
        1 => src.digest_of(key, SLOTS),
        2 => src.digest_of(key, SECRETS),
        3 => src.digest_of(key, VERSIONS),
        4 => src.digest_of(key, VERSION_IDS),
        5 => src.digest_of(key, DELETED),
        6 => src.digest_of(key, RETIRED),
        7 => src.digest_of(key, AUDIT),
        8 => src.digest_of(key, TOKENS),
        _ => Err(Error::corrupted("unknown table")),
    }
}

/// Every table's digest, recomputed from the rows (one pass over the whole file).
pub(crate) fn compute_all(src: &impl Source, key: &Key) -> Result<Digests> {
    let mut d = Digests::default();
    for (i, slot) in d.0.iter_mut().enumerate() {
        *slot = table_digest(src, key, i)?;
    }
    Ok(d)
}

/// Recomputes the digests of the tables numbered in `which` and compares each with `expected`;
/// the error names the first table whose rows do not match.
pub(crate) fn verify(
    src: &impl Source,
    key: &Key,
    expected: &Digests,
    which: impl IntoIterator<Item = usize>,
) -> Result<()> {
    for i in which {
        let found = table_digest(src, key, i)?;
        let want = expected
            .0
            .get(i)
            .ok_or_else(|| Error::corrupted("unknown table"))?;
        if !crypto::mac_eq(&found, want) {
            return Err(Error::corrupted(format!(
                "the {} table does not match the vault's state digest (a row altered, removed, \
                 or put back from an older copy of the file)",
                TABLES.get(i).copied().unwrap_or("?")
            )));
        }
    }
    Ok(())
}

/// A write transaction whose writes keep the state digest: every table opened through it folds
/// the old and the new bytes of the rows it changes into [`Txn::delta`].
pub(crate) struct Txn<'k> {
    inner: WriteTransaction,
    key: &'k Key,
    delta: Cell<Digests>,
}

impl<'k> Txn<'k> {
    pub(crate) fn new(inner: WriteTransaction, key: &'k Key) -> Self {
        Txn {
            inner,
            key,
            delta: Cell::new(Digests::default()),
        }
    }

    /// Opens (creating if needed) a table whose writes are folded into the digest.
    pub(crate) fn open_table<K: RedbKey + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<Tracked<'_, 'k, K, V>> {
        Ok(Tracked {
            table: self.inner.open_table(def)?,
            index: index_of(def.name()),
            txn: self,
        })
    }

    /// The transaction itself, for what does not change the set of rows (the audit head's row,
    /// which the digest excludes; rewriting a table with the same rows in key order).
    pub(crate) fn raw(&self) -> &WriteTransaction {
        &self.inner
    }

    /// The change to each table's digest made through this transaction so far.
    pub(crate) fn delta(&self) -> Digests {
        self.delta.get()
    }

    /// Commits this transaction without an fsync (`Durability::None`): it reaches the disk
    /// with the next durable commit and is lost by a crash before it.
    pub(crate) fn non_durable(&mut self) -> Result<()> {
        self.inner.set_durability(redb::Durability::None)?;
        Ok(())
    }

    pub(crate) fn commit(self) -> Result<()> {
        self.inner.commit()?;
        Ok(())
    }

    fn note(&self, index: usize, term: &[u8; 32]) {
        let mut d = self.delta.get();
        if let Some(slot) = d.0.get_mut(index) {
            xor(slot, term);
        }
        self.delta.set(d);
    }
}

/// A table of a [`Txn`]. Reads go through `Deref` (shared access to redb's table, so no write
/// can bypass the digest); writes through the methods below.
pub(crate) struct Tracked<'t, 'k, K: RedbKey + 'static, V: Value + 'static> {
    table: Table<'t, K, V>,
    index: Option<usize>,
    txn: &'t Txn<'k>,
}

impl<'t, K: RedbKey + 'static, V: Value + 'static> Deref for Tracked<'t, '_, K, V> {
    type Target = Table<'t, K, V>;
    fn deref(&self) -> &Table<'t, K, V> {
        &self.table
    }
}

impl<K: RedbKey + 'static, V: Value + 'static> Tracked<'_, '_, K, V> {
    /// Folds one row's term into the transaction's difference.
    fn fold(index: Option<usize>, txn: &Txn<'_>, k: &[u8], v: &[u8]) {
        if let Some(index) = index {
            if index == AUDIT_INDEX && k == AUDIT_HEAD_KEY_BYTES {
                return;
            }
            txn.note(index, &term(txn.key, index, k, v));
        }
    }

    /// Inserts or replaces a row; `true` when it replaced one.
    pub(crate) fn insert<'a, 'b>(
        &mut self,
        key: impl Borrow<K::SelfType<'a>>,
        value: impl Borrow<V::SelfType<'b>>,
    ) -> Result<bool> {
        let (key, value) = (key.borrow(), value.borrow());
        let (index, txn) = (self.index, self.txn);
        let kb = K::as_bytes(key);
        let replaced = match self.table.insert(key, value)? {
            Some(old) => {
                Self::fold(index, txn, kb.as_ref(), V::as_bytes(&old.value()).as_ref());
                true
            }
            None => false,
        };
        Self::fold(index, txn, kb.as_ref(), V::as_bytes(value).as_ref());
        Ok(replaced)
    }

    /// Removes a row; `true` when there was one.
    pub(crate) fn remove<'a>(&mut self, key: impl Borrow<K::SelfType<'a>>) -> Result<bool> {
        let key = key.borrow();
        let (index, txn) = (self.index, self.txn);
        let kb = K::as_bytes(key);
        match self.table.remove(key)? {
            Some(old) => {
                Self::fold(index, txn, kb.as_ref(), V::as_bytes(&old.value()).as_ref());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Removes every row in `range`.
    pub(crate) fn remove_range<'a, KR>(&mut self, range: impl RangeBounds<KR> + 'a) -> Result<()>
    where
        KR: Borrow<K::SelfType<'a>> + 'a,
    {
        let (index, txn) = (self.index, self.txn);
        self.table.retain_in(range, |k, v| {
            Self::fold(
                index,
                txn,
                K::as_bytes(&k).as_ref(),
                V::as_bytes(&v).as_ref(),
            );
            false
        })?;
        Ok(())
    }
}
