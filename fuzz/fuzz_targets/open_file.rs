//! Opens arbitrary bytes as a vault file (with and without the integrity check) and reads
//! everything. Input: a mode byte, then either a whole file (mode even) or patches to the seed
//! vault (mode odd): 5 bytes each, a 32-bit offset (little endian, modulo the file length) and a
//! byte to XOR in. Never a panic, never a wrong plaintext.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor::{AuditLevel, Options, Vault};
use tresor_fuzz::{Mem, key, read_everything};

static SEED: &[u8] = include_bytes!("../seeds/vault.bin");

fuzz_target!(|data: &[u8]| {
    tresor_fuzz::allow_caught_panics();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut b = SEED.to_vec();
        for p in rest.chunks_exact(5) {
            let off = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize % b.len();
            b[off] ^= p[4];
        }
        b
    };
    let options = Options::new()
        .read_audit(AuditLevel::Off)
        .verify_integrity(mode & 2 != 0);
    if let Ok(v) = Vault::open_with_backend(Mem::new(bytes), &key(), options) {
        read_everything(&v);
    }
});
