//! Every later version of tresor opens the vaults written by earlier formats and reads all of
//! them.
//!
//! `tests/data/format1.tresor` was written once by the format-1 engine, `tests/data/format2.tresor`
//! by the format-2 engine and `tests/data/format3.tresor` (state digests, records naming their
//! principal) by the format-3 engine, all by the same script (the ignored test `generate_fixture` below,
//! which writes the current format's fixture; never regenerate one for a later format, add a new
//! fixture instead). Their credentials are test-only: the key in `tests/data/formatN.key` (owner
//! slot) and the passphrase below (writer slot, Argon2id at `KdfParams::MINIMUM`).
//! `tests/data/formatN.expected` lists what a fixture holds: every live secret with every kept
//! version and property, the deleted secret with its versions, key slots, settings, the audit
//! record count and a checkpoint.
//!
//! Opening writes (an audit record, automatic purges), so the tests work on copies. The format-1
//! audit log is in the first layout (one row per record, the head in `meta`): the tests also
//! cover reading it, chaining blocks after it, and the upgrade to the current format by the first
//! commit (format-2 files too: their first commit adds the state digests).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tresor::{
    Checkpoint, Credential, Error, KdfParams, ManualClock, Operation, Options, PropertiesUpdate,
    Role, SecretProperties, SetOptions, SlotKind, SlotSpec, Timestamp, Vault, VersionId,
};

/// When the fixture was written (its clock), and when the test reads it (a day later, before any
/// purge date).
const WRITTEN_AT: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const READ_AT: i64 = WRITTEN_AT + 86_400;
const PASSPHRASE: &str = "format-1 fixture passphrase (test only)";

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn opt_time(t: Option<Timestamp>) -> String {
    t.map_or("-".to_string(), |t| t.unix().to_string())
}

fn opt_hex(s: Option<&str>) -> String {
    s.map_or("-".to_string(), |s| hex(s.as_bytes()))
}

fn tags_text(tags: &BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        return "-".to_string();
    }
    tags.iter()
        .map(|(k, v)| format!("{}:{}", hex(k.as_bytes()), hex(v.as_bytes())))
        .collect::<Vec<_>>()
        .join(",")
}

/// One version as a manifest line: everything but the secret name, then the value.
fn version_line(p: &SecretProperties, value: &[u8]) -> String {
    format!(
        "{} {} {} {} {} {} {} {} {} {}",
        p.sequence,
        p.version,
        u8::from(p.enabled),
        opt_time(p.not_before),
        opt_time(p.expires_on),
        opt_hex(p.content_type.as_deref()),
        tags_text(&p.tags),
        p.created.unix(),
        p.updated.unix(),
        hex(value),
    )
}

/// A fixed clock for the fixture and for reading it.
fn clock(t: i64) -> ManualClock {
    ManualClock::new(Timestamp::from_unix(t))
}

/// The fixture the current engine writes: bump with the file format.
const CURRENT: &str = "format3";

/// Every committed fixture.
const FIXTURES: [&str; 3] = ["format1", "format2", "format3"];

/// Writes the current format's fixture and its manifest. Run once per format, by hand:
/// `cargo test --test backward_compatibility -- --ignored generate_fixture`.
#[test]
#[ignore = "writes tests/data/formatN.*; run by hand only to create a new format's fixture"]
fn generate_fixture() {
    let dir = data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{CURRENT}.tresor"));
    assert!(!path.exists(), "the fixture exists: never regenerate it");
    let c = clock(WRITTEN_AT);
    let key = Credential::generate_key().unwrap();
    std::fs::write(
        dir.join(format!("{CURRENT}.key")),
        format!("{}\n", &*key.key_hex().unwrap()),
    )
    .unwrap();
    let v = Vault::create(
        &path,
        &key,
        Options::new()
            .clock(c.clone())
            .label("fixture-owner")
            .retention_days(30)
            .purge_protection(true),
    )
    .unwrap();
    v.add_slot(
        &SlotSpec::new(Credential::passphrase(PASSPHRASE), "fixture-writer")
            .role(Role::Writer)
            .kdf(KdfParams::MINIMUM),
    )
    .unwrap();
    // Every value written, by version id (disabled versions cannot be read back).
    let mut values: BTreeMap<VersionId, Vec<u8>> = BTreeMap::new();
    let mut put = |name: &str, value: &[u8], o: &SetOptions| {
        let p = v.set_with(name, value, o).unwrap();
        values.insert(p.version, value.to_vec());
        c.advance(Duration::from_secs(60));
        p
    };
    let db1 = put(
        "db-password",
        b"hunter2",
        &SetOptions::new()
            .content_type("text/plain")
            .tag("env", "prod"),
    );
    put(
        "db-password",
        b"correct horse battery staple",
        &SetOptions::new()
            .content_type("text/plain")
            .tag("env", "prod")
            .tag("rotated-by", "ops"),
    );
    put(
        "db-password",
        "pässwörd ✓".as_bytes(),
        &SetOptions::new().expires_on(Timestamp::from_unix(WRITTEN_AT + 400 * 86_400)),
    );
    put(
        "API-Key",
        b"ak_0123456789",
        &SetOptions::new()
            .not_before(Timestamp::from_unix(WRITTEN_AT - 86_400))
            .expires_on(Timestamp::from_unix(WRITTEN_AT + 30 * 86_400))
            .content_type("application/x-api-key"),
    );
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    put("binary-blob", &all_bytes, &SetOptions::new());
    put("empty", b"", &SetOptions::new().disabled(true));
    for i in 0..4 {
        put(
            "pruned",
            format!("pruned-{i}").as_bytes(),
            &SetOptions::new().max_versions(2),
        );
    }
    put(
        "deleted-secret",
        b"gone-1",
        &SetOptions::new().tag("k", "v"),
    );
    put("deleted-secret", b"gone-2", &SetOptions::new());
    v.update_properties(
        "db-password",
        Some(&db1.version),
        &PropertiesUpdate::new().enabled(false),
    )
    .unwrap();
    c.advance(Duration::from_secs(60));
    v.get("db-password").unwrap();
    let deleted = v.delete("deleted-secret").unwrap();
    c.advance(Duration::from_secs(60));
    assert!(v.purge("deleted-secret").is_err(), "purge protection");

    // The manifest: read back through the API.
    let mut m = String::new();
    let s = v.settings().unwrap();
    writeln!(
        m,
        "settings {} {} {}",
        s.retention_days,
        u8::from(s.purge_protection),
        s.max_versions.map_or("-".to_string(), |n| n.to_string())
    )
    .unwrap();
    for slot in v.slots().unwrap() {
        writeln!(
            m,
            "slot {} {} {} {:?}",
            slot.id, slot.label, slot.role, slot.kind
        )
        .unwrap();
    }
    let mut live = v.list_all().unwrap();
    live.sort_by(|a, b| a.name.cmp(&b.name));
    for p in live {
        for version in v.list_versions(&p.name).unwrap() {
            writeln!(
                m,
                "version {} {}",
                hex(p.name.as_bytes()),
                version_line(&version, &values[&version.version])
            )
            .unwrap();
        }
    }
    writeln!(
        m,
        "deleted {} {} {} {}",
        hex(deleted.properties.name.as_bytes()),
        deleted.deleted_on.unix(),
        deleted.scheduled_purge.unix(),
        version_line(&deleted.properties, &values[&deleted.properties.version])
    )
    .unwrap();
    let n = v.verify_audit().unwrap();
    let cp = v.checkpoint().unwrap();
    writeln!(m, "audit {n}").unwrap();
    writeln!(m, "checkpoint {cp}").unwrap();
    v.close().unwrap();
    std::fs::write(dir.join(format!("{CURRENT}.expected")), m).unwrap();
}

/// The fixture copied into a temporary directory.
fn fixture(name: &str) -> (tempfile::TempDir, PathBuf, Credential) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.tresor"));
    std::fs::copy(data_dir().join(format!("{name}.tresor")), &path).unwrap();
    let key = Credential::key_file(data_dir().join(format!("{name}.key"))).unwrap();
    (dir, path, key)
}

struct Expected {
    settings: String,
    slots: Vec<String>,
    /// Secret name → version lines, newest first.
    live: BTreeMap<String, Vec<String>>,
    deleted: (String, i64, i64, String),
    audit: u64,
    checkpoint: Checkpoint,
}

fn expected(name: &str) -> Expected {
    let text = std::fs::read_to_string(data_dir().join(format!("{name}.expected"))).unwrap();
    let mut e = Expected {
        settings: String::new(),
        slots: Vec::new(),
        live: BTreeMap::new(),
        deleted: (String::new(), 0, 0, String::new()),
        audit: 0,
        checkpoint: "tresor-cp1-0-00000000000000000000000000000000"
            .parse()
            .unwrap(),
    };
    for line in text.lines() {
        let (kind, rest) = line.split_once(' ').unwrap();
        match kind {
            "settings" => e.settings = rest.to_string(),
            "slot" => e.slots.push(rest.to_string()),
            "version" => {
                let (name, v) = rest.split_once(' ').unwrap();
                let name = String::from_utf8(unhex(name)).unwrap();
                e.live.entry(name).or_default().push(v.to_string());
            }
            "deleted" => {
                let f: Vec<&str> = rest.splitn(4, ' ').collect();
                e.deleted = (
                    String::from_utf8(unhex(f[0])).unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[3].to_string(),
                );
            }
            "audit" => e.audit = rest.parse().unwrap(),
            "checkpoint" => e.checkpoint = rest.parse().unwrap(),
            other => panic!("unknown manifest line {other}"),
        }
    }
    e
}

/// The value of a version, enabling it for the read if it is disabled (on the copy).
fn value_of(v: &Vault, name: &str, p: &SecretProperties) -> Vec<u8> {
    match v.get_version(name, &p.version) {
        Ok(s) => s.expose().to_vec(),
        Err(Error::Disabled) => {
            v.update_properties(
                name,
                Some(&p.version),
                &PropertiesUpdate::new().enabled(true),
            )
            .unwrap();
            let value = v.get_version(name, &p.version).unwrap().expose().to_vec();
            v.update_properties(
                name,
                Some(&p.version),
                &PropertiesUpdate::new().enabled(false),
            )
            .unwrap();
            value
        }
        Err(e) => panic!("{name} {}: {e:?}", p.version),
    }
}

fn settings_line(v: &Vault) -> String {
    let s = v.settings().unwrap();
    format!(
        "{} {} {}",
        s.retention_days,
        u8::from(s.purge_protection),
        s.max_versions.map_or("-".to_string(), |n| n.to_string())
    )
}

#[test]
fn every_fixture_opens_and_reads_everything() {
    for name in FIXTURES {
        opens_and_reads_everything(name);
    }
}

fn opens_and_reads_everything(name: &str) {
    let want = expected(name);
    let (_dir, path, key) = fixture(name);
    let v = Vault::open(
        &path,
        &key,
        Options::new()
            .clock(clock(READ_AT))
            .expect_checkpoint(want.checkpoint)
            .verify_integrity(true),
    )
    .unwrap();
    assert_eq!(v.role(), Role::Owner);
    assert_eq!(v.actor(), "fixture-owner");
    assert_eq!(settings_line(&v), want.settings);
    let slots: Vec<String> = v
        .slots()
        .unwrap()
        .into_iter()
        .map(|s| format!("{} {} {} {:?}", s.id, s.label, s.role, s.kind))
        .collect();
    assert_eq!(slots, want.slots);

    // Every live secret, every kept version, every property and value.
    let mut names: Vec<String> = v.list_all().unwrap().into_iter().map(|p| p.name).collect();
    names.sort();
    assert_eq!(names, want.live.keys().cloned().collect::<Vec<_>>());
    for (name, lines) in &want.live {
        let versions = v.list_versions(name).unwrap();
        // Lookups by name in another case, and by version id, agree with the listing.
        let current = v.properties(&name.to_uppercase(), None).unwrap();
        assert_eq!(current, versions[0]);
        for p in &versions {
            assert_eq!(&v.properties(name, Some(&p.version)).unwrap(), p);
        }
        let got: Vec<String> = versions
            .iter()
            .map(|p| version_line(p, &value_of(&v, name, p)))
            .collect();
        assert_eq!(&got, lines, "{name}");
    }

    // The deleted secret, with its dates, and its versions once recovered.
    let (name, deleted_on, scheduled, current) = &want.deleted;
    let d = v.deleted_properties(name).unwrap();
    assert_eq!(
        (d.deleted_on.unix(), d.scheduled_purge.unix()),
        (*deleted_on, *scheduled)
    );
    assert_eq!(
        &version_line(&d.properties, &[]).rsplit_once(' ').unwrap().0,
        &current.rsplit_once(' ').unwrap().0
    );
    assert!(matches!(v.get(name), Err(Error::NotFound)));
    assert!(matches!(v.purge(name), Err(Error::PurgeProtected { .. })));

    // The audit chain of the old file verifies (plus what this test added).
    let n = v.verify_audit().unwrap();
    assert!(n > want.audit, "{n} > {}", want.audit);
    let log = v.audit(0, want.audit as usize).unwrap();
    assert_eq!(log.len() as u64, want.audit);
    assert_eq!(log[0].operation, Operation::VaultCreate);
    assert_eq!(log[0].time.unix(), WRITTEN_AT);
    assert!(log.iter().any(|r| r.operation == Operation::SecretPrune));
    assert!(
        log.iter().any(|r| r.operation == Operation::SecretPurge
            && r.error.as_deref() == Some("PurgeProtected"))
    );

    let recovered = v.recover(name).unwrap();
    assert_eq!(
        version_line(&recovered, &value_of(&v, name, &recovered)),
        *current
    );
    assert_eq!(v.list_versions(name).unwrap().len(), 2);
    drop(v);

    // The writer's passphrase slot opens it too.
    let w = Vault::open(
        &path,
        &Credential::passphrase(PASSPHRASE),
        Options::new().clock(clock(READ_AT)),
    )
    .unwrap();
    assert_eq!(w.role(), Role::Writer);
    assert_eq!(w.actor(), "fixture-writer");
    assert_eq!(w.get("binary-blob").unwrap().expose().len(), 256);
    assert!(matches!(w.slots(), Err(Error::Forbidden { .. })));
    drop(w);
    assert!(matches!(
        Vault::open(&path, &Credential::passphrase("wrong"), Options::new()),
        Err(Error::WrongKey)
    ));
}

#[test]
fn every_fixture_accepts_writes_and_purges_when_due() {
    for name in FIXTURES {
        accepts_writes_and_purges_when_due(name);
    }
}

fn accepts_writes_and_purges_when_due(name: &str) {
    let want = expected(name);
    let (_dir, path, key) = fixture(name);
    let c = clock(READ_AT);
    let v = Vault::open(&path, &key, Options::new().clock(c.clone())).unwrap();
    // New versions continue the old sequences; new secrets, deletes and slots work.
    let p = v.set("db-password", "new").unwrap();
    assert_eq!(p.sequence, want.live["db-password"].len() as u64 + 1);
    v.set("new-secret", "x").unwrap();
    let pruned = v.set("pruned", "again").unwrap();
    assert_eq!(pruned.sequence, 5);
    assert_eq!(v.list_versions("pruned").unwrap().len(), 2);
    let extra = v
        .add_slot(&SlotSpec::new(
            Credential::generate_key().unwrap(),
            "new-slot",
        ))
        .unwrap();
    v.remove_slot(extra.id).unwrap();
    // Rotation re-encrypts the old records and re-wraps both old slots.
    v.rotate_master_key(&[Credential::passphrase(PASSPHRASE)], |_| {})
        .unwrap();
    v.verify_audit().unwrap();
    drop(v);

    // After the retention period, the deleted secret and the retired versions are purged by
    // an open; the chain still verifies. A clock that jumped weeks past the log's latest time
    // purges nothing at once (a purge may reach at most a day past it): the first open records
    // the new time when it closes, and the next open purges.
    c.set(Timestamp::from_unix(WRITTEN_AT + 31 * 86_400));
    let v = Vault::open(&path, &key, Options::new().clock(c.clone())).unwrap();
    assert!(v.deleted_properties(&want.deleted.0).is_ok());
    drop(v);
    let v = Vault::open(&path, &key, Options::new().clock(c.clone())).unwrap();
    assert!(matches!(
        v.deleted_properties(&want.deleted.0),
        Err(Error::NotFound)
    ));
    assert_eq!(v.get("new-secret").unwrap().expose(), b"x");
    assert_eq!(v.get("db-password").unwrap().expose(), b"new");
    let log = v.audit(0, usize::MAX).unwrap();
    assert!(
        log.iter()
            .filter(|r| r.actor == tresor::SYSTEM_ACTOR && r.operation == Operation::SecretPurge)
            .count()
            >= 2,
        "the deleted secret and the retired versions"
    );
    v.verify_audit().unwrap();
    assert!(v.check_integrity().unwrap() > 0);
    let kind = v.slots().unwrap()[1].kind.clone();
    assert_eq!(kind, SlotKind::Passphrase(KdfParams::MINIMUM));
}

/// A format-1 file stays as it is until its first commit, which moves the head out of `meta`
/// into `audit`, writes the header with the current format (3) and a new header MAC, and adds
/// the state digests, all in that commit's transaction; older checkpoints still hold.
#[test]
fn format1_vault_is_upgraded_by_its_first_commit() {
    use tresor::redb::{Database, ReadableDatabase, TableDefinition};
    const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
    // (header format, head in meta, head in audit)
    fn layout(path: &Path) -> (u16, bool, bool) {
        let db = Database::open(path).unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        let header = meta.get("header").unwrap().unwrap().value().to_vec();
        let in_meta = meta.get("audit_head").unwrap().is_some();
        let in_audit = txn
            .open_table(AUDIT)
            .unwrap()
            .get(u64::MAX)
            .unwrap()
            .is_some();
        (
            u16::from_le_bytes([header[8], header[9]]),
            in_meta,
            in_audit,
        )
    }

    let want = expected("format1");
    let (_dir, path, key) = fixture("format1");
    assert_eq!(layout(&path), (1, true, false));
    // Reads without audit records commit nothing: the file stays format 1.
    let v = Vault::open(
        &path,
        &key,
        Options::new()
            .clock(clock(READ_AT))
            .read_audit(tresor::AuditLevel::Off),
    )
    .unwrap();
    assert!(v.get("db-password").is_ok());
    drop(v);
    assert_eq!(layout(&path), (1, true, false));
    // The first commit upgrades it.
    let v = Vault::open(&path, &key, Options::new().clock(clock(READ_AT))).unwrap();
    v.set("after-upgrade", "x").unwrap();
    drop(v);
    assert_eq!(layout(&path), (3, false, true));
    let v = Vault::open(
        &path,
        &key,
        Options::new()
            .clock(clock(READ_AT))
            .expect_checkpoint(want.checkpoint)
            .verify_integrity(true),
    )
    .unwrap();
    assert_eq!(v.get("after-upgrade").unwrap().expose(), b"x");
    assert!(v.verify_audit().unwrap() > want.audit);
    v.check_integrity().unwrap();
    drop(v);
    // The writer slot (a passphrase) opens the upgraded file too.
    Vault::open(
        &path,
        &Credential::passphrase(PASSPHRASE),
        Options::new().clock(clock(READ_AT)),
    )
    .unwrap();
}
