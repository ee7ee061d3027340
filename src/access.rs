//! Who may do what: the [`Role`]s of key slots, tokens and identities, and the [`Operation`]s
//! they are allowed or refused (as named in audit records).
//!
//! This is vocabulary shared by the error type, the key slots, the audit log and the vault; it
//! depends on nothing else in the crate.

use std::fmt;

/// What a key slot's holder may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Everything: secrets, purge, key slots, settings, rotation, audit.
    Owner,
    /// Read and write secrets: set, update, delete, recover, backup and restore, and all a reader may.
    Writer,
    /// Read secrets: get, properties and listings.
    Reader,
    /// Read and verify the audit log, take checkpoints; nothing else.
    Auditor,
}

impl Role {
    pub(crate) fn code(self) -> u8 {
        match self {
            Role::Owner => 1,
            Role::Writer => 2,
            Role::Reader => 3,
            Role::Auditor => 4,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => Role::Owner,
            2 => Role::Writer,
            3 => Role::Reader,
            4 => Role::Auditor,
            _ => return None,
        })
    }

    /// Whether this role may perform `op`.
    pub fn allows(self, op: Operation) -> bool {
        match op.least_role() {
            Role::Owner => self == Role::Owner,
            Role::Writer => matches!(self, Role::Owner | Role::Writer),
            Role::Reader => matches!(self, Role::Owner | Role::Writer | Role::Reader),
            Role::Auditor => matches!(self, Role::Owner | Role::Auditor),
        }
    }

    /// Whether this role has every right of `other` (so may hand `other` out).
    pub fn includes(self, other: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Writer => matches!(other, Role::Writer | Role::Reader),
            Role::Reader => other == Role::Reader,
            Role::Auditor => other == Role::Auditor,
        }
    }

    /// The lowercase name (`"owner"`, `"writer"`, `"reader"`, `"auditor"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Writer => "writer",
            Role::Reader => "reader",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! operations {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $role:ident, $text:literal;)*) => {
        /// An operation, as named in audit records (Azure Key Vault's event names where one exists).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Operation {
            $($(#[$doc])* $name,)*
        }

        impl Operation {
            /// The stable numeric code stored in audit records.
            pub fn code(self) -> u16 {
                match self { $(Operation::$name => $code,)* }
            }

            /// The operation with this code.
            pub fn from_code(c: u16) -> Option<Self> {
                match c { $($code => Some(Operation::$name),)* _ => None }
            }

            /// The name (`"SecretGet"`, …).
            pub fn as_str(self) -> &'static str {
                match self { $(Operation::$name => stringify!($name),)* }
            }

            /// The least role allowed to perform it.
            pub fn least_role(self) -> Role {
                match self { $(Operation::$name => Role::$role,)* }
            }

            /// A verb phrase for messages ("read a secret").
            pub fn describe(self) -> &'static str {
                match self { $(Operation::$name => $text,)* }
            }
        }
    };
}

operations! {
    /// Write a new version.
    SecretSet = 1, Writer, "write secrets";
    /// Read a value.
    SecretGet = 2, Reader, "read secrets";
    /// Change a version's properties.
    SecretUpdate = 3, Writer, "update secrets";
    /// Soft-delete a secret.
    SecretDelete = 4, Writer, "delete secrets";
    /// List secrets.
    SecretList = 5, Reader, "list secrets";
    /// List a secret's versions.
    SecretListVersions = 6, Reader, "list versions";
    /// Purge a deleted secret.
    SecretPurge = 7, Owner, "purge secrets";
    /// Back a secret up.
    SecretBackup = 8, Writer, "back secrets up";
    /// Restore a secret from a backup.
    SecretRestore = 9, Writer, "restore secrets";
    /// Recover a deleted secret.
    SecretRecover = 10, Writer, "recover secrets";
    /// Read a deleted secret's properties.
    SecretGetDeleted = 11, Reader, "read deleted secrets";
    /// List deleted secrets.
    SecretListDeleted = 12, Reader, "list deleted secrets";
    /// Read a version's properties.
    SecretGetProperties = 13, Reader, "read secret properties";
    /// List secrets near or past expiry.
    SecretListExpiring = 14, Reader, "list expiring secrets";
    /// A version removed by `max_versions` (recorded with actor `system`).
    SecretPrune = 15, Writer, "prune versions";
    /// Write many secrets in one transaction (each also gets its own `SecretSet` record).
    SecretImport = 16, Writer, "import secrets";
    /// Create the vault.
    VaultCreate = 32, Owner, "create the vault";
    /// Unlock and open the vault.
    VaultOpen = 33, Auditor, "open the vault";
    /// Add a key slot.
    SlotAdd = 34, Owner, "add key slots";
    /// Remove a key slot.
    SlotRemove = 35, Owner, "remove key slots";
    /// List key slots.
    SlotList = 36, Owner, "list key slots";
    /// Change a slot's passphrase.
    PassphraseChange = 37, Owner, "change passphrases";
    /// Change a vault setting.
    SettingsUpdate = 38, Owner, "change settings";
    /// Rotate the master key.
    KeyRotate = 40, Owner, "rotate the master key";
    /// Compact the file.
    Compact = 41, Owner, "compact the vault";
    /// Copy the whole vault.
    VaultBackup = 42, Owner, "copy the vault";
    /// Purge deleted secrets past their scheduled purge date.
    PurgeExpired = 43, Owner, "purge expired secrets";
    /// Read the audit log.
    AuditRead = 48, Auditor, "read the audit log";
    /// Verify the audit chain.
    AuditVerify = 49, Auditor, "verify the audit log";
    /// Export a checkpoint.
    AuditCheckpoint = 50, Auditor, "take checkpoints";
    /// Create a bearer token (for `tresor serve`).
    TokenCreate = 52, Owner, "create tokens";
    /// List bearer tokens.
    TokenList = 53, Owner, "list tokens";
    /// Revoke a bearer token.
    TokenRevoke = 54, Owner, "revoke tokens";
    /// A bearer token presented that the vault does not know (recorded as a refusal).
    TokenAuthenticate = 55, Reader, "authenticate tokens";
    /// Accept a vault file that is behind or beside its rollback witness (a restored copy).
    WitnessReset = 56, Owner, "accept a restored copy of the vault";
    /// Connect to the process that holds the vault open (feature `agent`); recorded when a
    /// process of another user is refused.
    AgentConnect = 57, Reader, "connect to the vault's holder";
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The credential an audit record says acted: the key slot that unlocked the handle, or the
/// bearer token a request of `tresor serve` presented, with the role the handle acted with.
/// Records the vault writes by itself (actor `system`) name none.
///
/// ```
/// use tresor::{Credential, Options, Principal, Role, Vault};
///
/// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
/// vault.set("db-password", "hunter2")?;
/// let log = vault.audit(0, 100)?;
/// let last = log.last().expect("a record");
/// assert_eq!(last.principal, Some(Principal::Slot { id: 1, role: Role::Owner }));
/// # Ok::<(), tresor::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Principal {
    /// A key slot, by its id.
    Slot {
        /// The slot's id.
        id: u32,
        /// The role the handle acted with.
        role: Role,
    },
    /// A bearer token, by its public id (16 hexadecimal characters, as `list_tokens` shows).
    Token {
        /// The token's public id.
        id: String,
        /// The role the handle acted with.
        role: Role,
    },
}

impl Principal {
    /// The role the handle acted with.
    pub fn role(&self) -> Role {
        match self {
            Principal::Slot { role, .. } | Principal::Token { role, .. } => *role,
        }
    }

    /// The same credential acting with `role`.
    pub(crate) fn with_role(&self, role: Role) -> Principal {
        match self {
            Principal::Slot { id, .. } => Principal::Slot { id: *id, role },
            Principal::Token { id, .. } => Principal::Token {
                id: id.clone(),
                role,
            },
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Slot { id, role } => write!(f, "slot {id} ({role})"),
            Principal::Token { id, role } => write!(f, "token {id} ({role})"),
        }
    }
}
