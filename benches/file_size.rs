//! File size on disk per secret, tresor against raw redb holding the same names and values.
//!
//! `cargo bench --bench file_size` prints a table. Both files are written in batches of 1,000
//! and compacted. Raw redb is measured twice: names
//! inserted in sorted order (its B-tree leaves fill completely) and in a shuffled order (leaves
//! split and fill about two thirds, as tresor's always do: its keys are keyed name hashes).
//! `TRESOR_SIZE_SECRETS` sets the number of secrets (default 10,000).

use redb::{Database, TableDefinition};
use tresor::{Credential, Options, SetOptions, Vault};

const RAW: TableDefinition<&str, &[u8]> = TableDefinition::new("raw");
const BATCH: usize = 1000;

fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
}

fn raw_size(path: &std::path::Path, names: &[String], order: &[usize], value: &[u8]) -> u64 {
    let mut db = Database::create(path).unwrap();
    for chunk in order.chunks(BATCH) {
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(RAW).unwrap();
            for &i in chunk {
                t.insert(names[i].as_str(), value).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    // As `Vault::compact` does: passes until nothing moves (at most eight).
    for _ in 0..8 {
        if !db.compact().unwrap() {
            break;
        }
    }
    drop(db);
    std::fs::metadata(path).unwrap().len()
}

fn main() {
    let n: usize = std::env::var("TRESOR_SIZE_SECRETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    println!("secrets: {n}, written in batches of {BATCH}, files compacted");
    println!(
        "{:>6} {:>12} {:>14} {:>8} {:>16} {:>8}",
        "value", "tresor B/s", "redb sorted", "ratio", "redb shuffled", "ratio"
    );
    for len in [256usize, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..n).map(|i| format!("secret-{i:07}")).collect();
        let value = vec![0x5au8; len];

        let tpath = dir.path().join("size.tresor");
        let vault = Vault::create(
            &tpath,
            &Credential::key([1; 32]),
            Options::new().max_value_len(len),
        )
        .unwrap();
        let opts = SetOptions::new();
        for chunk in names.chunks(BATCH) {
            vault
                .set_many(chunk.iter().map(|k| (k.as_str(), value.as_slice(), &opts)))
                .unwrap();
        }
        vault.compact().unwrap();
        drop(vault);
        let t = std::fs::metadata(&tpath).unwrap().len() as f64 / n as f64;

        let sorted: Vec<usize> = (0..n).collect();
        let rs =
            raw_size(&dir.path().join("sorted.redb"), &names, &sorted, &value) as f64 / n as f64;
        let rr = raw_size(
            &dir.path().join("shuffled.redb"),
            &names,
            &shuffled(n),
            &value,
        ) as f64
            / n as f64;
        println!(
            "{len:>6} {t:>12.1} {rs:>14.1} {:>8.2} {rr:>16.1} {:>8.2}",
            t / rs,
            t / rr
        );
    }
}
