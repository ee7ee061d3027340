//! Change subscription: [`Vault::subscribe`] hands out a [`Subscription`] that receives a
//! [`Change`] for every secret a committed write changed, in commit order.
//!
//! Changes are derived from the audit records of the write, after its commit succeeded: a write
//! that fails or rolls back publishes nothing, and each change is published once, to every
//! subscription that exists at that moment. Queues are bounded ([`SUBSCRIPTION_CAPACITY`]): a
//! subscriber that does not keep up loses the newest changes and is told how many with one
//! [`Event::Lagged`] in their place, so a slow subscriber never grows the vault's memory or
//! slows its writes.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::access::Operation;
use crate::audit::AuditRecord;
use crate::clock::Timestamp;
use crate::encoding::AuditEntry;
use crate::error::{Error, Result};
use crate::secret::VersionId;

use super::{Vault, lock};

/// How many changes a [`Subscription`] holds before it starts losing them (see
/// [`Event::Lagged`]).
pub const SUBSCRIPTION_CAPACITY: usize = 1024;

/// What a committed write did to a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// A new version was written (a set, or one item of a batch).
    SecretSet,
    /// A version's properties changed (enabled, dates, content type, tags).
    PropertiesUpdated,
    /// The secret was soft-deleted.
    Deleted,
    /// A deleted secret was recovered.
    Recovered,
    /// A deleted secret was purged for good (by a caller, or by the vault when it was due).
    Purged,
    /// A secret was restored from a backup blob.
    Restored,
    /// An old version was removed by `max_versions`.
    VersionPruned,
}

impl ChangeKind {
    fn of(op: Operation) -> Option<ChangeKind> {
        Some(match op {
            Operation::SecretSet => ChangeKind::SecretSet,
            Operation::SecretUpdate => ChangeKind::PropertiesUpdated,
            Operation::SecretDelete => ChangeKind::Deleted,
            Operation::SecretRecover => ChangeKind::Recovered,
            Operation::SecretPurge => ChangeKind::Purged,
            Operation::SecretRestore => ChangeKind::Restored,
            Operation::SecretPrune => ChangeKind::VersionPruned,
            _ => return None,
        })
    }

    /// The name (`"SecretSet"`, `"Deleted"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::SecretSet => "SecretSet",
            ChangeKind::PropertiesUpdated => "PropertiesUpdated",
            ChangeKind::Deleted => "Deleted",
            ChangeKind::Recovered => "Recovered",
            ChangeKind::Purged => "Purged",
            ChangeKind::Restored => "Restored",
            ChangeKind::VersionPruned => "VersionPruned",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One committed change to one secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The secret's name.
    pub name: String,
    /// The version involved, where the audit record names one (the new version of a set, the
    /// updated one, the current one of a delete or recovery, the pruned one).
    pub version: Option<VersionId>,
    /// When (the write's time).
    pub at: Timestamp,
    /// The sequence number of the change's audit record.
    pub seq: u64,
    /// The actor that acted (`system` for the vault's own purges and pruning).
    pub actor: String,
}

impl Change {
    /// The change an audit record describes, if it records one: a successful set, properties
    /// update, delete, recovery, purge, restore or pruned version. The audit log is the durable
    /// feed of the same changes a [`Subscription`] delivers in the process: a reader in another
    /// process, or one catching up after a restart, derives them from [`Vault::audit`].
    ///
    /// ```
    /// use tresor::{Change, ChangeKind, Credential, Options, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// vault.set("db-password", "hunter2")?;
    /// let changes: Vec<Change> = vault.audit(0, 100)?.iter().filter_map(Change::from_record).collect();
    /// assert_eq!(changes.len(), 1);
    /// assert_eq!(changes[0].kind, ChangeKind::SecretSet);
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn from_record(r: &AuditRecord) -> Option<Change> {
        if r.error.is_some() {
            return None;
        }
        Some(Change {
            kind: ChangeKind::of(r.operation)?,
            name: r.name.clone()?,
            version: r.version,
            at: r.time,
            seq: r.seq,
            actor: r.actor.clone(),
        })
    }
}

/// What a [`Subscription`] receives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A committed change.
    Change(Change),
    /// The queue was full: this many changes, newer than those received before and older than
    /// those received after, were lost. Read the audit log ([`Vault::audit`]) to catch up.
    Lagged(u64),
}

struct Queue {
    changes: VecDeque<Change>,
    lost: u64,
    closed: bool,
}

pub(crate) struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
}

impl Shared {
    fn push(&self, change: Change) {
        let mut q = lock(&self.queue);
        // Once a change was lost, later ones are counted too until the subscriber has received
        // the gap ([`Event::Lagged`] comes after what is queued), so that what it receives is in
        // commit order.
        if q.changes.len() >= self.capacity || q.lost > 0 {
            q.lost = q.lost.saturating_add(1);
            return;
        }
        q.changes.push_back(change);
        drop(q);
        self.ready.notify_all();
    }

    pub(crate) fn close(&self) {
        lock(&self.queue).closed = true;
        self.ready.notify_all();
    }
}

/// The subscribers of one open vault (weak: a dropped [`Subscription`] unsubscribes).
#[derive(Default)]
pub(crate) struct Subscribers(Mutex<Vec<Weak<Shared>>>);

impl Subscribers {
    fn add(&self, capacity: usize) -> Arc<Shared> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                changes: VecDeque::new(),
                lost: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            capacity,
        });
        let mut list = lock(&self.0);
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&shared));
        shared
    }

    /// Publishes the changes recorded by `records`, committed with sequence numbers ending at
    /// `last_seq`. Called after a successful commit only.
    pub(crate) fn publish(&self, records: &[AuditEntry], last_seq: u64) {
        let mut list = lock(&self.0);
        if list.is_empty() {
            return;
        }
        list.retain(|w| w.strong_count() > 0);
        let first_seq = last_seq
            .saturating_sub(records.len() as u64)
            .saturating_add(1);
        for (i, r) in records.iter().enumerate() {
            if r.outcome.is_some() {
                continue;
            }
            let (Some(kind), Some(name)) = (
                Operation::from_code(r.operation).and_then(ChangeKind::of),
                r.name.as_ref(),
            ) else {
                continue;
            };
            let change = Change {
                kind,
                name: name.clone(),
                version: r.version.map(VersionId),
                at: r.time,
                seq: first_seq.saturating_add(i as u64),
                actor: r.actor.clone(),
            };
            for sub in list.iter().filter_map(Weak::upgrade) {
                sub.push(change.clone());
            }
        }
    }

    /// Tells every subscription that the vault closed.
    pub(crate) fn close(&self) {
        for sub in lock(&self.0).iter().filter_map(Weak::upgrade) {
            sub.close();
        }
    }
}

/// A handle on the changes committed to a vault after it was created: [`Vault::subscribe`].
///
/// Receiving never blocks the vault: each subscription has a bounded queue of
/// [`SUBSCRIPTION_CAPACITY`] changes, and when it is full later changes are counted, not kept,
/// and reported by one [`Event::Lagged`]. Dropping the subscription unsubscribes. Once the last
/// handle of the vault is dropped, [`recv`](Subscription::recv) returns what is queued, then
/// `None`.
///
/// The changes name secrets in clear: they stay in this process, with the subscriber.
pub struct Subscription {
    shared: Arc<Shared>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = lock(&self.shared.queue);
        f.debug_struct("Subscription")
            .field("queued", &q.changes.len())
            .field("lost", &q.lost)
            .field("closed", &q.closed)
            .finish()
    }
}

impl Subscription {
    fn take(q: &mut Queue) -> Option<Event> {
        if let Some(c) = q.changes.pop_front() {
            return Some(Event::Change(c));
        }
        if q.lost > 0 {
            let n = std::mem::take(&mut q.lost);
            return Some(Event::Lagged(n));
        }
        None
    }

    /// The next event, waiting for one; `None` once the vault has closed and everything queued
    /// was received.
    pub fn recv(&self) -> Option<Event> {
        let mut q = lock(&self.shared.queue);
        loop {
            if let Some(e) = Self::take(&mut q) {
                return Some(e);
            }
            if q.closed {
                return None;
            }
            q = self.shared.ready.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&self) -> Option<Event> {
        Self::take(&mut lock(&self.shared.queue))
    }

    /// The next event, waiting at most `timeout`; `None` when none came (or the vault closed:
    /// see [`is_closed`](Subscription::is_closed)).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now().checked_add(timeout);
        let mut q = lock(&self.shared.queue);
        loop {
            if let Some(e) = Self::take(&mut q) {
                return Some(e);
            }
            if q.closed {
                return None;
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => timeout,
            };
            if left.is_zero() {
                return None;
            }
            q = self
                .shared
                .ready
                .wait_timeout(q, left)
                .map(|(q, _)| q)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Whether the vault has closed (nothing more will arrive after what is queued).
    pub fn is_closed(&self) -> bool {
        lock(&self.shared.queue).closed
    }
}

impl Vault {
    /// Subscribes to the changes committed to this vault from now on, by any handle of it in
    /// this process: each new version, properties update, delete, recovery, purge, restore and
    /// pruned version, once, after its commit succeeded. A refused or rolled-back write
    /// publishes nothing. Needs a role that may list secrets or read the audit log (the changes
    /// name secrets).
    ///
    /// ```
    /// use tresor::{ChangeKind, Credential, Event, Options, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// let changes = vault.subscribe()?;
    /// let v1 = vault.set("db-password", "hunter2")?;
    /// vault.delete("db-password")?;
    /// let Some(Event::Change(c)) = changes.try_recv() else { panic!("a change") };
    /// assert_eq!((c.kind, c.name.as_str(), c.version), (ChangeKind::SecretSet, "db-password", Some(v1.version)));
    /// let Some(Event::Change(c)) = changes.try_recv() else { panic!("a change") };
    /// assert_eq!(c.kind, ChangeKind::Deleted);
    /// assert_eq!(changes.try_recv(), None);
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn subscribe(&self) -> Result<Subscription> {
        self.subscribe_with_capacity(SUBSCRIPTION_CAPACITY)
    }

    /// [`Vault::subscribe`] with a queue of `capacity` changes (at least 1) instead of
    /// [`SUBSCRIPTION_CAPACITY`].
    ///
    /// ```
    /// use tresor::{Credential, Event, Options, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// let changes = vault.subscribe_with_capacity(1)?;
    /// vault.set("a", "1")?;
    /// vault.set("b", "2")?;
    /// vault.set("c", "3")?;
    /// assert!(matches!(changes.try_recv(), Some(Event::Change(c)) if c.name == "a"));
    /// assert_eq!(changes.try_recv(), Some(Event::Lagged(2)));
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn subscribe_with_capacity(&self, capacity: usize) -> Result<Subscription> {
        if capacity == 0 {
            return Err(Error::invalid("a subscription holds at least one change"));
        }
        if !(self.role.allows(Operation::SecretList) || self.role.allows(Operation::AuditRead)) {
            let err = Error::Forbidden {
                role: self.role,
                operation: Operation::SecretList,
            };
            self.inner.note(
                self.pending(Operation::SecretList, None, None, Some(&err)),
                true,
            )?;
            return Err(err);
        }
        Ok(Subscription {
            shared: self.inner.subscribers.add(capacity),
        })
    }
}
