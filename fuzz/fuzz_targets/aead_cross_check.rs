//! This build's record AEAD (ring's ChaCha20-Poly1305 under an HChaCha20 subkey, feature
//! `fast-aead`) against RustCrypto's XChaCha20-Poly1305 on arbitrary keys, nonces, associated
//! data and messages: identical boxes, each side opening the other's, both refusing an altered
//! box, and the same answer for the input itself opened as a box.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // key (32) || nonce (24) || aad length (1) || flip (2) || aad || message
    if data.len() < 59 {
        return;
    }
    let (key, rest) = data.split_at(32);
    let (nonce, rest) = rest.split_at(24);
    let aad_len = usize::from(rest[0]).min(rest.len() - 3);
    let flip = usize::from(u16::from_le_bytes([rest[1], rest[2]]));
    let (aad, msg) = rest[3..].split_at(aad_len);
    let key: [u8; 32] = key.try_into().unwrap();
    let nonce: [u8; 24] = nonce.try_into().unwrap();
    tresor::fuzzing::aead_cross_check(&key, &nonce, aad, msg, flip, &data[32..]);
});
