//! tresor against raw redb doing the same work, in the same run, and against the physical limit
//! of each operation: a raw redb read plus one ring ChaCha20-Poly1305 open (get), a raw redb
//! one-row `Durability::Immediate` commit (durable set), a raw redb insert of hash-keyed sealed
//! rows in key order (bulk import).
//!
//! `cargo bench --bench vault` (all groups), or name groups: `cargo bench --bench vault -- get/`.
//! Vault sizes for the `get` groups come from `TRESOR_BENCH_SIZES` (default `10000,100000,1000000`).
//! `python3 scripts/bench_report.py` turns criterion's output into the ratio table and the plot of
//! BENCHMARKS.md.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cpu_time::ProcessTime;
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use redb::{Database, ReadableDatabase};
use tresor::{AuditLevel, Credential, Options, SetOptions, Vault};

mod common;

use common::{
    Picker, RAW, import, key, name, raw_file, ring_key, ring_open, sizes, sorted_sealed_insert,
    tresor_file, value,
};

/// A vault file of `n` secrets in `dir`.
fn tresor_in(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join(format!("tresor-{n}.tresor"));
    tresor_file(&path, n);
    path
}

fn bench_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cipher = ring_key();
    let files: Vec<(usize, PathBuf)> = sizes()
        .into_iter()
        .map(|n| (n, tresor_in(dir.path(), n)))
        .collect();
    let mut group = c.benchmark_group("get");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(4));
    for (n, path) in &files {
        let n = *n;
        {
            let raw = raw_file(&dir.path().join(format!("raw-plain-{n}.redb")), n, None);
            let mut pick = Picker::new();
            group.bench_with_input(BenchmarkId::new("raw-redb", n), &n, |b, &n| {
                b.iter(|| {
                    let txn = raw.begin_read().unwrap();
                    let t = txn.open_table(RAW).unwrap();
                    let v = t
                        .get(name(pick.next(n)).as_str())
                        .unwrap()
                        .unwrap()
                        .value()
                        .to_vec();
                    black_box(v)
                })
            });
        }
        {
            let raw = raw_file(
                &dir.path().join(format!("raw-sealed-{n}.redb")),
                n,
                Some(&cipher),
            );
            let mut pick = Picker::new();
            // The physical limit of a get: a point read in its own read transaction and one
            // ChaCha20-Poly1305 open of the value.
            group.bench_with_input(BenchmarkId::new("physical-limit", n), &n, |b, &n| {
                b.iter(|| {
                    let txn = raw.begin_read().unwrap();
                    let t = txn.open_table(RAW).unwrap();
                    let sealed = t.get(name(pick.next(n)).as_str()).unwrap().unwrap();
                    black_box(ring_open(&cipher, sealed.value()))
                })
            });
        }
        for (level, label) in [
            (AuditLevel::Off, "tresor-off"),
            (AuditLevel::Buffered, "tresor-buffered"),
            (AuditLevel::Durable, "tresor-durable"),
        ] {
            let vault = Vault::open(path, &key(), Options::new().read_audit(level)).unwrap();
            let mut pick = Picker::new();
            if level == AuditLevel::Durable {
                group.sample_size(10);
            }
            group.bench_with_input(BenchmarkId::new(label, n), &n, |b, &n| {
                b.iter(|| black_box(vault.get(&name(pick.next(n))).unwrap()))
            });
            group.sample_size(30);
        }
    }
    group.finish();

    // What a get costs in CPU on every thread of the process (the background commit of
    // buffered read records included), where the group above measures the caller's latency.
    let mut group = c.benchmark_group("get-cpu");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    if let Some((n, path)) = files.first() {
        for (level, label) in [
            (AuditLevel::Off, "tresor-off"),
            (AuditLevel::Buffered, "tresor-buffered"),
        ] {
            let vault = Vault::open(path, &key(), Options::new().read_audit(level)).unwrap();
            let mut pick = Picker::new();
            group.bench_with_input(BenchmarkId::new(label, n), n, |b, &n| {
                b.iter_custom(|iters| {
                    let start = ProcessTime::now();
                    for _ in 0..iters {
                        black_box(vault.get(&name(pick.next(n))).unwrap());
                    }
                    start.elapsed()
                })
            });
        }
    }
    group.finish();

    // The cost of a durable write as the vault grows.
    let mut group = c.benchmark_group("set-scaling");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for (n, path) in &files {
        let n = *n;
        let vault = Vault::open(path, &key(), Options::new()).unwrap();
        let mut pick = Picker(0x2545_f491_4f6c_dd1d);
        let v = value(7);
        group.bench_with_input(BenchmarkId::new("tresor", n), &n, |b, &n| {
            b.iter(|| black_box(vault.set(&name(pick.next(n)), &v).unwrap()))
        });
    }
    group.finish();
}

fn bench_set(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("set-durable");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(6));
    let raw = raw_file(&dir.path().join("raw-set.redb"), 1000, None);
    let v = value(1);
    let mut i = 0usize;
    group.bench_function("raw-redb", |b| {
        b.iter(|| {
            i += 1;
            let txn = raw.begin_write().unwrap();
            txn.open_table(RAW)
                .unwrap()
                .insert(name(i % 1000).as_str(), v.as_slice())
                .unwrap();
            txn.commit().unwrap();
        })
    });
    let vault = Vault::open(tresor_in(dir.path(), 1000), &key(), Options::new()).unwrap();
    let mut i = 0usize;
    group.bench_function("tresor", |b| {
        b.iter(|| {
            i += 1;
            black_box(vault.set(&name(i % 1000), &v).unwrap())
        })
    });
    group.finish();
}

fn bench_bulk(c: &mut Criterion) {
    let n = 100_000;
    let names: Vec<String> = (0..n).map(name).collect();
    let values: Vec<Vec<u8>> = (0..n).map(value).collect();
    let mut group = c.benchmark_group("bulk-100k");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("raw-redb", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let db = Database::create(dir.path().join("bulk.redb")).unwrap();
                (dir, db)
            },
            |(dir, db)| {
                let txn = db.begin_write().unwrap();
                {
                    let mut t = txn.open_table(RAW).unwrap();
                    for (k, v) in names.iter().zip(&values) {
                        t.insert(k.as_str(), v.as_slice()).unwrap();
                    }
                }
                txn.commit().unwrap();
                (dir, db)
            },
            BatchSize::PerIteration,
        )
    });
    // What an encrypted store must do at least: hash each name with a key, seal each value
    // (fresh random nonce), and insert the rows in key order in one transaction.
    group.bench_function("raw-redb-sealed-sorted", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let db = Database::create(dir.path().join("bulk.redb")).unwrap();
                (dir, db)
            },
            |(dir, db)| {
                sorted_sealed_insert(&db, &names, &values);
                (dir, db)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("tresor", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let vault =
                    Vault::create(dir.path().join("bulk.tresor"), &key(), Options::new()).unwrap();
                (dir, vault)
            },
            |(dir, vault)| {
                import(&vault, &names, &values);
                (dir, vault)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn bench_lists(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("list");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    let vault = Vault::open(tresor_in(dir.path(), 100_000), &key(), Options::new()).unwrap();
    group.bench_function("tresor-list-100k", |b| {
        b.iter(|| black_box(vault.list_all().unwrap().len()))
    });
    let raw = raw_file(&dir.path().join("raw-list.redb"), 100_000, None);
    group.bench_function("raw-redb-scan-100k", |b| {
        b.iter(|| {
            let txn = raw.begin_read().unwrap();
            let t = txn.open_table(RAW).unwrap();
            let names: Vec<String> = t
                .range::<&str>(..)
                .unwrap()
                .map(|r| r.unwrap().0.value().to_string())
                .collect();
            black_box(names.len())
        })
    });
    let many = Vault::create(dir.path().join("versions.tresor"), &key(), Options::new()).unwrap();
    let opts = SetOptions::new();
    let v = value(0);
    let items: Vec<(&str, &[u8], &SetOptions)> = (0..1000)
        .map(|_| ("rotating", v.as_slice(), &opts))
        .collect();
    many.set_many(items).unwrap();
    group.bench_function("tresor-list-versions-1000", |b| {
        b.iter(|| black_box(many.list_versions("rotating").unwrap().len()))
    });
    group.finish();
}

fn bench_open(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("open");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    let keyed = tresor_in(dir.path(), 1000);
    group.bench_function("tresor-open-key", |b| {
        b.iter(|| black_box(Vault::open(&keyed, &key(), Options::new()).unwrap()))
    });
    let pass = Credential::passphrase("correct horse battery staple");
    let pass_path = dir.path().join("pass.tresor");
    drop(Vault::create(&pass_path, &pass, Options::new()).unwrap());
    group.bench_function("tresor-open-passphrase-default-kdf", |b| {
        b.iter(|| black_box(Vault::open(&pass_path, &pass, Options::new()).unwrap()))
    });
    let raw_path = dir.path().join("raw-open.redb");
    drop(Database::create(&raw_path).unwrap());
    group.bench_function("raw-redb-open", |b| {
        b.iter(|| black_box(Database::open(&raw_path).unwrap()))
    });
    let mut i = 0u64;
    group.bench_function("tresor-create-key", |b| {
        b.iter(|| {
            i += 1;
            let p = dir.path().join(format!("create-{i}.tresor"));
            drop(Vault::create(&p, &key(), Options::new()).unwrap());
            std::fs::remove_file(p).unwrap();
        })
    });
    group.finish();
}

fn bench_maintenance(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("maintenance-10k");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    let path = tresor_in(dir.path(), 10_000);
    let vault = Vault::open(&path, &key(), Options::new().read_audit(AuditLevel::Off)).unwrap();
    group.bench_function("tresor-rotate-master-key", |b| {
        b.iter(|| vault.rotate_master_key(&[], |_| {}).unwrap())
    });
    group.bench_function("tresor-backup-secret", |b| {
        b.iter(|| black_box(vault.backup_secret(&name(4242)).unwrap()))
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_get,
    bench_set,
    bench_bulk,
    bench_lists,
    bench_open,
    bench_maintenance
);
criterion_main!(benches);
