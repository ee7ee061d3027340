//! tresor against SQLCipher (SQLite with page encryption: WAL, `synchronous=FULL`, a raw 256-bit
//! key) and raw redb, on the same machine in the same run: a durable one-row write and a point
//! read of a 256-byte value among 10,000 rows. Rounds of each kind are interleaved (the disk's
//! fsync time drifts); the medians of all operations are printed with their ratios.
//!
//! `cargo run --release --manifest-path benches/sqlcipher-peer/Cargo.toml`

use std::hint::black_box;
use std::time::{Duration, Instant};

use redb::{Database, TableDefinition};
use rusqlite::{Connection, params};
use tresor::{Credential, Options, SetOptions, Vault, redb};

const N: usize = 10_000;
const ROUNDS: usize = 7;
const WRITES: usize = 60;
const READS: usize = 20_000;
const RAW: TableDefinition<&str, &[u8]> = TableDefinition::new("raw");

fn name(i: usize) -> String {
    format!("secret-{i:07}")
}

fn value(i: usize) -> Vec<u8> {
    (0..256).map(|j| ((i * 31 + j) % 251) as u8).collect()
}

/// xorshift64*: random indexes, not a sequential walk.
struct Picker(u64);

impl Picker {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % N as u64) as usize
    }
}

fn median(xs: &mut [Duration]) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn sqlcipher(path: &std::path::Path) -> Connection {
    let c = Connection::open(path).unwrap();
    // A raw key (no passphrase derivation), as tresor's external-key slots.
    c.execute_batch(&format!("PRAGMA key = \"x'{}'\";", "42".repeat(32)))
        .unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    )
    .unwrap();
    c
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..N).map(name).collect();
    let values: Vec<Vec<u8>> = (0..N).map(value).collect();

    let sql = sqlcipher(&dir.path().join("peer.db"));
    {
        let tx = sql.unchecked_transaction().unwrap();
        {
            let mut ins = tx
                .prepare("INSERT INTO secrets (name, value) VALUES (?1, ?2)")
                .unwrap();
            for (n, v) in names.iter().zip(&values) {
                ins.execute(params![n, v]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let cipher_version: String = sql
        .query_row("PRAGMA cipher_version", [], |r| r.get(0))
        .unwrap();

    let vault = Vault::create(
        dir.path().join("peer.tresor"),
        &Credential::key([5; 32]),
        Options::new(),
    )
    .unwrap();
    let opts = SetOptions::new();
    vault
        .set_many(
            names
                .iter()
                .zip(&values)
                .map(|(n, v)| (n.as_str(), v.as_slice(), &opts)),
        )
        .unwrap();
    drop(vault);
    let path = dir.path().join("peer.tresor");
    let vault = Vault::open(&path, &Credential::key([5; 32]), Options::new()).unwrap();

    let raw = Database::create(dir.path().join("peer.redb")).unwrap();
    {
        let txn = raw.begin_write().unwrap();
        {
            let mut t = txn.open_table(RAW).unwrap();
            for (n, v) in names.iter().zip(&values) {
                t.insert(n.as_str(), v.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    let labels = [
        "SQLCipher durable update (WAL, synchronous=FULL)",
        "raw redb one-row Immediate commit",
        "tresor durable set",
        "SQLCipher point read",
        "tresor get (Buffered)",
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); labels.len()];
    let mut pick = Picker(0x9e37_79b9_7f4a_7c15);
    let v = value(7);
    for _ in 0..ROUNDS {
        {
            let mut up = sql
                .prepare_cached("UPDATE secrets SET value = ?1 WHERE name = ?2")
                .unwrap();
            for _ in 0..WRITES {
                let n = &names[pick.next()];
                let t = Instant::now();
                assert_eq!(up.execute(params![v, n]).unwrap(), 1);
                times[0].push(t.elapsed());
            }
        }
        for _ in 0..WRITES {
            let n = &names[pick.next()];
            let t = Instant::now();
            let txn = raw.begin_write().unwrap();
            txn.open_table(RAW)
                .unwrap()
                .insert(n.as_str(), v.as_slice())
                .unwrap();
            txn.commit().unwrap();
            times[1].push(t.elapsed());
        }
        for _ in 0..WRITES {
            let n = &names[pick.next()];
            let t = Instant::now();
            vault.set(n, &v).unwrap();
            times[2].push(t.elapsed());
        }
        {
            let mut get = sql
                .prepare_cached("SELECT value FROM secrets WHERE name = ?1")
                .unwrap();
            let t = Instant::now();
            for _ in 0..READS {
                let n = &names[pick.next()];
                let got: Vec<u8> = get.query_row(params![n], |r| r.get(0)).unwrap();
                black_box(got);
            }
            times[3].push(t.elapsed() / READS as u32);
        }
        let t = Instant::now();
        for _ in 0..READS {
            black_box(vault.get(&names[pick.next()]).unwrap());
        }
        times[4].push(t.elapsed() / READS as u32);
        // The read records still buffered would otherwise ride on the next round's first
        // durable set.
        vault.flush().unwrap();
    }
    let m: Vec<Duration> = times.iter_mut().map(|t| median(t)).collect();
    println!("SQLCipher {cipher_version}; {N} rows of 256 bytes; {ROUNDS} interleaved rounds");
    for (l, d) in labels.iter().zip(&m) {
        println!("{l:<50} {:>10.2} µs", d.as_secs_f64() * 1e6);
    }
    let r = |a: usize, b: usize| m[a].as_secs_f64() / m[b].as_secs_f64();
    println!("tresor durable set / raw redb commit:      {:.2}x", r(2, 1));
    println!("tresor durable set / SQLCipher update:     {:.2}x", r(2, 0));
    println!("SQLCipher update / raw redb commit:        {:.2}x", r(0, 1));
    println!("SQLCipher point read / tresor get:         {:.2}x", r(3, 4));
}
