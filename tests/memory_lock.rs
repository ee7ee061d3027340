//! Feature `mlock`: a vault's keys sit on a page locked in RAM for as long as the vault is open,
//! a key rotation moves the lock to the new keys' page, and closing the vault unlocks it.
//!
//! The kernel's count of this process's locked memory (`VmLck` in `/proc/self/status`) is the
//! evidence: one test in this binary, so that no other test locks or unlocks pages meanwhile.

#![cfg(target_os = "linux")]

use tresor::{Credential, Options, Vault};

/// This process's locked memory, in KiB.
fn locked_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmLck:"))
        .unwrap_or_else(|| panic!("no VmLck line in /proc/self/status:\n{status}"));
    line.trim_start_matches("VmLck:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap()
}

/// Whether the soft `RLIMIT_MEMLOCK` (from `/proc/self/limits`) leaves room for two more pages
/// beyond the `locked` KiB already locked.
fn may_lock_a_page(locked: u64) -> bool {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .unwrap_or_else(|| panic!("no locked-memory limit in /proc/self/limits:\n{limits}"));
    let soft = line
        .trim_start_matches("Max locked memory")
        .split_whitespace()
        .next()
        .unwrap();
    soft == "unlimited" || soft.parse::<u64>().unwrap() >= (locked + 8) * 1024
}

#[test]
fn keys_are_locked_in_ram_while_the_vault_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.tresor");
    let key = Credential::generate_key().unwrap();

    let before = locked_kib();
    let vault = Vault::create(&path, &key, Options::new()).unwrap();
    if !may_lock_a_page(before) {
        eprintln!("SKIPPED: RLIMIT_MEMLOCK leaves this process no page to lock");
        return;
    }
    assert!(
        vault.keys_locked(),
        "the OS allows it, yet the keys are not locked"
    );
    let open = locked_kib();
    assert!(
        open >= before + 4,
        "the keys' page is not locked: VmLck {before} kB before the vault, {open} kB after"
    );

    // A rotation locks the new keys' page and unlocks the old one: the count stays the same.
    vault.rotate_master_key(&[], |_| {}).unwrap();
    assert!(vault.keys_locked());
    assert_eq!(
        locked_kib(),
        open,
        "a rotation leaked or lost a locked page"
    );
    vault.set("db-password", "hunter2").unwrap();
    assert_eq!(
        vault.get("db-password").unwrap().expose_str(),
        Some("hunter2")
    );

    // A second vault has a page of its own; closing it leaves the first one's lock alone.
    let other = Vault::create(dir.path().join("w.tresor"), &key, Options::new()).unwrap();
    assert!(other.keys_locked());
    assert_eq!(locked_kib(), open + 4);
    other.close().unwrap();
    assert_eq!(locked_kib(), open);
    assert!(vault.keys_locked());

    vault.close().unwrap();
    assert_eq!(
        locked_kib(),
        before,
        "closing the vault left its page locked"
    );

    // Reopening locks again.
    let vault = Vault::open(&path, &key, Options::new()).unwrap();
    assert!(vault.keys_locked());
    assert!(locked_kib() >= before + 4);
    drop(vault);
    assert_eq!(locked_kib(), before);
}
