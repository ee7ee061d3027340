//! Rollbacks and replays, made as an attacker who can write the vault file but holds no key
//! would: rows copied with plain redb from an older copy of the same vault (a backup, a
//! snapshot, a synced copy), rows removed, whole tables or files put back. Each test performs
//! one attack and asserts the detection point docs/SECURITY.md promises for it: a plain open, a
//! verified open (`Options::verify_integrity`) and `check_integrity`, or the witness.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use tresor::redb::{self, ReadableDatabase, ReadableTable, TableDefinition};
use tresor::{
    AuditLevel, Credential, Error, FileWitness, KdfParams, ManualClock, Operation, Options,
    Principal, PropertiesUpdate, Role, SlotSpec, Timestamp, Vault, Witness, WitnessState,
};

const TOKENS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("tokens");

fn opts(c: &ManualClock) -> Options {
    Options::new().clock(c.clone())
}

fn verified(c: &ManualClock) -> Options {
    opts(c).verify_integrity(true)
}

/// Replaces the row `key` of `def` in `current` with its value in `older` (removing it when
/// the older copy has none): what an attacker does with redb and two copies of a file.
fn put_back_row<K, V>(
    older: &Path,
    current: &Path,
    def: TableDefinition<K, V>,
    key: K::SelfType<'_>,
) where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
    for<'a> V::SelfType<'a>: ToOwnedBytes,
{
    let old: Option<Vec<u8>> = {
        let db = raw(older);
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(def).unwrap();
        t.get(&key).unwrap().map(|g| g.value().to_owned_bytes())
    };
    let db = raw(current);
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(def).unwrap();
        match old {
            Some(bytes) => {
                t.insert(&key, V::from_bytes(&bytes)).unwrap();
            }
            None => {
                t.remove(&key).unwrap();
            }
        }
    }
    txn.commit().unwrap();
}

/// Byte access to the value types of the vault's tables (`&[u8]` rows and `u64` indexes).
trait ToOwnedBytes {
    fn to_owned_bytes(&self) -> Vec<u8>;
}
impl ToOwnedBytes for &[u8] {
    fn to_owned_bytes(&self) -> Vec<u8> {
        self.to_vec()
    }
}
impl ToOwnedBytes for u64 {
    fn to_owned_bytes(&self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
}

/// Replaces every row of the byte-valued table `def` in `current` with the rows of `older`.
fn put_back_table<K>(older: &Path, current: &Path, def: TableDefinition<K, &[u8]>)
where
    K: redb::Key + 'static + for<'a> redb::Value<SelfType<'a> = K>,
{
    let old = rows(older, def);
    edit(current, |txn| {
        txn.delete_table(def).unwrap();
        let mut t = txn.open_table(def).unwrap();
        for (k, v) in &old {
            t.insert(k, v.as_slice()).unwrap();
        }
    });
}

fn is_corrupted_naming(r: Result<impl std::fmt::Debug, Error>, table: &str) -> bool {
    match r {
        Err(Error::Corrupted(m)) => m.contains(table),
        other => {
            eprintln!("expected Corrupted naming {table}, got {other:?}");
            false
        }
    }
}

/// A vault file with one secret, closed; its path and clock.
fn vault_with_secret(dir: &Path, options: Options) -> PathBuf {
    let path = dir.join("v.tresor");
    let v = Vault::create(&path, &key(1), options).unwrap();
    v.set("db-password", "hunter2").unwrap();
    drop(v);
    path
}

/// Attack 1: a secret's row put back from an older copy undoes `update --disable`, a new expiry
/// and new tags. Found by a verified open and by `check_integrity` (the secrets table's digest);
/// a plain open and a checkpoint do not read every row.
#[test]
fn attack1_a_secret_row_from_an_older_copy_undoing_property_changes() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let path = vault_with_secret(dir.path(), opts(&c));
    let older = copy_to(&path, "older.tresor");
    let v = Vault::open(&path, &key(1), opts(&c)).unwrap();
    let update = PropertiesUpdate::new()
        .enabled(false)
        .expires_on(Some(Timestamp::from_unix(T0 + 86_400)))
        .tags(BTreeMap::from([("env".to_string(), "retired".to_string())]));
    v.update_properties("db-password", None, &update).unwrap();
    let cp = v.checkpoint().unwrap();
    drop(v);
    let (hash, _) = rows(&path, SECRETS).remove(0);
    put_back_row(&older, &path, SECRETS, hash);

    // The older row authenticates: a plain open (even with the current checkpoint) reads it.
    let v = Vault::open(&path, &key(1), opts(&c).expect_checkpoint(cp)).unwrap();
    assert_eq!(v.get("db-password").unwrap().expose(), b"hunter2");
    assert!(is_corrupted_naming(v.check_integrity(), "secrets"));
    drop(v);
    assert!(is_corrupted_naming(
        Vault::open(&path, &key(1), verified(&c)),
        "secrets"
    ));
}

/// Attack 2: an older value put back (the secret's row, its versions and index together), and a
/// soft-deleted secret removed whole under purge protection. Found by a verified open and by
/// `check_integrity`.
#[test]
fn attack2_an_older_value_put_back_or_a_protected_deleted_secret_removed() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let path = vault_with_secret(dir.path(), opts(&c).purge_protection(true));
    let older = copy_to(&path, "older.tresor");
    let v = Vault::open(&path, &key(1), opts(&c)).unwrap();
    v.set("db-password", "rotated").unwrap();
    v.set("doomed", "x").unwrap();
    drop(v);
    put_back_table(&older, &path, SECRETS);
    put_back_table(&older, &path, VERSIONS);
    edit(&path, |txn| {
        txn.delete_table(VERSION_IDS).unwrap();
        txn.open_table(VERSION_IDS).unwrap();
    });
    let v = Vault::open(&path, &key(1), opts(&c)).unwrap();
    assert!(matches!(v.check_integrity(), Err(Error::Corrupted(_))));
    drop(v);
    assert!(matches!(
        Vault::open(&path, &key(1), verified(&c)),
        Err(Error::Corrupted(_))
    ));

    // A soft-deleted secret under purge protection, removed with all its rows.
    let (_d2, path) = temp_path("pp.tresor");
    let v = Vault::create(&path, &key(1), opts(&c).purge_protection(true)).unwrap();
    v.set("keep", "1").unwrap();
    v.set("evidence", "2").unwrap();
    v.delete("evidence").unwrap();
    drop(v);
    edit(&path, |txn| {
        txn.delete_table(DELETED).unwrap();
        txn.open_table(DELETED).unwrap();
        txn.delete_table(VERSION_IDS).unwrap();
        txn.open_table(VERSION_IDS).unwrap();
    });
    assert!(matches!(
        Vault::open(&path, &key(1), verified(&c)),
        Err(Error::Corrupted(_))
    ));
}

/// Attack 3: a revoked bearer token comes back by restoring its `tokens` row. Refused by a plain
/// open (the tokens table's digest is checked at every open), so `serve` never starts on it.
#[test]
fn attack3_a_revoked_token_put_back_never_authenticates() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let path = vault_with_secret(dir.path(), opts(&c));
    let v = Vault::open(&path, &key(1), opts(&c)).unwrap();
    let token = v.create_token("ci", Role::Writer).unwrap();
    let secret_token = token.expose().to_string();
    drop(v);
    let older = copy_to(&path, "older.tresor");
    let v = Vault::open(&path, &key(1), opts(&c)).unwrap();
    v.revoke_token(&token.info.id).unwrap();
    drop(v);
    let (hash, _) = rows(&older, TOKENS).remove(0);
    put_back_row(&older, &path, TOKENS, hash);
    assert!(is_corrupted_naming(
        Vault::open(&path, &key(1), opts(&c)),
        "tokens"
    ));
    // Without the put-back row the vault opens and the token stays unknown.
    edit(&path, |txn| {
        txn.open_table(TOKENS).unwrap().remove(&hash).unwrap();
    });
    let v = Vault::open(&path, &key(1), opts(&c)).unwrap();
    assert!(v.token_identity(&secret_token).unwrap().is_none());
}

/// Attack 4: the audit table of an older copy (blocks and head together) put back. When the
/// hidden records changed any table (a token, a slot, a setting, a property), the head's
/// digests no longer match: a plain open refuses small tables, a verified open the rest. When
/// they were only reads, the file alone is a consistent older state, which only the witness
/// catches: the open fails naming both lengths.
#[test]
fn attack4_an_older_audit_table_hides_later_records() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let path = vault_with_secret(dir.path(), opts(&c));
    let witness = FileWitness::new(dir.path().join("v.witness"));
    drop(Vault::open(&path, &key(1), opts(&c).witness(witness.clone())).unwrap());
    let older = copy_to(&path, "older.tresor");
    let reads = opts(&c)
        .read_audit(AuditLevel::Durable)
        .witness(witness.clone());
    let v = Vault::open(&path, &key(1), reads).unwrap();
    for _ in 0..5 {
        v.get("db-password").unwrap();
    }
    let hidden = v.audit_len().unwrap();
    drop(v);
    let file = copy_to(&path, "current.tresor");
    put_back_table(&older, &path, AUDIT);
    // Only reads were hidden: the file alone is consistent...
    Vault::open(&path, &key(1), verified(&c)).unwrap();
    // ...but not with its witness (the verified open above kept no witness).
    match Vault::open(&path, &key(1), opts(&c).witness(witness.clone())) {
        Err(Error::BehindWitness { file, witness }) => {
            assert!(file < witness, "{file} < {witness}");
            assert!(witness >= hidden);
        }
        other => panic!("expected BehindWitness, got {other:?}"),
    }

    // Hidden records that changed a token: a plain open refuses the file.
    std::fs::copy(&file, &path).unwrap();
    let v = Vault::open(&path, &key(1), opts(&c)).unwrap();
    v.create_token("late", Role::Reader).unwrap();
    drop(v);
    put_back_table(&older, &path, AUDIT);
    assert!(is_corrupted_naming(
        Vault::open(&path, &key(1), opts(&c)),
        "tokens"
    ));

    // Hidden records that changed a property: a verified open refuses the file.
    std::fs::copy(&file, &path).unwrap();
    let v = Vault::open(&path, &key(1), opts(&c)).unwrap();
    v.update_properties(
        "db-password",
        None,
        &PropertiesUpdate::new().tags(BTreeMap::from([("k".into(), "v".into())])),
    )
    .unwrap();
    drop(v);
    put_back_table(&older, &path, AUDIT);
    assert!(is_corrupted_naming(
        Vault::open(&path, &key(1), verified(&c)),
        "secrets"
    ));
}

/// Attack 5: a reader-role handle opened with a clock 100 days ahead used to purge soft-deleted
/// secrets under purge protection (as actor `system`). Readers never destroy; an owner's clock
/// that jumps past the retention period in one step destroys nothing early either, and a clock
/// behind the log's latest time only delays purges.
#[test]
fn attack5_no_role_and_no_clock_purges_a_protected_secret_early() {
    let (_dir, path) = temp_path("pp.tresor");
    let c = clock();
    let v = Vault::create(
        &path,
        &key(1),
        opts(&c).purge_protection(true).retention_days(90),
    )
    .unwrap();
    v.add_slot(&SlotSpec::new(key(2), "reader").role(Role::Reader))
        .unwrap();
    v.set("evidence", "x").unwrap();
    let deleted = v.delete("evidence").unwrap();
    drop(v);

    // A reader with a clock 100 days ahead: nothing is purged.
    let ahead = ManualClock::new(Timestamp::from_unix(T0 + 100 * 86_400));
    let r = Vault::open(&path, &key(2), opts(&ahead)).unwrap();
    assert_eq!(r.list_deleted(None, 10).unwrap().items.len(), 1);
    drop(r);
    // The owner, with the real clock: still there, and not purgeable.
    let v = Vault::open(&path, &key(1), opts(&c)).unwrap();
    assert!(matches!(
        v.purge("evidence"),
        Err(Error::PurgeProtected { until }) if until == deleted.scheduled_purge
    ));
    drop(v);
    // The owner with a clock 100 days ahead, in one step past the last record: nothing purged,
    // and an explicit purge is refused.
    let far = ManualClock::new(Timestamp::from_unix(T0 + 100 * 86_400));
    let v = Vault::open(&path, &key(1), opts(&far).read_audit(AuditLevel::Off)).unwrap();
    assert_eq!(v.list_deleted(None, 10).unwrap().items.len(), 1);
    assert!(matches!(
        v.purge("evidence"),
        Err(Error::PurgeProtected { .. })
    ));
    assert_eq!(v.purge_expired().unwrap(), 0);
    drop(v);
    // A clock a year behind the log: nothing purged, records keep the clock's time and the
    // chain verifies.
    let behind = ManualClock::new(Timestamp::from_unix(T0 - 365 * 86_400));
    let v = Vault::open(&path, &key(1), opts(&behind)).unwrap();
    assert_eq!(v.purge_expired().unwrap(), 0);
    assert_eq!(v.list_deleted(None, 10).unwrap().items.len(), 1);
    v.verify_audit().unwrap();
    let log = audit_log(&v);
    assert!(
        !log.iter()
            .any(|r| r.operation == Operation::SecretPurge && r.error.is_none())
    );
    drop(v);
    // Nobody purged anything, as actor `system` or otherwise.
    let v = Vault::open(&path, &key(1), verified(&c)).unwrap();
    assert_eq!(v.list_deleted(None, 10).unwrap().items.len(), 1);
}

/// A writer never destroys data: versions it prunes (`max_versions`) wait, due at once, for the
/// next purge by an owner.
#[test]
fn a_writer_prunes_versions_without_destroying_them() {
    let c = clock();
    let mem = SharedMem::new();
    let v = Vault::create_with_backend(mem.clone(), &key(1), opts(&c).max_versions(1)).unwrap();
    v.add_slot(&SlotSpec::new(key(2), "writer").role(Role::Writer))
        .unwrap();
    drop(v);
    let w = Vault::open_with_backend(mem.clone(), &key(2), opts(&c)).unwrap();
    w.set("s", "1").unwrap();
    w.set("s", "2").unwrap();
    assert_eq!(w.list_versions("s").unwrap().len(), 1);
    drop(w);
    let retired = |mem: &SharedMem| {
        let db = redb::Builder::new()
            .create_with_backend(mem.snapshot())
            .unwrap();
        let txn = db.begin_read().unwrap();
        txn.open_table(RETIRED).unwrap().iter().unwrap().count()
    };
    assert_eq!(retired(&mem), 1, "the writer's pruned version is kept");
    let v = Vault::open_with_backend(mem.clone(), &key(1), opts(&c)).unwrap();
    drop(v);
    assert_eq!(retired(&mem), 0, "the owner's open purged it");
}

/// Attack 6: a removed key slot comes back by copying the `slots` and `auth` rows from an older
/// copy. A plain open refuses the file (the digests of `slots` and `meta`), whichever slot opens.
#[test]
fn attack6_a_removed_slot_put_back_never_unlocks() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let path = vault_with_secret(dir.path(), opts(&c));
    let v = Vault::open(&path, &key(1), opts(&c)).unwrap();
    let added = v.add_slot(&SlotSpec::new(key(2), "laptop")).unwrap();
    drop(v);
    let older = copy_to(&path, "older.tresor");
    let v = Vault::open(&path, &key(1), opts(&c)).unwrap();
    v.remove_slot(added.id).unwrap();
    drop(v);
    assert!(matches!(
        Vault::open(&path, &key(2), opts(&c)),
        Err(Error::WrongKey)
    ));
    put_back_row(&older, &path, SLOTS, added.id);
    put_back_row(&older, &path, META, "auth");
    for k in [key(1), key(2)] {
        assert!(matches!(
            Vault::open(&path, &k, opts(&c)),
            Err(Error::Corrupted(_))
        ));
    }
}

/// Attack 7: `--actor` wrote any name into the log, `system` included, and records did not say
/// which credential acted. Now `system` in any guise is refused, control and invisible
/// characters are refused, and every caller's record names its slot or token with its role.
#[test]
fn attack7_actors_cannot_pass_for_system_and_records_name_the_credential() {
    let c = clock();
    let mem = SharedMem::new();
    let v = Vault::create_with_backend(mem.clone(), &key(1), opts(&c)).unwrap();
    v.add_slot(&SlotSpec::new(key(2), "reader").role(Role::Reader))
        .unwrap();
    v.set("s", "x").unwrap();
    for fake in [
        "system",
        "system ",
        "SYSTEM",
        "\u{0455}ystem",
        "ｓｙｓｔｅｍ",
        "sys\u{200b}tem",
    ] {
        assert!(
            matches!(
                v.as_identity(fake, Role::Reader),
                Err(Error::InvalidArgument(_))
            ),
            "{fake:?}"
        );
        assert!(matches!(
            Vault::create_in_memory(&key(3), opts(&c).actor(fake)),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert!(v.as_identity("ops\u{1b}[2J", Role::Reader).is_err());
    drop(v);
    let r = Vault::open_with_backend(mem.clone(), &key(2), opts(&c).actor("owner")).unwrap();
    r.get("s").unwrap();
    drop(r);
    let v = Vault::open_with_backend(mem.clone(), &key(1), opts(&c)).unwrap();
    let token = v.create_token("ci", Role::Writer).unwrap();
    let who = v.token_identity(token.expose()).unwrap().unwrap();
    v.as_token(&who).unwrap().set("t", "y").unwrap();
    let log = audit_log(&v);
    let get = log
        .iter()
        .find(|r| r.operation == Operation::SecretGet)
        .unwrap();
    // The reader called itself "owner"; its record still names the reader slot.
    assert_eq!(get.actor, "owner");
    assert_eq!(
        get.principal,
        Some(Principal::Slot {
            id: 2,
            role: Role::Reader
        })
    );
    let set = log.last().unwrap();
    assert_eq!(
        set.principal,
        Some(Principal::Token {
            id: who.id.clone(),
            role: Role::Writer
        })
    );
    assert!(
        log.iter()
            .filter(|r| r.actor == tresor::SYSTEM_ACTOR)
            .all(|r| r.principal.is_none())
    );
}

/// The whole file rolled back to an older copy: caught by the witness without any checkpoint.
/// A copy opened beside the original (at another path) has a witness of its own and locks
/// nobody out; a copy put back over the original is refused until an owner accepts it, which
/// is recorded.
#[test]
fn the_witness_catches_a_whole_file_rollback_and_lets_copies_live_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let c = clock();
    let path = vault_with_secret(dir.path(), opts(&c));
    let with = |p: &Path| opts(&c).witness(FileWitness::for_vault(&state, p).unwrap());
    drop(Vault::open(&path, &key(1), with(&path)).unwrap());
    let v = Vault::open(&path, &key(1), with(&path)).unwrap();
    let copy = dir.path().join("copy.tresor");
    v.backup_to(&copy).unwrap();
    v.set("db-password", "after-the-copy").unwrap();
    drop(v);

    // The copy, used beside the original: both keep working.
    for _ in 0..2 {
        let c1 = Vault::open(&copy, &key(1), with(&copy)).unwrap();
        c1.set("only-in-copy", "1").unwrap();
        drop(c1);
        let o = Vault::open(&path, &key(1), with(&path)).unwrap();
        o.set("only-in-original", "1").unwrap();
        drop(o);
    }

    // The copy put back over the original: refused, naming both lengths.
    let original = copy_to(&path, "original.tresor");
    let stale = copy_to(&copy, "stale.tresor");
    std::fs::copy(&stale, &path).unwrap();
    match Vault::open(&path, &key(1), with(&path)) {
        Err(Error::BehindWitness { file, witness }) => assert!(file < witness),
        Err(Error::RolledBack(_)) => {}
        other => panic!("expected a rollback error, got {other:?}"),
    }
    // A reader may not accept it; an owner may, and the acceptance is recorded.
    let v = Vault::open(&original, &key(1), opts(&c)).unwrap();
    drop(v);
    std::fs::copy(&stale, &path).unwrap();
    let v = Vault::open(&path, &key(1), with(&path).reset_witness(true)).unwrap();
    assert!(
        audit_log(&v)
            .iter()
            .any(|r| r.operation == Operation::WitnessReset && r.error.is_none())
    );
    drop(v);
    // From then on the witness follows the restored file.
    drop(Vault::open(&path, &key(1), with(&path)).unwrap());
}

/// Only an owner accepts a rolled-back file.
#[test]
fn a_reader_cannot_reset_the_witness() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let path = vault_with_secret(dir.path(), opts(&c));
    let w = FileWitness::new(dir.path().join("w"));
    let v = Vault::open(&path, &key(1), opts(&c).witness(w.clone())).unwrap();
    v.add_slot(&SlotSpec::new(key(2), "reader").role(Role::Reader))
        .unwrap();
    drop(v);
    let older = copy_to(&path, "older.tresor");
    let v = Vault::open(&path, &key(1), opts(&c).witness(w.clone())).unwrap();
    v.set("later", "x").unwrap();
    drop(v);
    std::fs::copy(&older, &path).unwrap();
    assert!(matches!(
        Vault::open(
            &path,
            &key(2),
            opts(&c).witness(w.clone()).reset_witness(true)
        ),
        Err(Error::Forbidden { .. })
    ));
    assert!(matches!(
        Vault::open(&path, &key(2), opts(&c).witness(w.clone())),
        Err(Error::BehindWitness { .. })
    ));
}

/// A witness that lags behind the file (a crash between a commit and the witness update) is
/// not a lockout: the open accepts the file and brings the witness up to date. A master-key
/// rotation, which re-keys every MAC of the chain, writes the witness around its commit so that
/// a crash on either side of it opens too.
#[test]
fn a_witness_behind_the_file_catches_up_and_rotation_keeps_it_valid() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let path = vault_with_secret(dir.path(), opts(&c));
    let w = FileWitness::new(dir.path().join("w"));
    drop(Vault::open(&path, &key(1), opts(&c).witness(w.clone())).unwrap());
    let vid = {
        let v = Vault::open(&path, &key(1), opts(&c)).unwrap();
        v.vault_id()
    };
    let lagging = w.load(&vid).unwrap().unwrap();
    let v = Vault::open(&path, &key(1), opts(&c).witness(w.clone())).unwrap();
    v.set("more", "1").unwrap();
    drop(v);
    // As if the process died after its commit, before the witness was written.
    w.store(&lagging).unwrap();
    drop(Vault::open(&path, &key(1), opts(&c).witness(w.clone())).unwrap());
    assert_ne!(w.load(&vid).unwrap().unwrap(), lagging, "caught up");

    // Rotation: the state written before its commit accepts both chains.
    let before = w.load(&vid).unwrap().unwrap();
    let pre_rotation = copy_to(&path, "pre.tresor");
    let v = Vault::open(&path, &key(1), opts(&c).witness(w.clone())).unwrap();
    v.rotate_master_key(&[], |_| {}).unwrap();
    drop(v);
    let after = w.load(&vid).unwrap().unwrap();
    assert_ne!(after.at, before.at);
    // A crash after the rotation's commit, before its second witness write.
    let mut both = WitnessState::new(vid, after.at);
    both.also = Some(before.at);
    w.store(&both).unwrap();
    drop(Vault::open(&path, &key(1), opts(&c).witness(w.clone())).unwrap());
    // A crash before the rotation's commit: the file is still the pre-rotation one.
    w.store(&both).unwrap();
    std::fs::copy(&pre_rotation, &path).unwrap();
    drop(Vault::open(&path, &key(1), opts(&c).witness(w.clone())).unwrap());
}

/// The head of an older format (no state digests) put back with its audit table into a file
/// that has been upgraded: refused, so digests cannot be stripped by a downgrade.
#[test]
fn a_head_without_digests_is_refused_in_a_format3_file() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format2.tresor");
    let path = dir.path().join("v.tresor");
    std::fs::copy(&fixture, &path).unwrap();
    let older = copy_to(&path, "older.tresor");
    let key =
        Credential::key_file(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format2.key"))
            .unwrap();
    let c = ManualClock::new(Timestamp::from_unix(1_764_633_600));
    let v = Vault::open(&path, &key, opts(&c)).unwrap();
    v.set("after-upgrade", "x").unwrap();
    drop(v);
    put_back_table(&older, &path, AUDIT);
    match Vault::open(&path, &key, opts(&c)) {
        Err(Error::Corrupted(m)) => assert!(m.contains("digest"), "{m}"),
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

/// A passphrase slot planted with parameters above the cap does not stop the real slot from
/// opening (before, it failed the whole unlock), and slots are tried cheapest first.
#[test]
fn planted_costly_slots_do_not_block_or_stall_an_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let path = dir.path().join("v.tresor");
    let pass = Credential::passphrase("correct horse battery staple");
    let v = Vault::create(&path, &pass, opts(&c).kdf(KdfParams::MINIMUM)).unwrap();
    v.set("s", "x").unwrap();
    drop(v);
    // A slot record of the same vault with its memory raised past the cap: the record's kind is
    // postcard (variant 0, three varints) right after the label and role.
    let (id, bytes) = rows(&path, SLOTS).remove(0);
    let mut planted = bytes.clone();
    let min = KdfParams::MINIMUM.memory_kib;
    let varint = |mut n: u32| {
        let mut out = Vec::new();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out
    };
    let (old, new) = (varint(min), varint(KdfParams::MAX_MEMORY_KIB + 1));
    let at = planted
        .windows(old.len())
        .position(|w| w == old.as_slice())
        .unwrap();
    planted.splice(at..at + old.len(), new);
    assert_ne!(planted, bytes);
    edit(&path, |txn| {
        txn.open_table(SLOTS)
            .unwrap()
            .insert(0u32, planted.as_slice())
            .unwrap();
    });
    assert!(id > 0);
    // The planted slot (id 0, before the real one) is skipped; the open then fails on the
    // slots digest — the file was edited — never on the planted parameters.
    match Vault::open(&path, &pass, opts(&c)) {
        Err(Error::Corrupted(m)) => assert!(m.contains("slots") || m.contains("MAC"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// After `rotate_master_key` and `compact`, no row sealed under the old master key is left in
/// the file.
#[test]
fn after_rotation_and_compaction_no_old_record_is_left_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let path = dir.path().join("v.tresor");
    let v = Vault::create(&path, &key(1), opts(&c)).unwrap();
    for i in 0..200 {
        v.set(&format!("s{i}"), format!("value number {i}"))
            .unwrap();
    }
    drop(v);
    let mut old: Vec<Vec<u8>> = Vec::new();
    for def in [SECRETS, DELETED] {
        old.extend(rows(&path, def).into_iter().map(|(_, v)| v));
    }
    old.extend(rows(&path, VERSIONS).into_iter().map(|(_, v)| v));
    old.extend(rows(&path, AUDIT).into_iter().map(|(_, v)| v));
    let v = Vault::open(&path, &key(1), opts(&c)).unwrap();
    v.rotate_master_key(&[], |_| {}).unwrap();
    v.compact().unwrap();
    drop(v);
    let bytes = std::fs::read(&path).unwrap();
    // Each sealed row starts with its 24-byte random nonce: look for the nonce and the first
    // bytes of ciphertext.
    let left: Vec<usize> = old
        .iter()
        .enumerate()
        .filter(|(_, r)| contains(&bytes, &r[..40.min(r.len())]))
        .map(|(i, _)| i)
        .collect();
    assert!(
        left.is_empty(),
        "{} of {} old records left",
        left.len(),
        old.len()
    );
}

/// One unlock derives at most 8 passphrase keys, cheapest first: with 9 cheap passphrase slots
/// planted (slot records of another vault, Argon2id at the minimum) beside a real slot that
/// costs more, the unlock gives up after the planted ones instead of deriving a key for every
/// slot in the file. (Without the bound it would reach the real slot and open.)
#[test]
fn an_unlock_derives_a_bounded_number_of_passphrase_keys() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let pass = Credential::passphrase("the real one");
    let real = KdfParams {
        memory_kib: KdfParams::MINIMUM.memory_kib * 2,
        ..KdfParams::MINIMUM
    };
    let path = dir.path().join("v.tresor");
    drop(Vault::create(&path, &pass, opts(&c).kdf(real)).unwrap());
    let other = dir.path().join("other.tresor");
    drop(
        Vault::create(
            &other,
            &Credential::passphrase("planted"),
            opts(&c).kdf(KdfParams::MINIMUM),
        )
        .unwrap(),
    );
    let (_, planted) = rows(&other, SLOTS).remove(0);
    let plant = |n: u32| {
        edit(&path, |txn| {
            let mut t = txn.open_table(SLOTS).unwrap();
            for id in 100..100 + n {
                t.insert(id, planted.as_slice()).unwrap();
            }
        })
    };
    // With 7 planted, the real slot is the 8th tried: it opens (then the slots digest refuses
    // the edited file, after the unlock).
    let seven = copy_to(&path, "seven.tresor");
    let nine = copy_to(&path, "nine.tresor");
    std::fs::copy(&seven, &path).unwrap();
    plant(7);
    assert!(matches!(
        Vault::open(&path, &pass, opts(&c)),
        Err(Error::Corrupted(_))
    ));
    // With 9 planted, 8 derivations are spent on them: the unlock stops with WrongKey.
    std::fs::copy(&nine, &path).unwrap();
    plant(9);
    assert!(matches!(
        Vault::open(&path, &pass, opts(&c)),
        Err(Error::WrongKey)
    ));
}
