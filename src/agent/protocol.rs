//! The wire protocol between a vault's holder and its clients.
//!
//! A message is a frame: a 4-byte big-endian length `n`, then `n` bytes: a 2-byte big-endian
//! protocol version ([`PROTOCOL_VERSION`]) and the postcard encoding of a request (client to
//! holder) or a response (holder to client). The length is checked against [`MAX_MESSAGE`]
//! before anything is allocated for the body. New requests and responses are added at the end of
//! their enums, so that postcard's variant indexes stay stable; a change that breaks them bumps
//! the version, and a holder answers a frame of another version with an error naming both.
//!
//! Values and tokens travel in zeroizing buffers on both sides.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::access::{Operation, Principal, Role};
use crate::audit::AuditRecord;
use crate::clock::Timestamp;
use crate::error::Error;
use crate::limits::{MAX_NAME_LEN, MAX_TAG_LEN, MAX_TAGS, MAX_VALUE_LIMIT};
use crate::secret::{
    DeletedSecret, Expect, GetOptions, PropertiesUpdate, SecretProperties, SetOptions, VersionId,
};
use crate::slot::{KdfParams, SlotInfo, SlotKind};
use crate::vault::{TokenInfo, VaultSettings};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The most properties one listing page carries (the holder caps the limit a client asks for).
pub const MAX_PAGE: usize = 1000;

/// The largest properties record: a name, 15 tags of 512 characters each for key and value (4
/// bytes per character at most), a content type, and the fixed fields.
const MAX_PROPERTIES: usize = MAX_NAME_LEN + MAX_TAGS * 2 * (MAX_TAG_LEN * 4 + 8) + 1024 + 128;

/// The largest frame body either side accepts: the larger of a value at the vault's largest
/// limit (a backup blob of 16 such versions) and a full listing page, plus room for the rest.
/// About 65 MiB; a longer frame is refused before its body is read.
pub const MAX_MESSAGE: usize = {
    let values = 16 * MAX_VALUE_LIMIT;
    let page = MAX_PAGE * MAX_PROPERTIES;
    (if values > page { values } else { page }) + 1024 * 1024
};

/// A request: the actor the client names (its audit records' actor; `None` for the holder's
/// own), and what it asks.
#[derive(Serialize, Deserialize)]
pub(crate) struct RequestFrame {
    pub actor: Option<String>,
    pub request: Request,
}

/// What a client may ask a holder.
#[derive(Serialize, Deserialize)]
pub(crate) enum Request {
    Status,
    Lock,
    Set {
        name: String,
        value: Zeroizing<Vec<u8>>,
        options: WireSetOptions,
    },
    Get {
        name: String,
        version: Option<[u8; 16]>,
        strict: bool,
    },
    Properties {
        name: String,
        version: Option<[u8; 16]>,
    },
    UpdateProperties {
        name: String,
        version: Option<[u8; 16]>,
        update: WireUpdate,
    },
    List {
        cursor: Option<String>,
        limit: u32,
    },
    ListVersions {
        name: String,
    },
    Delete {
        name: String,
    },
    Recover {
        name: String,
    },
    Purge {
        name: String,
    },
    DeletedProperties {
        name: String,
    },
    ListDeleted {
        cursor: Option<String>,
        limit: u32,
    },
    Expiring {
        within_secs: u64,
    },
    BackupSecret {
        name: String,
    },
    RestoreSecret {
        blob: Zeroizing<Vec<u8>>,
    },
    Audit {
        after: u64,
        limit: u32,
    },
    AuditLen,
    VerifyAudit,
    Checkpoint,
    Settings,
    CreateToken {
        label: String,
        role: u8,
    },
    ListTokens,
    RevokeToken {
        id: String,
    },
    Slots,
    SetMany {
        items: Vec<(String, Zeroizing<Vec<u8>>, WireSetOptions)>,
    },
    Flush,
}

/// What a holder answers.
#[derive(Serialize, Deserialize)]
pub(crate) enum Response {
    Error(WireError),
    Unit,
    Status(WireStatus),
    Properties(WireProperties),
    Secret {
        properties: WireProperties,
        value: Zeroizing<Vec<u8>>,
    },
    PropertiesList(Vec<WireProperties>),
    PropertiesPage {
        items: Vec<WireProperties>,
        next: Option<String>,
    },
    Deleted(WireDeleted),
    DeletedPage {
        items: Vec<WireDeleted>,
        next: Option<String>,
    },
    Blob(Zeroizing<Vec<u8>>),
    Audit(Vec<WireAudit>),
    Count(u64),
    Checkpoint(String),
    Settings {
        retention_days: u16,
        purge_protection: bool,
        max_versions: Option<u32>,
    },
    NewToken {
        token: Zeroizing<String>,
        info: WireToken,
    },
    Tokens(Vec<WireToken>),
    Token(WireToken),
    Slots(Vec<WireSlot>),
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WireStatus {
    pub pid: u32,
    pub kind: String,
    pub since: i64,
    pub idle_deadline: Option<i64>,
    pub actor: String,
    pub role: u8,
    pub lockable: bool,
    pub unlocked_slot: Option<u32>,
}

#[derive(Serialize, Deserialize, Default)]
pub(crate) struct WireSetOptions {
    pub content_type: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub disabled: bool,
    pub not_before: Option<i64>,
    pub expires_on: Option<i64>,
    /// 0: none, 1: absent, 2: the version in `expect_version`.
    pub expect: u8,
    pub expect_version: [u8; 16],
    pub max_versions: Option<u32>,
}

impl WireSetOptions {
    pub fn from_options(o: &SetOptions) -> Self {
        let (expect, expect_version) = match o.expect {
            None => (0, [0; 16]),
            Some(Expect::Absent) => (1, [0; 16]),
            Some(Expect::Version(v)) => (2, v.0),
        };
        WireSetOptions {
            content_type: o.content_type.clone(),
            tags: o.tags.clone(),
            disabled: o.disabled,
            not_before: o.not_before.map(Timestamp::unix),
            expires_on: o.expires_on.map(Timestamp::unix),
            expect,
            expect_version,
            max_versions: o.max_versions,
        }
    }

    pub fn into_options(self) -> Result<SetOptions, Error> {
        Ok(SetOptions {
            content_type: self.content_type,
            tags: self.tags,
            disabled: self.disabled,
            not_before: self.not_before.map(Timestamp::from_unix),
            expires_on: self.expires_on.map(Timestamp::from_unix),
            expect: match self.expect {
                0 => None,
                1 => Some(Expect::Absent),
                2 => Some(Expect::Version(VersionId(self.expect_version))),
                _ => return Err(Error::invalid("unknown check-and-set expectation")),
            },
            max_versions: self.max_versions,
        })
    }
}

#[derive(Serialize, Deserialize, Default)]
pub(crate) struct WireUpdate {
    pub enabled: Option<bool>,
    pub not_before: Option<Option<i64>>,
    pub expires_on: Option<Option<i64>>,
    pub content_type: Option<Option<String>>,
    pub tags: Option<BTreeMap<String, String>>,
}

impl WireUpdate {
    pub fn from_update(u: &PropertiesUpdate) -> Self {
        WireUpdate {
            enabled: u.enabled,
            not_before: u.not_before.map(|t| t.map(Timestamp::unix)),
            expires_on: u.expires_on.map(|t| t.map(Timestamp::unix)),
            content_type: u.content_type.clone(),
            tags: u.tags.clone(),
        }
    }

    pub fn into_update(self) -> PropertiesUpdate {
        PropertiesUpdate {
            enabled: self.enabled,
            not_before: self.not_before.map(|t| t.map(Timestamp::from_unix)),
            expires_on: self.expires_on.map(|t| t.map(Timestamp::from_unix)),
            content_type: self.content_type,
            tags: self.tags,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WireProperties {
    pub name: String,
    pub version: [u8; 16],
    pub sequence: u64,
    pub enabled: bool,
    pub not_before: Option<i64>,
    pub expires_on: Option<i64>,
    pub content_type: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub created: i64,
    pub updated: i64,
}

impl From<&SecretProperties> for WireProperties {
    fn from(p: &SecretProperties) -> Self {
        WireProperties {
            name: p.name.clone(),
            version: p.version.0,
            sequence: p.sequence,
            enabled: p.enabled,
            not_before: p.not_before.map(Timestamp::unix),
            expires_on: p.expires_on.map(Timestamp::unix),
            content_type: p.content_type.clone(),
            tags: p.tags.clone(),
            created: p.created.unix(),
            updated: p.updated.unix(),
        }
    }
}

impl From<WireProperties> for SecretProperties {
    fn from(p: WireProperties) -> Self {
        SecretProperties {
            name: p.name,
            version: VersionId(p.version),
            sequence: p.sequence,
            enabled: p.enabled,
            not_before: p.not_before.map(Timestamp::from_unix),
            expires_on: p.expires_on.map(Timestamp::from_unix),
            content_type: p.content_type,
            tags: p.tags,
            created: Timestamp::from_unix(p.created),
            updated: Timestamp::from_unix(p.updated),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WireDeleted {
    pub properties: WireProperties,
    pub deleted_on: i64,
    pub scheduled_purge: i64,
}

impl From<&DeletedSecret> for WireDeleted {
    fn from(d: &DeletedSecret) -> Self {
        WireDeleted {
            properties: (&d.properties).into(),
            deleted_on: d.deleted_on.unix(),
            scheduled_purge: d.scheduled_purge.unix(),
        }
    }
}

impl From<WireDeleted> for DeletedSecret {
    fn from(d: WireDeleted) -> Self {
        DeletedSecret {
            properties: d.properties.into(),
            deleted_on: Timestamp::from_unix(d.deleted_on),
            scheduled_purge: Timestamp::from_unix(d.scheduled_purge),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) enum WirePrincipal {
    Slot { id: u32, role: u8 },
    Token { id: String, role: u8 },
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WireAudit {
    pub seq: u64,
    pub time: i64,
    pub actor: String,
    pub operation: u16,
    pub name: Option<String>,
    pub version: Option<[u8; 16]>,
    pub error: Option<String>,
    pub principal: Option<WirePrincipal>,
}

impl From<&AuditRecord> for WireAudit {
    fn from(r: &AuditRecord) -> Self {
        WireAudit {
            seq: r.seq,
            time: r.time.unix(),
            actor: r.actor.clone(),
            operation: r.operation.code(),
            name: r.name.clone(),
            version: r.version.map(|v| v.0),
            error: r.error.clone(),
            principal: r.principal.as_ref().map(|p| match p {
                Principal::Slot { id, role } => WirePrincipal::Slot {
                    id: *id,
                    role: role.code(),
                },
                Principal::Token { id, role } => WirePrincipal::Token {
                    id: id.clone(),
                    role: role.code(),
                },
            }),
        }
    }
}

impl TryFrom<WireAudit> for AuditRecord {
    type Error = Error;
    fn try_from(r: WireAudit) -> Result<Self, Error> {
        Ok(AuditRecord {
            seq: r.seq,
            time: Timestamp::from_unix(r.time),
            actor: r.actor,
            operation: operation(r.operation)?,
            name: r.name,
            version: r.version.map(VersionId),
            error: r.error,
            principal: match r.principal {
                None => None,
                Some(WirePrincipal::Slot { id, role: r }) => {
                    Some(Principal::Slot { id, role: role(r)? })
                }
                Some(WirePrincipal::Token { id, role: r }) => {
                    Some(Principal::Token { id, role: role(r)? })
                }
            },
        })
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WireToken {
    pub id: String,
    pub label: String,
    pub role: u8,
    pub created: i64,
}

impl From<&TokenInfo> for WireToken {
    fn from(t: &TokenInfo) -> Self {
        WireToken {
            id: t.id.clone(),
            label: t.label.clone(),
            role: t.role.code(),
            created: t.created.unix(),
        }
    }
}

impl TryFrom<WireToken> for TokenInfo {
    type Error = Error;
    fn try_from(t: WireToken) -> Result<Self, Error> {
        Ok(TokenInfo {
            id: t.id,
            label: t.label,
            role: role(t.role)?,
            created: Timestamp::from_unix(t.created),
        })
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WireSlot {
    pub id: u32,
    pub label: String,
    pub role: u8,
    /// 0: passphrase (with `kdf`), 1: key, 2: provider (with `provider`).
    pub kind: u8,
    pub kdf: [u32; 3],
    pub provider: String,
    pub created: i64,
}

impl From<&SlotInfo> for WireSlot {
    fn from(s: &SlotInfo) -> Self {
        let (kind, kdf, provider) = match &s.kind {
            SlotKind::Passphrase(k) => (0, [k.memory_kib, k.iterations, k.parallelism], ""),
            SlotKind::Key => (1, [0; 3], ""),
            SlotKind::Provider(p) => (2, [0; 3], p.as_str()),
        };
        WireSlot {
            id: s.id,
            label: s.label.clone(),
            role: s.role.code(),
            kind,
            kdf,
            provider: provider.to_string(),
            created: s.created.unix(),
        }
    }
}

impl TryFrom<WireSlot> for SlotInfo {
    type Error = Error;
    fn try_from(s: WireSlot) -> Result<Self, Error> {
        Ok(SlotInfo {
            id: s.id,
            label: s.label,
            role: role(s.role)?,
            kind: match s.kind {
                0 => SlotKind::Passphrase(KdfParams {
                    memory_kib: s.kdf[0],
                    iterations: s.kdf[1],
                    parallelism: s.kdf[2],
                }),
                1 => SlotKind::Key,
                2 => SlotKind::Provider(s.provider),
                _ => return Err(Error::invalid("unknown key slot kind from the holder")),
            },
            created: Timestamp::from_unix(s.created),
        })
    }
}

pub(crate) fn settings_of(s: &VaultSettings) -> Response {
    Response::Settings {
        retention_days: s.retention_days,
        purge_protection: s.purge_protection,
        max_versions: s.max_versions,
    }
}

pub(crate) fn role(code: u8) -> Result<Role, Error> {
    Role::from_code(code).ok_or_else(|| Error::invalid("unknown role from the holder"))
}

fn operation(code: u16) -> Result<Operation, Error> {
    Operation::from_code(code).ok_or_else(|| Error::invalid("unknown operation from the holder"))
}

/// An [`Error`] on the wire: each variant with what it carries.
#[derive(Serialize, Deserialize)]
pub(crate) enum WireError {
    NotFound,
    Conflict { deleted: bool },
    Disabled,
    OutsideValidity,
    WrongKey,
    Forbidden { role: u8, operation: u16 },
    PurgeProtected { until: i64 },
    VersionConflict,
    InvalidName(String),
    InvalidVersion,
    InvalidArgument(String),
    ValueTooLarge { len: u64, max: u64 },
    LastSlot,
    Locked,
    Corrupted(String),
    UnsupportedFormat { found: u16, supported: u16 },
    AuditBroken { seq: u64 },
    RolledBack(String),
    InvalidBackup(String),
    InvalidCheckpoint,
    Poisoned,
    Provider(String),
    MissingCredential { slot: u32, label: String },
    BehindWitness { file: u64, witness: u64 },
    WitnessNotUpdated(String),
    Io(String),
    Random,
    Agent(String),
    PeerRefused { uid: u32 },
}

/// The messages of the variants that carry a `&'static str`, so that a client rebuilds the
/// same error the holder had.
const STATIC_MESSAGES: &[&str] = &[
    "a name needs at least one character",
    "a name has at most 127 characters",
    "a name may hold only 0-9, a-z, A-Z and '-'",
    "the blob names an invalid secret",
    "the blob's versions are out of order",
    "the blob's versions are incomplete",
    "not a tresor backup",
    "truncated",
    "format version 0",
    "made by another vault",
    "the payload does not decode",
    "the vault file is older than the checkpoint (a rolled-back copy)",
    "the checkpoint's audit record is missing",
    "the vault does not contain the checkpoint's audit chain",
];

fn static_message(s: &str, fallback: &'static str) -> &'static str {
    STATIC_MESSAGES
        .iter()
        .find(|m| **m == s)
        .copied()
        .unwrap_or(fallback)
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        match e {
            Error::NotFound => WireError::NotFound,
            Error::Conflict { deleted } => WireError::Conflict { deleted: *deleted },
            Error::Disabled => WireError::Disabled,
            Error::OutsideValidity => WireError::OutsideValidity,
            Error::WrongKey => WireError::WrongKey,
            Error::Forbidden { role, operation } => WireError::Forbidden {
                role: role.code(),
                operation: operation.code(),
            },
            Error::PurgeProtected { until } => WireError::PurgeProtected {
                until: until.unix(),
            },
            Error::VersionConflict => WireError::VersionConflict,
            Error::InvalidName(m) => WireError::InvalidName((*m).to_string()),
            Error::InvalidVersion => WireError::InvalidVersion,
            Error::InvalidArgument(m) => WireError::InvalidArgument(m.clone()),
            Error::ValueTooLarge { len, max } => WireError::ValueTooLarge {
                len: *len as u64,
                max: *max as u64,
            },
            Error::LastSlot => WireError::LastSlot,
            Error::Locked => WireError::Locked,
            Error::Corrupted(m) => WireError::Corrupted(m.clone()),
            Error::UnsupportedFormat { found, supported } => WireError::UnsupportedFormat {
                found: *found,
                supported: *supported,
            },
            Error::AuditBroken { seq } => WireError::AuditBroken { seq: *seq },
            Error::RolledBack(m) => WireError::RolledBack((*m).to_string()),
            Error::InvalidBackup(m) => WireError::InvalidBackup((*m).to_string()),
            Error::InvalidCheckpoint => WireError::InvalidCheckpoint,
            Error::Poisoned => WireError::Poisoned,
            Error::Provider(m) => WireError::Provider(m.clone()),
            Error::MissingCredential { slot, label } => WireError::MissingCredential {
                slot: *slot,
                label: label.clone(),
            },
            Error::BehindWitness { file, witness } => WireError::BehindWitness {
                file: *file,
                witness: *witness,
            },
            Error::WitnessNotUpdated(m) => WireError::WitnessNotUpdated(m.clone()),
            Error::Io(io) => WireError::Io(io.to_string()),
            Error::Random => WireError::Random,
            Error::Agent { reason, .. } => WireError::Agent(reason.clone()),
            Error::PeerRefused { uid } => WireError::PeerRefused { uid: *uid },
        }
    }
}

impl WireError {
    /// The error as the holder had it; `socket` names the holder in errors about the holder.
    pub fn into_error(self, socket: &std::path::Path) -> Error {
        match self {
            WireError::NotFound => Error::NotFound,
            WireError::Conflict { deleted } => Error::Conflict { deleted },
            WireError::Disabled => Error::Disabled,
            WireError::OutsideValidity => Error::OutsideValidity,
            WireError::WrongKey => Error::WrongKey,
            WireError::Forbidden {
                role: r,
                operation: o,
            } => match (role(r), operation(o)) {
                (Ok(role), Ok(operation)) => Error::Forbidden { role, operation },
                (Err(e), _) | (_, Err(e)) => e,
            },
            WireError::PurgeProtected { until } => Error::PurgeProtected {
                until: Timestamp::from_unix(until),
            },
            WireError::VersionConflict => Error::VersionConflict,
            WireError::InvalidName(m) => {
                Error::InvalidName(static_message(&m, "the name breaks the naming rules"))
            }
            WireError::InvalidVersion => Error::InvalidVersion,
            WireError::InvalidArgument(m) => Error::InvalidArgument(m),
            WireError::ValueTooLarge { len, max } => Error::ValueTooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max: usize::try_from(max).unwrap_or(usize::MAX),
            },
            WireError::LastSlot => Error::LastSlot,
            WireError::Locked => Error::Locked,
            WireError::Corrupted(m) => Error::Corrupted(m),
            WireError::UnsupportedFormat { found, supported } => {
                Error::UnsupportedFormat { found, supported }
            }
            WireError::AuditBroken { seq } => Error::AuditBroken { seq },
            WireError::RolledBack(m) => {
                Error::RolledBack(static_message(&m, "the vault file was rolled back"))
            }
            WireError::InvalidBackup(m) => {
                Error::InvalidBackup(static_message(&m, "the backup does not restore"))
            }
            WireError::InvalidCheckpoint => Error::InvalidCheckpoint,
            WireError::Poisoned => Error::Poisoned,
            WireError::Provider(m) => Error::Provider(m),
            WireError::MissingCredential { slot, label } => {
                Error::MissingCredential { slot, label }
            }
            WireError::BehindWitness { file, witness } => Error::BehindWitness { file, witness },
            WireError::WitnessNotUpdated(m) => Error::WitnessNotUpdated(m),
            WireError::Io(m) => Error::Io(io::Error::other(m)),
            WireError::Random => Error::Random,
            WireError::Agent(reason) => Error::Agent {
                socket: socket.to_path_buf(),
                reason,
            },
            WireError::PeerRefused { uid } => Error::PeerRefused { uid },
        }
    }
}

impl GetOptions {
    pub(crate) fn from_wire(version: Option<[u8; 16]>, strict: bool) -> Self {
        GetOptions {
            version: version.map(VersionId),
            strict,
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The peer closed the connection before a frame began.
    Closed,
    /// The declared length is over the cap (nothing was allocated for it).
    TooLarge(usize),
    /// Another protocol version.
    Version(u16),
    /// An I/O error, or the connection ended inside a frame.
    Io(io::Error),
    /// The body does not decode.
    Decode,
}

impl FrameError {
    pub fn describe(&self) -> String {
        match self {
            FrameError::Closed => "the connection was closed".to_string(),
            FrameError::TooLarge(n) => {
                format!("a message of {n} bytes is over the limit of {MAX_MESSAGE}")
            }
            FrameError::Version(v) => format!(
                "protocol version {v} is not spoken here (this side speaks {PROTOCOL_VERSION})"
            ),
            FrameError::Io(e) => format!("i/o error: {e}"),
            FrameError::Decode => "a message does not decode".to_string(),
        }
    }
}

/// Writes one frame: length, version, the postcard encoding of `msg`. The frame is measured
/// first and encoded into one zeroizing buffer of its exact size (no reallocation leaves a copy
/// behind), then written with one call.
pub(crate) fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    let size: usize = postcard::serialize_with_flavor(msg, postcard::ser_flavors::Size::default())
        .map_err(|_| FrameError::Decode)?;
    let len = size + 2;
    if len > MAX_MESSAGE {
        return Err(FrameError::TooLarge(len));
    }
    let mut frame = Zeroizing::new(vec![0u8; len + 4]);
    let declared = u32::try_from(len).map_err(|_| FrameError::TooLarge(len))?;
    frame[..4].copy_from_slice(&declared.to_be_bytes());
    frame[4..6].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    postcard::to_slice(msg, &mut frame[6..]).map_err(|_| FrameError::Decode)?;
    w.write_all(&frame).map_err(FrameError::Io)?;
    w.flush().map_err(FrameError::Io)
}

/// Reads one frame's body (after its version), checking the length before allocating.
pub(crate) fn read_frame(r: &mut impl Read) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let len = u32::from_be_bytes(head) as usize;
    if len > MAX_MESSAGE {
        return Err(FrameError::TooLarge(len));
    }
    if len < 2 {
        return Err(FrameError::Decode);
    }
    let mut version = [0u8; 2];
    r.read_exact(&mut version).map_err(FrameError::Io)?;
    let version = u16::from_be_bytes(version);
    if version != PROTOCOL_VERSION {
        // The body is read and dropped, so that the answer is not lost to a reset connection.
        let _ = io::copy(&mut r.take(len as u64 - 2), &mut io::sink());
        return Err(FrameError::Version(version));
    }
    let mut body = Zeroizing::new(vec![0u8; len - 2]);
    r.read_exact(&mut body).map_err(FrameError::Io)?;
    Ok(body)
}

/// Decodes a frame body.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, FrameError> {
    postcard::from_bytes(body).map_err(|_| FrameError::Decode)
}
