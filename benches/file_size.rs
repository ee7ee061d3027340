//! File size on disk per secret, tresor against raw redb holding the same names and values.
//!
//! `cargo bench --bench file_size` prints a table (sizes after compaction of both files).

use redb::{Database, TableDefinition};
use tresor::{Credential, Options, SetOptions, Vault};

const RAW: TableDefinition<&str, &[u8]> = TableDefinition::new("raw");

fn main() {
    let n: usize = std::env::var("TRESOR_SIZE_SECRETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    // `cargo bench` passes `--bench`; nothing else to parse.
    println!("secrets: {n}");
    println!(
        "{:>10} {:>16} {:>16} {:>8}",
        "value", "tresor B/secret", "redb B/secret", "ratio"
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
        vault
            .set_many(names.iter().map(|k| (k.as_str(), value.as_slice(), &opts)))
            .unwrap();
        vault.compact().unwrap();
        drop(vault);

        let rpath = dir.path().join("size.redb");
        let mut db = Database::create(&rpath).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(RAW).unwrap();
            for k in &names {
                t.insert(k.as_str(), value.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
        db.compact().unwrap();
        drop(db);

        let t = std::fs::metadata(&tpath).unwrap().len() as f64 / n as f64;
        let r = std::fs::metadata(&rpath).unwrap().len() as f64 / n as f64;
        println!("{len:>10} {t:>16.1} {r:>16.1} {:>8.2}", t / r);
    }
}
