//! age key slots (`tresor::providers::AgeProvider`): X25519 identities, SSH keys, and an age
//! plugin run through the real plugin protocol.
//!
//! This test has its own `main` (`harness = false` in Cargo.toml) because its binary is also the
//! test plugin: started as `age-plugin-tresortest` (a link to it in a temporary directory put
//! first on `PATH`), it speaks the age plugin protocol through the `age-plugin` crate. The test
//! run re-executes itself once with that `PATH`, since a test may not change its own environment.
//!
//! `cargo test --features age --test age [FILTER] [-- --nocapture]`; the timings test prints
//! unlock times by kind.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use age::secrecy::ExposeSecret;
use tresor::providers::AgeProvider;
use tresor::{Credential, Error, KeyProvider, Options, Role, SlotKind, SlotSpec, Vault};

/// The test plugin's name: its binary is `age-plugin-tresortest`.
const PLUGIN: &str = "tresortest";
/// Set in the re-executed test run: the directory holding the plugin link.
const PLUGIN_DIR_ENV: &str = "TRESOR_TEST_AGE_PLUGIN_DIR";
/// Where the plugin appends a line per state machine run, to show that it ran.
const PLUGIN_LOG_ENV: &str = "TRESOR_TEST_AGE_PLUGIN_LOG";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let argv0 = args.first().map(|a| {
        Path::new(a)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    if let Some(sm) = args.iter().find_map(|a| a.strip_prefix("--age-plugin=")) {
        plugin::log(sm);
        if let Err(e) = age_plugin::run_state_machine(sm, plugin::Handler) {
            eprintln!("age-plugin-{PLUGIN}: {e}");
            std::process::exit(1);
        }
        return;
    }
    if argv0.as_deref() == Some(&format!("age-plugin-{PLUGIN}")) {
        // `age-plugin-tresortest [NAME]`: a new identity (of the plugin NAME, to make the
        // identity of a plugin that is not installed).
        let name = args.get(1).map_or(PLUGIN, String::as_str);
        let pad: [u8; 16] = rand_bytes();
        age_plugin::print_new_identity(name, &pad, &pad);
        return;
    }
    if std::env::var_os(PLUGIN_DIR_ENV).is_none() {
        std::process::exit(reexec_with_plugin(&args));
    }
    let filter: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    run_tests(&filter);
}

/// Runs this binary again with the plugin link first on `PATH`; returns its exit code.
fn reexec_with_plugin(args: &[String]) -> i32 {
    let dir = tempfile::tempdir().expect("temporary directory");
    let exe = std::env::current_exe().expect("current exe");
    let link = dir.path().join(format!("age-plugin-{PLUGIN}"));
    #[cfg(unix)]
    std::os::unix::fs::symlink(&exe, &link).expect("plugin link");
    #[cfg(not(unix))]
    std::fs::copy(&exe, &link).expect("plugin copy");
    let path = std::env::join_paths(std::iter::once(dir.path().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let status = Command::new(&exe)
        .args(&args[1..])
        .env("PATH", path)
        .env(PLUGIN_DIR_ENV, dir.path())
        .env(PLUGIN_LOG_ENV, dir.path().join("plugin.log"))
        .status()
        .expect("re-run the tests");
    status.code().unwrap_or(1)
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("random");
    b
}

type TestFn = fn();

fn run_tests(filter: &[&String]) {
    let tests: &[(&str, TestFn)] = &[
        ("x25519_identity_unlocks", x25519_identity_unlocks),
        (
            "identity_file_with_several_identities",
            identity_file_with_several_identities,
        ),
        ("ssh_ed25519_key_unlocks", ssh_ed25519_key_unlocks),
        (
            "plugin_recipient_unlocks_through_the_plugin",
            plugin_recipient_unlocks_through_the_plugin,
        ),
        (
            "one_slot_for_several_recipients",
            one_slot_for_several_recipients,
        ),
        (
            "failing_age_slot_does_not_stop_the_next",
            failing_age_slot_does_not_stop_the_next,
        ),
        (
            "missing_identity_or_plugin_is_a_clear_error",
            missing_identity_or_plugin_is_a_clear_error,
        ),
        ("blob_is_a_plain_age_file", blob_is_a_plain_age_file),
        ("rotation_rewraps_age_slots", rotation_rewraps_age_slots),
        (
            "bad_recipients_and_identity_files_are_refused",
            bad_recipients_and_identity_files_are_refused,
        ),
        ("timings", timings),
    ];
    let (mut passed, mut failed, mut filtered) = (0, 0, 0);
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
            filtered += 1;
            continue;
        }
        print!("test {name} ... ");
        io::stdout().flush().ok();
        match std::panic::catch_unwind(f) {
            Ok(()) => {
                println!("ok");
                passed += 1;
            }
            Err(_) => {
                println!("FAILED");
                failed += 1;
            }
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; {filtered} filtered out",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    if failed > 0 {
        std::process::exit(101);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn provider(p: AgeProvider) -> Credential {
    Credential::provider(Arc::new(p))
}

/// A new X25519 identity written to `dir/name`; returns its path and recipient.
fn x25519(dir: &Path, name: &str) -> (PathBuf, String) {
    let id = age::x25519::Identity::generate();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("# test identity\n{}\n", id.to_string().expose_secret()),
    )
    .unwrap();
    (path, id.to_public().to_string())
}

/// A new identity of the test plugin (made by the plugin binary itself, as real plugins do),
/// written to `dir/name`; returns its path and recipient.
fn plugin_identity(dir: &Path, name: &str, plugin: &str) -> (PathBuf, String) {
    let out = Command::new(format!("age-plugin-{PLUGIN}"))
        .arg(plugin)
        .output()
        .expect("run the test plugin from PATH");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# recipient: "))
        .expect("a recipient line")
        .to_string();
    assert!(
        recipient.starts_with(&format!("age1{plugin}1")),
        "{recipient}"
    );
    let path = dir.join(name);
    std::fs::write(&path, &text).unwrap();
    (path, recipient)
}

/// A new SSH ed25519 key pair: made by `ssh-keygen` where it is installed, else the committed
/// test-only key. Returns the private key's path and the public key line.
fn ssh_ed25519(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "tresor-test", "-f"])
        .arg(&key)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !made {
        println!("(ssh-keygen is not installed: the committed test key is used) ");
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/age");
        std::fs::copy(data.join("id_ed25519"), &key).unwrap();
        std::fs::copy(data.join("id_ed25519.pub"), dir.join("id_ed25519.pub")).unwrap();
    }
    let public = std::fs::read_to_string(dir.join("id_ed25519.pub")).unwrap();
    (key, public.trim().to_string())
}

/// A vault file at `dir/name` whose first (owner) slot opens with `first`; closed.
fn vault_file(dir: &Path, name: &str, first: &Credential) -> PathBuf {
    let path = dir.join(name);
    let v = Vault::create(&path, first, Options::new()).unwrap();
    v.set("db", "s3cret").unwrap();
    v.close().unwrap();
    path
}

fn open(path: &Path, c: &Credential) -> tresor::Result<Vault> {
    Vault::open(path, c, Options::new())
}

fn reads_secret(v: &Vault) {
    assert_eq!(v.get("db").unwrap().expose_str(), Some("s3cret"));
}

fn plugin_log() -> Vec<String> {
    let p = std::env::var_os(PLUGIN_LOG_ENV).expect("plugin log variable");
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

fn x25519_identity_unlocks() {
    let dir = tempfile::tempdir().unwrap();
    let (id, recipient) = x25519(dir.path(), "key.txt");
    let (other, _) = x25519(dir.path(), "other.txt");
    let path = vault_file(
        dir.path(),
        "v.tresor",
        &provider(AgeProvider::for_recipients([&recipient]).unwrap()),
    );
    let v = open(
        &path,
        &provider(AgeProvider::from_identity_file(&id).unwrap()),
    )
    .unwrap();
    reads_secret(&v);
    assert_eq!(v.unlocked_slot(), Some(1));
    let slots = v.slots().unwrap();
    assert_eq!(slots[0].kind, SlotKind::Provider("age".into()));
    v.close().unwrap();
    // Another identity: refused, the slot and the cause named.
    let e = open(
        &path,
        &provider(AgeProvider::from_identity_file(&other).unwrap()),
    )
    .unwrap_err();
    let Error::Provider(why) = &e else {
        panic!("{e:?}")
    };
    assert!(why.contains("key slot 1 (\"owner\")"), "{why}");
    assert!(why.contains("none of the age identities"), "{why}");
    assert!(why.contains("other.txt"), "{why}");
    // A provider with recipients but no identity cannot unlock.
    let e = open(
        &path,
        &provider(AgeProvider::for_recipients([&recipient]).unwrap()),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no age identity"), "{e}");
    // A key credential does not touch the age slot at all.
    let e = open(&path, &Credential::generate_key().unwrap()).unwrap_err();
    assert!(matches!(e, Error::WrongKey), "{e:?}");
}

fn identity_file_with_several_identities() {
    let dir = tempfile::tempdir().unwrap();
    let (a, ra) = x25519(dir.path(), "a.txt");
    let (b, _) = x25519(dir.path(), "b.txt");
    let (p, _) = plugin_identity(dir.path(), "p.txt", PLUGIN);
    // One file: an unrelated X25519 identity, a plugin identity, then the slot's identity.
    let all = dir.path().join("all.txt");
    let text = [&b, &p, &a]
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&all, text).unwrap();
    let path = vault_file(
        dir.path(),
        "v.tresor",
        &provider(AgeProvider::for_recipients([&ra]).unwrap()),
    );
    let v = open(
        &path,
        &provider(AgeProvider::from_identity_file(&all).unwrap()),
    )
    .unwrap();
    reads_secret(&v);
}

fn ssh_ed25519_key_unlocks() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = ssh_ed25519(dir.path());
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    // The public key line as found in id_ed25519.pub, comment included.
    let path = vault_file(
        dir.path(),
        "v.tresor",
        &provider(AgeProvider::for_recipients([&public]).unwrap()),
    );
    let v = open(
        &path,
        &provider(AgeProvider::from_identity_file(&key).unwrap()),
    )
    .unwrap();
    reads_secret(&v);
    v.close().unwrap();
    // Another SSH key does not open it.
    let other = tempfile::tempdir().unwrap();
    let (key2, _) = ssh_ed25519(other.path());
    let e = open(
        &path,
        &provider(AgeProvider::from_identity_file(&key2).unwrap()),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Provider(_)), "{e:?}");
}

fn plugin_recipient_unlocks_through_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let (id, recipient) = plugin_identity(dir.path(), "plugin.txt", PLUGIN);
    let (other, _) = plugin_identity(dir.path(), "other.txt", PLUGIN);
    let before = plugin_log().len();
    let path = vault_file(
        dir.path(),
        "v.tresor",
        &provider(AgeProvider::for_recipients([&recipient]).unwrap()),
    );
    let v = open(
        &path,
        &provider(AgeProvider::from_identity_file(&id).unwrap()),
    )
    .unwrap();
    reads_secret(&v);
    v.close().unwrap();
    let log = plugin_log();
    let ran: Vec<&str> = log[before..].iter().map(String::as_str).collect();
    assert_eq!(
        ran,
        ["recipient-v1", "identity-v1"],
        "the plugin ran both state machines"
    );
    // The plugin's own refusal: another identity of the same plugin does not unwrap the slot.
    let e = open(
        &path,
        &provider(AgeProvider::from_identity_file(&other).unwrap()),
    )
    .unwrap_err();
    let Error::Provider(why) = &e else {
        panic!("{e:?}")
    };
    assert!(why.contains("key slot 1"), "{why}");
}

fn one_slot_for_several_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let (x, rx) = x25519(dir.path(), "x.txt");
    let (ssh, rssh) = ssh_ed25519(dir.path());
    let (p, rp) = plugin_identity(dir.path(), "p.txt", PLUGIN);
    let path = vault_file(
        dir.path(),
        "v.tresor",
        &provider(AgeProvider::for_recipients([&rx, &rssh, &rp]).unwrap()),
    );
    for id in [&x, &ssh, &p] {
        let v = open(
            &path,
            &provider(AgeProvider::from_identity_file(id).unwrap()),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", id.display()));
        reads_secret(&v);
        assert_eq!(v.slots().unwrap().len(), 1);
        v.close().unwrap();
    }
}

fn failing_age_slot_does_not_stop_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (_a, ra) = x25519(dir.path(), "a.txt");
    let (b, rb) = x25519(dir.path(), "b.txt");
    let (missing, rm) = plugin_identity(dir.path(), "m.txt", "tresortestmissing");
    let path = vault_file(
        dir.path(),
        "v.tresor",
        &provider(AgeProvider::for_recipients([&ra]).unwrap()),
    );
    let v = open(
        &path,
        &provider(AgeProvider::from_identity_file(&_a).unwrap()),
    )
    .unwrap();
    // Slot 2: wrapping to a plugin that is not installed fails, naming the plugin.
    let e = v
        .add_slot(&SlotSpec::new(
            provider(AgeProvider::for_recipients([&rm]).unwrap()),
            "yubikey",
        ))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("age-plugin-tresortestmissing is not installed"),
        "{e}"
    );
    assert!(e.to_string().contains("\"yubikey\""), "{e}");
    v.add_slot(
        &SlotSpec::new(
            provider(AgeProvider::for_recipients([&rb]).unwrap()),
            "laptop",
        )
        .role(Role::Reader),
    )
    .unwrap();
    v.close().unwrap();
    // Slot 1 is tried first and fails with b's identity; slot 2 opens.
    let v = open(
        &path,
        &provider(AgeProvider::from_identity_file(&b).unwrap()),
    )
    .unwrap();
    assert_eq!(v.unlocked_slot(), Some(2));
    assert_eq!(v.role(), Role::Reader);
    reads_secret(&v);
    v.close().unwrap();
    // The missing plugin's identity next to b's still opens; alone it says what is missing.
    let both = dir.path().join("both.txt");
    std::fs::write(
        &both,
        std::fs::read_to_string(&missing).unwrap() + &std::fs::read_to_string(&b).unwrap(),
    )
    .unwrap();
    let v = open(
        &path,
        &provider(AgeProvider::from_identity_file(&both).unwrap()),
    )
    .unwrap();
    assert_eq!(v.unlocked_slot(), Some(2));
    v.close().unwrap();
    let e = open(
        &path,
        &provider(AgeProvider::from_identity_file(&missing).unwrap()),
    )
    .unwrap_err();
    let Error::Provider(why) = &e else {
        panic!("{e:?}")
    };
    assert!(why.contains("age-plugin-tresortestmissing"), "{why}");
    assert!(
        why.contains("key slot 1") && why.contains("key slot 2"),
        "{why}"
    );
}

fn missing_identity_or_plugin_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = AgeProvider::from_identity_file(dir.path().join("nope.txt")).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(w) if w.contains("nope.txt")),
        "{e:?}"
    );
    let (_, rp) = plugin_identity(dir.path(), "p.txt", PLUGIN);
    // No panic, no hang: a plugin recipient of an uninstalled plugin is refused when wrapping.
    let (_, rm) = plugin_identity(dir.path(), "m.txt", "tresortestgone");
    let p = AgeProvider::for_recipients([&rp, &rm]).unwrap();
    let e = p.wrap(&[7u8; 32]).unwrap_err();
    assert!(e.to_string().contains("age-plugin-tresortestgone"), "{e}");
}

fn blob_is_a_plain_age_file() {
    let dir = tempfile::tempdir().unwrap();
    let (id, r) = x25519(dir.path(), "k.txt");
    let kek = [42u8; 32];
    let blob = AgeProvider::for_recipients([&r])
        .unwrap()
        .wrap(&kek)
        .unwrap();
    assert!(blob.starts_with(b"age-encryption.org/v1\n-> X25519 "));
    // age itself opens it with the identity (what `age -d -i k.txt` does).
    let identity: age::x25519::Identity = std::fs::read_to_string(&id)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(age::decrypt(&identity, &blob).unwrap(), kek);
    // And the provider opens it; a damaged blob is an error, not a panic.
    let p = AgeProvider::from_identity_file(&id).unwrap();
    assert_eq!(p.unwrap(&blob).unwrap().as_slice(), kek);
    let mut bad = blob.clone();
    let n = bad.len();
    bad[n - 3] ^= 1;
    assert!(p.unwrap(&bad).is_err());
    assert!(p.unwrap(b"not age").is_err());
    // Debug shows recipients (public) and counts, never identities.
    let shown = format!("{p:?}");
    assert!(!shown.contains("AGE-SECRET-KEY"), "{shown}");
}

fn rotation_rewraps_age_slots() {
    let dir = tempfile::tempdir().unwrap();
    let (a, ra) = x25519(dir.path(), "a.txt");
    let (b, rb) = x25519(dir.path(), "b.txt");
    let key = Credential::generate_key().unwrap();
    let path = vault_file(dir.path(), "v.tresor", &key);
    let v = open(&path, &key).unwrap();
    for (r, label) in [(&ra, "a"), (&rb, "b")] {
        v.add_slot(&SlotSpec::new(
            provider(AgeProvider::for_recipients([r]).unwrap()),
            label,
        ))
        .unwrap();
    }
    // Two providers, each opening one slot: the one tried on the other's slot fails quietly.
    let ida = provider(AgeProvider::from_identity_file(&a).unwrap());
    let idb = provider(AgeProvider::from_identity_file(&b).unwrap());
    let e = v
        .rotate_master_key(std::slice::from_ref(&ida), |_| {})
        .unwrap_err();
    assert!(
        matches!(&e, Error::MissingCredential { slot: 3, .. }),
        "{e:?}"
    );
    v.rotate_master_key(&[ida.clone(), idb.clone()], |_| {})
        .unwrap();
    v.close().unwrap();
    for c in [&ida, &idb] {
        reads_secret(&open(&path, c).unwrap());
    }
}

fn bad_recipients_and_identity_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "",
        "age1",
        "hello",
        "ssh-ed25519",
        "ssh-ed25519 AAAAnotbase64",
        "ssh-dss AAAAB3Nza",
    ] {
        assert!(
            AgeProvider::for_recipients([bad]).is_err(),
            "{bad:?} taken for a recipient"
        );
    }
    let f = dir.path().join("junk.txt");
    std::fs::write(&f, "# comment\nAGE-SECRET-KEY-1NOTAKEY\n").unwrap();
    let e = AgeProvider::from_identity_file(&f).unwrap_err().to_string();
    assert!(e.contains("line 2"), "{e}");
    assert!(
        !e.contains("NOTAKEY"),
        "a line of an identity file is never echoed: {e}"
    );
    std::fs::write(&f, "# only comments\n").unwrap();
    assert!(AgeProvider::from_identity_file(&f).is_err());
}

/// Unlock times by kind, printed (no threshold): `cargo test --features age --test age timings`.
fn timings() {
    let dir = tempfile::tempdir().unwrap();
    let (x, rx) = x25519(dir.path(), "x.txt");
    let (ssh, rssh) = ssh_ed25519(dir.path());
    let (p, rp) = plugin_identity(dir.path(), "p.txt", PLUGIN);
    let key = Credential::generate_key().unwrap();
    let path = vault_file(dir.path(), "v.tresor", &key);
    let v = open(&path, &key).unwrap();
    for (r, label) in [(&rx, "x25519"), (&rssh, "ssh"), (&rp, "plugin")] {
        v.add_slot(&SlotSpec::new(
            provider(AgeProvider::for_recipients([r]).unwrap()),
            label,
        ))
        .unwrap();
    }
    v.close().unwrap();
    let creds: HashMap<&str, Credential> = HashMap::from([
        ("key file (32-byte key)", key),
        (
            "age X25519",
            provider(AgeProvider::from_identity_file(&x).unwrap()),
        ),
        (
            "age SSH ed25519",
            provider(AgeProvider::from_identity_file(&ssh).unwrap()),
        ),
        (
            "age plugin (tresortest)",
            provider(AgeProvider::from_identity_file(&p).unwrap()),
        ),
    ]);
    let mut seen = HashSet::new();
    println!();
    for name in [
        "key file (32-byte key)",
        "age X25519",
        "age SSH ed25519",
        "age plugin (tresortest)",
    ] {
        let c = &creds[name];
        let n = 10;
        let start = Instant::now();
        for _ in 0..n {
            let v = open(&path, c).unwrap();
            seen.insert(v.unlocked_slot());
            v.close().unwrap();
        }
        println!(
            "    unlock, {name:<24} {:>8.2} ms (mean of {n} opens)",
            start.elapsed().as_secs_f64() * 1000.0 / f64::from(n)
        );
    }
    assert_eq!(seen.len(), 4, "each credential opened its own slot");
}

/// The test plugin: a toy age plugin whose identity and recipient are the same 16-byte pad
/// (the file key is XORed with it; the stanza names the pad by a hash). Only the protocol is
/// real; the cryptography is not meant to be.
mod plugin {
    use std::collections::{HashMap, HashSet};
    use std::io::{self, Write};

    use age_core::format::{FileKey, Stanza};
    use age_core::secrecy::ExposeSecret;
    use age_plugin::identity::{self, IdentityPluginV1};
    use age_plugin::recipient::{self, RecipientPluginV1};
    use age_plugin::{Callbacks, PluginHandler};

    use super::{PLUGIN, PLUGIN_LOG_ENV};

    const TAG: &str = "tresortest";

    /// Appends the state machine's name to the plugin log.
    pub fn log(state_machine: &str) {
        if let Some(p) = std::env::var_os(PLUGIN_LOG_ENV)
            && let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
        {
            let _ = writeln!(f, "{state_machine}");
        }
    }

    fn pad_id(pad: &[u8]) -> String {
        blake3::hash(pad).to_hex()[..16].to_string()
    }

    pub struct Handler;

    impl PluginHandler for Handler {
        type RecipientV1 = Wrap;
        type IdentityV1 = Unwrap;

        fn recipient_v1(self) -> io::Result<Wrap> {
            Ok(Wrap(Vec::new()))
        }

        fn identity_v1(self) -> io::Result<Unwrap> {
            Ok(Unwrap(Vec::new()))
        }
    }

    pub struct Wrap(Vec<[u8; 16]>);

    fn pad(bytes: &[u8]) -> Option<[u8; 16]> {
        <[u8; 16]>::try_from(bytes).ok()
    }

    impl RecipientPluginV1 for Wrap {
        fn add_recipient(
            &mut self,
            index: usize,
            plugin_name: &str,
            bytes: &[u8],
        ) -> Result<(), recipient::Error> {
            match pad(bytes) {
                Some(p) if plugin_name == PLUGIN => {
                    self.0.push(p);
                    Ok(())
                }
                _ => Err(recipient::Error::Recipient {
                    index,
                    message: "not a tresortest recipient".into(),
                }),
            }
        }

        fn add_identity(
            &mut self,
            index: usize,
            plugin_name: &str,
            bytes: &[u8],
        ) -> Result<(), recipient::Error> {
            match pad(bytes) {
                Some(p) if plugin_name == PLUGIN => {
                    self.0.push(p);
                    Ok(())
                }
                _ => Err(recipient::Error::Identity {
                    index,
                    message: "not a tresortest identity".into(),
                }),
            }
        }

        fn labels(&mut self) -> HashSet<String> {
            HashSet::new()
        }

        fn wrap_file_keys(
            &mut self,
            file_keys: Vec<FileKey>,
            _callbacks: impl Callbacks<recipient::Error>,
        ) -> io::Result<Result<Vec<Vec<Stanza>>, Vec<recipient::Error>>> {
            Ok(Ok(file_keys
                .iter()
                .map(|fk| {
                    self.0
                        .iter()
                        .map(|pad| Stanza {
                            tag: TAG.into(),
                            args: vec![pad_id(pad)],
                            body: fk
                                .expose_secret()
                                .iter()
                                .zip(pad)
                                .map(|(a, b)| a ^ b)
                                .collect(),
                        })
                        .collect()
                })
                .collect()))
        }
    }

    pub struct Unwrap(Vec<[u8; 16]>);

    impl IdentityPluginV1 for Unwrap {
        fn add_identity(
            &mut self,
            index: usize,
            plugin_name: &str,
            bytes: &[u8],
        ) -> Result<(), identity::Error> {
            match pad(bytes) {
                Some(p) if plugin_name == PLUGIN => {
                    self.0.push(p);
                    Ok(())
                }
                _ => Err(identity::Error::Identity {
                    index,
                    message: "not a tresortest identity".into(),
                }),
            }
        }

        fn unwrap_file_keys(
            &mut self,
            files: Vec<Vec<Stanza>>,
            _callbacks: impl Callbacks<identity::Error>,
        ) -> io::Result<HashMap<usize, Result<FileKey, Vec<identity::Error>>>> {
            let mut keys = HashMap::new();
            for (i, stanzas) in files.iter().enumerate() {
                let found = stanzas.iter().find_map(|s| {
                    let pad = self
                        .0
                        .iter()
                        .find(|p| s.tag == TAG && s.args.first() == Some(&pad_id(*p)))?;
                    let bytes: [u8; 16] = s.body.as_slice().try_into().ok()?;
                    Some((bytes, *pad))
                });
                if let Some((bytes, pad)) = found {
                    let fk = FileKey::init_with_mut(|k| {
                        for (o, (a, b)) in k.iter_mut().zip(bytes.iter().zip(pad)) {
                            *o = a ^ b;
                        }
                    });
                    keys.insert(i, Ok(fk));
                }
            }
            Ok(keys)
        }
    }
}
