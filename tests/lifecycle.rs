//! The lifecycle of secrets, driven by a [`ManualClock`]: soft-delete and recover, purge and
//! purge protection, retention, automatic purges (on writes, on open, on request), version
//! limits, check-and-set, backup blobs, master key rotation, expiry, checkpoints against rolled
//! back files, and compaction.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use tresor::{
    AuditRecord, Checkpoint, Credential, DeletedSecret, Error, Expect, KdfParams, ManualClock,
    Operation, Options, PropertiesUpdate, Role, SYSTEM_ACTOR, SecretProperties, SetOptions,
    SlotSpec, Timestamp, Vault, VersionId,
};

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(secs)
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * DAY)
}

/// Every kept version of `name`, newest first, with its value (`None` when disabled).
fn history(v: &Vault, name: &str) -> Vec<(SecretProperties, Option<Vec<u8>>)> {
    v.list_versions(name)
        .unwrap()
        .into_iter()
        .map(|p| {
            let value = match v.get_version(name, &p.version) {
                Ok(s) => {
                    assert_eq!(s.properties, p);
                    Some(s.expose().to_vec())
                }
                Err(Error::Disabled) => {
                    assert!(!p.enabled);
                    None
                }
                Err(e) => panic!("{name} {}: {e:?}", p.version),
            };
            (p, value)
        })
        .collect()
}

/// A secret with three versions and varied properties, written at three different times.
fn rich_secret(v: &Vault, c: &ManualClock, name: &str) -> Vec<SecretProperties> {
    let p1 = v
        .set_with(
            name,
            b"first \x00\xff bytes".as_slice(),
            &SetOptions::new()
                .content_type("application/octet-stream")
                .tag("env", "prod")
                .tag("owner", "team-a"),
        )
        .unwrap();
    c.advance(Duration::from_secs(10));
    let p2 = v
        .set_with(
            name,
            "second",
            &SetOptions::new()
                .disabled(true)
                .expires_on(at(T0 + 1000 * DAY as i64)),
        )
        .unwrap();
    c.advance(Duration::from_secs(10));
    let p3 = v
        .set_with(
            name,
            "third",
            &SetOptions::new().not_before(at(T0)).tag("rotation", "3"),
        )
        .unwrap();
    c.advance(Duration::from_secs(10));
    v.update_properties(
        name,
        Some(&p1.version),
        &PropertiesUpdate::new().content_type(Some("text/plain".into())),
    )
    .unwrap();
    vec![p3, p2, p1]
}

fn system_purges(log: &[AuditRecord]) -> Vec<&AuditRecord> {
    log.iter()
        .filter(|r| r.actor == SYSTEM_ACTOR && r.operation == Operation::SecretPurge)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Soft-delete and recover

#[test]
fn delete_hides_a_secret_and_recover_restores_it_whole() {
    let c = clock();
    let v = Vault::create_in_memory(&key(1), Options::new().clock(c.clone())).unwrap();
    let written = rich_secret(&v, &c, "Rich-Secret");
    v.set("bystander", "b").unwrap();
    let before = history(&v, "rich-secret");
    assert_eq!(before.len(), 3);
    assert_eq!(
        before.iter().map(|(p, _)| p.version).collect::<Vec<_>>(),
        written.iter().map(|p| p.version).collect::<Vec<_>>()
    );

    let deleted_at = c.now_unix();
    let d = v.delete("RICH-secret").unwrap();
    assert_eq!(d.properties, before[0].0);
    assert_eq!(d.deleted_on, at(deleted_at));
    assert_eq!(d.scheduled_purge, at(deleted_at + 90 * DAY as i64));

    // Gone from every live view.
    assert!(matches!(v.get("rich-secret"), Err(Error::NotFound)));
    assert!(matches!(
        v.get_version("rich-secret", &written[2].version),
        Err(Error::NotFound)
    ));
    assert!(matches!(
        v.properties("rich-secret", None),
        Err(Error::NotFound)
    ));
    assert!(matches!(
        v.list_versions("rich-secret"),
        Err(Error::NotFound)
    ));
    assert!(matches!(
        v.update_properties("rich-secret", None, &PropertiesUpdate::new().enabled(true)),
        Err(Error::NotFound)
    ));
    assert!(matches!(
        v.backup_secret("rich-secret"),
        Err(Error::NotFound)
    ));
    assert!(matches!(v.delete("rich-secret"), Err(Error::NotFound)));
    let live: Vec<String> = v.list_all().unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(live, ["bystander"]);
    // The name is reserved.
    for expect in [None, Some(Expect::Absent)] {
        let mut o = SetOptions::new();
        o.expect = expect;
        assert!(matches!(
            v.set_with("rich-SECRET", "x", &o),
            Err(Error::Conflict { deleted: true })
        ));
    }
    // Shown as deleted.
    assert_eq!(v.deleted_properties("rich-secret").unwrap(), d);
    let listed = v.list_deleted(None, 10).unwrap();
    assert_eq!(listed.items, vec![d.clone()]);
    assert!(listed.next.is_none());
    assert!(matches!(
        v.deleted_properties("bystander"),
        Err(Error::NotFound)
    ));
    assert!(matches!(v.recover("bystander"), Err(Error::NotFound)));

    // Ten days later: recovered, every version byte for byte with its properties.
    c.advance(days(10));
    let p = v.recover("rich-secret").unwrap();
    assert_eq!(p, before[0].0);
    assert_eq!(history(&v, "rich-secret"), before);
    assert!(matches!(
        v.deleted_properties("rich-secret"),
        Err(Error::NotFound)
    ));
    assert!(v.list_deleted(None, 10).unwrap().items.is_empty());
    // And it carries on.
    let p4 = v.set("rich-secret", "fourth").unwrap();
    assert_eq!(p4.sequence, 4);
    assert_eq!(p4.name, "Rich-Secret");
    v.verify_audit().unwrap();
}

trait NowUnix {
    fn now_unix(&self) -> i64;
}

impl NowUnix for ManualClock {
    fn now_unix(&self) -> i64 {
        tresor::Clock::now(self).unix()
    }
}

#[test]
fn purge_frees_the_name_for_good() {
    let c = clock();
    let v = Vault::create_in_memory(&key(1), Options::new().clock(c.clone())).unwrap();
    let old = v.set("s", "old").unwrap();
    assert!(
        matches!(v.purge("s"), Err(Error::NotFound)),
        "only deleted secrets"
    );
    assert!(matches!(v.purge("never"), Err(Error::NotFound)));
    v.delete("s").unwrap();
    v.purge("s").unwrap();
    assert!(matches!(v.deleted_properties("s"), Err(Error::NotFound)));
    assert!(matches!(v.recover("s"), Err(Error::NotFound)));
    assert!(matches!(v.purge("s"), Err(Error::NotFound)));
    assert!(v.list_deleted(None, 10).unwrap().items.is_empty());
    let new = v
        .set_with("S", "new", &SetOptions::new().expect(Expect::Absent))
        .unwrap();
    assert_eq!(new.sequence, 1);
    assert_eq!(new.name, "S");
    assert_ne!(new.version, old.version);
    assert!(matches!(
        v.get_version("s", &old.version),
        Err(Error::NotFound)
    ));
    assert_eq!(v.list_versions("s").unwrap().len(), 1);
    // A manual purge is the caller's, not the system's.
    let log = audit_log(&v);
    assert!(system_purges(&log).is_empty());
    assert!(
        log.iter().any(|r| r.operation == Operation::SecretPurge
            && r.actor == "owner"
            && r.error.is_none())
    );
}

#[test]
fn retention_is_seven_to_ninety_days_fixed_at_creation() {
    for bad in [0u16, 1, 6, 91, 365, u16::MAX] {
        assert!(
            matches!(
                Vault::create_in_memory(&key(1), Options::new().retention_days(bad)),
                Err(Error::InvalidArgument(_))
            ),
            "{bad}"
        );
    }
    for good in [7u16, 30, 90] {
        let c = clock();
        let v = Vault::create_in_memory(
            &key(1),
            Options::new().clock(c.clone()).retention_days(good),
        )
        .unwrap();
        assert_eq!(v.settings().unwrap().retention_days, good);
        v.set("s", "v").unwrap();
        let d = v.delete("s").unwrap();
        assert_eq!(
            d.scheduled_purge,
            at(T0 + i64::from(good) * DAY as i64),
            "{good}"
        );
    }
    // Fixed at creation: options given at open do not change it.
    let mem = SharedMem::new();
    Vault::create_with_backend(mem.clone(), &key(1), Options::new().retention_days(7)).unwrap();
    let v = Vault::open_with_backend(mem, &key(1), Options::new().retention_days(90)).unwrap();
    assert_eq!(v.settings().unwrap().retention_days, 7);
}

// ---------------------------------------------------------------------------------------------
// Purge protection and automatic purges

/// A vault with purge protection, retention 7 days, and `doomed` deleted at T0.
fn protected(backend: SharedMem, c: &ManualClock) -> (Vault, DeletedSecret) {
    let v = Vault::create_with_backend(
        backend,
        &key(1),
        Options::new()
            .clock(c.clone())
            .purge_protection(true)
            .retention_days(7),
    )
    .unwrap();
    v.set("doomed", "v1").unwrap();
    v.set("doomed", "v2").unwrap();
    v.set("keeper", "k").unwrap();
    let d = v.delete("doomed").unwrap();
    assert_eq!(d.scheduled_purge, at(T0 + 7 * DAY as i64));
    (v, d)
}

#[test]
fn purge_protection_refuses_early_purges() {
    let c = clock();
    let (v, d) = protected(SharedMem::new(), &c);
    assert!(v.settings().unwrap().purge_protection);
    for t in [T0, T0 + 1, d.scheduled_purge.unix() - 1] {
        c.set(at(t));
        match v.purge("doomed") {
            Err(Error::PurgeProtected { until }) => assert_eq!(until, d.scheduled_purge),
            other => panic!("at {t}: {other:?}"),
        }
        // Nothing is due yet: no write purges it.
        assert_eq!(v.purge_expired().unwrap(), 0);
        v.set("keeper", "k").unwrap();
        assert_eq!(v.deleted_properties("doomed").unwrap(), d);
    }
    let log = audit_log(&v);
    assert_eq!(
        log.iter()
            .filter(|r| r.operation == Operation::SecretPurge
                && r.error.as_deref() == Some("PurgeProtected"))
            .count(),
        3
    );
    assert!(system_purges(&log).is_empty());
    // It can still be recovered.
    v.recover("doomed").unwrap();
    assert_eq!(v.get("doomed").unwrap().expose(), b"v2");
}

fn assert_purged_by_system(v: &Vault) {
    assert!(matches!(
        v.deleted_properties("doomed"),
        Err(Error::NotFound)
    ));
    assert!(v.list_deleted(None, 10).unwrap().items.is_empty());
    let log = audit_log(v);
    let purges = system_purges(&log);
    assert_eq!(purges.len(), 1, "one automatic purge record");
    assert_eq!(purges[0].name.as_deref(), Some("doomed"));
    assert!(purges[0].error.is_none());
    // The name is free again, and nothing of the old secret is left.
    let p = v.set("doomed", "reborn").unwrap();
    assert_eq!(p.sequence, 1);
    assert_eq!(v.list_versions("doomed").unwrap().len(), 1);
    assert_eq!(v.get("keeper").unwrap().expose(), b"k");
    v.verify_audit().unwrap();
}

#[test]
fn automatic_purge_on_the_next_write() {
    let c = clock();
    let (v, d) = protected(SharedMem::new(), &c);
    c.set(d.scheduled_purge.minus(Duration::from_secs(1)));
    v.set("keeper", "k").unwrap();
    assert!(v.deleted_properties("doomed").is_ok(), "not yet");
    c.set(d.scheduled_purge.plus(Duration::from_secs(1)));
    // Reads do not purge.
    assert!(v.deleted_properties("doomed").is_ok());
    v.set("keeper", "k").unwrap();
    assert_purged_by_system(&v);
}

#[test]
fn automatic_purge_on_open() {
    let c = clock();
    let mem = SharedMem::new();
    let (v, d) = protected(mem.clone(), &c);
    drop(v);
    c.set(d.scheduled_purge.minus(Duration::from_secs(1)));
    let v =
        Vault::open_with_backend(mem.clone(), &key(1), Options::new().clock(c.clone())).unwrap();
    assert!(v.deleted_properties("doomed").is_ok(), "not yet");
    drop(v);
    c.set(d.scheduled_purge.plus(Duration::from_secs(1)));
    let v = Vault::open_with_backend(mem, &key(1), Options::new().clock(c.clone())).unwrap();
    // Purged by the open itself, before any write.
    assert!(matches!(
        v.deleted_properties("doomed"),
        Err(Error::NotFound)
    ));
    let log = audit_log(&v);
    let open_at = log
        .iter()
        .rposition(|r| r.operation == Operation::VaultOpen)
        .unwrap();
    assert_eq!(log[open_at + 1].actor, SYSTEM_ACTOR);
    assert_eq!(log[open_at + 1].operation, Operation::SecretPurge);
    assert_purged_by_system(&v);
}

#[test]
fn automatic_purge_on_request() {
    let c = clock();
    let (v, d) = protected(SharedMem::new(), &c);
    c.set(d.scheduled_purge.minus(Duration::from_secs(1)));
    assert_eq!(v.purge_expired().unwrap(), 0);
    c.set(d.scheduled_purge.plus(Duration::from_secs(1)));
    assert_eq!(
        v.purge_expired().unwrap(),
        1,
        "purge_expired counts what it purged"
    );
    assert_eq!(v.purge_expired().unwrap(), 0);
    assert_purged_by_system(&v);
}

#[test]
fn purge_expired_counts_every_due_secret() {
    let c = clock();
    let v = Vault::create_in_memory(&key(1), Options::new().clock(c.clone()).retention_days(7))
        .unwrap();
    for n in ["a", "b", "c"] {
        v.set(n, "x").unwrap();
        v.delete(n).unwrap();
        c.advance(days(1));
    }
    c.set(at(T0 + 8 * DAY as i64 + 1));
    // a and b are due (deleted at T0 and T0+1d), c is not (T0+2d+7d).
    assert_eq!(v.purge_expired().unwrap(), 2);
    let left: Vec<String> = v
        .list_deleted(None, 10)
        .unwrap()
        .items
        .into_iter()
        .map(|d| d.properties.name)
        .collect();
    assert_eq!(left, ["c"]);
}

#[test]
fn without_protection_purge_is_immediate_and_automatic_when_due() {
    let c = clock();
    let v = Vault::create_in_memory(&key(1), Options::new().clock(c.clone()).retention_days(7))
        .unwrap();
    v.set("s", "v").unwrap();
    let d = v.delete("s").unwrap();
    // Without purge protection, a purge is allowed at once.
    v.purge("s").unwrap();
    v.set("s", "v").unwrap();
    v.delete("s").unwrap();
    c.set(d.scheduled_purge.plus(Duration::from_secs(1)));
    v.set("other", "x").unwrap();
    assert!(matches!(v.deleted_properties("s"), Err(Error::NotFound)));
    assert_eq!(system_purges(&audit_log(&v)).len(), 1);
}

#[test]
fn purge_protection_cannot_be_turned_off() {
    let (_dir, path) = temp_path("protected.tresor");
    let v = Vault::create(&path, &key(1), Options::new().clock(clock())).unwrap();
    assert!(!v.settings().unwrap().purge_protection);
    v.set("s", "v").unwrap();
    v.enable_purge_protection().unwrap();
    assert!(v.settings().unwrap().purge_protection);
    // Enabling again is harmless and it stays on.
    v.enable_purge_protection().unwrap();
    v.delete("s").unwrap();
    assert!(matches!(v.purge("s"), Err(Error::PurgeProtected { .. })));
    drop(v);
    let v = Vault::open(&path, &key(1), Options::new().clock(clock())).unwrap();
    assert!(v.settings().unwrap().purge_protection);
    assert!(matches!(v.purge("s"), Err(Error::PurgeProtected { .. })));
    drop(v);

    // Editing the settings record in the file (its sealed bytes, or the record removed) makes
    // the file fail to open rather than lose the setting.
    let settings = meta_row(&path, "settings").unwrap();
    for i in [0, 24, settings.len() / 2, settings.len() - 1] {
        let copy = copy_to(&path, "edited.tresor");
        let mut s = settings.clone();
        s[i] ^= 1;
        set_meta_row(&copy, "settings", Some(&s));
        let r = Vault::open(&copy, &key(1), Options::new());
        assert!(matches!(r, Err(Error::Corrupted(_))), "byte {i}: {r:?}");
        std::fs::remove_file(&copy).unwrap();
    }
    let copy = copy_to(&path, "removed.tresor");
    set_meta_row(&copy, "settings", None);
    assert!(matches!(
        Vault::open(&copy, &key(1), Options::new()),
        Err(Error::Corrupted(_))
    ));
}

#[test]
fn settings_from_an_older_copy_of_the_same_vault_do_not_open() {
    let (_dir, path) = temp_path("splice.tresor");
    let v = Vault::create(&path, &key(1), Options::new().clock(clock())).unwrap();
    v.set("s", "v").unwrap();
    drop(v);
    let unprotected = meta_row(&path, "settings").unwrap();
    let v = Vault::open(&path, &key(1), Options::new().clock(clock())).unwrap();
    v.enable_purge_protection().unwrap();
    drop(v);
    // The older settings record authenticates as a record of this vault, but the header MAC
    // covers the settings.
    set_meta_row(&path, "settings", Some(&unprotected));
    assert!(matches!(
        Vault::open(&path, &key(1), Options::new()),
        Err(Error::Corrupted(_))
    ));
}

/// The `settings` and `auth` rows of an older copy of the same vault authenticate together, but
/// the audit head (rewritten by every commit) carries a copy of the settings: the splice is
/// refused at open. Putting the older head back too is refused by the audit tail check, and
/// cutting the audit log to match is a rollback that the checkpoint catches.
#[test]
fn settings_and_header_mac_from_an_older_copy_do_not_turn_purge_protection_off() {
    let (_dir, path) = temp_path("splice2.tresor");
    let v = Vault::create(&path, &key(1), Options::new().clock(clock())).unwrap();
    v.set("s", "v").unwrap();
    drop(v);
    let old_settings = meta_row(&path, "settings").unwrap();
    let old_auth = meta_row(&path, "auth").unwrap();
    let old_head = audit_head_row(&path).unwrap();
    let v = Vault::open(&path, &key(1), Options::new().clock(clock())).unwrap();
    v.enable_purge_protection().unwrap();
    v.delete("s").unwrap();
    let cp = v.checkpoint().unwrap();
    drop(v);
    let protected = std::fs::read(&path).unwrap();
    let refused_or_protected =
        |path: &std::path::Path, options: Options| match Vault::open(path, &key(1), options) {
            Err(e) => assert!(
                matches!(e, Error::Corrupted(_) | Error::RolledBack(_)),
                "{e}"
            ),
            Ok(v) => {
                assert!(v.settings().unwrap().purge_protection);
                assert!(matches!(v.purge("s"), Err(Error::PurgeProtected { .. })));
            }
        };
    // Settings and header MAC from the older copy: the audit head's copy of the settings differs.
    set_meta_row(&path, "settings", Some(&old_settings));
    set_meta_row(&path, "auth", Some(&old_auth));
    refused_or_protected(&path, Options::new().clock(clock()));
    refused_or_protected(&path, Options::new().clock(clock()).expect_checkpoint(cp));
    // The older audit head too: it no longer names the last audit record.
    set_audit_head_row(&path, Some(&old_head));
    refused_or_protected(&path, Options::new().clock(clock()));
    // Both refusals are Corrupted, without needing a checkpoint.
    assert!(matches!(
        Vault::open(&path, &key(1), Options::new().clock(clock())),
        Err(Error::Corrupted(_))
    ));
    std::fs::write(&path, protected).unwrap();
    set_meta_row(&path, "settings", Some(&old_settings));
    set_meta_row(&path, "auth", Some(&old_auth));
    assert!(matches!(
        Vault::open(&path, &key(1), Options::new().clock(clock())),
        Err(Error::Corrupted(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Version limits

fn ids(ps: &[SecretProperties]) -> Vec<VersionId> {
    ps.iter().map(|p| p.version).collect()
}

#[test]
fn max_versions_per_vault_prunes_the_oldest() {
    let c = clock();
    let v =
        Vault::create_in_memory(&key(1), Options::new().clock(c.clone()).max_versions(3)).unwrap();
    assert_eq!(v.settings().unwrap().max_versions, Some(3));
    let mut written = Vec::new();
    for i in 1..=5 {
        written.push(v.set("s", format!("v{i}")).unwrap());
    }
    let kept = v.list_versions("s").unwrap();
    assert_eq!(
        kept.iter().map(|p| p.sequence).collect::<Vec<_>>(),
        [5, 4, 3]
    );
    for p in &written[..2] {
        assert!(matches!(
            v.get_version("s", &p.version),
            Err(Error::NotFound)
        ));
        assert!(matches!(
            v.update_properties(
                "s",
                Some(&p.version),
                &PropertiesUpdate::new().enabled(false)
            ),
            Err(Error::NotFound)
        ));
    }
    for (i, p) in written.iter().enumerate().skip(2) {
        assert_eq!(
            v.get_version("s", &p.version).unwrap().expose(),
            format!("v{}", i + 1).as_bytes()
        );
    }
    // Each pruned version is recorded, by the system, naming the version.
    let log = audit_log(&v);
    let pruned: Vec<Option<VersionId>> = log
        .iter()
        .filter(|r| r.operation == Operation::SecretPrune)
        .map(|r| {
            assert_eq!(r.actor, SYSTEM_ACTOR);
            r.version
        })
        .collect();
    assert_eq!(
        pruned,
        vec![Some(written[0].version), Some(written[1].version)]
    );
    // A backup holds only the kept versions.
    let blob = v.backup_secret("s").unwrap();
    v.delete("s").unwrap();
    v.purge("s").unwrap();
    v.restore_secret(&blob).unwrap();
    assert_eq!(ids(&v.list_versions("s").unwrap()), ids(&kept));
}

#[test]
fn max_versions_per_secret_overrides_the_vault() {
    let v =
        Vault::create_in_memory(&key(1), Options::new().clock(clock()).max_versions(3)).unwrap();
    for i in 0..5 {
        v.set_with("two", format!("{i}"), &SetOptions::new().max_versions(2))
            .unwrap();
        v.set_with("five", format!("{i}"), &SetOptions::new().max_versions(5))
            .unwrap();
        v.set("vault-limit", format!("{i}")).unwrap();
    }
    assert_eq!(v.list_versions("two").unwrap().len(), 2);
    assert_eq!(v.list_versions("five").unwrap().len(), 5);
    assert_eq!(v.list_versions("vault-limit").unwrap().len(), 3);
    // The secret's own limit sticks without being repeated.
    v.set("two", "again").unwrap();
    assert_eq!(v.list_versions("two").unwrap().len(), 2);
    // Lowering it prunes on the next write.
    v.set_with("five", "x", &SetOptions::new().max_versions(1))
        .unwrap();
    let left = v.list_versions("five").unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(v.get("five").unwrap().expose(), b"x");
    // The vault-wide limit can change; it applies from each secret's next write.
    v.set_max_versions(Some(1)).unwrap();
    assert_eq!(v.settings().unwrap().max_versions, Some(1));
    assert_eq!(v.list_versions("vault-limit").unwrap().len(), 3);
    v.set("vault-limit", "last").unwrap();
    assert_eq!(v.list_versions("vault-limit").unwrap().len(), 1);
    v.set_max_versions(None).unwrap();
    for i in 0..4 {
        v.set("vault-limit", format!("{i}")).unwrap();
    }
    assert_eq!(v.list_versions("vault-limit").unwrap().len(), 5);
    // Zero is refused everywhere.
    assert!(matches!(
        v.set_with("s", "x", &SetOptions::new().max_versions(0)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        v.set_max_versions(Some(0)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Vault::create_in_memory(&key(1), Options::new().max_versions(0)),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn under_purge_protection_pruned_versions_are_retired_until_their_purge_date() {
    let (_dir, path) = temp_path("retired.tresor");
    let c = clock();
    let o = || Options::new().clock(c.clone());
    let v = Vault::create(
        &path,
        &key(1),
        o().purge_protection(true).retention_days(7).max_versions(2),
    )
    .unwrap();
    let p1 = v.set("s", "one").unwrap();
    c.advance(days(1));
    let p2 = v.set("s", "two").unwrap();
    let p3 = v.set("s", "three").unwrap();
    let p4 = v.set("s", "four").unwrap();
    assert_eq!(
        ids(&v.list_versions("s").unwrap()),
        [p4.version, p3.version]
    );
    for p in [&p1, &p2] {
        assert!(matches!(
            v.get_version("s", &p.version),
            Err(Error::NotFound)
        ));
    }
    drop(v);
    // Not readable, but not destroyed either: kept in the file until their purge date.
    assert_eq!(rows(&path, RETIRED).len(), 2);
    assert_eq!(rows(&path, VERSIONS).len(), 1);

    // One second before the purge date (retired at T0 + 1 day): still kept, on open and writes.
    let due = T0 + DAY as i64 + 7 * DAY as i64;
    c.set(at(due - 1));
    let v = Vault::open(&path, &key(1), o()).unwrap();
    v.set("other", "x").unwrap();
    assert_eq!(v.purge_expired().unwrap(), 0);
    drop(v);
    assert_eq!(rows(&path, RETIRED).len(), 2);

    // One second after: purged by the system (here on open), each recorded with its version.
    c.set(at(due + 1));
    let v = Vault::open(&path, &key(1), o()).unwrap();
    let log = audit_log(&v);
    let purged: Vec<Option<VersionId>> = system_purges(&log).iter().map(|r| r.version).collect();
    assert_eq!(purged.len(), 2);
    assert!(purged.contains(&Some(p1.version)));
    assert!(purged.contains(&Some(p2.version)));
    assert_eq!(
        ids(&v.list_versions("s").unwrap()),
        [p4.version, p3.version]
    );
    v.verify_audit().unwrap();
    drop(v);
    assert!(rows(&path, RETIRED).is_empty());
}

#[test]
fn retired_versions_are_purged_by_writes_and_on_request_too() {
    let c = clock();
    let v = Vault::create_in_memory(
        &key(1),
        Options::new()
            .clock(c.clone())
            .purge_protection(true)
            .retention_days(7)
            .max_versions(1),
    )
    .unwrap();
    v.set("a", "1").unwrap();
    v.set("a", "2").unwrap();
    v.set("b", "1").unwrap();
    v.set("b", "2").unwrap();
    c.advance(days(7));
    c.advance(Duration::from_secs(1));
    // Under purge protection a purge reaches at most a day past the latest time the log
    // recorded: after a week without a commit, the first write records the new time and
    // destroys nothing; the next one purges.
    assert_eq!(v.purge_expired().unwrap(), 0);
    assert_eq!(v.purge_expired().unwrap(), 2);
    assert_eq!(system_purges(&audit_log(&v)).len(), 2);
    v.set("a", "3").unwrap();
    c.advance(days(8));
    v.set("b", "3").unwrap();
    assert_eq!(
        system_purges(&audit_log(&v)).len(),
        2,
        "not on the first write after the gap"
    );
    v.set("b", "4").unwrap();
    assert_eq!(
        system_purges(&audit_log(&v)).len(),
        3,
        "the write purged a's retired version"
    );
}

// ---------------------------------------------------------------------------------------------
// Check-and-set

#[test]
fn check_and_set() {
    let v = Vault::create_in_memory(&key(1), Options::new().clock(clock())).unwrap();
    let absent = SetOptions::new().expect(Expect::Absent);
    let p1 = v.set_with("s", "1", &absent).unwrap();
    assert!(matches!(
        v.set_with("s", "x", &absent),
        Err(Error::VersionConflict)
    ));
    assert!(
        matches!(v.set_with("S", "x", &absent), Err(Error::VersionConflict)),
        "names compare case-insensitively"
    );
    let p2 = v
        .set_with(
            "s",
            "2",
            &SetOptions::new().expect(Expect::Version(p1.version)),
        )
        .unwrap();
    // Two writers that both read version 1: the second loses.
    assert!(matches!(
        v.set_with(
            "s",
            "late",
            &SetOptions::new().expect(Expect::Version(p1.version))
        ),
        Err(Error::VersionConflict)
    ));
    // A version of nothing.
    assert!(matches!(
        v.set_with(
            "t",
            "x",
            &SetOptions::new().expect(Expect::Version(p1.version))
        ),
        Err(Error::VersionConflict)
    ));
    assert!(matches!(v.get("t"), Err(Error::NotFound)));
    assert_eq!(
        ids(&v.list_versions("s").unwrap()),
        [p2.version, p1.version]
    );
    assert_eq!(v.get("s").unwrap().expose(), b"2");
    // A deleted name is a conflict whatever is expected.
    v.delete("s").unwrap();
    for e in [Expect::Absent, Expect::Version(p2.version)] {
        assert!(matches!(
            v.set_with("s", "x", &SetOptions::new().expect(e)),
            Err(Error::Conflict { deleted: true })
        ));
    }
    let log = audit_log(&v);
    assert_eq!(
        log.iter()
            .filter(|r| r.error.as_deref() == Some("VersionConflict"))
            .count(),
        4
    );
}

// ---------------------------------------------------------------------------------------------
// Backups of single secrets

#[test]
fn backup_and_restore_round_trip_after_purge() {
    let c = clock();
    let v = Vault::create_in_memory(&key(1), Options::new().clock(c.clone())).unwrap();
    rich_secret(&v, &c, "Rich-Secret");
    let before = history(&v, "rich-secret");
    let blob = v.backup_secret("RICH-SECRET").unwrap();
    // Nothing readable in the blob.
    for needle in [&b"Rich-Secret"[..], b"third", b"team-a", b"text/plain"] {
        assert!(!contains(&blob, needle));
    }

    // Conflict while the name is live or deleted.
    assert!(matches!(
        v.restore_secret(&blob),
        Err(Error::Conflict { deleted: false })
    ));
    v.delete("rich-secret").unwrap();
    assert!(matches!(
        v.restore_secret(&blob),
        Err(Error::Conflict { deleted: true })
    ));
    v.purge("rich-secret").unwrap();
    c.advance(days(3));
    let p = v.restore_secret(&blob).unwrap();
    assert_eq!(p, before[0].0);
    assert_eq!(history(&v, "rich-secret"), before);
    assert_eq!(v.list_all().unwrap()[0].name, "Rich-Secret");
    let next = v.set("rich-secret", "fourth").unwrap();
    assert_eq!(next.sequence, 4);
    // The restore is recorded under the secret's name.
    let log = audit_log(&v);
    let r = log
        .iter()
        .find(|r| r.operation == Operation::SecretRestore && r.error.is_none())
        .unwrap();
    assert_eq!(r.name.as_deref(), Some("Rich-Secret"));
    assert_eq!(r.version, Some(before[0].0.version));
    v.verify_audit().unwrap();
}

#[test]
fn damaged_backup_blobs_are_refused() {
    let v = Vault::create_in_memory(&key(1), Options::new().clock(clock())).unwrap();
    v.set("s", "one").unwrap();
    v.set("s", "two").unwrap();
    let blob = v.backup_secret("s").unwrap();
    v.delete("s").unwrap();
    v.purge("s").unwrap();

    let refused = |b: &[u8], what: &str| {
        let r = v.restore_secret(b);
        assert!(
            matches!(r, Err(Error::InvalidBackup(_))),
            "{what}: {:?}",
            r.map(|p| p.name)
        );
    };
    // Truncated.
    for len in [
        0,
        1,
        7,
        8,
        9,
        10,
        25,
        26,
        40,
        66,
        blob.len() / 2,
        blob.len() - 1,
    ] {
        refused(&blob[..len], &format!("truncated to {len}"));
    }
    // Extended.
    let mut longer = blob.clone();
    longer.push(0);
    refused(&longer, "one byte added");
    // Every single bit flip, at every byte.
    for i in 0..blob.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = blob.clone();
            b[i] ^= bit;
            let r = v.restore_secret(&b);
            let ok = match r {
                Err(Error::InvalidBackup(_)) => true,
                // A higher format number in the (unauthenticated) header is reported as such.
                Err(Error::UnsupportedFormat { found, .. }) => (8..10).contains(&i) && found > 1,
                _ => false,
            };
            assert!(
                ok,
                "bit {bit:#x} of byte {i} flipped: {:?}",
                r.map(|p| p.name)
            );
        }
    }
    // Garbage.
    refused(b"not a backup at all", "text");
    refused(&[0u8; 4096], "zeros");
    let mut fake = b"TRESORBK".to_vec();
    fake.extend_from_slice(&[1, 0]);
    fake.extend_from_slice(&[0u8; 200]);
    refused(&fake, "a forged header");
    // The untouched blob still restores.
    v.restore_secret(&blob).unwrap();
    assert_eq!(v.get("s").unwrap().expose(), b"two");
}

#[test]
fn backups_restore_into_a_copy_of_the_vault_but_not_another_vault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orig.tresor");
    let copy = dir.path().join("copy.tresor");
    let v = Vault::create(&path, &key(1), Options::new().clock(clock())).unwrap();
    v.set("s", "one").unwrap();
    v.set("s", "two").unwrap();
    let blob = v.backup_secret("s").unwrap();
    let before = history(&v, "s");
    v.delete("s").unwrap();
    v.purge("s").unwrap();
    v.backup_to(&copy).unwrap();
    // backup_to refuses to overwrite.
    assert!(matches!(v.backup_to(&copy), Err(Error::Io(_))));
    drop(v);

    let c = Vault::open(&copy, &key(1), Options::new().clock(clock())).unwrap();
    assert_eq!(c.vault_id(), {
        let o = Vault::open(&path, &key(1), Options::new()).unwrap();
        o.vault_id()
    });
    c.restore_secret(&blob).unwrap();
    assert_eq!(history(&c, "s"), before);
    c.verify_audit().unwrap();

    let other = Vault::create_in_memory(&key(1), Options::new()).unwrap();
    assert!(matches!(
        other.restore_secret(&blob),
        Err(Error::InvalidBackup(_))
    ));
    // A blob whose vault id was rewritten to the other vault's does not authenticate either.
    let mut forged = blob.clone();
    forged[10..26].copy_from_slice(&other.vault_id());
    assert!(matches!(
        other.restore_secret(&forged),
        Err(Error::InvalidBackup(_))
    ));
}

#[test]
fn backup_to_makes_a_consistent_copy_that_opens_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orig.tresor");
    let copy = dir.path().join("copy.tresor");
    let v = Vault::create(&path, &key(1), Options::new().clock(clock())).unwrap();
    v.add_slot(&SlotSpec::new(key(2), "second").role(Role::Reader))
        .unwrap();
    v.set("a", "1").unwrap();
    v.set("gone", "g").unwrap();
    v.delete("gone").unwrap();
    v.get("a").unwrap();
    v.backup_to(&copy).unwrap();
    // Later writes do not reach the copy.
    v.set("a", "2").unwrap();
    let c = Vault::open(&copy, &key(2), Options::new().clock(clock())).unwrap();
    assert_eq!(c.get("a").unwrap().expose(), b"1");
    assert!(c.deleted_properties("gone").is_ok());
    drop(c);
    let c = Vault::open(&copy, &key(1), Options::new().clock(clock())).unwrap();
    c.verify_audit().unwrap();
    assert_eq!(v.get("a").unwrap().expose(), b"2");
}

// ---------------------------------------------------------------------------------------------
// Master key rotation

/// Everything readable about a vault: live secrets with every version, deleted secrets, settings.
type Snapshot = (
    Vec<(String, Vec<(SecretProperties, Option<Vec<u8>>)>)>,
    Vec<DeletedSecret>,
);

fn snapshot(v: &Vault) -> Snapshot {
    let mut live: Vec<_> = v
        .list_all()
        .unwrap()
        .into_iter()
        .map(|p| (p.name.clone(), history(v, &p.name)))
        .collect();
    live.sort_by(|a, b| a.0.cmp(&b.0));
    let mut deleted = v.list_deleted(None, 1000).unwrap().items;
    deleted.sort_by(|a, b| a.properties.name.cmp(&b.properties.name));
    (live, deleted)
}

#[test]
fn rotate_master_key_keeps_everything_and_every_slot() {
    let (_dir, path) = temp_path("rotate.tresor");
    let c = clock();
    let o = || Options::new().clock(c.clone());
    let pass = Credential::passphrase("rotation passphrase");
    let provider = || XorProvider::new("kms", 9).credential();
    let v = Vault::create(
        &path,
        &key(1),
        o().purge_protection(true)
            .max_versions(3)
            .retention_days(30),
    )
    .unwrap();
    v.add_slot(&SlotSpec::new(pass.clone(), "pass").kdf(KdfParams::MINIMUM))
        .unwrap();
    v.add_slot(&SlotSpec::new(provider(), "kms").role(Role::Writer))
        .unwrap();
    v.add_slot(&SlotSpec::new(key(2), "reader").role(Role::Reader))
        .unwrap();
    rich_secret(&v, &c, "Rich");
    for i in 0..4 {
        v.set("churn", format!("churn-{i}")).unwrap();
    }
    for i in 0..20 {
        v.set(&format!("bulk-{i}"), format!("value-{i}")).unwrap();
    }
    v.set("deleted-one", "d1").unwrap();
    v.set("deleted-one", "d2").unwrap();
    v.delete("deleted-one").unwrap();
    let before = snapshot(&v);
    let old_checkpoint = v.checkpoint().unwrap();
    let old_blob = v.backup_secret("bulk-0").unwrap();
    drop(v);
    let hashes_before: Vec<[u8; 16]> = rows(&path, SECRETS).into_iter().map(|r| r.0).collect();
    assert_eq!(
        rows(&path, RETIRED).len(),
        1,
        "churn has one retired version"
    );

    let v = Vault::open(&path, &key(1), o()).unwrap();
    let audit_before = v.verify_audit().unwrap();
    // Every slot must be re-wrapped: a missing credential refuses the whole rotation.
    match v.rotate_master_key(&[pass.clone(), provider()], |_| {}) {
        Err(Error::MissingCredential { slot, label }) => {
            assert_eq!((slot, label.as_str()), (4, "reader"));
        }
        other => panic!("{other:?}"),
    }
    // A credential that opens no slot does not help.
    assert!(matches!(
        v.rotate_master_key(&[pass.clone(), provider(), key(3)], |_| {}),
        Err(Error::MissingCredential { slot: 4, .. })
    ));
    assert_eq!(snapshot(&v), before, "a refused rotation changes nothing");
    // Only the owner may rotate.
    let writer = v.as_identity("w", Role::Writer).unwrap();
    assert!(matches!(
        writer.rotate_master_key(&[pass.clone(), provider(), key(2)], |_| {}),
        Err(Error::Forbidden { .. })
    ));

    let mut reports = Vec::new();
    v.rotate_master_key(&[pass.clone(), provider(), key(2)], |p| reports.push(p))
        .unwrap();
    let last = reports.last().expect("progress is reported");
    assert_eq!(last.done, last.total);
    assert!(last.total > 40);
    assert!(reports.windows(2).all(|w| w[0].done < w[1].done));

    assert_eq!(snapshot(&v), before);
    let after_rotation = v.verify_audit().unwrap();
    assert!(after_rotation > audit_before);
    let log = audit_log(&v);
    assert!(
        log.iter()
            .any(|r| r.operation == Operation::KeyRotate && r.error.is_none())
    );
    assert!(
        log.iter().any(|r| r.operation == Operation::KeyRotate
            && r.error.as_deref() == Some("MissingCredential"))
    );
    // Backups made before the rotation no longer restore; new ones do.
    v.delete("bulk-0").unwrap();
    v.set("bulk-1", "after").unwrap();
    drop(writer);
    drop(v);

    // Names are re-hashed under the new key.
    let hashes_after: Vec<[u8; 16]> = rows(&path, SECRETS).into_iter().map(|r| r.0).collect();
    assert_eq!(hashes_after.len(), hashes_before.len() - 1);
    assert!(hashes_after.iter().all(|h| !hashes_before.contains(h)));

    // Every slot still opens, with its role.
    for (cred, role) in [
        (key(1), Role::Owner),
        (pass.clone(), Role::Owner),
        (provider(), Role::Writer),
        (key(2), Role::Reader),
    ] {
        let v = Vault::open(&path, &cred, o()).unwrap();
        assert_eq!(v.role(), role);
        assert_eq!(v.get("bulk-1").unwrap().expose(), b"after");
        assert_eq!(
            history(&v, "rich"),
            before.0.iter().find(|s| s.0 == "Rich").unwrap().1
        );
    }
    let v = Vault::open(&path, &key(1), o()).unwrap();
    assert!(matches!(
        v.restore_secret(&old_blob),
        Err(Error::InvalidBackup(_))
    ));
    let deleted = v.deleted_properties("deleted-one").unwrap();
    assert_eq!(deleted, before.1[0]);
    v.recover("deleted-one").unwrap();
    assert_eq!(v.get("deleted-one").unwrap().expose(), b"d2");
    v.verify_audit().unwrap();
    assert!(v.check_integrity().unwrap() > 0);
    let new_checkpoint = v.checkpoint().unwrap();
    drop(v);

    // A checkpoint from before the rotation no longer matches the re-keyed chain.
    assert!(matches!(
        Vault::open(&path, &key(1), o().expect_checkpoint(old_checkpoint)),
        Err(Error::RolledBack(_))
    ));
    Vault::open(&path, &key(1), o().expect_checkpoint(new_checkpoint)).unwrap();

    // The retired version keeps its purge date across the rotation. (The first open after
    // the month records the new time; under purge protection, the next one may purge.)
    c.advance(days(31));
    drop(Vault::open(&path, &key(1), o()).unwrap());
    let v = Vault::open(&path, &key(1), o()).unwrap();
    assert!(
        system_purges(&audit_log(&v))
            .iter()
            .any(|r| r.name.is_none())
    );
    drop(v);
    assert!(rows(&path, RETIRED).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Expiry

#[test]
fn expiring_lists_live_secrets_near_or_past_expiry_soonest_first() {
    let c = clock();
    let v = Vault::create_in_memory(&key(1), Options::new().clock(c.clone())).unwrap();
    let exp = |d: i64| SetOptions::new().expires_on(at(T0 + d * DAY as i64));
    v.set_with("in-10-days", "x", &exp(10)).unwrap();
    v.set_with("in-1-day", "x", &exp(1)).unwrap();
    v.set_with("expired", "x", &exp(-1)).unwrap();
    v.set_with("in-40-days", "x", &exp(40)).unwrap();
    v.set("never", "x").unwrap();
    v.set_with("deleted", "x", &exp(1)).unwrap();
    v.delete("deleted").unwrap();
    // Only the current version counts.
    v.set_with("renewed", "x", &exp(2)).unwrap();
    v.set_with("renewed", "y", &exp(100)).unwrap();

    let names = |within: u64| -> Vec<String> {
        v.expiring(days(within))
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect()
    };
    assert_eq!(names(0), ["expired"]);
    assert_eq!(names(2), ["expired", "in-1-day"]);
    assert_eq!(names(30), ["expired", "in-1-day", "in-10-days"]);
    assert_eq!(
        names(40),
        ["expired", "in-1-day", "in-10-days", "in-40-days"]
    );
    c.advance(days(5));
    assert_eq!(names(0), ["expired", "in-1-day"]);
    // The expiry is reported with the value, which is still returned.
    let s = v.get("expired").unwrap();
    assert_eq!(s.properties.expires_on, Some(at(T0 - DAY as i64)));
}

// ---------------------------------------------------------------------------------------------
// Checkpoints and rolled-back files

#[test]
fn a_rolled_back_file_is_detected_with_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.tresor");
    let old = dir.path().join("old.tresor");
    let v = Vault::create(&path, &key(1), Options::new()).unwrap();
    v.set("s", "one").unwrap();
    drop(v);
    std::fs::copy(&path, &old).unwrap();

    let v = Vault::open(&path, &key(1), Options::new()).unwrap();
    v.set("s", "two").unwrap();
    let cp = v.checkpoint().unwrap();
    // A checkpoint is a short printable string.
    let text = cp.to_string();
    assert!(text.starts_with("tresor-cp1-"));
    assert_eq!(text.parse::<Checkpoint>().unwrap(), cp);
    assert_eq!(
        v.audit_len().unwrap(),
        cp.seq() + 1,
        "plus the checkpoint's own record"
    );
    v.set("s", "three").unwrap();
    drop(v);

    // The current file contains the checkpoint's chain, also after later writes.
    let v = Vault::open(&path, &key(1), Options::new().expect_checkpoint(cp)).unwrap();
    assert_eq!(v.get("s").unwrap().expose(), b"three");
    drop(v);

    // The older copy put back in its place.
    std::fs::copy(&old, &path).unwrap();
    assert!(matches!(
        Vault::open(&path, &key(1), Options::new().expect_checkpoint(cp)),
        Err(Error::RolledBack(_))
    ));
    // Without the checkpoint it opens (nothing else can tell).
    let v = Vault::open(&path, &key(1), Options::new()).unwrap();
    assert_eq!(v.get("s").unwrap().expose(), b"one");
    drop(v);
}

#[test]
fn a_checkpoint_of_another_vault_or_chain_does_not_match() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.tresor");
    let b = dir.path().join("b.tresor");
    let va = Vault::create(&a, &key(1), Options::new()).unwrap();
    let vb = Vault::create(&b, &key(1), Options::new()).unwrap();
    for i in 0..5 {
        va.set("s", format!("{i}")).unwrap();
        vb.set("s", format!("{i}")).unwrap();
    }
    let cp_a = va.checkpoint().unwrap();
    let cp_b = vb.checkpoint().unwrap();
    assert_eq!(cp_a.seq(), cp_b.seq());
    assert_ne!(cp_a, cp_b);
    drop((va, vb));
    assert!(matches!(
        Vault::open(&a, &key(1), Options::new().expect_checkpoint(cp_b)),
        Err(Error::RolledBack(_))
    ));
    // A checkpoint with the right number but a forged MAC.
    let forged: Checkpoint = format!("tresor-cp1-{}-{}", cp_a.seq(), "00".repeat(16))
        .parse()
        .unwrap();
    assert!(matches!(
        Vault::open(&a, &key(1), Options::new().expect_checkpoint(forged)),
        Err(Error::RolledBack(_))
    ));
    // A checkpoint beyond the file's chain.
    let ahead: Checkpoint = format!("tresor-cp1-{}-{}", cp_a.seq() + 100, "00".repeat(16))
        .parse()
        .unwrap();
    assert!(matches!(
        Vault::open(&a, &key(1), Options::new().expect_checkpoint(ahead)),
        Err(Error::RolledBack(_))
    ));
    Vault::open(&a, &key(1), Options::new().expect_checkpoint(cp_a)).unwrap();
    for bad in [
        "",
        "tresor-cp1-",
        "tresor-cp1-x-00",
        "tresor-cp2-1-00000000000000000000000000000000",
        "tresor-cp1-1-0000",
    ] {
        assert!(
            matches!(bad.parse::<Checkpoint>(), Err(Error::InvalidCheckpoint)),
            "{bad:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Listings

#[test]
fn listings_page_through_everything_once() {
    let v = Vault::create_in_memory(&key(1), Options::new().clock(clock())).unwrap();
    let mut names: Vec<String> = (0..23).map(|i| format!("secret-{i:02}")).collect();
    for n in &names {
        v.set(n, "x").unwrap();
    }
    for n in &names[..7] {
        v.delete(n).unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = v.list(cursor.as_deref(), 4).unwrap();
        assert!(page.items.len() <= 4);
        pages += 1;
        seen.extend(page.items.into_iter().map(|p| p.name));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    seen.sort();
    assert_eq!(seen, names[7..]);
    let mut deleted = Vec::new();
    let mut cursor = None;
    loop {
        let page = v.list_deleted(cursor.as_deref(), 3).unwrap();
        deleted.extend(page.items.into_iter().map(|d| d.properties.name));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    deleted.sort();
    names.truncate(7);
    assert_eq!(deleted, names);
    for limit in [0, 1001] {
        assert!(matches!(
            v.list(None, limit),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            v.list_deleted(None, limit),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert!(matches!(
        v.list(Some("not-a-cursor"), 5),
        Err(Error::InvalidArgument(_))
    ));
    let empty = Vault::create_in_memory(&key(1), Options::new()).unwrap();
    let page = empty.list(None, 10).unwrap();
    assert!(page.items.is_empty() && page.next.is_none());
}

// ---------------------------------------------------------------------------------------------
// Compaction

/// Secrets arrive in keyed-hash order, which leaves B-tree leaves about two thirds full;
/// compaction rebuilds the tables in key order, so that they fill their leaves.
#[test]
fn compact_refills_the_leaves_of_tables_written_in_hash_order() {
    use tresor::redb::{ReadableDatabase, ReadableTableMetadata};
    let (_dir, path) = temp_path("refill.tresor");
    let v = Vault::create(&path, &key(1), Options::new().clock(clock())).unwrap();
    let plain = SetOptions::new();
    let value = [7u8; 256];
    // Two versions of each secret: the older ones fill `versions` and `version_ids`.
    for _ in 0..2 {
        for batch in 0..4 {
            let names: Vec<String> = (0..500).map(|i| format!("s-{batch}-{i}")).collect();
            v.set_many(names.iter().map(|n| (n.as_str(), value.as_slice(), &plain)))
                .unwrap();
        }
    }
    // (stored bytes, bytes of leaf and branch pages left unused) of `secrets`, `versions` and
    // `version_ids`.
    let fill = |path: &std::path::Path| {
        let db = raw(path);
        let txn = db.begin_read().unwrap();
        let s = txn.open_table(SECRETS).unwrap().stats().unwrap();
        let o = txn.open_table(VERSIONS).unwrap().stats().unwrap();
        let i = txn.open_table(VERSION_IDS).unwrap().stats().unwrap();
        [
            (s.stored_bytes(), s.fragmented_bytes()),
            (o.stored_bytes(), o.fragmented_bytes()),
            (i.stored_bytes(), i.fragmented_bytes()),
        ]
    };
    drop(v);
    for (stored, unused) in fill(&path) {
        assert!(
            unused * 5 > stored,
            "hash order leaves room: {unused} of {stored}"
        );
    }
    let size_before = std::fs::metadata(&path).unwrap().len();
    let v = Vault::open(&path, &key(1), Options::new().clock(clock())).unwrap();
    v.compact().unwrap();
    drop(v);
    for (stored, unused) in fill(&path) {
        assert!(
            unused * 10 < stored,
            "rebuilt tables are full: {unused} of {stored}"
        );
    }
    let size_after = std::fs::metadata(&path).unwrap().len();
    assert!(size_after < size_before, "{size_after} < {size_before}");
    // The file ends where its pages do: nothing commits after the last compaction pass (a
    // commit then would leave the file grown by one of redb's allocation steps).
    let used = {
        let db = raw(&path);
        let txn = db.begin_write().unwrap();
        let stats = txn.stats().unwrap();
        stats.allocated_pages() * stats.page_size() as u64
    };
    println!("compacted: {size_after} bytes on disk, {used} in allocated pages");
    assert!(
        size_after <= used + used / 4,
        "{size_after} bytes on disk for {used} in pages"
    );
    let v = Vault::open(&path, &key(1), Options::new().verify_integrity(true)).unwrap();
    assert_eq!(v.list_all().unwrap().len(), 2000);
    assert_eq!(v.get("s-3-499").unwrap().expose(), value.as_slice());
}

#[test]
fn compact_keeps_the_data_and_drops_purged_bytes() {
    let (_dir, path) = temp_path("compact.tresor");
    let v = Vault::create(&path, &key(1), Options::new().clock(clock())).unwrap();
    let big = |i: usize| format!("{i:04}").repeat(2000);
    for i in 0..40 {
        v.set(&format!("s-{i}"), big(i)).unwrap();
    }
    drop(v);
    let sealed: BTreeMap<[u8; 16], Vec<u8>> = rows(&path, SECRETS).into_iter().collect();
    let v = Vault::open(&path, &key(1), Options::new().clock(clock())).unwrap();
    for i in 0..30 {
        v.delete(&format!("s-{i}")).unwrap();
        v.purge(&format!("s-{i}")).unwrap();
    }
    let size_before = std::fs::metadata(&path).unwrap().len();
    v.compact().unwrap();
    let size_after = std::fs::metadata(&path).unwrap().len();
    assert!(size_after < size_before, "{size_after} < {size_before}");
    for i in 30..40 {
        assert_eq!(
            v.get(&format!("s-{i}")).unwrap().expose(),
            big(i).as_bytes()
        );
    }
    assert_eq!(v.list_all().unwrap().len(), 10);
    v.verify_audit().unwrap();
    let log = audit_log(&v);
    assert!(log.iter().any(|r| r.operation == Operation::Compact));
    drop(v);
    let v = Vault::open(&path, &key(1), Options::new()).unwrap();
    assert!(v.check_integrity().unwrap() > 0);
    drop(v);
    // The purged secrets' sealed records are no longer in the file.
    let live: Vec<[u8; 16]> = rows(&path, SECRETS).into_iter().map(|r| r.0).collect();
    let file = std::fs::read(&path).unwrap();
    let mut gone = 0;
    for (hash, bytes) in &sealed {
        if live.contains(hash) {
            continue;
        }
        gone += 1;
        // 64 bytes of ciphertext from the middle of the record.
        let probe = &bytes[bytes.len() / 2..bytes.len() / 2 + 64];
        assert!(
            !contains(&file, probe),
            "a purged record is still in the file"
        );
    }
    assert_eq!(gone, 30);
}

// ---------------------------------------------------------------------------------------------
// The audit log as the record of which secrets exist

/// Every row of a secret: its record and its version-index entries (with `versions`, which is
/// empty for a secret of one version).
type SecretRows = (Vec<u8>, Vec<(([u8; 16], [u8; 16]), u64)>);

fn secret_rows(path: &std::path::Path, hash: [u8; 16]) -> SecretRows {
    use tresor::redb::ReadableDatabase;
    let db = raw(path);
    let txn = db.begin_read().unwrap();
    let record = txn
        .open_table(SECRETS)
        .unwrap()
        .get(hash)
        .unwrap()
        .unwrap()
        .value()
        .to_vec();
    let ids = txn
        .open_table(VERSION_IDS)
        .unwrap()
        .range((hash, [0u8; 16])..=(hash, [0xff; 16]))
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.value(), v.value())
        })
        .collect();
    (record, ids)
}

/// A secret taken out of the file with every row it has (a secret of one version has one row:
/// only older versions are indexed), or put back whole after its purge, leaves no orphan
/// behind; the audit chain still says what exists, and the integrity check (and a verified open)
/// compares the two.
#[test]
fn check_integrity_finds_a_secret_removed_or_put_back_whole() {
    let (_dir, path) = temp_path("whole.tresor");
    let v = Vault::create(&path, &key(1), Options::new().clock(clock())).unwrap();
    v.set("kept", "k").unwrap();
    drop(v);
    let before: Vec<[u8; 16]> = rows(&path, SECRETS).into_iter().map(|r| r.0).collect();
    let v = Vault::open(&path, &key(1), Options::new().clock(clock())).unwrap();
    v.set("target", "t").unwrap();
    drop(v);
    let hash = rows(&path, SECRETS)
        .into_iter()
        .map(|r| r.0)
        .find(|h| !before.contains(h))
        .unwrap();
    let (record, ids) = secret_rows(&path, hash);
    assert!(ids.is_empty(), "one version: its record is its only row");
    let verified = |p: &std::path::Path| {
        Vault::open(
            p,
            &key(1),
            Options::new().clock(clock()).verify_integrity(true),
        )
    };
    assert!(verified(&path).is_ok());

    // Removed whole: the record and its index entry.
    let removed = copy_to(&path, "removed.tresor");
    edit(&removed, |txn| {
        txn.open_table(SECRETS).unwrap().remove(hash).unwrap();
        let mut t = txn.open_table(VERSION_IDS).unwrap();
        for (k, _) in &ids {
            t.remove(*k).unwrap();
        }
    });
    assert!(
        matches!(verified(&removed), Err(Error::Corrupted(_))),
        "a secret gone without a record of its deletion"
    );
    let v = Vault::open(&removed, &key(1), Options::new().clock(clock())).unwrap();
    assert!(matches!(v.check_integrity(), Err(Error::Corrupted(_))));
    assert!(matches!(v.get("target"), Err(Error::NotFound)));
    drop(v);

    // Purged, then put back whole from the older copy.
    let v = Vault::open(&path, &key(1), Options::new().clock(clock())).unwrap();
    v.delete("target").unwrap();
    v.purge("target").unwrap();
    drop(v);
    assert!(verified(&path).is_ok());
    edit(&path, |txn| {
        txn.open_table(SECRETS)
            .unwrap()
            .insert(hash, record.as_slice())
            .unwrap();
        let mut t = txn.open_table(VERSION_IDS).unwrap();
        for (k, seq) in &ids {
            t.insert(*k, *seq).unwrap();
        }
    });
    assert!(
        matches!(verified(&path), Err(Error::Corrupted(_))),
        "a purged secret back from the dead"
    );
}
