//! The one error type of the library.
//!
//! Every failure a caller can act on has its own variant. No variant carries a secret value, a
//! passphrase or key bytes: messages name the cause and, where it helps, a limit or a time.

use crate::access::{Operation, Role};
use crate::clock::Timestamp;
use crate::limits::MAX_VALUE_LIMIT;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything that can go wrong in tresor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The secret (or the named version of it) does not exist, or is deleted.
    #[error("not found")]
    NotFound,
    /// The name is taken: by a live secret, or by a deleted one that can still be recovered.
    #[error("{}", if *.deleted { "conflict: the name belongs to a deleted secret that can still be recovered or purged" } else { "conflict: a secret with this name already exists" })]
    Conflict {
        /// `true` when the name is held by a soft-deleted secret (Azure's `ObjectIsDeletedButRecoverable`).
        deleted: bool,
    },
    /// The version asked for is disabled; its value cannot be read.
    #[error("the secret version is disabled")]
    Disabled,
    /// The strict validity rule is on and the version is outside its `not_before`..`expires_on` window.
    #[error("the secret version is outside its validity window")]
    OutsideValidity,
    /// The key, passphrase or key provider does not open any key slot of this vault.
    #[error("wrong key: no key slot of this vault opens with the credential given")]
    WrongKey,
    /// The caller's role does not allow this operation.
    #[error("forbidden: the {role} role may not {operation}")]
    Forbidden {
        /// The role of the caller.
        role: Role,
        /// The operation that was refused.
        operation: Operation,
    },
    /// Purge protection is on and the secret's retention period has not ended.
    #[error("purge protected: the secret may not be purged before {until}")]
    PurgeProtected {
        /// The earliest time the purge is allowed.
        until: Timestamp,
    },
    /// A check-and-set write named a version that is not the current one.
    #[error("version conflict: the secret's current version is not the one expected")]
    VersionConflict,
    /// The secret name breaks the naming rules (1–127 characters of `0-9a-zA-Z-`).
    #[error("invalid name: {0}")]
    InvalidName(&'static str),
    /// A version id is not 32 hexadecimal characters.
    #[error("invalid version id: expected 32 hexadecimal characters")]
    InvalidVersion,
    /// An argument breaks a rule (too many tags, a content type too long, a retention out of range, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The value is larger than the vault's limit.
    #[error("value too large: {len} bytes, the limit is {max}")]
    ValueTooLarge {
        /// The length of the value given.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The last key slot cannot be removed: the vault would become unopenable.
    #[error("the last key slot cannot be removed")]
    LastSlot,
    /// Another handle (in this process or another) has the vault file open.
    #[error("locked: the vault is open elsewhere (another process or handle)")]
    Locked,
    /// The file is not a tresor vault, or it was damaged or altered.
    #[error("corrupted: {0}")]
    Corrupted(String),
    /// The vault was written by a newer format version than this build reads.
    #[error("unsupported format version {found} (this build reads up to {supported})")]
    UnsupportedFormat {
        /// The format version in the file.
        found: u16,
        /// The newest format version this build reads.
        supported: u16,
    },
    /// The audit chain does not verify: a record was altered, removed, reordered or the tail cut.
    #[error("audit chain broken at record {seq}")]
    AuditBroken {
        /// The first sequence number at which the chain fails.
        seq: u64,
    },
    /// The file is older than a checkpoint taken from it (a rolled-back copy), or holds another chain.
    #[error("rollback detected: {0}")]
    RolledBack(&'static str),
    /// A backup blob is truncated, altered, or belongs to another vault.
    #[error("invalid backup: {0}")]
    InvalidBackup(&'static str),
    /// A checkpoint string could not be parsed.
    #[error("invalid checkpoint string")]
    InvalidCheckpoint,
    /// An earlier commit failed; this handle refuses further writes. Reopen the vault.
    #[error("poisoned: an earlier commit failed; reopen the vault")]
    Poisoned,
    /// A key provider failed (its message is passed through; providers must keep secrets out of it).
    #[error("key provider: {0}")]
    Provider(String),
    /// Rotation needs the credential of every key slot; this one was not given.
    #[error("missing credential for key slot {slot} ({label})")]
    MissingCredential {
        /// The slot's id.
        slot: u32,
        /// The slot's label.
        label: String,
    },
    /// The vault file is behind its rollback witness: an older copy of the file was put in its
    /// place (or the witness belongs to a newer copy). Accept a deliberately restored copy with
    /// [`Options::reset_witness`](crate::Options::reset_witness).
    #[error(
        "rolled back: the vault file's audit log has {file} records, its witness saw {witness}; \
         an older copy of the file replaced it"
    )]
    BehindWitness {
        /// Records in the file's audit log.
        file: u64,
        /// Records the witness saw.
        witness: u64,
    },
    /// The change was committed, but the rollback witness could not be updated (it lags behind
    /// the file, which is safe but weaker; the next commit tries again).
    #[error("the change was committed, but the rollback witness could not be updated: {0}")]
    WitnessNotUpdated(String),
    /// An I/O error from the file system or the storage engine.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The vault's holder (an agent or `tresor serve`, feature `agent`) could not be reached at
    /// its socket, went away mid-request, or answered with something that is not the protocol.
    #[error("agent at {}: {reason}", socket.display())]
    Agent {
        /// The holder's socket.
        socket: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A process of another user connected to the vault's holder and was refused.
    #[error("refused: the vault's holder serves only the user it runs as (peer uid {uid})")]
    PeerRefused {
        /// The peer's user id.
        uid: u32,
    },
}

impl Error {
    /// A short stable code for the error, as recorded in audit records (`"NotFound"`, `"WrongKey"`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound => "NotFound",
            Error::Conflict { deleted: false } => "Conflict",
            Error::Conflict { deleted: true } => "ObjectIsDeletedButRecoverable",
            Error::Disabled => "Disabled",
            Error::OutsideValidity => "OutsideValidity",
            Error::WrongKey => "WrongKey",
            Error::Forbidden { .. } => "Forbidden",
            Error::PurgeProtected { .. } => "PurgeProtected",
            Error::VersionConflict => "VersionConflict",
            Error::InvalidName(_) => "InvalidName",
            Error::InvalidVersion => "InvalidVersion",
            Error::InvalidArgument(_) => "InvalidArgument",
            Error::ValueTooLarge { .. } => "ValueTooLarge",
            Error::LastSlot => "LastSlot",
            Error::Locked => "Locked",
            Error::Corrupted(_) => "Corrupted",
            Error::UnsupportedFormat { .. } => "UnsupportedFormat",
            Error::AuditBroken { .. } => "AuditBroken",
            Error::RolledBack(_) => "RolledBack",
            Error::InvalidBackup(_) => "InvalidBackup",
            Error::InvalidCheckpoint => "InvalidCheckpoint",
            Error::Poisoned => "Poisoned",
            Error::Provider(_) => "Provider",
            Error::MissingCredential { .. } => "MissingCredential",
            Error::BehindWitness { .. } => "BehindWitness",
            Error::WitnessNotUpdated(_) => "WitnessNotUpdated",
            Error::Io(_) => "Io",
            Error::Random => "Random",
            Error::Agent { .. } => "Agent",
            Error::PeerRefused { .. } => "PeerRefused",
        }
    }

    pub(crate) fn corrupted(what: impl Into<String>) -> Self {
        Error::Corrupted(what.into())
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        Error::InvalidArgument(what.into())
    }
}

/// Maps redb's errors: an already-open file is [`Error::Locked`], corruption is
/// [`Error::Corrupted`], I/O stays I/O.
impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::DatabaseAlreadyOpen => Error::Locked,
            redb::Error::Io(io) => Error::Io(io),
            redb::Error::Corrupted(msg) => Error::Corrupted(msg),
            redb::Error::ValueTooLarge(n) => Error::ValueTooLarge {
                len: n,
                max: MAX_VALUE_LIMIT,
            },
            redb::Error::UpgradeRequired(_) => {
                Error::corrupted("not a vault of a known storage format")
            }
            redb::Error::TableDoesNotExist(t) => Error::Corrupted(format!("table {t} is missing")),
            other => Error::Corrupted(format!("storage: {other}")),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::from(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError,
    redb::SetDurabilityError
);
