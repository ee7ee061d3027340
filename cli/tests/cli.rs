//! The `tresor` command line, run as a program on throwaway vaults: every command, its exit
//! status and its output, and the promise that no secret value leaks into any output but
//! `get`'s, `export`'s and `run`'s child's.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// Every environment variable the command line reads.
const TRESOR_VARS: &[&str] = &[
    "TRESOR_VAULT",
    "TRESOR_PROFILE",
    "TRESOR_KEY_FILE",
    "TRESOR_PASSPHRASE",
    "TRESOR_PASSPHRASE_FILE",
    "TRESOR_ACTOR",
    "TRESOR_AUDIT_READS",
    "TRESOR_CHECKPOINT",
    "TRESOR_KDF",
    "TRESOR_AGE_IDENTITY",
    "TRESOR_TPM_TCTI",
    "TRESOR_PKCS11_MODULE",
    "TRESOR_PKCS11_PIN",
];

/// What a finished command printed.
struct Out {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).expect("stdout is one JSON document")
    }
}

/// A temporary directory with a key file and (once `init` ran) a vault unlocked by it.
struct Env {
    dir: TempDir,
    key: PathBuf,
    vault: PathBuf,
}

impl Env {
    /// A key file but no vault yet.
    fn bare() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("owner.key");
        let vault = dir.path().join("vault.tresor");
        let env = Env { dir, key, vault };
        let out = env.raw(&["keygen", env.key.to_str().unwrap()], b"");
        assert_eq!(out.code, 0, "{}", out.stderr);
        env
    }

    /// A vault created with the key file.
    fn new() -> Env {
        Env::with_init(&[])
    }

    /// A vault created with the key file and these `init` flags.
    fn with_init(flags: &[&str]) -> Env {
        let env = Env::bare();
        let mut args = vec!["init"];
        args.extend_from_slice(flags);
        env.ok(&args);
        env
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The program, in the temporary directory, with no `TRESOR_*` from outside.
    fn program(&self) -> Command {
        let mut cmd = Command::cargo_bin("tresor").unwrap();
        cmd.current_dir(self.dir.path());
        for var in TRESOR_VARS {
            cmd.env_remove(var);
        }
        // Rollback witnesses go in the test's directory, not the user's state directory.
        cmd.env("XDG_STATE_HOME", self.dir.path().join("state"));
        cmd
    }

    /// Runs with the vault and key given by environment variables, stdin from `input`.
    fn raw(&self, args: &[&str], input: &[u8]) -> Out {
        let mut cmd = self.program();
        cmd.env("TRESOR_VAULT", &self.vault)
            .env("TRESOR_KEY_FILE", &self.key)
            .args(args)
            .write_stdin(input.to_vec());
        finish(&mut cmd)
    }

    /// Runs and expects success; returns stdout as text.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.raw(args, b"");
        assert_eq!(out.code, 0, "tresor {args:?} failed: {}", out.stderr);
        out.text()
    }

    /// Runs and expects failure with exit status 1 and one `error:` line; returns that line.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.raw(args, b"");
        error_line(&out, args)
    }

    /// Runs and expects a usage error (exit status 2); returns stderr.
    fn usage(&self, args: &[&str]) -> String {
        let out = self.raw(args, b"");
        assert_eq!(out.code, 2, "tresor {args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with("error:"), "{}", out.stderr);
        out.stderr
    }

    /// `set NAME VALUE`: returns the version id printed.
    fn set(&self, name: &str, value: &str) -> String {
        let out = self.ok(&["set", name, value]);
        let id = out.trim_end().to_string();
        assert_eq!(out, format!("{id}\n"));
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        id
    }

    fn get(&self, name: &str) -> Vec<u8> {
        let out = self.raw(&["get", name], b"");
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
    }
}

fn finish(cmd: &mut Command) -> Out {
    let o = cmd.output().unwrap();
    Out {
        code: o.status.code().expect("exited, not killed"),
        stdout: o.stdout,
        stderr: String::from_utf8(o.stderr).expect("stderr is UTF-8"),
    }
}

/// Exit status 1 and exactly one line on stderr, starting `error: `; returns it.
fn error_line(out: &Out, args: &[&str]) -> String {
    assert_eq!(out.code, 1, "tresor {args:?}: {}", out.stderr);
    assert!(out.stderr.starts_with("error: "), "{:?}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{:?}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{:?}", out.stderr);
    out.stderr.trim_end().to_string()
}

fn seconds_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---------------------------------------------------------------------------------------------
// keygen and init

#[test]
fn keygen_writes_a_private_hex_key_and_never_overwrites() {
    let env = Env::bare();
    let text = std::fs::read_to_string(&env.key).unwrap();
    assert_eq!(text.len(), 65);
    assert!(text.ends_with('\n'));
    assert!(text[..64].bytes().all(|b| b.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&env.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let line = env.fails(&["keygen", env.key.to_str().unwrap()]);
    assert!(line.contains("already exists"), "{line}");
    assert_eq!(std::fs::read_to_string(&env.key).unwrap(), text);
    let other = env.path("other.key");
    env.ok(&["keygen", other.to_str().unwrap()]);
    assert_ne!(std::fs::read_to_string(&other).unwrap(), text);

    // A missing directory is made, for the owner only.
    env.ok(&["keygen", "keys/ci.key"]);
    assert!(env.path("keys/ci.key").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.path("keys"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}

#[test]
fn init_creates_the_profile_directory_and_refuses_an_existing_vault() {
    let env = Env::bare();
    let run = |args: &[&str], profile_env: Option<&str>| {
        let mut cmd = env.program();
        cmd.env("TRESOR_KEY_FILE", &env.key)
            .args(args)
            .write_stdin("");
        if let Some(p) = profile_env {
            cmd.env("TRESOR_PROFILE", p);
        }
        finish(&mut cmd)
    };
    assert_eq!(run(&["init"], None).code, 0);
    assert!(env.path(".tresor/dev.tresor").is_file());
    assert_eq!(run(&["--profile", "prod", "init"], None).code, 0);
    assert!(env.path(".tresor/prod.tresor").is_file());
    assert_eq!(run(&["init"], Some("staging")).code, 0);
    assert!(env.path(".tresor/staging.tresor").is_file());

    // Each profile is its own vault.
    assert_eq!(run(&["set", "only-in-dev", "x"], None).code, 0);
    let out = run(&["--profile", "prod", "get", "only-in-dev"], None);
    assert!(error_line(&out, &["get"]).contains("not found"));

    let again = run(&["init"], None);
    assert!(error_line(&again, &["init"]).contains("already exists"));
    assert_eq!(run(&["--profile", "../x", "init"], None).code, 2);
}

#[test]
fn init_flags_become_settings() {
    let env = Env::with_init(&[
        "--retention-days",
        "7",
        "--purge-protection",
        "--label",
        "ops",
        "--max-versions",
        "3",
    ]);
    let s = env.raw(&["settings", "--json"], b"").json();
    assert_eq!(s["retention_days"], 7);
    assert_eq!(s["purge_protection"], true);
    assert_eq!(s["max_versions"], 3);
    let slots = env.raw(&["slot", "list", "--json"], b"").json();
    assert_eq!(slots[0]["label"], "ops");
    assert_eq!(slots[0]["role"], "owner");
    assert_eq!(slots[0]["kind"], "key");

    let fresh = Env::bare();
    let line = fresh.fails(&["--vault", "no/such/dir/v.tresor", "init"]);
    assert!(
        line.contains("cannot create vault 'no/such/dir/v.tresor'"),
        "{line}"
    );
    fresh.usage(&["init", "--retention-days", "3"]);
    fresh.usage(&["init", "--retention-days", "91"]);
    assert!(
        !fresh.vault.exists(),
        "a usage error leaves nothing on disk"
    );
}

// ---------------------------------------------------------------------------------------------
// set, get, show, list, versions, update

#[test]
fn get_writes_the_exact_bytes() {
    let env = Env::new();
    let binary: Vec<u8> = vec![0, 255, 10, 13, 0x80, b'a', 0, b'\n', 0xfe];
    let file = env.path("value.bin");
    std::fs::write(&file, &binary).unwrap();
    env.ok(&["set", "blob", "--file", file.to_str().unwrap()]);
    assert_eq!(env.get("blob"), binary);

    // From stdin, byte for byte: a trailing newline is part of the value.
    let out = env.raw(&["set", "piped"], b"line one\nline two\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(env.get("piped"), b"line one\nline two\n");

    // From the argument: nothing added.
    env.set("text", "hunter2");
    assert_eq!(env.get("text"), b"hunter2");

    // An empty value is a value, when asked for.
    let out = env.raw(&["set", "empty", "--allow-empty"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(env.get("empty"), b"");
}

#[test]
fn set_makes_versions_and_get_reads_any_of_them() {
    let env = Env::new();
    let v1 = env.set("api-key", "first");
    let v2 = env.set("api-key", "second");
    assert_ne!(v1, v2);
    assert_eq!(env.get("api-key"), b"second");
    assert_eq!(env.get("API-KEY"), b"second", "names ignore case");
    let out = env.raw(&["get", "api-key", "--version", &v1], b"");
    assert_eq!(out.stdout, b"first");

    let versions = env.raw(&["versions", "api-key", "--json"], b"").json();
    let ids: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [v2.as_str(), v1.as_str()], "newest first");
    assert_eq!(versions[0]["sequence"], 2);

    let table = env.ok(&["versions", "api-key"]);
    assert!(table.starts_with("VERSION"), "{table}");
    assert!(table.find(&v2).unwrap() < table.find(&v1).unwrap());

    let unknown = "0123456789abcdef0123456789abcdef";
    let line = env.fails(&["get", "api-key", "--version", unknown]);
    assert!(line.contains("has no version"), "{line}");
    env.usage(&["get", "api-key", "--version", "not-hex"]);
}

#[test]
fn set_takes_properties() {
    let env = Env::new();
    env.ok(&[
        "set",
        "db-password",
        "pw",
        "--content-type",
        "text/plain",
        "--tag",
        "env=prod",
        "--tag",
        "team=core",
        "--expires",
        "2099-01-31T12:00:00Z",
        "--not-before",
        "2020-01-01",
    ]);
    let p = env.raw(&["show", "db-password", "--json"], b"").json();
    assert_eq!(p["name"], "db-password");
    assert_eq!(p["content_type"], "text/plain");
    assert_eq!(p["tags"]["env"], "prod");
    assert_eq!(p["tags"]["team"], "core");
    assert_eq!(p["expires_on"], "2099-01-31T12:00:00Z");
    assert_eq!(p["expires_on_unix"], 4_073_544_000i64);
    assert_eq!(p["not_before"], "2020-01-01T00:00:00Z");
    assert_eq!(p["enabled"], true);
    assert_eq!(p["sequence"], 1);
    assert!(p["created_unix"].as_i64().unwrap() > 1_700_000_000);

    // A duration is counted from now.
    let before = seconds_now();
    env.ok(&["set", "short-lived", "x", "--expires", "90d"]);
    let p = env.raw(&["show", "short-lived", "--json"], b"").json();
    let exp = p["expires_on_unix"].as_i64().unwrap();
    assert!(exp >= before + 90 * 86_400 && exp <= seconds_now() + 90 * 86_400);

    env.ok(&["set", "off", "x", "--disabled"]);
    let line = env.fails(&["get", "off"]);
    assert!(line.starts_with("error: disabled"), "{line}");

    let human = env.ok(&["show", "db-password"]);
    assert!(human.contains("env=prod, team=core"), "{human}");
    assert!(human.contains("2099-01-31T12:00:00Z"), "{human}");
}

#[test]
fn check_and_set() {
    let env = Env::new();
    let v1 = env.ok(&["set", "counter", "1", "--if-absent"]);
    let v1 = v1.trim();
    let line = env.fails(&["set", "counter", "x", "--if-absent"]);
    assert!(line.contains("version conflict"), "{line}");
    env.ok(&["set", "counter", "2", "--if-version", v1]);
    let line = env.fails(&["set", "counter", "3", "--if-version", v1]);
    assert!(
        line.contains("version conflict") && line.contains("'counter'"),
        "{line}"
    );
    assert_eq!(env.get("counter"), b"2");
    env.usage(&["set", "counter", "4", "--if-version", v1, "--if-absent"]);
}

#[test]
fn show_and_list_never_print_values() {
    let env = Env::new();
    let secret = "s3cr3t-VALUE-do-not-print";
    env.set("alpha", secret);
    env.set("Beta", secret);
    env.ok(&["set", "gamma", secret, "--expires", "5d"]);
    env.ok(&["set", "delta", secret, "--expires", "60d"]);
    env.ok(&["delete", "delta"]);
    for args in [
        &["show", "alpha"][..],
        &["show", "alpha", "--json"],
        &["list"],
        &["list", "--json"],
        &["list", "--deleted"],
        &["list", "--deleted", "--json"],
        &["list", "--expiring", "30d"],
        &["list", "--expiring", "30d", "--json"],
        &["versions", "alpha"],
        &["versions", "alpha", "--json"],
        &["audit"],
        &["audit", "--json"],
        &["backup", "alpha", "--out", "alpha.bak"],
        &["set", "alpha", secret],
    ] {
        let out = env.raw(args, b"");
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        let all = [out.stdout.as_slice(), out.stderr.as_bytes()].concat();
        assert!(
            !String::from_utf8_lossy(&all).contains(secret),
            "{args:?} printed the value"
        );
    }
    let backup = std::fs::read(env.path("alpha.bak")).unwrap();
    assert!(!backup.windows(secret.len()).any(|w| w == secret.as_bytes()));
}

#[test]
fn list_sorts_by_name_and_filters() {
    let env = Env::new();
    for name in ["zeta", "Alpha", "mid", "beta"] {
        env.set(name, "v");
    }
    env.ok(&["set", "soon", "v", "--expires", "2d"]);
    env.ok(&["set", "later", "v", "--expires", "40d"]);
    let names: Vec<String> = env
        .raw(&["list", "--json"], b"")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["Alpha", "beta", "later", "mid", "soon", "zeta"]);

    let table = env.ok(&["list"]);
    let rows: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(rows, ["Alpha", "beta", "later", "mid", "soon", "zeta"]);

    let expiring = env
        .raw(&["list", "--expiring", "30d", "--json"], b"")
        .json();
    assert_eq!(expiring.as_array().unwrap().len(), 1);
    assert_eq!(expiring[0]["name"], "soon");
    let expiring = env
        .raw(&["list", "--expiring", "60d", "--json"], b"")
        .json();
    assert_eq!(expiring.as_array().unwrap().len(), 2);

    env.ok(&["delete", "mid"]);
    let deleted = env.raw(&["list", "--deleted", "--json"], b"").json();
    assert_eq!(deleted.as_array().unwrap().len(), 1);
    assert_eq!(deleted[0]["name"], "mid");
    let purge = deleted[0]["scheduled_purge_unix"].as_i64().unwrap();
    let deleted_on = deleted[0]["deleted_on_unix"].as_i64().unwrap();
    assert_eq!(purge - deleted_on, 90 * 86_400);
    assert!(
        deleted[0]["scheduled_purge"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(!env.ok(&["list"]).contains("mid"));

    env.usage(&["list", "--deleted", "--expiring", "1d"]);
    env.usage(&["list", "--expiring", "soon"]);
    assert_eq!(Env::new().ok(&["list"]), "no secrets\n");
    assert_eq!(
        Env::new().raw(&["list", "--json"], b"").json(),
        Value::Array(vec![])
    );
}

#[test]
fn update_changes_properties_without_a_new_version() {
    let env = Env::new();
    let v1 = env.set("token", "abc");
    env.ok(&[
        "set",
        "token",
        "def",
        "--tag",
        "env=dev",
        "--tag",
        "owner=ann",
    ]);
    let out = env.ok(&["update", "token", "--disable"]);
    assert!(out.contains("disabled"), "{out}");
    assert!(env.fails(&["get", "token"]).starts_with("error: disabled"));
    env.ok(&[
        "update", "token", "--enable", "--tag", "env=prod", "--untag", "owner",
    ]);
    assert_eq!(env.get("token"), b"def");
    let p = env.raw(&["show", "token", "--json"], b"").json();
    assert_eq!(p["sequence"], 2, "no new version");
    assert_eq!(p["tags"], serde_json::json!({"env": "prod"}));

    env.ok(&[
        "update",
        "token",
        "--content-type",
        "text/plain",
        "--expires",
        "2099-01-01",
    ]);
    let p = env.raw(&["show", "token", "--json"], b"").json();
    assert_eq!(p["content_type"], "text/plain");
    assert_eq!(p["expires_on"], "2099-01-01T00:00:00Z");
    env.ok(&[
        "update",
        "token",
        "--no-content-type",
        "--no-expires",
        "--clear-tags",
    ]);
    let p = env.raw(&["show", "token", "--json"], b"").json();
    assert_eq!(p["content_type"], Value::Null);
    assert_eq!(p["expires_on"], Value::Null);
    assert_eq!(p["tags"], serde_json::json!({}));

    // An older version by id.
    env.ok(&["update", "token", "--version", &v1, "--disable"]);
    let line = env.fails(&["get", "token", "--version", &v1]);
    assert!(line.starts_with("error: disabled"), "{line}");
    assert_eq!(env.get("token"), b"def");

    env.usage(&["update", "token"]);
    env.usage(&["update", "token", "--enable", "--disable"]);
    env.usage(&["update", "token", "--expires", "someday"]);
    env.usage(&["update", "token", "--tag", "novalue"]);
    assert!(
        env.fails(&["update", "nothing-here", "--enable"])
            .contains("not found")
    );
}

#[test]
fn malformed_arguments_are_usage_errors_and_change_nothing() {
    let env = Env::new();
    env.set("keep", "v");
    let before = std::fs::read(&env.vault).unwrap();
    for args in [
        &["frobnicate"][..],
        &["get"],
        &["set", "x", "v", "--tag", "=v"],
        &["set", "x", "v", "--tag", "k"],
        &["set", "x", "v", "--expires", "tomorrow"],
        &["set", "x", "v", "--expires", "2026-01-31T12:00:00"],
        &["set", "x", "v", "--not-before", "1.5d"],
        &["set", "x", "v", "--file", "f", "--if-absent"],
        &["set", "x", "--if-version", "123"],
        &["show", "keep", "--version", "abc"],
        &["settings", "--purge-protection", "yes"],
        &["slot", "add", "--label", "x", "--role", "admin"],
        &["run", "--all"],
        &["run", "--", "true"],
        &["completions", "tcsh"],
        &["--audit-reads", "sometimes", "list"],
    ] {
        env.usage(args);
    }
    assert!(
        std::fs::read(&env.vault).unwrap() == before,
        "nothing changed on disk"
    );
    let help = env.ok(&["--help"]);
    assert!(
        help.contains("keygen") && help.contains("rotate-key"),
        "{help}"
    );
}

#[test]
fn invalid_names_and_values_are_clear_errors() {
    let env = Env::new();
    let line = env.fails(&["set", "db_password", "x"]);
    assert!(
        line.starts_with("error: invalid name 'db_password'"),
        "{line}"
    );
    let long = "a".repeat(128);
    assert!(env.fails(&["set", &long, "x"]).contains("invalid name"));
    let big = env.path("big");
    std::fs::write(&big, vec![b'x'; 26 * 1024]).unwrap();
    let line = env.fails(&["set", "big", "--file", big.to_str().unwrap()]);
    assert!(line.contains("value too large"), "{line}");
    let line = env.fails(&["set", "x", "--file", "no-such-file"]);
    assert!(line.contains("cannot read value file"), "{line}");
    let tags: Vec<String> = (0..16).map(|i| format!("k{i}=v")).collect();
    let mut args = vec!["set", "tagged", "x"];
    for t in &tags {
        args.extend(["--tag", t.as_str()]);
    }
    assert!(env.fails(&args).contains("at most 15 tags"));
    assert!(
        env.fails(&["get", "never-set"])
            .contains("not found: no secret named 'never-set'")
    );
}

// ---------------------------------------------------------------------------------------------
// delete, recover, purge

#[test]
fn delete_recover_purge() {
    let env = Env::new();
    env.set("old-token", "abc");
    let out = env.ok(&["delete", "old-token"]);
    assert!(out.contains("recoverable until"), "{out}");
    let line = env.fails(&["get", "old-token"]);
    assert!(line.starts_with("error: deleted: 'old-token'"), "{line}");
    let line = env.fails(&["set", "old-token", "x"]);
    assert!(
        line.contains("conflict") && line.contains("deleted"),
        "{line}"
    );
    assert!(env.fails(&["delete", "old-token"]).contains("deleted"));

    env.ok(&["recover", "old-token"]);
    assert_eq!(env.get("old-token"), b"abc");
    let line = env.fails(&["recover", "old-token"]);
    assert!(line.contains("not deleted"), "{line}");
    let line = env.fails(&["purge", "old-token"]);
    assert!(line.contains("not deleted"), "{line}");

    env.ok(&["delete", "old-token"]);
    env.ok(&["purge", "old-token"]);
    assert!(env.fails(&["get", "old-token"]).contains("not found"));
    assert!(env.fails(&["recover", "old-token"]).contains("not found"));
    env.set("old-token", "reused");
    assert_eq!(env.get("old-token"), b"reused");
}

#[test]
fn purge_protection_refuses_early_purges_and_cannot_be_turned_off() {
    let env = Env::with_init(&["--purge-protection", "--retention-days", "30"]);
    env.set("guarded", "v");
    env.ok(&["delete", "guarded"]);
    let before = seconds_now();
    let line = env.fails(&["purge", "guarded"]);
    assert!(
        line.starts_with("error: purge protected: 'guarded' may not be purged before "),
        "{line}"
    );
    let date = line.rsplit(' ').next().unwrap();
    let listed = env.raw(&["list", "--deleted", "--json"], b"").json();
    assert_eq!(
        listed[0]["scheduled_purge"], date,
        "the refusal names the purge date"
    );
    let until = listed[0]["scheduled_purge_unix"].as_i64().unwrap();
    assert!(until >= before + 30 * 86_400 - 5 && until <= seconds_now() + 30 * 86_400);
    env.ok(&["recover", "guarded"]);
    assert_eq!(env.get("guarded"), b"v");

    let err = env.usage(&["settings", "--purge-protection", "off"]);
    assert!(err.contains("cannot be turned off"), "{err}");
    assert_eq!(
        env.raw(&["settings", "--json"], b"").json()["purge_protection"],
        true
    );
}

#[test]
fn settings_turn_purge_protection_on_and_limit_versions() {
    let env = Env::new();
    let human = env.ok(&["settings"]);
    assert!(human.contains("purge protection  off"), "{human}");
    let s = env.raw(&["settings", "--json"], b"").json();
    assert_eq!(
        s,
        serde_json::json!({"retention_days": 90, "purge_protection": false, "max_versions": null})
    );

    env.set("x", "v");
    env.ok(&["delete", "x"]);
    let on = env.ok(&["settings", "--purge-protection", "on"]);
    assert!(on.contains("purge protection  on"), "{on}");
    assert!(env.fails(&["purge", "x"]).contains("purge protected"));
    // Turning it on again is harmless; it stays on.
    env.ok(&["settings", "--purge-protection", "on"]);

    env.ok(&["settings", "--max-versions", "2"]);
    for v in ["1", "2", "3"] {
        env.set("capped", v);
    }
    let versions = env.raw(&["versions", "capped", "--json"], b"").json();
    assert_eq!(versions.as_array().unwrap().len(), 2);
    let s = env.ok(&["settings", "--max-versions", "none"]);
    assert!(s.contains("unlimited"), "{s}");
}

// ---------------------------------------------------------------------------------------------
// backup, restore, copy

#[test]
fn backup_and_restore_a_secret() {
    let env = Env::new();
    let v1 = env.set("cert", "v1");
    env.set("cert", "v2");
    env.ok(&["backup", "cert", "--out", "cert.bak"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.path("cert.bak"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let line = env.fails(&["backup", "cert", "--out", "cert.bak"]);
    assert!(line.contains("already exists"), "{line}");
    let line = env.fails(&["restore", "cert.bak"]);
    assert!(line.contains("conflict"), "{line}");

    env.ok(&["delete", "cert"]);
    env.ok(&["purge", "cert"]);
    let out = env.ok(&["restore", "cert.bak"]);
    assert!(out.contains("restored 'cert'"), "{out}");
    assert_eq!(env.get("cert"), b"v2");
    let out = env.raw(&["get", "cert", "--version", &v1], b"");
    assert_eq!(out.stdout, b"v1", "every version came back");

    std::fs::write(env.path("garbage.bak"), b"not a backup at all").unwrap();
    let line = env.fails(&["restore", "garbage.bak"]);
    assert!(line.contains("invalid backup"), "{line}");
    let line = env.fails(&["restore", "missing.bak"]);
    assert!(line.contains("cannot read backup file"), "{line}");
    assert!(
        env.fails(&["backup", "nothing", "--out", "n.bak"])
            .contains("not found")
    );
    assert!(!env.path("n.bak").exists());
}

#[test]
fn copy_writes_a_vault_that_opens_with_the_same_key() {
    let env = Env::new();
    env.set("a", "1");
    env.ok(&["copy", "--out", "copy.tresor"]);
    env.set("a", "2");
    let copy = env.path("copy.tresor");
    let mut cmd = env.program();
    cmd.args([
        "--vault",
        copy.to_str().unwrap(),
        "--key-file",
        env.key.to_str().unwrap(),
        "get",
        "a",
    ])
    .write_stdin("");
    let out = finish(&mut cmd);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, b"1");
    assert!(
        env.fails(&["copy", "--out", "copy.tresor"])
            .contains("already exists")
    );
    let line = env.fails(&["copy", "--out", "missing/copy.tresor"]);
    assert!(line.contains("cannot write the copy"), "{line}");
}

// ---------------------------------------------------------------------------------------------
// audit, checkpoint, check, compact

#[test]
fn audit_lists_verifies_and_tails() {
    let env = Env::new();
    env.set("db", "v");
    env.get("db");
    let out = env.ok(&["audit", "--verify"]);
    assert!(out.starts_with("ok: the audit chain of "), "{out}");
    assert_eq!(out.lines().count(), 1);

    let doc = env.raw(&["audit", "--json"], b"").json();
    assert_eq!(doc["verified_records"], Value::Null);
    let records = doc["records"].as_array().unwrap();
    let ops: Vec<&str> = records
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops[0], "VaultCreate");
    assert!(
        ops.contains(&"SecretSet") && ops.contains(&"SecretGet"),
        "{ops:?}"
    );
    let seqs: Vec<i64> = records.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    let set = records
        .iter()
        .find(|r| r["operation"] == "SecretSet")
        .unwrap();
    assert_eq!(set["name"], "db");
    assert_eq!(set["actor"], "owner");
    assert_eq!(set["error"], Value::Null);
    assert!(set["time"].as_str().unwrap().ends_with('Z'));

    let tail = env
        .raw(&["audit", "--tail", "3", "--verify", "--json"], b"")
        .json();
    assert!(tail["verified_records"].as_u64().unwrap() >= 5);
    assert_eq!(tail["records"].as_array().unwrap().len(), 3);
    let table = env.ok(&["audit", "--tail", "2"]);
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.starts_with("SEQ"));

    // Refusals are recorded too.
    env.fails(&["get", "missing"]);
    let doc = env.raw(&["audit", "--json"], b"").json();
    let refused = doc["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["operation"] == "SecretGet" && r["name"] == "missing")
        .unwrap();
    assert_eq!(refused["error"], "NotFound");
}

#[test]
fn actor_and_read_audit_level() {
    let env = Env::new();
    env.ok(&["--actor", "alice", "set", "db", "v"]);
    env.ok(&["--audit-reads", "off", "get", "db"]);
    env.ok(&["--audit-reads", "buffered", "--actor", "bob", "get", "db"]);
    let doc = env.raw(&["audit", "--json"], b"").json();
    let records = doc["records"].as_array().unwrap();
    let set = records
        .iter()
        .find(|r| r["operation"] == "SecretSet")
        .unwrap();
    assert_eq!(set["actor"], "alice");
    let gets: Vec<&Value> = records
        .iter()
        .filter(|r| r["operation"] == "SecretGet")
        .collect();
    assert_eq!(
        gets.len(),
        1,
        "the read with --audit-reads off left no record"
    );
    assert_eq!(gets[0]["actor"], "bob");
}

#[test]
fn checkpoints_detect_a_rolled_back_file() {
    let env = Env::new();
    env.set("a", "1");
    let old_copy = env.path("old.tresor");
    std::fs::copy(&env.vault, &old_copy).unwrap();
    env.set("a", "2");
    let cp = env.ok(&["checkpoint"]);
    let cp = cp.trim_end();
    assert!(cp.starts_with("tresor-cp1-"), "{cp}");
    env.ok(&["--expect-checkpoint", cp, "list"]);

    let mut cmd = env.program();
    cmd.args([
        "--vault",
        old_copy.to_str().unwrap(),
        "--key-file",
        env.key.to_str().unwrap(),
    ])
    .args(["--expect-checkpoint", cp, "get", "a"])
    .write_stdin("");
    let line = error_line(&finish(&mut cmd), &["get"]);
    assert!(line.contains("rollback"), "{line}");
    env.usage(&["--expect-checkpoint", "nonsense", "list"]);
}

#[test]
fn check_and_compact() {
    let env = Env::new();
    for i in 0..5 {
        env.set(&format!("s{i}"), "value");
    }
    env.ok(&["delete", "s0"]);
    env.ok(&["purge", "s0"]);
    let out = env.ok(&["check"]);
    assert!(out.starts_with("ok: "), "{out}");
    env.ok(&["compact"]);
    assert_eq!(env.get("s4"), b"value");
    env.ok(&["check"]);
}

// ---------------------------------------------------------------------------------------------
// Unlocking: key files, passphrases, wrong keys, damaged or foreign files, locks

#[test]
fn a_wrong_key_is_a_clean_error() {
    let env = Env::new();
    env.set("db", "v");
    let other = env.path("other.key");
    env.ok(&["keygen", other.to_str().unwrap()]);
    let line = env.fails(&["--key-file", other.to_str().unwrap(), "get", "db"]);
    assert!(line.starts_with("error: wrong key"), "{line}");
    // The storage engine rewrites its own bookkeeping pages on open and close; the vault's
    // contents are untouched.
    assert_eq!(env.get("db"), b"v");
    env.ok(&["audit", "--verify"]);

    let line = env.fails(&["--key-file", "no-such.key", "get", "db"]);
    assert!(line.contains("cannot read key file"), "{line}");
    std::fs::write(env.path("bad.key"), "not hex\n").unwrap();
    let line = env.fails(&[
        "--key-file",
        "bad.key",
        "--allow-insecure-key-file",
        "get",
        "db",
    ]);
    assert!(line.contains("is not a key"), "{line}");
}

#[test]
fn files_that_are_not_vaults_are_refused_untouched() {
    let env = Env::bare();
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "junk.bin",
            (0..70_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        ("text.txt", b"hello\n".to_vec()),
        ("empty", Vec::new()),
    ];
    for (name, bytes) in &cases {
        std::fs::write(env.path(name), bytes).unwrap();
        let mut cmd = env.program();
        cmd.args([
            "--vault",
            name,
            "--key-file",
            env.key.to_str().unwrap(),
            "list",
        ])
        .write_stdin("");
        let line = error_line(&finish(&mut cmd), &[name]);
        assert!(line.contains("not a tresor vault"), "{line}");
        assert!(
            &std::fs::read(env.path(name)).unwrap() == bytes,
            "{name} changed"
        );
    }
    let line = env.fails(&["list"]);
    assert!(line.contains("no vault at"), "{line}");
}

#[test]
fn no_credential_and_no_terminal_is_a_clear_error() {
    let env = Env::new();
    let mut cmd = env.program();
    cmd.env("TRESOR_VAULT", &env.vault)
        .args(["list"])
        .write_stdin("");
    let line = error_line(&finish(&mut cmd), &["list"]);
    assert!(line.contains("no key or passphrase"), "{line}");
}

#[test]
fn a_vault_open_elsewhere_is_locked() {
    let env = Env::new();
    env.set("db", "v");
    let key = tresor::Credential::key_file(&env.key).unwrap();
    let held = tresor::Vault::open(&env.vault, &key, tresor::Options::new()).unwrap();
    let line = env.fails(&["--wait", "0", "get", "db"]);
    assert!(line.starts_with("error: locked"), "{line}");
    drop(held);
    assert_eq!(env.get("db"), b"v");
}

/// A vault unlocked by a passphrase (cheap Argon2 parameters through `TRESOR_KDF=min`).
fn passphrase_env(pass: &str) -> (Env, PathBuf) {
    let env = Env::bare();
    let file = env.path("pass.txt");
    std::fs::write(&file, format!("{pass}\n")).unwrap();
    let mut cmd = env.program();
    cmd.env("TRESOR_VAULT", &env.vault)
        .env("TRESOR_KDF", "min")
        .args(["--passphrase-file", file.to_str().unwrap(), "init"])
        .write_stdin("");
    let out = finish(&mut cmd);
    assert_eq!(out.code, 0, "{}", out.stderr);
    (env, file)
}

/// Runs with the passphrase in `TRESOR_PASSPHRASE` (no key file).
fn with_passphrase(env: &Env, pass: &str, args: &[&str]) -> Out {
    let mut cmd = env.program();
    cmd.env("TRESOR_VAULT", &env.vault)
        .env("TRESOR_KDF", "min")
        .env("TRESOR_PASSPHRASE", pass)
        .args(args)
        .write_stdin("");
    finish(&mut cmd)
}

#[test]
fn passphrases_unlock_and_change() {
    let (env, file) = passphrase_env("correct horse");
    let out = with_passphrase(&env, "correct horse", &["set", "db", "v"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let slots = with_passphrase(&env, "correct horse", &["slot", "list", "--json"]).json();
    assert_eq!(slots[0]["kind"], "passphrase");
    assert_eq!(slots[0]["kdf"]["memory_kib"], 19 * 1024);

    // `run` hands its command the secrets asked for, not the vault's passphrase.
    let out = with_passphrase(
        &env,
        "correct horse",
        &[
            "run",
            "--env",
            "DB=db",
            "--",
            "sh",
            "-c",
            r#"test "$DB" = v && test -z "$TRESOR_PASSPHRASE""#,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    let wrong = with_passphrase(&env, "wrong horse", &["get", "db"]);
    assert!(error_line(&wrong, &["get"]).starts_with("error: wrong key"));

    // The file's trailing newline is not part of the passphrase.
    let mut cmd = env.program();
    cmd.args([
        "--vault",
        env.vault.to_str().unwrap(),
        "--passphrase-file",
        file.to_str().unwrap(),
    ])
    .args(["get", "db"])
    .write_stdin("");
    assert_eq!(finish(&mut cmd).stdout, b"v");

    let new_file = env.path("new-pass.txt");
    std::fs::write(&new_file, "battery staple\n").unwrap();
    let out = with_passphrase(
        &env,
        "correct horse",
        &[
            "passwd",
            "--new-passphrase-file",
            new_file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        error_line(&with_passphrase(&env, "correct horse", &["get", "db"]), &[])
            .contains("wrong key")
    );
    assert_eq!(
        with_passphrase(&env, "battery staple", &["get", "db"]).stdout,
        b"v"
    );

    // passwd on a key slot, or a slot that does not exist, is refused.
    let out = with_passphrase(
        &env,
        "battery staple",
        &["passwd", "--slot", "9", "--new-passphrase-file", "x"],
    );
    assert!(error_line(&out, &[]).contains("no key slot 9"));
}

#[test]
fn passwd_picks_the_slot_used_to_unlock() {
    let (env, _) = passphrase_env("first pass");
    let second = env.path("second.txt");
    std::fs::write(&second, "second pass").unwrap();
    let out = with_passphrase(
        &env,
        "first pass",
        &[
            "slot",
            "add",
            "--new-passphrase-file",
            second.to_str().unwrap(),
            "--label",
            "deputy",
            "--role",
            "owner",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let changed = env.path("changed.txt");
    std::fs::write(&changed, "changed pass").unwrap();
    let out = with_passphrase(
        &env,
        "second pass",
        &["passwd", "--new-passphrase-file", changed.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.text().contains("key slot 2"), "{}", out.text());
    assert_eq!(
        with_passphrase(&env, "first pass", &["list"]).code,
        0,
        "slot 1 untouched"
    );
    assert_eq!(with_passphrase(&env, "changed pass", &["list"]).code, 0);
    assert_eq!(with_passphrase(&env, "second pass", &["list"]).code, 1);

    // With a key, and several passphrase slots, the slot must be named.
    let key_file = env.path("k2.key");
    env.ok(&["keygen", key_file.to_str().unwrap()]);
    let out = with_passphrase(
        &env,
        "first pass",
        &[
            "slot",
            "add",
            "--key-file",
            key_file.to_str().unwrap(),
            "--label",
            "k",
            "--role",
            "owner",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut cmd = env.program();
    cmd.args([
        "--vault",
        env.vault.to_str().unwrap(),
        "--key-file",
        key_file.to_str().unwrap(),
    ])
    .env("TRESOR_KDF", "min")
    .args(["passwd", "--new-passphrase-file", changed.to_str().unwrap()])
    .write_stdin("");
    assert!(error_line(&finish(&mut cmd), &[]).contains("--slot"));
}

// ---------------------------------------------------------------------------------------------
// Key slots and rotation

#[test]
fn slots_add_list_remove_with_roles() {
    let env = Env::new();
    env.set("db", "v");
    let ci = env.path("ci.key");
    env.ok(&["keygen", ci.to_str().unwrap()]);
    // After `slot add`, --key-file names the new key; the vault opens with TRESOR_KEY_FILE.
    let out = env.ok(&[
        "slot",
        "add",
        "--key-file",
        ci.to_str().unwrap(),
        "--label",
        "ci",
        "--role",
        "reader",
    ]);
    assert!(out.contains("added key slot 2"), "{out}");
    let slots = env.raw(&["slot", "list", "--json"], b"").json();
    assert_eq!(slots.as_array().unwrap().len(), 2);
    assert_eq!(slots[1]["label"], "ci");
    assert_eq!(slots[1]["role"], "reader");
    assert!(env.ok(&["slot", "list"]).contains("(unlocked with)"));

    let as_ci = |args: &[&str]| {
        let mut cmd = env.program();
        cmd.env("TRESOR_VAULT", &env.vault)
            .args(["--key-file", ci.to_str().unwrap()])
            .args(args)
            .write_stdin("");
        finish(&mut cmd)
    };
    assert_eq!(as_ci(&["get", "db"]).stdout, b"v");
    let line = error_line(&as_ci(&["set", "db", "x"]), &[]);
    assert!(
        line.starts_with("error: forbidden: the reader role may not write secrets"),
        "{line}"
    );
    assert!(error_line(&as_ci(&["slot", "list"]), &[]).contains("forbidden"));

    // The global --key-file before `slot` unlocks; the one after `add` is the new key.
    let third = env.path("third.key");
    env.ok(&["keygen", third.to_str().unwrap()]);
    let mut cmd = env.program();
    cmd.env("TRESOR_VAULT", &env.vault)
        .args(["--key-file", env.key.to_str().unwrap(), "slot", "add"])
        .args([
            "--key-file",
            third.to_str().unwrap(),
            "--label",
            "audit",
            "--role",
            "auditor",
        ])
        .write_stdin("");
    assert_eq!(finish(&mut cmd).code, 0);

    assert!(
        env.ok(&["slot", "remove", "2"])
            .contains("removed key slot 2")
    );
    assert!(error_line(&as_ci(&["get", "db"]), &[]).contains("wrong key"));
    assert!(
        env.fails(&["slot", "remove", "2"])
            .contains("no key slot 2")
    );
    env.ok(&["slot", "remove", "3"]);
    let line = env.fails(&["slot", "remove", "1"]);
    assert!(line.contains("last key slot"), "{line}");
    env.usage(&["slot", "add", "--key-file", "x", "--label", "y"]);
}

#[test]
fn rotate_key_needs_every_slot_and_keeps_every_value() {
    let env = Env::new();
    env.set("a", "1");
    env.set("b", "2");
    let spare = env.path("spare.key");
    env.ok(&["keygen", spare.to_str().unwrap()]);
    env.ok(&[
        "slot",
        "add",
        "--key-file",
        spare.to_str().unwrap(),
        "--label",
        "spare",
        "--role",
        "owner",
    ]);
    let before = std::fs::read(&env.vault).unwrap();
    let line = env.fails(&["rotate-key"]);
    assert!(line.contains("missing credential for key slot 2"), "{line}");
    assert!(line.contains("--also-key-file"), "{line}");

    let cp_before = env.ok(&["checkpoint"]);
    let out = env.ok(&["rotate-key", "--also-key-file", spare.to_str().unwrap()]);
    assert!(out.contains("rotated the master key"), "{out}");
    assert_ne!(std::fs::read(&env.vault).unwrap(), before);
    assert_eq!(env.get("a"), b"1");
    assert_eq!(env.get("b"), b"2");
    let mut cmd = env.program();
    cmd.args([
        "--vault",
        env.vault.to_str().unwrap(),
        "--key-file",
        spare.to_str().unwrap(),
        "get",
        "b",
    ])
    .write_stdin("");
    assert_eq!(finish(&mut cmd).stdout, b"2");
    env.ok(&["audit", "--verify"]);
    let line = env.fails(&["--expect-checkpoint", cp_before.trim_end(), "list"]);
    assert!(line.contains("rollback"), "{line}");
}

// ---------------------------------------------------------------------------------------------
// import, export, run

#[test]
fn import_env_and_json_then_export_both() {
    let env = Env::new();
    std::fs::write(
        env.path("app.env"),
        "# app settings\nDB_PASSWORD='p@ss word'\nexport API_KEY=abc123\nMULTI=\"one\\ntwo\"\n",
    )
    .unwrap();
    let out = env.ok(&["import", "app.env"]);
    assert!(out.contains("imported 3 secrets"), "{out}");
    assert_eq!(env.get("db-password"), b"p@ss word");
    assert_eq!(env.get("api-key"), b"abc123");
    assert_eq!(env.get("multi"), b"one\ntwo");

    std::fs::write(
        env.path("more.json"),
        r#"{"Service-Token": "t0k", "quote": "say \"hi\""}"#,
    )
    .unwrap();
    assert!(env.ok(&["import", "more.json"]).contains("imported 2"));
    assert_eq!(env.get("service-token"), b"t0k");

    let exported = env.ok(&["export"]);
    assert_eq!(
        exported,
        "API_KEY='abc123'\nDB_PASSWORD='p@ss word'\nMULTI=\"one\\ntwo\"\nQUOTE='say \"hi\"'\nSERVICE_TOKEN='t0k'\n"
    );
    let json: Value = serde_json::from_str(&env.ok(&["export", "--format", "json"])).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "api-key": "abc123", "db-password": "p@ss word", "multi": "one\ntwo",
            "quote": "say \"hi\"", "Service-Token": "t0k"
        })
    );

    // What export writes, import reads back into another vault.
    env.ok(&["export", "--out", "all.env"]);
    let other = Env::new();
    std::fs::copy(env.path("all.env"), other.path("all.env")).unwrap();
    other.ok(&["import", "all.env"]);
    for name in ["api-key", "db-password", "multi", "quote", "service-token"] {
        assert_eq!(other.get(name), env.get(name), "{name}");
    }
    assert!(
        env.fails(&["export", "--out", "all.env"])
            .contains("already exists")
    );
}

#[test]
fn import_is_one_transaction() {
    let env = Env::new();
    env.set("taken", "old");
    env.ok(&["delete", "taken"]);
    std::fs::write(env.path("batch.env"), "FIRST=1\nTAKEN=2\nLAST=3\n").unwrap();
    let line = env.fails(&["import", "batch.env"]);
    assert!(
        line.contains("'taken'") && line.contains("nothing was imported"),
        "{line}"
    );
    assert!(
        env.fails(&["get", "first"]).contains("not found"),
        "the first item was not kept"
    );
    assert!(env.fails(&["get", "last"]).contains("not found"));

    std::fs::write(env.path("dup.env"), "A_B=1\na_b=2\n").unwrap();
    assert!(env.fails(&["import", "dup.env"]).contains("twice"));
    std::fs::write(env.path("bad.env"), "OK=1\nthis line is wrong\n").unwrap();
    assert!(env.fails(&["import", "bad.env"]).contains("line 2"));
    std::fs::write(env.path("bad.json"), r#"{"n": 1}"#).unwrap();
    assert!(env.fails(&["import", "bad.json"]).contains("not a string"));
    std::fs::write(env.path("list.json"), r#"["a"]"#).unwrap();
    assert!(
        env.fails(&["import", "list.json"])
            .contains("one JSON object")
    );
    std::fs::write(env.path("name.json"), r#"{"bad name": "x"}"#).unwrap();
    assert!(env.fails(&["import", "name.json"]).contains("invalid name"));
    // Format given explicitly.
    std::fs::write(env.path("plain.txt"), r#"{"from-json": "1"}"#).unwrap();
    env.ok(&["import", "plain.txt", "--format", "json"]);
    assert_eq!(env.get("from-json"), b"1");
    assert_eq!(
        env.raw(&["list", "--json"], b"")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn export_refuses_binary_values_and_skips_disabled_ones() {
    let env = Env::new();
    env.set("text", "t");
    env.ok(&["set", "off", "x", "--disabled"]);
    let out = env.raw(&["export"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.text(), "TEXT='t'\n");
    assert!(out.stderr.contains("'off' is disabled"), "{}", out.stderr);
    std::fs::write(env.path("bin"), [0xff, 0xfe]).unwrap();
    env.ok(&["set", "raw", "--file", "bin"]);
    assert!(env.fails(&["export"]).contains("not UTF-8"));
}

#[test]
fn run_puts_secrets_in_the_child_environment() {
    let env = Env::new();
    env.set("db-password", "expected");
    env.set("api-key", "k3y");
    let run = |args: &[&str]| {
        let out = env.raw(args, b"");
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "run printed something"
        );
        out.code
    };
    assert_eq!(
        run(&[
            "run",
            "--env",
            "DB_PASSWORD=db-password",
            "--",
            "sh",
            "-c",
            r#"test "$DB_PASSWORD" = expected"#
        ]),
        0
    );
    assert_eq!(
        run(&[
            "run",
            "--env",
            "DB_PASSWORD=db-password",
            "--",
            "sh",
            "-c",
            r#"test "$DB_PASSWORD" = other"#
        ]),
        1
    );
    assert_eq!(
        run(&["run", "--env", "X=api-key", "--", "sh", "-c", "exit 7"]),
        7
    );
    assert_eq!(
        run(&[
            "run",
            "--all",
            "--",
            "sh",
            "-c",
            r#"test "$DB_PASSWORD" = expected && test "$API_KEY" = k3y"#
        ]),
        0
    );
    // --env wins over --all for the same variable; the child can open the vault itself.
    assert_eq!(
        run(&[
            "run",
            "--all",
            "--env",
            "API_KEY=db-password",
            "--",
            "sh",
            "-c",
            r#"test "$API_KEY" = expected"#
        ]),
        0
    );
    // The child gets no TRESOR_* variable: it names the vault and key itself.
    let tresor = assert_cmd::cargo::cargo_bin("tresor");
    let nested = format!(
        r#"test "$({} --vault {} --key-file {} get api-key)" = k3y"#,
        tresor.display(),
        env.vault.display(),
        env.key.display()
    );
    assert_eq!(
        run(&["run", "--env", "A=api-key", "--", "sh", "-c", &nested]),
        0
    );

    let line = env.fails(&["run", "--env", "X=missing", "--", "true"]);
    assert!(line.contains("not found"), "{line}");
    let line = env.fails(&["run", "--env", "X=api-key", "--", "no-such-program-here"]);
    assert!(line.contains("cannot run"), "{line}");
}

#[test]
fn completions_for_each_shell() {
    let env = Env::bare();
    for shell in ["bash", "zsh", "fish"] {
        let out = env.ok(&["completions", shell]);
        assert!(
            out.contains("tresor") && out.contains("rotate-key"),
            "{shell}"
        );
    }
}

#[test]
fn vault_key_and_profile_come_from_flags_or_environment() {
    let env = Env::new();
    env.set("db", "v");
    // Flags only.
    let mut cmd = env.program();
    cmd.args([
        "--vault",
        env.vault.to_str().unwrap(),
        "--key-file",
        env.key.to_str().unwrap(),
        "get",
        "db",
    ])
    .write_stdin("");
    assert_eq!(finish(&mut cmd).stdout, b"v");
    // A flag after the command works too.
    let mut cmd = env.program();
    cmd.args([
        "get",
        "db",
        "--vault",
        env.vault.to_str().unwrap(),
        "--key-file",
        env.key.to_str().unwrap(),
    ])
    .write_stdin("");
    assert_eq!(finish(&mut cmd).stdout, b"v");
    // The flag beats the environment.
    let elsewhere = env.path("elsewhere.tresor");
    let mut cmd = env.program();
    cmd.env("TRESOR_VAULT", &elsewhere)
        .env("TRESOR_KEY_FILE", &env.key)
        .args(["--vault", env.vault.to_str().unwrap(), "get", "db"])
        .write_stdin("");
    assert_eq!(finish(&mut cmd).stdout, b"v");
    assert!(!Path::new(&elsewhere).exists());
}

#[test]
fn a_damaged_vault_gives_one_error_line_never_a_panic() {
    let env = Env::new();
    for i in 0..20 {
        env.set(&format!("s{i}"), "s3cr3t-payload");
    }
    let good = std::fs::read(&env.vault).unwrap();
    let damaged = env.path("damaged.tresor");
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut refused = 0;
    for _ in 0..40 {
        let mut bytes = good.clone();
        for _ in 0..8 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] ^= 1 << (next() % 8);
        }
        std::fs::write(&damaged, &bytes).unwrap();
        for args in [&["list"][..], &["get", "s3"]] {
            let mut cmd = env.program();
            cmd.args(["--vault", damaged.to_str().unwrap()])
                .args(["--key-file", env.key.to_str().unwrap()])
                .args(args)
                .env("RUST_BACKTRACE", "1")
                .write_stdin("");
            let out = finish(&mut cmd);
            if out.code == 0 {
                assert!(out.stderr.is_empty(), "{}", out.stderr);
            } else {
                let line = error_line(&out, args);
                assert!(!line.contains("s3cr3t"), "{line}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "some damage was noticed");
}

// ---------------------------------------------------------------------------------------------
// Hostile input at the edges: what a writer stores, what a file holds, what a terminal shows.

/// Runs with `input` on stdin and `vars` added to the environment.
fn raw_with(env: &Env, args: &[&str], input: &[u8], vars: &[(&str, &str)]) -> Out {
    let mut cmd = env.program();
    cmd.env("TRESOR_VAULT", &env.vault)
        .env("TRESOR_KEY_FILE", &env.key)
        .args(args)
        .write_stdin(input.to_vec());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    finish(&mut cmd)
}

/// `set NAME` with the value on stdin.
fn set_stdin(env: &Env, name: &str, value: &[u8]) {
    let out = env.raw(&["set", name], value);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn run_all_refuses_a_secret_that_would_make_bash_run_code() {
    let env = Env::new();
    let marker = env.path("pwned");
    set_stdin(
        &env,
        "bash-env",
        format!("$(touch {})", marker.display()).as_bytes(),
    );
    let out = env.raw(&["run", "--all", "--", "bash", "-c", "true"], b"");
    let line = error_line(&out, &["run"]);
    assert!(
        line.contains("'bash-env'") && line.contains("BASH_ENV"),
        "{line}"
    );
    assert!(line.contains("--allow-env BASH_ENV"), "{line}");
    assert!(!marker.exists(), "bash ran the secret");
    // Nor through --env, nor into a .env export.
    let line = env.fails(&[
        "run",
        "--env",
        "BASH_ENV=bash-env",
        "--",
        "bash",
        "-c",
        "true",
    ]);
    assert!(line.contains("BASH_ENV"), "{line}");
    let line = env.fails(&["export"]);
    assert!(line.contains("'bash-env'"), "{line}");
    assert!(!marker.exists());
    // Only when the operator says so, by name.
    let out = env.raw(
        &[
            "run",
            "--all",
            "--allow-env",
            "BASH_ENV",
            "--",
            "bash",
            "-c",
            "true",
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(marker.exists(), "the allowed variable was set");
    let out = env.raw(&["export", "--allow-env", "bash_env"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    // JSON keeps secret names, not variables: nothing to refuse.
    env.ok(&["export", "--format", "json"]);
}

#[test]
fn run_and_export_refuse_every_class_of_startup_variable() {
    // The loader, shells, runtimes and the C library: one secret of each.
    let classes = [
        ("ld-preload", "LD_PRELOAD"),
        ("ld-library-path", "LD_LIBRARY_PATH"),
        ("dyld-insert-libraries", "DYLD_INSERT_LIBRARIES"),
        ("path", "PATH"),
        ("env", "ENV"),
        ("ifs", "IFS"),
        ("ps4", "PS4"),
        ("shellopts", "SHELLOPTS"),
        ("bashopts", "BASHOPTS"),
        ("node-options", "NODE_OPTIONS"),
        ("pythonpath", "PYTHONPATH"),
        ("pythonstartup", "PYTHONSTARTUP"),
        ("perl5opt", "PERL5OPT"),
        ("perl5lib", "PERL5LIB"),
        ("rubyopt", "RUBYOPT"),
        ("java-tool-options", "JAVA_TOOL_OPTIONS"),
        ("-java-options", "_JAVA_OPTIONS"),
        ("gconv-path", "GCONV_PATH"),
    ];
    let env = Env::new();
    for (name, _) in classes {
        if tresor_name_ok(name) {
            set_stdin(&env, name, b"/tmp/evil");
        }
    }
    set_stdin(&env, "db-password", b"fine");
    for (_, var) in classes {
        let mapping = format!("{var}=db-password");
        let line = env.fails(&["run", "--env", &mapping, "--", "true"]);
        assert!(line.contains(var) && line.contains("--allow-env"), "{line}");
        let allowed = env.raw(
            &[
                "run",
                "--env",
                &mapping,
                "--allow-env",
                var,
                "--",
                "/bin/sh",
                "-c",
                ":",
            ],
            b"",
        );
        assert_eq!(allowed.code, 0, "{var}: {}", allowed.stderr);
    }
    // --all refuses each class on its own: every other one allowed, this one is named.
    let valid: Vec<(&str, &str)> = classes
        .iter()
        .copied()
        .filter(|(name, _)| tresor_name_ok(name))
        .collect();
    for (name, var) in &valid {
        let mut args = vec!["run", "--all", "--override"];
        for (_, other) in valid.iter().filter(|(_, v)| v != var) {
            args.extend(["--allow-env", other]);
        }
        args.extend(["--", "/bin/sh", "-c", ":"]);
        let line = env.fails(&args);
        assert!(
            line.contains(&format!("'{name}'")) && line.contains(var),
            "{line}"
        );
    }
    // Allowing every one of them lets it run, with the values in place.
    let mut args = vec!["run", "--all", "--override"];
    for (name, var) in classes {
        if tresor_name_ok(name) {
            args.extend(["--allow-env", var]);
        }
    }
    args.extend(["--", "/bin/sh", "-c", "test \"$PYTHONPATH\" = /tmp/evil"]);
    let out = env.raw(&args, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = env.fails(&["export"]);
    assert!(line.contains("would set"), "{line}");
}

/// Whether the vault takes `name` (a leading `-` is not a valid secret name).
fn tresor_name_ok(name: &str) -> bool {
    !name.starts_with('-')
}

#[test]
fn run_all_leaves_the_parents_variables_alone_unless_override() {
    let env = Env::new();
    set_stdin(&env, "db-password", b"from-vault");
    set_stdin(&env, "api-key", b"k3y");
    let check = r#"test "$DB_PASSWORD" = "$WANT" && test "$API_KEY" = k3y"#;
    let out = raw_with(
        &env,
        &["run", "--all", "--", "sh", "-c", check],
        b"",
        &[("DB_PASSWORD", "from-parent"), ("WANT", "from-parent")],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("DB_PASSWORD is set already"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("from-vault"));
    let out = raw_with(
        &env,
        &["run", "--all", "--override", "--", "sh", "-c", check],
        b"",
        &[("DB_PASSWORD", "from-parent"), ("WANT", "from-vault")],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    // An explicit --env replaces the parent's variable.
    let out = raw_with(
        &env,
        &[
            "run",
            "--env",
            "DB_PASSWORD=db-password",
            "--",
            "sh",
            "-c",
            check,
        ],
        b"",
        &[
            ("DB_PASSWORD", "from-parent"),
            ("WANT", "from-vault"),
            ("API_KEY", "k3y"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn run_never_passes_tresor_variables_to_the_child() {
    let env = Env::new();
    set_stdin(&env, "api-key", b"k3y");
    std::fs::write(env.path("pass"), "not-used\n").unwrap();
    let out = raw_with(
        &env,
        &[
            "run",
            "--all",
            "--",
            "sh",
            "-c",
            "env | grep '^TRESOR_' || true",
        ],
        b"",
        &[
            ("TRESOR_PASSPHRASE_FILE", env.path("pass").to_str().unwrap()),
            ("TRESOR_ACTOR", "ci"),
            ("TRESOR_KDF", "min"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "the child saw {}", out.text());
    // A secret cannot bring one back, even allowed.
    set_stdin(&env, "tresor-key-file", b"/tmp/other.key");
    let line = env.fails(&[
        "run",
        "--all",
        "--allow-env",
        "TRESOR_KEY_FILE",
        "--",
        "true",
    ]);
    assert!(
        line.contains("'tresor-key-file'") && line.contains("tresor's own"),
        "{line}"
    );
    let line = env.fails(&["run", "--env", "tresor_vault=api-key", "--", "true"]);
    assert!(line.contains("tresor's own"), "{line}");
}

/// Characters that act on a terminal, and what each becomes once escaped.
const HOSTILE: &[(&str, &str)] = &[
    ("\u{1b}]0;owned\u{7}", "\\u{1b}]0;owned\\u{7}"),
    ("\u{1b}[2J", "\\u{1b}[2J"),
    ("\u{9b}31m", "\\u{9b}31m"),
    ("\u{7f}", "\\u{7f}"),
    ("\u{202e}", "\\u{202e}"),
    ("\u{2066}", "\\u{2066}"),
    ("\u{200b}", "\\u{200b}"),
    ("a\nFORGED", "a\\nFORGED"),
    ("\r", "\\r"),
];

/// No character of `text` acts on a terminal.
fn assert_inert(text: &str, what: &str) {
    for c in text.chars() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!bad, "{what} printed {:?} raw: {text:?}", c);
    }
}

#[test]
fn what_a_writer_controls_reaches_the_terminal_escaped() {
    let env = Env::new();
    let tag_value: String = HOSTILE.iter().map(|(raw, _)| *raw).collect();
    let escaped: String = HOSTILE.iter().map(|(_, e)| *e).collect();
    let tag = format!("k={tag_value}");
    let out = env.raw(
        &["set", "db", "--tag", &tag, "--content-type", &tag_value],
        b"v",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let writer_key = env.path("writer.key");
    env.ok(&["keygen", writer_key.to_str().unwrap()]);
    // Slot labels and actors (which audit records name) may not hold control or invisible
    // characters at all: the library refuses them, and the refusal itself is inert.
    let label = format!("w{tag_value}");
    let slot_add = [
        "slot",
        "add",
        "--key-file",
        writer_key.to_str().unwrap(),
        "--label",
        &label,
        "--role",
        "writer",
    ];
    for args in [&slot_add[..], &["--actor", &label, "get", "db"]] {
        let out = env.raw(args, b"");
        assert_eq!(out.code, 1, "{args:?} was accepted");
        assert_inert(&out.stderr, "a refused label");
        assert!(!out.stderr.contains("\nFORGED"), "{}", out.stderr);
    }

    for args in [&["show", "db"][..], &["list"], &["versions", "db"]] {
        let text = env.ok(args);
        assert_inert(&text, &args.join(" "));
        assert!(text.contains(&escaped), "{args:?}: {text}");
        assert!(!text.contains("\nFORGED"), "{args:?} printed a forged line");
    }
    for args in [&["audit"][..], &["slot", "list"]] {
        assert_inert(&env.ok(args), &args.join(" "));
    }
    // JSON is exact (the same strings once parsed) and inert as text.
    for args in [
        &["show", "db", "--json"][..],
        &["list", "--json"],
        &["versions", "db", "--json"],
        &["audit", "--json"],
        &["slot", "list", "--json"],
    ] {
        let out = env.raw(args, b"");
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_inert(&out.text(), &args.join(" "));
        out.json();
    }
    let doc = env.raw(&["show", "db", "--json"], b"").json();
    assert_eq!(doc["tags"]["k"], tag_value.as_str());
    assert_eq!(doc["content_type"], tag_value.as_str());

    // Errors quoting input: the library's, the command line's, and clap's.
    for args in [
        vec!["get".to_string(), format!("x{tag_value}")],
        vec!["set".into(), "db".into(), "--tag".into(), tag_value.clone()],
        vec!["list".into(), "--expiring".into(), tag_value.clone()],
        vec!["--vault".into(), format!("v{tag_value}"), "list".into()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = env.raw(&args, b"v");
        assert_ne!(out.code, 0);
        assert_inert(&out.stderr, &args.join(" "));
        assert!(out.stderr.contains("\\u{202e}"), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("\nFORGED"), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn a_value_starting_with_a_dash_is_never_echoed() {
    let env = Env::new();
    // As VALUE it is a value: stored, with the argv warning that never repeats it.
    let out = env.raw(&["set", "db", "-s3cret-dash"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("warning: ") && out.stderr.lines().count() == 1,
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);
    assert_eq!(env.get("db"), b"-s3cret-dash");
    // Misplaced, it is a usage error that does not repeat it, nor its first letter as a flag.
    for args in [
        &["set", "db", "value", "-s3cret-dash"][..],
        &["set", "db", "value", "--s3cret-dash"],
        &["get", "db", "-s3cret-dash"],
        &["set", "--tag", "k=v", "db", "x", "-s3cret-dash"],
        &["run", "--env", "A=db", "-s3cret-dash", "--", "true"],
    ] {
        let out = env.raw(args, b"");
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with("error:"), "{}", out.stderr);
        assert!(!out.stderr.contains("s3cret"), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("-s'"), "{args:?}: {}", out.stderr);
    }
    // A typo of a flag still says where to look.
    let out = env.raw(&["list", "--jsn"], b"");
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--json"), "{}", out.stderr);
}

#[test]
fn a_value_in_argv_works_with_a_warning_that_does_not_repeat_it() {
    let env = Env::new();
    let out = env.raw(&["set", "db", "hunter2-argv"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("process list"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1);
    // stdin and --file: no warning.
    let out = env.raw(&["set", "db"], b"hunter2-stdin");
    assert!(out.code == 0 && out.stderr.is_empty(), "{}", out.stderr);
    std::fs::write(env.path("v"), "hunter2-file").unwrap();
    let out = env.raw(&["set", "db", "--file", "v"], b"");
    assert!(out.code == 0 && out.stderr.is_empty(), "{}", out.stderr);
    assert_eq!(env.get("db"), b"hunter2-file");
}

#[test]
fn an_empty_value_needs_allow_empty() {
    let env = Env::new();
    let line = env.fails(&["set", "db"]);
    assert!(
        line.contains("empty value") && line.contains("--allow-empty"),
        "{line}"
    );
    assert!(env.fails(&["get", "db"]).contains("not found"));
    std::fs::write(env.path("empty"), "").unwrap();
    let line = env.fails(&["set", "db", "--file", "empty"]);
    assert!(line.contains("--allow-empty"), "{line}");
    let line = env.fails(&["set", "db", ""]);
    assert!(line.contains("--allow-empty"), "{line}");
    env.ok(&["set", "db", "--allow-empty"]);
    assert_eq!(env.get("db"), b"");
}

#[test]
fn the_hint_for_a_disabled_older_version_enables_that_version() {
    let env = Env::new();
    set_stdin(&env, "db", b"old");
    let old = env.raw(&["show", "db", "--json"], b"").json()["version"]
        .as_str()
        .unwrap()
        .to_string();
    set_stdin(&env, "db", b"new");
    env.ok(&["update", "db", "--version", &old, "--disable"]);
    let line = env.fails(&["get", "db", "--version", &old]);
    let hint = line.split('`').nth(1).expect("a command in backticks");
    assert!(hint.contains(&format!("--version {old}")), "{line}");
    // The hint, run as printed, enables exactly the version asked for.
    let words: Vec<&str> = hint.split_whitespace().collect();
    assert_eq!(words[0], "tresor");
    env.ok(&words[1..]);
    let out = env.raw(&["get", "db", "--version", &old], b"");
    assert_eq!(out.stdout, b"old", "{}", out.stderr);
    // The current version's hint needs no --version.
    env.ok(&["update", "db", "--disable"]);
    let line = env.fails(&["get", "db"]);
    assert!(line.contains("`tresor update db --enable`"), "{line}");
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    set_stdin(&env, "db", b"v");
    for loose in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&env.key, std::fs::Permissions::from_mode(loose)).unwrap();
        let line = env.fails(&["get", "db"]);
        assert!(
            line.contains(&format!("chmod 600 {}", env.key.display())),
            "{line}"
        );
        assert!(line.contains("--allow-insecure-key-file"), "{line}");
        let out = env.raw(&["--allow-insecure-key-file", "get", "db"], b"");
        assert_eq!(out.stdout, b"v", "{}", out.stderr);
    }
    // The same for the key of a new slot and the keys of a rotation.
    std::fs::set_permissions(&env.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let other = env.path("other.key");
    env.ok(&["keygen", other.to_str().unwrap()]);
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
    let line = env.fails(&[
        "slot",
        "add",
        "--key-file",
        other.to_str().unwrap(),
        "--label",
        "o",
        "--role",
        "reader",
    ]);
    assert!(line.contains("chmod 600"), "{line}");
    assert!(
        env.fails(&["rotate-key", "--also-key-file", other.to_str().unwrap()])
            .contains("chmod 600")
    );
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o400)).unwrap();
    env.ok(&[
        "slot",
        "add",
        "--key-file",
        other.to_str().unwrap(),
        "--label",
        "o",
        "--role",
        "reader",
    ]);
}

#[cfg(unix)]
#[test]
fn endless_inputs_fail_fast_with_a_clear_error() {
    let env = Env::new();
    set_stdin(&env, "db", b"v");
    let started = std::time::Instant::now();
    for (args, what) in [
        (
            &[
                "--key-file",
                "/dev/zero",
                "--allow-insecure-key-file",
                "get",
                "db",
            ][..],
            "key file",
        ),
        (
            &["--passphrase-file", "/dev/zero", "get", "db"],
            "passphrase file",
        ),
        (&["set", "db", "--file", "/dev/zero"], "value file"),
        (&["import", "/dev/zero", "--format", "env"], "import file"),
        (&["restore", "/dev/zero"], "backup file"),
    ] {
        let mut cmd = env.program();
        cmd.env("TRESOR_VAULT", &env.vault)
            .args(args)
            .write_stdin("");
        if !args.contains(&"--key-file") && !args.contains(&"--passphrase-file") {
            cmd.env("TRESOR_KEY_FILE", &env.key);
        }
        let out = finish(&mut cmd);
        let line = error_line(&out, args);
        assert!(
            line.contains(what) && line.contains("too large"),
            "{args:?}: {line}"
        );
    }
    // stdin past the vault's largest value: refused after limit + 1 bytes.
    let big = vec![b'x'; 4 * 1024 * 1024 + 1];
    let out = env.raw(&["set", "db"], &big);
    let line = error_line(&out, &["set"]);
    assert!(line.contains("stdin is too large"), "{line}");
    // /dev/zero opens without a permission error for the key file check only when allowed.
    let line = env.fails(&["--key-file", "/dev/zero", "get", "db"]);
    assert!(line.contains("chmod 600"), "{line}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(env.get("db"), b"v");
}

#[cfg(unix)]
#[test]
fn files_the_command_line_creates_are_private_whatever_the_umask() {
    let env = Env::new();
    set_stdin(&env, "db", b"v");
    let tresor = assert_cmd::cargo::cargo_bin("tresor");
    // umask 0 would leave a file made with the default mode readable by everyone.
    let sh = |args: &str| {
        let mut c = std::process::Command::new("sh");
        c.current_dir(env.dir.path())
            .env("TRESOR_KEY_FILE", &env.key)
            .env("TRESOR_VAULT", &env.vault)
            .env_remove("TRESOR_PASSPHRASE")
            .args(["-c", &format!("umask 0; exec {} {args}", tresor.display())]);
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "{args}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    sh("keygen k/new.key");
    assert_eq!(mode(&env.path("k/new.key")), 0o600);
    assert_eq!(mode(&env.path("k")), 0o700);
    sh("backup db --out db.backup");
    assert_eq!(mode(&env.path("db.backup")), 0o600);
    sh("export --out all.env");
    assert_eq!(mode(&env.path("all.env")), 0o600);
    sh("export --format json --out all.json");
    assert_eq!(mode(&env.path("all.json")), 0o600);
    // The profile directory (init without --vault).
    let mut c = std::process::Command::new("sh");
    c.current_dir(env.dir.path())
        .env_remove("TRESOR_VAULT")
        .env_remove("TRESOR_PASSPHRASE")
        .env("TRESOR_KEY_FILE", &env.key)
        .args(["-c", &format!("umask 0; exec {} init", tresor.display())]);
    assert!(c.output().unwrap().status.success());
    assert_eq!(mode(&env.path(".tresor")), 0o700);
    // Never over an existing file, whatever its mode.
    std::fs::write(env.path("taken"), "keep").unwrap();
    for args in [
        &["backup", "db", "--out", "taken"][..],
        &["export", "--out", "taken"],
        &["keygen", "taken"],
    ] {
        let line = env.fails(args);
        assert!(line.contains("already exists"), "{line}");
    }
    assert_eq!(std::fs::read_to_string(env.path("taken")).unwrap(), "keep");
}

/// Ctrl-C at the passphrase prompt, under `sh` (which does not repair the terminal the way an
/// interactive bash does): the terminal must come back with echo on.
#[cfg(unix)]
#[test]
fn ctrl_c_at_the_prompt_gives_the_terminal_back() {
    let env = Env::new();
    let tresor = assert_cmd::cargo::cargo_bin("tresor");
    let script = format!(
        // The pseudo-terminal starts with echo off: turn it on as a user's terminal has it.
        "stty echo; {} --vault {} get db; echo status=$?; stty -a",
        tresor.display(),
        env.vault.display()
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]).current_dir(env.dir.path());
    for var in TRESOR_VARS {
        cmd.env_remove(var);
    }
    let mut session = match rexpect::session::spawn_command(cmd, Some(20_000)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: no pseudo-terminal could be had here ({e})");
            return;
        }
    };
    session.exp_string("Passphrase for").expect("the prompt");
    // Typed characters are not echoed, then Ctrl-C.
    session.send("half-typed").unwrap();
    session.send_control('c').unwrap();
    session.exp_string("status=130").expect("exit status 130");
    let rest = session.exp_eof().expect("stty's output");
    let flags: Vec<&str> = rest.split_whitespace().collect();
    assert!(
        flags.contains(&"echo") && !flags.contains(&"-echo"),
        "echo is off: {rest}"
    );
    assert!(
        flags.contains(&"icanon") && flags.contains(&"isig"),
        "raw mode left: {rest}"
    );
    assert!(!rest.contains("half-typed"), "the passphrase was echoed");
}

/// The prompt itself: hidden, with backspace, and the terminal as it was afterwards.
#[cfg(unix)]
#[test]
fn the_prompt_reads_a_hidden_line_and_restores_the_terminal() {
    let (env, _) = passphrase_env("pass-word");
    let out = with_passphrase(&env, "pass-word", &["set", "db", "v4lue"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let tresor = assert_cmd::cargo::cargo_bin("tresor");
    let script = format!(
        "stty echo; {} --vault {} get db; echo; echo status=$?; stty -a",
        tresor.display(),
        env.vault.display()
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]).current_dir(env.dir.path());
    for var in TRESOR_VARS {
        cmd.env_remove(var);
    }
    let mut session = match rexpect::session::spawn_command(cmd, Some(20_000)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: no pseudo-terminal could be had here ({e})");
            return;
        }
    };
    session.exp_string("Passphrase for").expect("the prompt");
    // A typo corrected with backspace (DEL), then Enter.
    session.send("pass-wordX\u{7f}\r").unwrap();
    session.flush().unwrap();
    let before = session.exp_string("status=").expect("the command ended");
    assert!(before.contains("v4lue"), "{before}");
    assert!(
        !before.contains("pass-word"),
        "the passphrase was echoed: {before}"
    );
    let rest = session.exp_eof().expect("stty's output");
    let flags: Vec<&str> = rest.split_whitespace().collect();
    assert!(rest.starts_with('0'), "{rest}");
    assert!(
        flags.contains(&"echo") && flags.contains(&"icanon") && flags.contains(&"isig"),
        "{rest}"
    );
}

/// The whole vault file put back from an older copy: every command refuses it, naming both
/// audit lengths and the way out; `witness reset` accepts it (recorded), and `witness show`
/// then says the two are in step. Audit records name the key slot that acted.
#[test]
fn a_vault_file_put_back_from_an_older_copy_is_refused_until_reset() {
    let env = Env::new();
    assert_eq!(env.raw(&["set", "db"], b"one").code, 0);
    let older = env.path("older.tresor");
    std::fs::copy(&env.vault, &older).unwrap();
    assert_eq!(env.raw(&["set", "db"], b"two").code, 0);
    std::fs::copy(&older, &env.vault).unwrap();
    let err = env.fails(&["get", "db"]);
    assert!(err.contains("rolled back"), "{err}");
    let out = env.raw(&["get", "db"], b"");
    assert!(
        out.stderr.contains("tresor witness reset"),
        "{}",
        out.stderr
    );
    let show = env.ok(&["witness", "show"]);
    assert!(show.contains("BEHIND"), "{show}");
    // Opening without the witness works (the file itself is sound); written to, the older
    // copy now differs from what the witness saw.
    assert_eq!(env.ok(&["--no-witness", "get", "db"]), "one");
    let show = env.ok(&["witness", "show"]);
    assert!(
        show.contains("DIFFERS") || show.contains("BEHIND"),
        "{show}"
    );
    let reset = env.ok(&["witness", "reset"]);
    assert!(reset.contains("now follows"), "{reset}");
    assert_eq!(env.ok(&["get", "db"]), "one");
    assert!(env.ok(&["witness", "show"]).contains("in step"));
    let audit = env.raw(&["audit", "--json"], b"").json();
    let records = audit["records"].as_array().unwrap();
    assert!(records.iter().any(|r| r["operation"] == "WitnessReset"));
    let last = records.last().unwrap();
    assert_eq!(last["principal"]["kind"], "slot");
    assert_eq!(last["principal"]["id"], "1");
    assert_eq!(last["principal"]["role"], "owner");
    assert!(env.ok(&["audit", "--tail", "1"]).contains("slot 1 (owner)"));
}

/// Removing a slot or changing a passphrase says that a rotation is needed to cut the old
/// credential off, and `--rotate` does it (rotation, then compaction).
#[test]
fn slot_remove_and_passwd_offer_a_rotation() {
    let env = Env::new();
    let second = env.path("second.key");
    env.ok(&["keygen", second.to_str().unwrap()]);
    let add = |label: &str| {
        env.ok(&[
            "slot",
            "add",
            "--key-file",
            second.to_str().unwrap(),
            "--label",
            label,
            "--role",
            "reader",
        ])
    };
    add("laptop");
    let out = env.raw(&["slot", "remove", "2"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("rotate-key"), "{}", out.stderr);
    add("laptop-again");
    let out = env.raw(&["slot", "remove", "2", "--rotate"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("rotated the master key"), "{text}");
    assert!(text.contains("compacted"), "{text}");
    assert!(env.ok(&["check"]).contains("ok"));
}

// ---------------------------------------------------------------------------------------------
// Key slots outside the vault: age recipients and the OS keychain

/// A new X25519 age identity in the test's directory; returns its file and recipient.
fn age_identity(env: &Env, name: &str) -> (PathBuf, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let path = env.path(name);
    std::fs::write(&path, format!("{}\n", id.to_string().expose_secret())).unwrap();
    (path, id.to_public().to_string())
}

/// Runs with the vault given, no key file, and these variables.
fn without_key(env: &Env, args: &[&str], vars: &[(&str, &std::ffi::OsStr)]) -> Out {
    let mut cmd = env.program();
    cmd.env("TRESOR_VAULT", &env.vault)
        .args(args)
        .write_stdin("");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    finish(&mut cmd)
}

#[test]
fn age_slots_unlock_with_an_identity_file() {
    let env = Env::new();
    env.set("db", "v");
    let (id, recipient) = age_identity(&env, "age.txt");
    let (other, other_recipient) = age_identity(&env, "other.txt");
    let out = env.ok(&[
        "slot",
        "add",
        "--age",
        &recipient,
        "--age",
        &other_recipient,
        "--label",
        "laptop",
        "--role",
        "reader",
    ]);
    assert!(out.contains("added key slot 2"), "{out}");
    assert!(out.contains("wrapped to 2 age recipients"), "{out}");
    assert!(env.ok(&["slot", "list"]).contains("provider (age)"));
    let slots = env.raw(&["slot", "list", "--json"], b"").json();
    assert_eq!(slots[1]["kind"], "provider");
    assert_eq!(slots[1]["provider"], "age");

    // TRESOR_AGE_IDENTITY, or --age-identity: either recipient's identity opens slot 2.
    let by_env = without_key(
        &env,
        &["get", "db"],
        &[("TRESOR_AGE_IDENTITY", id.as_os_str())],
    );
    assert_eq!(by_env.code, 0, "{}", by_env.stderr);
    assert_eq!(by_env.stdout, b"v");
    let by_flag = without_key(
        &env,
        &["--age-identity", other.to_str().unwrap(), "slot", "list"],
        &[],
    );
    let line = error_line(&by_flag, &[]);
    assert!(
        line.contains("forbidden"),
        "a reader may not list slots: {line}"
    );
    let got = without_key(
        &env,
        &["--age-identity", other.to_str().unwrap(), "get", "db"],
        &[],
    );
    assert_eq!(got.stdout, b"v", "{}", got.stderr);

    // An identity of no slot: the error names the slot and the cause, on one line.
    let (stranger, _) = age_identity(&env, "stranger.txt");
    let out = without_key(
        &env,
        &["get", "db"],
        &[("TRESOR_AGE_IDENTITY", stranger.as_os_str())],
    );
    let line = error_line(&out, &[]);
    assert!(line.contains("key slot 2 (\"laptop\")"), "{line}");
    assert!(line.contains("none of the age identities"), "{line}");
    // A missing identity file.
    let out = without_key(&env, &["--age-identity", "nope.txt", "get", "db"], &[]);
    assert!(error_line(&out, &[]).contains("nope.txt"));

    // --age goes with neither a new key file nor a new passphrase file; a bad recipient is an
    // error that changes nothing.
    env.usage(&[
        "slot",
        "add",
        "--age",
        &recipient,
        "--key-file",
        "k",
        "--label",
        "x",
        "--role",
        "owner",
    ]);
    env.usage(&[
        "slot",
        "add",
        "--age",
        &recipient,
        "--keychain",
        "--label",
        "x",
        "--role",
        "owner",
    ]);
    let line = env.fails(&[
        "slot", "add", "--age", "age1nope", "--label", "x", "--role", "owner",
    ]);
    assert!(line.contains("not an age recipient"), "{line}");
    assert_eq!(
        env.raw(&["slot", "list", "--json"], b"")
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn age_slot_with_an_ssh_key() {
    let env = Env::new();
    env.set("db", "v");
    let key = env.path("id_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !made {
        println!("skipped: ssh-keygen is not installed (tests/age.rs covers SSH keys)");
        return;
    }
    let public = std::fs::read_to_string(env.path("id_ed25519.pub")).unwrap();
    let out = env.ok(&[
        "slot",
        "add",
        "--age",
        public.trim(),
        "--label",
        "ssh",
        "--role",
        "owner",
    ]);
    assert!(out.contains("added key slot 2"), "{out}");
    let got = without_key(
        &env,
        &["get", "db"],
        &[("TRESOR_AGE_IDENTITY", key.as_os_str())],
    );
    assert_eq!(got.stdout, b"v", "{}", got.stderr);
}

#[test]
fn init_with_age_and_rotation_of_age_slots() {
    let env = Env::bare();
    let (id, recipient) = age_identity(&env, "age.txt");
    let mut cmd = env.program();
    cmd.env("TRESOR_VAULT", &env.vault)
        .args(["init", "--age", &recipient, "--label", "me"])
        .write_stdin("");
    let out = finish(&mut cmd);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.text().contains("wrapped to 1 age recipient"),
        "{}",
        out.text()
    );
    let with_id =
        |args: &[&str]| without_key(&env, args, &[("TRESOR_AGE_IDENTITY", id.as_os_str())]);
    let out = with_id(&["slot", "list", "--json"]);
    let slots = out.json();
    assert_eq!(slots[0]["provider"], "age");
    assert_eq!(slots[0]["role"], "owner");
    assert_eq!(slots[0]["label"], "me");
    let mut cmd = env.program();
    cmd.env("TRESOR_VAULT", &env.vault)
        .env("TRESOR_AGE_IDENTITY", &id)
        .args(["set", "db", "v"])
        .write_stdin("");
    assert_eq!(finish(&mut cmd).code, 0);
    // A key slot added: rotating from it needs the age slot's identity too.
    let mut cmd = env.program();
    cmd.env("TRESOR_VAULT", &env.vault)
        .env("TRESOR_AGE_IDENTITY", &id)
        .args([
            "slot",
            "add",
            "--key-file",
            env.key.to_str().unwrap(),
            "--label",
            "k",
            "--role",
            "owner",
        ])
        .write_stdin("");
    assert_eq!(finish(&mut cmd).code, 0);
    let line = env.fails(&["rotate-key"]);
    assert!(line.contains("key slot 1"), "{line}");
    let out = raw_with(
        &env,
        &["--age-identity", id.to_str().unwrap(), "rotate-key"],
        b"",
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(with_id(&["get", "db"]).stdout, b"v");
}

/// Whether the kernel keyring takes an entry here; prints why not.
fn kernel_keyring_works() -> bool {
    use tresor::KeyProvider;
    use tresor::providers::{KeychainProvider, KeychainStore};
    let p = KeychainProvider::new_entry(KeychainStore::Keyutils, "cli-test-probe").unwrap();
    let ok = p.wrap(&[1u8; 32]);
    let _ = p.delete();
    match ok {
        Ok(_) => true,
        Err(e) => {
            println!("skipped: the kernel keyring refuses entries here: {e}");
            false
        }
    }
}

#[test]
fn keychain_slot_unlocks_without_any_flag() {
    if !kernel_keyring_works() {
        return;
    }
    let env = Env::new();
    env.set("db", "v");
    let out = env.ok(&[
        "slot",
        "add",
        "--keychain",
        "--keychain-store",
        "keyutils",
        "--label",
        "ws",
        "--role",
        "writer",
    ]);
    assert!(out.contains("added key slot 2"), "{out}");
    let entry = out
        .split("entry ")
        .nth(1)
        .expect("the entry is named")
        .trim_end()
        .trim_end_matches(')')
        .to_string();
    let user = entry
        .strip_prefix("tresor/")
        .expect("service tresor")
        .to_string();
    assert!(user.starts_with("ws/"), "{user}");
    assert!(env.ok(&["slot", "list"]).contains("provider (keyring)"));

    // No key file, no passphrase, no terminal: the keychain opens it, quietly.
    let got = without_key(&env, &["get", "db"], &[]);
    assert_eq!(got.code, 0, "{}", got.stderr);
    assert_eq!(got.stdout, b"v");
    assert_eq!(got.stderr, "");
    let set = without_key(&env, &["set", "db", "w"], &[]);
    assert_eq!(set.code, 0, "a writer writes: {}", set.stderr);
    // A credential given wins over the keychain.
    let list = without_key(
        &env,
        &["--key-file", env.key.to_str().unwrap(), "slot", "list"],
        &[],
    );
    assert_eq!(list.code, 0, "{}", list.stderr);

    // The entry deleted: one error line naming the slot, the store and the missing entry.
    tresor::providers::KeychainProvider::new(
        tresor::providers::KeychainStore::Keyutils,
        "tresor",
        user,
    )
    .delete()
    .unwrap();
    let line = error_line(&without_key(&env, &["get", "db"], &[]), &[]);
    assert!(line.contains("the OS keychain did not open"), "{line}");
    assert!(line.contains("key slot 2 (\"ws\")"), "{line}");
    assert!(
        line.contains("keyutils credential store has no entry"),
        "{line}"
    );
    assert!(line.contains("no key or passphrase"), "{line}");
    // The key file still opens it.
    assert_eq!(env.get("db"), b"w");
}

#[test]
fn keychain_is_not_asked_when_the_vault_has_no_keychain_slot() {
    let env = Env::new();
    // An unreachable session bus: a keychain lookup would fail loudly; none happens.
    let out = without_key(
        &env,
        &["get", "db"],
        &[(
            "DBUS_SESSION_BUS_ADDRESS",
            std::ffi::OsStr::new("unix:path=/nonexistent/bus"),
        )],
    );
    let line = error_line(&out, &[]);
    assert!(line.starts_with("error: no key or passphrase"), "{line}");
}

#[test]
fn keychain_slot_in_a_secret_service() {
    let missing: Vec<&str> = ["dbus-run-session", "gnome-keyring-daemon"]
        .into_iter()
        .filter(|tool| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| !o.status.success())
                .unwrap_or(true)
        })
        .collect();
    if !missing.is_empty() {
        println!(
            "skipped: {} not installed (no Secret Service to test)",
            missing.join(", ")
        );
        return;
    }
    let env = Env::new();
    env.set("db", "v");
    // One private D-Bus session with an unlocked gnome-keyring: `slot add --keychain` picks the
    // Secret Service (it answers), then `get` with no credential at all finds the entry.
    let script = r#"
        printf tresor-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null
        TRESOR_KEY_FILE="$KEY" "$TRESOR" slot add --keychain --label ws --role reader
        "$TRESOR" get db; echo
        TRESOR_KEY_FILE="$KEY" "$TRESOR" slot list
    "#;
    let out = std::process::Command::new("dbus-run-session")
        .args(["--", "sh", "-ec", script])
        .current_dir(env.dir.path())
        .env_remove("TRESOR_KEY_FILE")
        .env_remove("TRESOR_PASSPHRASE")
        .env("TRESOR", env!("CARGO_BIN_EXE_tresor"))
        .env("TRESOR_VAULT", &env.vault)
        .env("KEY", &env.key)
        .env("HOME", env.dir.path())
        .env("XDG_DATA_HOME", env.path("data"))
        .env("XDG_RUNTIME_DIR", env.dir.path())
        .env("XDG_STATE_HOME", env.path("state"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("added key slot 2 ('ws', reader role; key in the secret-service credential store, entry tresor/ws/"),
        "{stdout}"
    );
    let mut lines = stdout
        .lines()
        .skip_while(|l| !l.starts_with("added key slot"));
    lines.next();
    assert_eq!(lines.next(), Some("v"), "{stdout}\n{stderr}");
    assert!(stdout.contains("provider (keyring)"), "{stdout}");
    assert!(!stderr.contains("note:"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// TPM key slots (the `tpm` feature of the command line)

/// A software TPM (swtpm) on free local ports, shared with the library's TPM tests.
#[cfg(all(feature = "tpm", unix))]
#[path = "../../tests/common/swtpm.rs"]
mod swtpm;
#[cfg(all(feature = "tpm", unix))]
use swtpm::Swtpm;

#[cfg(all(feature = "tpm", unix))]
#[test]
fn tpm_slot_from_init_unlocks_without_any_flag() {
    let Some(tpm) = Swtpm::start() else { return };
    let tcti = tpm.tcti();
    let env = Env::bare();
    let with_tpm = |args: &[&str], tcti: &str| {
        without_key(
            &env,
            args,
            &[
                ("TRESOR_TPM_TCTI", std::ffi::OsStr::new(tcti)),
                // tpm2-tss writes its own diagnostics to stderr unless told not to.
                ("TSS2_LOG", std::ffi::OsStr::new("all+NONE")),
            ],
        )
    };
    let out = with_tpm(
        &["init", "--tpm", "--pcrs", "7,0", "--label", "device"],
        &tcti,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.text().contains(&format!(
            "sealed to the TPM at {tcti}, bound to SHA-256 PCRs 0,7"
        )),
        "{}",
        out.text()
    );
    // No key file, no passphrase, no terminal: the TPM opens it, quietly.
    let set = with_tpm(&["set", "db", "v"], &tcti);
    assert_eq!(set.code, 0, "{}", set.stderr);
    let got = with_tpm(&["get", "db"], &tcti);
    assert_eq!(got.stdout, b"v", "{}", got.stderr);
    assert_eq!(got.stderr, "");
    let slots = with_tpm(&["slot", "list", "--json"], &tcti).json();
    assert_eq!(slots[0]["provider"], "tpm");
    assert_eq!(slots[0]["role"], "owner");
    assert!(
        with_tpm(&["slot", "list"], &tcti)
            .text()
            .contains("provider (tpm)")
    );
    // A key-file slot beside it; then the TPM gone: one error line naming the slot and the
    // cause, and the key file still opens the vault.
    let add = with_tpm(
        &[
            "slot",
            "add",
            "--key-file",
            env.key.to_str().unwrap(),
            "--label",
            "spare",
            "--role",
            "owner",
        ],
        &tcti,
    );
    assert_eq!(add.code, 0, "{}", add.stderr);
    // A rotation from the key-file slot re-wraps the TPM slot with the TPM's help; the TPM
    // still opens the vault after it.
    let rotated = with_tpm(
        &["--key-file", env.key.to_str().unwrap(), "rotate-key"],
        &tcti,
    );
    assert_eq!(rotated.code, 0, "{}", rotated.stderr);
    let got = with_tpm(&["get", "db"], &tcti);
    assert_eq!(got.stdout, b"v", "{}", got.stderr);
    drop(tpm);
    let line = error_line(&with_tpm(&["get", "db"], &tcti), &[]);
    assert!(line.contains("the TPM did not open"), "{line}");
    assert!(line.contains("key slot 1 (\"device\")"), "{line}");
    assert!(line.contains("cannot be reached"), "{line}");
    assert_eq!(env.get("db"), b"v");
    // PCRs are 0 to 23, and only with --tpm.
    env.usage(&[
        "slot", "add", "--tpm", "--pcrs", "24", "--label", "x", "--role", "owner",
    ]);
    env.usage(&[
        "slot", "add", "--pcrs", "7", "--label", "x", "--role", "owner",
    ]);
    env.usage(&[
        "slot",
        "add",
        "--tpm",
        "--key-file",
        "k",
        "--label",
        "x",
        "--role",
        "owner",
    ]);
}

#[cfg(not(feature = "tpm"))]
#[test]
fn tpm_flag_without_the_tpm_feature_is_a_clear_error() {
    let env = Env::bare();
    let line = env.fails(&["init", "--tpm"]);
    assert!(line.contains("built without TPM support"), "{line}");
    assert!(!env.vault.exists(), "nothing is created");
}

/// SoftHSM2's PKCS#11 module, when it and `softhsm2-util` are installed.
fn softhsm_module() -> Option<PathBuf> {
    Command::new("softhsm2-util")
        .arg("--version")
        .output()
        .ok()?;
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

#[test]
fn pkcs11_init_and_unlock_without_flags() {
    let Some(module) = softhsm_module() else {
        println!("skipped: SoftHSM2 is not installed (apt-get install softhsm2)");
        return;
    };
    let env = Env::bare();
    // A private SoftHSM2 token directory, a token, and an AES key imported into it.
    let tokens = env.path("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = env.path("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let softhsm = |args: &[&str]| {
        let out = Command::new("softhsm2-util")
            .args(args)
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        assert!(out.status.success(), "softhsm2-util {args:?}: {out:?}");
    };
    let (pin, so_pin) = ("424242", "97531975");
    softhsm(&[
        "--init-token",
        "--free",
        "--label",
        "cli",
        "--pin",
        pin,
        "--so-pin",
        so_pin,
    ]);
    let aes = env.path("aes.key");
    // softhsm2-util cuts an imported key at a NUL or a newline byte: the key's bytes are 32 hex
    // digits of a random key (128 random bits; enough for a test key).
    let hex = tresor::Credential::generate_key()
        .unwrap()
        .key_hex()
        .unwrap();
    let key = hex.as_bytes()[..32].to_vec();
    std::fs::write(&aes, key).unwrap();
    softhsm(&[
        "--import",
        aes.to_str().unwrap(),
        "--aes",
        "--token",
        "cli",
        "--label",
        "wrap",
        "--id",
        "01",
        "--pin",
        pin,
    ]);
    std::fs::remove_file(&aes).unwrap();
    let vars = |pin: &'static str| -> Vec<(&'static str, std::ffi::OsString)> {
        vec![
            ("SOFTHSM2_CONF", conf.clone().into_os_string()),
            ("TRESOR_PKCS11_MODULE", module.clone().into_os_string()),
            ("TRESOR_PKCS11_PIN", pin.into()),
        ]
    };
    let run = |args: &[&str], pin: &'static str| {
        let v = vars(pin);
        let refs: Vec<(&str, &std::ffi::OsStr)> =
            v.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        without_key(&env, args, &refs)
    };

    // `init --pkcs11`: the first slot's key is wrapped on the token.
    let out = run(
        &[
            "init",
            "--pkcs11",
            "pkcs11:token=cli;object=wrap",
            "--label",
            "hsm",
        ],
        pin,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.text().contains("PKCS#11 token"), "{}", out.text());
    // No flag: the module and PIN from the environment open it.
    let out = run(&["set", "db", "v"], pin);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&["get", "db"], pin);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, b"v");
    assert_eq!(out.stderr, "");
    let out = run(&["slot", "list"], pin);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.text().contains("provider (pkcs11)"), "{}", out.text());
    // `slot add --key-file`, then `slot add --pkcs11` with the same key: a second PKCS#11 slot.
    let out = run(
        &[
            "slot",
            "add",
            "--key-file",
            env.key.to_str().unwrap(),
            "--label",
            "spare",
            "--role",
            "owner",
        ],
        pin,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(
        &[
            "slot",
            "add",
            "--pkcs11",
            "pkcs11:token=cli;id=%01;type=secret-key",
            "--label",
            "reader",
            "--role",
            "reader",
        ],
        pin,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.text().contains("added key slot 3"), "{}", out.text());
    // `--pkcs11` with `--age` is a usage error.
    let out = run(
        &[
            "slot",
            "add",
            "--pkcs11",
            "pkcs11:token=cli;object=wrap",
            "--age",
            "age1x",
            "--label",
            "x",
            "--role",
            "reader",
        ],
        pin,
    );
    assert_eq!(out.code, 2, "{}", out.stderr);

    // A wrong PIN: one error line naming the slot and the cause, never the PIN; nothing written.
    let before = std::fs::read(&env.vault).unwrap();
    let line = error_line(&run(&["get", "db"], "000000"), &[]);
    assert!(line.contains("the PKCS#11 token did not open"), "{line}");
    assert!(line.contains("key slot 1 (\"hsm\")"), "{line}");
    assert!(line.contains("wrong PIN"), "{line}");
    assert!(!line.contains("000000") && !line.contains(pin), "{line}");
    assert_eq!(std::fs::read(&env.vault).unwrap(), before);
    // The key file still opens it.
    assert_eq!(env.get("db"), b"v");
    // A URI it cannot use is refused before anything is made.
    let line = error_line(
        &run(
            &[
                "slot",
                "add",
                "--pkcs11",
                "pkcs11:object=wrap",
                "--label",
                "y",
                "--role",
                "reader",
            ],
            pin,
        ),
        &[],
    );
    assert!(line.contains("names no token"), "{line}");
}
