//! Shared pieces of the fuzz targets: an in-memory storage backend over given bytes, the seed
//! vault the file target mutates, and an oracle that reads a whole vault and panics on any
//! value that is not exactly the value of the version it claims to be.

use std::io;
use std::sync::{Arc, Mutex};

use tresor::redb::StorageBackend;
use tresor::{Credential, Options, SetOptions, Vault};

/// libFuzzer's Rust glue aborts on every panic, even one the code under test catches. tresor
/// catches redb's panics on damaged files (and reports `Corrupted`), so a target that feeds it
/// damaged files installs this hook: a caught panic is printed and fuzzing goes on; a panic
/// that escapes the library still reaches the glue's `catch_unwind` and aborts.
pub fn allow_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            eprintln!("panic (caught by the library unless the run aborts next): {info}");
        }));
    });
}

/// The key of the seed vault (`seeds/vault.bin`) and of every vault the targets make.
pub const KEY: [u8; 32] = [0x42; 32];

pub fn key() -> Credential {
    Credential::key(KEY)
}

/// The value every secret version of the seed vault holds: its folded name and sequence.
pub fn value_of(name: &str, sequence: u64) -> String {
    format!("{}#{sequence}", name.to_ascii_lowercase())
}

/// Bytes in memory, shared with the test so that they can be read back after redb is done.
#[derive(Clone, Debug, Default)]
pub struct Mem(pub Arc<Mutex<Vec<u8>>>);

impl Mem {
    pub fn new(bytes: Vec<u8>) -> Self {
        Mem(Arc::new(Mutex::new(bytes)))
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl StorageBackend for Mem {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.lock().unwrap_or_else(|e| e.into_inner()).len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let data = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start
            .checked_add(out.len())
            .filter(|&e| e <= data.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(&data[start..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        // Refuse absurd lengths instead of allocating them.
        if len > 64 << 20 {
            return Err(io::Error::other("too large for a fuzz input"));
        }
        let mut data = self.0.lock().unwrap_or_else(|e| e.into_inner());
        data.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut data = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start
            .checked_add(buf.len())
            .filter(|&e| e <= data.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "write past the end"))?;
        data[start..end].copy_from_slice(buf);
        Ok(())
    }
}

/// Makes the seed vault: secrets with several versions (one disabled), a deleted secret, a
/// second key slot; every value is [`value_of`] its name and sequence.
pub fn make_seed_vault() -> Vec<u8> {
    let mem = Mem::default();
    let v = Vault::create_with_backend(mem.clone(), &key(), Options::new().retention_days(7))
        .expect("create the seed vault");
    v.add_slot(&tresor::SlotSpec::new(
        Credential::key([0x24; 32]),
        "second",
    ))
    .expect("add a slot");
    for (name, versions) in [("alpha", 3u64), ("Beta", 2), ("gamma", 1), ("delta", 1)] {
        for seq in 1..=versions {
            let options = if name == "Beta" && seq == 2 {
                SetOptions::new().disabled(true)
            } else {
                SetOptions::new().tag("k", "v")
            };
            v.set_with(name, value_of(name, seq), &options)
                .expect("set");
        }
    }
    v.delete("gamma").expect("delete");
    v.close().expect("close");
    mem.bytes()
}

/// Checks that a secret read for `asked` is the value of the version it claims to be.
fn check(asked: &str, s: &tresor::Secret) {
    let p = &s.properties;
    assert!(
        p.name.eq_ignore_ascii_case(asked),
        "asked for {asked}, got a secret named {}",
        p.name
    );
    let value = s.expose();
    if p.name != "omega" {
        assert_eq!(
            value,
            value_of(&p.name, p.sequence).as_bytes(),
            "WRONG PLAINTEXT for {asked} (sequence {})",
            p.sequence
        );
    }
}

/// Reads everything in `v` (errors are fine, wrong values and panics are not) and tries one
/// write.
pub fn read_everything(v: &Vault) {
    let mut names: Vec<String> = ["alpha", "Beta", "BETA", "gamma", "delta"]
        .map(String::from)
        .to_vec();
    if let Ok(list) = v.list_all() {
        names.extend(list.into_iter().map(|p| p.name));
    }
    for n in &names {
        if let Ok(s) = v.get(n) {
            check(n, &s);
        }
        if let Ok(list) = v.list_versions(n) {
            for p in list {
                if let Ok(s) = v.get_version(n, &p.version) {
                    check(n, &s);
                    assert_eq!(s.properties.version, p.version, "get_version mislabelled");
                }
            }
        }
        let _ = v.properties(n, None);
        let _ = v.deleted_properties(n);
    }
    let _ = v.list_deleted(None, 100);
    let _ = v.slots();
    let _ = v.audit(0, 1000);
    let _ = v.backup_secret("alpha");
    let _ = v.verify_audit();
    let _ = v.check_integrity();
    if v.set("omega", "omega").is_ok()
        && let Ok(s) = v.get("omega")
    {
        assert_eq!(s.expose(), b"omega", "WRONG PLAINTEXT for omega");
    }
}
