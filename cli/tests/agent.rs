//! One vault, many processes: commands go through an agent or `tresor serve` while one holds
//! the vault, wait out a file another command has open briefly, and open the file themselves
//! again once the holder is gone (locked, idle, or killed).

#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A vault unlocked by a key file, with its own runtime and state directories.
struct Env {
    dir: TempDir,
    key: PathBuf,
    vault: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        let env = Env {
            key: dir.path().join("owner.key"),
            vault: dir.path().join("v.tresor"),
            dir,
        };
        let out = env
            .cmd(&["keygen", env.key.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success());
        env.ok(&["init"]);
        env
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tresor"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TRESOR_") {
                c.env_remove(k);
            }
        }
        c.current_dir(self.dir.path())
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("TRESOR_VAULT", &self.vault)
            .env("TRESOR_KEY_FILE", &self.key)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok_with(&self, args: &[&str], input: &[u8]) -> String {
        let out = self.run(args, input);
        assert!(
            out.status.success(),
            "tresor {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, b"")
    }

    /// The pid of the holder `tresor status` names, if one holds the vault.
    fn holder_pid(&self) -> Option<u32> {
        let status = self.ok(&["status"]);
        let first = status.lines().next()?;
        let pid = first.split("(pid ").nth(1)?.trim_end_matches(')');
        pid.parse().ok()
    }
}

/// 8 processes at once, each setting and reading back its own secrets 5 times: every command
/// succeeds (none is refused as `locked`), and every write is there afterwards.
fn concurrent_traffic(env: &Env) {
    std::thread::scope(|s| {
        for p in 0..8 {
            s.spawn(move || {
                for i in 0..5 {
                    let name = format!("p{p}-s{i}");
                    let value = format!("value {p} {i}");
                    let out = env.run(&["set", &name], value.as_bytes());
                    assert!(
                        out.status.success(),
                        "set {name}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let out = env.run(&["get", &name], b"");
                    assert!(
                        out.status.success(),
                        "get {name}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    assert_eq!(out.stdout, value.as_bytes());
                }
            });
        }
    });
    for p in 0..8 {
        for i in 0..5 {
            assert_eq!(
                env.ok(&["get", &format!("p{p}-s{i}")]),
                format!("value {p} {i}")
            );
        }
    }
}

/// The agent is stopped and the file passes every check, its audit chain included.
fn verified_directly(env: &Env) {
    assert!(env.ok(&["status"]).starts_with("not held"));
    assert!(
        env.ok(&["audit", "--verify"])
            .starts_with("ok: the audit chain")
    );
    env.ok(&["check"]);
}

#[test]
fn eight_processes_through_an_agent() {
    let env = Env::new();
    let out = env.ok(&["unlock", "--idle", "5m"]);
    assert!(out.starts_with("unlocked: an agent (pid "), "{out}");
    let pid = env.holder_pid().expect("an agent holds the vault");
    concurrent_traffic(&env);
    let audit = env.ok(&["audit", "--json"]);
    assert!(audit.contains("\"SecretSet\""));
    // Commands that need the file itself say who holds it.
    let out = env.run(&["compact"], b"");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("held by an agent (pid {pid})")) && err.contains("tresor lock"),
        "{err}"
    );
    let missing = env.run(&["get", "nope"], b"");
    env.ok(&["delete", "p0-s0"]);
    let deleted = env.run(&["show", "p0-s0"], b"");
    // Identical output on both paths: the same listing through the agent and directly.
    let through = env.ok(&["list", "--json"]);
    assert!(env.ok(&["lock"]).starts_with("locked: an agent"));
    // Identical output and exit status on the file itself.
    assert_eq!(env.ok(&["list", "--json"]), through);
    for (held, args) in [(missing, ["get", "nope"]), (deleted, ["show", "p0-s0"])] {
        let direct = env.run(&args, b"");
        assert_eq!(held.status.code(), Some(1));
        assert_eq!(direct.status.code(), held.status.code());
        assert_eq!(direct.stdout, held.stdout);
        assert_eq!(direct.stderr, held.stderr);
    }
    verified_directly(&env);
}

/// A running `tresor serve`.
struct Serve(Child);

impl Serve {
    fn start(env: &Env) -> Serve {
        let mut child = env
            .cmd(&["serve", "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        for line in BufReader::new(stdout).lines() {
            if line.unwrap().starts_with("reads audited:") {
                break;
            }
        }
        Serve(child)
    }

    fn stop(mut self) {
        let pid = self.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        assert!(self.0.wait().unwrap().success());
    }
}

#[test]
fn eight_processes_while_serve_runs() {
    let env = Env::new();
    let serve = Serve::start(&env);
    let status = env.ok(&["status"]);
    assert!(status.starts_with("held by `tresor serve`"), "{status}");
    concurrent_traffic(&env);
    // Tokens are made, listed and revoked while the server runs.
    let token = env.ok(&["token", "create", "--role", "reader", "--label", "ci"]);
    assert!(token.starts_with("tresor_"));
    assert!(env.ok(&["token", "list"]).contains("ci"));
    env.ok(&["token", "revoke", "ci"]);
    // `tresor lock` does not stop a server.
    let out = env.run(&["lock"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tresor serve"));
    serve.stop();
    verified_directly(&env);
}

#[test]
fn an_idle_agent_locks_itself() {
    let env = Env::new();
    env.ok_with(&["set", "db"], b"v");
    env.ok(&["unlock", "--idle", "2s"]);
    assert!(env.holder_pid().is_some());
    assert_eq!(env.ok(&["get", "db"]), "v");
    let started = Instant::now();
    while env.holder_pid().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the agent did not lock"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The file is the command's own again.
    assert_eq!(env.ok(&["get", "db"]), "v");
    verified_directly(&env);
}

#[test]
fn an_agent_killed_mid_traffic_leaves_the_file_to_the_cli() {
    let env = Env::new();
    env.ok(&["unlock", "--idle", "5m"]);
    let pid = env.holder_pid().unwrap();
    std::thread::scope(|s| {
        for p in 0..4 {
            let env = &env;
            s.spawn(move || {
                for i in 0..10 {
                    // Commands may fail while the agent dies; none may hang or damage the file.
                    let _ = env.run(&["set", &format!("k{p}-{i}")], b"x");
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    });
    // The stale socket is cleared and commands open the file directly.
    env.ok_with(&["set", "after"], b"1");
    assert_eq!(env.ok(&["get", "after"]), "1");
    verified_directly(&env);
}

#[test]
fn a_briefly_locked_file_is_waited_for() {
    let env = Env::new();
    env.ok_with(&["set", "db"], b"v");
    // `set` opens the vault before it reads its value from stdin: while stdin stays open, the
    // file stays locked by that process (and no holder serves it).
    let mut slow = env
        .cmd(&["set", "slow"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let out = env.run(&["--wait", "0", "get", "db"], b"");
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.starts_with("error: locked:") && err.contains("--wait"),
                "{err}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "set never opened the vault"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stdin = slow.stdin.take().unwrap();
    let waiting = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        stdin.write_all(b"s").unwrap();
        drop(stdin);
    });
    // Waits (up to 60 s) for the other command to finish, then reads.
    assert_eq!(env.ok(&["--wait", "60", "get", "db"]), "v");
    waiting.join().unwrap();
    assert!(slow.wait().unwrap().success());
    assert_eq!(env.ok(&["get", "slow"]), "s");
}

/// `tresor unlock` asks for the passphrase once, on the terminal; the commands after it need
/// no credential at all.
#[test]
fn unlock_prompts_once_and_commands_need_no_credential() {
    let env = Env::new();
    let vault = env.dir.path().join("p.tresor");
    let with_vault = |args: &[&str]| {
        let mut c = env.cmd(args);
        c.env("TRESOR_VAULT", &vault).env_remove("TRESOR_KEY_FILE");
        c
    };
    let out = with_vault(&["init"])
        .env("TRESOR_PASSPHRASE", "correct horse")
        .env("TRESOR_KDF", "min")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = format!(
        "{} unlock --idle 5m; echo status=$?",
        env!("CARGO_BIN_EXE_tresor")
    );
    let mut sh = Command::new("sh");
    sh.args(["-c", &script])
        .current_dir(env.dir.path())
        .env("XDG_RUNTIME_DIR", env.dir.path().join("run"))
        .env("XDG_STATE_HOME", env.dir.path().join("state"))
        .env("TRESOR_VAULT", &vault)
        .env_remove("TRESOR_KEY_FILE")
        .env_remove("TRESOR_PASSPHRASE");
    let mut session = match rexpect::session::spawn_command(sh, Some(30_000)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: no pseudo-terminal could be had here ({e})");
            return;
        }
    };
    session.exp_string("Passphrase for").expect("the prompt");
    session.send("correct horse\r").unwrap();
    session.flush().unwrap();
    let said = session.exp_string("status=").expect("unlock ended");
    assert!(said.contains("unlocked: an agent"), "{said}");
    assert_eq!(session.exp_eof().unwrap().trim(), "0");
    // No key, no passphrase, no terminal: through the agent.
    let set = with_vault(&["set", "db"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn();
    let mut set = set.unwrap();
    set.stdin.take().unwrap().write_all(b"v").unwrap();
    assert!(set.wait().unwrap().success());
    let out = with_vault(&["get", "db"]).output().unwrap();
    assert_eq!(out.stdout, b"v", "{}", String::from_utf8_lossy(&out.stderr));
    let out = with_vault(&["lock"]).output().unwrap();
    assert!(out.status.success());
    // Locked: the passphrase is needed again.
    let out = with_vault(&["get", "db"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no key or passphrase"));
}
