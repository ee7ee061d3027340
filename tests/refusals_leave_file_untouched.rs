//! An open that is refused (wrong key, damaged header, unknown checkpoint, newer format) writes
//! nothing: the file is byte for byte what it was. The credential is checked on a read-only
//! handle before the read-write open, which would otherwise let redb rewrite its bookkeeping.

use std::path::Path;

use tresor::redb::{Database, ReadableTable, TableDefinition};
use tresor::{Credential, Error, KdfParams, Options, Vault};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

fn key(n: u8) -> Credential {
    Credential::key([n; 32])
}

fn make(path: &Path) {
    let v = Vault::create(path, &key(1), Options::new().kdf(KdfParams::MINIMUM)).unwrap();
    v.set("db-password", "hunter2").unwrap();
    v.set("db-password", "hunter3").unwrap();
    v.delete("db-password").unwrap();
    v.set("api-key", "k").unwrap();
    v.close().unwrap();
}

fn assert_refused_untouched(
    path: &Path,
    credential: &Credential,
    options: Options,
    check: impl Fn(&Error) -> bool,
) {
    let before = std::fs::read(path).unwrap();
    match Vault::open(path, credential, options) {
        Err(e) => assert!(check(&e), "unexpected error: {e}"),
        Ok(_) => panic!("the open should have been refused"),
    }
    assert!(
        std::fs::read(path).unwrap() == before,
        "a refused open changed the file"
    );
}

#[test]
fn wrong_key_leaves_the_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.tresor");
    make(&path);
    assert_refused_untouched(&path, &key(2), Options::new(), |e| {
        matches!(e, Error::WrongKey)
    });
    assert_refused_untouched(
        &path,
        &Credential::passphrase("nope"),
        Options::new(),
        |e| matches!(e, Error::WrongKey),
    );
    // The right key still opens it, and everything is there.
    let v = Vault::open(&path, &key(1), Options::new()).unwrap();
    assert_eq!(v.get("api-key").unwrap().expose(), b"k");
    v.verify_audit().unwrap();
}

#[test]
fn unknown_checkpoint_leaves_the_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.tresor");
    make(&path);
    let far: tresor::Checkpoint = "tresor-cp1-999999-00000000000000000000000000000000"
        .parse()
        .unwrap();
    assert_refused_untouched(&path, &key(1), Options::new().expect_checkpoint(far), |e| {
        matches!(e, Error::RolledBack(_))
    });
}

#[test]
fn newer_format_and_altered_header_leave_the_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.tresor");
    make(&path);
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(META).unwrap();
            let mut h = t.get("header").unwrap().unwrap().value().to_vec();
            f(&mut h);
            t.insert("header", h.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    };
    // A later format version.
    edit(&|h| h[8..10].copy_from_slice(&4u16.to_le_bytes()));
    assert_refused_untouched(&path, &key(1), Options::new(), |e| {
        matches!(e, Error::UnsupportedFormat { found: 4, .. })
    });
    // Back to format 3, but another creation time: the header MAC no longer matches.
    edit(&|h| {
        h[8..10].copy_from_slice(&3u16.to_le_bytes());
        let last = h.len() - 1;
        h[last] ^= 2;
    });
    assert_refused_untouched(&path, &key(1), Options::new(), |e| {
        matches!(e, Error::Corrupted(_))
    });
}
