//! Secrets and their versions: set, get, properties, listings, property updates.

use redb::ReadableTable;
use secrecy::SecretSlice;
use zeroize::Zeroizing;

use super::{ReadCx, Vault, WriteCx};
use crate::access::Operation;
use crate::clock::Timestamp;
use crate::crypto;
use crate::digest::{Tracked, Txn};
use crate::encoding::{SecretRecord, StoredProps, TableId, VersionRecord, seq_key, tag};
use crate::error::{Error, Result};
use crate::secret::{
    Expect, GetOptions, Page, PropertiesUpdate, Secret, SecretProperties, SetOptions, VersionId,
    check_content_type, check_tags, check_window, validate_name,
};
use crate::storage::{DELETED, Keys, NameHash, SECRETS, VERSION_IDS, VERSIONS};

/// The most items one page of a listing holds.
pub const MAX_PAGE: usize = 1000;

pub(crate) fn props(name: &str, v: &VersionRecord) -> SecretProperties {
    SecretProperties {
        name: name.to_string(),
        version: VersionId(v.id),
        sequence: v.seq,
        enabled: v.props.enabled,
        not_before: v.props.not_before,
        expires_on: v.props.expires_on,
        content_type: v.props.content_type.clone(),
        tags: v.props.tags.clone(),
        created: v.props.created,
        updated: v.props.updated,
    }
}

/// [`props`] taking the version apart instead of copying its properties; returns the value too.
pub(crate) fn into_props(name: String, v: VersionRecord) -> (SecretProperties, Zeroizing<Vec<u8>>) {
    let VersionRecord {
        id,
        seq,
        props: p,
        value,
        ..
    } = v;
    let properties = SecretProperties {
        name,
        version: VersionId(id),
        sequence: seq,
        enabled: p.enabled,
        not_before: p.not_before,
        expires_on: p.expires_on,
        content_type: p.content_type,
        tags: p.tags,
        created: p.created,
        updated: p.updated,
    };
    (properties, value)
}

/// Loads and opens the record of `hash` from a secrets-shaped table (`secrets` or `deleted`).
pub(crate) fn load_secret(
    table: &impl ReadableTable<NameHash, &'static [u8]>,
    which: TableId,
    keys: &Keys,
    vault_id: &[u8; 16],
    hash: &NameHash,
) -> Result<Option<SecretRecord>> {
    match table.get(hash)? {
        None => Ok(None),
        Some(g) => keys
            .open(vault_id, which, hash, tag::SECRET, g.value())
            .map(Some),
    }
}

/// Finds the secret `name` in a secrets-shaped table: the name checked against the rules, its
/// hash, its record; [`Error::NotFound`] when the table has no such row.
pub(crate) fn find_secret(
    table: &impl ReadableTable<NameHash, &'static [u8]>,
    which: TableId,
    keys: &Keys,
    vault_id: &[u8; 16],
    name: &str,
) -> Result<(NameHash, SecretRecord)> {
    validate_name(name)?;
    let hash = keys.name_hash(name);
    let rec = load_secret(table, which, keys, vault_id, &hash)?.ok_or(Error::NotFound)?;
    Ok((hash, rec))
}

pub(crate) fn seal_secret(
    keys: &Keys,
    vault_id: &[u8; 16],
    which: TableId,
    hash: &NameHash,
    rec: &SecretRecord,
) -> Result<Vec<u8>> {
    keys.seal(
        vault_id,
        which,
        hash,
        tag::SECRET,
        rec,
        rec.current.value.len() + 256,
    )
}

pub(crate) fn seal_version(
    keys: &Keys,
    vault_id: &[u8; 16],
    which: TableId,
    hash: &NameHash,
    v: &VersionRecord,
) -> Result<Vec<u8>> {
    keys.seal(
        vault_id,
        which,
        &seq_key(hash, v.seq),
        tag::VERSION,
        v,
        v.value.len() + 256,
    )
}

/// Loads an older version by sequence number from a versions-shaped table.
pub(crate) fn load_version(
    table: &impl ReadableTable<(NameHash, u64), &'static [u8]>,
    which: TableId,
    keys: &Keys,
    vault_id: &[u8; 16],
    hash: &NameHash,
    seq: u64,
) -> Result<Option<VersionRecord>> {
    match table.get((*hash, seq))? {
        None => Ok(None),
        Some(g) => {
            let v: VersionRecord = keys.open(
                vault_id,
                which,
                &seq_key(hash, seq),
                tag::VERSION,
                g.value(),
            )?;
            if v.seq != seq {
                return Err(Error::corrupted("a version record is out of place"));
            }
            Ok(Some(v))
        }
    }
}

/// The version `id` of the secret `rec` (current or older), from any open transaction.
fn find_version(
    ids: &impl ReadableTable<(NameHash, [u8; 16]), u64>,
    versions: &impl ReadableTable<(NameHash, u64), &'static [u8]>,
    keys: &Keys,
    vault_id: &[u8; 16],
    hash: &NameHash,
    rec: &SecretRecord,
    id: &VersionId,
) -> Result<VersionRecord> {
    if rec.current.id == id.0 {
        return Ok(rec.current.clone());
    }
    let seq = ids.get((*hash, id.0))?.ok_or(Error::NotFound)?.value();
    if seq < rec.first_seq || seq >= rec.current.seq {
        return Err(Error::NotFound);
    }
    let v = load_version(versions, TableId::Versions, keys, vault_id, hash, seq)?
        .ok_or(Error::NotFound)?;
    if v.id != id.0 {
        return Err(Error::corrupted("a version index entry is out of place"));
    }
    Ok(v)
}

pub(crate) fn parse_cursor(cursor: Option<&str>) -> Result<Option<NameHash>> {
    cursor
        .map(|c| crypto::unhex::<16>(c).ok_or_else(|| Error::invalid("not a listing cursor")))
        .transpose()
}

pub(crate) fn check_limit(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::invalid("a page holds 1 to 1000 items"));
    }
    Ok(())
}

/// Whether a set's check-and-set condition holds against the secret's current version (`None`:
/// no live secret of that name).
pub(crate) fn check_expect(opts: &SetOptions, current: Option<&[u8; 16]>) -> Result<()> {
    let holds = match (opts.expect, current) {
        (None, _) => true,
        (Some(Expect::Absent), current) => current.is_none(),
        (Some(Expect::Version(want)), Some(id)) => want.0 == *id,
        (Some(Expect::Version(_)), None) => false,
    };
    if holds {
        Ok(())
    } else {
        Err(Error::VersionConflict)
    }
}

impl ReadCx<'_> {
    fn secret(&self, name: &str) -> Result<(NameHash, SecretRecord)> {
        let table = self.txn.open_table(SECRETS)?;
        find_secret(&table, TableId::Secrets, self.keys, self.vault_id, name)
    }

    /// The version `id` (or the current one) of `rec`, with the secret's name; takes the
    /// record apart rather than cloning the current value.
    fn version(
        &self,
        hash: &NameHash,
        rec: SecretRecord,
        id: Option<&VersionId>,
    ) -> Result<(String, VersionRecord)> {
        match id {
            Some(id) if id.0 != rec.current.id => {
                let v = find_version(
                    &self.txn.open_table(VERSION_IDS)?,
                    &self.txn.open_table(VERSIONS)?,
                    self.keys,
                    self.vault_id,
                    hash,
                    &rec,
                    id,
                )?;
                Ok((rec.name, v))
            }
            _ => Ok((rec.name, rec.current)),
        }
    }
}

/// The tables a `set` writes in every case, opened once per transaction by a batch.
pub(crate) struct SetTables<'t, 'k> {
    secrets: Tracked<'t, 'k, NameHash, &'static [u8]>,
    deleted: Tracked<'t, 'k, NameHash, &'static [u8]>,
    ids: Tracked<'t, 'k, (NameHash, [u8; 16]), u64>,
}

impl<'t, 'k> SetTables<'t, 'k> {
    pub(crate) fn open(txn: &'t Txn<'k>) -> Result<Self> {
        Ok(SetTables {
            secrets: txn.open_table(SECRETS)?,
            deleted: txn.open_table(DELETED)?,
            ids: txn.open_table(VERSION_IDS)?,
        })
    }
}

impl WriteCx<'_> {
    /// Checks value and properties against the vault's limits.
    pub(crate) fn check_new_version(
        &self,
        value: &[u8],
        max: usize,
        opts: &SetOptions,
    ) -> Result<()> {
        if value.len() > max {
            return Err(Error::ValueTooLarge {
                len: value.len(),
                max,
            });
        }
        check_content_type(opts.content_type.as_deref())?;
        check_tags(&opts.tags)?;
        check_window(opts.not_before, opts.expires_on)?;
        if opts.max_versions == Some(0) {
            return Err(Error::invalid("max_versions is at least 1"));
        }
        Ok(())
    }

    pub(crate) fn set(
        &mut self,
        name: &str,
        value: &[u8],
        max: usize,
        opts: &SetOptions,
    ) -> Result<SecretProperties> {
        let mut tables = SetTables::open(self.txn)?;
        validate_name(name)?;
        let hash = self.keys.name_hash(name);
        let existing = self.set_check(&tables, &hash, value, max, opts)?;
        let rec = self.set_apply(&mut tables, &hash, existing, name, value, opts)?;
        self.version = Some(rec.current.id);
        self.store_secret(&mut tables, &hash, rec)
    }

    /// The first half of a set, for a valid name and its hash: checks the new version against
    /// the vault's limits and the secret's state (a check-and-set, a name held by a deleted
    /// secret), and returns the record the new version supersedes (`None`: a new secret).
    /// Writes nothing.
    pub(crate) fn set_check(
        &self,
        tables: &SetTables<'_, '_>,
        hash: &NameHash,
        value: &[u8],
        max: usize,
        opts: &SetOptions,
    ) -> Result<Option<SecretRecord>> {
        self.check_new_version(value, max, opts)?;
        let existing = load_secret(
            &*tables.secrets,
            TableId::Secrets,
            self.keys,
            self.vault_id,
            hash,
        )?;
        match &existing {
            Some(rec) => check_expect(opts, Some(&rec.current.id))?,
            None => {
                if tables.deleted.get(hash)?.is_some() {
                    return Err(Error::Conflict { deleted: true });
                }
                check_expect(opts, None)?;
            }
        }
        Ok(existing)
    }

    /// The second half of a set, once [`WriteCx::set_check`] passed: the secret's record with
    /// the new version current. The superseded version moves to `versions` and into the index,
    /// versions beyond the secret's limit are pruned; the record itself is for the caller to
    /// store ([`WriteCx::store_secret`]). Version ids and nonces come from [`WriteCx::draw`].
    pub(crate) fn set_apply(
        &mut self,
        tables: &mut SetTables<'_, '_>,
        hash: &NameHash,
        existing: Option<SecretRecord>,
        name: &str,
        value: &[u8],
        opts: &SetOptions,
    ) -> Result<SecretRecord> {
        let now = self.now;
        let version = VersionRecord {
            id: self.draw()?,
            seq: 0,
            props: StoredProps {
                enabled: !opts.disabled,
                not_before: opts.not_before,
                expires_on: opts.expires_on,
                content_type: opts.content_type.clone(),
                tags: opts.tags.clone(),
                created: now,
                updated: now,
            },
            value: Zeroizing::new(value.to_vec()),
            retired: None,
        };
        let mut rec = match existing {
            Some(mut rec) => {
                // The superseded version moves to `versions` and into the index; the current
                // version is found through the secret's own record.
                let old = std::mem::replace(&mut rec.current, version);
                rec.current.seq = old.seq + 1;
                let nonce = self.draw()?;
                let sealed = self.keys.seal_with_nonce(
                    self.vault_id,
                    TableId::Versions,
                    &seq_key(hash, old.seq),
                    tag::VERSION,
                    &old,
                    old.value.len() + 256,
                    &nonce,
                )?;
                self.txn
                    .open_table(VERSIONS)?
                    .insert((*hash, old.seq), sealed.as_slice())?;
                tables.ids.insert((*hash, old.id), old.seq)?;
                if opts.max_versions.is_some() {
                    rec.max_versions = opts.max_versions;
                }
                rec
            }
            None => {
                let mut current = version;
                current.seq = 1;
                SecretRecord {
                    name: name.to_string(),
                    first_seq: 1,
                    max_versions: opts.max_versions,
                    deleted: None,
                    current,
                }
            }
        };
        self.prune(hash, &mut rec, &mut tables.ids)?;
        Ok(rec)
    }

    /// Seals and stores a secret's record in `secrets`; returns the properties of its current
    /// version.
    pub(crate) fn store_secret(
        &mut self,
        tables: &mut SetTables<'_, '_>,
        hash: &NameHash,
        rec: SecretRecord,
    ) -> Result<SecretProperties> {
        let nonce = self.draw()?;
        let sealed = self.keys.seal_with_nonce(
            self.vault_id,
            TableId::Secrets,
            hash,
            tag::SECRET,
            &rec,
            rec.current.value.len() + 256,
            &nonce,
        )?;
        tables.secrets.insert(*hash, sealed.as_slice())?;
        Ok(into_props(rec.name, rec.current).0)
    }

    fn update(
        &mut self,
        name: &str,
        version: Option<&VersionId>,
        up: &PropertiesUpdate,
    ) -> Result<SecretProperties> {
        validate_name(name)?;
        if let Some(ct) = &up.content_type {
            check_content_type(ct.as_deref())?;
        }
        if let Some(tags) = &up.tags {
            check_tags(tags)?;
        }
        let mut secrets = self.txn.open_table(SECRETS)?;
        let (hash, mut rec) =
            find_secret(&*secrets, TableId::Secrets, self.keys, self.vault_id, name)?;
        let now = self.now;
        let apply = |v: &mut VersionRecord| -> Result<()> {
            let p = &mut v.props;
            if let Some(e) = up.enabled {
                p.enabled = e;
            }
            if let Some(nb) = up.not_before {
                p.not_before = nb;
            }
            if let Some(exp) = up.expires_on {
                p.expires_on = exp;
            }
            if let Some(ct) = &up.content_type {
                p.content_type = ct.clone();
            }
            if let Some(tags) = &up.tags {
                p.tags = tags.clone();
            }
            check_window(p.not_before, p.expires_on)?;
            p.updated = now;
            Ok(())
        };
        let is_current = version.is_none_or(|v| v.0 == rec.current.id);
        let result = if is_current {
            apply(&mut rec.current)?;
            secrets.insert(
                hash,
                seal_secret(self.keys, self.vault_id, TableId::Secrets, &hash, &rec)?.as_slice(),
            )?;
            props(&rec.name, &rec.current)
        } else {
            let id = version.ok_or(Error::NotFound)?;
            let mut v = find_version(
                &*self.txn.open_table(VERSION_IDS)?,
                &*self.txn.open_table(VERSIONS)?,
                self.keys,
                self.vault_id,
                &hash,
                &rec,
                id,
            )?;
            apply(&mut v)?;
            let sealed = seal_version(self.keys, self.vault_id, TableId::Versions, &hash, &v)?;
            self.txn
                .open_table(VERSIONS)?
                .insert((hash, v.seq), sealed.as_slice())?;
            props(&rec.name, &v)
        };
        self.version = Some(result.version.0);
        Ok(result)
    }
}

impl Vault {
    /// Writes `value` as a new version of the secret `name` (creating it if needed) and returns
    /// the new version's properties.
    ///
    /// Fails with [`Error::Conflict`] when the name belongs to a deleted secret,
    /// [`Error::InvalidName`] and [`Error::ValueTooLarge`] for bad input.
    pub fn set(&self, name: &str, value: impl AsRef<[u8]>) -> Result<SecretProperties> {
        self.set_with(name, value, &SetOptions::default())
    }

    /// [`Vault::set`] with properties, check-and-set and a version limit.
    ///
    /// ```
    /// use tresor::{Credential, Error, Expect, Options, SetOptions, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// let v1 = vault.set_with("api-key", "k1", &SetOptions::new().content_type("text/plain").tag("env", "dev"))?;
    /// // Check-and-set: only replace the version we read.
    /// vault.set_with("api-key", "k2", &SetOptions::new().expect(Expect::Version(v1.version)))?;
    /// let stale = vault.set_with("api-key", "k3", &SetOptions::new().expect(Expect::Version(v1.version)));
    /// assert!(matches!(stale, Err(Error::VersionConflict)));
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn set_with(
        &self,
        name: &str,
        value: impl AsRef<[u8]>,
        options: &SetOptions,
    ) -> Result<SecretProperties> {
        let max = self.inner.max_value_len;
        self.write(Operation::SecretSet, Some(name), |cx| {
            cx.set(name, value.as_ref(), max, options)
        })
    }

    /// The current version's value and properties.
    ///
    /// Fails with [`Error::NotFound`] (also for a deleted secret) and [`Error::Disabled`].
    pub fn get(&self, name: &str) -> Result<Secret> {
        self.get_with(name, &GetOptions::default())
    }

    /// A specific version's value and properties.
    pub fn get_version(&self, name: &str, version: &VersionId) -> Result<Secret> {
        self.get_with(
            name,
            &GetOptions {
                version: Some(*version),
                strict: false,
            },
        )
    }

    /// [`Vault::get`] with options: a version, and the strict validity rule.
    pub fn get_with(&self, name: &str, options: &GetOptions) -> Result<Secret> {
        let strict = options.strict || self.inner.strict;
        self.read(Operation::SecretGet, Some(name), |cx| {
            let (hash, rec) = cx.secret(name)?;
            let (name, v) = cx.version(&hash, rec, options.version.as_ref())?;
            if !v.props.enabled {
                return Err(Error::Disabled);
            }
            let id = v.id;
            let (properties, mut value) = into_props(name, v);
            if strict && properties.is_outside_validity(cx.now()) {
                return Err(Error::OutsideValidity);
            }
            let value: SecretSlice<u8> = std::mem::take(&mut *value).into();
            Ok((Secret { properties, value }, Some(id)))
        })
    }

    /// The properties of the current version (or of `version`), without the value. Works for
    /// disabled versions.
    pub fn properties(&self, name: &str, version: Option<&VersionId>) -> Result<SecretProperties> {
        self.read(Operation::SecretGetProperties, Some(name), |cx| {
            let (hash, rec) = cx.secret(name)?;
            let (name, v) = cx.version(&hash, rec, version)?;
            Ok((props(&name, &v), Some(v.id)))
        })
    }

    /// Changes the properties of the current version (or of `version`) without a new value.
    ///
    /// ```
    /// use tresor::{Credential, Error, Options, PropertiesUpdate, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// vault.set("token", "abc")?;
    /// vault.update_properties("token", None, &PropertiesUpdate::new().enabled(false))?;
    /// assert!(matches!(vault.get("token"), Err(Error::Disabled)));
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn update_properties(
        &self,
        name: &str,
        version: Option<&VersionId>,
        update: &PropertiesUpdate,
    ) -> Result<SecretProperties> {
        self.write(Operation::SecretUpdate, Some(name), |cx| {
            cx.update(name, version, update)
        })
    }

    /// One page of live secrets (the current version's properties, no values), in an order fixed
    /// by the keyed name hashes (not alphabetical). `cursor` is the `next` of the previous page.
    pub fn list(&self, cursor: Option<&str>, limit: usize) -> Result<Page<SecretProperties>> {
        check_limit(limit)?;
        let after = parse_cursor(cursor)?;
        self.read(Operation::SecretList, None, |cx| {
            let table = cx.txn.open_table(SECRETS)?;
            let (keys, vault_id) = (cx.keys, cx.vault_id);
            let page = page_of(&table, after, limit, |hash, bytes| {
                let rec: SecretRecord =
                    keys.open(vault_id, TableId::Secrets, hash, tag::SECRET, bytes)?;
                Ok(into_props(rec.name, rec.current).0)
            })?;
            Ok((page, None))
        })
    }

    /// Every live secret (all pages of [`Vault::list`]).
    pub fn list_all(&self) -> Result<Vec<SecretProperties>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list(cursor.as_deref(), MAX_PAGE)?;
            out.extend(page.items);
            match page.next {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Every kept version of a secret, newest first.
    pub fn list_versions(&self, name: &str) -> Result<Vec<SecretProperties>> {
        self.read(Operation::SecretListVersions, Some(name), |cx| {
            let (hash, rec) = cx.secret(name)?;
            let table = cx.txn.open_table(VERSIONS)?;
            let mut out = Vec::with_capacity(
                usize::try_from(rec.current.seq - rec.first_seq + 1).unwrap_or(0),
            );
            out.push(props(&rec.name, &rec.current));
            for row in table
                .range((hash, rec.first_seq)..(hash, rec.current.seq))?
                .rev()
            {
                let (k, bytes) = row?;
                let (_, seq) = k.value();
                let v: VersionRecord = cx.keys.open(
                    cx.vault_id,
                    TableId::Versions,
                    &seq_key(&hash, seq),
                    tag::VERSION,
                    bytes.value(),
                )?;
                out.push(props(&rec.name, &v));
            }
            Ok((out, None))
        })
    }
}

/// One page of a name-hash-keyed table, after `after`, decoding each row with `f`.
///
/// The rows are read first; a large page is then decrypted on up to four threads (decryption
/// dominates a listing, and each record opens on its own).
pub(crate) fn page_of<T: Send>(
    table: &impl ReadableTable<NameHash, &'static [u8]>,
    after: Option<NameHash>,
    limit: usize,
    f: impl Fn(&NameHash, &[u8]) -> Result<T> + Sync,
) -> Result<Page<T>> {
    let mut rows: Vec<(NameHash, Vec<u8>)> = Vec::with_capacity(limit.min(MAX_PAGE));
    let range = match after {
        Some(h) => table.range((std::ops::Bound::Excluded(h), std::ops::Bound::Unbounded))?,
        None => table.range::<NameHash>(..)?,
    };
    let mut more = false;
    for row in range {
        let (k, v) = row?;
        if rows.len() == limit {
            more = true;
            break;
        }
        rows.push((k.value(), v.value().to_vec()));
    }
    let last = rows.last().map(|(h, _)| *h);
    let items = decode_rows(&rows, &f)?;
    Ok(Page {
        items,
        next: if more {
            last.map(|h| crypto::hex(&h))
        } else {
            None
        },
    })
}

/// Applies `f` to every row, in order, on several threads when there are many rows.
fn decode_rows<T: Send>(
    rows: &[(NameHash, Vec<u8>)],
    f: &(impl Fn(&NameHash, &[u8]) -> Result<T> + Sync),
) -> Result<Vec<T>> {
    const PARALLEL_FROM: usize = 256;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    if threads < 2 || rows.len() < PARALLEL_FROM {
        return rows.iter().map(|(h, b)| f(h, b)).collect();
    }
    let chunk = rows.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = rows
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(h, b)| f(h, b))
                        .collect::<Result<Vec<T>>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for part in parts {
            out.extend(
                part.join()
                    .map_err(|_| Error::corrupted("a listing thread failed"))??,
            );
        }
        Ok(out)
    })
}

/// `Timestamp` helper for retention arithmetic.
pub(crate) fn plus_days(t: Timestamp, days: u16) -> Timestamp {
    t.plus(std::time::Duration::from_secs(u64::from(days) * 86_400))
}
