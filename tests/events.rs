//! Change subscriptions: every committed change reaches every subscriber exactly once, in commit
//! order, and nothing does for a write that failed; a full queue reports what it lost; the vault's
//! own purges are changes too; a closed vault ends the subscription.

use std::time::Duration;

use tresor::{
    Change, ChangeKind, Credential, Error, Event, ManualClock, Options, PropertiesUpdate, Role,
    SYSTEM_ACTOR, SetOptions, Subscription, Timestamp, Vault,
};

const DAY: u64 = 86_400;

fn vault_with(clock: &ManualClock) -> Vault {
    let key = Credential::generate_key().unwrap();
    Vault::create_in_memory(&key, Options::new().clock(clock.clone()).retention_days(7)).unwrap()
}

fn drain(sub: &Subscription) -> Vec<Change> {
    let mut out = Vec::new();
    while let Some(e) = sub.try_recv() {
        match e {
            Event::Change(c) => out.push(c),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

fn kinds(changes: &[Change]) -> Vec<(ChangeKind, &str)> {
    changes.iter().map(|c| (c.kind, c.name.as_str())).collect()
}

#[test]
fn every_committed_change_once_in_order_to_every_subscriber() {
    let clock = ManualClock::new(Timestamp::from_unix(1_700_000_000));
    let vault = vault_with(&clock);
    vault.set("before", "x").unwrap();
    let a = vault.subscribe().unwrap();
    // Another handle of the same vault (another identity) publishes to the same subscribers.
    let writer = vault.as_identity("ci-job", Role::Writer).unwrap();
    let b = writer.subscribe().unwrap();

    let v1 = writer
        .set_with("db", "1", &SetOptions::new().tag("env", "prod"))
        .unwrap();
    vault
        .update_properties(
            "db",
            Some(&v1.version),
            &PropertiesUpdate::new().enabled(false),
        )
        .unwrap();
    let plain = SetOptions::new();
    vault
        .set_many([
            ("u", b"1".as_slice(), &plain),
            ("p", b"2".as_slice(), &plain),
        ])
        .unwrap();
    let blob = vault.backup_secret("u").unwrap();
    vault.delete("db").unwrap();
    vault.recover("db").unwrap();
    vault.delete("u").unwrap();
    vault.purge("u").unwrap();
    vault.restore_secret(&blob).unwrap();
    // Reads are not changes.
    vault.get("p").unwrap();
    vault.list_all().unwrap();

    let got = drain(&a);
    assert_eq!(
        kinds(&got),
        [
            (ChangeKind::SecretSet, "db"),
            (ChangeKind::PropertiesUpdated, "db"),
            (ChangeKind::SecretSet, "u"),
            (ChangeKind::SecretSet, "p"),
            (ChangeKind::Deleted, "db"),
            (ChangeKind::Recovered, "db"),
            (ChangeKind::Deleted, "u"),
            (ChangeKind::Purged, "u"),
            (ChangeKind::Restored, "u"),
        ]
    );
    assert_eq!(got[0].version, Some(v1.version));
    assert_eq!(got[0].actor, "ci-job");
    assert_eq!(got[0].at, clock.now_for_test());
    assert_eq!(drain(&b), got, "every subscriber sees the same changes");

    // Each change names the audit record of the operation that made it.
    let log = vault.audit(0, 1000).unwrap();
    for c in &got {
        let r = log.iter().find(|r| r.seq == c.seq).unwrap();
        assert_eq!(r.name.as_deref(), Some(c.name.as_str()));
        assert_eq!(r.error, None);
    }
    let seqs: Vec<u64> = got.iter().map(|c| c.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "commit order: {seqs:?}"
    );
}

trait NowForTest {
    fn now_for_test(&self) -> Timestamp;
}

impl NowForTest for ManualClock {
    fn now_for_test(&self) -> Timestamp {
        tresor::Clock::now(self)
    }
}

#[test]
fn failed_and_refused_writes_publish_nothing() {
    let clock = ManualClock::new(Timestamp::from_unix(1_700_000_000));
    let vault = vault_with(&clock);
    let sub = vault.subscribe().unwrap();
    vault.set("db", "1").unwrap();
    assert_eq!(drain(&sub).len(), 1);

    // A failed check-and-set, a refused role, a batch whose second item is invalid (the first
    // item was written inside the transaction, then rolled back), a recover of nothing.
    let stale: tresor::VersionId = "00000000000000000000000000000000".parse().unwrap();
    assert!(matches!(
        vault.set_with(
            "db",
            "2",
            &SetOptions::new().expect(tresor::Expect::Version(stale))
        ),
        Err(Error::VersionConflict)
    ));
    let reader = vault.as_identity("viewer", Role::Reader).unwrap();
    assert!(matches!(
        reader.set("db", "3"),
        Err(Error::Forbidden { .. })
    ));
    let plain = SetOptions::new();
    assert!(
        vault
            .set_many([("ok", b"1".as_slice(), &plain), ("bad name!", b"2", &plain)])
            .is_err()
    );
    assert!(vault.get("ok").is_err(), "the batch rolled back");
    assert!(matches!(vault.recover("db"), Err(Error::NotFound)));
    assert_eq!(
        drain(&sub),
        [],
        "nothing was committed, nothing is published"
    );
}

#[test]
fn the_vaults_own_purges_and_pruning_are_changes() {
    let clock = ManualClock::new(Timestamp::from_unix(1_700_000_000));
    let vault = vault_with(&clock);
    let sub = vault.subscribe().unwrap();
    vault.set("old", "1").unwrap();
    vault.delete("old").unwrap();
    vault
        .set_with("kept", "1", &SetOptions::new().max_versions(1))
        .unwrap();
    vault
        .set_with("kept", "2", &SetOptions::new().max_versions(1))
        .unwrap();
    let before = drain(&sub);
    assert!(before.iter().any(|c| c.kind == ChangeKind::Deleted));
    let pruned: Vec<_> = before
        .iter()
        .filter(|c| c.kind == ChangeKind::VersionPruned)
        .collect();
    assert_eq!(pruned.len(), 1, "{before:?}");
    assert_eq!(pruned[0].name, "kept");
    assert_eq!(
        pruned[0].version,
        Some(before[2].version.unwrap()),
        "the first version of kept"
    );

    // Past the retention period, the next write purges what is due, as the vault.
    clock.advance(Duration::from_secs(8 * DAY));
    vault.set("trigger", "x").unwrap();
    let after = drain(&sub);
    let purge = after
        .iter()
        .find(|c| c.kind == ChangeKind::Purged)
        .expect("the due purge is a change");
    assert_eq!(
        (purge.name.as_str(), purge.actor.as_str()),
        ("old", SYSTEM_ACTOR)
    );
    assert!(
        after
            .iter()
            .any(|c| (c.kind, c.name.as_str()) == (ChangeKind::SecretSet, "trigger"))
    );
    assert_eq!(
        after
            .iter()
            .filter(|c| c.kind == ChangeKind::Purged)
            .count(),
        1
    );
}

#[test]
fn a_full_queue_reports_what_it_lost_then_resumes_in_order() {
    let clock = ManualClock::new(Timestamp::from_unix(1_700_000_000));
    let vault = vault_with(&clock);
    let sub = vault.subscribe_with_capacity(2).unwrap();
    for i in 0..5 {
        vault.set(&format!("s{i}"), "x").unwrap();
    }
    let names: Vec<Event> = std::iter::from_fn(|| sub.try_recv()).collect();
    assert!(matches!(&names[0], Event::Change(c) if c.name == "s0"));
    assert!(matches!(&names[1], Event::Change(c) if c.name == "s1"));
    assert_eq!(names[2], Event::Lagged(3));
    assert_eq!(names.len(), 3);
    vault.set("s5", "x").unwrap();
    assert!(matches!(sub.try_recv(), Some(Event::Change(c)) if c.name == "s5"));
    assert!(matches!(
        vault.subscribe_with_capacity(0),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn a_dropped_vault_closes_its_subscriptions_and_roles_are_checked() {
    let clock = ManualClock::new(Timestamp::from_unix(1_700_000_000));
    let vault = vault_with(&clock);
    let sub = vault.subscribe().unwrap();
    let dropped = vault.subscribe().unwrap();
    drop(dropped); // unsubscribes; the vault keeps no queue for it
    vault.set("a", "1").unwrap();
    let auditor = vault.as_identity("auditor", Role::Auditor).unwrap();
    assert!(
        auditor.subscribe().is_ok(),
        "an auditor reads names in the audit log anyway"
    );
    drop(auditor);
    assert!(!sub.is_closed());
    drop(vault);
    assert!(sub.is_closed());
    assert!(matches!(sub.recv(), Some(Event::Change(c)) if c.name == "a"));
    assert_eq!(sub.recv(), None);
    assert_eq!(sub.recv_timeout(Duration::from_millis(1)), None);
}

#[test]
fn a_subscriber_on_another_thread_receives_as_writes_commit() {
    let clock = ManualClock::new(Timestamp::from_unix(1_700_000_000));
    let vault = vault_with(&clock);
    let sub = vault.subscribe().unwrap();
    let handle = std::thread::spawn(move || {
        let mut names = Vec::new();
        while let Some(Event::Change(c)) = sub.recv() {
            names.push(c.name);
        }
        names
    });
    for i in 0..50 {
        vault.set(&format!("n{i}"), "x").unwrap();
    }
    drop(vault);
    let names = handle.join().unwrap();
    let want: Vec<String> = (0..50).map(|i| format!("n{i}")).collect();
    assert_eq!(names, want);
}

#[test]
fn the_audit_log_gives_the_same_changes_as_a_subscription() {
    let clock = ManualClock::new(Timestamp::from_unix(1_700_000_000));
    let vault = vault_with(&clock);
    let head = vault.audit_len().unwrap();
    let sub = vault.subscribe().unwrap();
    let v = vault.set("a", "1").unwrap();
    vault
        .update_properties(
            "a",
            Some(&v.version),
            &PropertiesUpdate::new().enabled(false),
        )
        .unwrap();
    assert!(vault.recover("missing").is_err());
    vault.delete("a").unwrap();
    vault.get("b").unwrap_err();
    let from_log: Vec<Change> = vault
        .audit(head, 1000)
        .unwrap()
        .iter()
        .filter_map(Change::from_record)
        .collect();
    assert_eq!(from_log, drain(&sub));
    assert_eq!(from_log.len(), 3);
}
