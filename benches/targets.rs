//! Every speed target of tresor against its physical limit, measured in interleaved rounds with
//! the ratios paired per round, then the median of each: on a machine whose speed drifts by a
//! quarter within minutes (as this one does), two criterion groups run one after the other
//! compare two different machines, while two measurements in the same round compare the work.
//!
//! - get: a raw redb read of the sealed value in its own read transaction plus one ring
//!   ChaCha20-Poly1305 open (the physical limit), tresor with read audit `Off`, and tresor with
//!   `Buffered` (on a copy of the same file), at each size of `TRESOR_BENCH_SIZES` (default
//!   `10000,100000,1000000`). Within a round the three take turns every 1,000 gets; every size
//!   takes its turn in each round, so the 1M / 10k ratios are paired by round.
//! - durable set: a raw redb one-row `Durability::Immediate` commit against a tresor `set`.
//! - bulk import of 100k: the raw insert of hash-keyed rows sealed with a fresh nonce, in key
//!   order, in one transaction, against one tresor `set_many`.
//!
//! `cargo bench --bench targets` prints a markdown table (`TRESOR_BENCH_ROUNDS`, default 9).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use redb::{Database, ReadableDatabase};
use ring::aead::LessSafeKey;
use tresor::{AuditLevel, Options, Vault};

mod common;

use common::{
    Picker, RAW, import, key, name, raw_file, ring_key, ring_open, sorted_sealed_insert,
    tresor_file, value,
};

/// Gets per handle per round (about a quarter of a second each).
const GETS: usize = 100_000;
/// Gets in one turn of a handle: the three ways alternate every few milliseconds.
const SLICE: usize = 1_000;
/// Durable writes per side per round.
const WRITES: usize = 40;
const BULK: usize = 100_000;

fn env_list(var: &str, default: &str) -> Vec<usize> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().parse().expect("comma-separated numbers"))
        .collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

fn range(xs: &[f64]) -> (f64, f64) {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// Nanoseconds per call of `f` over `k` calls.
fn per_call(k: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..k {
        f();
    }
    t.elapsed().as_nanos() as f64 / k as f64
}

/// One size's three ways of reading, each with its own random sequence of names.
struct Readers {
    n: usize,
    names: Vec<String>,
    limit: Database,
    off: Vault,
    buffered: Vault,
    cipher: LessSafeKey,
    picks: [Picker; 3],
}

impl Readers {
    fn new(dir: &Path, n: usize) -> Self {
        let path = dir.join(format!("off-{n}.tresor"));
        tresor_file(&path, n);
        let copy = dir.join(format!("buffered-{n}.tresor"));
        std::fs::copy(&path, &copy).unwrap();
        let cipher = ring_key();
        let limit = raw_file(&dir.join(format!("limit-{n}.redb")), n, Some(&cipher));
        let open =
            |p: &PathBuf, level| Vault::open(p, &key(), Options::new().read_audit(level)).unwrap();
        Readers {
            n,
            names: (0..n).map(name).collect(),
            limit,
            off: open(&path, AuditLevel::Off),
            buffered: open(&copy, AuditLevel::Buffered),
            cipher,
            picks: [Picker::new(), Picker::new(), Picker::new()],
        }
    }

    /// `count` gets by way `w` (0: limit, 1: Off, 2: Buffered); the time they took in ns.
    fn gets(&mut self, w: usize, count: usize) -> f64 {
        let (n, names) = (self.n, &self.names);
        let pick = &mut self.picks[w];
        let t = Instant::now();
        match w {
            0 => {
                let (db, c) = (&self.limit, &self.cipher);
                for _ in 0..count {
                    let txn = db.begin_read().unwrap();
                    let t = txn.open_table(RAW).unwrap();
                    let sealed = t.get(names[pick.next(n)].as_str()).unwrap().unwrap();
                    black_box(ring_open(c, sealed.value()));
                }
            }
            1 => {
                for _ in 0..count {
                    black_box(self.off.get(&names[pick.next(n)]).unwrap());
                }
            }
            _ => {
                for _ in 0..count {
                    black_box(self.buffered.get(&names[pick.next(n)]).unwrap());
                }
            }
        }
        t.elapsed().as_nanos() as f64
    }

    /// One round: [`GETS`] gets by each way, in slices of [`SLICE`] taking turns, so that a
    /// change in the machine's speed falls on the three alike. ns per get of each way.
    fn round(&mut self) -> [f64; 3] {
        let mut total = [0.0; 3];
        for slice in 0..GETS / SLICE {
            for k in 0..3 {
                let w = (slice + k) % 3;
                total[w] += self.gets(w, SLICE);
            }
        }
        total.map(|t| t / GETS as f64)
    }
}

/// How a row compares tresor with its baseline.
#[derive(Clone, Copy, PartialEq)]
enum Compare {
    /// tresor / baseline.
    Ratio,
    /// tresor − baseline, in µs.
    Difference,
}

struct Row {
    work: String,
    compare: Compare,
    tresor: Vec<f64>,
    base: Vec<f64>,
    /// Nanoseconds per unit shown: 1e3 (µs) or 1e6 (ms).
    scale: f64,
    target: &'static str,
    limit: Option<f64>,
}

impl Row {
    fn print(&self) {
        let paired: Vec<f64> = self
            .tresor
            .iter()
            .zip(&self.base)
            .map(|(t, b)| match self.compare {
                Compare::Ratio => t / b,
                Compare::Difference => (t - b) / 1e3,
            })
            .collect();
        let (lo, hi) = range(&paired);
        let m = median(paired);
        let met = match self.limit {
            Some(l) if m <= l => "yes",
            Some(_) => "no",
            None => "—",
        };
        let unit = if self.scale == 1e6 { "ms" } else { "µs" };
        let (m, lo, hi) = match self.compare {
            Compare::Ratio => (format!("{m:.2}×"), format!("{lo:.2}"), format!("{hi:.2}")),
            Compare::Difference => (
                format!("{m:+.2} µs"),
                format!("{lo:+.2}"),
                format!("{hi:+.2}"),
            ),
        };
        println!(
            "| {} | {:.2} {unit} | {:.2} {unit} | {m} | {lo}–{hi} | {} | {met} |",
            self.work,
            median(self.tresor.clone()) / self.scale,
            median(self.base.clone()) / self.scale,
            self.target,
        );
    }
}

fn main() {
    let rounds = env_list("TRESOR_BENCH_ROUNDS", "9")[0];
    let sizes = common::sizes();
    let dir = tempfile::tempdir().unwrap();
    eprintln!("building vaults of {sizes:?} secrets …");
    let mut readers: Vec<Readers> = sizes.iter().map(|&n| Readers::new(dir.path(), n)).collect();
    // Warm every handle once (page cache, redb's cache) before the first round counts.
    for r in &mut readers {
        r.round();
    }
    // get[size][way] = one figure per round.
    let mut get = vec![[vec![], vec![], vec![]]; readers.len()];
    for round in 0..rounds {
        eprintln!("get, round {}/{rounds}", round + 1);
        for (s, r) in readers.iter_mut().enumerate() {
            for (w, ns) in r.round().into_iter().enumerate() {
                get[s][w].push(ns);
            }
        }
    }
    drop(readers);

    // Durable writes: the two sides alternate within each round.
    let raw = raw_file(&dir.path().join("set.redb"), 1000, None);
    let set_path = dir.path().join("set.tresor");
    tresor_file(&set_path, 1000);
    let vault = Vault::open(&set_path, &key(), Options::new()).unwrap();
    let v = value(1);
    let names: Vec<String> = (0..1000).map(name).collect();
    let (mut raw_set, mut tresor_set) = (vec![], vec![]);
    let mut i = 0usize;
    for round in 0..rounds {
        eprintln!("durable set, round {}/{rounds}", round + 1);
        let mut raw_side = || {
            per_call(WRITES, || {
                i += 1;
                let txn = raw.begin_write().unwrap();
                txn.open_table(RAW)
                    .unwrap()
                    .insert(names[i % 1000].as_str(), v.as_slice())
                    .unwrap();
                txn.commit().unwrap();
            })
        };
        let r = raw_side();
        let t = per_call(WRITES, || {
            i += 1;
            black_box(vault.set(&names[i % 1000], &v).unwrap());
        });
        raw_set.push(r);
        tresor_set.push(t);
    }
    drop(vault);

    // Bulk import of 100k into a new file, both sides in each round.
    let bulk_names: Vec<String> = (0..BULK).map(name).collect();
    let bulk_values: Vec<Vec<u8>> = (0..BULK).map(value).collect();
    let (mut raw_bulk, mut tresor_bulk) = (vec![], vec![]);
    let bulk_rounds = rounds.div_ceil(2).max(3);
    for round in 0..bulk_rounds {
        eprintln!("bulk import, round {}/{bulk_rounds}", round + 1);
        let d = tempfile::tempdir_in(dir.path()).unwrap();
        let db = Database::create(d.path().join("bulk.redb")).unwrap();
        let t = Instant::now();
        sorted_sealed_insert(&db, &bulk_names, &bulk_values);
        raw_bulk.push(t.elapsed().as_nanos() as f64);
        drop(db);

        let vault = Vault::create(d.path().join("bulk.tresor"), &key(), Options::new()).unwrap();
        let t = Instant::now();
        import(&vault, &bulk_names, &bulk_values);
        tresor_bulk.push(t.elapsed().as_nanos() as f64);
    }

    println!(
        "{rounds} interleaved rounds ({GETS} gets per handle, {WRITES} durable writes per side, \
         {bulk_rounds} rounds of the 100k import); medians, ratios paired per round"
    );
    println!();
    println!("| work | tresor | baseline | ratio (median) | range over rounds | target | met |");
    println!("|---|---|---|---|---|---|---|");
    for (s, &n) in sizes.iter().enumerate() {
        let [limit, off, buffered] = &get[s];
        Row {
            work: format!("get Off / physical limit, {n}"),
            compare: Compare::Ratio,
            tresor: off.clone(),
            base: limit.clone(),
            scale: 1e3,
            target: "≤ 1.5×",
            limit: Some(1.5),
        }
        .print();
        Row {
            work: format!("get Buffered − get Off, {n}"),
            compare: Compare::Difference,
            tresor: buffered.clone(),
            base: off.clone(),
            scale: 1e3,
            target: "≤ +0.30 µs",
            limit: Some(0.30),
        }
        .print();
    }
    if let (Some(first), Some(last)) = (get.first(), get.last())
        && sizes.len() > 1
    {
        let (small, large) = (sizes[0], sizes[sizes.len() - 1]);
        for (w, label) in [(1, "get Off"), (2, "get Buffered"), (0, "physical limit")] {
            Row {
                work: format!("{label} at {large} / at {small}"),
                compare: Compare::Ratio,
                tresor: last[w].clone(),
                base: first[w].clone(),
                scale: 1e3,
                target: if w == 0 { "(reference)" } else { "≤ 1.3×" },
                limit: if w == 0 { None } else { Some(1.3) },
            }
            .print();
        }
    }
    Row {
        work: "durable set / raw redb one-row Immediate commit".into(),
        compare: Compare::Ratio,
        tresor: tresor_set.clone(),
        base: raw_set.clone(),
        scale: 1e3,
        target: "≤ 1.4×",
        limit: Some(1.4),
    }
    .print();
    Row {
        work: "bulk import 100k / raw sorted sealed insert".into(),
        compare: Compare::Ratio,
        tresor: tresor_bulk,
        base: raw_bulk,
        scale: 1e6,
        target: "≤ 1.5×",
        limit: Some(1.5),
    }
    .print();
}
