//! I/O faults injected through redb's `StorageBackend`: for every public operation that
//! writes, the N-th `write`, `set_len` or `sync_data` fails (once, or for ever after), for N
//! from 1 until the operation completes without reaching the fault. Each time:
//!
//! - the call returns an error, never panics;
//! - reopened from the bytes the backend holds, the vault is exactly as before the operation
//!   or exactly as after it (compared through the public API: values, versions, properties,
//!   deleted secrets, slots, settings, audit records), its audit chain verifies and
//!   `check_integrity` passes;
//! - a power cut at that moment (writes since the last `sync_data` kept, lost or torn at
//!   512-byte sectors, which redb's documented assumptions allow) also leaves "before" or
//!   "after";
//! - a power cut right after a call returned `Ok` leaves exactly "after" (acknowledged means
//!   durable).
//!
//! `TRESOR_FAULT_SEED` replays the random power-cut images; `TRESOR_FAULT_IMAGES` sets how many
//! images each fault point tries (default 3).

mod harness;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use harness::{
    FaultMode, FaultOn, MemFile, Rng, VaultState, clock, count_from_env, key, quiet, seed_from_env,
    snapshot,
};
use secrecy::SecretString;
use tresor::{
    AuditLevel, Credential, KdfParams, Maintenance, ManualClock, Options, PropertiesUpdate, Role,
    SetOptions, SlotSpec, Vault,
};

/// What the operations need from the base vault.
struct Fixture {
    base: Vec<u8>,
    blob: Vec<u8>,
    pass_slot: u32,
    ci_slot: u32,
}

const PASS: &str = "correct horse battery staple";

fn passphrase() -> Credential {
    Credential::passphrase(PASS)
}

/// A vault with live secrets (several versions, a disabled one), a deleted secret, a purged
/// secret whose backup blob is kept, and three slots (two keys, one passphrase).
fn fixture() -> Fixture {
    let file = MemFile::new();
    let c = clock();
    let v = Vault::create_with_backend(
        file.backend(),
        &key(1),
        Options::new().clock(c.clone()).retention_days(7),
    )
    .unwrap();
    let pass_slot = v
        .add_slot(&SlotSpec::new(passphrase(), "pp").kdf(KdfParams::MINIMUM))
        .unwrap()
        .id;
    let ci_slot = v
        .add_slot(&SlotSpec::new(key(2), "ci").role(Role::Writer))
        .unwrap()
        .id;
    v.set("alpha", "alpha-1").unwrap();
    v.set_with(
        "alpha",
        "alpha-2",
        &SetOptions::new()
            .content_type("text/plain")
            .tag("env", "dev"),
    )
    .unwrap();
    v.set("beta", "beta-1").unwrap();
    v.set_with("beta", "beta-2", &SetOptions::new().disabled(true))
        .unwrap();
    v.set("gamma", "gamma-1").unwrap();
    v.delete("gamma").unwrap();
    v.set("delta", "delta-1").unwrap();
    v.set("epsilon", "epsilon-1").unwrap();
    v.set("epsilon", "epsilon-2").unwrap();
    let blob = v.backup_secret("epsilon").unwrap();
    v.delete("epsilon").unwrap();
    v.purge("epsilon").unwrap();
    v.close().unwrap();
    Fixture {
        base: file.bytes(),
        blob,
        pass_slot,
        ci_slot,
    }
}

type OpFn = fn(&Vault, &Fixture, &ManualClock) -> tresor::Result<()>;

struct Case {
    name: &'static str,
    /// The read audit level the operation's handle is opened with.
    level: AuditLevel,
    /// Runs before the fault is armed (reads whose records a later flush commits, clock moves).
    prepare: Option<OpFn>,
    op: OpFn,
}

fn cases() -> Vec<Case> {
    fn case(name: &'static str, op: OpFn) -> Case {
        Case {
            name,
            level: AuditLevel::Buffered,
            prepare: None,
            op,
        }
    }
    vec![
        case("set (new version)", |v, _, _| {
            v.set("alpha", "alpha-3").map(drop)
        }),
        case("set (new secret)", |v, _, _| {
            v.set("zeta", "zeta-1").map(drop)
        }),
        case("set (pruning to 1 version)", |v, _, _| {
            v.set_with("alpha", "alpha-3", &SetOptions::new().max_versions(1))
                .map(drop)
        }),
        case("set_many", |v, _, _| {
            let o = SetOptions::new();
            v.set_many([
                ("alpha", b"alpha-3".as_slice(), &o),
                ("eta", b"eta-1".as_slice(), &o),
                ("theta", b"theta-1".as_slice(), &o),
            ])
            .map(drop)
        }),
        case("update_properties (current)", |v, _, _| {
            v.update_properties("alpha", None, &PropertiesUpdate::new().enabled(false))
                .map(drop)
        }),
        case("update_properties (older version)", |v, _, _| {
            let versions = v.list_versions("alpha")?;
            let oldest = versions.last().map(|p| p.version);
            v.update_properties(
                "alpha",
                oldest.as_ref(),
                &PropertiesUpdate::new().content_type(Some("application/x-old".into())),
            )
            .map(drop)
        }),
        case("delete", |v, _, _| v.delete("delta").map(drop)),
        case("recover", |v, _, _| v.recover("gamma").map(drop)),
        case("purge", |v, _, _| v.purge("gamma")),
        Case {
            name: "purge_expired (after the retention period)",
            level: AuditLevel::Buffered,
            prepare: Some(|_, _, c| {
                c.advance(Duration::from_secs(8 * 86_400));
                Ok(())
            }),
            op: |v, _, _| v.purge_expired().map(drop),
        },
        case("restore_secret", |v, f, _| {
            v.restore_secret(&f.blob).map(drop)
        }),
        case("add_slot", |v, _, _| {
            v.add_slot(&SlotSpec::new(key(3), "reader").role(Role::Reader))
                .map(drop)
        }),
        case("remove_slot", |v, f, _| v.remove_slot(f.ci_slot)),
        case("change_passphrase", |v, f, _| {
            let kdf = KdfParams {
                iterations: 3,
                ..KdfParams::MINIMUM
            };
            v.change_passphrase(f.pass_slot, &SecretString::from("new passphrase"), kdf)
        }),
        case("enable_purge_protection", |v, _, _| {
            v.enable_purge_protection()
        }),
        case("set_max_versions", |v, _, _| v.set_max_versions(Some(1))),
        case("rotate_master_key", |v, _, _| {
            v.rotate_master_key(&[passphrase(), key(2)], |_| {})
        }),
        Case {
            name: "get (Durable read audit)",
            level: AuditLevel::Durable,
            prepare: None,
            op: |v, _, _| v.get("alpha").map(drop),
        },
        Case {
            name: "flush (buffered read records)",
            level: AuditLevel::Buffered,
            prepare: Some(|v, _, _| {
                v.get("alpha")?;
                v.list_all()?;
                Ok(())
            }),
            op: |v, _, _| v.flush(),
        },
        Case {
            name: "compact (after a purge)",
            level: AuditLevel::Buffered,
            prepare: Some(|v, _, _| v.purge("gamma")),
            op: |v, _, _| v.compact().map(drop),
        },
    ]
}

/// Opens `bytes` as a vault and reads everything; checks the audit chain and integrity.
fn inspect(bytes: Vec<u8>) -> Result<VaultState, String> {
    let file = MemFile::from_bytes(bytes);
    let c = clock();
    let outcome = catch_unwind(AssertUnwindSafe(|| -> tresor::Result<VaultState> {
        let v = Vault::open_with_backend(file.backend(), &key(1), quiet(&c))?;
        let s = snapshot(&v)?;
        v.verify_audit()?;
        v.check_integrity()?;
        Ok(s)
    }));
    match outcome {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("reopen failed: {e}")),
        Err(_) => Err("reopen panicked".to_string()),
    }
}

/// Runs `case` on a fresh copy of the base. Returns the handle's outcome and the file.
fn run(f: &Fixture, case: &Case, fault: Option<(FaultOn, u64, FaultMode)>) -> Run {
    let file = MemFile::from_bytes(f.base.clone());
    let c = clock();
    let v = Vault::open_with_backend(
        file.backend(),
        &key(1),
        Options::new().clock(c.clone()).read_audit(case.level),
    )
    .expect("the base vault opens");
    if let Some(prepare) = case.prepare {
        prepare(&v, f, &c).expect("preparation succeeds");
    }
    // The bytes just before the operation (the handle is still open: redb repairs on reopen).
    let pre = file.bytes();
    if let Some((on, n, mode)) = fault {
        file.arm(on, n, mode);
    }
    let result = catch_unwind(AssertUnwindSafe(|| (case.op)(&v, f, &c)));
    Run {
        file,
        result,
        vault: v,
        pre,
    }
}

struct Run {
    file: MemFile,
    result: std::thread::Result<tresor::Result<()>>,
    vault: Vault,
    pre: Vec<u8>,
}

#[derive(Default)]
struct Tally {
    runs: u64,
    injected: u64,
    errors: BTreeMap<&'static str, u64>,
    before: u64,
    after: u64,
    power_cuts: u64,
}

#[test]
fn every_write_operation_survives_every_io_fault() {
    let seed = seed_from_env("TRESOR_FAULT_SEED");
    let images = count_from_env("TRESOR_FAULT_IMAGES", 3);
    println!("io_faults: seed {seed:#x} (replay with TRESOR_FAULT_SEED={seed:#x})");
    let mut rng = Rng::new(seed);
    let f = fixture();
    let mut failures = Vec::new();
    let mut totals = Tally::default();

    for case in cases() {
        let mut t = Tally::default();
        // The reference run: no fault; its result is "after".
        let Run {
            file,
            result: r,
            vault: v,
            pre,
        } = run(&f, &case, None);
        let before = inspect(pre)
            .unwrap_or_else(|e| panic!("{}: unsound before the operation: {e}", case.name));
        match r {
            Ok(Ok(())) => {}
            other => panic!("{}: fails without a fault: {other:?}", case.name),
        }
        // A power cut right after the call returned: everything acknowledged is there.
        let cut_images: Vec<Vec<u8>> = (0..images.max(1))
            .map(|_| file.crash_image(&mut rng))
            .collect();
        drop(v);
        let after = inspect(file.bytes())
            .unwrap_or_else(|e| panic!("{}: unsound after a clean run: {e}", case.name));
        assert_ne!(
            after, before,
            "{}: the operation changed nothing",
            case.name
        );
        for img in cut_images {
            t.power_cuts += 1;
            match inspect(img) {
                Ok(s) if s == after => {}
                Ok(_) => failures.push(format!(
                    "{}: power cut after Ok lost the acknowledged operation",
                    case.name
                )),
                Err(e) => failures.push(format!("{}: power cut after Ok: {e}", case.name)),
            }
        }

        for mode in [FaultMode::Once, FaultMode::Forever] {
            for on in FaultOn::ALL {
                for n in 1.. {
                    let Run {
                        file,
                        result: r,
                        vault: v,
                        ..
                    } = run(&f, &case, Some((on, n, mode)));
                    let fired = file.fired();
                    let what = format!("{} [{mode:?} fault on {on:?} #{n}]", case.name);
                    t.runs += 1;
                    let images: Vec<Vec<u8>> = if mode == FaultMode::Forever && fired {
                        (0..images).map(|_| file.crash_image(&mut rng)).collect()
                    } else {
                        Vec::new()
                    };
                    match &r {
                        Err(_) => failures.push(format!("{what}: panicked")),
                        Ok(Ok(())) if fired => {
                            failures.push(format!("{what}: the fault was hidden: Ok returned"))
                        }
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            *t.errors.entry(e.code()).or_default() += 1;
                            if !fired {
                                failures.push(format!("{what}: failed without a fault: {e}"));
                            }
                        }
                    }
                    drop(v);
                    t.injected += file.injected();
                    match inspect(file.bytes()) {
                        Ok(s) if s == before => t.before += 1,
                        Ok(s) if s == after => t.after += 1,
                        Ok(s) => failures.push(format!(
                            "{what}: neither before nor after: {}",
                            diff(&before, &after, &s)
                        )),
                        Err(e) => failures.push(format!("{what}: {e}")),
                    }
                    for img in images {
                        t.power_cuts += 1;
                        match inspect(img) {
                            Ok(s) if s == before || s == after => {}
                            Ok(s) => failures.push(format!(
                                "{what}, power cut: neither before nor after: {}",
                                diff(&before, &after, &s)
                            )),
                            Err(e) => failures.push(format!("{what}, power cut: {e}")),
                        }
                    }
                    if !fired {
                        break;
                    }
                }
            }
        }
        println!(
            "io_faults: {:<44} {:>4} runs, {:>4} faults injected, {:>4} power cuts; \
             reopened as before {:>4}, as after {:>4}; errors {:?}",
            case.name, t.runs, t.injected, t.power_cuts, t.before, t.after, t.errors
        );
        totals.runs += t.runs;
        totals.injected += t.injected;
        totals.power_cuts += t.power_cuts;
        totals.before += t.before;
        totals.after += t.after;
    }
    println!(
        "io_faults: total {} runs, {} faults injected, {} power-cut images, {} reopened as \
         before, {} as after, {} failures",
        totals.runs,
        totals.injected,
        totals.power_cuts,
        totals.before,
        totals.after,
        failures.len()
    );
    for f in &failures {
        println!("FAILURE: {f}");
    }
    assert!(
        failures.is_empty(),
        "{} failures (see above)",
        failures.len()
    );
}

/// A short description of how `got` differs from both `before` and `after`.
fn diff(before: &VaultState, after: &VaultState, got: &VaultState) -> String {
    let mut out = Vec::new();
    for (label, other) in [("before", before), ("after", after)] {
        let mut d = Vec::new();
        if got.live != other.live {
            d.push("live secrets");
        }
        if got.deleted != other.deleted {
            d.push("deleted secrets");
        }
        if got.slots != other.slots {
            d.push("slots");
        }
        if (got.purge_protection, got.max_versions) != (other.purge_protection, other.max_versions)
        {
            d.push("settings");
        }
        if got.audit != other.audit {
            d.push("audit");
        }
        out.push(format!("vs {label}: {}", d.join(", ")));
    }
    out.join("; ")
}

/// The passphrase slot opens "before" with the old passphrase and "after" with the new one;
/// whichever state a fault left, exactly one of them opens it.
#[test]
fn a_failed_passphrase_change_leaves_one_working_passphrase() {
    let f = fixture();
    let case = cases()
        .into_iter()
        .find(|c| c.name == "change_passphrase")
        .unwrap();
    let mut checked = 0;
    for on in FaultOn::ALL {
        for n in 1.. {
            let Run {
                file,
                result,
                vault,
                ..
            } = run(&f, &case, Some((on, n, FaultMode::Once)));
            let fired = file.fired();
            assert!(result.is_ok(), "panicked");
            drop(vault);
            let bytes = file.bytes();
            let open_with = |p: &str| {
                Vault::open_with_backend(
                    MemFile::from_bytes(bytes.clone()).backend(),
                    &Credential::passphrase(p),
                    quiet(&clock()),
                )
                .is_ok()
            };
            let old = open_with(PASS);
            let new = open_with("new passphrase");
            assert!(
                old != new,
                "{on:?} #{n}: old passphrase opens: {old}, new opens: {new}"
            );
            checked += 1;
            if !fired {
                break;
            }
        }
    }
    println!("io_faults: passphrase change checked at {checked} fault points");
}

/// A compaction or a rotation cut short by a failed write (the disk dies during it) is reported
/// by the next open (`unfinished_maintenance`), and a later compaction clears the report. A
/// compaction that ran to the end leaves none.
#[test]
fn maintenance_cut_short_is_reported_at_the_next_open() {
    let c = clock();
    let base = MemFile::new();
    let v = Vault::create_with_backend(base.backend(), &key(1), quiet(&c)).unwrap();
    let opts = SetOptions::new();
    let value = [7u8; 200];
    let names: Vec<String> = (0..300).map(|i| format!("s{i}")).collect();
    v.set_many(names.iter().map(|n| (n.as_str(), value.as_slice(), &opts)))
        .unwrap();
    v.compact().unwrap();
    assert_eq!(v.unfinished_maintenance().unwrap(), None);
    drop(v);
    let bytes = base.bytes();

    let mut reported = [0usize; 2];
    for (i, rotate) in [false, true].into_iter().enumerate() {
        for n in 1..40 {
            let file = MemFile::from_bytes(bytes.clone());
            let v = Vault::open_with_backend(file.backend(), &key(1), quiet(&c)).unwrap();
            file.arm(FaultOn::Sync, n, FaultMode::Forever);
            let r = if rotate {
                v.rotate_master_key(&[], |_| {})
            } else {
                v.compact().map(drop)
            };
            drop(v);
            let fired = file.fired();
            file.disarm();
            let after = MemFile::from_bytes(file.bytes());
            let v = Vault::open_with_backend(after.backend(), &key(1), quiet(&c)).unwrap();
            let mark = v.unfinished_maintenance().unwrap();
            if !fired {
                assert!(r.is_ok());
                assert_eq!(mark, None, "a finished run leaves no mark");
                break;
            }
            if let Some(m) = mark {
                let want = if rotate {
                    Maintenance::Rotation
                } else {
                    Maintenance::Compaction
                };
                assert_eq!(m, want);
                reported[i] += 1;
                v.compact().unwrap();
                assert_eq!(v.unfinished_maintenance().unwrap(), None);
            }
        }
    }
    assert!(reported[0] > 0, "no compaction cut short was reported");
    assert!(reported[1] > 0, "no rotation cut short was reported");
}
