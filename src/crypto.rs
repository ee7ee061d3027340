//! The cryptographic primitives, in one place: random bytes, the AEAD, subkeys, keyed hashes.
//!
//! - Records and key slots: XChaCha20-Poly1305 with a fresh random 24-byte nonce per seal
//!   (computed by `ring` with the default feature `fast-aead`, else by RustCrypto: same bytes).
//!   A sealed box is `nonce (24) || ciphertext || tag (16)`.
//! - Subkeys: BLAKE3 `derive_key` over the master key with fixed context strings.
//! - Name hashes and the audit chain: keyed BLAKE3; MACs are compared in constant time.

#[cfg(not(feature = "fast-aead"))]
use chacha20poly1305::XChaCha20Poly1305;
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

/// Random bytes drawn from the operating system in one call and handed out in order, each byte
/// once, refilled by another call when they run out. For a batch that needs many nonces and ids
/// at once (a call to the CSPRNG costs about as much as sealing a small record). Only for code
/// that runs no caller's code between the fill and the last draw: a pool that outlived a
/// `fork` would hand the same bytes to both processes.
pub(crate) struct RandomPool {
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
}

impl RandomPool {
    /// A pool of `len` random bytes (at least 64).
    pub(crate) fn new(len: usize) -> Result<Self> {
        let mut buf = Zeroizing::new(vec![0u8; len.max(64)]);
        getrandom::fill(&mut buf).map_err(|_| Error::Random)?;
        Ok(RandomPool { buf, pos: 0 })
    }

    /// The next `N` bytes, never handed out before.
    pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        if self.pos + N > self.buf.len() {
            getrandom::fill(&mut self.buf).map_err(|_| Error::Random)?;
            self.pos = 0;
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        Ok(out)
    }
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
    if let [one] = parts {
        // The same hash; the one-shot form skips the incremental hasher's setup (name hashes
        // are computed on every call).
        return *blake3::keyed_hash(key, one).as_bytes();
    }
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

/// An AEAD key ready to seal and open boxes: XChaCha20-Poly1305, computed by `ring` (feature
/// `fast-aead`, the default) or by RustCrypto's `chacha20poly1305` (pure Rust). Both produce the
/// same bytes for the same key, nonce, associated data and message.
///
/// ring has no XChaCha20: a box is sealed as HChaCha20 of the key over the first 16 nonce bytes
/// (a subkey, which depends on the nonce and so cannot be cached per key), then IETF
/// ChaCha20-Poly1305 under that subkey with the nonce `[0; 4] || last 8 nonce bytes`, which is
/// how XChaCha20-Poly1305 is defined (draft-irtf-cfrg-xchacha-03).
pub(crate) struct Sealer {
    #[cfg(feature = "fast-aead")]
    key: Key,
    #[cfg(not(feature = "fast-aead"))]
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        #[cfg(feature = "fast-aead")]
        {
            Sealer {
                key: Zeroizing::new(*key),
            }
        }
        #[cfg(not(feature = "fast-aead"))]
        {
            Sealer {
                cipher: reference::cipher(key),
            }
        }
    }

    /// Encrypts `plaintext` bound to `aad` under a fresh random nonce.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let nonce: [u8; NONCE_LEN] = random()?;
        self.seal_with_nonce(&nonce, aad, plaintext)
    }

    /// [`Sealer::seal`] under a given nonce, which must never repeat under one key: it comes
    /// from the CSPRNG ([`Sealer::seal`], or a [`RandomPool`] for a batch), or from the
    /// cross-checks of the two implementations.
    pub(crate) fn seal_with_nonce(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        #[cfg(feature = "fast-aead")]
        let sealed = fast::seal(&self.key, nonce, aad, plaintext);
        #[cfg(not(feature = "fast-aead"))]
        let sealed = reference::seal(&self.cipher, nonce, aad, plaintext);
        sealed.ok_or_else(|| Error::corrupted("encryption failed"))
    }

    /// Decrypts a box made by [`Sealer::seal`] with the same `aad`; `None` when it does not
    /// authenticate (wrong key, altered bytes, or another place's associated data).
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        #[cfg(feature = "fast-aead")]
        {
            fast::open(&self.key, aad, sealed)
        }
        #[cfg(not(feature = "fast-aead"))]
        {
            reference::open(&self.cipher, aad, sealed)
        }
    }
}

/// XChaCha20-Poly1305 as HChaCha20 (RustCrypto `chacha20`) and ring's ChaCha20-Poly1305.
#[cfg(feature = "fast-aead")]
pub(crate) mod fast {
    use chacha20::{R20, hchacha};
    use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
    use zeroize::{Zeroize, Zeroizing};

    use super::{Key, NONCE_LEN, SEAL_OVERHEAD, TAG_LEN};

    /// The ChaCha20-Poly1305 key and nonce that XChaCha20-Poly1305 uses under `key` and `nonce`.
    /// ring keeps its own copy of the subkey inside the returned key, which it does not wipe.
    fn subkey(key: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> Option<(LessSafeKey, Nonce)> {
        let (head, tail) = nonce.split_at(16);
        let mut derived = hchacha::<R20>(key.into(), head.try_into().ok()?);
        let sub: Key = Zeroizing::new(derived.into());
        derived.as_mut_slice().zeroize();
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, sub.as_slice()).ok()?;
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(tail);
        Some((LessSafeKey::new(unbound), Nonce::assume_unique_for_key(n)))
    }

    /// `nonce || ciphertext || tag`.
    pub(crate) fn seal(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Option<Vec<u8>> {
        let (k, n) = subkey(key, nonce)?;
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(nonce);
        out.extend_from_slice(plaintext);
        match k.seal_in_place_separate_tag(n, Aad::from(aad), &mut out[NONCE_LEN..]) {
            Ok(tag) => {
                out.extend_from_slice(tag.as_ref());
                Some(out)
            }
            Err(_) => {
                out.zeroize();
                None
            }
        }
    }

    /// The plaintext of `nonce || ciphertext || tag`, if it authenticates.
    pub(crate) fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < SEAL_OVERHEAD {
            return None;
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().ok()?;
        let (k, n) = subkey(key, nonce)?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let len = k.open_in_place(n, Aad::from(aad), &mut buf).ok()?.len();
        debug_assert_eq!(len + TAG_LEN, ct.len());
        buf.truncate(len);
        Some(buf)
    }
}

/// XChaCha20-Poly1305 by RustCrypto's `chacha20poly1305`: the pure-Rust build's AEAD, and the
/// reference the fast one is checked against.
pub(crate) mod reference {
    use chacha20poly1305::XChaCha20Poly1305;
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use zeroize::Zeroizing;

    use super::{NONCE_LEN, SEAL_OVERHEAD};

    pub(crate) fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
        // A 32-byte array is always a valid key.
        XChaCha20Poly1305::new(key.into())
    }

    /// `nonce || ciphertext || tag`.
    pub(crate) fn seal(
        cipher: &XChaCha20Poly1305,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Option<Vec<u8>> {
        let ct = cipher
            .encrypt(
                nonce.into(),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .ok()?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(nonce);
        out.extend_from_slice(&ct);
        Some(out)
    }

    /// The plaintext of `nonce || ciphertext || tag`, if it authenticates.
    pub(crate) fn open(
        cipher: &XChaCha20Poly1305,
        aad: &[u8],
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < SEAL_OVERHEAD {
            return None;
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        cipher
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
    fn a_random_pool_hands_out_each_byte_once_and_refills() {
        let mut pool = RandomPool::new(64).unwrap();
        let draws: Vec<[u8; 24]> = (0..10).map(|_| pool.take().unwrap()).collect();
        // Ten draws of 24 bytes from a pool of 64: two per fill, so refilled on the third,
        // fifth, seventh and ninth; no two draws alike (a repeat would be a 2^-192 event).
        for (i, a) in draws.iter().enumerate() {
            assert_ne!(a, &[0u8; 24]);
            for b in &draws[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

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
