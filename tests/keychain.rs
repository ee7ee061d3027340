//! Keychain key slots (`tresor::providers::KeychainProvider`) against real credential stores:
//! the Linux kernel keyring (keyutils) and a Secret Service (gnome-keyring-daemon in a private
//! D-Bus session started by `dbus-run-session`). A store the machine refuses or lacks is skipped
//! with a line saying so; the other is still tested.
//!
//! `cargo test --features keyring --test keychain -- --nocapture` also prints unlock times.

#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use tresor::providers::{KeychainProvider, KeychainStore};
use tresor::{Credential, Error, KeyProvider, Options, Role, SlotKind, SlotSpec, Vault};

/// A name no other run uses.
fn unique(what: &str) -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    format!(
        "test-{what}/{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// Whether `store` takes and gives back an entry here; the reason when not.
fn probe(store: KeychainStore) -> Result<(), String> {
    let p = KeychainProvider::new(store, "tresor-test", unique("probe"));
    let blob = p.wrap(&[1u8; 32]).map_err(|e| e.to_string())?;
    let back = p.unwrap(&blob).map_err(|e| e.to_string());
    let _ = p.delete();
    back.map(|_| ())
}

fn provider(p: &KeychainProvider) -> Credential {
    Credential::provider(Arc::new(p.clone()))
}

fn unlocker() -> Credential {
    Credential::provider(Arc::new(KeychainProvider::unlocker()))
}

/// A vault (owner slot: a random key) in `dir`, with a secret; returns its path and key.
fn vault(dir: &Path) -> (PathBuf, Credential) {
    let key = Credential::generate_key().unwrap();
    let path = dir.join("v.tresor");
    let v = Vault::create(&path, &key, Options::new()).unwrap();
    v.set("db", "s3cret").unwrap();
    v.close().unwrap();
    (path, key)
}

/// Everything a keychain slot should do, against `store`.
fn exercise(store: KeychainStore) {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = vault(dir.path());
    let laptop = KeychainProvider::new(store, "tresor-test", unique("laptop"));
    let spare = KeychainProvider::new(store, "tresor-test", unique("spare"));
    let v = Vault::open(&path, &key, Options::new()).unwrap();
    // An unlocker cannot make a slot, and keychain slots are listed with their provider.
    assert!(
        v.add_slot(&SlotSpec::new(unlocker(), "x"))
            .unwrap_err()
            .to_string()
            .contains("only unlocks")
    );
    let s2 = v
        .add_slot(&SlotSpec::new(provider(&laptop), "laptop").role(Role::Reader))
        .unwrap();
    let s3 = v
        .add_slot(&SlotSpec::new(provider(&spare), "spare").role(Role::Writer))
        .unwrap();
    assert_eq!(s2.kind, SlotKind::Provider("keyring".into()));
    // A new slot never takes over an entry that exists (it holds another slot's key).
    let e = v
        .add_slot(&SlotSpec::new(provider(&laptop), "again"))
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    v.close().unwrap();

    // The unlocker finds the entry the first keychain slot names.
    let v = Vault::open(&path, &unlocker(), Options::new()).unwrap();
    assert_eq!(v.unlocked_slot(), Some(s2.id));
    assert_eq!(v.role(), Role::Reader);
    assert_eq!(v.get("db").unwrap().expose_str(), Some("s3cret"));
    v.close().unwrap();

    // Its entry deleted: that slot fails, the next keychain slot opens.
    laptop.delete().unwrap();
    let v = Vault::open(&path, &unlocker(), Options::new()).unwrap();
    assert_eq!(v.unlocked_slot(), Some(s3.id));
    v.close().unwrap();

    // Both deleted: an error naming each slot and its cause; the key slot still opens.
    spare.delete().unwrap();
    let e = Vault::open(&path, &unlocker(), Options::new()).unwrap_err();
    let Error::Provider(why) = &e else {
        panic!("{e:?}")
    };
    for s in [&s2, &s3] {
        assert!(
            why.contains(&format!("key slot {} (\"{}\")", s.id, s.label)),
            "{why}"
        );
    }
    assert!(
        why.contains("has no entry tresor-test/test-laptop/"),
        "{why}"
    );
    assert!(why.contains(store.name()), "{why}");
    Vault::open(&path, &key, Options::new())
        .unwrap()
        .close()
        .unwrap();
}

#[test]
fn kernel_keyring_slots() {
    match probe(KeychainStore::Keyutils) {
        Err(why) => println!("skipped: the kernel keyring refuses entries here: {why}"),
        Ok(()) => {
            exercise(KeychainStore::Keyutils);
            println!("kernel keyring: ok");
        }
    }
}

#[test]
fn entry_names_are_fresh_and_say_the_slot() {
    let a = KeychainProvider::new_entry(KeychainStore::Keyutils, "laptop").unwrap();
    let b = KeychainProvider::new_entry(KeychainStore::Keyutils, "laptop").unwrap();
    let (store, service, user) = a.entry().unwrap();
    assert_eq!((store, service), (KeychainStore::Keyutils, "tresor"));
    assert!(
        user.starts_with("laptop/") && user.len() == "laptop/".len() + 32,
        "{user}"
    );
    assert_ne!(a.entry(), b.entry());
    assert!(KeychainProvider::unlocker().entry().is_none());
}

/// Runs `secret_service_in_session` in a private D-Bus session with an unlocked
/// gnome-keyring-daemon (its keyring files in a temporary home).
#[test]
fn secret_service_slots() {
    let missing: Vec<&str> = ["dbus-run-session", "gnome-keyring-daemon"]
        .into_iter()
        .filter(|tool| {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| !o.status.success())
                .unwrap_or(true)
        })
        .collect();
    if !missing.is_empty() {
        println!(
            "skipped: no Secret Service to test against ({} not installed; Debian packages \
             dbus and gnome-keyring)",
            missing.join(", ")
        );
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("dbus-run-session")
        .args([
            "--",
            "sh",
            "-c",
            // The daemon creates and unlocks a "login" keyring (the default collection) with
            // the password on its standard input, then forks into the background.
            "printf tresor-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null \
             && exec \"$@\"",
            "sh",
        ])
        .arg(&exe)
        .args([
            "secret_service_in_session",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_RUNTIME_DIR", home.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("Operation not permitted") {
        println!("skipped: this machine refuses a private D-Bus session: {stderr}");
        return;
    }
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("secret service: ok"), "{stdout}\n{stderr}");
    for line in stdout.lines().filter(|l| l.contains("unlock, ")) {
        println!("{line}");
    }
}

#[test]
#[ignore = "run by secret_service_slots inside a private D-Bus session"]
fn secret_service_in_session() {
    if let Err(why) = probe(KeychainStore::SecretService) {
        panic!("the Secret Service of the test session refuses entries: {why}");
    }
    exercise(KeychainStore::SecretService);
    timings(KeychainStore::SecretService);
    println!("secret service: ok");
}

/// Unlock times of a key slot and a keychain slot, printed (no threshold).
fn timings(store: KeychainStore) {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = vault(dir.path());
    let entry = KeychainProvider::new(store, "tresor-test", unique("timing"));
    let v = Vault::open(&path, &key, Options::new()).unwrap();
    v.add_slot(&SlotSpec::new(provider(&entry), "timing"))
        .unwrap();
    v.close().unwrap();
    let n = 10u32;
    for (name, c) in [
        ("key file (32-byte key)", &key),
        (store.name(), &unlocker()),
    ] {
        let start = Instant::now();
        for _ in 0..n {
            Vault::open(&path, c, Options::new())
                .unwrap()
                .close()
                .unwrap();
        }
        println!(
            "    unlock, {name:<24} {:>8.2} ms (mean of {n} opens)",
            start.elapsed().as_secs_f64() * 1000.0 / f64::from(n)
        );
    }
    entry.delete().unwrap();
}

#[test]
fn kernel_keyring_timings() {
    if let Err(why) = probe(KeychainStore::Keyutils) {
        println!("skipped: the kernel keyring refuses entries here: {why}");
        return;
    }
    timings(KeychainStore::Keyutils);
}
