//! Bearer tokens: random strings that stand for an identity (a label and a [`Role`]) for callers
//! that hold no key slot, such as the HTTP clients of `tresor serve`.
//!
//! A token is `tresor_` followed by 64 lowercase hexadecimal characters (256 random bits from the
//! OS). It is shown once, when it is created. The vault keeps only its **lookup hash** as the
//! redb key of the `tokens` table, and the token's label, role and creation time sealed like
//! every other record. The lookup hash is `BLAKE3-derive_key("tresor 2026 bearer token lookup
//! v1", vault id || token)`: it does not depend on the master key, so tokens survive a master key
//! rotation, and it cannot be inverted (the token has 256 bits of entropy). A presented token is
//! found by hashing it and looking the hash up: no comparison ever runs over the token's bytes.
//!
//! Files written before this table existed open as usual: a missing `tokens` table reads as
//! empty, and the first token created creates it.

use std::fmt;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, TableError, WriteTransaction};
use zeroize::Zeroizing;

use super::Vault;
use crate::access::Operation;
use crate::access::Role;
use crate::clock::Timestamp;
use crate::crypto;
use crate::encoding::{TableId, TokenRecord, tag};
use crate::error::{Error, Result};
use crate::storage::{Keys, TOKENS};

/// The first characters of every token.
pub const TOKEN_PREFIX: &str = "tresor_";

/// The longest token label.
pub const MAX_TOKEN_LABEL_LEN: usize = 64;

/// The redb key of a token.
fn lookup_hash(vault_id: &[u8; 16], token: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("tresor 2026 bearer token lookup v1");
    h.update(vault_id);
    h.update(token.as_bytes());
    *h.finalize().as_bytes()
}

/// A token's public id: the first 8 bytes of its lookup hash, in hex.
fn token_id(hash: &[u8; 32]) -> String {
    crypto::hex(&hash[..8])
}

fn check_label(label: &str) -> Result<()> {
    if label.is_empty() || label.len() > MAX_TOKEN_LABEL_LEN {
        return Err(Error::invalid("a token label has 1 to 64 characters"));
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(Error::invalid(
            "a token label may hold only 0-9, a-z, A-Z, '-', '_' and '.'",
        ));
    }
    Ok(())
}

/// What the vault knows about a token (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenInfo {
    /// A short public id (16 hexadecimal characters), for [`Vault::revoke_token`].
    pub id: String,
    /// The label given at creation; unique in the vault.
    pub label: String,
    /// What the token's holder may do.
    pub role: Role,
    /// When it was created.
    pub created: Timestamp,
}

impl TokenInfo {
    /// The actor that audit records of this token's requests name: `token:<label>`.
    pub fn actor(&self) -> String {
        format!("token:{}", self.label)
    }
}

/// A token just created: the token itself (shown once, never stored) and its record.
#[non_exhaustive]
pub struct NewToken {
    token: Zeroizing<String>,
    /// The token's record.
    pub info: TokenInfo,
}

impl NewToken {
    #[cfg(all(unix, feature = "agent"))]
    pub(crate) fn from_parts(token: Zeroizing<String>, info: TokenInfo) -> Self {
        NewToken { token, info }
    }

    /// The token: `tresor_` and 64 hexadecimal characters. Hand it to its holder now; the vault
    /// cannot show it again.
    pub fn expose(&self) -> &str {
        &self.token
    }
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("token", &"[redacted]")
            .field("info", &self.info)
            .finish()
    }
}

fn open_record(
    keys: &Keys,
    vault_id: &[u8; 16],
    hash: &[u8; 32],
    sealed: &[u8],
) -> Result<TokenInfo> {
    let rec: TokenRecord = keys.open(vault_id, TableId::Tokens, hash, tag::TOKEN, sealed)?;
    Ok(TokenInfo {
        id: token_id(hash),
        label: rec.label,
        role: Role::from_code(rec.role)
            .ok_or_else(|| Error::corrupted(crate::slot::UNKNOWN_ROLE))?,
        created: rec.created,
    })
}

/// The `tokens` table of a read transaction; `None` for a file written before it existed.
fn read_table(
    txn: &ReadTransaction,
) -> Result<Option<redb::ReadOnlyTable<[u8; 32], &'static [u8]>>> {
    match txn.open_table(TOKENS) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Every token record of `table`.
fn all(
    table: &impl ReadableTable<[u8; 32], &'static [u8]>,
    keys: &Keys,
    vault_id: &[u8; 16],
) -> Result<Vec<TokenInfo>> {
    let mut out = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        out.push(open_record(keys, vault_id, &k.value(), v.value())?);
    }
    Ok(out)
}

/// Re-seals every token record under `new` (master key rotation). Lookup hashes do not change.
pub(crate) fn reseal(
    txn: &WriteTransaction,
    old: &Keys,
    new: &Keys,
    vault_id: &[u8; 16],
) -> Result<()> {
    let mut table = txn.open_table(TOKENS)?;
    let mut rows = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        rows.push((k.value(), v.value().to_vec()));
    }
    for (hash, sealed) in rows {
        let rec: TokenRecord = old.open(vault_id, TableId::Tokens, &hash, tag::TOKEN, &sealed)?;
        let resealed = new.seal(vault_id, TableId::Tokens, &hash, tag::TOKEN, &rec, 64)?;
        table.insert(hash, resealed.as_slice())?;
    }
    Ok(())
}

/// Copies the `tokens` table, if the source has one (whole-vault copies).
pub(crate) fn copy(from: &ReadTransaction, to: &WriteTransaction) -> Result<()> {
    let Some(src) = read_table(from)? else {
        return Ok(());
    };
    crate::storage::copy_rows(&src, &mut to.open_table(TOKENS)?)
}

/// Opens every token record (full checks); returns how many there are.
pub(crate) fn verify(txn: &ReadTransaction, keys: &Keys, vault_id: &[u8; 16]) -> Result<u64> {
    match read_table(txn)? {
        None => Ok(0),
        Some(table) => Ok(all(&table, keys, vault_id)?.len() as u64),
    }
}

/// `tresor_` and the hex of 32 random bytes, in a buffer that is wiped when dropped.
fn new_token() -> Result<Zeroizing<String>> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let raw: Zeroizing<[u8; 32]> = Zeroizing::new(crypto::random()?);
    let mut token = Zeroizing::new(String::with_capacity(TOKEN_PREFIX.len() + 64));
    token.push_str(TOKEN_PREFIX);
    for b in raw.iter() {
        token.push(char::from(HEX[usize::from(b >> 4)]));
        token.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    Ok(token)
}

impl Vault {
    /// Creates a bearer token for an identity named `label` with `role` (owner only). The token
    /// is returned once; the vault stores only its lookup hash. Labels are unique: 1–64
    /// characters of `0-9a-zA-Z-_.`.
    ///
    /// ```
    /// use tresor::{Credential, Options, Role, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// let new = vault.create_token("billing-app", Role::Reader)?;
    /// assert!(new.expose().starts_with("tresor_"));
    /// let who = vault.token_identity(new.expose())?.expect("a known token");
    /// assert_eq!((who.label.as_str(), who.role), ("billing-app", Role::Reader));
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn create_token(&self, label: &str, role: Role) -> Result<NewToken> {
        check_label(label)?;
        self.write(Operation::TokenCreate, Some(label), |cx| {
            let mut table = cx.txn.open_table(TOKENS)?;
            if all(&*table, cx.keys, cx.vault_id)?
                .iter()
                .any(|t| t.label == label)
            {
                return Err(Error::invalid(format!(
                    "a token labelled {label} exists already"
                )));
            }
            let token = new_token()?;
            let hash = lookup_hash(cx.vault_id, &token);
            let rec = TokenRecord {
                label: label.to_string(),
                role: role.code(),
                created: cx.now,
            };
            let sealed = cx
                .keys
                .seal(cx.vault_id, TableId::Tokens, &hash, tag::TOKEN, &rec, 64)?;
            table.insert(hash, sealed.as_slice())?;
            Ok(NewToken {
                token,
                info: TokenInfo {
                    id: token_id(&hash),
                    label: rec.label,
                    role,
                    created: rec.created,
                },
            })
        })
    }

    /// The identity a presented token stands for, or `None` when the vault does not know it
    /// (never created, revoked, or not a token at all).
    ///
    /// The token is found by its lookup hash, so no comparison runs over the token's bytes. An
    /// unknown token is audited as a refused `TokenAuthenticate` (always, whatever the read audit
    /// level; the token is not recorded). A known one adds no record of its own: the operation
    /// the caller then performs through [`Vault::as_identity`] is recorded with
    /// [`TokenInfo::actor`] as its actor.
    ///
    /// ```
    /// use tresor::{Credential, Options, Role, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// let new = vault.create_token("ci", Role::Writer)?;
    /// let who = vault.token_identity(new.expose())?.expect("a known token");
    /// let handle = vault.as_identity(who.actor(), who.role)?;
    /// handle.set("deploy-key", "abc")?;
    /// assert!(vault.token_identity("tresor_not-a-token")?.is_none());
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn token_identity(&self, token: &str) -> Result<Option<TokenInfo>> {
        self.authorize(Operation::TokenAuthenticate, None)?;
        let found = {
            let store = self.inner.store();
            let txn = store.db.begin_read()?;
            let hash = lookup_hash(&self.inner.vault_id, token);
            match read_table(&txn)? {
                None => None,
                Some(table) => match table.get(hash)? {
                    None => None,
                    Some(sealed) => Some(open_record(
                        &store.keys,
                        &self.inner.vault_id,
                        &hash,
                        sealed.value(),
                    )?),
                },
            }
        };
        if found.is_none() {
            self.inner.note(
                self.pending(
                    Operation::TokenAuthenticate,
                    None,
                    None,
                    Some(&Error::WrongKey),
                ),
                true,
            )?;
        }
        Ok(found)
    }

    /// A handle on the same open vault acting as the token `info` stands for (as
    /// [`Vault::token_identity`] found it): actor [`TokenInfo::actor`], the token's role, and
    /// audit records that name the token ([`Principal::Token`](crate::Principal::Token)).
    /// The token's role must be one this handle's role includes.
    ///
    /// ```
    /// use tresor::{Credential, Options, Principal, Role, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// let new = vault.create_token("ci", Role::Writer)?;
    /// let who = vault.token_identity(new.expose())?.expect("a known token");
    /// let handle = vault.as_token(&who)?;
    /// handle.set("deploy-key", "abc")?;
    /// let log = vault.audit(0, 100)?;
    /// let last = log.last().expect("a record");
    /// assert_eq!(last.principal, Some(Principal::Token { id: who.id.clone(), role: Role::Writer }));
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn as_token(&self, info: &TokenInfo) -> Result<Vault> {
        let mut handle = self.as_identity(info.actor(), info.role)?;
        handle.principal = Some(crate::Principal::Token {
            id: info.id.clone(),
            role: info.role,
        });
        Ok(handle)
    }

    /// Every token's record (owner only), oldest first. Tokens themselves are never shown.
    ///
    /// ```
    /// use tresor::{Credential, Options, Role, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// vault.create_token("a", Role::Reader)?;
    /// vault.create_token("b", Role::Owner)?;
    /// let labels: Vec<_> = vault.list_tokens()?.into_iter().map(|t| t.label).collect();
    /// assert_eq!(labels, ["a", "b"]);
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.read(Operation::TokenList, None, |cx| {
            let mut out = match read_table(&cx.txn)? {
                None => Vec::new(),
                Some(table) => all(&table, cx.keys, cx.vault_id)?,
            };
            out.sort_by(|a, b| (a.created, &a.label).cmp(&(b.created, &b.label)));
            Ok((out, None))
        })
    }

    /// Revokes the token with this id (as listed by [`Vault::list_tokens`]; owner only): it
    /// stops working at once. Fails with [`Error::NotFound`] when no token has this id.
    ///
    /// ```
    /// use tresor::{Credential, Options, Role, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// let new = vault.create_token("old-job", Role::Reader)?;
    /// vault.revoke_token(&new.info.id)?;
    /// assert!(vault.token_identity(new.expose())?.is_none());
    /// assert!(vault.list_tokens()?.is_empty());
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn revoke_token(&self, id: &str) -> Result<TokenInfo> {
        let prefix = crypto::unhex::<8>(id)
            .ok_or_else(|| Error::invalid("a token id is 16 hexadecimal characters"))?;
        self.write(Operation::TokenRevoke, None, |cx| {
            let mut table = cx.txn.open_table(TOKENS)?;
            let mut lo = [0u8; 32];
            lo[..8].copy_from_slice(&prefix);
            let mut hi = [0xffu8; 32];
            hi[..8].copy_from_slice(&prefix);
            let mut found = Vec::new();
            for row in table.range(lo..=hi)? {
                let (k, v) = row?;
                let hash = k.value();
                found.push((hash, open_record(cx.keys, cx.vault_id, &hash, v.value())?));
            }
            // Two tokens sharing 64 bits of hash would be a 2^-64 accident: refuse rather than
            // guess which one was meant.
            let (hash, info) = match found.len() {
                0 => return Err(Error::NotFound),
                1 => found.remove(0),
                _ => return Err(Error::invalid("this token id is ambiguous")),
            };
            table.remove(hash)?;
            cx.name = Some(info.label.clone());
            Ok(info)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{self, decode};
    use crate::{Credential, Options};

    fn vault() -> Vault {
        Vault::create_in_memory(&Credential::generate_key().unwrap(), Options::new()).unwrap()
    }

    /// Golden bytes: a change here is a change of the file format and needs a new tag.
    #[test]
    fn golden_token_record() {
        let rec = TokenRecord {
            label: "ci".into(),
            role: 3,
            created: Timestamp::from_unix(5),
        };
        let bytes = encoding::encode(tag::TOKEN, &rec, 0);
        assert_eq!(crypto::hex(&bytes), "91026369030a");
        assert_eq!(decode::<TokenRecord>(tag::TOKEN, &bytes).unwrap(), rec);
    }

    #[test]
    fn tokens_are_random_prefixed_and_found_only_by_the_whole_token() {
        let v = vault();
        let a = v.create_token("a", Role::Reader).unwrap();
        let b = v.create_token("b", Role::Writer).unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), TOKEN_PREFIX.len() + 64);
        assert!(
            a.expose()[TOKEN_PREFIX.len()..]
                .bytes()
                .all(|c| c.is_ascii_hexdigit())
        );
        assert_eq!(
            v.token_identity(b.expose()).unwrap().unwrap().role,
            Role::Writer
        );
        let mut cut = a.expose().to_string();
        cut.pop();
        assert!(v.token_identity(&cut).unwrap().is_none());
        assert!(
            v.token_identity(&a.expose().to_uppercase())
                .unwrap()
                .is_none()
        );
        assert!(v.token_identity("").unwrap().is_none());
        assert!(!format!("{a:?}").contains(&a.expose()[TOKEN_PREFIX.len()..]));
    }

    #[test]
    fn labels_are_checked_and_unique() {
        let v = vault();
        v.create_token("app", Role::Reader).unwrap();
        assert!(matches!(
            v.create_token("app", Role::Writer),
            Err(Error::InvalidArgument(_))
        ));
        for bad in ["", "has space", "new\nline", &"x".repeat(65)] {
            assert!(v.create_token(bad, Role::Reader).is_err(), "{bad:?}");
        }
        assert_eq!(v.list_tokens().unwrap().len(), 1);
    }

    #[test]
    fn only_an_owner_manages_tokens_and_refusals_are_audited() {
        let v = vault();
        let writer = v.as_identity("w", Role::Writer).unwrap();
        assert!(matches!(
            writer.create_token("x", Role::Reader),
            Err(Error::Forbidden { .. })
        ));
        assert!(matches!(writer.list_tokens(), Err(Error::Forbidden { .. })));
        let t = v.create_token("x", Role::Reader).unwrap();
        assert!(matches!(
            writer.revoke_token(&t.info.id),
            Err(Error::Forbidden { .. })
        ));
        // A writer handle may still authenticate callers.
        assert!(writer.token_identity(t.expose()).unwrap().is_some());
        assert!(writer.token_identity("tresor_00").unwrap().is_none());
        let log = v.audit(0, 100).unwrap();
        let ops: Vec<_> = log
            .iter()
            .map(|r| (r.operation, r.error.as_deref()))
            .collect();
        assert!(ops.contains(&(Operation::TokenCreate, Some("Forbidden"))));
        assert!(ops.contains(&(Operation::TokenCreate, None)));
        assert!(ops.contains(&(Operation::TokenAuthenticate, Some("WrongKey"))));
        // The unknown token is not written into the log.
        assert!(log.iter().all(|r| r.name.as_deref() != Some("tresor_00")));
        v.verify_audit().unwrap();
    }

    #[test]
    fn revoke_by_id() {
        let v = vault();
        let t = v.create_token("gone", Role::Owner).unwrap();
        assert!(matches!(
            v.revoke_token("zz"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            v.revoke_token("0000000000000000"),
            Err(Error::NotFound)
        ));
        let info = v.revoke_token(&t.info.id).unwrap();
        assert_eq!(info.label, "gone");
        assert!(v.token_identity(t.expose()).unwrap().is_none());
        assert!(matches!(v.revoke_token(&t.info.id), Err(Error::NotFound)));
        let log = v.audit(0, 100).unwrap();
        let revokes: Vec<_> = log
            .iter()
            .filter(|r| r.operation == Operation::TokenRevoke)
            .map(|r| (r.name.as_deref(), r.error.as_deref()))
            .collect();
        assert!(revokes.contains(&(Some("gone"), None)));
        assert_eq!(revokes.last(), Some(&(None, Some("NotFound"))));
    }

    #[test]
    fn tokens_survive_rotation_and_whole_vault_copies() {
        let dir = tempfile::tempdir().unwrap();
        let key = Credential::generate_key().unwrap();
        let path = dir.path().join("v.tresor");
        let v = Vault::create(&path, &key, Options::new()).unwrap();
        // Before any token: the table does not exist and reads as empty.
        assert!(v.list_tokens().unwrap().is_empty());
        assert!(v.token_identity("tresor_x").unwrap().is_none());
        let t = v.create_token("svc", Role::Writer).unwrap();
        v.rotate_master_key(&[], |_| {}).unwrap();
        assert_eq!(v.token_identity(t.expose()).unwrap().unwrap().label, "svc");
        let copy = dir.path().join("copy.tresor");
        v.backup_to(&copy).unwrap();
        v.check_integrity().unwrap();
        drop(v);
        let c = Vault::open(&copy, &key, Options::new().verify_integrity(true)).unwrap();
        assert_eq!(
            c.token_identity(t.expose()).unwrap().unwrap().role,
            Role::Writer
        );
    }
}
