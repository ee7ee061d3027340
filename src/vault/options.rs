//! How a vault is opened or created ([`Options`]), and its settings as callers see them.

use std::sync::Arc;

use crate::access::Role;
use crate::audit::{AuditLevel, Checkpoint};
use crate::clock::{Clock, SystemClock};
use crate::encoding::Settings;
use crate::limits::DEFAULT_VALUE_LIMIT;
use crate::slot::KdfParams;
use crate::witness::Witness;

/// How to open (or create) a vault.
///
/// ```
/// use tresor::{AuditLevel, ManualClock, Options, Timestamp};
///
/// let clock = ManualClock::new(Timestamp::from_unix(1_700_000_000));
/// let options = Options::new()
///     .clock(clock.clone())
///     .read_audit(AuditLevel::Durable)
///     .actor("billing-service")
///     .retention_days(30);
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) read_audit: AuditLevel,
    pub(crate) max_value_len: usize,
    pub(crate) actor: Option<String>,
    pub(crate) verify_integrity: bool,
    pub(crate) strict_validity: bool,
    pub(crate) expect_checkpoint: Option<Checkpoint>,
    pub(crate) witness: Option<Arc<dyn Witness>>,
    pub(crate) reset_witness: bool,
    pub(crate) retention_days: u16,
    pub(crate) purge_protection: bool,
    pub(crate) max_versions: Option<u32>,
    pub(crate) label: String,
    pub(crate) role: Role,
    pub(crate) kdf: KdfParams,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
            read_audit: AuditLevel::Buffered,
            max_value_len: DEFAULT_VALUE_LIMIT,
            actor: None,
            verify_integrity: false,
            strict_validity: false,
            expect_checkpoint: None,
            witness: None,
            reset_witness: false,
            retention_days: 90,
            purge_protection: false,
            max_versions: None,
            label: "owner".to_string(),
            role: Role::Owner,
            kdf: KdfParams::DEFAULT,
        }
    }
}

impl Options {
    /// The defaults: system clock, buffered read audit, 25 KiB values, 90-day retention.
    pub fn new() -> Self {
        Self::default()
    }

    /// The clock every time rule reads (default: the system clock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How reads are audited (default [`AuditLevel::Buffered`]).
    pub fn read_audit(mut self, level: AuditLevel) -> Self {
        self.read_audit = level;
        self
    }

    /// The largest value accepted, in bytes (default 25 KiB, at most 4 MiB).
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes;
        self
    }

    /// The actor named in audit records (default: the label of the slot that unlocked the vault).
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Check the whole file at open: redb's page checksums, every record's authentication, and
    /// the audit chain. For files that may be hostile; it reads the whole file.
    pub fn verify_integrity(mut self, on: bool) -> Self {
        self.verify_integrity = on;
        self
    }

    /// Refuse values outside their `not_before`..`expires_on` window with
    /// [`Error::OutsideValidity`](crate::Error::OutsideValidity) (Azure's default, and
    /// tresor's, is to report the window and return the value).
    pub fn strict_validity(mut self, on: bool) -> Self {
        self.strict_validity = on;
        self
    }

    /// Fail the open with [`Error::RolledBack`](crate::Error::RolledBack) unless the file
    /// contains this checkpoint's chain.
    pub fn expect_checkpoint(mut self, cp: Checkpoint) -> Self {
        self.expect_checkpoint = Some(cp);
        self
    }

    /// Keep a rollback witness: where the audit chain stands is written to `witness` after every
    /// commit, and an open of a file that is behind it fails with [`Error::BehindWitness`]
    /// (or [`Error::RolledBack`] when the file's chain differs from the witness's). See
    /// [`FileWitness`](crate::FileWitness) and the `witness` module docs for copies.
    ///
    /// [`Error::BehindWitness`]: crate::Error::BehindWitness
    /// [`Error::RolledBack`]: crate::Error::RolledBack
    pub fn witness(mut self, witness: impl Witness + 'static) -> Self {
        self.witness = Some(Arc::new(witness));
        self
    }

    /// With [`Options::witness`]: accept a file that is behind or beside its witness (an older
    /// copy restored on purpose). Only an owner may; the open records `WitnessReset` and the
    /// witness then follows this file.
    pub fn reset_witness(mut self, on: bool) -> Self {
        self.reset_witness = on;
        self
    }

    /// At creation: days a deleted secret is kept before it is purged (7–90, default 90).
    pub fn retention_days(mut self, days: u16) -> Self {
        self.retention_days = days;
        self
    }

    /// At creation: turn purge protection on (it can never be turned off).
    pub fn purge_protection(mut self, on: bool) -> Self {
        self.purge_protection = on;
        self
    }

    /// At creation: keep at most `n` versions of every secret (a secret can set its own).
    pub fn max_versions(mut self, n: u32) -> Self {
        self.max_versions = Some(n);
        self
    }

    /// At creation: the label of the first key slot (default `"owner"`).
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// At creation: the Argon2id parameters of a first passphrase slot (default
    /// [`KdfParams::DEFAULT`]).
    pub fn kdf(mut self, kdf: KdfParams) -> Self {
        self.kdf = kdf;
        self
    }
}

/// The vault's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VaultSettings {
    /// Days a deleted secret is kept (7–90), fixed at creation.
    pub retention_days: u16,
    /// Whether purge protection is on (once on, it stays on).
    pub purge_protection: bool,
    /// The vault-wide version limit, if any.
    pub max_versions: Option<u32>,
}

impl From<&Settings> for VaultSettings {
    fn from(s: &Settings) -> Self {
        VaultSettings {
            retention_days: s.retention_days,
            purge_protection: s.purge_protection,
            max_versions: s.max_versions,
        }
    }
}
