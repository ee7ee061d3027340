//! Where the time of a buffered read goes: every get of a long run timed on its own, in a vault
//! opened with read audit `Off` and then `Buffered`, alternating. Prints, per run, the mean get,
//! the gets slower than 50 µs (a read that waited for something: the background commit of the
//! read records, the scheduler) and the mean of the others.
//!
//! `cargo bench --bench read_stalls` (`TRESOR_BENCH_SECRETS`, default 10,000; 409,600 gets per
//! run, three runs of each level; `TRESOR_BENCH_LEVEL=off` or `buffered` runs that level alone,
//! for a profiler).

use std::hint::black_box;
use std::time::{Duration, Instant};

use tresor::{AuditLevel, Credential, Options, SetOptions, Vault};

const GETS: usize = 100 * 4096;
const SLOW: Duration = Duration::from_micros(50);

fn name(i: usize) -> String {
    format!("secret-{i:07}")
}

fn main() {
    let n: usize = std::env::var("TRESOR_BENCH_SECRETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("stalls.tresor");
    let key = Credential::key([7u8; 32]);
    let names: Vec<String> = (0..n).map(name).collect();
    {
        let vault = Vault::create(&path, &key, Options::new()).expect("create");
        let opts = SetOptions::new();
        let value = [5u8; 256];
        vault
            .set_many(names.iter().map(|s| (s.as_str(), value.as_slice(), &opts)))
            .expect("fill");
    }
    println!("{n} secrets of 256 bytes; {GETS} random gets per run");
    println!("level      mean get   slow gets (> 50 µs)   their share per get   mean of the rest");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let levels = match std::env::var("TRESOR_BENCH_LEVEL").as_deref() {
        Ok("off") => vec![AuditLevel::Off],
        Ok("buffered") => vec![AuditLevel::Buffered],
        _ => vec![AuditLevel::Off, AuditLevel::Buffered],
    };
    for level in levels.repeat(3) {
        let vault = Vault::open(&path, &key, Options::new().read_audit(level)).expect("open");
        let (mut all, mut slow, mut slow_n) = (Duration::ZERO, Duration::ZERO, 0u32);
        for _ in 0..GETS {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let i = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize;
            let t = Instant::now();
            black_box(vault.get(&names[i]).expect("get"));
            let e = t.elapsed();
            all += e;
            if e > SLOW {
                slow += e;
                slow_n += 1;
            }
        }
        let per = |d: Duration, k: usize| d.as_nanos() as f64 / k.max(1) as f64;
        println!(
            "{:<9} {:>7.0} ns   {:>6} × {:>6.2} ms   {:>13.0} ns   {:>13.0} ns",
            format!("{level:?}"),
            per(all, GETS),
            slow_n,
            per(slow, slow_n as usize) / 1e6,
            per(slow, GETS),
            per(all - slow, GETS - slow_n as usize),
        );
    }
}
