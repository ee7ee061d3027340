//! A model test: random sequences of operations run against a vault and against a plain
//! in-memory model of the rules (versions, check-and-set, properties, soft-delete, recover, purge,
//! purge protection, retention, automatic purges, version limits, backups, roles, key slots,
//! master key rotation, reopening, audit levels), comparing every result, every error kind and,
//! at the end of each case, the whole audit log; each case ends with `verify_audit` and
//! `check_integrity`.
//!
//! The vault lives on a shared in-memory redb backend, so that closing and reopening it (which
//! runs the automatic purge and records the open) costs no disk I/O.
//!
//! Cases: `TRESOR_MODEL_CASES` (default 10000). On failure the test prints the seed and the
//! minimal failing sequence; replay it with
//!
//! ```text
//! PROPTEST_RNG_SEED=<seed> TRESOR_MODEL_CASES=<cases> cargo test --test model
//! ```
//!
//! (the cases are drawn in order from the seed, so use at least as many cases as the failing
//! run had). Other proptest variables apply too (`PROPTEST_MAX_SHRINK_ITERS`, …).

mod common;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use common::{SharedMem, T0, key};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use tresor::{
    AuditLevel, Error, Expect, GetOptions, ManualClock, Operation, Options, PropertiesUpdate, Role,
    SYSTEM_ACTOR, SecretProperties, SetOptions, SlotSpec, Timestamp, Vault, VersionId,
};

const DAY: i64 = 86_400;
/// A small value limit, so that too-large values are cheap to generate.
const MAX_VALUE: usize = 48;
/// Names drawn by the operations: case variants of three secrets, then two invalid names.
const NAMES: &[&str] = &[
    "alpha", "Alpha", "ALPHA", "beta", "Beta", "gamma-1", "bad_name", "",
];
const VALID_NAMES: usize = 6;
const CONTENT_TYPES: &[&str] = &["text/plain", "application/json", "x"];
const TAG_KEYS: &[&str] = &["env", "owner", "team"];
const TAG_VALUES: &[&str] = &["dev", "prod", ""];

// ---------------------------------------------------------------------------------------------
// Operations

#[derive(Clone, Debug)]
enum VersionRef {
    Current,
    /// One of the version ids seen so far (any secret's), by index.
    Known(usize),
    /// An id no version has.
    Unknown,
}

#[derive(Clone, Debug)]
enum ExpectRef {
    Nothing,
    Absent,
    /// The current version of the secret, if it is live.
    Current,
    Known(usize),
}

#[derive(Clone, Debug)]
struct SetOpts {
    expect: ExpectRef,
    content_type: Option<usize>,
    tags: Vec<(usize, usize)>,
    disabled: bool,
    not_before: Option<i64>,
    expires_on: Option<i64>,
    max_versions: Option<u32>,
}

#[derive(Clone, Debug)]
struct Update {
    enabled: Option<bool>,
    content_type: Option<Option<usize>>,
    tags: Option<Vec<(usize, usize)>>,
    not_before: Option<Option<i64>>,
    expires_on: Option<Option<i64>>,
}

#[derive(Clone, Debug)]
enum Jump {
    Seconds(u64),
    Days(u64),
    /// One second before the retention period has passed since now.
    JustBeforeRetention,
    JustAfterRetention,
}

#[derive(Clone, Debug)]
enum Op {
    Set {
        name: usize,
        value: Vec<u8>,
        opts: SetOpts,
    },
    SetMany(Vec<(usize, Vec<u8>)>),
    Get {
        name: usize,
        version: VersionRef,
        strict: bool,
    },
    Properties {
        name: usize,
        version: VersionRef,
    },
    Update {
        name: usize,
        version: VersionRef,
        update: Update,
    },
    List {
        page: usize,
    },
    ListVersions {
        name: usize,
    },
    Delete {
        name: usize,
    },
    Recover {
        name: usize,
    },
    Purge {
        name: usize,
    },
    PurgeExpired,
    DeletedProperties {
        name: usize,
    },
    ListDeleted {
        page: usize,
    },
    Expiring {
        within_days: u64,
    },
    Backup {
        name: usize,
    },
    Restore {
        blob: usize,
        damage: Option<usize>,
    },
    Jump(Jump),
    Reopen {
        slot: usize,
        /// Open expecting the last checkpoint taken.
        checkpoint: bool,
    },
    Checkpoint,
    Compact,
    AddSlot {
        role: Role,
    },
    RemoveSlot {
        slot: Option<usize>,
    },
    ListSlots,
    EnablePurgeProtection,
    SetMaxVersions(Option<u32>),
    Rotate,
    VerifyAudit,
}

#[derive(Clone, Debug)]
struct Case {
    level: AuditLevel,
    purge_protection: bool,
    retention_days: u16,
    max_versions: Option<u32>,
    ops: Vec<Op>,
}

fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![-2 * DAY..2 * DAY, Just(0i64)]
}

fn tags() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((0..TAG_KEYS.len(), 0..TAG_VALUES.len()), 0..3)
}

fn version_ref() -> impl Strategy<Value = VersionRef> {
    prop_oneof![
        3 => Just(VersionRef::Current),
        3 => any::<usize>().prop_map(VersionRef::Known),
        1 => Just(VersionRef::Unknown),
    ]
}

fn set_opts() -> impl Strategy<Value = SetOpts> {
    let expect = prop_oneof![
        6 => Just(ExpectRef::Nothing),
        1 => Just(ExpectRef::Absent),
        2 => Just(ExpectRef::Current),
        1 => any::<usize>().prop_map(ExpectRef::Known),
    ];
    (
        expect,
        prop::option::weighted(0.3, 0..CONTENT_TYPES.len()),
        tags(),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.15, offset()),
        prop::option::weighted(0.15, offset()),
        prop::option::weighted(0.15, 1u32..4),
    )
        .prop_map(
            |(expect, content_type, tags, disabled, not_before, expires_on, max_versions)| {
                SetOpts {
                    expect,
                    content_type,
                    tags,
                    disabled,
                    not_before,
                    expires_on,
                    max_versions,
                }
            },
        )
}

fn update() -> impl Strategy<Value = Update> {
    (
        prop::option::of(any::<bool>()),
        prop::option::weighted(0.3, prop::option::of(0..CONTENT_TYPES.len())),
        prop::option::weighted(0.3, tags()),
        prop::option::weighted(0.2, prop::option::of(offset())),
        prop::option::weighted(0.2, prop::option::of(offset())),
    )
        .prop_map(
            |(enabled, content_type, tags, not_before, expires_on)| Update {
                enabled,
                content_type,
                tags,
                not_before,
                expires_on,
            },
        )
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..MAX_VALUE + 8)
}

fn name() -> impl Strategy<Value = usize> {
    prop_oneof![24 => 0..VALID_NAMES, 1 => VALID_NAMES..NAMES.len()]
}

fn op() -> impl Strategy<Value = Op> {
    let jump = prop_oneof![
        (1u64..100).prop_map(Jump::Seconds),
        (1u64..10).prop_map(Jump::Days),
        Just(Jump::JustBeforeRetention),
        Just(Jump::JustAfterRetention),
    ];
    let role = prop_oneof![
        4 => Just(Role::Owner),
        3 => Just(Role::Writer),
        2 => Just(Role::Reader),
        1 => Just(Role::Auditor),
    ];
    prop_oneof![
        20 => (name(), value(), set_opts())
            .prop_map(|(name, value, opts)| Op::Set { name, value, opts }),
        2 => prop::collection::vec((name(), value()), 1..4).prop_map(Op::SetMany),
        10 => (name(), version_ref(), prop::bool::weighted(0.2))
            .prop_map(|(name, version, strict)| Op::Get { name, version, strict }),
        3 => (name(), version_ref()).prop_map(|(name, version)| Op::Properties { name, version }),
        5 => (name(), version_ref(), update())
            .prop_map(|(name, version, update)| Op::Update { name, version, update }),
        3 => (1usize..4).prop_map(|page| Op::List { page }),
        3 => name().prop_map(|name| Op::ListVersions { name }),
        10 => name().prop_map(|name| Op::Delete { name }),
        5 => name().prop_map(|name| Op::Recover { name }),
        8 => name().prop_map(|name| Op::Purge { name }),
        2 => Just(Op::PurgeExpired),
        2 => name().prop_map(|name| Op::DeletedProperties { name }),
        2 => (1usize..3).prop_map(|page| Op::ListDeleted { page }),
        1 => (0u64..3).prop_map(|within_days| Op::Expiring { within_days }),
        6 => name().prop_map(|name| Op::Backup { name }),
        8 => (any::<usize>(), prop::option::weighted(0.1, any::<usize>()))
            .prop_map(|(blob, damage)| Op::Restore { blob, damage }),
        6 => jump.prop_map(Op::Jump),
        3 => (any::<usize>(), any::<bool>())
            .prop_map(|(slot, checkpoint)| Op::Reopen { slot, checkpoint }),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Compact),
        1 => role.prop_map(|role| Op::AddSlot { role }),
        1 => prop::option::weighted(0.8, any::<usize>()).prop_map(|slot| Op::RemoveSlot { slot }),
        1 => Just(Op::ListSlots),
        1 => Just(Op::EnablePurgeProtection),
        1 => prop::option::of(1u32..4).prop_map(Op::SetMaxVersions),
        1 => Just(Op::Rotate),
        1 => Just(Op::VerifyAudit),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            3 => Just(AuditLevel::Buffered),
            1 => Just(AuditLevel::Durable),
            1 => Just(AuditLevel::Off),
        ],
        prop::bool::weighted(0.35),
        prop_oneof![Just(7u16), Just(30), Just(90)],
        prop::option::weighted(0.35, 1u32..4),
        prop::collection::vec(op(), 1..60),
    )
        .prop_map(
            |(level, purge_protection, retention_days, max_versions, ops)| Case {
                level,
                purge_protection,
                retention_days,
                max_versions,
                ops,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// The model

/// An error as compared: its code (`Error::code`) and, for `PurgeProtected`, its date.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fail {
    code: &'static str,
    until: Option<i64>,
}

fn fail(code: &'static str) -> Fail {
    Fail { code, until: None }
}

fn fail_of(e: &Error) -> Fail {
    Fail {
        code: e.code(),
        until: match e {
            Error::PurgeProtected { until } => Some(until.unix()),
            _ => None,
        },
    }
}

type MResult<T> = Result<T, Fail>;

#[derive(Clone, Debug, PartialEq, Eq)]
struct MVersion {
    id: VersionId,
    seq: u64,
    enabled: bool,
    not_before: Option<i64>,
    expires_on: Option<i64>,
    content_type: Option<String>,
    tags: BTreeMap<String, String>,
    created: i64,
    updated: i64,
    value: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MSecret {
    /// The name as first written.
    name: String,
    first_seq: u64,
    max_versions: Option<u32>,
    /// Kept versions by sequence number; the last is the current one.
    versions: BTreeMap<u64, MVersion>,
}

impl MSecret {
    fn current(&self) -> &MVersion {
        self.versions
            .values()
            .next_back()
            .expect("a secret has a version")
    }
}

#[derive(Clone, Debug)]
struct MDeleted {
    secret: MSecret,
    deleted_on: i64,
    scheduled_purge: i64,
}

#[derive(Clone, Debug)]
struct MRetired {
    folded: String,
    id: VersionId,
    due: i64,
}

#[derive(Clone, Debug)]
struct MSlot {
    id: u32,
    label: String,
    role: Role,
    key: u8,
}

#[derive(Clone, Debug)]
struct MBlob {
    bytes: Vec<u8>,
    secret: MSecret,
    /// Master key generation it was made under (rotation makes older blobs invalid).
    epoch: u32,
}

/// One audit record as compared.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    time: i64,
    actor: String,
    op: u16,
    name: Option<String>,
    version: Option<[u8; 16]>,
    error: Option<String>,
}

/// The state the rules act on (cloned for each write, which commits all or nothing).
#[derive(Clone, Debug)]
struct Data {
    retention_days: u16,
    purge_protection: bool,
    max_versions: Option<u32>,
    live: BTreeMap<String, MSecret>,
    deleted: BTreeMap<String, MDeleted>,
    retired: Vec<MRetired>,
    slots: Vec<MSlot>,
    /// Whether the write at hand may destroy data (its handle's role may purge).
    may_destroy: bool,
}

struct Model {
    now: i64,
    level: AuditLevel,
    data: Data,
    role: Role,
    actor: String,
    log: Vec<Rec>,
    known: Vec<VersionId>,
    blobs: Vec<MBlob>,
    epoch: u32,
    next_key: u8,
    /// The last checkpoint taken, with the key generation it was taken under.
    checkpoint: Option<(tresor::Checkpoint, u32)>,
    /// The latest time of a committed audit record made by a handle that may purge (the
    /// vault's audit head keeps it).
    committed: i64,
    /// The time of the latest such record still buffered (not committed), if any.
    pending: Option<i64>,
}

fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

fn valid_name(name: &str) -> MResult<()> {
    if name.is_empty()
        || name.len() > 127
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(fail("InvalidName"));
    }
    Ok(())
}

fn tag_map(t: &[(usize, usize)]) -> BTreeMap<String, String> {
    t.iter()
        .map(|&(k, v)| (TAG_KEYS[k].to_string(), TAG_VALUES[v].to_string()))
        .collect()
}

fn allows(role: Role, op: Operation) -> bool {
    use Operation as O;
    let least = match op {
        O::SecretGet
        | O::SecretGetProperties
        | O::SecretList
        | O::SecretListVersions
        | O::SecretGetDeleted
        | O::SecretListDeleted
        | O::SecretListExpiring => Role::Reader,
        O::SecretSet
        | O::SecretImport
        | O::SecretUpdate
        | O::SecretDelete
        | O::SecretRecover
        | O::SecretBackup
        | O::SecretRestore => Role::Writer,
        O::AuditRead | O::AuditVerify | O::AuditCheckpoint => Role::Auditor,
        _ => Role::Owner,
    };
    match least {
        Role::Owner => role == Role::Owner,
        Role::Writer => matches!(role, Role::Owner | Role::Writer),
        Role::Reader => matches!(role, Role::Owner | Role::Writer | Role::Reader),
        _ => matches!(role, Role::Owner | Role::Auditor),
    }
}

impl Data {
    /// Purges what is due by `due` (records made at `now`); returns how many were purged.
    fn purge_due(&mut self, due: i64, now: i64, records: &mut Vec<Rec>) -> u64 {
        let mut n = 0;
        let mut kept = Vec::new();
        for r in std::mem::take(&mut self.retired) {
            if r.due <= due {
                records.push(sys(now, Operation::SecretPurge, None, Some(r.id)));
                n += 1;
            } else {
                kept.push(r);
            }
        }
        self.retired = kept;
        let due: Vec<String> = self
            .deleted
            .iter()
            .filter(|(_, d)| d.scheduled_purge <= due)
            .map(|(k, _)| k.clone())
            .collect();
        for folded in due {
            let d = self.deleted.remove(&folded).unwrap();
            self.retired.retain(|r| r.folded != folded);
            records.push(sys(now, Operation::SecretPurge, Some(&d.secret.name), None));
            n += 1;
        }
        n
    }

    /// `max_versions` pruning after a new version.
    fn prune(&mut self, folded: &str, now: i64, records: &mut Vec<Rec>) {
        let protection = self.purge_protection;
        let due = now + i64::from(self.retention_days) * DAY;
        let vault_limit = self.max_versions;
        let s = self.live.get_mut(folded).unwrap();
        let Some(limit) = s.max_versions.or(vault_limit) else {
            return;
        };
        let current = s.current().seq;
        while current - s.first_seq + 1 > u64::from(limit) {
            let seq = s.first_seq;
            s.first_seq += 1;
            if let Some(v) = s.versions.remove(&seq) {
                // A handle that may not destroy data leaves a pruned version due at once.
                if protection || !self.may_destroy {
                    self.retired.push(MRetired {
                        folded: folded.to_string(),
                        id: v.id,
                        due: if protection { due } else { now },
                    });
                }
                records.push(sys(now, Operation::SecretPrune, Some(&s.name), Some(v.id)));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn set(
        &mut self,
        now: i64,
        name: &str,
        value: &[u8],
        o: &SetOpts,
        expect: Option<Expect>,
        id: VersionId,
        records: &mut Vec<Rec>,
    ) -> MResult<MVersion> {
        valid_name(name)?;
        if value.len() > MAX_VALUE {
            return Err(fail("ValueTooLarge"));
        }
        let nbf = o.not_before.map(|d| now + d);
        let exp = o.expires_on.map(|d| now + d);
        if let (Some(n), Some(e)) = (nbf, exp)
            && e < n
        {
            return Err(fail("InvalidArgument"));
        }
        let folded = fold(name);
        let mut version = MVersion {
            id,
            seq: 1,
            enabled: !o.disabled,
            not_before: nbf,
            expires_on: exp,
            content_type: o.content_type.map(|c| CONTENT_TYPES[c].to_string()),
            tags: tag_map(&o.tags),
            created: now,
            updated: now,
            value: value.to_vec(),
        };
        match self.live.get_mut(&folded) {
            Some(s) => {
                if let Some(e) = expect
                    && e != Expect::Version(s.current().id)
                {
                    return Err(fail("VersionConflict"));
                }
                version.seq = s.current().seq + 1;
                s.versions.insert(version.seq, version.clone());
                if o.max_versions.is_some() {
                    s.max_versions = o.max_versions;
                }
            }
            None => {
                if self.deleted.contains_key(&folded) {
                    return Err(fail("ObjectIsDeletedButRecoverable"));
                }
                if matches!(expect, Some(Expect::Version(_))) {
                    return Err(fail("VersionConflict"));
                }
                self.live.insert(
                    folded.clone(),
                    MSecret {
                        name: name.to_string(),
                        first_seq: 1,
                        max_versions: o.max_versions,
                        versions: BTreeMap::from([(1, version.clone())]),
                    },
                );
            }
        }
        self.prune(&folded, now, records);
        Ok(version)
    }
}

fn sys(now: i64, op: Operation, name: Option<&str>, version: Option<VersionId>) -> Rec {
    Rec {
        time: now,
        actor: SYSTEM_ACTOR.to_string(),
        op: op.code(),
        name: name.map(str::to_string),
        version: version.map(|v| *v.as_bytes()),
        error: None,
    }
}

/// What a write returns besides its result: the version and (when the call named none) the
/// secret name its own audit record names.
struct Done<T> {
    value: T,
    version: Option<VersionId>,
    name: Option<String>,
}

fn done<T>(value: T, version: Option<VersionId>) -> Done<T> {
    Done {
        value,
        version,
        name: None,
    }
}

impl Model {
    /// A record of a read or a refusal: committed at once when reads are audited durably,
    /// else buffered until the next commit.
    fn record(
        &mut self,
        op: Operation,
        name: Option<&str>,
        version: Option<VersionId>,
        err: Option<&Fail>,
    ) {
        self.push(op, name, version, err);
        if self.role == Role::Owner {
            self.pending = Some(self.now);
        }
        if self.level == AuditLevel::Durable {
            self.flush();
        }
    }

    /// Every record so far is committed with one made now by this handle (a write, a
    /// rotation). Only records of handles that may purge move the head's time.
    fn commit(&mut self) {
        if self.role == Role::Owner {
            self.pending = Some(self.now);
        }
        self.flush();
    }

    /// Buffered records are committed (a flush, closing the handle).
    fn flush(&mut self) {
        if let Some(t) = self.pending.take() {
            self.committed = self.committed.max(t);
        }
    }

    /// What decides whether something is due: under purge protection, the clock at most a day
    /// past the latest committed record.
    fn purge_now(&self) -> i64 {
        if self.data.purge_protection {
            self.now.min(self.committed + DAY)
        } else {
            self.now
        }
    }

    fn push(
        &mut self,
        op: Operation,
        name: Option<&str>,
        version: Option<VersionId>,
        err: Option<&Fail>,
    ) {
        self.log.push(Rec {
            time: self.now,
            actor: self.actor.clone(),
            op: op.code(),
            name: name.map(str::to_string),
            version: version.map(|v| *v.as_bytes()),
            error: err.map(|e| e.code.to_string()),
        });
    }

    /// The role check every call starts with; a refusal is always recorded.
    fn authorize(&mut self, op: Operation, name: Option<&str>) -> MResult<()> {
        if allows(self.role, op) {
            return Ok(());
        }
        let f = fail("Forbidden");
        self.record(op, name, None, Some(&f));
        Err(f)
    }

    fn read<T>(
        &mut self,
        op: Operation,
        name: Option<&str>,
        f: impl FnOnce(&Model) -> MResult<(T, Option<VersionId>)>,
    ) -> MResult<T> {
        self.authorize(op, name)?;
        let r = f(self);
        // A backup exports every version: recorded at every read level.
        if self.level != AuditLevel::Off || op == Operation::SecretBackup {
            match &r {
                Ok((_, v)) => self.record(op, name, *v, None),
                Err(e) => self.record(op, name, None, Some(e)),
            }
        }
        r.map(|(v, _)| v)
    }

    /// A write: role check, the due purges and the operation on a copy of the state, committed
    /// with its records only if the operation succeeds.
    fn write<T>(
        &mut self,
        op: Operation,
        name: Option<&str>,
        f: impl FnOnce(&mut Data, i64, &mut Vec<Rec>) -> MResult<Done<T>>,
    ) -> MResult<T> {
        self.authorize(op, name)?;
        let mut data = self.data.clone();
        let mut records = Vec::new();
        data.may_destroy = self.role == Role::Owner;
        if data.may_destroy {
            data.purge_due(self.purge_now(), self.now, &mut records);
        }
        match f(&mut data, self.now, &mut records) {
            Ok(d) => {
                self.data = data;
                self.log.extend(records);
                let n = name.map(str::to_string).or(d.name);
                self.push(op, n.as_deref(), d.version, None);
                self.commit();
                Ok(d.value)
            }
            Err(e) => {
                self.record(op, name, None, Some(&e));
                Err(e)
            }
        }
    }

    fn known(&self, i: usize) -> VersionId {
        if self.known.is_empty() {
            unknown_id()
        } else {
            self.known[i % self.known.len()]
        }
    }

    fn version_of(&self, r: &VersionRef) -> Option<VersionId> {
        match r {
            VersionRef::Current => None,
            VersionRef::Known(i) => Some(self.known(*i)),
            VersionRef::Unknown => Some(unknown_id()),
        }
    }

    /// Opening the vault: the open is recorded (at a read level), then due purges run.
    fn open(&mut self, slot: &MSlot) {
        self.role = slot.role;
        self.actor = slot.label.clone();
        if self.level != AuditLevel::Off {
            self.record(Operation::VaultOpen, None, None, None);
        }
        if self.role == Role::Owner {
            let mut records = Vec::new();
            let due = self.purge_now();
            self.data.purge_due(due, self.now, &mut records);
            if !records.is_empty() {
                // The purge's own records are the vault's (no principal): only buffered
                // records of this handle move the head's time.
                self.log.extend(records);
                self.flush();
            }
        }
    }
}

fn unknown_id() -> VersionId {
    "ffffffffffffffffffffffffffffffff".parse().unwrap()
}

/// Looks up a kept version of a live secret, as the vault does.
fn find(s: &MSecret, version: Option<VersionId>) -> MResult<&MVersion> {
    match version {
        None => Ok(s.current()),
        Some(id) => s
            .versions
            .values()
            .find(|v| v.id == id)
            .ok_or(fail("NotFound")),
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing

fn same_props(got: &SecretProperties, name: &str, v: &MVersion) -> Result<(), TestCaseError> {
    let want = (
        name,
        v.id,
        v.seq,
        v.enabled,
        v.not_before,
        v.expires_on,
        v.content_type.as_deref(),
        &v.tags,
        v.created,
        v.updated,
    );
    let have = (
        got.name.as_str(),
        got.version,
        got.sequence,
        got.enabled,
        got.not_before.map(Timestamp::unix),
        got.expires_on.map(Timestamp::unix),
        got.content_type.as_deref(),
        &got.tags,
        got.created.unix(),
        got.updated.unix(),
    );
    prop_assert_eq!(have, want);
    Ok(())
}

/// Compares an outcome: both succeed (then `check` compares the values) or fail alike.
fn same<A, M>(
    what: &str,
    got: Result<A, Error>,
    want: MResult<M>,
    check: impl FnOnce(A, M) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    match (got, want) {
        (Ok(a), Ok(m)) => check(a, m),
        (Err(e), Err(f)) => {
            prop_assert_eq!(fail_of(&e), f, "{}", what);
            Ok(())
        }
        (Ok(_), Err(f)) => Err(TestCaseError::fail(format!(
            "{what}: the vault succeeded, the model says {f:?}"
        ))),
        (Err(e), Ok(_)) => Err(TestCaseError::fail(format!(
            "{what}: the vault failed with {e:?}, the model succeeds"
        ))),
    }
}

/// Sorts each run of consecutive records by the system (their order inside one commit follows
/// the keyed name hashes, which the model does not know).
fn normalized(mut log: Vec<Rec>) -> Vec<Rec> {
    let mut i = 0;
    while i < log.len() {
        let mut j = i;
        while j < log.len() && log[j].actor == SYSTEM_ACTOR {
            j += 1;
        }
        log[i..j].sort();
        i = j.max(i + 1);
    }
    log
}

// ---------------------------------------------------------------------------------------------
// Running a case

struct Run {
    mem: SharedMem,
    clock: ManualClock,
    vault: Option<Vault>,
    model: Model,
}

impl Run {
    fn options(&self) -> Options {
        Options::new()
            .clock(self.clock.clone())
            .read_audit(self.model.level)
            .max_value_len(MAX_VALUE)
    }

    fn v(&self) -> &Vault {
        self.vault.as_ref().expect("open")
    }

    fn reopen(&mut self, slot: &MSlot) -> Result<(), TestCaseError> {
        drop(self.vault.take());
        self.model.flush();
        let v = Vault::open_with_backend(self.mem.clone(), &key(slot.key), self.options())
            .map_err(|e| TestCaseError::fail(format!("reopen: {e:?}")))?;
        prop_assert_eq!(v.role(), slot.role);
        prop_assert_eq!(v.actor(), slot.label.as_str());
        prop_assert_eq!(v.unlocked_slot(), Some(slot.id));
        self.vault = Some(v);
        self.model.open(slot);
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Set { name, value, opts } => self.set(NAMES[*name], value, opts),
            Op::SetMany(items) => self.set_many(items),
            Op::Get {
                name,
                version,
                strict,
            } => {
                let name = NAMES[*name];
                let id = self.model.version_of(version);
                let got = if *strict {
                    let mut o = GetOptions::default();
                    o.version = id;
                    o.strict = true;
                    self.v().get_with(name, &o)
                } else {
                    match id {
                        None => self.v().get(name),
                        Some(id) => self.v().get_version(name, &id),
                    }
                };
                let now = self.model.now;
                let want = self.model.read(Operation::SecretGet, Some(name), |m| {
                    valid_name(name)?;
                    let s = m.data.live.get(&fold(name)).ok_or(fail("NotFound"))?;
                    let v = find(s, id)?;
                    if !v.enabled {
                        return Err(fail("Disabled"));
                    }
                    let outside = v.not_before.is_some_and(|nb| now < nb)
                        || v.expires_on.is_some_and(|e| now >= e);
                    if *strict && outside {
                        return Err(fail("OutsideValidity"));
                    }
                    Ok(((s.name.clone(), v.clone()), Some(v.id)))
                });
                same("get", got, want, |a, (n, v)| {
                    same_props(&a.properties, &n, &v)?;
                    prop_assert_eq!(a.expose(), v.value.as_slice());
                    Ok(())
                })
            }
            Op::Properties { name, version } => {
                let name = NAMES[*name];
                let id = self.model.version_of(version);
                let got = self.v().properties(name, id.as_ref());
                let want = self
                    .model
                    .read(Operation::SecretGetProperties, Some(name), |m| {
                        valid_name(name)?;
                        let s = m.data.live.get(&fold(name)).ok_or(fail("NotFound"))?;
                        let v = find(s, id)?;
                        Ok(((s.name.clone(), v.clone()), Some(v.id)))
                    });
                same("properties", got, want, |a, (n, v)| same_props(&a, &n, &v))
            }
            Op::Update {
                name,
                version,
                update,
            } => self.update(NAMES[*name], version, update),
            Op::List { page } => self.list(*page),
            Op::ListVersions { name } => {
                let name = NAMES[*name];
                let got = self.v().list_versions(name);
                let want = self
                    .model
                    .read(Operation::SecretListVersions, Some(name), |m| {
                        valid_name(name)?;
                        let s = m.data.live.get(&fold(name)).ok_or(fail("NotFound"))?;
                        Ok((s.clone(), None))
                    });
                same("list_versions", got, want, |a, s| {
                    prop_assert_eq!(a.len(), s.versions.len());
                    for (p, v) in a.iter().zip(s.versions.values().rev()) {
                        same_props(p, &s.name, v)?;
                    }
                    Ok(())
                })
            }
            Op::Delete { name } => {
                let name = NAMES[*name];
                let got = self.v().delete(name);
                let want = self
                    .model
                    .write(Operation::SecretDelete, Some(name), |d, now, _| {
                        valid_name(name)?;
                        let folded = fold(name);
                        let s = d.live.remove(&folded).ok_or(fail("NotFound"))?;
                        let del = MDeleted {
                            scheduled_purge: now + i64::from(d.retention_days) * DAY,
                            deleted_on: now,
                            secret: s,
                        };
                        let id = del.secret.current().id;
                        d.deleted.insert(folded, del.clone());
                        Ok(done(del, Some(id)))
                    });
                same("delete", got, want, same_deleted)
            }
            Op::Recover { name } => {
                let name = NAMES[*name];
                let got = self.v().recover(name);
                let want = self
                    .model
                    .write(Operation::SecretRecover, Some(name), |d, _, _| {
                        valid_name(name)?;
                        let folded = fold(name);
                        let del = d.deleted.remove(&folded).ok_or(fail("NotFound"))?;
                        let cur = del.secret.current().clone();
                        let n = del.secret.name.clone();
                        d.live.insert(folded, del.secret);
                        Ok(done((n, cur.clone()), Some(cur.id)))
                    });
                same("recover", got, want, |a, (n, v)| same_props(&a, &n, &v))
            }
            Op::Purge { name } => {
                let name = NAMES[*name];
                let got = self.v().purge(name);
                let purge_now = self.model.purge_now();
                let want = self
                    .model
                    .write(Operation::SecretPurge, Some(name), |d, _, _| {
                        valid_name(name)?;
                        let folded = fold(name);
                        let del = d.deleted.get(&folded).ok_or(fail("NotFound"))?;
                        if d.purge_protection && purge_now < del.scheduled_purge {
                            return Err(Fail {
                                code: "PurgeProtected",
                                until: Some(del.scheduled_purge),
                            });
                        }
                        d.deleted.remove(&folded);
                        d.retired.retain(|r| r.folded != folded);
                        Ok(done((), None))
                    });
                same("purge", got, want, |_, _| Ok(()))
            }
            Op::PurgeExpired => {
                let got = self.v().purge_expired();
                // Everything due is purged (by the write's own pass) and counted.
                let count = self.model.data.clone().purge_due(
                    self.model.purge_now(),
                    self.model.now,
                    &mut Vec::new(),
                );
                let want = self.model.write(Operation::PurgeExpired, None, |_, _, _| {
                    Ok(done(count, None))
                });
                same("purge_expired", got, want, |a, c| {
                    prop_assert_eq!(a, c);
                    Ok(())
                })
            }
            Op::DeletedProperties { name } => {
                let name = NAMES[*name];
                let got = self.v().deleted_properties(name);
                let want = self
                    .model
                    .read(Operation::SecretGetDeleted, Some(name), |m| {
                        valid_name(name)?;
                        let d = m.data.deleted.get(&fold(name)).ok_or(fail("NotFound"))?;
                        Ok((d.clone(), Some(d.secret.current().id)))
                    });
                same("deleted_properties", got, want, same_deleted)
            }
            Op::ListDeleted { page } => self.list_deleted(*page),
            Op::Expiring { within_days } => {
                let within = Duration::from_secs(within_days * DAY as u64);
                let got = self.v().expiring(within);
                let horizon = self.model.now + *within_days as i64 * DAY;
                let want = self.model.read(Operation::SecretListExpiring, None, |m| {
                    let mut out: Vec<(String, MVersion)> = m
                        .data
                        .live
                        .values()
                        .filter(|s| s.current().expires_on.is_some_and(|e| e <= horizon))
                        .map(|s| (s.name.clone(), s.current().clone()))
                        .collect();
                    out.sort_by_key(|(n, v)| (v.expires_on, fold(n)));
                    Ok((out, None))
                });
                same("expiring", got, want, |mut a, want| {
                    prop_assert!(a.windows(2).all(|w| w[0].expires_on <= w[1].expires_on));
                    a.sort_by_key(|p| (p.expires_on, fold(&p.name)));
                    prop_assert_eq!(a.len(), want.len());
                    for (p, (n, v)) in a.iter().zip(&want) {
                        same_props(p, n, v)?;
                    }
                    Ok(())
                })
            }
            Op::Backup { name } => {
                let name = NAMES[*name];
                let got = self.v().backup_secret(name);
                let want = self.model.read(Operation::SecretBackup, Some(name), |m| {
                    valid_name(name)?;
                    let s = m.data.live.get(&fold(name)).ok_or(fail("NotFound"))?;
                    Ok((s.clone(), Some(s.current().id)))
                });
                let epoch = self.model.epoch;
                let mut blob = None;
                same("backup_secret", got, want, |bytes, secret| {
                    blob = Some(MBlob {
                        bytes,
                        secret,
                        epoch,
                    });
                    Ok(())
                })?;
                self.model.blobs.extend(blob);
                Ok(())
            }
            Op::Restore { blob, damage } => self.restore(*blob, *damage),
            Op::Jump(j) => {
                let secs = match j {
                    Jump::Seconds(s) => *s as i64,
                    Jump::Days(d) => *d as i64 * DAY,
                    Jump::JustBeforeRetention => {
                        i64::from(self.model.data.retention_days) * DAY - 1
                    }
                    Jump::JustAfterRetention => i64::from(self.model.data.retention_days) * DAY + 1,
                };
                self.model.now += secs;
                self.clock.set(Timestamp::from_unix(self.model.now));
                Ok(())
            }
            Op::Reopen { slot, checkpoint } => {
                let slots = &self.model.data.slots;
                let s = slots[slot % slots.len()].clone();
                if let (true, Some((cp, epoch))) = (*checkpoint, self.model.checkpoint) {
                    drop(self.vault.take());
                    self.model.flush();
                    let r = Vault::open_with_backend(
                        self.mem.clone(),
                        &key(s.key),
                        self.options().expect_checkpoint(cp),
                    );
                    // A checkpoint matches until the master key is rotated (the chain is re-keyed).
                    match r {
                        Ok(v) => {
                            prop_assert_eq!(
                                epoch,
                                self.model.epoch,
                                "opened with a stale checkpoint"
                            );
                            self.vault = Some(v);
                            self.model.open(&s);
                            return Ok(());
                        }
                        Err(Error::RolledBack(_)) => {
                            prop_assert_ne!(
                                epoch,
                                self.model.epoch,
                                "a current checkpoint refused"
                            );
                        }
                        Err(e) => return Err(TestCaseError::fail(format!("open: {e:?}"))),
                    }
                }
                self.reopen(&s)
            }
            Op::Checkpoint => {
                let got = self.v().checkpoint();
                let m = &mut self.model;
                let want = match m.authorize(Operation::AuditCheckpoint, None) {
                    Ok(()) => {
                        m.flush();
                        let n = m.log.len() as u64;
                        if m.level != AuditLevel::Off {
                            m.record(Operation::AuditCheckpoint, None, None, None);
                        }
                        Ok(n)
                    }
                    Err(e) => Err(e),
                };
                let epoch = self.model.epoch;
                let mut taken = None;
                same("checkpoint", got, want, |cp, n| {
                    prop_assert_eq!(cp.seq(), n);
                    taken = Some((cp, epoch));
                    Ok(())
                })?;
                if taken.is_some() {
                    self.model.checkpoint = taken;
                }
                Ok(())
            }
            Op::Compact => {
                let got = self.v().compact();
                let m = &mut self.model;
                // Recorded whatever the audit level (it is not a read).
                let want = m.authorize(Operation::Compact, None).map(|()| {
                    m.record(Operation::Compact, None, None, None);
                    m.flush();
                });
                same("compact", got, want, |_, _| Ok(()))
            }
            Op::AddSlot { role } => {
                let k = self.model.next_key;
                let id = self.model.data.slots.iter().map(|s| s.id).max().unwrap() + 1;
                let label = format!("slot-{id}-{k}");
                let got = self
                    .v()
                    .add_slot(&SlotSpec::new(key(k), label.clone()).role(*role));
                let slot = MSlot {
                    id,
                    label,
                    role: *role,
                    key: k,
                };
                let want = self.model.write(Operation::SlotAdd, None, |d, _, _| {
                    d.slots.push(slot.clone());
                    Ok(done(slot, None))
                });
                if want.is_ok() {
                    self.model.next_key += 1;
                }
                same("add_slot", got, want, |a, s| {
                    prop_assert_eq!(
                        (a.id, a.label.as_str(), a.role),
                        (s.id, s.label.as_str(), s.role)
                    );
                    Ok(())
                })
            }
            Op::RemoveSlot { slot } => {
                let slots = &self.model.data.slots;
                let id = match slot {
                    Some(i) => slots[i % slots.len()].id,
                    None => 999,
                };
                let got = self.v().remove_slot(id);
                let want = self.model.write(Operation::SlotRemove, None, |d, _, _| {
                    let at = d
                        .slots
                        .iter()
                        .position(|s| s.id == id)
                        .ok_or(fail("NotFound"))?;
                    if d.slots.len() <= 1 {
                        return Err(fail("LastSlot"));
                    }
                    d.slots.remove(at);
                    Ok(done((), None))
                });
                same("remove_slot", got, want, |_, _| Ok(()))
            }
            Op::ListSlots => {
                let got = self.v().slots();
                let want = self.model.read(Operation::SlotList, None, |m| {
                    Ok((m.data.slots.clone(), None))
                });
                same("slots", got, want, |a, s| {
                    let a: Vec<_> = a.iter().map(|x| (x.id, x.label.clone(), x.role)).collect();
                    let s: Vec<_> = s.iter().map(|x| (x.id, x.label.clone(), x.role)).collect();
                    prop_assert_eq!(a, s);
                    Ok(())
                })
            }
            Op::EnablePurgeProtection => {
                let got = self.v().enable_purge_protection();
                let want = self
                    .model
                    .write(Operation::SettingsUpdate, None, |d, _, _| {
                        d.purge_protection = true;
                        Ok(done((), None))
                    });
                same("enable_purge_protection", got, want, |_, _| Ok(()))?;
                self.check_settings()
            }
            Op::SetMaxVersions(n) => {
                let got = self.v().set_max_versions(*n);
                let want = self
                    .model
                    .write(Operation::SettingsUpdate, None, |d, _, _| {
                        d.max_versions = *n;
                        Ok(done((), None))
                    });
                same("set_max_versions", got, want, |_, _| Ok(()))?;
                self.check_settings()
            }
            Op::Rotate => {
                let creds: Vec<_> = self.model.data.slots.iter().map(|s| key(s.key)).collect();
                let got = self.v().rotate_master_key(&creds, |_| {});
                let want = match self.model.authorize(Operation::KeyRotate, None) {
                    Ok(()) => {
                        self.model.push(Operation::KeyRotate, None, None, None);
                        self.model.commit();
                        self.model.epoch += 1;
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                same("rotate_master_key", got, want, |_, _| Ok(()))
            }
            Op::VerifyAudit => {
                let got = self.v().verify_audit();
                let m = &mut self.model;
                let want = match m.authorize(Operation::AuditVerify, None) {
                    Ok(()) => {
                        m.flush();
                        let n = m.log.len() as u64;
                        if m.level != AuditLevel::Off {
                            m.record(Operation::AuditVerify, None, None, None);
                        }
                        Ok(n)
                    }
                    Err(e) => Err(e),
                };
                same("verify_audit", got, want, |a, n| {
                    prop_assert_eq!(a, n);
                    Ok(())
                })
            }
        }
    }

    fn set(&mut self, name: &str, value: &[u8], o: &SetOpts) -> Result<(), TestCaseError> {
        let expect = match &o.expect {
            ExpectRef::Nothing => None,
            ExpectRef::Absent => Some(Expect::Absent),
            ExpectRef::Current => Some(Expect::Version(
                self.model
                    .data
                    .live
                    .get(&fold(name))
                    .map_or(unknown_id(), |s| s.current().id),
            )),
            ExpectRef::Known(i) => Some(Expect::Version(self.model.known(*i))),
        };
        let now = self.model.now;
        let mut so = SetOptions::new();
        so.expect = expect;
        so.content_type = o.content_type.map(|c| CONTENT_TYPES[c].to_string());
        so.tags = tag_map(&o.tags);
        so.disabled = o.disabled;
        so.not_before = o.not_before.map(|d| Timestamp::from_unix(now + d));
        so.expires_on = o.expires_on.map(|d| Timestamp::from_unix(now + d));
        so.max_versions = o.max_versions;
        let got = self.v().set_with(name, value, &so);
        // The vault draws the version id; the model takes the one it returned.
        let id = got.as_ref().map_or(unknown_id(), |p| p.version);
        let want = self
            .model
            .write(Operation::SecretSet, Some(name), |d, now, records| {
                let v = d.set(now, name, value, o, expect, id, records)?;
                let n = d.live[&fold(name)].name.clone();
                Ok(done((n, v), Some(id)))
            });
        if want.is_ok() {
            self.model.known.push(id);
        }
        same("set", got, want, |a, (n, v)| same_props(&a, &n, &v))
    }

    fn set_many(&mut self, items: &[(usize, Vec<u8>)]) -> Result<(), TestCaseError> {
        let plain = SetOptions::new();
        let batch: Vec<(&str, &[u8], &SetOptions)> = items
            .iter()
            .map(|(n, v)| (NAMES[*n], v.as_slice(), &plain))
            .collect();
        let got = self.v().set_many(batch);
        let ids: Vec<VersionId> = match &got {
            Ok(ps) => ps.iter().map(|p| p.version).collect(),
            Err(_) => vec![unknown_id(); items.len()],
        };
        let actor = self.model.actor.clone();
        let no_opts = SetOpts {
            expect: ExpectRef::Nothing,
            content_type: None,
            tags: Vec::new(),
            disabled: false,
            not_before: None,
            expires_on: None,
            max_versions: None,
        };
        let want = self
            .model
            .write(Operation::SecretImport, None, |d, now, records| {
                let mut out = Vec::new();
                for ((n, value), id) in items.iter().zip(&ids) {
                    let name = NAMES[*n];
                    let v = d.set(now, name, value, &no_opts, None, *id, records)?;
                    let stored = d.live[&fold(name)].name.clone();
                    records.push(Rec {
                        time: now,
                        actor: actor.clone(),
                        op: Operation::SecretSet.code(),
                        name: Some(stored.clone()),
                        version: Some(*id.as_bytes()),
                        error: None,
                    });
                    out.push((stored, v));
                }
                Ok(done(out, None))
            });
        if want.is_ok() {
            self.model.known.extend(&ids);
        }
        same("set_many", got, want, |a, want| {
            prop_assert_eq!(a.len(), want.len());
            for (p, (n, v)) in a.iter().zip(&want) {
                same_props(p, n, v)?;
            }
            Ok(())
        })
    }

    fn update(
        &mut self,
        name: &str,
        version: &VersionRef,
        u: &Update,
    ) -> Result<(), TestCaseError> {
        let id = self.model.version_of(version);
        let now = self.model.now;
        let mut up = PropertiesUpdate::new();
        up.enabled = u.enabled;
        up.content_type = u
            .content_type
            .map(|c| c.map(|c| CONTENT_TYPES[c].to_string()));
        up.tags = u.tags.as_ref().map(|t| tag_map(t));
        up.not_before = u
            .not_before
            .map(|o| o.map(|d| Timestamp::from_unix(now + d)));
        up.expires_on = u
            .expires_on
            .map(|o| o.map(|d| Timestamp::from_unix(now + d)));
        let got = self.v().update_properties(name, id.as_ref(), &up);
        let want = self
            .model
            .write(Operation::SecretUpdate, Some(name), |d, now, _| {
                valid_name(name)?;
                let s = d.live.get_mut(&fold(name)).ok_or(fail("NotFound"))?;
                let current = s.current().id;
                let target = id.unwrap_or(current);
                let v = s
                    .versions
                    .values_mut()
                    .find(|v| v.id == target)
                    .ok_or(fail("NotFound"))?;
                if let Some(e) = u.enabled {
                    v.enabled = e;
                }
                if let Some(nb) = u.not_before {
                    v.not_before = nb.map(|d| now + d);
                }
                if let Some(ex) = u.expires_on {
                    v.expires_on = ex.map(|d| now + d);
                }
                if let Some(ct) = u.content_type {
                    v.content_type = ct.map(|c| CONTENT_TYPES[c].to_string());
                }
                if let Some(t) = &u.tags {
                    v.tags = tag_map(t);
                }
                if let (Some(n), Some(e)) = (v.not_before, v.expires_on)
                    && e < n
                {
                    return Err(fail("InvalidArgument"));
                }
                v.updated = now;
                let v = v.clone();
                Ok(done((s.name.clone(), v.clone()), Some(v.id)))
            });
        same("update_properties", got, want, |a, (n, v)| {
            same_props(&a, &n, &v)
        })
    }

    fn list(&mut self, page: usize) -> Result<(), TestCaseError> {
        // Every page is one audited read.
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0usize;
        let mut err = None;
        loop {
            match self.v().list(cursor.as_deref(), page) {
                Ok(p) => {
                    prop_assert!(p.items.len() <= page);
                    pages += 1;
                    got.extend(p.items);
                    match p.next {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let n = self.model.data.live.len();
        let want_pages = n.div_ceil(page).max(1);
        let mut want = None;
        for _ in 0..want_pages {
            let r = self.model.read(Operation::SecretList, None, |m| {
                let mut all: Vec<(String, MVersion)> = m
                    .data
                    .live
                    .values()
                    .map(|s| (s.name.clone(), s.current().clone()))
                    .collect();
                all.sort_by_key(|(n, _)| fold(n));
                Ok((all, None))
            });
            match r {
                Ok(all) => want = Some(Ok(all)),
                Err(e) => {
                    want = Some(Err(e));
                    break;
                }
            }
        }
        let got = match err {
            Some(e) => Err(e),
            None => {
                prop_assert_eq!(pages, want_pages);
                Ok(got)
            }
        };
        same("list", got, want.unwrap(), |mut a, all| {
            a.sort_by_key(|p| fold(&p.name));
            prop_assert_eq!(a.len(), all.len());
            for (p, (n, v)) in a.iter().zip(&all) {
                same_props(p, n, v)?;
            }
            Ok(())
        })
    }

    fn list_deleted(&mut self, page: usize) -> Result<(), TestCaseError> {
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0usize;
        let mut err = None;
        loop {
            match self.v().list_deleted(cursor.as_deref(), page) {
                Ok(p) => {
                    prop_assert!(p.items.len() <= page);
                    pages += 1;
                    got.extend(p.items);
                    match p.next {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let n = self.model.data.deleted.len();
        let want_pages = n.div_ceil(page).max(1);
        let mut want = None;
        for _ in 0..want_pages {
            let r = self.model.read(Operation::SecretListDeleted, None, |m| {
                Ok((m.data.deleted.values().cloned().collect::<Vec<_>>(), None))
            });
            match r {
                Ok(all) => want = Some(Ok(all)),
                Err(e) => {
                    want = Some(Err(e));
                    break;
                }
            }
        }
        let got = match err {
            Some(e) => Err(e),
            None => {
                prop_assert_eq!(pages, want_pages);
                Ok(got)
            }
        };
        same("list_deleted", got, want.unwrap(), |mut a, all| {
            a.sort_by_key(|d| fold(&d.properties.name));
            prop_assert_eq!(a.len(), all.len());
            for (x, y) in a.into_iter().zip(all) {
                same_deleted(x, y)?;
            }
            Ok(())
        })
    }

    fn restore(&mut self, blob: usize, damage: Option<usize>) -> Result<(), TestCaseError> {
        let Some(b) = (!self.model.blobs.is_empty())
            .then(|| self.model.blobs[blob % self.model.blobs.len()].clone())
        else {
            return Ok(());
        };
        let mut bytes = b.bytes.clone();
        let damage = damage.map(|at| at % bytes.len());
        if let Some(at) = damage {
            bytes[at] ^= 0x20;
        }
        let got = self.v().restore_secret(&bytes);
        let epoch = self.model.epoch;
        let want = self.model.write(Operation::SecretRestore, None, |d, _, _| {
            match damage {
                // The blob header's format field (unauthenticated): a higher format.
                Some(8..10) => return Err(fail("UnsupportedFormat")),
                Some(_) => return Err(fail("InvalidBackup")),
                None if b.epoch != epoch => return Err(fail("InvalidBackup")),
                None => {}
            }
            let folded = fold(&b.secret.name);
            if d.live.contains_key(&folded) {
                return Err(fail("Conflict"));
            }
            if d.deleted.contains_key(&folded) {
                return Err(fail("ObjectIsDeletedButRecoverable"));
            }
            let cur = b.secret.current().clone();
            d.live.insert(folded, b.secret.clone());
            Ok(Done {
                value: (b.secret.name.clone(), cur.clone()),
                version: Some(cur.id),
                name: Some(b.secret.name.clone()),
            })
        });
        same("restore_secret", got, want, |a, (n, v)| {
            same_props(&a, &n, &v)
        })
    }

    fn check_settings(&self) -> Result<(), TestCaseError> {
        let s = self.v().settings().unwrap();
        let d = &self.model.data;
        prop_assert_eq!(
            (s.retention_days, s.purge_protection, s.max_versions),
            (d.retention_days, d.purge_protection, d.max_versions)
        );
        Ok(())
    }

    /// The end of a case: reopen as an owner or auditor (when a slot allows) and compare the
    /// whole audit log, then verify the chain.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        let Some(slot) = self
            .model
            .data
            .slots
            .iter()
            .find(|s| matches!(s.role, Role::Owner | Role::Auditor))
            .cloned()
        else {
            return Ok(());
        };
        self.reopen(&slot)?;
        let got = self
            .v()
            .audit(0, usize::MAX)
            .map_err(|e| TestCaseError::fail(format!("audit: {e:?}")))?;
        let got: Vec<Rec> = got
            .into_iter()
            .map(|r| Rec {
                time: r.time.unix(),
                actor: r.actor,
                op: r.operation.code(),
                name: r.name,
                version: r.version.map(|v| *v.as_bytes()),
                error: r.error,
            })
            .collect();
        let want = normalized(std::mem::take(&mut self.model.log));
        let got = normalized(got);
        prop_assert_eq!(got.len(), want.len(), "audit log lengths");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            prop_assert_eq!(g, w, "audit record {}", i + 1);
        }
        let n = self
            .v()
            .verify_audit()
            .map_err(|e| TestCaseError::fail(format!("verify_audit: {e:?}")))?;
        prop_assert!(n >= want.len() as u64);
        // Every record authenticates in its place, with its versions and index entries.
        self.v()
            .check_integrity()
            .map_err(|e| TestCaseError::fail(format!("check_integrity: {e:?}")))?;
        Ok(())
    }
}

fn same_deleted(a: tresor::DeletedSecret, d: MDeleted) -> Result<(), TestCaseError> {
    same_props(&a.properties, &d.secret.name, d.secret.current())?;
    prop_assert_eq!(
        (a.deleted_on.unix(), a.scheduled_purge.unix()),
        (d.deleted_on, d.scheduled_purge)
    );
    Ok(())
}

fn run_case(case: Case) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(Timestamp::from_unix(T0));
    let mem = SharedMem::new();
    let owner = MSlot {
        id: 1,
        label: "owner".to_string(),
        role: Role::Owner,
        key: 0,
    };
    let options = Options::new()
        .clock(clock.clone())
        .read_audit(case.level)
        .max_value_len(MAX_VALUE)
        .retention_days(case.retention_days)
        .purge_protection(case.purge_protection);
    let options = match case.max_versions {
        Some(n) => options.max_versions(n),
        None => options,
    };
    let vault = Vault::create_with_backend(mem.clone(), &key(owner.key), options)
        .map_err(|e| TestCaseError::fail(format!("create: {e:?}")))?;
    let model = Model {
        now: T0,
        level: case.level,
        data: Data {
            retention_days: case.retention_days,
            purge_protection: case.purge_protection,
            max_versions: case.max_versions,
            live: BTreeMap::new(),
            deleted: BTreeMap::new(),
            retired: Vec::new(),
            slots: vec![owner.clone()],
            may_destroy: true,
        },
        role: Role::Owner,
        actor: owner.label.clone(),
        log: vec![Rec {
            time: T0,
            actor: owner.label.clone(),
            op: Operation::VaultCreate.code(),
            name: None,
            version: None,
            error: None,
        }],
        known: Vec::new(),
        blobs: Vec::new(),
        epoch: 0,
        next_key: 1,
        checkpoint: None,
        committed: T0,
        pending: None,
    };
    let mut run = Run {
        mem,
        clock,
        vault: Some(vault),
        model,
    };
    for (i, op) in case.ops.iter().enumerate() {
        run.step(op)
            .map_err(|e| TestCaseError::fail(format!("step {i} ({op:?}): {e}")))?;
    }
    run.finish()
}

#[test]
fn the_vault_follows_the_model() {
    let cases: u32 = std::env::var("TRESOR_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let seed: u64 = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let started = std::time::Instant::now();
    if let Err(e) = runner.run(&case(), run_case) {
        panic!(
            "{e}\n\nreplay with: PROPTEST_RNG_SEED={seed} TRESOR_MODEL_CASES={cases} cargo test --test model"
        );
    }
    println!(
        "{cases} cases (seed {seed}) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
