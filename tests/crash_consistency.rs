//! Process crashes: a child process writes to a vault file and is killed with SIGKILL at random
//! moments (while starting and opening/repairing the file, between and inside writes, inside
//! `rotate_master_key`); after each kill the file is reopened and:
//!
//! - every write the child acknowledged (printed after the call returned) is there, and at most
//!   the one in flight is extra: the vault equals the model of acknowledged writes, or that model
//!   plus the in-flight operation;
//! - the audit records of the child's acknowledged writes (and of its reads, when it opened with
//!   `AuditLevel::Durable`) are there, in order, and at most the in-flight operation's are extra;
//! - `verify_audit()` and `check_integrity()` pass;
//! - the rollback witness the children keep never refuses the next open (it is written after
//!   each commit, so a kill leaves it behind the file, never ahead of it).
//!
//! The child is this test binary itself, re-run with `TRESOR_CRASH_CHILD` set (so a clean
//! `cargo test` builds everything it needs). Knobs: `TRESOR_CRASH_CYCLES` (default 300; the soak
//! script runs 10,000), `TRESOR_CRASH_SEED` (replay a run: the seed is printed first).
//!
//! Verification reads a copy of the file through an in-memory backend, so that the file the
//! next child opens is still the crashed one and every child repairs it (kills land in repairs).

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::{MemFile, Rng, count_from_env, key, seed_from_env, snapshot};
use tresor::{
    AuditLevel, Error, FileWitness, Options, PropertiesUpdate, Role, SetOptions, SlotSpec, Vault,
};

const CHILD_ENV: &str = "TRESOR_CRASH_CHILD";
/// Cycles on one vault file before starting a fresh one (keeps the audit log, and so the cost of
/// verifying and rotating it, bounded in long runs).
const CYCLES_PER_FILE: u64 = 100;
const NAMES: usize = 10;
const SLOT_KEYS: std::ops::RangeInclusive<u8> = 2..=5;

fn name(i: usize) -> String {
    format!("s{i}")
}

// ---------------------------------------------------------------------------------------------
// The child.

/// Not a test on its own: the body of the child process (see the module docs).
#[test]
#[ignore = "the child process of the crash test; it runs only when TRESOR_CRASH_CHILD is set"]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let cycle: u64 = std::env::var("TRESOR_CRASH_CHILD_CYCLE")
        .unwrap()
        .parse()
        .unwrap();
    let seed: u64 = std::env::var("TRESOR_CRASH_CHILD_SEED")
        .unwrap()
        .parse()
        .unwrap();
    let durable = std::env::var("TRESOR_CRASH_CHILD_DURABLE").is_ok();
    child(Path::new(&path), cycle, seed, durable);
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@ {line}").unwrap();
    out.flush().unwrap();
}

/// Writes until killed (or until 3,000 operations): each operation is announced with `begin`
/// and acknowledged with `ack` only after it returned.
fn child(path: &Path, cycle: u64, seed: u64, durable: bool) {
    let mut rng = Rng::new(seed);
    say("open");
    let level = if durable {
        AuditLevel::Durable
    } else {
        AuditLevel::Buffered
    };
    // Every child keeps a rollback witness beside the file: it is written after each commit
    // (and around rotations), so a kill between a commit and its witness update must never
    // make the next child's open fail.
    let witness = FileWitness::new(path.with_extension("witness"));
    let v = Vault::open(
        path,
        &key(1),
        Options::new()
            .read_audit(level)
            .actor(format!("c{cycle}"))
            .witness(witness),
    )
    .unwrap_or_else(|e| panic!("child: open failed: {e}"));
    say("opened");
    let mut live: BTreeSet<String> = v.list_all().unwrap().into_iter().map(|p| p.name).collect();
    let mut deleted: BTreeSet<String> = v
        .list_deleted(None, 1000)
        .unwrap()
        .items
        .into_iter()
        .map(|d| d.properties.name)
        .collect();
    let mut slots: BTreeMap<String, u32> = v
        .slots()
        .unwrap()
        .into_iter()
        .map(|s| (s.label, s.id))
        .collect();
    let all_keys: Vec<_> = SLOT_KEYS.map(key).collect();
    for i in 0..3000u64 {
        let value = format!("v{cycle}x{i}");
        let pick = |rng: &mut Rng, set: &BTreeSet<String>| -> Option<String> {
            if set.is_empty() {
                return None;
            }
            set.iter()
                .nth(rng.below(set.len() as u64) as usize)
                .cloned()
        };
        let roll = rng.below(100);
        let n = name(rng.below(NAMES as u64) as usize);
        let op = if roll < 35 {
            if deleted.contains(&n) {
                continue;
            }
            format!("set {n} {value}")
        } else if roll < 40 {
            let a = name(rng.below(NAMES as u64) as usize);
            let b = name(rng.below(NAMES as u64) as usize);
            if a == b || deleted.contains(&a) || deleted.contains(&b) {
                continue;
            }
            format!("setmany {a} {value}a {b} {value}b")
        } else if roll < 48 {
            let Some(n) = pick(&mut rng, &live) else {
                continue;
            };
            format!("enable {n} {}", rng.chance(50))
        } else if roll < 58 {
            let Some(n) = pick(&mut rng, &live) else {
                continue;
            };
            format!("delete {n}")
        } else if roll < 66 {
            let Some(n) = pick(&mut rng, &deleted) else {
                continue;
            };
            format!("recover {n}")
        } else if roll < 70 {
            let Some(n) = pick(&mut rng, &deleted) else {
                continue;
            };
            format!("purge {n}")
        } else if roll < 74 {
            let Some(n) = pick(&mut rng, &live) else {
                continue;
            };
            // Backup, delete, purge and restore: four operations, each acknowledged.
            format!("cycle-restore {n}")
        } else if roll < 78 {
            let k = *SLOT_KEYS.start() + rng.below(SLOT_KEYS.count() as u64) as u8;
            let label = format!("k{k}");
            if slots.contains_key(&label) {
                format!("removeslot {label}")
            } else {
                format!("addslot {label}")
            }
        } else if roll < 83 {
            "rotate".to_string()
        } else if roll < 95 {
            let Some(n) = pick(&mut rng, &live) else {
                continue;
            };
            format!("get {n}")
        } else {
            "flush".to_string()
        };
        let words: Vec<&str> = op.split(' ').collect();
        let run = |line: &str, f: &mut dyn FnMut() -> tresor::Result<String>| {
            say(&format!("begin {line}"));
            match f() {
                Ok(extra) => say(&format!("ack {line}{extra}")),
                Err(e) => {
                    say(&format!("err {line} {}", e.code()));
                    panic!("child: {line} failed: {e}");
                }
            }
        };
        match words[0] {
            "set" => {
                run(&op, &mut || {
                    v.set(words[1], words[2]).map(|_| String::new())
                });
                live.insert(words[1].to_string());
            }
            "setmany" => {
                let o = SetOptions::new();
                run(&op, &mut || {
                    v.set_many([
                        (words[1], words[2].as_bytes(), &o),
                        (words[3], words[4].as_bytes(), &o),
                    ])
                    .map(|_| String::new())
                });
                live.insert(words[1].to_string());
                live.insert(words[3].to_string());
            }
            "enable" => run(&op, &mut || {
                let on = words[2] == "true";
                v.update_properties(words[1], None, &PropertiesUpdate::new().enabled(on))
                    .map(|_| String::new())
            }),
            "delete" => {
                run(&op, &mut || v.delete(words[1]).map(|_| String::new()));
                live.remove(words[1]);
                deleted.insert(words[1].to_string());
            }
            "recover" => {
                run(&op, &mut || v.recover(words[1]).map(|_| String::new()));
                deleted.remove(words[1]);
                live.insert(words[1].to_string());
            }
            "purge" => {
                run(&op, &mut || v.purge(words[1]).map(|_| String::new()));
                deleted.remove(words[1]);
            }
            "cycle-restore" => {
                let n = words[1];
                let mut blob = Vec::new();
                run(&format!("backup {n}"), &mut || {
                    blob = v.backup_secret(n)?;
                    Ok(String::new())
                });
                run(&format!("delete {n}"), &mut || {
                    v.delete(n).map(|_| String::new())
                });
                run(&format!("purge {n}"), &mut || {
                    v.purge(n).map(|_| String::new())
                });
                run(&format!("restore {n}"), &mut || {
                    v.restore_secret(&blob).map(|_| String::new())
                });
            }
            "addslot" => {
                let k: u8 = words[1][1..].parse().unwrap();
                let mut id = 0;
                run(&op, &mut || {
                    id = v
                        .add_slot(&SlotSpec::new(key(k), words[1]).role(Role::Writer))?
                        .id;
                    Ok(String::new())
                });
                slots.insert(words[1].to_string(), id);
            }
            "removeslot" => {
                let id = slots[words[1]];
                run(&op, &mut || v.remove_slot(id).map(|_| String::new()));
                slots.remove(words[1]);
            }
            "rotate" => run(&op, &mut || {
                v.rotate_master_key(&all_keys, |_| {})
                    .map(|_| String::new())
            }),
            "get" => run(&op, &mut || match v.get(words[1]) {
                Ok(s) => Ok(format!(" {}", String::from_utf8_lossy(s.expose()))),
                Err(Error::Disabled) => Ok(" <disabled>".to_string()),
                Err(e) => Err(e),
            }),
            "flush" => run(&op, &mut || v.flush().map(|_| String::new())),
            other => unreachable!("{other}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent: a model of the acknowledged writes.

#[derive(Clone, Debug, PartialEq, Eq)]
struct Ver {
    value: String,
    enabled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    deleted: bool,
    versions: Vec<Ver>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct Model {
    secrets: BTreeMap<String, Entry>,
    slots: BTreeSet<String>,
    /// The secret as it was when it was last backed up.
    backups: BTreeMap<String, Entry>,
}

impl Model {
    /// Applies an acknowledged (or in-flight) operation; checks what a read returned.
    fn apply(&mut self, line: &str, acked: bool) -> Result<(), String> {
        let w: Vec<&str> = line.split(' ').collect();
        let set = |m: &mut Model, n: &str, value: &str| {
            let e = m.secrets.entry(n.to_string()).or_insert(Entry {
                deleted: false,
                versions: Vec::new(),
            });
            e.versions.push(Ver {
                value: value.to_string(),
                enabled: true,
            });
        };
        fn get<'m>(m: &'m mut Model, line: &str, n: &str) -> Result<&'m mut Entry, String> {
            m.secrets
                .get_mut(n)
                .ok_or_else(|| format!("{line}: {n} is not in the model"))
        }
        match w[0] {
            "set" => set(self, w[1], w[2]),
            "setmany" => {
                set(self, w[1], w[2]);
                set(self, w[3], w[4]);
            }
            "enable" => {
                let e = get(self, line, w[1])?;
                e.versions.last_mut().ok_or("no version")?.enabled = w[2] == "true";
            }
            "delete" => get(self, line, w[1])?.deleted = true,
            "recover" => get(self, line, w[1])?.deleted = false,
            "purge" => {
                self.secrets.remove(w[1]);
            }
            "backup" => {
                let e = get(self, line, w[1])?.clone();
                self.backups.insert(w[1].to_string(), e);
            }
            "restore" => {
                let e = self
                    .backups
                    .get(w[1])
                    .cloned()
                    .ok_or_else(|| format!("{line}: no backup of {}", w[1]))?;
                self.secrets.insert(w[1].to_string(), e);
            }
            "addslot" => {
                self.slots.insert(w[1].to_string());
            }
            "removeslot" => {
                self.slots.remove(w[1]);
            }
            "get" if acked => {
                let e = get(self, line, w[1])?;
                let cur = e.versions.last().ok_or("no version")?;
                let expected = if cur.enabled {
                    cur.value.as_str()
                } else {
                    "<disabled>"
                };
                if e.deleted || w.get(2) != Some(&expected) {
                    return Err(format!("{line}: the model expected {expected}"));
                }
            }
            "get" | "rotate" | "flush" => {}
            other => return Err(format!("unknown operation {other}")),
        }
        Ok(())
    }

    /// The audit records (operation, name) an operation leaves, in order.
    fn audit_of(line: &str, durable: bool) -> Vec<(String, Option<String>)> {
        let w: Vec<&str> = line.split(' ').collect();
        let one = |op: &str, n: Option<&str>| vec![(op.to_string(), n.map(str::to_string))];
        match w[0] {
            "set" => one("SecretSet", Some(w[1])),
            "setmany" => vec![
                ("SecretSet".into(), Some(w[1].into())),
                ("SecretSet".into(), Some(w[3].into())),
                ("SecretImport".into(), None),
            ],
            "enable" => one("SecretUpdate", Some(w[1])),
            "delete" => one("SecretDelete", Some(w[1])),
            "recover" => one("SecretRecover", Some(w[1])),
            "purge" => one("SecretPurge", Some(w[1])),
            "restore" => one("SecretRestore", Some(w[1])),
            "addslot" => one("SlotAdd", None),
            "removeslot" => one("SlotRemove", None),
            "rotate" => one("KeyRotate", None),
            "get" if durable && w.get(2) != Some(&"<disabled>") => one("SecretGet", Some(w[1])),
            "backup" if durable => one("SecretBackup", Some(w[1])),
            _ => Vec::new(),
        }
    }

    /// Operations whose records the audit check compares.
    fn audited(op: &str, durable: bool) -> bool {
        matches!(
            op,
            "SecretSet"
                | "SecretImport"
                | "SecretUpdate"
                | "SecretDelete"
                | "SecretRecover"
                | "SecretPurge"
                | "SecretRestore"
                | "SlotAdd"
                | "SlotRemove"
                | "KeyRotate"
        ) || (durable && matches!(op, "SecretGet" | "SecretBackup"))
    }

    /// The model in the shape a snapshot reads: live secrets' values (None when disabled),
    /// deleted names, slot labels.
    fn view(&self) -> View {
        let mut live = BTreeMap::new();
        let mut deleted = BTreeSet::new();
        for (n, e) in &self.secrets {
            if e.deleted {
                deleted.insert(n.clone());
            } else {
                live.insert(
                    n.clone(),
                    e.versions
                        .iter()
                        .map(|v| v.enabled.then(|| v.value.clone().into_bytes()))
                        .collect(),
                );
            }
        }
        View {
            live,
            deleted,
            slots: self.slots.clone(),
        }
    }
}

/// An audit record as the check compares it: (operation, secret name).
type AuditOp = (String, Option<String>);

#[derive(Debug, PartialEq, Eq)]
struct View {
    live: BTreeMap<String, Vec<Option<Vec<u8>>>>,
    deleted: BTreeSet<String>,
    slots: BTreeSet<String>,
}

/// Reads a copy of the vault at `path`: its view, the audit records of `actor`, and checks the
/// chain and integrity.
fn inspect(path: &Path, actor: &str) -> Result<(View, Vec<AuditOp>), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let file = MemFile::from_bytes(bytes);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let clock = harness::clock();
        let v = Vault::open_with_backend(file.backend(), &key(1), harness::quiet(&clock))?;
        let s = snapshot(&v)?;
        v.verify_audit()?;
        v.check_integrity()?;
        let audit = v
            .audit(0, usize::MAX)?
            .into_iter()
            .filter(|r| r.actor == actor && r.error.is_none())
            .map(|r| (r.operation.as_str().to_string(), r.name))
            .collect::<Vec<_>>();
        Ok::<_, Error>((s, audit))
    }));
    let (s, audit) = match outcome {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return Err(format!("reopen: {e}")),
        Err(_) => return Err("reopen panicked".into()),
    };
    let view = View {
        live: s.values(),
        deleted: s.deleted.keys().cloned().collect(),
        slots: s
            .slots
            .iter()
            .filter(|(_, label, _, _)| label != "owner")
            .map(|(_, label, _, _)| label.clone())
            .collect(),
    };
    Ok((view, audit))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum KillAt {
    /// A random moment after the start: process start-up, opening and repairing the file.
    Early,
    /// A random short delay after the k-th acknowledgement.
    AfterAck,
    /// A random short delay after a rotation begins.
    InRotation,
}

#[derive(Default)]
struct Stats {
    cycles: u64,
    acked: u64,
    in_flight_applied: u64,
    in_flight_lost: u64,
    killed_by: BTreeMap<String, u64>,
    killed_in_open: u64,
    killed_in_rotation: u64,
    witnessed: u64,
}

fn work_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tresor-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let seed = seed_from_env("TRESOR_CRASH_SEED");
    let cycles = count_from_env("TRESOR_CRASH_CYCLES", 300);
    println!("crash: seed {seed:#x} (replay with TRESOR_CRASH_SEED={seed:#x}), {cycles} cycles");
    let mut rng = Rng::new(seed);
    let dir = work_dir();
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut stats = Stats::default();
    let mut model = Model::default();
    let mut path = PathBuf::new();

    for cycle in 0..cycles {
        if cycle % CYCLES_PER_FILE == 0 {
            if path.exists() {
                std::fs::remove_file(&path).unwrap();
            }
            path = dir.join(format!("vault-{cycle}.tresor"));
            Vault::create(&path, &key(1), Options::new())
                .unwrap()
                .close()
                .unwrap();
            model = Model::default();
        }
        let durable = rng.chance(30);
        let strategy = match rng.below(10) {
            0..=2 => KillAt::Early,
            3..=7 => KillAt::AfterAck,
            _ => KillAt::InRotation,
        };
        let child_seed = rng.next_u64();
        let mut cmd = Command::new(&exe);
        cmd.args(["crash_child", "--exact", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD_ENV, &path)
            .env("TRESOR_CRASH_CHILD_CYCLE", cycle.to_string())
            .env("TRESOR_CRASH_CHILD_SEED", child_seed.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if durable {
            cmd.env("TRESOR_CRASH_CHILD_DURABLE", "1");
        }
        let mut child = cmd.spawn().expect("spawn the child");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(l) = line.strip_prefix("@@ ")
                    && tx.send(l.to_string()).is_err()
                {
                    break;
                }
            }
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });

        // Decide when to kill, watching the child's lines.
        let spawn = Instant::now();
        let mut lines = Vec::new();
        let deadline = match strategy {
            KillAt::Early => Some(spawn + Duration::from_micros(rng.below(40_000))),
            _ => None,
        };
        let ack_target = rng.below(30);
        let delay = Duration::from_micros(rng.below(3_000));
        let rotation_delay = Duration::from_micros(rng.below(30_000));
        let mut kill_at: Option<Instant> = deadline;
        let give_up = spawn + Duration::from_secs(20);
        let mut exited = false;
        loop {
            let now = Instant::now();
            if kill_at.is_some_and(|t| now >= t) || now >= give_up {
                break;
            }
            let wait = kill_at
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(50))
                .min(Duration::from_millis(50));
            match rx.recv_timeout(wait) {
                Ok(l) => {
                    let acks = lines
                        .iter()
                        .filter(|l: &&String| l.starts_with("ack "))
                        .count();
                    if kill_at.is_none() {
                        if strategy == KillAt::AfterAck
                            && l.starts_with("ack ")
                            && acks as u64 >= ack_target
                        {
                            kill_at = Some(Instant::now() + delay);
                        }
                        if strategy == KillAt::InRotation && l == "begin rotate" {
                            kill_at = Some(Instant::now() + rotation_delay);
                        }
                        if strategy == KillAt::InRotation && acks > 200 {
                            kill_at = Some(Instant::now());
                        }
                    }
                    lines.push(l);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    exited = true;
                    break;
                }
            }
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        let child_err = err_reader.join().unwrap();
        if exited && !status.success() {
            panic!(
                "cycle {cycle} (seed {seed:#x}): the child failed on its own ({status}):\n{}\n{child_err}",
                lines.join("\n")
            );
        }
        if let Some(l) = lines.iter().find(|l| l.starts_with("err ")) {
            panic!("cycle {cycle} (seed {seed:#x}): the child saw an error: {l}\n{child_err}");
        }

        // Replay the acknowledged operations on the model; find the one in flight.
        let mut expected_audit: Vec<(String, Option<String>)> = Vec::new();
        let mut in_flight: Option<String> = None;
        for l in &lines {
            if let Some(op) = l.strip_prefix("begin ") {
                in_flight = Some(op.to_string());
            } else if let Some(op) = l.strip_prefix("ack ") {
                let begun = in_flight.take();
                assert!(
                    begun.as_deref().is_some_and(|b| op.starts_with(b)),
                    "ack without begin: {op}"
                );
                model
                    .apply(op, true)
                    .unwrap_or_else(|e| panic!("cycle {cycle} (seed {seed:#x}): {e}"));
                expected_audit.extend(Model::audit_of(op, durable));
                stats.acked += 1;
            }
        }
        let last = lines.last().map(String::as_str).unwrap_or("");
        if last == "open" || lines.is_empty() {
            stats.killed_in_open += 1;
        }
        if in_flight.as_deref() == Some("rotate") {
            stats.killed_in_rotation += 1;
        }
        *stats.killed_by.entry(format!("{strategy:?}")).or_default() += 1;

        let actor = format!("c{cycle}");
        let (view, audit) = inspect(&path, &actor).unwrap_or_else(|e| {
            let keep = dir.join(format!("failed-cycle-{cycle}.tresor"));
            let _ = std::fs::copy(&path, &keep);
            panic!(
                "cycle {cycle} (seed {seed:#x}): {e}; file kept at {}",
                keep.display()
            )
        });
        let audit: Vec<_> = audit
            .into_iter()
            .filter(|(op, _)| Model::audited(op, durable))
            .collect();
        let mut with_flight = model.clone();
        let flight_ok = in_flight
            .as_deref()
            .map(|op| with_flight.apply(op, false).is_ok())
            .unwrap_or(false);
        let mut audit_with_flight = expected_audit.clone();
        if let Some(op) = &in_flight {
            audit_with_flight.extend(Model::audit_of(op, durable));
        }
        let fail = |what: &str| -> ! {
            let keep = dir.join(format!("failed-cycle-{cycle}.tresor"));
            let _ = std::fs::copy(&path, &keep);
            panic!(
                "cycle {cycle} (seed {seed:#x}): {what}\nin flight: {in_flight:?}\nlines:\n{}\n\
                 expected: {:#?}\nfound: {view:#?}\nfile kept at {}",
                lines.join("\n"),
                model.view(),
                keep.display()
            )
        };
        if view == model.view() {
            // A rotation or a read in flight changes no data: its audit record tells whether
            // it landed.
            if audit == expected_audit {
                if in_flight.is_some() {
                    stats.in_flight_lost += 1;
                }
            } else if audit == audit_with_flight {
                stats.in_flight_applied += 1;
            } else {
                fail(&format!(
                    "audit records differ from the acknowledged operations:\n{audit:?}\n{expected_audit:?}"
                ));
            }
        } else if flight_ok && view == with_flight.view() {
            if audit != audit_with_flight {
                fail(&format!(
                    "audit records differ from the operations (with the one in flight):\n{audit:?}\n{audit_with_flight:?}"
                ));
            }
            stats.in_flight_applied += 1;
            model = with_flight;
        } else {
            fail(
                "the reopened vault is neither the acknowledged state nor that plus the in-flight operation",
            );
        }
        if lines.iter().any(|l| l.starts_with("ack ")) {
            // A child that committed wrote its witness, which the next child then checks.
            assert!(
                path.with_extension("witness").exists(),
                "cycle {cycle}: no witness beside the vault after acknowledged writes"
            );
            stats.witnessed += 1;
        }
        stats.cycles += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "crash: {} cycles in {:.1} s; {} acknowledged operations; in-flight operation applied {} \
         times, lost {} times; killed while starting/opening {} times, inside a rotation {} \
         times; strategies {:?}; {} cycles reopened past a witness",
        stats.cycles,
        started.elapsed().as_secs_f64(),
        stats.acked,
        stats.in_flight_applied,
        stats.in_flight_lost,
        stats.killed_in_open,
        stats.killed_in_rotation,
        stats.killed_by,
        stats.witnessed
    );
    assert_eq!(stats.cycles, cycles);
}
