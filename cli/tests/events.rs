//! Alerts, automatic backups and `audit --follow` from the command line: `tresor watch` raises
//! each Event Grid event once (across runs: its state survives them), delivers it to a command
//! and a JSON-lines file, refuses webhooks off loopback; backups follow changes, keep the newest
//! N and restore to a new file without tripping the rollback witness; `audit --follow --json`
//! prints Azure `AuditEvent` entries as records commit.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

struct Env {
    dir: TempDir,
    key: PathBuf,
    vault: PathBuf,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("owner.key");
        let vault = dir.path().join("app.tresor");
        let env = Env { dir, key, vault };
        env.ok(&["keygen", env.key.to_str().unwrap()]);
        env.ok(&["init"]);
        env
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn program(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tresor"));
        cmd.current_dir(self.dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("TRESOR_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("TRESOR_VAULT", &self.vault)
            .env("TRESOR_KEY_FILE", &self.key);
        cmd
    }

    fn run(&self, args: &[&str], input: &[u8]) -> Out {
        let mut child = self
            .program()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A command that reads no input may have exited already.
        let _ = std::io::Write::write_all(&mut child.stdin.take().unwrap(), input);
        let o = child.wait_with_output().unwrap();
        Out {
            code: o.status.code().unwrap(),
            stdout: String::from_utf8(o.stdout).unwrap(),
            stderr: String::from_utf8(o.stderr).unwrap(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, b"");
        assert_eq!(out.code, 0, "tresor {args:?}: {}", out.stderr);
        out.stdout
    }

    /// `set NAME` with the value on stdin, retried while another process (a follower) has the
    /// vault open for a moment.
    fn set(&self, name: &str, value: &str, flags: &[&str]) -> String {
        let mut args = vec!["set", name];
        args.extend_from_slice(flags);
        for _ in 0..200 {
            let out = self.run(&args, value.as_bytes());
            if out.code == 0 {
                return out.stdout.trim().to_string();
            }
            assert!(out.stderr.contains("locked"), "{}", out.stderr);
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the vault stayed locked");
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["eventType"] == format!("Microsoft.KeyVault.{kind}"))
        .collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn watch_raises_each_event_once_across_runs() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    let cmd_out = env.path("cmd.jsonl");
    let on_event = format!(
        "cat >> '{}' && echo \"$TRESOR_EVENT_TYPE\" >> '{}.types'",
        cmd_out.display(),
        cmd_out.display()
    );
    let watch = [
        "watch",
        "--once",
        "--event-log",
        log.to_str().unwrap(),
        "--on-event",
        &on_event,
        "--near-expiry",
        "2h",
    ];
    env.set("before", "x", &[]);
    // The first run starts from now: what was written before raises nothing.
    env.ok(&watch);
    assert_eq!(lines(&log), Vec::<Value>::new());
    assert_eq!(mode(&log), 0o600);
    assert_eq!(mode(&env.path("app.tresor.events")), 0o600);

    let soon = env.set("soon", "1", &["--expires", "1h"]);
    let gone = env.set("gone", "2", &["--expires", "2020-01-01"]);
    let plain = env.set("plain", "3", &[]);
    // A refused write (a stale check-and-set) changes nothing and raises nothing.
    let stale = env.run(&["set", "plain", "--if-version", &soon], b"4");
    assert_eq!(stale.code, 1, "{}", stale.stderr);
    env.ok(&watch);
    let events = lines(&log);
    let new: Vec<_> = of_type(&events, "SecretNewVersionCreated");
    let names: Vec<&str> = new.iter().map(|e| e["subject"].as_str().unwrap()).collect();
    assert_eq!(names, ["soon", "gone", "plain"]);
    assert_eq!(new[2]["data"]["Version"], plain.as_str());
    assert_eq!(new[2]["data"]["ObjectType"], "Secret");
    assert_eq!(new[2]["data"]["VaultName"], "app");
    assert_eq!(
        new[2]["data"]["Id"],
        format!("https://127.0.0.1:8443/secrets/plain/{plain}")
    );
    assert!(new[0]["data"]["EXP"].as_i64().is_some());
    let near = of_type(&events, "SecretNearExpiry");
    assert_eq!(near.len(), 1);
    assert_eq!(near[0]["data"]["Version"], soon.as_str());
    let expired = of_type(&events, "SecretExpired");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["data"]["Version"], gone.as_str());
    assert_eq!(expired[0]["data"]["EXP"], 1_577_836_800);
    assert_eq!(events.len(), 5);
    // The command got the same events, one process each, the type in its environment.
    assert_eq!(lines(&cmd_out).len(), 5);
    let types = std::fs::read_to_string(format!("{}.types", cmd_out.display())).unwrap();
    assert_eq!(types.lines().count(), 5);
    assert!(
        types
            .lines()
            .any(|t| t == "Microsoft.KeyVault.SecretExpired")
    );

    // Later runs, with nothing new, raise nothing again: not the new versions, not the
    // near-expiry or expiry of the same versions.
    env.ok(&watch);
    env.ok(&watch);
    assert_eq!(lines(&log).len(), 5);
    // A new version of an expiring secret is a new version to warn about.
    let again = env.set("soon", "5", &["--expires", "90m"]);
    env.ok(&watch);
    let events = lines(&log);
    assert_eq!(events.len(), 7);
    assert_eq!(
        of_type(&events, "SecretNearExpiry")[1]["data"]["Version"],
        again.as_str()
    );
}

#[test]
fn a_failing_command_is_logged_and_gets_none_of_tresors_variables() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    let watch = [
        "watch",
        "--once",
        "--event-log",
        log.to_str().unwrap(),
        "--on-event",
        "echo \"${TRESOR_KEY_FILE:-none}\" > env.out; exit 3",
    ];
    env.ok(&watch);
    env.set("a", "1", &[]);
    let out = env.run(&watch, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("--on-event failed"), "{}", out.stderr);
    assert_eq!(lines(&log).len(), 1);
    // The command does not get tresor's own variables (here: where the key file is).
    assert_eq!(
        std::fs::read_to_string(env.path("env.out")).unwrap(),
        "none\n"
    );
}

#[test]
fn webhooks_off_loopback_and_empty_watches_are_refused() {
    let env = Env::new();
    for url in [
        "https://127.0.0.1:9000/hook",
        "http://example.com:80/hook",
        "http://192.168.1.1:80/",
    ] {
        let out = env.run(&["watch", "--once", "--event-webhook", url], b"");
        assert_eq!(out.code, 2, "{url}: {}", out.stderr);
        assert!(out.stderr.contains("loopback"), "{}", out.stderr);
        let out = env.run(&["serve", "--event-webhook", url], b"");
        assert_eq!(out.code, 2, "{url}: {}", out.stderr);
    }
    let out = env.run(&["watch", "--once"], b"");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("nothing to do"), "{}", out.stderr);
}

#[test]
fn a_loopback_webhook_gets_event_grid_arrays() {
    let env = Env::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = Vec::new();
        let mut len = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
            head.push(line);
        }
        let mut body = vec![0; len];
        std::io::Read::read_exact(&mut reader, &mut body).unwrap();
        std::io::Write::write_all(
            reader.get_mut(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        (head, body)
    });
    env.ok(&["watch", "--once", "--event-webhook", &url]);
    env.set("hooked", "1", &[]);
    env.ok(&["watch", "--once", "--event-webhook", &url]);
    let (head, body) = server.join().unwrap();
    assert!(head[0].starts_with("POST /events HTTP/1.1"), "{head:?}");
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case("aeg-event-type: Notification\r\n"))
    );
    let events: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(events.as_array().unwrap().len(), 1);
    assert_eq!(
        events[0]["eventType"],
        "Microsoft.KeyVault.SecretNewVersionCreated"
    );
    assert_eq!(events[0]["subject"], "hooked");
}

#[test]
fn backups_follow_changes_keep_the_newest_and_restore_beside_the_witness() {
    let env = Env::new();
    let dir = env.path("backups");
    let dir_s = dir.to_str().unwrap();
    let watch = [
        "watch",
        "--once",
        "--backup-dir",
        dir_s,
        "--backup-keep",
        "2",
    ];
    env.ok(&watch);
    assert_eq!(mode(&dir), 0o700);
    let none: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(none.len(), 0, "no change, no copy");
    for i in 1..=4 {
        env.set("db", &format!("v{i}"), &[]);
        env.ok(&watch);
        // A run with nothing new writes nothing.
        env.ok(&watch);
    }
    let listed: Value =
        serde_json::from_str(&env.ok(&["backups", "list", dir_s, "--json"])).unwrap();
    let files = listed["backups"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{listed}");
    for f in files {
        let p = dir.join(f["file"].as_str().unwrap());
        assert_eq!(mode(&p), 0o600);
        assert!(f["taken"].as_str().unwrap().ends_with('Z'));
    }
    // The newest copy holds the last value; it restores to a new file that opens as a vault of
    // its own (no witness yet at that path), and the original is untouched.
    let restored = env.path("restored.tresor");
    env.ok(&[
        "backups",
        "restore",
        dir_s,
        "--latest",
        "--to",
        restored.to_str().unwrap(),
    ]);
    assert_eq!(mode(&restored), 0o600);
    let get = env.ok(&["--vault", restored.to_str().unwrap(), "get", "db"]);
    assert_eq!(get, "v4");
    assert_eq!(env.ok(&["get", "db"]), "v4");
    let out = env.run(
        &[
            "backups",
            "restore",
            dir_s,
            "--latest",
            "--to",
            restored.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.code, 1, "never over an existing file");
    let out = env.run(
        &[
            "backups",
            "restore",
            dir_s,
            "--at",
            "2020-01-01",
            "--to",
            "x.tresor",
        ],
        b"",
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no backup"), "{}", out.stderr);

    // Put in the original's place, the copy is older than the witness of that path: refused
    // until accepted on purpose.
    std::fs::rename(&env.vault, env.path("moved.tresor")).unwrap();
    std::fs::copy(&restored, &env.vault).unwrap();
    let out = env.run(&["get", "db"], b"");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("witness reset"), "{}", out.stderr);
}

#[test]
fn audit_follow_prints_azure_audit_events_as_they_commit() {
    let env = Env::new();
    let mut child = env
        .program()
        .args(["audit", "--follow", "--json", "--interval", "1s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    // The follower's first look prints its own records (the head it starts after, its read):
    // from then on it is following.
    let first = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["operationName"], "AuditCheckpoint");
    let version = env.set("followed", "1", &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = vec![first];
    let mut missing_asked = false;
    let found = loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            break None;
        };
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["operationName"] == "SecretSet" && !missing_asked {
            // A refused read shows as a failure.
            let out = loop {
                let out = env.run(&["--audit-reads", "durable", "get", "absent"], b"");
                if !out.stderr.contains("locked") {
                    break out;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            assert_eq!(out.code, 1);
            missing_asked = true;
        }
        seen.push(v.clone());
        if v["operationName"] == "SecretGet" {
            break Some(v);
        }
    };
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let failed = found.unwrap_or_else(|| {
        panic!(
            "no SecretGet among {seen:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let set = seen
        .iter()
        .find(|v| v["operationName"] == "SecretSet")
        .unwrap();
    assert_eq!(set["category"], "AuditEvent");
    assert_eq!(set["resultType"], "Success");
    assert_eq!(set["resultSignature"], "OK");
    assert_eq!(set["properties"]["httpStatusCode"], 200);
    assert_eq!(
        set["properties"]["id"],
        format!("https://127.0.0.1:8443/secrets/followed/{version}")
    );
    assert!(set["resourceId"].as_str().unwrap().ends_with("/VAULTS/APP"));
    assert!(set["identity"]["claim"]["appid"].is_string());
    assert!(set["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(failed["resultType"], "Failure");
    assert_eq!(failed["resultSignature"], "Not Found");
    assert_eq!(failed["properties"]["httpStatusCode"], 404);
    // In commit order, each once.
    let seqs: Vec<u64> = seen
        .iter()
        .map(|v| v["properties"]["sequence"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[test]
fn audit_follow_says_when_another_process_holds_the_vault_and_waits() {
    let env = Env::new();
    let key = tresor::Credential::key_file(&env.key).unwrap();
    let held = tresor::Vault::open(&env.vault, &key, tresor::Options::new()).unwrap();
    let mut child = env
        .program()
        .args(["audit", "--follow", "--tail", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("held open by another process"), "{line}");
    // Once the holder lets go, records are printed.
    drop(held);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut record = String::new();
    out.read_line(&mut record).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(!record.is_empty());
}
