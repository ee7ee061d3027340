//! Decodes arbitrary bytes as every record kind (header, settings, audit head, secret, version,
//! audit record, key slot, backup payload); whatever decodes must survive a re-encode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tresor::fuzzing::decode_any_record(data);
});
