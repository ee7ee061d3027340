//! The lifecycle of a secret: soft-delete, recover, purge (by hand and when due), version
//! pruning, expiry watch, and backup blobs of single secrets.

use std::time::Duration;

use redb::{ReadTransaction, ReadableTable};

use super::secrets::{
    check_limit, find_secret, load_version, page_of, parse_cursor, plus_days, props, seal_secret,
    seal_version,
};
use super::{Vault, WriteCx};
use crate::access::Operation;
use crate::clock::Timestamp;
use crate::digest::Tracked;
use crate::encoding::{
    self, BackupPayload, Deletion, SecretRecord, TableId, VersionRecord, seq_key, tag,
};
use crate::error::{Error, Result};
use crate::secret::{DeletedSecret, Page, SecretProperties, validate_name};
use crate::storage::{DELETED, Keys, NameHash, RETIRED, SECRETS, VERSION_IDS, VERSIONS};

/// The first bytes of a secret backup blob.
const BACKUP_MAGIC: &[u8; 8] = b"TRESORBK";

fn deleted_secret(rec: &SecretRecord) -> Result<DeletedSecret> {
    let d = rec
        .deleted
        .ok_or_else(|| Error::corrupted("a deleted secret has no deletion date"))?;
    Ok(DeletedSecret {
        properties: props(&rec.name, &rec.current),
        deleted_on: d.deleted_on,
        scheduled_purge: d.scheduled_purge,
    })
}

/// Removes every trace of the secret `hash`: its deleted record, versions, version ids and
/// retired versions.
fn destroy(cx: &WriteCx<'_>, hash: &NameHash) -> Result<()> {
    cx.txn.open_table(DELETED)?.remove(hash)?;
    let all = (*hash, 0u64)..=(*hash, u64::MAX);
    cx.txn.open_table(VERSIONS)?.remove_range(all.clone())?;
    cx.txn.open_table(RETIRED)?.remove_range(all)?;
    cx.txn
        .open_table(VERSION_IDS)?
        .remove_range((*hash, [0u8; 16])..=(*hash, [0xffu8; 16]))?;
    Ok(())
}

/// Purges every deleted secret and retired version whose date has come (as actor `system`).
pub(crate) fn purge_due(cx: &mut WriteCx<'_>) -> Result<u64> {
    let now = cx.purge_now;
    let mut left: Option<Timestamp> = None;
    let mut due_secrets = Vec::new();
    {
        let deleted = cx.txn.open_table(DELETED)?;
        for row in deleted.iter()? {
            let (k, v) = row?;
            let hash = k.value();
            let rec: SecretRecord =
                cx.keys
                    .open(cx.vault_id, TableId::Deleted, &hash, tag::SECRET, v.value())?;
            let d = deleted_secret(&rec)?;
            if d.scheduled_purge <= now {
                due_secrets.push((hash, rec.name));
            } else {
                left =
                    Some(left.map_or(d.scheduled_purge, |l: Timestamp| l.min(d.scheduled_purge)));
            }
        }
    }
    let mut due_versions = Vec::new();
    {
        let retired = cx.txn.open_table(RETIRED)?;
        for row in retired.iter()? {
            let (k, v) = row?;
            let (hash, seq) = k.value();
            let ver: VersionRecord = cx.keys.open(
                cx.vault_id,
                TableId::Retired,
                &seq_key(&hash, seq),
                tag::VERSION,
                v.value(),
            )?;
            match ver.retired {
                Some(r) if r.scheduled_purge <= now => due_versions.push((hash, seq, ver.id)),
                Some(r) => {
                    left = Some(left.map_or(r.scheduled_purge, |l| l.min(r.scheduled_purge)))
                }
                None => return Err(Error::corrupted("a retired version has no retirement date")),
            }
        }
    }
    let count = (due_secrets.len() + due_versions.len()) as u64;
    cx.rescanned = Some(left);
    for (hash, seq, id) in due_versions {
        cx.txn.open_table(RETIRED)?.remove((hash, seq))?;
        cx.txn.open_table(VERSION_IDS)?.remove((hash, id))?;
        cx.system_record(Operation::SecretPurge, None, Some(id));
    }
    for (hash, name) in due_secrets {
        destroy(cx, &hash)?;
        cx.system_record(Operation::SecretPurge, Some(name), None);
    }
    Ok(count)
}

/// The earliest purge date among deleted secrets and retired versions.
pub(crate) fn earliest_due(
    txn: &ReadTransaction,
    keys: &Keys,
    vault_id: &[u8; 16],
) -> Result<Option<Timestamp>> {
    let mut earliest: Option<Timestamp> = None;
    let mut take = |t: Timestamp| earliest = Some(earliest.map_or(t, |e| e.min(t)));
    for row in txn.open_table(DELETED)?.iter()? {
        let (k, v) = row?;
        let rec: SecretRecord = keys.open(
            vault_id,
            TableId::Deleted,
            &k.value(),
            tag::SECRET,
            v.value(),
        )?;
        take(deleted_secret(&rec)?.scheduled_purge);
    }
    for row in txn.open_table(RETIRED)?.iter()? {
        let (k, v) = row?;
        let (hash, seq) = k.value();
        let ver: VersionRecord = keys.open(
            vault_id,
            TableId::Retired,
            &seq_key(&hash, seq),
            tag::VERSION,
            v.value(),
        )?;
        if let Some(r) = ver.retired {
            take(r.scheduled_purge);
        }
    }
    Ok(earliest)
}

impl WriteCx<'_> {
    /// Removes the oldest versions of `rec` beyond its limit: destroyed, or retired until the
    /// retention period ends when purge protection is on.
    pub(crate) fn prune(
        &mut self,
        hash: &NameHash,
        rec: &mut SecretRecord,
        ids: &mut Tracked<'_, '_, (NameHash, [u8; 16]), u64>,
    ) -> Result<()> {
        let settings = self.settings()?;
        let Some(limit) = rec.max_versions.or(settings.max_versions) else {
            return Ok(());
        };
        let limit = u64::from(limit.max(1));
        while rec.current.seq - rec.first_seq + 1 > limit {
            let seq = rec.first_seq;
            rec.first_seq += 1;
            let Some(mut v) = load_version(
                &*self.txn.open_table(VERSIONS)?,
                TableId::Versions,
                self.keys,
                self.vault_id,
                hash,
                seq,
            )?
            else {
                continue;
            };
            self.txn.open_table(VERSIONS)?.remove((*hash, seq))?;
            if settings.purge_protection || !self.may_destroy {
                // Under purge protection a pruned version waits out the retention period; a
                // handle that may not destroy data (a writer) leaves it due at once, for the
                // next purge by a handle that may.
                let due = if settings.purge_protection {
                    plus_days(self.now, settings.retention_days)
                } else {
                    self.now
                };
                v.retired = Some(Deletion {
                    deleted_on: self.now,
                    scheduled_purge: due,
                });
                let sealed = seal_version(self.keys, self.vault_id, TableId::Retired, hash, &v)?;
                self.txn
                    .open_table(RETIRED)?
                    .insert((*hash, seq), sealed.as_slice())?;
                self.due(due);
            } else {
                ids.remove((*hash, v.id))?;
            }
            self.system_record(Operation::SecretPrune, Some(rec.name.clone()), Some(v.id));
        }
        Ok(())
    }

    fn delete(&mut self, name: &str) -> Result<DeletedSecret> {
        let mut secrets = self.txn.open_table(SECRETS)?;
        let (hash, mut rec) =
            find_secret(&*secrets, TableId::Secrets, self.keys, self.vault_id, name)?;
        let settings = self.settings()?;
        let d = Deletion {
            deleted_on: self.now,
            scheduled_purge: plus_days(self.now, settings.retention_days),
        };
        rec.deleted = Some(d);
        secrets.remove(&hash)?;
        let sealed = seal_secret(self.keys, self.vault_id, TableId::Deleted, &hash, &rec)?;
        self.txn
            .open_table(DELETED)?
            .insert(hash, sealed.as_slice())?;
        self.due(d.scheduled_purge);
        self.version = Some(rec.current.id);
        deleted_secret(&rec)
    }

    fn recover(&mut self, name: &str) -> Result<SecretProperties> {
        let mut deleted = self.txn.open_table(DELETED)?;
        let (hash, mut rec) =
            find_secret(&*deleted, TableId::Deleted, self.keys, self.vault_id, name)?;
        rec.deleted = None;
        deleted.remove(&hash)?;
        let sealed = seal_secret(self.keys, self.vault_id, TableId::Secrets, &hash, &rec)?;
        self.txn
            .open_table(SECRETS)?
            .insert(hash, sealed.as_slice())?;
        self.version = Some(rec.current.id);
        Ok(props(&rec.name, &rec.current))
    }

    fn purge(&mut self, name: &str) -> Result<()> {
        let (hash, rec) = find_secret(
            &*self.txn.open_table(DELETED)?,
            TableId::Deleted,
            self.keys,
            self.vault_id,
            name,
        )?;
        let d = deleted_secret(&rec)?;
        if self.settings()?.purge_protection && self.purge_now < d.scheduled_purge {
            return Err(Error::PurgeProtected {
                until: d.scheduled_purge,
            });
        }
        destroy(self, &hash)
    }

    fn restore(&mut self, vault_id: &[u8; 16], blob: &[u8]) -> Result<SecretProperties> {
        let payload = open_backup(self.keys, vault_id, blob)?;
        let mut rec = payload.record;
        validate_name(&rec.name)
            .map_err(|_| Error::InvalidBackup("the blob names an invalid secret"))?;
        let hash = self.keys.name_hash(&rec.name);
        if self.txn.open_table(SECRETS)?.get(&hash)?.is_some() {
            return Err(Error::Conflict { deleted: false });
        }
        if self.txn.open_table(DELETED)?.get(&hash)?.is_some() {
            return Err(Error::Conflict { deleted: true });
        }
        rec.deleted = None;
        // A restored secret starts clean: no stale rows may remain under its hash.
        destroy(self, &hash)?;
        {
            let mut versions = self.txn.open_table(VERSIONS)?;
            let mut ids = self.txn.open_table(VERSION_IDS)?;
            let mut expected = rec.first_seq;
            for v in &payload.versions {
                if v.seq != expected || v.seq >= rec.current.seq {
                    return Err(Error::InvalidBackup("the blob's versions are out of order"));
                }
                expected += 1;
                let sealed = seal_version(self.keys, self.vault_id, TableId::Versions, &hash, v)?;
                versions.insert((hash, v.seq), sealed.as_slice())?;
                ids.insert((hash, v.id), v.seq)?;
            }
            if expected != rec.current.seq {
                return Err(Error::InvalidBackup("the blob's versions are incomplete"));
            }
        }
        let sealed = seal_secret(self.keys, self.vault_id, TableId::Secrets, &hash, &rec)?;
        self.txn
            .open_table(SECRETS)?
            .insert(hash, sealed.as_slice())?;
        self.version = Some(rec.current.id);
        self.name = Some(rec.name.clone());
        Ok(props(&rec.name, &rec.current))
    }
}

fn backup_aad(vault_id: &[u8; 16]) -> encoding::Aad {
    encoding::aad(vault_id, TableId::Backup, BACKUP_MAGIC)
}

/// `MAGIC (8) || format (u16 LE) || vault id (16) || sealed payload`.
fn seal_backup(keys: &Keys, vault_id: &[u8; 16], payload: &BackupPayload) -> Result<Vec<u8>> {
    let hint = payload.record.current.value.len()
        + payload
            .versions
            .iter()
            .map(|v| v.value.len() + 256)
            .sum::<usize>();
    let plain = encoding::encode(tag::BACKUP, payload, hint + 256);
    let sealed = keys.backup.seal(&backup_aad(vault_id), &plain)?;
    let mut out = Vec::with_capacity(26 + sealed.len());
    out.extend_from_slice(BACKUP_MAGIC);
    out.extend_from_slice(&encoding::RECORD_FORMAT.to_le_bytes());
    out.extend_from_slice(vault_id);
    out.extend_from_slice(&sealed);
    Ok(out)
}

impl Vault {
    /// Seals arbitrary bytes as the payload of a backup blob of this vault, so that a fuzz
    /// target can reach the checks [`Vault::restore_secret`] makes after authentication. Used
    /// only by `crate::fuzzing`.
    pub(crate) fn seal_backup_plaintext(&self, plain: &[u8]) -> Result<Vec<u8>> {
        let store = self.inner.store();
        let vault_id = self.inner.vault_id;
        let sealed = store.keys.backup.seal(&backup_aad(&vault_id), plain)?;
        let mut out = Vec::with_capacity(26 + sealed.len());
        out.extend_from_slice(BACKUP_MAGIC);
        out.extend_from_slice(&encoding::RECORD_FORMAT.to_le_bytes());
        out.extend_from_slice(&vault_id);
        out.extend_from_slice(&sealed);
        Ok(out)
    }
}

fn open_backup(keys: &Keys, vault_id: &[u8; 16], blob: &[u8]) -> Result<BackupPayload> {
    if blob.len() < 8 || &blob[..8] != BACKUP_MAGIC {
        return Err(Error::InvalidBackup("not a tresor backup"));
    }
    if blob.len() < 26 + crate::crypto::SEAL_OVERHEAD {
        return Err(Error::InvalidBackup("truncated"));
    }
    let format = u16::from_le_bytes([blob[8], blob[9]]);
    if format > encoding::RECORD_FORMAT {
        return Err(Error::UnsupportedFormat {
            found: format,
            supported: encoding::RECORD_FORMAT,
        });
    }
    if format == 0 {
        return Err(Error::InvalidBackup("format version 0"));
    }
    if &blob[10..26] != vault_id {
        return Err(Error::InvalidBackup("made by another vault"));
    }
    let plain =
        keys.backup
            .open(&backup_aad(vault_id), &blob[26..])
            .ok_or(Error::InvalidBackup(
                "truncated, altered, or made before a master key rotation",
            ))?;
    encoding::decode(tag::BACKUP, &plain)
        .map_err(|_| Error::InvalidBackup("the payload does not decode"))
}

impl Vault {
    /// Soft-deletes a secret with all its versions. It reads as not found until recovered, and
    /// is purged at `scheduled_purge` (now + the retention period).
    ///
    /// ```
    /// use tresor::{Credential, Error, Options, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// vault.set("old-token", "abc")?;
    /// let deleted = vault.delete("old-token")?;
    /// assert!(matches!(vault.get("old-token"), Err(Error::NotFound)));
    /// assert!(matches!(vault.set("old-token", "x"), Err(Error::Conflict { deleted: true })));
    /// vault.recover("old-token")?;
    /// assert_eq!(vault.get("old-token")?.expose(), b"abc");
    /// # let _ = deleted;
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn delete(&self, name: &str) -> Result<DeletedSecret> {
        self.write(Operation::SecretDelete, Some(name), |cx| cx.delete(name))
    }

    /// Brings a deleted secret back whole: every version and property.
    pub fn recover(&self, name: &str) -> Result<SecretProperties> {
        self.write(Operation::SecretRecover, Some(name), |cx| cx.recover(name))
    }

    /// Removes a deleted secret for good. Under purge protection, fails with
    /// [`Error::PurgeProtected`] before its scheduled purge date.
    pub fn purge(&self, name: &str) -> Result<()> {
        self.write(Operation::SecretPurge, Some(name), |cx| cx.purge(name))
    }

    /// Purges every deleted secret and pruned version whose date has come; returns how many.
    /// (The vault also does this by itself on open and with writes.)
    pub fn purge_expired(&self) -> Result<u64> {
        self.write(Operation::PurgeExpired, None, |cx| {
            // Every write first purges what is due, so by now that pass may have done the work:
            // its purges count too.
            let already = cx
                .records
                .iter()
                .filter(|r| r.operation == Operation::SecretPurge.code())
                .count() as u64;
            Ok(already + purge_due(cx)?)
        })
    }

    /// A deleted secret's properties and dates.
    pub fn deleted_properties(&self, name: &str) -> Result<DeletedSecret> {
        self.read(Operation::SecretGetDeleted, Some(name), |cx| {
            let table = cx.txn.open_table(DELETED)?;
            let (_, rec) = find_secret(&table, TableId::Deleted, cx.keys, cx.vault_id, name)?;
            Ok((deleted_secret(&rec)?, Some(rec.current.id)))
        })
    }

    /// One page of deleted secrets.
    pub fn list_deleted(&self, cursor: Option<&str>, limit: usize) -> Result<Page<DeletedSecret>> {
        check_limit(limit)?;
        let after = parse_cursor(cursor)?;
        self.read(Operation::SecretListDeleted, None, |cx| {
            let table = cx.txn.open_table(DELETED)?;
            let (keys, vault_id) = (cx.keys, cx.vault_id);
            let page = page_of(&table, after, limit, |hash, bytes| {
                let rec: SecretRecord =
                    keys.open(vault_id, TableId::Deleted, hash, tag::SECRET, bytes)?;
                deleted_secret(&rec)
            })?;
            Ok((page, None))
        })
    }

    /// Live secrets whose current version expires within `within` from now, and those already
    /// expired, soonest first. (Azure raises `SecretNearExpiry` 30 days ahead.)
    pub fn expiring(&self, within: Duration) -> Result<Vec<SecretProperties>> {
        self.read(Operation::SecretListExpiring, None, |cx| {
            let horizon = cx.now().plus(within);
            let table = cx.txn.open_table(SECRETS)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                let rec: SecretRecord = cx.keys.open(
                    cx.vault_id,
                    TableId::Secrets,
                    &k.value(),
                    tag::SECRET,
                    v.value(),
                )?;
                if rec.current.props.expires_on.is_some_and(|e| e <= horizon) {
                    out.push(props(&rec.name, &rec.current));
                }
            }
            out.sort_by_key(|p| p.expires_on);
            Ok((out, None))
        })
    }

    /// A self-contained, encrypted and authenticated blob of a live secret with all its versions
    /// and properties, restorable into this vault or a copy of it.
    pub fn backup_secret(&self, name: &str) -> Result<Vec<u8>> {
        self.read(Operation::SecretBackup, Some(name), |cx| {
            let (hash, rec) = find_secret(
                &cx.txn.open_table(SECRETS)?,
                TableId::Secrets,
                cx.keys,
                cx.vault_id,
                name,
            )?;
            let table = cx.txn.open_table(VERSIONS)?;
            let mut versions = Vec::new();
            for row in table.range((hash, rec.first_seq)..(hash, rec.current.seq))? {
                let (k, v) = row?;
                let (_, seq) = k.value();
                versions.push(cx.keys.open(
                    cx.vault_id,
                    TableId::Versions,
                    &seq_key(&hash, seq),
                    tag::VERSION,
                    v.value(),
                )?);
            }
            let version = rec.current.id;
            let blob = seal_backup(
                cx.keys,
                cx.vault_id,
                &BackupPayload {
                    record: rec,
                    versions,
                },
            )?;
            Ok((blob, Some(version)))
        })
    }

    /// Restores a secret from a [`Vault::backup_secret`] blob. Fails with [`Error::Conflict`]
    /// when the name exists (live or deleted) and [`Error::InvalidBackup`] for a truncated,
    /// altered or foreign blob.
    ///
    /// ```
    /// use tresor::{Credential, Options, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// vault.set("cert", "v1")?;
    /// let blob = vault.backup_secret("cert")?;
    /// vault.delete("cert")?;
    /// vault.purge("cert")?;
    /// vault.restore_secret(&blob)?;
    /// assert_eq!(vault.get("cert")?.expose(), b"v1");
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn restore_secret(&self, blob: &[u8]) -> Result<SecretProperties> {
        let vault_id = self.inner.vault_id;
        self.write(Operation::SecretRestore, None, |cx| {
            cx.restore(&vault_id, blob)
        })
    }
}
