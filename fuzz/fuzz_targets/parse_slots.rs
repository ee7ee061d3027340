//! Parses arbitrary bytes as a stored key slot, lists it and tries to open it with a key
//! credential (passphrase slots are parsed and listed, never derived: Argon2id is too slow).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor::Credential;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let credential = match which % 3 {
        0 => Credential::key([0x42; 32]),
        1 => Credential::key([0; 32]),
        _ => Credential::key([0xff; 32]),
    };
    let vault_id = [which; 16];
    if let Ok((info, _opened)) =
        tresor::fuzzing::parse_slot(rest, &vault_id, u32::from(which), &credential)
    {
        assert_eq!(info.id, u32::from(which));
        let _ = format!("{info:?}");
    }
});
