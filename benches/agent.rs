//! One read four ways, in one run: `Vault::get` in the process that holds the vault, the same
//! get through the holder's socket (`tresor::agent::Client`), and a `tresor get` process per
//! call, once through the holder and once opening the file itself.
//!
//! `cargo bench --features agent --bench agent`. The process groups need the `tresor` binary:
//! `TRESOR_BIN=target/release/tresor` (built with `cargo build --release -p tresor-cli`);
//! without it they are skipped with a note. Vaults hold 1,000 secrets of 256 bytes; reads are
//! audited `buffered` on every path.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tresor::agent::{Client, Holder, HolderOptions};
use tresor::{AuditLevel, Credential, Options, Vault};

const SECRETS: usize = 1000;

fn fill(path: &Path, key: &Credential) -> Vault {
    let vault =
        Vault::create(path, key, Options::new().read_audit(AuditLevel::Buffered)).expect("create");
    let value = vec![7u8; 256];
    let names: Vec<String> = (0..SECRETS).map(|i| format!("secret-{i:04}")).collect();
    let plain = tresor::SetOptions::new();
    vault
        .set_many(names.iter().map(|n| (n.as_str(), value.as_slice(), &plain)))
        .expect("fill");
    vault
}

fn tresor_get(bin: &Path, vault: &Path, key: &Path, name: &str) {
    let out = Command::new(bin)
        .args(["--audit-reads", "buffered", "--no-witness", "--vault"])
        .arg(vault)
        .arg("--key-file")
        .arg(key)
        .args(["get", name])
        .output()
        .expect("run tresor");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    black_box(out.stdout);
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_bytes = [42u8; 32];
    let key = Credential::key(key_bytes);
    let key_file = dir.path().join("bench.key");
    std::fs::write(&key_file, key_bytes).expect("key file");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
            .expect("key file mode");
    }
    // The held vault, and a second one that no process holds.
    let held_path = dir.path().join("held.tresor");
    let vault = Arc::new(fill(&held_path, &key));
    let free_path = dir.path().join("free.tresor");
    drop(fill(&free_path, &key));

    let socket = tresor::agent::socket_path(&held_path).expect("socket path");
    let holder = Holder::bind(&socket, vault.clone(), HolderOptions::new()).expect("bind");
    let handle = holder.handle();
    let serving = std::thread::spawn(move || holder.serve());
    let client = Client::connect(&socket).expect("connect");

    let mut g = c.benchmark_group("agent");
    g.measurement_time(Duration::from_secs(5));
    let mut i = 0usize;
    g.bench_function("get/direct", |b| {
        b.iter(|| {
            i = (i + 1) % SECRETS;
            black_box(vault.get(&format!("secret-{i:04}")).expect("get"));
        })
    });
    g.bench_function("get/through_agent", |b| {
        b.iter(|| {
            i = (i + 1) % SECRETS;
            black_box(client.get(&format!("secret-{i:04}")).expect("get"));
        })
    });
    match std::env::var_os("TRESOR_BIN").map(PathBuf::from) {
        Some(bin) => {
            g.sample_size(20);
            g.bench_function("process/tresor_get_through_agent", |b| {
                b.iter(|| {
                    i = (i + 1) % SECRETS;
                    tresor_get(&bin, &held_path, &key_file, &format!("secret-{i:04}"));
                })
            });
            g.bench_function("process/tresor_get_direct", |b| {
                b.iter(|| {
                    i = (i + 1) % SECRETS;
                    tresor_get(&bin, &free_path, &key_file, &format!("secret-{i:04}"));
                })
            });
        }
        None => eprintln!(
            "note: TRESOR_BIN is not set: the `tresor get` process groups are skipped \
             (TRESOR_BIN=target/release/tresor)"
        ),
    }
    g.finish();
    handle.stop();
    let _ = serving.join();
}

criterion_group!(benches, bench);
criterion_main!(benches);
