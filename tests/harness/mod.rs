//! Shared pieces of the reliability tests (`crash_consistency`, `io_faults`, `tamper`,
//! `hygiene`): a deterministic random number generator, an in-memory redb storage backend
//! that can fail chosen I/O calls and simulate a power cut, and a logical snapshot of
//! everything a vault holds, for comparing "before" and "after" states.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use tresor::redb::StorageBackend;
use tresor::{
    AuditLevel, Credential, Error, ManualClock, Options, Role, SlotKind, Timestamp, Vault,
};

/// SplitMix64: small, deterministic, good enough to pick test cases.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A seed from the environment variable `var` (decimal or 0x-hex), or a fresh one.
pub fn seed_from_env(var: &str) -> u64 {
    if let Ok(s) = std::env::var(var) {
        let s = s.trim();
        let parsed = match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => s.parse(),
        };
        return parsed.unwrap_or_else(|_| panic!("{var} is not a number: {s}"));
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    Rng::new(t ^ u64::from(std::process::id()) << 32).next_u64()
}

/// A count from the environment variable `var`, or `default`.
pub fn count_from_env(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var} is not a number: {s}")),
        Err(_) => default,
    }
}

/// The fixed time the tests' manual clocks start at.
pub const T0: i64 = 1_800_000_000;

pub fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_unix(T0))
}

/// A key credential derived from a small number (tests need stable, distinct keys).
pub fn key(n: u8) -> Credential {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = n.wrapping_mul(31).wrapping_add(i as u8).wrapping_mul(7) ^ 0x5a;
    }
    Credential::key(k)
}

/// Which I/O call a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOn {
    Write,
    SetLen,
    Sync,
}

impl FaultOn {
    pub const ALL: [FaultOn; 3] = [FaultOn::Write, FaultOn::SetLen, FaultOn::Sync];
}

/// How a fault behaves once it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// The N-th call fails; later calls succeed.
    Once,
    /// The N-th call and every later write, set_len and sync fail (a dead disk).
    Forever,
}

#[derive(Clone, Copy, Debug)]
struct Fault {
    on: FaultOn,
    nth: u64,
    mode: FaultMode,
}

#[derive(Debug, Default)]
struct MemState {
    data: Vec<u8>,
    /// The bytes as of the last successful `sync_data` (lengths follow `set_len` at once).
    durable: Vec<u8>,
    /// Writes since the last successful sync, in order.
    pending: Vec<(u64, Vec<u8>)>,
    fault: Option<Fault>,
    /// Calls of each kind since the fault was armed: write, set_len, sync.
    calls: [u64; 3],
    dead: bool,
    injected: u64,
}

/// Bytes in memory with fault injection, shared between the backend redb owns and the test.
#[derive(Clone, Debug, Default)]
pub struct MemFile(Arc<Mutex<MemState>>);

impl MemFile {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        MemFile(Arc::new(Mutex::new(MemState {
            durable: bytes.clone(),
            data: bytes,
            ..MemState::default()
        })))
    }

    fn state(&self) -> MutexGuard<'_, MemState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A backend on these bytes for redb.
    pub fn backend(&self) -> MemBackend {
        MemBackend(self.clone())
    }

    /// The bytes as they are now (everything written, synced or not).
    pub fn bytes(&self) -> Vec<u8> {
        self.state().data.clone()
    }

    /// Fails the `nth` (from 1) call of kind `on` from now on.
    pub fn arm(&self, on: FaultOn, nth: u64, mode: FaultMode) {
        let mut s = self.state();
        s.fault = Some(Fault { on, nth, mode });
        s.calls = [0; 3];
        s.dead = false;
    }

    pub fn disarm(&self) {
        let mut s = self.state();
        s.fault = None;
        s.dead = false;
    }

    /// Whether the armed fault has hit.
    pub fn fired(&self) -> bool {
        let s = self.state();
        s.dead || s.fault.is_some_and(|f| s.calls[f.on as usize] >= f.nth)
    }

    /// Faults injected so far (each failed call counts).
    pub fn injected(&self) -> u64 {
        self.state().injected
    }

    /// The bytes a power cut now would leave: the last synced bytes, with each write since then
    /// kept whole, lost, or torn (a random subset of its 512-byte sectors kept). redb assumes
    /// that bytes outside a write's range never change and that a sync makes writes durable;
    /// both hold here.
    pub fn crash_image(&self, rng: &mut Rng) -> Vec<u8> {
        let s = self.state();
        let mut img = s.durable.clone();
        for (off, buf) in &s.pending {
            let off = *off as usize;
            match rng.below(3) {
                0 => {}
                1 => apply(&mut img, off, buf),
                _ => {
                    let mut start = 0;
                    while start < buf.len() {
                        let end = (((off + start) / 512 + 1) * 512 - off).min(buf.len());
                        if rng.chance(50) {
                            apply(&mut img, off + start, &buf[start..end]);
                        }
                        start = end;
                    }
                }
            }
        }
        img
    }

    fn check(&self, s: &mut MemState, kind: FaultOn) -> io::Result<()> {
        if s.dead {
            s.injected += 1;
            return Err(io::Error::other("injected fault (dead disk)"));
        }
        if let Some(f) = s.fault {
            s.calls[kind as usize] += 1;
            if f.on == kind && s.calls[kind as usize] == f.nth {
                s.injected += 1;
                if f.mode == FaultMode::Forever {
                    s.dead = true;
                }
                return Err(io::Error::other("injected fault"));
            }
        }
        Ok(())
    }
}

fn apply(img: &mut [u8], off: usize, buf: &[u8]) {
    if off >= img.len() {
        return;
    }
    let end = (off + buf.len()).min(img.len());
    img[off..end].copy_from_slice(&buf[..end - off]);
}

/// The redb side of a [`MemFile`].
#[derive(Debug)]
pub struct MemBackend(MemFile);

impl StorageBackend for MemBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.state().data.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let s = self.0.state();
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start
            .checked_add(out.len())
            .filter(|&e| e <= s.data.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(&s.data[start..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.0.state();
        self.0.check(&mut s, FaultOn::SetLen)?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        s.data.resize(len, 0);
        s.durable.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.0.state();
        self.0.check(&mut s, FaultOn::Sync)?;
        s.durable = s.data.clone();
        s.pending.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.0.state();
        self.0.check(&mut s, FaultOn::Write)?;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start + data.len();
        if end > s.data.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "write past the end",
            ));
        }
        s.data[start..end].copy_from_slice(data);
        s.pending.push((offset, data.to_vec()));
        Ok(())
    }
}

/// Options for opening a vault only to look at it: no read records (the snapshot itself must
/// not change the audit log), the tests' clock.
pub fn quiet(clock: &ManualClock) -> Options {
    Options::new()
        .clock(clock.clone())
        .read_audit(AuditLevel::Off)
}

/// One version as a snapshot sees it (version ids are random, so they are left out; the
/// sequence number identifies a version within its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionState {
    pub sequence: u64,
    pub enabled: bool,
    /// `None` when the version is disabled.
    pub value: Option<Vec<u8>>,
    pub content_type: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub expires_on: Option<Timestamp>,
    pub updated: Timestamp,
}

/// One audit record: (sequence, actor, operation, secret name, error).
pub type AuditLine = (u64, String, String, Option<String>, Option<String>);

/// Everything a vault holds, as read through the public API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultState {
    /// Live secrets by name: their kept versions, oldest first.
    pub live: BTreeMap<String, Vec<VersionState>>,
    /// Deleted secrets by name: the current version's sequence, and the purge date.
    pub deleted: BTreeMap<String, (u64, Timestamp)>,
    pub slots: Vec<(u32, String, Role, String)>,
    pub purge_protection: bool,
    pub max_versions: Option<u32>,
    /// (sequence, actor, operation, secret name, error) of every audit record.
    pub audit: Vec<AuditLine>,
}

impl VaultState {
    /// The live secrets as name → values of their enabled versions, oldest first.
    pub fn values(&self) -> BTreeMap<String, Vec<Option<Vec<u8>>>> {
        self.live
            .iter()
            .map(|(n, vs)| (n.clone(), vs.iter().map(|v| v.value.clone()).collect()))
            .collect()
    }
}

/// Reads everything `vault` holds. Every value read is checked against the version it claims
/// to be (its id, read again by id), so a snapshot never hides a mislabelled value.
pub fn snapshot(vault: &Vault) -> Result<VaultState, Error> {
    let mut live = BTreeMap::new();
    for p in vault.list_all()? {
        let mut versions = Vec::new();
        let mut listed = vault.list_versions(&p.name)?;
        listed.reverse();
        for v in listed {
            let value = if v.enabled {
                let s = vault.get_version(&p.name, &v.version)?;
                if s.properties.version != v.version || s.properties.sequence != v.sequence {
                    return Err(Error::Corrupted(format!(
                        "get_version({}) returned another version",
                        v.version
                    )));
                }
                Some(s.expose().to_vec())
            } else {
                None
            };
            versions.push(VersionState {
                sequence: v.sequence,
                enabled: v.enabled,
                value,
                content_type: v.content_type.clone(),
                tags: v.tags.clone(),
                expires_on: v.expires_on,
                updated: v.updated,
            });
        }
        if let Some(cur) = versions.last().filter(|v| v.enabled) {
            let s = vault.get(&p.name)?;
            if Some(s.expose()) != cur.value.as_deref() || s.properties.sequence != cur.sequence {
                return Err(Error::Corrupted(format!(
                    "get({}) disagrees with its version listing",
                    p.name
                )));
            }
        }
        live.insert(p.name.clone(), versions);
    }
    let mut deleted = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = vault.list_deleted(cursor.as_deref(), 100)?;
        for d in page.items {
            deleted.insert(
                d.properties.name.clone(),
                (d.properties.sequence, d.scheduled_purge),
            );
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let slots = vault
        .slots()?
        .into_iter()
        .map(|s| {
            let kind = match &s.kind {
                SlotKind::Passphrase(p) => format!(
                    "passphrase m={} t={} p={}",
                    p.memory_kib, p.iterations, p.parallelism
                ),
                SlotKind::Key => "key".to_string(),
                other => format!("{other:?}"),
            };
            (s.id, s.label.clone(), s.role, kind)
        })
        .collect();
    let settings = vault.settings()?;
    let mut audit = Vec::new();
    let mut after = 0;
    loop {
        let page = vault.audit(after, 1000)?;
        if page.is_empty() {
            break;
        }
        for r in page {
            after = r.seq;
            audit.push((
                r.seq,
                r.actor.clone(),
                r.operation.as_str().to_string(),
                r.name.clone(),
                r.error.clone(),
            ));
        }
    }
    Ok(VaultState {
        live,
        deleted,
        slots,
        purge_protection: settings.purge_protection,
        max_versions: settings.max_versions,
        audit,
    })
}
