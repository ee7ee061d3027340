//! Many writes in one transaction: imports and bulk loads.

use std::collections::HashMap;

use super::Vault;
use super::secrets::{SetTables, props};
use crate::access::Operation;
use crate::crypto::RandomPool;
use crate::encoding::{AuditEntry, SecretRecord};
use crate::error::{Error, Result};
use crate::secret::{SecretProperties, SetOptions, validate_name};
use crate::storage::NameHash;

impl Vault {
    /// Writes many secrets in one transaction and one durable commit: all of them or none.
    /// Each item gets its own `SecretSet` audit record, followed by one `SecretImport` record.
    ///
    /// The iterator is consumed inside the transaction, each item checked as it is taken, so a
    /// caller can count items as they are handed out (for a progress bar, or to name the one
    /// that failed). The first invalid item (bad name, value too large, a name held by a deleted
    /// secret, a failed check-and-set, …) fails the whole batch with its error and the iterator
    /// is not advanced past it. After the last item the rows are written in their key order (the
    /// items are borrowed until then); the returned properties and the audit records follow the
    /// caller's order.
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
            let mut tables = SetTables::open(cx.txn)?;
            // Each item is checked as it is taken, in the caller's order (the first invalid
            // one ends the batch there); the rows are written afterwards in their key order,
            // which touches each leaf of the B-trees once instead of at random.
            let items = items.into_iter();
            // Room for what the iterator says it holds, within reason (a size hint is only a
            // hint).
            let mut taken: Vec<Item<'a>> = Vec::with_capacity(items.size_hint().0.min(1 << 16));
            // The record each secret of the batch supersedes (`None`: a new secret), found
            // through the name hash by the secret's place here.
            let mut existing: Vec<Option<SecretRecord>> = Vec::with_capacity(taken.capacity());
            let mut places: HashMap<NameHash, usize> = HashMap::with_capacity(taken.capacity());
            for (name, value, options) in items {
                validate_name(name)?;
                let hash = cx.keys.name_hash(name);
                let secret = match places.get(&hash) {
                    Some(&secret) => {
                        // A name already in this batch: the secret exists by now, with a
                        // current version this batch made up, which no check-and-set
                        // condition can name.
                        cx.check_new_version(value, max, options)?;
                        if options.expect.is_some() {
                            return Err(Error::VersionConflict);
                        }
                        secret
                    }
                    None => {
                        existing.push(cx.set_check(&tables, &hash, value, max, options)?);
                        places.insert(hash, existing.len() - 1);
                        existing.len() - 1
                    }
                };
                taken.push(Item {
                    name,
                    value,
                    options,
                    hash,
                    secret,
                });
            }
            drop(places);
            // The items in key order; the items of one secret stay in the caller's order.
            let mut order: Vec<(NameHash, usize)> = taken
                .iter()
                .enumerate()
                .map(|(i, it)| (it.hash, i))
                .collect();
            order.sort_unstable();
            // Every id and nonce of the batch from one call to the CSPRNG: no code of the
            // caller runs from here to the commit. An id per item, a nonce per secret record
            // and per superseded version.
            let new = existing.iter().filter(|e| e.is_none()).count();
            cx.pool = Some(RandomPool::new(
                16 * taken.len() + 24 * (existing.len() + taken.len() - new),
            )?);
            let mut out: Vec<Option<SecretProperties>> = vec![None; taken.len()];
            // The records the vault makes while writing an item (its pruned versions), kept
            // apart so that the log lists them with their item, in the caller's order.
            let mut made: Vec<Vec<AuditEntry>> = vec![Vec::new(); taken.len()];
            let earlier_records = std::mem::take(&mut cx.records);
            for (k, &(_, i)) in order.iter().enumerate() {
                let it = &taken[i];
                let rec = existing[it.secret].take();
                let rec =
                    cx.set_apply(&mut tables, &it.hash, rec, it.name, it.value, it.options)?;
                made[i] = std::mem::take(&mut cx.records);
                let last = order.get(k + 1).is_none_or(|next| next.0 != it.hash);
                if last {
                    out[i] = Some(cx.store_secret(&mut tables, &it.hash, rec)?);
                } else {
                    out[i] = Some(props(&rec.name, &rec.current));
                    existing[it.secret] = Some(rec);
                }
            }
            cx.pool = None;
            let out: Vec<SecretProperties> = out
                .into_iter()
                .collect::<Option<_>>()
                .ok_or_else(|| Error::corrupted("a batch item was not written"))?;
            cx.records = earlier_records;
            for (props, made) in out.iter().zip(made) {
                cx.records.extend(made);
                cx.caller_record(&actor, Operation::SecretSet, &props.name, props.version.0);
            }
            cx.version = None;
            Ok(out)
        })
    }
}

/// An item of a batch, as the caller handed it, with its name's hash and the place of its
/// secret among the batch's.
struct Item<'a> {
    name: &'a str,
    value: &'a [u8],
    options: &'a SetOptions,
    hash: NameHash,
    secret: usize,
}
