//! Secret hygiene:
//!
//! - no secret value, passphrase or key appears in any error message (`Display` or `Debug`) of
//!   any error variant the public API can produce, nor in the `Debug` of any public type;
//! - none of a vault's names, values, tags, content types or passphrases appear in the file;
//! - record nonces never repeat: 1,000,000 seals through the record AEAD, and every sealed
//!   record of a vault file after many operations (including a master key rotation);
//! - MAC comparisons: behaviour of the one comparison function, and a tripwire on the sources.
//!
//! On constant time: `crypto::mac_eq` is `subtle::ConstantTimeEq` on byte slices, which compares
//! every byte without branching on the data (the length is compared first; MAC lengths are
//! public). Every place the engine compares a MAC or a key check goes through it: the header MAC
//! at unlock, the key slot check value, the audit chain links and head, checkpoints, and the
//! master key comparison during rotation. Poly1305 tags are checked inside ring (the default
//! feature `fast-aead`, with its constant-time comparison) or the `chacha20poly1305` crate
//! (which uses `subtle`). A test cannot measure constant time
//! reliably on a shared machine (and timing thresholds make flaky tests), so the tests below
//! check the behaviour and that no `==`/`!=` on a MAC-named value creeps into the sources.

mod harness;

use std::collections::HashSet;
use std::sync::Arc;

use harness::{FaultMode, FaultOn, MemFile, clock, key};
use secrecy::SecretString;
use tresor::redb::{ReadableDatabase, ReadableTable, TableDefinition};
use tresor::{
    Credential, Error, Expect, GetOptions, KdfParams, KeyProvider, ManualClock, Options,
    ProviderError, Role, SetOptions, SlotSpec, Timestamp, Vault,
};

const VALUE: &str = "Val-7f3e9c1d-SECRET";
const PASSPHRASE: &str = "Pass-c0ffee42-PHRASE";
const NEW_PASSPHRASE: &str = "Pass-deadbeef-NEWPHRASE";
const KEY_BYTES: [u8; 32] = [
    0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18, 0x29, 0x3a, 0x4b, 0x5c, 0x6d, 0x7e, 0x8f, 0x90,
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01,
];

/// Every text a secret could leak as.
fn forbidden() -> Vec<String> {
    let hex: String = KEY_BYTES.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        VALUE.to_string(),
        PASSPHRASE.to_string(),
        NEW_PASSPHRASE.to_string(),
        hex.clone(),
        hex.to_uppercase(),
        hex[..16].to_string(),
        // The key as Rust prints a byte array.
        format!("{:?}", &KEY_BYTES[..8])
            .trim_end_matches(']')
            .to_string(),
        format!("{:x?}", &KEY_BYTES[..8])
            .trim_end_matches(']')
            .to_string(),
        // The value as a byte array.
        format!("{:?}", &VALUE.as_bytes()[..8])
            .trim_end_matches(']')
            .to_string(),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for f in forbidden() {
        assert!(
            !text.contains(&f),
            "{what} leaks a secret ({f:?}) in: {text}"
        );
    }
}

/// Display, Debug and alternate Debug of an error and of its sources.
fn check_error(what: &str, e: &Error) {
    assert_clean(what, &e.to_string());
    assert_clean(what, &format!("{e:?}"));
    assert_clean(what, &format!("{e:#?}"));
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        assert_clean(what, &s.to_string());
        assert_clean(what, &format!("{s:?}"));
        source = s.source();
    }
}

fn the_key() -> Credential {
    Credential::key(KEY_BYTES)
}

fn fast_kdf() -> KdfParams {
    KdfParams::MINIMUM
}

/// A key provider whose unwrap fails (its message is its own; tresor must add nothing secret).
#[derive(Debug)]
struct Failing;

impl KeyProvider for Failing {
    fn id(&self) -> &str {
        "failing"
    }
    fn wrap(&self, key: &[u8]) -> Result<Vec<u8>, ProviderError> {
        Ok(key.iter().map(|b| b ^ 0x55).collect())
    }
    fn unwrap(&self, _blob: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, ProviderError> {
        Err("the keychain is locked".into())
    }
}

fn expect_err<T: std::fmt::Debug>(what: &str, r: tresor::Result<T>) -> Error {
    match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => e,
    }
}

#[test]
fn no_secret_in_any_error_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hygiene.tresor");
    let c = ManualClock::new(Timestamp::from_unix(harness::T0));
    let v = Vault::create(
        &path,
        &the_key(),
        Options::new().clock(c.clone()).retention_days(7),
    )
    .unwrap();
    let pass_slot = v
        .add_slot(&SlotSpec::new(Credential::passphrase(PASSPHRASE), "pp").kdf(fast_kdf()))
        .unwrap()
        .id;
    let v1 = v.set("db-password", VALUE).unwrap();
    v.set("db-password", VALUE).unwrap();
    v.set_with("off", VALUE, &SetOptions::new().disabled(true))
        .unwrap();
    v.set_with(
        "expired",
        VALUE,
        &SetOptions::new().expires_on(Timestamp::from_unix(harness::T0 - 10)),
    )
    .unwrap();
    v.set("gone", VALUE).unwrap();
    v.delete("gone").unwrap();
    let blob = v.backup_secret("db-password").unwrap();
    let mut errors: Vec<(String, Error)> = Vec::new();
    let mut add = |what: &str, e: Error| errors.push((what.to_string(), e));

    add("NotFound", expect_err("get", v.get("missing")));
    add(
        "Conflict (deleted)",
        expect_err("set", v.set("gone", VALUE)),
    );
    add("Conflict", expect_err("restore", v.restore_secret(&blob)));
    add("Disabled", expect_err("get", v.get("off")));
    add(
        "OutsideValidity",
        expect_err(
            "get",
            v.get_with("expired", &{
                let mut g = GetOptions::default();
                g.strict = true;
                g
            }),
        ),
    );
    add(
        "Forbidden",
        expect_err(
            "reader set",
            v.as_identity("reader", Role::Reader)
                .unwrap()
                .set("x", VALUE),
        ),
    );
    add(
        "VersionConflict",
        expect_err(
            "cas",
            v.set_with(
                "db-password",
                VALUE,
                &SetOptions::new().expect(Expect::Version(v1.version)),
            ),
        ),
    );
    add(
        "InvalidName",
        expect_err("set", v.set(&format!("bad {VALUE}"), VALUE)),
    );
    add(
        "InvalidVersion",
        expect_err("parse", VALUE.parse::<tresor::VersionId>()),
    );
    add(
        "InvalidArgument (key from hex)",
        expect_err("hex", Credential::key_from_hex(PASSPHRASE)),
    );
    add(
        "InvalidArgument (tags)",
        expect_err(
            "tags",
            v.set_with(
                "tagged",
                VALUE,
                &(0..20).fold(SetOptions::new(), |o, i| o.tag(format!("t{i}"), VALUE)),
            ),
        ),
    );
    let bad_key_file = dir.path().join("bad.key");
    std::fs::write(&bad_key_file, PASSPHRASE).unwrap();
    add(
        "InvalidArgument (key file)",
        expect_err("key file", Credential::key_file(&bad_key_file)),
    );
    add(
        "ValueTooLarge",
        expect_err("set", v.set("big", VALUE.repeat(2000))),
    );
    add(
        "WrongKey",
        expect_err("open", {
            let m = MemFile::new();
            drop(Vault::create_with_backend(m.backend(), &the_key(), Options::new()).unwrap());
            Vault::open_with_backend(
                m.backend(),
                &Credential::passphrase(PASSPHRASE),
                Options::new(),
            )
            .map(drop)
        }),
    );
    add(
        "Locked",
        expect_err("open twice", Vault::open(&path, &the_key(), Options::new())),
    );
    add(
        "Io",
        expect_err(
            "open missing",
            Vault::open(dir.path().join("missing"), &the_key(), Options::new()),
        ),
    );
    let mut altered = blob.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    add(
        "InvalidBackup",
        expect_err("restore", v.restore_secret(&altered)),
    );
    let mut newer = blob.clone();
    newer[8] = 9;
    add(
        "UnsupportedFormat",
        expect_err("restore", v.restore_secret(&newer)),
    );
    add(
        "InvalidCheckpoint",
        expect_err(
            "parse",
            format!("tresor-cp1-{VALUE}").parse::<tresor::Checkpoint>(),
        ),
    );
    add(
        "MissingCredential",
        expect_err("rotate", v.rotate_master_key(&[], |_| {})),
    );
    add(
        "LastSlot",
        expect_err("remove", {
            let m = Vault::create_in_memory(&the_key(), Options::new()).unwrap();
            m.remove_slot(1)
        }),
    );
    v.change_passphrase(pass_slot, &SecretString::from(NEW_PASSPHRASE), fast_kdf())
        .unwrap();
    v.enable_purge_protection().unwrap();
    add("PurgeProtected", expect_err("purge", v.purge("gone")));
    drop(v);

    // A file that is not a vault; a vault copy from before a checkpoint.
    let junk = dir.path().join("junk.tresor");
    std::fs::write(&junk, VALUE.repeat(500)).unwrap();
    add(
        "Corrupted (not a vault)",
        expect_err("open junk", Vault::open(&junk, &the_key(), Options::new())),
    );
    add(
        "RolledBack",
        expect_err("rollback", {
            let m = MemFile::new();
            let mv = Vault::create_with_backend(m.backend(), &the_key(), Options::new()).unwrap();
            let old = m.bytes();
            mv.set("x", VALUE).unwrap();
            let cp = mv.checkpoint().unwrap();
            drop(mv);
            Vault::open_with_backend(
                MemFile::from_bytes(old).backend(),
                &the_key(),
                Options::new().expect_checkpoint(cp),
            )
            .map(drop)
        }),
    );

    // A broken audit chain: the first audit record removed with raw redb (removing the last one
    // is refused at open already: the head no longer names the last record).
    add("AuditBroken", {
        let m = MemFile::new();
        let mv = Vault::create_with_backend(m.backend(), &the_key(), Options::new()).unwrap();
        mv.set("x", VALUE).unwrap();
        mv.set("x", VALUE).unwrap();
        drop(mv);
        const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
        let db = tresor::redb::Builder::new()
            .create_with_backend(m.backend())
            .unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(AUDIT).unwrap();
            let first = t.first().unwrap().unwrap().0.value();
            t.remove(first).unwrap();
        }
        txn.commit().unwrap();
        drop(db);
        let mv = Vault::open_with_backend(m.backend(), &the_key(), Options::new()).unwrap();
        expect_err("verify", mv.verify_audit())
    });

    // A failed commit, then a write on the poisoned handle.
    {
        let m = MemFile::new();
        let mv = Vault::create_with_backend(m.backend(), &the_key(), Options::new()).unwrap();
        m.arm(FaultOn::Sync, 1, FaultMode::Once);
        add("Io (failed commit)", expect_err("set", mv.set("x", VALUE)));
        add("Poisoned", expect_err("set", mv.set("y", VALUE)));
    }

    // A key provider that fails.
    {
        let provider = Credential::provider(Arc::new(Failing));
        let m = MemFile::new();
        let mv = Vault::create_with_backend(m.backend(), &the_key(), Options::new()).unwrap();
        mv.add_slot(&SlotSpec::new(provider.clone(), "keychain"))
            .unwrap();
        drop(mv);
        add(
            "Provider",
            expect_err(
                "open",
                Vault::open_with_backend(m.backend(), &provider, Options::new()).map(drop),
            ),
        );
    }

    let codes: HashSet<&str> = errors.iter().map(|(_, e)| e.code()).collect();
    for (what, e) in &errors {
        check_error(what, e);
    }
    let expected = [
        "NotFound",
        "Conflict",
        "ObjectIsDeletedButRecoverable",
        "Disabled",
        "OutsideValidity",
        "WrongKey",
        "Forbidden",
        "PurgeProtected",
        "VersionConflict",
        "InvalidName",
        "InvalidVersion",
        "InvalidArgument",
        "ValueTooLarge",
        "LastSlot",
        "Locked",
        "Corrupted",
        "UnsupportedFormat",
        "AuditBroken",
        "RolledBack",
        "InvalidBackup",
        "InvalidCheckpoint",
        "Poisoned",
        "Provider",
        "MissingCredential",
        "Io",
    ];
    let missing: Vec<_> = expected.iter().filter(|c| !codes.contains(*c)).collect();
    assert!(missing.is_empty(), "variants not reached: {missing:?}");
    println!(
        "hygiene: {} errors of {} variants checked (Display, Debug, sources); \
         Error::Random is not reachable without a failing OS random source",
        errors.len(),
        codes.len()
    );
}

#[test]
fn no_secret_in_any_debug_output() {
    let c = clock();
    let v = Vault::create_in_memory(&the_key(), Options::new().clock(c.clone())).unwrap();
    v.add_slot(&SlotSpec::new(Credential::passphrase(PASSPHRASE), "pp").kdf(fast_kdf()))
        .unwrap();
    let p = v
        .set_with(
            "db-password",
            VALUE,
            &SetOptions::new().content_type("text/plain"),
        )
        .unwrap();
    let s = v.get("db-password").unwrap();
    assert_eq!(s.expose(), VALUE.as_bytes(), "the value is there to leak");
    v.set("gone", VALUE).unwrap();
    let deleted = v.delete("gone").unwrap();
    let outputs: Vec<(&str, String)> = vec![
        ("Secret", format!("{s:?}")),
        ("Secret (alternate)", format!("{s:#?}")),
        ("Secret.value", format!("{:?}", s.value)),
        ("SecretProperties", format!("{p:?}")),
        ("DeletedSecret", format!("{deleted:?}")),
        ("Credential::key", format!("{:?}", the_key())),
        (
            "Credential::passphrase",
            format!("{:?}", Credential::passphrase(PASSPHRASE)),
        ),
        (
            "Credential::provider",
            format!("{:?}", Credential::provider(Arc::new(Failing))),
        ),
        (
            "SlotSpec (key)",
            format!("{:#?}", SlotSpec::new(the_key(), "k")),
        ),
        (
            "SlotSpec (passphrase)",
            format!(
                "{:#?}",
                SlotSpec::new(Credential::passphrase(PASSPHRASE), "p")
            ),
        ),
        ("Options", format!("{:#?}", Options::new().actor("app"))),
        ("Vault", format!("{v:#?}")),
        ("slots", format!("{:#?}", v.slots().unwrap())),
        ("audit", format!("{:#?}", v.audit(0, 1000).unwrap())),
        ("list", format!("{:#?}", v.list_all().unwrap())),
        (
            "list_deleted",
            format!("{:#?}", v.list_deleted(None, 10).unwrap()),
        ),
        ("settings", format!("{:#?}", v.settings().unwrap())),
        ("checkpoint", format!("{:?}", v.checkpoint().unwrap())),
    ];
    for (what, text) in &outputs {
        assert_clean(what, text);
    }
    // The value is printed nowhere, but really is in the Secret (the check has teeth).
    assert!(
        format!("{:?}", s.expose()).contains(
            &format!("{:?}", &VALUE.as_bytes()[..8])
                .trim_end_matches(']')
                .to_string()
        )
    );
    println!("hygiene: {} Debug outputs checked", outputs.len());
}

#[test]
fn the_file_holds_no_name_value_tag_or_passphrase_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clear.tresor");
    let name = "Hygiene-Name-Q9x7";
    let tag_key = "TagKey-Z1y2";
    let tag_value = "TagValue-W3v4";
    let content_type = "application/x-hygiene-ct";
    let actor = "Actor-Hygiene-5u6";
    {
        let v = Vault::create(&path, &the_key(), Options::new().actor(actor)).unwrap();
        v.add_slot(&SlotSpec::new(Credential::passphrase(PASSPHRASE), "pp").kdf(fast_kdf()))
            .unwrap();
        v.set_with(
            name,
            VALUE,
            &SetOptions::new()
                .tag(tag_key, tag_value)
                .content_type(content_type),
        )
        .unwrap();
        v.set(name, VALUE).unwrap();
        v.get(name).unwrap();
        v.set("deleted-one", VALUE).unwrap();
        v.delete("deleted-one").unwrap();
        v.rotate_master_key(&[Credential::passphrase(PASSPHRASE)], |_| {})
            .unwrap();
        v.close().unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    let hex: String = KEY_BYTES.iter().map(|b| format!("{b:02x}")).collect();
    let needles: Vec<Vec<u8>> = vec![
        name.as_bytes().to_vec(),
        name.to_ascii_lowercase().into_bytes(),
        b"deleted-one".to_vec(),
        VALUE.as_bytes().to_vec(),
        tag_key.as_bytes().to_vec(),
        tag_value.as_bytes().to_vec(),
        content_type.as_bytes().to_vec(),
        actor.as_bytes().to_vec(),
        PASSPHRASE.as_bytes().to_vec(),
        KEY_BYTES[..12].to_vec(),
        hex.into_bytes(),
    ];
    for n in &needles {
        assert!(
            !bytes.windows(n.len()).any(|w| w == n.as_slice()),
            "the file holds {:?} in clear",
            String::from_utf8_lossy(n)
        );
    }
    // The check has teeth: a label, stored in clear by design (slots are read before unlock),
    // is found.
    assert!(bytes.windows(2).any(|w| w == b"pp"));
    println!(
        "hygiene: {} byte file searched for {} secrets in clear",
        bytes.len(),
        needles.len()
    );
}

#[test]
fn a_million_record_seals_never_repeat_a_nonce() {
    let n = harness::count_from_env("TRESOR_NONCE_SEALS", 1_000_000) as usize;
    let key = [7u8; 32];
    let mut seen: HashSet<[u8; 24]> = HashSet::with_capacity(n);
    let mut previous: Vec<u8> = Vec::new();
    for i in 0..n {
        let sealed = tresor::fuzzing::seal(&key, b"aad", b"same plaintext").unwrap();
        let nonce: [u8; 24] = sealed[..tresor::fuzzing::NONCE_LEN].try_into().unwrap();
        assert!(seen.insert(nonce), "nonce repeated after {i} seals");
        assert_ne!(
            sealed, previous,
            "two seals of the same plaintext are equal"
        );
        if i == 0 {
            assert_eq!(
                tresor::fuzzing::open(&key, b"aad", &sealed).as_deref(),
                Some(b"same plaintext".as_slice())
            );
        }
        previous = sealed;
    }
    assert_eq!(seen.len(), n);
    println!("hygiene: {n} seals, {n} distinct nonces");
}

#[test]
fn every_sealed_record_in_a_file_has_its_own_nonce() {
    let m = MemFile::new();
    let c = clock();
    let v =
        Vault::create_with_backend(m.backend(), &key(1), Options::new().clock(c.clone())).unwrap();
    for i in 0..80 {
        let n = format!("s{}", i % 12);
        // The same value again and again: equal plaintexts must still seal differently.
        v.set(&n, VALUE).unwrap();
        if i % 7 == 3 {
            v.delete(&n).unwrap();
            v.recover(&n).unwrap();
        }
        v.get(&n).unwrap();
        if i == 30 {
            v.rotate_master_key(&[], |_| {}).unwrap();
        }
    }
    // Batches too: three of 3,000 (new names, and new versions of names already there).
    let plain = SetOptions::new();
    for round in 0..3 {
        let names: Vec<String> = (0..3000)
            .map(|i| format!("b{}", (i + round * 1000) % 5000))
            .collect();
        v.set_many(names.iter().map(|n| (n.as_str(), VALUE.as_bytes(), &plain)))
            .unwrap();
    }
    v.close().unwrap();
    const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    const SECRETS: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("secrets");
    const VERSIONS: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("versions");
    const DELETED: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("deleted");
    const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
    let db = tresor::redb::Builder::new()
        .create_with_backend(m.backend())
        .unwrap();
    let txn = db.begin_read().unwrap();
    let mut nonces: Vec<Vec<u8>> = Vec::new();
    {
        let t = txn.open_table(META).unwrap();
        nonces.push(t.get("settings").unwrap().unwrap().value()[..24].to_vec());
    }
    macro_rules! collect {
        ($def:ident) => {
            for row in txn.open_table($def).unwrap().iter().unwrap() {
                nonces.push(row.unwrap().1.value()[..24].to_vec());
            }
        };
    }
    collect!(SECRETS);
    collect!(VERSIONS);
    collect!(DELETED);
    collect!(AUDIT);
    let distinct: HashSet<&Vec<u8>> = nonces.iter().collect();
    assert!(nonces.len() > 9_000, "too few records: {}", nonces.len());
    assert_eq!(
        distinct.len(),
        nonces.len(),
        "a nonce is used twice in the file"
    );
    println!(
        "hygiene: {} sealed records in a file, all nonces distinct",
        nonces.len()
    );
}

#[test]
fn mac_comparison_behaves() {
    use tresor::fuzzing::mac_eq;
    let a: Vec<u8> = (0..32).collect();
    assert!(mac_eq(&a, &a.clone()));
    for i in 0..a.len() {
        for bit in 0..8 {
            let mut b = a.clone();
            b[i] ^= 1 << bit;
            assert!(
                !mac_eq(&a, &b),
                "a difference in byte {i} bit {bit} is missed"
            );
        }
    }
    assert!(!mac_eq(&a, &a[..31]), "a shorter MAC compares equal");
    assert!(!mac_eq(&a[..16], &a), "a prefix compares equal");
    assert!(mac_eq(&[], &[]));
}

/// Tripwire: MACs and key check values in the engine are compared only through `mac_eq`. A
/// line that compares an identifier naming a MAC (`mac`, `check`, `digest`) with `==`
/// or `!=` fails the test; read it and use `crypto::mac_eq` instead.
#[test]
fn no_mac_is_compared_with_eq() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut offending = Vec::new();
    let mut compared = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            compared += code.matches("mac_eq(").count();
            for op in ["==", "!="] {
                for (pos, _) in code.match_indices(op) {
                    let left = code[..pos].trim_end();
                    let right = code[pos + 2..].trim_start();
                    let left_word: String = left
                        .chars()
                        .rev()
                        .take_while(|c| c.is_alphanumeric() || "_.[]()&*".contains(*c))
                        .collect::<String>()
                        .chars()
                        .rev()
                        .collect();
                    let right_word: String = right
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || "_.[]()&*".contains(*c))
                        .collect();
                    let names_mac = |w: &str| {
                        let w = w.to_ascii_lowercase();
                        ["mac", "check", "digest"].iter().any(|m| {
                            w.split(|c: char| !c.is_alphanumeric() && c != '_')
                                .any(|part| part == *m || part.ends_with(&format!("_{m}")))
                        })
                    };
                    if names_mac(&left_word) || names_mac(&right_word) {
                        offending.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        offending.is_empty(),
        "MAC-like values compared with ==/!=:\n{}",
        offending.join("\n")
    );
    assert!(compared >= 5, "mac_eq is used in {compared} places only");
    println!(
        "hygiene: {} source files scanned, {compared} mac_eq call sites, no ==/!= on MACs",
        files.len()
    );
}
