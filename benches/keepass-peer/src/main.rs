//! Per-write cost: one durable tresor `set` against one save of a KeePass (KDBX 4) file with the
//! same entries, written by the `keepass` crate with its default settings (which rewrite and
//! re-encrypt the whole file, re-running the key derivation, on every save).
//!
//! `cargo run --release --manifest-path benches/keepass-peer/Cargo.toml` prints medians and ratios.

use std::io::Write;
use std::time::{Duration, Instant};

use keepass::{Database, DatabaseKey};
use tresor::{Credential, Options, SetOptions, Vault};

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn value(i: usize) -> String {
    format!("{i:0>256}")
}

fn keepass_save(n: usize, rounds: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::new();
    for i in 0..n {
        let mut root = db.root_mut();
        let mut e = root.add_entry();
        e.set_unprotected("Title", format!("secret-{i:07}"));
        e.set_protected("Password", value(i));
    }
    let path = dir.path().join("peer.kdbx");
    let mut times = Vec::new();
    for r in 0..rounds {
        // The write being measured: change one entry, save the whole file durably.
        {
            let mut root = db.root_mut();
            let mut e = root.add_entry();
            e.set_unprotected("Title", format!("extra-{r}"));
            e.set_protected("Password", value(r));
        }
        let start = Instant::now();
        let mut f = std::fs::File::create(&path).unwrap();
        db.save(&mut f, DatabaseKey::new().with_password("benchmark")).unwrap();
        f.flush().unwrap();
        f.sync_all().unwrap();
        times.push(start.elapsed());
    }
    median(times)
}

fn tresor_set(n: usize, rounds: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::create(dir.path().join("peer.tresor"), &Credential::key([5; 32]), Options::new()).unwrap();
    let names: Vec<String> = (0..n).map(|i| format!("secret-{i:07}")).collect();
    let values: Vec<String> = (0..n).map(value).collect();
    let opts = SetOptions::new();
    vault
        .set_many(names.iter().zip(&values).map(|(k, v)| (k.as_str(), v.as_bytes(), &opts)))
        .unwrap();
    let mut times = Vec::new();
    for r in 0..rounds {
        let start = Instant::now();
        vault.set(&names[r % n], value(r)).unwrap();
        times.push(start.elapsed());
    }
    median(times)
}

fn main() {
    println!("{:>8} {:>18} {:>18} {:>10}", "entries", "keepass save", "tresor set", "ratio");
    for n in [1_000usize, 10_000] {
        let k = keepass_save(n, 7);
        let t = tresor_set(n, 101);
        println!(
            "{n:>8} {:>15.2} ms {:>15.3} ms {:>9.0}x",
            k.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e3,
            k.as_secs_f64() / t.as_secs_f64()
        );
    }
}
