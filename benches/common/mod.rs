//! What the benchmarks that compare tresor with raw redb share: the names and values they
//! write, a deterministic random picker, the vault and raw redb files they read, and the
//! ring ChaCha20-Poly1305 calls of the physical-limit baseline.

// Each bench binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::Path;

use redb::{Database, TableDefinition};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use tresor::{Credential, Options, SetOptions, Vault};

pub const RAW: TableDefinition<&str, &[u8]> = TableDefinition::new("raw");
pub const HASHED: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("hashed");
pub const VALUE_LEN: usize = 256;

/// Vault sizes from `TRESOR_BENCH_SIZES` (default `10000,100000,1000000`).
pub fn sizes() -> Vec<usize> {
    std::env::var("TRESOR_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("TRESOR_BENCH_SIZES: comma-separated numbers")
        })
        .collect()
}

pub fn name(i: usize) -> String {
    format!("secret-{i:07}")
}

pub fn value(i: usize) -> Vec<u8> {
    (0..VALUE_LEN)
        .map(|j| (i.wrapping_mul(31).wrapping_add(j) % 251) as u8)
        .collect()
}

/// A small deterministic generator of random indexes (xorshift64*).
pub struct Picker(pub u64);

impl Picker {
    pub fn new() -> Self {
        Picker(0x9e37_79b9_7f4a_7c15)
    }

    pub fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

pub fn key() -> Credential {
    Credential::key([7u8; 32])
}

/// `names` with their `values`, written by one `set_many` (no options).
pub fn import(vault: &Vault, names: &[String], values: &[Vec<u8>]) {
    let opts = SetOptions::new();
    vault
        .set_many(
            names
                .iter()
                .zip(values)
                .map(|(n, v)| (n.as_str(), v.as_slice(), &opts)),
        )
        .unwrap();
}

/// A vault file at `path` holding `n` secrets of 256 bytes, written in batches of 50,000.
pub fn tresor_file(path: &Path, n: usize) {
    let vault = Vault::create(path, &key(), Options::new()).unwrap();
    for start in (0..n).step_by(50_000) {
        let end = (start + 50_000).min(n);
        let names: Vec<String> = (start..end).map(name).collect();
        let values: Vec<Vec<u8>> = (start..end).map(value).collect();
        import(&vault, &names, &values);
    }
}

/// A raw redb file at `path` with the same names and values (sealed when `cipher` is given).
pub fn raw_file(path: &Path, n: usize, cipher: Option<&LessSafeKey>) -> Database {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(RAW).unwrap();
        for i in 0..n {
            let v = match cipher {
                Some(c) => ring_seal(c, &value(i)),
                None => value(i),
            };
            t.insert(name(i).as_str(), v.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
    db
}

pub fn ring_key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[3u8; 32]).unwrap())
}

/// `nonce (12) || ciphertext || tag` by ring's ChaCha20-Poly1305.
pub fn ring_seal(c: &LessSafeKey, plain: &[u8]) -> Vec<u8> {
    let nonce = [9u8; 12];
    let mut out = nonce.to_vec();
    out.extend_from_slice(plain);
    let tag = c
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut out[12..],
        )
        .unwrap();
    out.extend_from_slice(tag.as_ref());
    out
}

/// One ring ChaCha20-Poly1305 open: the least a read of an encrypted value costs.
pub fn ring_open(c: &LessSafeKey, sealed: &[u8]) -> Vec<u8> {
    let nonce: [u8; 12] = sealed[..12].try_into().unwrap();
    let mut buf = sealed[12..].to_vec();
    let len = c
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
        .unwrap()
        .len();
    buf.truncate(len);
    buf
}

/// The least an encrypted store must do to import `names` and `values` into `db`: hash each
/// name with a key (keyed BLAKE3), seal each value (XChaCha20-Poly1305, fresh random nonce),
/// sort the rows by key and insert them in one transaction.
pub fn sorted_sealed_insert(db: &Database, names: &[String], values: &[Vec<u8>]) {
    let hkey = [5u8; 32];
    let mut rows: Vec<([u8; 16], Vec<u8>)> = names
        .iter()
        .zip(values)
        .map(|(n, v)| {
            let mut k = [0u8; 16];
            k.copy_from_slice(&blake3::keyed_hash(&hkey, n.as_bytes()).as_bytes()[..16]);
            (k, tresor::fuzzing::seal(&hkey, &k, v).unwrap())
        })
        .collect();
    rows.sort_unstable_by_key(|r| r.0);
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(HASHED).unwrap();
        for (k, v) in &rows {
            t.insert(k, v.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
}
