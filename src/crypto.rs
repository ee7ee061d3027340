//! The cryptographic primitives, in one place: random bytes, the AEAD, subkeys, keyed hashes.
//!
//! - Records and key slots: XChaCha20-Poly1305 with a fresh random 24-byte nonce per seal.
//!   A sealed box is `nonce (24) || ciphertext || tag (16)`.
//! - Subkeys: BLAKE3 `derive_key` over the master key with fixed context strings.
//! - Name hashes and the audit chain: keyed BLAKE3; MACs are compared in constant time.

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A 256-bit key that wipes itself when dropped.
pub(crate) type Key = Zeroizing<[u8; 32]>;

/// Length of an XChaCha20-Poly1305 nonce.
pub(crate) const NONCE_LEN: usize = 24;
/// Length of a Poly1305 tag.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a sealed box adds to its plaintext.
pub(crate) const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| Error::Random)?;
    Ok(out)
}

/// A fresh random key.
pub(crate) fn random_key() -> Result<Key> {
    let mut k = Zeroizing::new([0u8; 32]);
    getrandom::fill(k.as_mut()).map_err(|_| Error::Random)?;
    Ok(k)
}

/// A subkey of `key` for the purpose named by `context` (a fixed, unique string).
pub(crate) fn derive(context: &str, key: &[u8; 32]) -> Key {
    Zeroizing::new(blake3::derive_key(context, key))
}

/// Keyed BLAKE3 of `parts`, concatenated.
pub(crate) fn mac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key);
    for p in parts {
        h.update(p);
    }
    *h.finalize().as_bytes()
}

/// Constant-time equality of two MACs.
pub(crate) fn mac_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// An AEAD key ready to seal and open boxes.
pub(crate) struct Sealer(XChaCha20Poly1305);

impl Sealer {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        // A 32-byte slice is always a valid key length.
        Sealer(XChaCha20Poly1305::new(key.into()))
    }

    /// Encrypts `plaintext` bound to `aad` under a fresh random nonce.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let nonce: [u8; NONCE_LEN] = random()?;
        let ct = self
            .0
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| Error::corrupted("encryption failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts a box made by [`Sealer::seal`] with the same `aad`; `None` when it does not
    /// authenticate (wrong key, altered bytes, or another place's associated data).
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < SEAL_OVERHEAD {
            return None;
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.0
            .decrypt(&nonce.into(), Payload { msg: ct, aad })
            .ok()
            .map(Zeroizing::new)
    }
}

/// Lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Parses hexadecimal (either case) into exactly `N` bytes.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (digit(b[2 * i])? << 4) | digit(b[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let s = Sealer::new(&[7u8; 32]);
        let boxed = s.seal(b"ad", b"hello").unwrap();
        assert_eq!(boxed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(&s.open(b"ad", &boxed).unwrap()[..], b"hello");
        assert!(s.open(b"other", &boxed).is_none());
        assert!(Sealer::new(&[8u8; 32]).open(b"ad", &boxed).is_none());
        let mut flipped = boxed.clone();
        flipped[30] ^= 1;
        assert!(s.open(b"ad", &flipped).is_none());
        assert!(s.open(b"ad", &boxed[..10]).is_none());
    }

    #[test]
    fn hex_round_trip() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&b), "0001abff");
        assert_eq!(unhex::<4>("0001ABff"), Some(b));
        assert_eq!(unhex::<4>("0001abf"), None);
        assert_eq!(unhex::<4>("0001abfg"), None);
    }

    #[test]
    fn mac_comparison() {
        let a = mac(&[1; 32], &[b"x", b"y"]);
        assert_eq!(a, mac(&[1; 32], &[b"xy"]));
        assert!(mac_eq(&a, &a));
        assert!(!mac_eq(&a, &mac(&[2; 32], &[b"xy"])));
    }
}
