//! The [`Vault`]: the handle every operation goes through, and its identity.
//!
//! Every write runs in one redb write transaction committed with `Durability::Immediate`; its
//! audit record (and any buffered read records) are appended in the same transaction, so a
//! mutation and its record commit together or not at all. A failed commit poisons the handle:
//! later writes fail with [`Error::Poisoned`] until the vault is reopened.
//!
//! - `options`: how a vault is opened or created, and its settings;
//! - `open`: creating, unlocking and opening files;
//! - `txn`: the transaction machinery (role check, audit records, commit);
//! - `secrets`, `lifecycle`, `batch`, `tokens`, `admin`: the operations;
//! - `events`: change subscriptions, fed by each successful commit.

mod admin;
mod batch;
mod events;
pub use admin::{Maintenance, Progress};
pub use events::{Change, ChangeKind, Event, SUBSCRIPTION_CAPACITY, Subscription};
mod lifecycle;
mod open;
mod options;
mod secrets;
mod tokens;
mod txn;
pub use options::{Options, VaultSettings};
pub use tokens::{MAX_TOKEN_LABEL_LEN, NewToken, TOKEN_PREFIX, TokenInfo};
use txn::{
    Inner, ReadCx, WriteCx, append_audit, auth_mac, entries_of, finish, guard_panics, lock,
    read_head, read_settings, take_pending,
};

use std::fmt;
use std::sync::Arc;

use crate::access::{Principal, Role};
use crate::crypto;
use crate::error::{Error, Result};

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
    /// The credential behind this handle, named by its audit records.
    principal: Option<Principal>,
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

impl Drop for Vault {
    fn drop(&mut self) {
        // The last handle waits for a background commit of read records (which holds the
        // vault open), so that the file is closed once the vault is dropped. Only the last:
        // another handle may be inside a write that the commit waits for.
        if Arc::strong_count(&self.inner) <= 2 {
            self.inner.flusher.wait();
        }
    }
}

impl Vault {
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

    /// Whether the vault's keys (its master key and the subkeys derived from it) are locked in
    /// RAM, so that they are never written to swap. Always `false` without the feature `mlock`;
    /// with it, `true` unless the OS refused (the process's `RLIMIT_MEMLOCK` used up, or no
    /// `mlock` on the platform), in which case the vault works the same with its keys in
    /// ordinary memory. The keys are wiped when the vault closes either way.
    ///
    /// ```
    /// use tresor::{Credential, Options, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// if !vault.keys_locked() {
    ///     eprintln!("note: the vault's keys could be written to swap");
    /// }
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn keys_locked(&self) -> bool {
        self.inner.store().keys.locked()
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
        crate::actor::check(&actor, "an actor name")?;
        Ok(Vault {
            inner: self.inner.clone(),
            actor: actor.into(),
            role,
            principal: self.principal.as_ref().map(|p| p.with_role(role)),
        })
    }

    /// Commits buffered read records now (they are also committed with the next write and when
    /// the last handle is dropped).
    pub fn flush(&self) -> Result<()> {
        self.inner.flush_with(&self.inner.store())
    }

    /// The vault clock's time.
    #[cfg(all(unix, feature = "agent"))]
    pub(crate) fn now(&self) -> crate::clock::Timestamp {
        self.inner.clock.now()
    }

    /// Records a refused `op` by `actor` with the error `err`, committed now (whatever the read
    /// audit level), as every refusal is.
    #[cfg(all(unix, feature = "agent"))]
    pub(crate) fn record_refusal(
        &self,
        actor: &str,
        op: crate::access::Operation,
        err: &Error,
    ) -> Result<()> {
        let view = Vault {
            inner: self.inner.clone(),
            actor: actor.into(),
            role: self.role,
            principal: None,
        };
        self.inner
            .note(view.pending(op, None, None, Some(err)), true)?;
        self.flush()
    }

    /// Flushes buffered audit records and closes this handle (the file closes when the last
    /// clone is dropped).
    pub fn close(self) -> Result<()> {
        self.flush()
    }
}
