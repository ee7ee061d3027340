//! Buffered read records: a full buffer is committed in the background without an fsync while
//! the last durable commit is recent, durably otherwise; a crash loses only read records that
//! no durable commit has carried, never leaves the rollback witness ahead of the file, and the
//! last handle's drop closes the file with every record in it.

mod harness;

use std::path::Path;
use std::time::{Duration, Instant};

use harness::{MemFile, Rng, clock, key, quiet};
use tresor::{AuditLevel, FileWitness, Operation, Options, Vault};

/// The buffer a read fills commits it (`MAX_PENDING` in the library).
const BUFFER: usize = 4096;

fn gets_recorded(v: &Vault) -> usize {
    v.audit(0, usize::MAX)
        .unwrap()
        .iter()
        .filter(|r| r.operation == Operation::SecretGet)
        .count()
}

/// Waits (up to 30 s) for `done`.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Opens each of `images` crash images of `file` with a copy of the witness at `witness`, and
/// returns the number of `SecretGet` records each holds (after checking the chain, the file and
/// the secret).
fn after_crashes(file: &MemFile, witness: &Path, images: u64) -> Vec<usize> {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0x5eed);
    (0..images)
        .map(|i| {
            // The witness first: a commit finishing in between may move it past an image
            // taken before (a witness behind the file is what a crash leaves).
            let w = dir.path().join(format!("witness-{i}"));
            std::fs::copy(witness, &w).unwrap();
            let image = MemFile::from_bytes(file.crash_image(&mut rng));
            let c = clock();
            let v = Vault::open_with_backend(
                image.backend(),
                &key(1),
                quiet(&c).witness(FileWitness::new(&w)),
            )
            .unwrap_or_else(|e| panic!("crash image {i} does not open: {e}"));
            v.verify_audit().unwrap();
            v.check_integrity().unwrap();
            assert_eq!(v.get("alpha").unwrap().expose(), b"one");
            gets_recorded(&v)
        })
        .collect()
}

/// A vault on `file` reading with audit `Buffered`, its witness at `witness`, holding "alpha"
/// (written by a durable commit just now).
fn buffered_vault(file: &MemFile, witness: &Path) -> Vault {
    let v = Vault::create_with_backend(
        file.backend(),
        &key(1),
        Options::new()
            .clock(clock())
            .read_audit(AuditLevel::Buffered)
            .witness(FileWitness::new(witness)),
    )
    .unwrap();
    v.set("alpha", "one").unwrap();
    v
}

#[test]
fn a_full_buffer_skips_the_fsync_and_a_crash_loses_only_those_reads() {
    let dir = tempfile::tempdir().unwrap();
    let witness = dir.path().join("witness");
    let file = MemFile::new();
    let v = buffered_vault(&file, &witness);
    let written = Instant::now();
    for _ in 0..BUFFER {
        v.get("alpha").unwrap();
    }
    // The read that filled the buffer handed it to a background commit, made without an fsync
    // (the last durable commit is under a second old).
    wait_for("the background commit", || {
        tresor::fuzzing::has_undurable_commit(&v)
    });
    assert!(
        written.elapsed() < Duration::from_secs(1),
        "{BUFFER} reads took {:?}: too slow for the 1 s bound under test",
        written.elapsed()
    );
    // A power cut now: every image opens, with the witness accepted (it was not moved by the
    // commit that was not made durable), and none of those reads recorded.
    assert_eq!(after_crashes(&file, &witness, 6), vec![0; 6]);

    // An explicit flush makes them durable, with the witness.
    v.flush().unwrap();
    assert!(!tresor::fuzzing::has_undurable_commit(&v));
    assert_eq!(after_crashes(&file, &witness, 3), vec![BUFFER; 3]);
    assert_eq!(gets_recorded(&v), BUFFER);
}

#[test]
fn a_full_buffer_a_second_after_the_last_durable_commit_is_committed_durably() {
    let dir = tempfile::tempdir().unwrap();
    let witness = dir.path().join("witness");
    let file = MemFile::new();
    let v = buffered_vault(&file, &witness);
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..BUFFER {
        v.get("alpha").unwrap();
    }
    // Without any call from here, a power cut soon leaves every one of those reads recorded,
    // whatever happens to writes not yet synced.
    wait_for("the durable background commit", || {
        after_crashes(&file, &witness, 1) == [BUFFER]
    });
    assert!(!tresor::fuzzing::has_undurable_commit(&v));
    assert_eq!(after_crashes(&file, &witness, 3), vec![BUFFER; 3]);
}

#[test]
fn dropping_the_last_handle_closes_the_file_with_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.tresor");
    let c = clock();
    let opts = || {
        Options::new()
            .clock(c.clone())
            .read_audit(AuditLevel::Buffered)
    };
    Vault::create(&path, &key(1), opts())
        .unwrap()
        .set("alpha", "one")
        .unwrap();
    for round in 1..=5 {
        let v = Vault::open(&path, &key(1), opts()).unwrap();
        let reader = v.clone();
        for _ in 0..BUFFER {
            reader.get("alpha").unwrap();
        }
        // Dropped while the background commit of the full buffer may still run: the file
        // must be closed (and hold every record) once the last handle is gone.
        drop(reader);
        drop(v);
        let v = Vault::open(&path, &key(1), quiet(&c))
            .unwrap_or_else(|e| panic!("round {round}: reopening right after the drop: {e}"));
        assert_eq!(gets_recorded(&v), round * BUFFER);
    }
}
