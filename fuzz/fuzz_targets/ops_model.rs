//! A sequence of operations against a fresh in-memory vault and a small model of the rules:
//! versions, enable/disable, soft-delete (7-day retention), recover, purge, automatic purges
//! when due (on writes and on open), backups and restores (refused after a key rotation),
//! case-insensitive names, reopening. Every result is compared with the model; at the end the
//! audit chain and the integrity check must pass.
#![no_main]

use std::collections::BTreeMap;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tresor::{
    AuditLevel, Clock, Error, ManualClock, Options, PropertiesUpdate, SetOptions, Timestamp, Vault,
};
use tresor_fuzz::{Mem, key};

#[derive(Arbitrary, Debug)]
enum Op {
    Set {
        name: u8,
        upper: bool,
        value: Vec<u8>,
        disabled: bool,
    },
    Get {
        name: u8,
        upper: bool,
    },
    GetVersion {
        name: u8,
        back: u8,
    },
    Enable {
        name: u8,
        on: bool,
    },
    Delete {
        name: u8,
    },
    Recover {
        name: u8,
    },
    Purge {
        name: u8,
    },
    Advance {
        days: u8,
    },
    PurgeExpired,
    Backup {
        name: u8,
    },
    Restore,
    Rotate,
    ListAll,
    ListVersions {
        name: u8,
    },
    Reopen,
}

#[derive(Clone, Debug)]
struct Ver {
    id: tresor::VersionId,
    value: Vec<u8>,
    enabled: bool,
}

#[derive(Clone, Debug)]
struct Entry {
    display: String,
    versions: Vec<Ver>,
}

#[derive(Default)]
struct Model {
    live: BTreeMap<String, Entry>,
    /// Deleted secrets and their purge dates.
    deleted: BTreeMap<String, (Entry, i64)>,
    /// The last backup: the secret as it was, and the key epoch it was made in.
    backup: Option<(Vec<u8>, String, Entry, u32)>,
    epoch: u32,
}

const RETENTION: i64 = 7 * 86_400;
const T0: i64 = 1_800_000_000;

impl Model {
    /// What a write (or an open) does first: purge what is due.
    fn purge_due(&mut self, now: i64) {
        self.deleted.retain(|_, (_, due)| *due > now);
    }
}

fn name_of(i: u8, upper: bool) -> String {
    let n = format!("n{}", i % 4);
    if upper { n.to_ascii_uppercase() } else { n }
}

fn code<T>(r: &tresor::Result<T>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

fn open(mem: &Mem, clock: &ManualClock) -> Vault {
    Vault::open_with_backend(
        mem.clone(),
        &key(),
        Options::new()
            .clock(clock.clone())
            .read_audit(AuditLevel::Buffered),
    )
    .expect("reopen")
}

fuzz_target!(|ops: Vec<Op>| {
    if ops.len() > 64 {
        return;
    }
    let clock = ManualClock::new(Timestamp::from_unix(T0));
    let mem = Mem::default();
    let mut v = Vault::create_with_backend(
        mem.clone(),
        &key(),
        Options::new().clock(clock.clone()).retention_days(7),
    )
    .expect("create");
    let mut m = Model::default();
    for op in ops {
        let now = clock.now().unix();
        match op {
            Op::Set {
                name,
                upper,
                value,
                disabled,
            } => {
                let n = name_of(name, upper);
                let k = n.to_ascii_lowercase();
                let value: Vec<u8> = value.into_iter().take(64).collect();
                let r = v.set_with(&n, &value, &SetOptions::new().disabled(disabled));
                m.purge_due(now);
                if m.deleted.contains_key(&k) {
                    assert!(matches!(r, Err(Error::Conflict { deleted: true })), "{r:?}");
                } else {
                    let p = r.expect("set");
                    let e = m.live.entry(k).or_insert(Entry {
                        display: n.clone(),
                        versions: vec![],
                    });
                    e.versions.push(Ver {
                        id: p.version,
                        value,
                        enabled: !disabled,
                    });
                    assert_eq!(p.sequence as usize, e.versions.len());
                    assert_eq!(p.name, e.display);
                }
            }
            Op::Get { name, upper } => {
                let n = name_of(name, upper);
                let r = v.get(&n);
                match m.live.get(&n.to_ascii_lowercase()) {
                    None => assert_eq!(code(&r), "NotFound"),
                    Some(e) => {
                        let cur = e.versions.last().expect("a version");
                        if cur.enabled {
                            let s = r.expect("get");
                            assert_eq!(s.expose(), cur.value.as_slice(), "WRONG VALUE");
                            assert_eq!(s.properties.version, cur.id);
                            assert_eq!(s.properties.name, e.display);
                        } else {
                            assert_eq!(code(&r), "Disabled");
                        }
                    }
                }
            }
            Op::GetVersion { name, back } => {
                let k = name_of(name, false);
                if let Some(e) = m.live.get(&k) {
                    let i = e.versions.len() - 1 - (back as usize % e.versions.len());
                    let ver = &e.versions[i];
                    let r = v.get_version(&k, &ver.id);
                    if ver.enabled {
                        let s = r.expect("get_version");
                        assert_eq!(s.expose(), ver.value.as_slice(), "WRONG VALUE");
                        assert_eq!(s.properties.sequence as usize, i + 1);
                    } else {
                        assert_eq!(code(&r), "Disabled");
                    }
                } else if let Some((e, _)) = m.deleted.get(&k) {
                    let r = v.get_version(&k, &e.versions[0].id);
                    assert_eq!(code(&r), "NotFound");
                }
            }
            Op::Enable { name, on } => {
                let k = name_of(name, false);
                let r = v.update_properties(&k, None, &PropertiesUpdate::new().enabled(on));
                m.purge_due(now);
                match m.live.get_mut(&k) {
                    Some(e) => {
                        r.expect("update");
                        e.versions.last_mut().expect("a version").enabled = on;
                    }
                    None => assert_eq!(code(&r), "NotFound"),
                }
            }
            Op::Delete { name } => {
                let k = name_of(name, false);
                let r = v.delete(&k);
                m.purge_due(now);
                match m.live.remove(&k) {
                    Some(e) => {
                        let d = r.expect("delete");
                        assert_eq!(d.scheduled_purge.unix(), now + RETENTION);
                        m.deleted.insert(k, (e, now + RETENTION));
                    }
                    None => assert_eq!(code(&r), "NotFound"),
                }
            }
            Op::Recover { name } => {
                let k = name_of(name, false);
                let r = v.recover(&k);
                m.purge_due(now);
                match m.deleted.remove(&k) {
                    Some((e, _)) => {
                        r.expect("recover");
                        m.live.insert(k, e);
                    }
                    None => assert_eq!(code(&r), "NotFound"),
                }
            }
            Op::Purge { name } => {
                let k = name_of(name, false);
                let r = v.purge(&k);
                m.purge_due(now);
                match m.deleted.remove(&k) {
                    Some(_) => r.expect("purge"),
                    None => assert_eq!(code(&r), "NotFound"),
                }
            }
            Op::Advance { days } => {
                clock.advance(Duration::from_secs(u64::from(days % 10) * 86_400 + 1));
            }
            Op::PurgeExpired => {
                v.purge_expired().expect("purge_expired");
                m.purge_due(now);
            }
            Op::Backup { name } => {
                let k = name_of(name, false);
                let r = v.backup_secret(&k);
                match m.live.get(&k) {
                    Some(e) => m.backup = Some((r.expect("backup"), k, e.clone(), m.epoch)),
                    None => assert_eq!(code(&r), "NotFound"),
                }
            }
            Op::Restore => {
                let Some((blob, k, e, epoch)) = m.backup.clone() else {
                    continue;
                };
                let r = v.restore_secret(&blob);
                m.purge_due(now);
                if epoch != m.epoch {
                    assert_eq!(code(&r), "InvalidBackup");
                } else if m.live.contains_key(&k) {
                    assert_eq!(code(&r), "Conflict");
                } else if m.deleted.contains_key(&k) {
                    assert_eq!(code(&r), "ObjectIsDeletedButRecoverable");
                } else {
                    let p = r.expect("restore");
                    assert_eq!(p.version, e.versions.last().expect("a version").id);
                    m.live.insert(k, e);
                }
            }
            Op::Rotate => {
                v.rotate_master_key(&[], |_| {}).expect("rotate");
                m.epoch += 1;
            }
            Op::ListAll => {
                let mut got: Vec<String> = v
                    .list_all()
                    .expect("list")
                    .into_iter()
                    .map(|p| p.name)
                    .collect();
                got.sort();
                let mut want: Vec<String> = m.live.values().map(|e| e.display.clone()).collect();
                want.sort();
                assert_eq!(got, want);
            }
            Op::ListVersions { name } => {
                let k = name_of(name, true);
                let r = v.list_versions(&k);
                match m.live.get(&k.to_ascii_lowercase()) {
                    Some(e) => {
                        let got: Vec<_> = r
                            .expect("list_versions")
                            .into_iter()
                            .map(|p| (p.version, p.enabled))
                            .collect();
                        let want: Vec<_> =
                            e.versions.iter().rev().map(|x| (x.id, x.enabled)).collect();
                        assert_eq!(got, want);
                    }
                    None => assert_eq!(code(&r), "NotFound"),
                }
            }
            Op::Reopen => {
                drop(v);
                v = open(&mem, &clock);
                m.purge_due(now);
            }
        }
    }
    v.verify_audit().expect("the audit chain verifies");
    v.check_integrity().expect("the vault is sound");
});
