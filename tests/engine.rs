//! The vault engine's rules, end to end through the public API: unlocking with each kind of key
//! slot, telling a wrong key from a damaged file, refusing files that are not vaults or are too
//! new, the single-handle lock, records bound to their place, nothing readable in the file,
//! roles, name and size limits, the audit log and its levels, concurrency, and key slots.
//!
//! Tests that damage a file open it with plain redb (`tresor::redb`) and edit the tables named in
//! `src/storage.rs`, as someone holding the file but not the key could.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::*;
use tresor::secrecy::SecretString;
use tresor::{
    AuditLevel, Credential, DEFAULT_VALUE_LIMIT, Error, Expect, GetOptions, KdfParams,
    MAX_CONTENT_TYPE_LEN, MAX_NAME_LEN, MAX_TAG_LEN, MAX_TAGS, Operation, Options,
    PropertiesUpdate, Role, SetOptions, SlotKind, SlotSpec, Timestamp, Vault, VersionId,
};

fn opts() -> Options {
    Options::new().clock(clock())
}

/// A file vault with two secrets (two versions each) and a deleted one, closed again.
fn sample_file(path: &Path) {
    let v = Vault::create(path, &key(1), opts()).unwrap();
    v.set("alpha", "alpha-one").unwrap();
    v.set("alpha", "alpha-two").unwrap();
    v.set("beta", "beta-one").unwrap();
    v.set("beta", "beta-two").unwrap();
    v.set("gamma", "gamma-one").unwrap();
    v.delete("gamma").unwrap();
    v.add_slot(&SlotSpec::new(key(2), "reader-slot").role(Role::Reader))
        .unwrap();
    v.close().unwrap();
}

fn open(path: &Path, cred: &Credential) -> tresor::Result<Vault> {
    Vault::open(path, cred, opts())
}

fn is_corrupted<T: std::fmt::Debug>(r: tresor::Result<T>) -> bool {
    matches!(r, Err(Error::Corrupted(_)))
}

// ---------------------------------------------------------------------------------------------
// Unlocking

#[test]
fn passphrase_slot_opens_with_its_passphrase_and_nothing_else() {
    let (_dir, path) = temp_path("pass.tresor");
    let pass = Credential::passphrase("correct horse battery staple");
    let v = Vault::create(&path, &pass, opts().kdf(KdfParams::MINIMUM)).unwrap();
    v.set("db-password", "hunter2").unwrap();
    let slots = v.slots().unwrap();
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].kind, SlotKind::Passphrase(KdfParams::MINIMUM));
    assert_eq!(slots[0].role, Role::Owner);
    assert_eq!(slots[0].label, "owner");
    drop(v);

    let v = open(&path, &pass).unwrap();
    assert_eq!(v.get("db-password").unwrap().expose(), b"hunter2");
    assert_eq!(v.role(), Role::Owner);
    assert_eq!(v.actor(), "owner");
    assert_eq!(v.unlocked_slot(), Some(1));
    drop(v);

    for wrong in [
        Credential::passphrase("correct horse battery stapl"),
        Credential::passphrase("Correct horse battery staple"),
        Credential::passphrase(""),
        key(1),
        XorProvider::new("kms", 1).credential(),
    ] {
        assert!(
            matches!(open(&path, &wrong), Err(Error::WrongKey)),
            "{wrong:?} must be a wrong key"
        );
    }
    // Still intact after the failed attempts.
    assert_eq!(
        open(&path, &pass)
            .unwrap()
            .get("db-password")
            .unwrap()
            .expose(),
        b"hunter2"
    );
}

#[test]
fn passphrase_slot_with_default_parameters() {
    let (_dir, path) = temp_path("default-kdf.tresor");
    let pass = Credential::passphrase("a passphrase with the default Argon2id parameters");
    let v = Vault::create(&path, &pass, opts()).unwrap();
    assert_eq!(
        v.slots().unwrap()[0].kind,
        SlotKind::Passphrase(KdfParams::DEFAULT)
    );
    v.set("s", "v").unwrap();
    drop(v);
    let v = open(&path, &pass).unwrap();
    assert_eq!(v.get("s").unwrap().expose(), b"v");
}

#[test]
fn weak_kdf_parameters_are_refused_and_leave_no_file_behind() {
    let (_dir, path) = temp_path("weak.tresor");
    let weak = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    let r = Vault::create(&path, &Credential::passphrase("pw"), opts().kdf(weak));
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    assert!(!path.exists(), "a refused create must not leave a file");
    // The same path can then be used.
    Vault::create(
        &path,
        &Credential::passphrase("pw"),
        opts().kdf(KdfParams::MINIMUM),
    )
    .unwrap();
}

#[test]
fn external_key_slot_and_key_files() {
    let (dir, path) = temp_path("key.tresor");
    let k = Credential::generate_key().unwrap();
    let v = Vault::create(&path, &k, opts()).unwrap();
    v.set("api-key", "k1").unwrap();
    assert_eq!(v.slots().unwrap()[0].kind, SlotKind::Key);
    drop(v);

    // The same key, through its hex form and through key files (hex text and raw bytes).
    let hex = k.key_hex().expect("a key credential has a hex form");
    assert_eq!(hex.len(), 64);
    let from_hex = Credential::key_from_hex(&hex).unwrap();
    let hex_file = dir.path().join("vault.key");
    std::fs::write(&hex_file, format!("{}\n", &*hex)).unwrap();
    let raw_file = dir.path().join("vault.bin");
    let raw_bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    std::fs::write(&raw_file, &raw_bytes).unwrap();
    for cred in [
        k.clone(),
        from_hex,
        Credential::key_file(&hex_file).unwrap(),
        Credential::key_file(&raw_file).unwrap(),
    ] {
        let v = open(&path, &cred).unwrap();
        assert_eq!(v.get("api-key").unwrap().expose(), b"k1");
    }

    assert!(matches!(open(&path, &key(9)), Err(Error::WrongKey)));
    assert!(Credential::key_from_hex("abcd").is_err());
    assert!(Credential::key_from_hex(&"zz".repeat(32)).is_err());
    let bad_file = dir.path().join("bad.key");
    std::fs::write(&bad_file, "not a key").unwrap();
    assert!(matches!(
        Credential::key_file(&bad_file),
        Err(Error::InvalidArgument(_))
    ));
    // A key credential's Debug output does not show the key.
    assert!(!format!("{k:?}").contains(&hex[..16]));
}

#[test]
fn key_provider_slot() {
    let (_dir, path) = temp_path("provider.tresor");
    let v = Vault::create(&path, &XorProvider::new("test-kms", 7).credential(), opts()).unwrap();
    v.set("token", "t0k3n").unwrap();
    assert_eq!(
        v.slots().unwrap()[0].kind,
        SlotKind::Provider("test-kms".into())
    );
    drop(v);

    let v = open(&path, &XorProvider::new("test-kms", 7).credential()).unwrap();
    assert_eq!(v.get("token").unwrap().expose(), b"t0k3n");
    drop(v);

    // The same provider id with another key unwraps to a wrong key-encryption key.
    assert!(matches!(
        open(&path, &XorProvider::new("test-kms", 8).credential()),
        Err(Error::WrongKey)
    ));
    // Another provider id does not match the slot at all.
    assert!(matches!(
        open(&path, &XorProvider::new("other-kms", 7).credential()),
        Err(Error::WrongKey)
    ));
    // A provider that fails passes its error through.
    let mut failing = XorProvider::new("test-kms", 7);
    failing.fail = true;
    match open(&path, &failing.credential()) {
        Err(Error::Provider(msg)) => assert!(msg.contains("unavailable")),
        other => panic!("expected a provider error, got {other:?}"),
    }
}

#[test]
fn open_options_are_checked() {
    let (_dir, path) = temp_path("opts.tresor");
    Vault::create(&path, &key(1), opts()).unwrap();
    for bad in [0, tresor::MAX_VALUE_LIMIT + 1] {
        assert!(matches!(
            Vault::open(&path, &key(1), opts().max_value_len(bad)),
            Err(Error::InvalidArgument(_))
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Damaged, foreign and newer files

#[test]
fn a_damaged_key_slot_is_corrupted_not_a_wrong_key() {
    let (_dir, path) = temp_path("slot.tresor");
    sample_file(&path);
    let damaged = copy_to(&path, "slot-damaged.tresor");
    // The wrapped master key is the last field of the slot record: flip a bit of its tag.
    let slot = get_row(&damaged, SLOTS, 1).unwrap();
    edit(&damaged, |txn| {
        txn.open_table(SLOTS)
            .unwrap()
            .insert(1, flip_last(slot).as_slice())
            .unwrap();
    });
    assert!(is_corrupted(open(&damaged, &key(1))));
    // A wrong key is still told as such, and the other slot still opens (but the header MAC
    // covers every slot, so the damage is noticed there too).
    assert!(matches!(open(&damaged, &key(7)), Err(Error::WrongKey)));
    assert!(is_corrupted(open(&damaged, &key(2))));
    // The original is fine.
    assert!(open(&path, &key(1)).is_ok());
}

/// Byte offset of the role in a slot record: tag, label length (one byte for short labels),
/// label bytes, role.
fn role_offset(label: &str) -> usize {
    assert!(label.len() < 128);
    2 + label.len()
}

#[test]
fn edits_of_header_slots_or_settings_are_corrupted() {
    let (_dir, path) = temp_path("base.tresor");
    sample_file(&path);

    type Edit = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "header creation time changed",
            Box::new(|p: &Path| {
                let h = meta_row(p, "header").unwrap();
                set_meta_row(p, "header", Some(&flip_last(h)));
            }),
        ),
        (
            "a slot stripped",
            Box::new(|p: &Path| {
                edit(p, |txn| {
                    txn.open_table(SLOTS).unwrap().remove(2).unwrap();
                });
            }),
        ),
        (
            "a reader slot turned into an owner slot",
            Box::new(|p: &Path| {
                let mut rec = get_row(p, SLOTS, 2).unwrap();
                let at = role_offset("reader-slot");
                assert_eq!(rec[at], 3, "the reader role code");
                rec[at] = 1;
                edit(p, |txn| {
                    txn.open_table(SLOTS)
                        .unwrap()
                        .insert(2, rec.as_slice())
                        .unwrap();
                });
            }),
        ),
        (
            "a slot's label renamed",
            Box::new(|p: &Path| {
                let mut rec = get_row(p, SLOTS, 2).unwrap();
                assert_eq!(&rec[2..13], b"reader-slot");
                rec[2] = b'R';
                edit(p, |txn| {
                    txn.open_table(SLOTS)
                        .unwrap()
                        .insert(2, rec.as_slice())
                        .unwrap();
                });
            }),
        ),
        (
            "settings bytes edited",
            Box::new(|p: &Path| {
                let s = meta_row(p, "settings").unwrap();
                set_meta_row(p, "settings", Some(&flip_last(s)));
            }),
        ),
        (
            "settings removed",
            Box::new(|p: &Path| set_meta_row(p, "settings", None)),
        ),
        (
            "header MAC edited",
            Box::new(|p: &Path| {
                let a = meta_row(p, "auth").unwrap();
                set_meta_row(p, "auth", Some(&flip_last(a)));
            }),
        ),
        (
            "header MAC removed",
            Box::new(|p: &Path| set_meta_row(p, "auth", None)),
        ),
        (
            "audit head edited",
            Box::new(|p: &Path| {
                let a = audit_head_row(p).unwrap();
                set_audit_head_row(p, Some(&flip_last(a)));
            }),
        ),
    ];
    for (i, (what, damage)) in cases.iter().enumerate() {
        let copy = copy_to(&path, &format!("case-{i}.tresor"));
        damage(&copy);
        let r = open(&copy, &key(1));
        assert!(
            is_corrupted(r),
            "{what}: the owner's open must be Corrupted"
        );
        let r = open(&copy, &key(2));
        if *what == "a slot stripped" {
            assert!(matches!(r, Err(Error::WrongKey)), "{what}: {r:?}");
        } else {
            assert!(
                is_corrupted(r),
                "{what}: the reader's open must be Corrupted"
            );
        }
        assert!(
            matches!(open(&copy, &key(5)), Err(Error::WrongKey)),
            "{what}: a wrong key stays a wrong key"
        );
    }
}

#[test]
fn files_that_are_not_vaults_give_clean_errors() {
    let dir = tempfile::tempdir().unwrap();

    // Random bytes.
    let random = dir.path().join("random.bin");
    let mut x = 0x1234_5678_9abc_def0u64;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&random, &bytes).unwrap();
    let r = open(&random, &key(1));
    assert!(matches!(r, Err(Error::Corrupted(_))), "random bytes: {r:?}");
    assert_eq!(std::fs::read(&random).unwrap(), bytes, "left untouched");

    // Text.
    let text = dir.path().join("text.txt");
    std::fs::write(&text, "just some text, not a vault\n".repeat(100)).unwrap();
    let r = open(&text, &key(1));
    assert!(matches!(r, Err(Error::Corrupted(_))), "text: {r:?}");

    // An empty redb database.
    let empty_db = dir.path().join("empty.redb");
    drop(tresor::redb::Database::create(&empty_db).unwrap());
    let r = open(&empty_db, &key(1));
    assert!(matches!(r, Err(Error::Corrupted(_))), "empty redb: {r:?}");

    // A redb database with a `meta` table but no header, and one with a foreign header.
    let no_header = dir.path().join("no-header.redb");
    {
        let db = tresor::redb::Database::create(&no_header).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("other", b"x".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let r = open(&no_header, &key(1));
    assert!(matches!(r, Err(Error::Corrupted(_))), "no header: {r:?}");
    set_meta_row(&no_header, "header", Some(b"SQLite format 3\0garbage"));
    let r = open(&no_header, &key(1));
    assert!(
        matches!(r, Err(Error::Corrupted(_))),
        "foreign header: {r:?}"
    );

    // A file that does not exist.
    let r = open(&dir.path().join("missing.tresor"), &key(1));
    match r {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        other => panic!("missing file: {other:?}"),
    }

    // create never overwrites.
    let r = Vault::create(&text, &key(1), opts());
    assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
    assert!(
        std::fs::read_to_string(&text)
            .unwrap()
            .starts_with("just some text")
    );
}

#[test]
fn an_empty_file_is_not_a_vault() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let r = open(&empty, &key(1));
    assert!(matches!(r, Err(Error::Corrupted(_))), "{r:?}");
}

#[test]
fn a_newer_format_is_unsupported() {
    let (_dir, path) = temp_path("newer.tresor");
    sample_file(&path);
    let header = meta_row(&path, "header").unwrap();
    assert_eq!(&header[..8], b"TRESOR\0\0");
    assert_eq!(u16::from_le_bytes([header[8], header[9]]), 3);
    for format in [4u16, 0xffff] {
        let copy = copy_to(&path, &format!("format-{format}.tresor"));
        let mut h = header.clone();
        h[8..10].copy_from_slice(&format.to_le_bytes());
        set_meta_row(&copy, "header", Some(&h));
        match open(&copy, &key(1)) {
            Err(Error::UnsupportedFormat { found, supported }) => {
                assert_eq!(found, format);
                assert_eq!(supported, 3);
            }
            other => panic!("format {format}: {other:?}"),
        }
    }
    // Format 0 never existed.
    let copy = copy_to(&path, "format-0.tresor");
    let mut h = header.clone();
    h[8..10].copy_from_slice(&0u16.to_le_bytes());
    set_meta_row(&copy, "header", Some(&h));
    assert!(is_corrupted(open(&copy, &key(1))));
}

// ---------------------------------------------------------------------------------------------
// One handle per file

#[test]
fn a_second_handle_on_the_same_file_is_locked() {
    let (_dir, path) = temp_path("locked.tresor");
    let v = Vault::create(&path, &key(1), opts()).unwrap();
    v.set("s", "v").unwrap();
    assert!(matches!(open(&path, &key(1)), Err(Error::Locked)));
    // Even with a wrong key, the lock is reported first (nothing is read).
    assert!(matches!(open(&path, &key(2)), Err(Error::Locked)));
    // The first handle is unaffected.
    assert_eq!(v.get("s").unwrap().expose(), b"v");
    v.set("s", "w").unwrap();
    drop(v);
    let v = open(&path, &key(1)).unwrap();
    assert_eq!(v.get("s").unwrap().expose(), b"w");
    v.verify_audit().unwrap();
}

/// Runs in a child process (see the next test): tries to open the vault named by
/// `TRESOR_PROBE_PATH` and prints the outcome.
#[test]
#[ignore = "run by a_second_process_is_locked_out in a child process"]
fn probe_open_in_child_process() {
    let path = std::env::var("TRESOR_PROBE_PATH").expect("TRESOR_PROBE_PATH");
    let outcome = match Vault::open(&path, &key(1), Options::new()) {
        Ok(v) => {
            let value = v.get("s").map(|s| s.expose().len());
            format!("ok:{value:?}")
        }
        Err(e) => e.code().to_string(),
    };
    println!("probe-outcome={outcome}");
}

fn probe(path: &Path) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "probe_open_in_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TRESOR_PROBE_PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (_, rest) = stdout
        .split_once("probe-outcome=")
        .unwrap_or_else(|| panic!("no probe outcome in {stdout}"));
    rest.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_second_process_is_locked_out() {
    let (_dir, path) = temp_path("process.tresor");
    let v = Vault::create(&path, &key(1), Options::new()).unwrap();
    v.set("s", "value").unwrap();
    assert_eq!(probe(&path), "Locked");
    drop(v);
    assert_eq!(probe(&path), "ok:Ok(5)");
}

// ---------------------------------------------------------------------------------------------
// Records are bound to their place

#[test]
fn a_secret_record_copied_onto_another_row_does_not_decrypt() {
    let (_dir, path) = temp_path("moved.tresor");
    sample_file(&path);
    let live = rows(&path, SECRETS);
    assert_eq!(live.len(), 2);
    let values = [
        b"alpha-one".as_slice(),
        b"alpha-two",
        b"beta-one",
        b"beta-two",
    ];

    // Swap the two live secrets' rows.
    let swapped = copy_to(&path, "swapped.tresor");
    edit(&swapped, |txn| {
        let mut t = txn.open_table(SECRETS).unwrap();
        t.insert(live[0].0, live[1].1.as_slice()).unwrap();
        t.insert(live[1].0, live[0].1.as_slice()).unwrap();
    });
    let v = open(&swapped, &key(1)).unwrap();
    for name in ["alpha", "beta"] {
        let r = v.get(name);
        assert!(is_corrupted(r), "{name}");
        assert!(is_corrupted(v.properties(name, None)));
        assert!(is_corrupted(v.list_versions(name)));
    }
    assert!(is_corrupted(v.list(None, 10)));
    // Writing over it does not silently replace what cannot be read.
    assert!(is_corrupted(v.set("alpha", "x")));
    drop(v);

    // One secret's row copied over the other's: the overwritten name never yields the other's value.
    let copied = copy_to(&path, "copied.tresor");
    edit(&copied, |txn| {
        txn.open_table(SECRETS)
            .unwrap()
            .insert(live[1].0, live[0].1.as_slice())
            .unwrap();
    });
    let v = open(&copied, &key(1)).unwrap();
    let mut broken = 0;
    for (name, own) in [("alpha", b"alpha-two".as_slice()), ("beta", b"beta-two")] {
        match v.get(name) {
            Ok(s) => assert_eq!(s.expose(), own, "{name} read another secret's value"),
            Err(Error::Corrupted(_)) => broken += 1,
            Err(e) => panic!("{name}: {e:?}"),
        }
    }
    assert_eq!(broken, 1);
    drop(v);

    // Older versions swapped between the two secrets, and within one secret's sequence.
    let versions = rows(&path, VERSIONS);
    assert_eq!(versions.len(), 2);
    let moved = copy_to(&path, "versions.tresor");
    edit(&moved, |txn| {
        let mut t = txn.open_table(VERSIONS).unwrap();
        t.insert(versions[0].0, versions[1].1.as_slice()).unwrap();
        t.insert(versions[1].0, versions[0].1.as_slice()).unwrap();
    });
    let v = open(&moved, &key(1)).unwrap();
    for name in ["alpha", "beta"] {
        let history = v.list_versions(name);
        assert!(is_corrupted(history), "{name}");
        // The current version (inside the secret record) is still fine.
        let current = v.get(name).unwrap();
        assert!(values.contains(&current.expose()));
    }
    drop(v);

    // A live record moved into the deleted table, under its own hash.
    let to_deleted = copy_to(&path, "to-deleted.tresor");
    edit(&to_deleted, |txn| {
        txn.open_table(SECRETS).unwrap().remove(live[0].0).unwrap();
        txn.open_table(DELETED)
            .unwrap()
            .insert(live[0].0, live[0].1.as_slice())
            .unwrap();
    });
    // Opening scans deleted secrets for purge dates, so the open itself notices.
    assert!(is_corrupted(open(&to_deleted, &key(1))));
}

#[test]
fn a_record_from_another_vault_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.tresor");
    let b = dir.path().join("b.tresor");
    for (p, value) in [(&a, "value-of-a"), (&b, "value-of-b")] {
        let v = Vault::create(p, &key(1), opts()).unwrap();
        v.set("shared-name", value).unwrap();
    }
    let row_b = rows(&b, SECRETS).remove(0).1;
    let hash_a = rows(&a, SECRETS)[0].0;
    edit(&a, |txn| {
        txn.open_table(SECRETS)
            .unwrap()
            .insert(hash_a, row_b.as_slice())
            .unwrap();
    });
    let v = open(&a, &key(1)).unwrap();
    assert!(is_corrupted(v.get("shared-name")));
}

// ---------------------------------------------------------------------------------------------
// Nothing readable in the file

#[test]
fn the_file_holds_no_names_values_tags_or_content_types_in_clear() {
    let (_dir, path) = temp_path("strings.tresor");
    let needles: [&str; 8] = [
        "Zebra-Name-7731",
        "deleted-Name-9182",
        "value-qwertyuiop-1234",
        "older-value-lkjhgf-5678",
        "tagkey-asdfghjk",
        "tagval-zxcvbnm",
        "ctype/mnbvcxz-plain",
        "identity-poiuytr",
    ];
    let v = Vault::create(&path, &key(1), opts().actor(needles[7])).unwrap();
    let set_opts = SetOptions::new()
        .content_type(needles[6])
        .tag(needles[4], needles[5]);
    v.set_with(needles[0], needles[3], &set_opts).unwrap();
    v.set_with(needles[0], needles[2], &set_opts).unwrap();
    v.set_with(needles[1], needles[2], &set_opts).unwrap();
    v.delete(needles[1]).unwrap();
    assert_eq!(v.get(needles[0]).unwrap().expose(), needles[2].as_bytes());
    v.verify_audit().unwrap();
    drop(v);
    let v = open(&path, &key(1)).unwrap();
    v.get(needles[0]).unwrap();
    drop(v);

    let file = std::fs::read(&path).unwrap();
    for needle in needles {
        for form in [
            needle.to_string(),
            needle.to_lowercase(),
            needle.to_uppercase(),
        ] {
            assert!(
                !contains(&file, form.as_bytes()),
                "{needle:?} is readable in the file"
            );
        }
    }

    // The scan itself finds what a plain redb file stores.
    let control = path.with_file_name("control.redb");
    {
        let db = tresor::redb::Database::create(&control).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(needles[0], needles[2].as_bytes())
            .unwrap();
        txn.commit().unwrap();
    }
    let plain = std::fs::read(&control).unwrap();
    assert!(contains(&plain, needles[0].as_bytes()));
    assert!(contains(&plain, needles[2].as_bytes()));
}

// ---------------------------------------------------------------------------------------------
// Roles

type Run = Box<dyn Fn(&Vault) -> tresor::Result<()>>;

/// One call of the public API, the operation it is recorded as, and the least role allowed.
struct Call {
    name: &'static str,
    op: Operation,
    allowed: &'static [Role],
    run: Run,
}

const ALL: &[Role] = &[Role::Owner, Role::Writer, Role::Reader];
const WRITERS: &[Role] = &[Role::Owner, Role::Writer];
const OWNER: &[Role] = &[Role::Owner];
const AUDITORS: &[Role] = &[Role::Owner, Role::Auditor];

fn calls(blob: Vec<u8>, scratch: std::path::PathBuf) -> Vec<Call> {
    fn c(
        name: &'static str,
        op: Operation,
        allowed: &'static [Role],
        run: impl Fn(&Vault) -> tresor::Result<()> + 'static,
    ) -> Call {
        Call {
            name,
            op,
            allowed,
            run: Box::new(run),
        }
    }
    let counter = std::sync::atomic::AtomicU32::new(0);
    vec![
        c("get", Operation::SecretGet, ALL, |v| {
            v.get("live").map(drop)
        }),
        c("properties", Operation::SecretGetProperties, ALL, |v| {
            v.properties("live", None).map(drop)
        }),
        c("list", Operation::SecretList, ALL, |v| {
            v.list(None, 10).map(drop)
        }),
        c("list_versions", Operation::SecretListVersions, ALL, |v| {
            v.list_versions("live").map(drop)
        }),
        c(
            "deleted_properties",
            Operation::SecretGetDeleted,
            ALL,
            |v| v.deleted_properties("gone").map(drop),
        ),
        c("list_deleted", Operation::SecretListDeleted, ALL, |v| {
            v.list_deleted(None, 10).map(drop)
        }),
        c("expiring", Operation::SecretListExpiring, ALL, |v| {
            v.expiring(Duration::from_secs(DAY)).map(drop)
        }),
        c("set", Operation::SecretSet, WRITERS, |v| {
            v.set("live", "new").map(drop)
        }),
        c("set_many", Operation::SecretImport, WRITERS, |v| {
            let o = SetOptions::new();
            v.set_many([("batch", b"x".as_slice(), &o)]).map(drop)
        }),
        c("update_properties", Operation::SecretUpdate, WRITERS, |v| {
            v.update_properties("live", None, &PropertiesUpdate::new().enabled(true))
                .map(drop)
        }),
        c("backup_secret", Operation::SecretBackup, WRITERS, |v| {
            v.backup_secret("live").map(drop)
        }),
        c(
            "restore_secret",
            Operation::SecretRestore,
            WRITERS,
            move |v| v.restore_secret(&blob).map(drop),
        ),
        c("delete", Operation::SecretDelete, WRITERS, |v| {
            v.delete("other").map(drop)
        }),
        c("recover", Operation::SecretRecover, WRITERS, |v| {
            v.recover("other").map(drop)
        }),
        c("purge_expired", Operation::PurgeExpired, OWNER, |v| {
            v.purge_expired().map(drop)
        }),
        c("purge", Operation::SecretPurge, OWNER, |v| v.purge("gone")),
        c("slots", Operation::SlotList, OWNER, |v| v.slots().map(drop)),
        c("add_slot", Operation::SlotAdd, OWNER, |v| {
            v.add_slot(&SlotSpec::new(key(50), "extra")).map(drop)
        }),
        c("remove_slot", Operation::SlotRemove, OWNER, |v| {
            v.remove_slot(99)
        }),
        c(
            "change_passphrase",
            Operation::PassphraseChange,
            OWNER,
            |v| v.change_passphrase(99, &SecretString::from("x"), KdfParams::MINIMUM),
        ),
        c(
            "enable_purge_protection",
            Operation::SettingsUpdate,
            OWNER,
            |v| v.enable_purge_protection(),
        ),
        c("set_max_versions", Operation::SettingsUpdate, OWNER, |v| {
            v.set_max_versions(None)
        }),
        c("rotate_master_key", Operation::KeyRotate, OWNER, |v| {
            v.rotate_master_key(&[key(1), key(2), key(3), key(4)], |_| {})
        }),
        c("compact", Operation::Compact, OWNER, |v| {
            v.compact().map(drop)
        }),
        c("backup_to", Operation::VaultBackup, OWNER, move |v| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            v.backup_to(scratch.join(format!("copy-{n}.tresor")))
        }),
        c("audit", Operation::AuditRead, AUDITORS, |v| {
            v.audit(0, 5).map(drop)
        }),
        c("verify_audit", Operation::AuditVerify, AUDITORS, |v| {
            v.verify_audit().map(drop)
        }),
        c("checkpoint", Operation::AuditCheckpoint, AUDITORS, |v| {
            v.checkpoint().map(drop)
        }),
        c("audit_len", Operation::AuditCheckpoint, AUDITORS, |v| {
            v.audit_len().map(drop)
        }),
        c("check_integrity", Operation::AuditVerify, AUDITORS, |v| {
            v.check_integrity().map(drop)
        }),
    ]
}

/// Runs every call as `v` (of role `role`, acting as `actor`): each call outside the role is
/// `Forbidden` naming the role and operation, every other is not.
fn check_role(v: &Vault, role: Role, calls: &[Call]) -> BTreeSet<&'static str> {
    assert_eq!(v.role(), role);
    let mut refused = BTreeSet::new();
    for call in calls {
        let r = (call.run)(v);
        if call.allowed.contains(&role) {
            assert!(
                !matches!(r, Err(Error::Forbidden { .. })),
                "{role:?} may {}: {r:?}",
                call.name
            );
        } else {
            match r {
                Err(Error::Forbidden { role: r, operation }) => {
                    assert_eq!(r, role, "{}", call.name);
                    assert_eq!(operation, call.op, "{}", call.name);
                }
                other => panic!("{role:?} may not {}: got {other:?}", call.name),
            }
            refused.insert(call.name);
        }
    }
    refused
}

/// The refused calls recorded in the audit log for `actor`, by operation.
fn refusals_in_log(owner: &Vault, actor: &str) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for r in audit_log(owner) {
        if r.actor == actor && r.error.as_deref() == Some("Forbidden") {
            *out.entry(r.operation.as_str()).or_insert(0) += 1;
        }
    }
    out
}

fn expected_refusals(calls: &[Call], refused: &BTreeSet<&str>) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for c in calls.iter().filter(|c| refused.contains(c.name)) {
        *out.entry(c.op.as_str()).or_insert(0) += 1;
    }
    out
}

/// An owner's vault on shared memory with secrets `live`, `other`, deleted `gone`, and slots
/// for each role (keys 1–4); returns the storage and a backup blob of `live`.
fn roles_fixture() -> (SharedMem, Vec<u8>) {
    let mem = SharedMem::new();
    let v = Vault::create_with_backend(mem.clone(), &key(1), opts()).unwrap();
    v.set("live", "l1").unwrap();
    v.set("live", "l2").unwrap();
    v.set("other", "o").unwrap();
    v.set("gone", "g").unwrap();
    v.delete("gone").unwrap();
    for (k, label, role) in [
        (2, "writer-slot", Role::Writer),
        (3, "reader-slot", Role::Reader),
        (4, "auditor-slot", Role::Auditor),
    ] {
        v.add_slot(&SlotSpec::new(key(k), label).role(role))
            .unwrap();
    }
    let blob = v.backup_secret("live").unwrap();
    v.close().unwrap();
    (mem, blob)
}

#[test]
fn each_role_through_its_key_slot() {
    let (mem, blob) = roles_fixture();
    let scratch = tempfile::tempdir().unwrap();
    for (k, label, role) in [
        (1, "owner", Role::Owner),
        (2, "writer-slot", Role::Writer),
        (3, "reader-slot", Role::Reader),
        (4, "auditor-slot", Role::Auditor),
    ] {
        let storage = mem.snapshot();
        let calls = calls(blob.clone(), scratch.path().to_path_buf());
        let v = Vault::open_with_backend(storage.clone(), &key(k), opts()).unwrap();
        assert_eq!(v.actor(), label);
        let refused = check_role(&v, role, &calls);
        if role == Role::Owner {
            assert!(refused.is_empty());
        }
        drop(v);
        let owner = Vault::open_with_backend(storage, &key(1), opts()).unwrap();
        assert_eq!(
            refusals_in_log(&owner, label),
            expected_refusals(&calls, &refused),
            "{role:?}: every refusal is in the audit log"
        );
        owner.verify_audit().unwrap();
    }
}

#[test]
fn each_role_through_as_identity() {
    let (mem, blob) = roles_fixture();
    let scratch = tempfile::tempdir().unwrap();
    for role in [Role::Writer, Role::Reader, Role::Auditor] {
        let storage = mem.snapshot();
        let calls = calls(blob.clone(), scratch.path().to_path_buf());
        let owner = Vault::open_with_backend(storage, &key(1), opts()).unwrap();
        let actor = format!("job-{role}");
        let v = owner.as_identity(actor.clone(), role).unwrap();
        assert_eq!(v.actor(), actor);
        let refused = check_role(&v, role, &calls);
        assert!(!refused.is_empty());
        assert_eq!(
            refusals_in_log(&owner, &actor),
            expected_refusals(&calls, &refused)
        );
        owner.verify_audit().unwrap();
    }
}

#[test]
fn as_identity_cannot_widen_a_role() {
    let v = Vault::create_in_memory(&key(1), opts()).unwrap();
    let writer = v.as_identity("w", Role::Writer).unwrap();
    let reader = v.as_identity("r", Role::Reader).unwrap();
    let auditor = v.as_identity("a", Role::Auditor).unwrap();
    for (h, wider) in [
        (&writer, Role::Owner),
        (&writer, Role::Auditor),
        (&reader, Role::Writer),
        (&reader, Role::Auditor),
        (&auditor, Role::Reader),
        (&auditor, Role::Owner),
    ] {
        assert!(
            matches!(h.as_identity("x", wider), Err(Error::InvalidArgument(_))),
            "{:?} -> {wider:?}",
            h.role()
        );
    }
    assert_eq!(
        writer.as_identity("w2", Role::Reader).unwrap().role(),
        Role::Reader
    );
    assert!(matches!(
        v.as_identity("", Role::Reader),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        v.as_identity("x".repeat(129), Role::Reader),
        Err(Error::InvalidArgument(_))
    ));
    // The identity's name is the actor of its records.
    writer.set("s", "v").unwrap();
    reader.get("s").unwrap();
    let log = audit_log(&v);
    let n = log.len();
    assert_eq!(
        (log[n - 2].actor.as_str(), log[n - 2].operation),
        ("w", Operation::SecretSet)
    );
    assert_eq!(
        (log[n - 1].actor.as_str(), log[n - 1].operation),
        ("r", Operation::SecretGet)
    );
}

#[test]
fn no_caller_can_act_under_the_system_actor_name() {
    // Records by `system` are the vault's own (automatic purges, pruning): a caller must not be
    // able to pass a purge of its own off as one.
    let mem = SharedMem::new();
    let v = Vault::create_with_backend(mem.clone(), &key(1), opts()).unwrap();
    for name in [tresor::SYSTEM_ACTOR, "System", "SYSTEM"] {
        assert!(
            matches!(
                v.as_identity(name, Role::Writer),
                Err(Error::InvalidArgument(_))
            ),
            "as_identity({name:?})"
        );
        assert!(
            matches!(
                v.add_slot(&SlotSpec::new(key(2), name)),
                Err(Error::InvalidArgument(_))
            ),
            "slot label {name:?}"
        );
        assert!(
            matches!(
                Vault::create_in_memory(&key(1), opts().label(name)),
                Err(Error::InvalidArgument(_))
            ),
            "first slot label {name:?}"
        );
        assert!(
            matches!(
                Vault::create_in_memory(&key(1), opts().actor(name)),
                Err(Error::InvalidArgument(_))
            ),
            "actor {name:?} at creation"
        );
    }
    drop(v);
    for bad in [tresor::SYSTEM_ACTOR, ""] {
        assert!(
            matches!(
                Vault::open_with_backend(mem.clone(), &key(1), opts().actor(bad)),
                Err(Error::InvalidArgument(_))
            ),
            "actor {bad:?} at open"
        );
    }
    let v = Vault::open_with_backend(mem, &key(1), opts().actor("systems-team")).unwrap();
    assert_eq!(v.actor(), "systems-team");
    assert!(
        audit_log(&v)
            .iter()
            .all(|r| r.actor != tresor::SYSTEM_ACTOR)
    );
}

// ---------------------------------------------------------------------------------------------
// Names and limits

#[test]
fn names_follow_azure_rules() {
    let v = Vault::create_in_memory(&key(1), opts()).unwrap();
    let longest = "a".repeat(MAX_NAME_LEN);
    for good in ["a", "Z", "0", "-", "db-Password-01", longest.as_str()] {
        v.set(good, "v").unwrap();
        assert_eq!(v.get(good).unwrap().properties.name, good);
    }
    let too_long = "a".repeat(MAX_NAME_LEN + 1);
    for bad in [
        "",
        too_long.as_str(),
        "a_b",
        "a b",
        "a.b",
        "a/b",
        "é",
        "naïve",
        "a\0b",
    ] {
        assert!(
            matches!(v.set(bad, "v"), Err(Error::InvalidName(_))),
            "{bad:?}"
        );
        assert!(matches!(v.get(bad), Err(Error::InvalidName(_))), "{bad:?}");
        assert!(matches!(v.delete(bad), Err(Error::InvalidName(_))));
        assert!(tresor::validate_name(bad).is_err());
    }
}

#[test]
fn names_are_case_insensitive_and_keep_their_first_case() {
    let v = Vault::create_in_memory(&key(1), opts()).unwrap();
    let v1 = v.set("Db-Password", "one").unwrap();
    assert_eq!(v1.name, "Db-Password");
    let got = v.get("DB-PASSWORD").unwrap();
    assert_eq!(got.expose(), b"one");
    assert_eq!(got.properties.name, "Db-Password");
    let v2 = v.set("db-password", "two").unwrap();
    assert_eq!(v2.name, "Db-Password");
    assert_eq!(v2.sequence, 2);
    let all = v.list_all().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].name, "Db-Password");
    assert_eq!(v.list_versions("dB-pAsSwOrD").unwrap().len(), 2);
    let d = v.delete("DB-password").unwrap();
    assert_eq!(d.properties.name, "Db-Password");
    assert!(matches!(
        v.set("DB-PASSWORD", "x"),
        Err(Error::Conflict { deleted: true })
    ));
    assert_eq!(
        v.recover("db-PASSWORD").unwrap().name,
        "Db-Password",
        "recover keeps the original case"
    );
}

#[test]
fn value_size_limits() {
    let v = Vault::create_in_memory(&key(1), opts()).unwrap();
    assert_eq!(DEFAULT_VALUE_LIMIT, 25 * 1024);
    v.set("max", vec![7u8; DEFAULT_VALUE_LIMIT]).unwrap();
    assert_eq!(v.get("max").unwrap().expose().len(), DEFAULT_VALUE_LIMIT);
    match v.set("big", vec![7u8; DEFAULT_VALUE_LIMIT + 1]) {
        Err(Error::ValueTooLarge { len, max }) => {
            assert_eq!((len, max), (DEFAULT_VALUE_LIMIT + 1, DEFAULT_VALUE_LIMIT));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(v.get("big"), Err(Error::NotFound)));
    v.set("empty", b"").unwrap();
    assert_eq!(v.get("empty").unwrap().expose(), b"");

    // A configured limit of 1 MiB.
    let mib = 1024 * 1024;
    let v = Vault::create_in_memory(&key(1), opts().max_value_len(mib)).unwrap();
    let big: Vec<u8> = (0..mib).map(|i| (i % 251) as u8).collect();
    v.set("big", &big).unwrap();
    assert_eq!(v.get("big").unwrap().expose(), big.as_slice());
    assert!(matches!(
        v.set("bigger", vec![0u8; mib + 1]),
        Err(Error::ValueTooLarge { max, .. }) if max == mib
    ));
    // The limit is per handle: a smaller one refuses new large values, still reads old ones.
    let mem = SharedMem::new();
    let v = Vault::create_with_backend(mem.clone(), &key(1), opts().max_value_len(mib)).unwrap();
    v.set("big", &big).unwrap();
    drop(v);
    let v = Vault::open_with_backend(mem, &key(1), opts().max_value_len(1000)).unwrap();
    assert_eq!(v.get("big").unwrap().expose().len(), mib);
    assert!(matches!(
        v.set("big", vec![0u8; 1001]),
        Err(Error::ValueTooLarge { max: 1000, .. })
    ));
    assert!(matches!(
        Vault::create_in_memory(&key(1), opts().max_value_len(0)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Vault::create_in_memory(&key(1), opts().max_value_len(tresor::MAX_VALUE_LIMIT + 1)),
        Err(Error::InvalidArgument(_))
    ));
}

fn tags(n: usize, key_len: usize, value_len: usize) -> BTreeMap<String, String> {
    (0..n)
        .map(|i| {
            let k = format!("{i:02}{}", "k".repeat(key_len.saturating_sub(2)));
            (k, "é".repeat(value_len))
        })
        .collect()
}

#[test]
fn tag_and_content_type_limits() {
    let v = Vault::create_in_memory(&key(1), opts()).unwrap();
    let with_tags = |t: BTreeMap<String, String>| {
        let mut o = SetOptions::new();
        o.tags = t;
        o
    };
    // 15 tags, each name and value at the limit (counted in characters).
    let ok = tags(MAX_TAGS, MAX_TAG_LEN, MAX_TAG_LEN);
    let p = v.set_with("tagged", "v", &with_tags(ok.clone())).unwrap();
    assert_eq!(p.tags, ok);
    assert_eq!(v.properties("tagged", None).unwrap().tags, ok);
    for bad in [
        tags(MAX_TAGS + 1, 4, 4),
        tags(1, MAX_TAG_LEN + 1, 1),
        tags(1, 4, MAX_TAG_LEN + 1),
        BTreeMap::from([(String::new(), "v".to_string())]),
    ] {
        assert!(matches!(
            v.set_with("tagged", "v", &with_tags(bad.clone())),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            v.update_properties("tagged", None, &PropertiesUpdate::new().tags(bad)),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert_eq!(v.list_versions("tagged").unwrap().len(), 1);
    assert_eq!(v.properties("tagged", None).unwrap().tags, ok);

    let ct = "x".repeat(MAX_CONTENT_TYPE_LEN);
    let p = v
        .set_with("typed", "v", &SetOptions::new().content_type(ct.clone()))
        .unwrap();
    assert_eq!(p.content_type.as_deref(), Some(ct.as_str()));
    let long = "x".repeat(MAX_CONTENT_TYPE_LEN + 1);
    assert!(matches!(
        v.set_with("typed", "v", &SetOptions::new().content_type(long.clone())),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        v.update_properties(
            "typed",
            None,
            &PropertiesUpdate::new().content_type(Some(long))
        ),
        Err(Error::InvalidArgument(_))
    ));
    let p = v
        .update_properties("typed", None, &PropertiesUpdate::new().content_type(None))
        .unwrap();
    assert_eq!(p.content_type, None);
}

#[test]
fn version_ids_and_sequences() {
    let v = Vault::create_in_memory(&key(1), opts()).unwrap();
    let mut ids = BTreeSet::new();
    for i in 1..=5u64 {
        let p = v.set("s", format!("v{i}")).unwrap();
        assert_eq!(p.sequence, i);
        let text = p.version.to_string();
        assert_eq!(text.len(), 32);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(text.parse::<VersionId>().unwrap(), p.version);
        assert_eq!(text.to_uppercase().parse::<VersionId>().unwrap(), p.version);
        assert_eq!(hex_of(p.version.as_bytes()), text);
        assert!(ids.insert(p.version), "version ids are unique");
        assert_eq!(
            v.get_version("s", &p.version).unwrap().expose(),
            format!("v{i}").as_bytes()
        );
    }
    let listed: Vec<u64> = v
        .list_versions("s")
        .unwrap()
        .iter()
        .map(|p| p.sequence)
        .collect();
    assert_eq!(listed, vec![5, 4, 3, 2, 1], "newest first");
    for bad in [
        "",
        "abc",
        "g".repeat(32).as_str(),
        "a".repeat(31).as_str(),
        "a".repeat(33).as_str(),
    ] {
        assert!(
            matches!(bad.parse::<VersionId>(), Err(Error::InvalidVersion)),
            "{bad:?}"
        );
    }
    // A version id of another secret is not found under this one.
    let other = v.set("t", "x").unwrap();
    assert!(matches!(
        v.get_version("s", &other.version),
        Err(Error::NotFound)
    ));
    let unknown: VersionId = "0".repeat(32).parse().unwrap();
    assert!(matches!(v.get_version("s", &unknown), Err(Error::NotFound)));
    assert!(matches!(
        v.properties("s", Some(&unknown)),
        Err(Error::NotFound)
    ));
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn disabled_versions_cannot_be_read() {
    let v = Vault::create_in_memory(&key(1), opts()).unwrap();
    let v1 = v.set("s", "one").unwrap();
    let v2 = v
        .set_with("s", "two", &SetOptions::new().disabled(true))
        .unwrap();
    assert!(!v2.enabled);
    assert!(matches!(v.get("s"), Err(Error::Disabled)));
    assert!(matches!(
        v.get_version("s", &v2.version),
        Err(Error::Disabled)
    ));
    // Properties and listings still work; the older version reads.
    assert!(!v.properties("s", None).unwrap().enabled);
    assert_eq!(v.get_version("s", &v1.version).unwrap().expose(), b"one");
    let versions = v.list_versions("s").unwrap();
    assert_eq!(
        versions.iter().map(|p| p.enabled).collect::<Vec<_>>(),
        [false, true]
    );
    // Disable the older one too, then re-enable the current one.
    v.update_properties(
        "s",
        Some(&v1.version),
        &PropertiesUpdate::new().enabled(false),
    )
    .unwrap();
    assert!(matches!(
        v.get_version("s", &v1.version),
        Err(Error::Disabled)
    ));
    v.update_properties("s", None, &PropertiesUpdate::new().enabled(true))
        .unwrap();
    assert_eq!(v.get("s").unwrap().expose(), b"two");
    let log = audit_log(&v);
    assert!(
        log.iter()
            .any(|r| r.operation == Operation::SecretGet && r.error.as_deref() == Some("Disabled"))
    );
}

#[test]
fn validity_window_is_reported_and_optionally_enforced() {
    let c = clock();
    let now = Timestamp::from_unix(T0);
    let nbf = Timestamp::from_unix(T0 + 3600);
    let exp = Timestamp::from_unix(T0 + 7200);
    let mem = SharedMem::new();
    let v = Vault::create_with_backend(mem.clone(), &key(1), opts().clock(c.clone())).unwrap();
    let p = v
        .set_with("s", "v", &SetOptions::new().not_before(nbf).expires_on(exp))
        .unwrap();
    assert_eq!((p.not_before, p.expires_on), (Some(nbf), Some(exp)));
    assert_eq!((p.created, p.updated), (now, now));
    // Not strict: the value is returned with the window.
    let s = v.get("s").unwrap();
    assert_eq!(
        (s.properties.not_before, s.properties.expires_on),
        (Some(nbf), Some(exp))
    );
    assert!(s.properties.is_outside_validity(now));
    let mut strict = GetOptions::default();
    strict.strict = true;
    assert!(matches!(
        v.get_with("s", &strict),
        Err(Error::OutsideValidity)
    ));
    c.set(nbf);
    assert_eq!(v.get_with("s", &strict).unwrap().expose(), b"v");
    c.set(Timestamp::from_unix(T0 + 7199));
    assert!(v.get_with("s", &strict).is_ok());
    c.set(exp);
    assert!(matches!(
        v.get_with("s", &strict),
        Err(Error::OutsideValidity)
    ));
    assert!(v.get("s").is_ok());
    drop(v);

    // The strict rule as a handle option.
    let v = Vault::open_with_backend(mem, &key(1), opts().clock(c.clone()).strict_validity(true))
        .unwrap();
    assert!(matches!(v.get("s"), Err(Error::OutsideValidity)));
    v.update_properties("s", None, &PropertiesUpdate::new().expires_on(None))
        .unwrap();
    assert_eq!(v.get("s").unwrap().expose(), b"v");

    // A window that ends before it starts is refused.
    assert!(matches!(
        v.set_with("t", "v", &SetOptions::new().not_before(exp).expires_on(nbf)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        v.update_properties("s", None, &PropertiesUpdate::new().expires_on(Some(now))),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn update_properties_changes_one_version_without_a_new_one() {
    let c = clock();
    let v = Vault::create_in_memory(&key(1), opts().clock(c.clone())).unwrap();
    let v1 = v
        .set_with("s", "one", &SetOptions::new().tag("a", "1"))
        .unwrap();
    let v2 = v.set("s", "two").unwrap();
    c.advance(Duration::from_secs(60));
    let t = BTreeMap::from([("b".to_string(), "2".to_string())]);
    let p = v
        .update_properties(
            "S",
            Some(&v1.version),
            &PropertiesUpdate::new()
                .tags(t.clone())
                .content_type(Some("text/plain".into())),
        )
        .unwrap();
    assert_eq!(p.version, v1.version);
    assert_eq!(p.tags, t);
    assert_eq!(p.created.unix(), T0);
    assert_eq!(p.updated.unix(), T0 + 60);
    assert_eq!(v.list_versions("s").unwrap().len(), 2);
    let current = v.properties("s", None).unwrap();
    assert_eq!(current.version, v2.version);
    assert!(current.tags.is_empty());
    assert_eq!(current.updated.unix(), T0);
    assert_eq!(v.get_version("s", &v1.version).unwrap().expose(), b"one");
    assert!(matches!(
        v.update_properties("nope", None, &PropertiesUpdate::new().enabled(false)),
        Err(Error::NotFound)
    ));
}

// ---------------------------------------------------------------------------------------------
// Audit

/// (operation, name, error) of each record after `after`.
fn ops_after(v: &Vault, after: u64) -> Vec<(Operation, Option<String>, Option<String>)> {
    v.audit(after, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| (r.operation, r.name, r.error))
        .collect()
}

#[test]
fn every_operation_appends_a_record() {
    let c = clock();
    let v = Vault::create_in_memory(&key(1), opts().clock(c.clone()).actor("app")).unwrap();
    let start = v.audit_len().unwrap();
    let s = |x: &str| Some(x.to_string());
    let set = v.set("A", "1").unwrap();
    v.get("a").unwrap();
    assert!(v.get("missing").is_err());
    v.properties("A", None).unwrap();
    v.list(None, 10).unwrap();
    v.list_versions("A").unwrap();
    assert!(v.set("bad_name", "x").is_err());
    assert!(
        v.set_with("A", "2", &SetOptions::new().expect(Expect::Absent))
            .is_err()
    );
    v.update_properties("A", None, &PropertiesUpdate::new().enabled(true))
        .unwrap();
    let blob = v.backup_secret("A").unwrap();
    v.delete("A").unwrap();
    v.deleted_properties("A").unwrap();
    v.list_deleted(None, 10).unwrap();
    assert!(v.recover("missing").is_err());
    v.purge("A").unwrap();
    v.restore_secret(&blob).unwrap();
    v.expiring(Duration::from_secs(1)).unwrap();
    v.purge_expired().unwrap();
    let reader = v.as_identity("viewer", Role::Reader).unwrap();
    assert!(reader.delete("A").is_err());
    v.slots().unwrap();
    let got = ops_after(&v, start);
    use Operation as O;
    let want = vec![
        (O::AuditCheckpoint, None, None),
        (O::SecretSet, s("A"), None),
        (O::SecretGet, s("a"), None),
        (O::SecretGet, s("missing"), s("NotFound")),
        (O::SecretGetProperties, s("A"), None),
        (O::SecretList, None, None),
        (O::SecretListVersions, s("A"), None),
        (O::SecretSet, s("bad_name"), s("InvalidName")),
        (O::SecretSet, s("A"), s("VersionConflict")),
        (O::SecretUpdate, s("A"), None),
        (O::SecretBackup, s("A"), None),
        (O::SecretDelete, s("A"), None),
        (O::SecretGetDeleted, s("A"), None),
        (O::SecretListDeleted, None, None),
        (O::SecretRecover, s("missing"), s("NotFound")),
        (O::SecretPurge, s("A"), None),
        (O::SecretRestore, s("A"), None),
        (O::SecretListExpiring, None, None),
        (O::PurgeExpired, None, None),
        (O::SecretDelete, s("A"), s("Forbidden")),
        (O::SlotList, None, None),
    ];
    assert_eq!(got, want);
    let log = v.audit(start, usize::MAX).unwrap();
    let seqs: Vec<u64> = log.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (start + 1..=start + log.len() as u64).collect::<Vec<_>>()
    );
    assert!(log.iter().all(|r| r.time.unix() == T0));
    assert_eq!(log[1].version, Some(set.version), "a set names its version");
    assert_eq!(
        log[2].version,
        Some(set.version),
        "a get names the version read"
    );
    for r in &log {
        let want = if r.error.as_deref() == Some("Forbidden") {
            "viewer"
        } else {
            "app"
        };
        assert_eq!(r.actor, want);
    }
    v.verify_audit().unwrap();
}

#[test]
fn buffered_read_records_reach_the_disk_on_flush_write_or_drop() {
    let mem = SharedMem::new();
    let v = Vault::create_with_backend(mem.clone(), &key(1), opts()).unwrap();
    v.set("s", "v").unwrap();
    let base = committed_audit_records(&mem);
    assert_eq!(base, 2, "create and set");

    v.get("s").unwrap();
    v.get("s").unwrap();
    assert_eq!(
        committed_audit_records(&mem),
        base,
        "buffered, not yet committed"
    );
    v.flush().unwrap();
    assert_eq!(
        committed_audit_records(&mem),
        base + 2,
        "flush commits them"
    );
    v.flush().unwrap();
    assert_eq!(
        committed_audit_records(&mem),
        base + 2,
        "an empty flush adds nothing"
    );

    v.get("s").unwrap();
    v.set("t", "w").unwrap();
    assert_eq!(
        committed_audit_records(&mem),
        base + 4,
        "the next write commits them with its own"
    );

    v.get("s").unwrap();
    drop(v);
    assert_eq!(
        committed_audit_records(&mem),
        base + 5,
        "dropping commits them"
    );

    let v = Vault::open_with_backend(mem.clone(), &key(1), opts()).unwrap();
    let log = audit_log(&v);
    let ops: Vec<Operation> = log.iter().map(|r| r.operation).collect();
    use Operation as O;
    assert_eq!(
        ops[..8],
        [
            O::VaultCreate,
            O::SecretSet,
            O::SecretGet,
            O::SecretGet,
            O::SecretGet,
            O::SecretSet,
            O::SecretGet,
            O::VaultOpen
        ]
    );
    // close() flushes as well.
    v.flush().unwrap();
    v.get("s").unwrap();
    let before = committed_audit_records(&mem);
    v.close().unwrap();
    assert_eq!(committed_audit_records(&mem), before + 1);
}

#[test]
fn durable_read_records_commit_before_the_value_is_returned() {
    let mem = SharedMem::new();
    let v =
        Vault::create_with_backend(mem.clone(), &key(1), opts().read_audit(AuditLevel::Durable))
            .unwrap();
    v.set("s", "v").unwrap();
    let base = committed_audit_records(&mem);
    v.get("s").unwrap();
    assert_eq!(committed_audit_records(&mem), base + 1);
    assert!(v.get("missing").is_err());
    assert_eq!(committed_audit_records(&mem), base + 2);
    v.list(None, 5).unwrap();
    assert_eq!(committed_audit_records(&mem), base + 3);
    v.verify_audit().unwrap();
}

#[test]
fn audit_off_records_no_reads_but_every_write_and_refusal() {
    let mem = SharedMem::new();
    let v = Vault::create_with_backend(mem.clone(), &key(1), opts().read_audit(AuditLevel::Off))
        .unwrap();
    v.set("s", "v").unwrap();
    let base = committed_audit_records(&mem);
    v.get("s").unwrap();
    assert!(v.get("missing").is_err());
    v.list(None, 5).unwrap();
    v.flush().unwrap();
    assert_eq!(
        committed_audit_records(&mem),
        base,
        "reads are not recorded"
    );

    let reader = v.as_identity("r", Role::Reader).unwrap();
    assert!(matches!(reader.set("s", "x"), Err(Error::Forbidden { .. })));
    assert!(v.set("bad name", "x").is_err());
    v.flush().unwrap();
    assert_eq!(
        committed_audit_records(&mem),
        base + 2,
        "refusals and failed writes are"
    );
    v.set("s", "w").unwrap();
    assert_eq!(committed_audit_records(&mem), base + 3);
    drop((v, reader));
    let v = Vault::open_with_backend(mem, &key(1), opts()).unwrap();
    let ops: Vec<(Operation, Option<String>)> = audit_log(&v)
        .into_iter()
        .map(|r| (r.operation, r.error))
        .collect();
    use Operation as O;
    assert_eq!(
        ops[..5],
        [
            (O::VaultCreate, None),
            (O::SecretSet, None),
            (O::SecretSet, Some("Forbidden".into())),
            (O::SecretSet, Some("InvalidName".into())),
            (O::SecretSet, None),
        ]
    );
}

/// A commit with more records than one audit block holds (an import of 150 secrets, 150
/// buffered reads) writes several chained blocks; the log reads back whole and in order, from
/// any position, across a reopen with a checkpoint and a master key rotation.
#[test]
fn large_commits_write_several_chained_blocks() {
    let (_dir, path) = temp_path("blocks.tresor");
    let v = Vault::create(&path, &key(1), opts()).unwrap();
    let names: Vec<String> = (0..150).map(|i| format!("s{i}")).collect();
    let plain = SetOptions::new();
    v.set_many(names.iter().map(|n| (n.as_str(), b"v".as_slice(), &plain)))
        .unwrap();
    for n in &names {
        v.get(n).unwrap();
    }
    let cp = v.checkpoint().unwrap();
    v.close().unwrap();
    let keys: Vec<u64> = rows(&path, AUDIT)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| *k != AUDIT_HEAD_KEY)
        .collect();
    // Create; the import's 151 records in three blocks; the 150 reads, committed by the
    // checkpoint, in three; the checkpoint's own record, committed by the close.
    assert_eq!(keys, [1, 65, 129, 152, 216, 280, 302, 303]);
    let v = Vault::open(&path, &key(1), opts().expect_checkpoint(cp)).unwrap();
    let log = audit_log(&v);
    assert_eq!(log.len() as u64, v.verify_audit().unwrap() - 1);
    for (i, r) in log.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
    }
    assert_eq!(log[1].name.as_deref(), Some("s0"));
    assert_eq!(log[150].name.as_deref(), Some("s149"));
    assert_eq!(log[151].operation, Operation::SecretImport);
    assert_eq!(log[152].operation, Operation::SecretGet);
    // Reading from inside a block starts at the right record.
    let part = v.audit(100, 3).unwrap();
    assert_eq!(
        part.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [101, 102, 103]
    );
    v.rotate_master_key(&[], |_| {}).unwrap();
    assert!(v.verify_audit().unwrap() > 303);
    assert!(v.check_integrity().unwrap() > 0);
}

/// A closed vault file with a few dozen audit records; returns how many, and the keys of the
/// audit rows (one row per commit: the sequence number of its last record).
fn audited_file(path: &Path) -> (u64, Vec<u64>) {
    let v = Vault::create(path, &key(1), opts()).unwrap();
    for i in 0..10 {
        v.set("s", format!("v{i}")).unwrap();
        v.get("s").unwrap();
    }
    let n = v.verify_audit().unwrap();
    v.close().unwrap();
    let keys: Vec<u64> = rows(path, AUDIT)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| *k != AUDIT_HEAD_KEY)
        .collect();
    assert_eq!(keys.last(), Some(&(n + 1)), "the verify itself is recorded");
    assert!(keys.len() > 10, "a row per commit");
    (n + 1, keys)
}

fn verify_fails_at(path: &Path, seq: u64) {
    // Without any record added by the check itself…
    let v = Vault::open(path, &key(1), opts().read_audit(AuditLevel::Off)).unwrap();
    match v.verify_audit() {
        Err(Error::AuditBroken { seq: at }) => assert_eq!(at, seq),
        other => panic!("expected AuditBroken at {seq}, got {other:?}"),
    }
    drop(v);
    // … and with the records of an ordinary open appended after the damage.
    let v = open(path, &key(1)).unwrap();
    match v.verify_audit() {
        Err(Error::AuditBroken { seq: at }) => assert_eq!(at, seq),
        other => panic!("expected AuditBroken at {seq}, got {other:?}"),
    }
    drop(v);
    // A full integrity check at open notices it too.
    let r = Vault::open(path, &key(1), opts().verify_integrity(true));
    assert!(matches!(r, Err(Error::AuditBroken { .. })), "{r:?}");
}

#[test]
fn verify_audit_detects_removed_edited_reordered_and_cut_records() {
    let (_dir, path) = temp_path("audit.tresor");
    let (n, keys) = audited_file(&path);
    assert!(n > 10);
    {
        let v = open(&path, &key(1)).unwrap();
        assert_eq!(v.verify_audit().unwrap(), n + 1, "intact, plus its open");
    }
    let base = copy_to(&path, "base.tresor");
    let _ = std::fs::remove_file(&path);
    let fresh = || {
        let p = base.with_file_name("case.tresor");
        let _ = std::fs::remove_file(&p);
        std::fs::copy(&base, &p).unwrap();
        p
    };
    // The first record of the row at index `i`.
    let first_of = |i: usize| if i == 0 { 1 } else { keys[i - 1] + 1 };

    // A row removed from the middle.
    let p = fresh();
    edit(&p, |txn| {
        txn.open_table(AUDIT).unwrap().remove(keys[4]).unwrap();
    });
    verify_fails_at(&p, first_of(4));

    // A row's bytes edited.
    let p = fresh();
    let row = get_row(&p, AUDIT, keys[6]).unwrap();
    let mut edited = row.clone();
    edited[30] ^= 0x40;
    edit(&p, |txn| {
        txn.open_table(AUDIT)
            .unwrap()
            .insert(keys[6], edited.as_slice())
            .unwrap();
    });
    verify_fails_at(&p, first_of(6));

    // Two rows swapped.
    let p = fresh();
    let r3 = get_row(&p, AUDIT, keys[2]).unwrap();
    let r4 = get_row(&p, AUDIT, keys[3]).unwrap();
    edit(&p, |txn| {
        let mut t = txn.open_table(AUDIT).unwrap();
        t.insert(keys[2], r4.as_slice()).unwrap();
        t.insert(keys[3], r3.as_slice()).unwrap();
    });
    verify_fails_at(&p, first_of(2));

    // The tail cut: the last row, and the last three.
    for cut in [1, 3] {
        let p = fresh();
        edit(&p, |txn| {
            let mut t = txn.open_table(AUDIT).unwrap();
            for k in &keys[keys.len() - cut..] {
                t.remove(*k).unwrap();
            }
        });
        verify_fails_at(&p, first_of(keys.len() - cut));
    }

    // The chain restarted: every row removed.
    let p = fresh();
    edit(&p, |txn| {
        let mut t = txn.open_table(AUDIT).unwrap();
        for k in &keys {
            t.remove(*k).unwrap();
        }
    });
    verify_fails_at(&p, 1);
}

// ---------------------------------------------------------------------------------------------
// Threads

#[test]
fn readers_and_a_writer_in_parallel_see_consistent_values() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vault>();

    let v = Vault::create_in_memory(&key(1), opts()).unwrap();
    const WRITES: u64 = 60;
    const READERS: usize = 3;
    const READS: u64 = 150;
    v.set("counter", "0").unwrap();
    v.set("fixed", "constant").unwrap();
    let start = v.audit_len().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=WRITES {
                let p = v.set("counter", i.to_string()).unwrap();
                assert_eq!(p.sequence, i + 1);
            }
        });
        for _ in 0..READERS {
            let v = v.clone();
            s.spawn(move || {
                let mut last = 0u64;
                for _ in 0..READS {
                    let got = v.get("counter").unwrap();
                    let n: u64 = got.expose_str().unwrap().parse().unwrap();
                    assert!(n >= last, "values never go back");
                    assert!(n <= WRITES);
                    assert_eq!(got.properties.sequence, n + 1, "value matches its version");
                    last = n;
                    assert_eq!(v.get("fixed").unwrap().expose(), b"constant");
                }
            });
        }
    });
    assert_eq!(
        v.get("counter").unwrap().expose(),
        WRITES.to_string().as_bytes()
    );
    assert_eq!(v.list_versions("counter").unwrap().len() as u64, WRITES + 1);
    // Every operation of every thread is in the chain, once.
    let total = v.verify_audit().unwrap();
    let reads = READERS as u64 * READS * 2;
    assert_eq!(total, start + 1 + WRITES + reads + 2);
}

// ---------------------------------------------------------------------------------------------
// Key slots

#[test]
fn slots_add_list_unlock_and_remove() {
    let (_dir, path) = temp_path("slots.tresor");
    let v = Vault::create(&path, &key(1), opts()).unwrap();
    v.set("s", "v").unwrap();
    let pass = Credential::passphrase("slot passphrase");
    let a = v
        .add_slot(&SlotSpec::new(pass.clone(), "laptop").kdf(KdfParams::MINIMUM))
        .unwrap();
    let b = v
        .add_slot(&SlotSpec::new(XorProvider::new("kms", 3).credential(), "kms").role(Role::Writer))
        .unwrap();
    let c = v
        .add_slot(&SlotSpec::new(key(2), "ci").role(Role::Reader))
        .unwrap();
    assert_eq!((a.id, b.id, c.id), (2, 3, 4));
    let listed = v.slots().unwrap();
    let summary: Vec<(u32, &str, Role, SlotKind)> = listed
        .iter()
        .map(|s| (s.id, s.label.as_str(), s.role, s.kind.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "owner", Role::Owner, SlotKind::Key),
            (
                2,
                "laptop",
                Role::Owner,
                SlotKind::Passphrase(KdfParams::MINIMUM)
            ),
            (3, "kms", Role::Writer, SlotKind::Provider("kms".into())),
            (4, "ci", Role::Reader, SlotKind::Key),
        ]
    );
    // Slot specs are checked.
    assert!(matches!(
        v.add_slot(&SlotSpec::new(key(9), "")),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        v.add_slot(
            &SlotSpec::new(Credential::passphrase("weak"), "weak").kdf(KdfParams {
                memory_kib: 8,
                iterations: 1,
                parallelism: 1
            })
        ),
        Err(Error::InvalidArgument(_))
    ));
    drop(v);

    let creds = [
        (key(1), "owner", Role::Owner, 1),
        (pass.clone(), "laptop", Role::Owner, 2),
        (
            XorProvider::new("kms", 3).credential(),
            "kms",
            Role::Writer,
            3,
        ),
        (key(2), "ci", Role::Reader, 4),
    ];
    for (cred, label, role, id) in &creds {
        let v = open(&path, cred).unwrap();
        assert_eq!(
            (v.actor(), v.role(), v.unlocked_slot()),
            (*label, *role, Some(*id))
        );
        assert_eq!(v.get("s").unwrap().expose(), b"v");
    }

    // Remove slots: the removed one no longer opens, the others do; never the last.
    let v = open(&path, &pass).unwrap();
    assert!(matches!(v.remove_slot(42), Err(Error::NotFound)));
    v.remove_slot(4).unwrap();
    v.remove_slot(3).unwrap();
    v.remove_slot(1).unwrap();
    assert_eq!(v.unlocked_slot(), Some(2));
    assert!(matches!(v.remove_slot(2), Err(Error::LastSlot)));
    assert_eq!(v.slots().unwrap().len(), 1);
    drop(v);
    for cred in [key(1), key(2), XorProvider::new("kms", 3).credential()] {
        assert!(matches!(open(&path, &cred), Err(Error::WrongKey)));
    }
    let v = open(&path, &pass).unwrap();
    assert_eq!(v.get("s").unwrap().expose(), b"v");
    // A new slot gets a fresh id and works.
    let d = v.add_slot(&SlotSpec::new(key(3), "new")).unwrap();
    assert_ne!(d.id, 2);
    assert!(
        v.slots()
            .unwrap()
            .iter()
            .any(|s| s.id == d.id && s.label == "new")
    );
    drop(v);
    assert!(open(&path, &key(3)).is_ok());
    let v = open(&path, &key(3)).unwrap();
    v.verify_audit().unwrap();
    let log = audit_log(&v);
    assert!(log.iter().any(|r| r.operation == Operation::SlotRemove
        && r.error.as_deref() == Some("LastSlot")));
}

#[test]
fn change_passphrase_rewraps_one_slot() {
    let (_dir, path) = temp_path("passwd.tresor");
    let old = Credential::passphrase("old passphrase");
    let v = Vault::create(&path, &old, opts().kdf(KdfParams::MINIMUM)).unwrap();
    v.set("s", "v").unwrap();
    v.add_slot(&SlotSpec::new(key(2), "backup-key")).unwrap();
    let other = v
        .add_slot(&SlotSpec::new(Credential::passphrase("other"), "other").kdf(KdfParams::MINIMUM))
        .unwrap();
    drop(v);
    let before = rows(&path, SLOTS);
    let v = open(&path, &old).unwrap();
    let stronger = KdfParams {
        memory_kib: 20 * 1024,
        iterations: 2,
        parallelism: 1,
    };
    v.change_passphrase(1, &SecretString::from("new passphrase"), stronger)
        .unwrap();
    drop(v);
    // Only slot 1 changed.
    let after = rows(&path, SLOTS);
    assert_ne!(before[0], after[0]);
    assert_eq!(before[1..], after[1..]);
    let v = open(&path, &Credential::passphrase("new passphrase")).unwrap();
    assert_eq!(v.slots().unwrap()[0].kind, SlotKind::Passphrase(stronger));
    // Not for key slots, not below the minimum, not for unknown slots.
    assert!(matches!(
        v.change_passphrase(2, &SecretString::from("x"), KdfParams::MINIMUM),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        v.change_passphrase(
            other.id,
            &SecretString::from("x"),
            KdfParams {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1
            }
        ),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        v.change_passphrase(9, &SecretString::from("x"), KdfParams::MINIMUM),
        Err(Error::NotFound)
    ));
    drop(v);
    assert!(matches!(open(&path, &old), Err(Error::WrongKey)));
    let v = open(&path, &Credential::passphrase("new passphrase")).unwrap();
    assert_eq!(v.get("s").unwrap().expose(), b"v");
    drop(v);
    for cred in [key(2), Credential::passphrase("other")] {
        assert_eq!(open(&path, &cred).unwrap().get("s").unwrap().expose(), b"v");
    }
}

// ---------------------------------------------------------------------------------------------
// In-memory vaults follow the same rules

fn same_rules(v: &Vault) {
    let v1 = v.set("Name", "one").unwrap();
    v.set("name", "two").unwrap();
    assert_eq!(v.get("NAME").unwrap().expose(), b"two");
    assert_eq!(v.get_version("name", &v1.version).unwrap().expose(), b"one");
    assert!(matches!(v.set("bad_name", "x"), Err(Error::InvalidName(_))));
    assert!(matches!(
        v.set("big", vec![0u8; DEFAULT_VALUE_LIMIT + 1]),
        Err(Error::ValueTooLarge { .. })
    ));
    assert!(matches!(
        v.set_with(
            "name",
            "x",
            &SetOptions::new().expect(Expect::Version(v1.version))
        ),
        Err(Error::VersionConflict)
    ));
    v.delete("name").unwrap();
    assert!(matches!(v.get("name"), Err(Error::NotFound)));
    assert!(matches!(
        v.set("name", "x"),
        Err(Error::Conflict { deleted: true })
    ));
    v.recover("name").unwrap();
    assert_eq!(v.list_versions("name").unwrap().len(), 2);
    let reader = v.as_identity("r", Role::Reader).unwrap();
    assert!(matches!(reader.set("x", "y"), Err(Error::Forbidden { .. })));
    assert!(matches!(v.remove_slot(1), Err(Error::LastSlot)));
    let n = v.verify_audit().unwrap();
    assert_eq!(n, audit_log(v).len() as u64 - 1);
}

#[test]
fn in_memory_vaults_follow_the_same_rules() {
    let v = Vault::create_in_memory(&key(1), opts()).unwrap();
    same_rules(&v);
    let (_dir, path) = temp_path("same.tresor");
    let v = Vault::create(&path, &key(1), opts()).unwrap();
    same_rules(&v);
    let v = Vault::create_with_backend(SharedMem::new(), &key(1), opts()).unwrap();
    same_rules(&v);
}

#[test]
fn set_many_reports_the_first_failing_item_in_the_callers_order() {
    // The error is the one the caller's order meets first, whatever the names' hashes (the
    // rows' order), and the results and records follow the caller's order.
    let v = Vault::create_in_memory(&key(1), opts()).unwrap();
    let o = SetOptions::new();
    v.set("gone", "x").unwrap();
    v.delete("gone").unwrap();
    let big = vec![0u8; 64 * 1024];
    let names: Vec<String> = (0..200).map(|i| format!("n{i}")).collect();
    for (first, second) in [(0usize, 1usize), (1, 0)] {
        for at in [0usize, 57, 199] {
            let mut items: Vec<(&str, &[u8], &SetOptions)> = names
                .iter()
                .map(|n| (n.as_str(), b"v".as_slice(), &o))
                .collect();
            let bad: [(&str, &[u8], &SetOptions); 2] = [
                ("gone", b"v".as_slice(), &o),
                ("too-big", big.as_slice(), &o),
            ];
            items.insert(at, bad[first]);
            items.push(bad[second]);
            let r = v.set_many(items);
            match first {
                0 => assert!(matches!(r, Err(Error::Conflict { deleted: true })), "{r:?}"),
                _ => assert!(matches!(r, Err(Error::ValueTooLarge { .. })), "{r:?}"),
            }
        }
    }
    assert!(matches!(v.get("n0"), Err(Error::NotFound)));
    // A batch that succeeds: results and `SecretSet` records in the caller's order, a name
    // given twice ends at its last value.
    let mut items: Vec<(&str, &[u8], &SetOptions)> = names
        .iter()
        .map(|n| (n.as_str(), b"v".as_slice(), &o))
        .collect();
    items.push(("n3", b"again".as_slice(), &o));
    let before = v.audit_len().unwrap();
    let written = v.set_many(items).unwrap();
    let got: Vec<&str> = written.iter().map(|p| p.name.as_str()).collect();
    let mut want: Vec<&str> = names.iter().map(String::as_str).collect();
    want.push("n3");
    assert_eq!(got, want);
    assert_eq!(v.get("n3").unwrap().expose(), b"again");
    let sets: Vec<String> = v
        .audit(before, 10_000)
        .unwrap()
        .into_iter()
        .filter(|r| r.operation == Operation::SecretSet)
        .filter_map(|r| r.name)
        .collect();
    assert_eq!(sets, want);
    v.verify_audit().unwrap();
    v.check_integrity().unwrap();
}

#[test]
fn set_many_takes_no_item_past_the_first_invalid_one() {
    // The rows are written in key order after the last item, but the items are checked as they
    // are taken: the iterator is not advanced past the one that fails (the command line's
    // `import` names it by counting).
    let v = Vault::create_in_memory(&key(1), opts()).unwrap();
    let o = SetOptions::new();
    let names: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
    let taken = std::cell::Cell::new(0usize);
    let items = names.iter().enumerate().map(|(i, n)| {
        taken.set(taken.get() + 1);
        let name = if i == 41 { "bad_name" } else { n.as_str() };
        (name, b"v".as_slice(), &o)
    });
    assert!(matches!(v.set_many(items), Err(Error::InvalidName(_))));
    assert_eq!(taken.get(), 42);
    // A name given again in the same batch with a check-and-set condition: its current version
    // is one the batch made up, which the condition cannot name.
    let exp = SetOptions::new().expect(Expect::Absent);
    let r = v.set_many([("dup", b"1".as_slice(), &o), ("DUP", b"2".as_slice(), &exp)]);
    assert!(matches!(r, Err(Error::VersionConflict)), "{r:?}");
    assert!(matches!(v.get("dup"), Err(Error::NotFound)));
    // The versions a batch prunes are recorded with the item that pruned them.
    let one = SetOptions::new().max_versions(1);
    v.set("kept", "0").unwrap();
    let before = v.audit_len().unwrap();
    let written = v
        .set_many([
            ("kept", b"1".as_slice(), &one),
            ("other", b"x".as_slice(), &o),
            ("kept", b"2".as_slice(), &one),
        ])
        .unwrap();
    assert_eq!(written[0].sequence, 2);
    assert_eq!(written[2].sequence, 3);
    assert_eq!(v.get("kept").unwrap().expose(), b"2");
    let ops: Vec<(Operation, Option<String>)> = v
        .audit(before, 100)
        .unwrap()
        .into_iter()
        .filter(|r| {
            use Operation::*;
            matches!(r.operation, SecretPrune | SecretSet | SecretImport)
        })
        .map(|r| (r.operation, r.name))
        .collect();
    let kept = || Some("kept".to_string());
    assert_eq!(
        ops,
        [
            (Operation::SecretPrune, kept()),
            (Operation::SecretSet, kept()),
            (Operation::SecretSet, Some("other".to_string())),
            (Operation::SecretPrune, kept()),
            (Operation::SecretSet, kept()),
            (Operation::SecretImport, None),
        ]
    );
    assert_eq!(v.list_versions("kept").unwrap().len(), 1);
    v.verify_audit().unwrap();
    v.check_integrity().unwrap();
}

#[test]
fn set_many_writes_all_or_nothing() {
    let v = Vault::create_in_memory(&key(1), opts()).unwrap();
    let o = SetOptions::new();
    let written = v
        .set_many([("a", b"1".as_slice(), &o), ("b", b"2".as_slice(), &o)])
        .unwrap();
    assert_eq!(written.len(), 2);
    let r = v.set_many([
        ("c", b"3".as_slice(), &o),
        ("bad_name", b"4".as_slice(), &o),
    ]);
    assert!(matches!(r, Err(Error::InvalidName(_))));
    assert!(matches!(v.get("c"), Err(Error::NotFound)));
    assert_eq!(v.list_all().unwrap().len(), 2);
    v.verify_audit().unwrap();
}
