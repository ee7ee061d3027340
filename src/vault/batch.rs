//! Many writes in one transaction: imports and bulk loads.

use super::Vault;
use super::secrets::SetTables;
use crate::access::Operation;
use crate::encoding::AuditEntry;
use crate::error::{Error, Result};
use crate::secret::{SecretProperties, SetOptions};
use crate::storage::NameHash;

impl Vault {
    /// Writes many secrets in one transaction and one durable commit: all of them or none.
    /// Each item gets its own `SecretSet` audit record, followed by one `SecretImport` record.
    ///
    /// The iterator is consumed inside the transaction, so a caller can count items as they are
    /// written (for a progress bar). The first invalid item (bad name, value too large, a name
    /// held by a deleted secret, a failed check-and-set, …) fails the whole batch with its error.
    ///
    /// ```
    /// use tresor::{Credential, Options, SetOptions, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// let plain = SetOptions::new();
    /// let items = [("db-user", b"app".as_slice(), &plain), ("db-password", b"hunter2", &plain)];
    /// let written = vault.set_many(items)?;
    /// assert_eq!(written.len(), 2);
    /// assert_eq!(vault.get("db-user")?.expose(), b"app");
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn set_many<'a, I>(&self, items: I) -> Result<Vec<SecretProperties>>
    where
        I: IntoIterator<Item = (&'a str, &'a [u8], &'a SetOptions)>,
    {
        let max = self.inner.max_value_len;
        let actor = self.actor.clone();
        self.write(Operation::SecretImport, None, |cx| {
            // Written in the order of the names' hashes, the rows' keys: a B-tree filled in
            // key order touches each leaf once instead of splitting leaves all over the tree.
            // Items of one name stay in the caller's order (a stable sort), and items of
            // different names touch different rows, so the outcome is the caller's order's.
            let mut batch: Vec<(NameHash, usize, &str, &[u8], &SetOptions)> = items
                .into_iter()
                .enumerate()
                .map(|(i, (name, value, options))| {
                    (cx.keys.name_hash(name), i, name, value, options)
                })
                .collect();
            batch.sort_by_key(|item| item.0);
            // Two random values per secret (a version id, a nonce), drawn from the OS 4 KiB
            // at a time (the scope ends with this closure, before the commit).
            let _randomness = crate::crypto::BatchRandomness::start();
            let mut tables = SetTables::open(cx.txn)?;
            let mut done: Vec<Option<(SecretProperties, Vec<AuditEntry>)>> =
                std::iter::repeat_with(|| None).take(batch.len()).collect();
            // The error of the first failing item in the caller's order: after a name's item
            // fails, that name's later items are skipped (the caller's order stops there too).
            let mut failed: Option<(usize, Error)> = None;
            let mut failed_hash: Option<NameHash> = None;
            for (hash, i, name, value, options) in batch {
                if failed_hash == Some(hash) || failed.as_ref().is_some_and(|(f, _)| *f < i) {
                    continue;
                }
                let mark = cx.records.len();
                match cx.set_hashed(&mut tables, &hash, name, value, max, options) {
                    Ok(props) => {
                        let records = cx.records.split_off(mark);
                        if let Some(slot) = done.get_mut(i) {
                            *slot = Some((props, records));
                        }
                    }
                    Err(e) => {
                        failed_hash = Some(hash);
                        if failed.as_ref().is_none_or(|(f, _)| i < *f) {
                            failed = Some((i, e));
                        }
                    }
                }
            }
            if let Some((_, e)) = failed {
                return Err(e);
            }
            // The records in the caller's order: each item's own (versions it pruned), then
            // its `SecretSet`.
            let mut out = Vec::with_capacity(done.len());
            for (props, records) in done.into_iter().flatten() {
                cx.records.extend(records);
                cx.caller_record(&actor, Operation::SecretSet, &props.name, props.version.0);
                out.push(props);
            }
            cx.version = None;
            Ok(out)
        })
    }
}
