//! What the full checks cost: a plain open, a verified open (`Options::verify_integrity`: redb's
//! page checksums, every record, the audit chain and its replay, every table against the state
//! digests) and `Vault::check_integrity` on an open vault, against redb's own integrity check of
//! the same file, at 10k and 100k secrets of 256 bytes (`TRESOR_BENCH_SIZES` to change).
//!
//! `cargo bench --bench integrity`

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tresor::{AuditLevel, Credential, Options, SetOptions, Vault};

fn sizes() -> Vec<usize> {
    std::env::var("TRESOR_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("TRESOR_BENCH_SIZES: numbers"))
        .collect()
}

fn key() -> Credential {
    Credential::key([7u8; 32])
}

/// A vault file of `n` secrets of 256 bytes, written in batches of 50,000.
fn vault_file(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join(format!("integrity-{n}.tresor"));
    let vault = Vault::create(&path, &key(), Options::new()).unwrap();
    let opts = SetOptions::new();
    let value = vec![0x5a_u8; 256];
    for start in (0..n).step_by(50_000) {
        let names: Vec<String> = (start..n.min(start + 50_000))
            .map(|i| format!("secret-{i:07}"))
            .collect();
        vault
            .set_many(names.iter().map(|s| (s.as_str(), value.as_slice(), &opts)))
            .unwrap();
    }
    drop(vault);
    path
}

fn quiet() -> Options {
    // Reads not audited: each iteration opens the same file without writing to it.
    Options::new().read_audit(AuditLevel::Off)
}

fn bench_checks(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("integrity");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for n in sizes() {
        let path = vault_file(dir.path(), n);
        group.bench_with_input(BenchmarkId::new("open-plain", n), &n, |b, _| {
            b.iter(|| Vault::open(&path, &key(), quiet()).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("open-verified", n), &n, |b, _| {
            b.iter(|| Vault::open(&path, &key(), quiet().verify_integrity(true)).unwrap())
        });
        {
            let vault = Vault::open(&path, &key(), quiet()).unwrap();
            group.bench_with_input(BenchmarkId::new("check_integrity", n), &n, |b, _| {
                b.iter(|| vault.check_integrity().unwrap())
            });
        }
        group.bench_with_input(BenchmarkId::new("raw-redb-check", n), &n, |b, _| {
            b.iter(|| {
                let mut db = tresor::redb::Database::open(&path).unwrap();
                assert!(db.check_integrity().unwrap());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_checks);
criterion_main!(benches);
