//! Restores arbitrary backup blobs into a vault. Input: a mode byte, then either a whole blob
//! (mode 0) or the plaintext payload of a blob that authenticates (mode 1, or mode 2 with the
//! payload's record tag put in front), so that the checks after authentication are reached.
//! A restore that succeeds must leave a vault whose every check passes; the restored secret is
//! then deleted and purged so that the next input starts from the same vault.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use tresor::{AuditLevel, Options, Vault};

/// The vault inputs are restored into; made anew every 5,000 inputs, so that the records of
/// refused restores (every refusal is audited) do not pile up.
static VAULT: Mutex<Option<(Vault, u32)>> = Mutex::new(None);

fn fresh() -> Vault {
    let v = Vault::create_in_memory(
        &tresor_fuzz::key(),
        Options::new().read_audit(AuditLevel::Off),
    )
    .expect("create");
    v.set("existing", "value").expect("set");
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut guard = VAULT.lock().unwrap_or_else(|e| e.into_inner());
    let slot = guard.get_or_insert_with(|| (fresh(), 0));
    slot.1 += 1;
    if slot.1 > 5_000 {
        *slot = (fresh(), 0);
    }
    let v = &slot.0;
    let blob = match mode % 3 {
        0 => rest.to_vec(),
        1 => tresor::fuzzing::backup_blob_from_plaintext(v, rest).expect("seal"),
        _ => {
            let mut plain = vec![0x71];
            plain.extend_from_slice(rest);
            tresor::fuzzing::backup_blob_from_plaintext(v, &plain).expect("seal")
        }
    };
    if let Ok(p) = v.restore_secret(&blob) {
        // Whatever was accepted is a sound secret: it reads back whole and every check passes.
        let versions = v
            .list_versions(&p.name)
            .expect("list the restored versions");
        assert_eq!(versions.first().map(|x| x.version), Some(p.version));
        for x in &versions {
            match v.get_version(&p.name, &x.version) {
                Ok(s) => assert_eq!(s.properties.version, x.version),
                Err(tresor::Error::Disabled) => assert!(!x.enabled),
                Err(e) => panic!("a restored version does not read: {e}"),
            }
        }
        v.check_integrity().expect("integrity after a restore");
        v.delete(&p.name).expect("delete the restored secret");
        v.purge(&p.name).expect("purge the restored secret");
    }
});
