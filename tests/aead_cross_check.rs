//! The record AEAD of this build (ring's ChaCha20-Poly1305 under an HChaCha20 subkey with the
//! default feature `fast-aead`; RustCrypto without it) against RustCrypto's
//! `XChaCha20Poly1305`, the reference: the same bytes for every key, nonce, associated data and
//! message, each opening the other's boxes, both refusing altered boxes. The file format depends
//! on it: a vault written by one build must open in the other.

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use proptest::prelude::*;
use tresor::fuzzing::{aead_cross_check, open, seal_with_nonce};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The test vector of draft-irtf-cfrg-xchacha-03, appendix A.3.1.
#[test]
fn known_answer_of_the_xchacha_draft() {
    let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
    let nonce: [u8; 24] = std::array::from_fn(|i| 0x40 + i as u8);
    let aad = unhex("50515253c0c1c2c3c4c5c6c7");
    let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one \
        tip for the future, sunscreen would be it.";
    let mut expected = nonce.to_vec();
    expected.extend(unhex(
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a8\
         2f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369\
         488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e",
    ));
    expected.extend(unhex("c0875924c1c7987947deafd8780acf49"));
    assert_eq!(seal_with_nonce(&key, &nonce, &aad, plaintext), expected);
    assert_eq!(open(&key, &aad, &expected).as_deref(), Some(&plaintext[..]));
}

/// Empty messages, empty associated data and lengths around ChaCha20's 64-byte blocks and
/// Poly1305's 16-byte blocks.
#[test]
fn edge_lengths_match_the_reference() {
    for len in [
        0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255, 256, 257, 4096, 65_537,
    ] {
        for aad_len in [0, 1, 16, 17, 64] {
            let msg: Vec<u8> = (0..len).map(|i| (i * 7 + aad_len) as u8).collect();
            let aad = vec![0xa5; aad_len];
            aead_cross_check(
                &[len as u8; 32],
                &[aad_len as u8; 24],
                &aad,
                &msg,
                len,
                &msg,
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random keys, nonces, associated data and messages: identical boxes, and each side opens
    /// the other's box and refuses it altered.
    #[test]
    fn same_bytes_as_the_reference(
        key in any::<[u8; 32]>(),
        nonce in any::<[u8; 24]>(),
        aad in proptest::collection::vec(any::<u8>(), 0..80),
        msg in proptest::collection::vec(any::<u8>(), 0..600),
        flip in any::<usize>(),
        guess in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        aead_cross_check(&key, &nonce, &aad, &msg, flip, &guess);
        // And against the crate directly, not only through tresor's wrapper of it.
        let reference = XChaCha20Poly1305::new(&key.into());
        let ct = reference
            .encrypt(&nonce.into(), Payload { msg: &msg, aad: &aad })
            .unwrap();
        let ours = seal_with_nonce(&key, &nonce, &aad, &msg);
        prop_assert_eq!(&ours[..24], &nonce[..]);
        prop_assert_eq!(&ours[24..], &ct[..]);
        let back = reference
            .decrypt(&nonce.into(), Payload { msg: &ours[24..], aad: &aad })
            .unwrap();
        prop_assert_eq!(back, msg);
    }
}
