//! The blob of a PKCS#11 slot: where the wrapping key is, how it wrapped, and the wrapped key
//! (`docs/FORMAT.md`, "Provider slots").

use serde::{Deserialize, Serialize};

/// The blob layout this build writes.
pub(crate) const BLOB_LAYOUT: u8 = 1;
/// The longest label, serial or id a blob may hold (PKCS#11 labels are 32 bytes; ids are short).
const NAME_MAX: usize = 256;
/// The longest wrapped key (an RSA-OAEP ciphertext under a 16384-bit key).
const WRAPPED_MAX: usize = 2048;

/// How the key-encryption key was wrapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Mechanism {
    /// CKM_AES_GCM under a secret key on the token: a 12-byte IV, a 128-bit tag, associated data
    /// [`GCM_AAD`].
    AesGcm {
        /// The IV.
        iv: [u8; 12],
    },
    /// CKM_RSA_PKCS_OAEP to an RSA key pair on the token: SHA-256 and MGF1-SHA-256, no label.
    RsaOaepSha256,
    /// CKM_RSA_PKCS_OAEP with SHA-1 and MGF1-SHA-1, for tokens that offer no other hash.
    RsaOaepSha1,
}

impl Mechanism {
    /// Its name in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mechanism::AesGcm { .. } => "AES-GCM",
            Mechanism::RsaOaepSha256 => "RSA-OAEP (SHA-256)",
            Mechanism::RsaOaepSha1 => "RSA-OAEP (SHA-1)",
        }
    }
}

/// The associated data of the AES-GCM wrap.
pub(crate) const GCM_AAD: &[u8] = b"tresor pkcs11 slot kek v1";

/// Where the wrapping key is and what it wrapped. Nothing secret: the wrapped key opens only on
/// the token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Blob {
    /// The token's label (CKA token info `label`, trailing blanks removed).
    pub token_label: String,
    /// The token's serial number (trailing blanks removed; may be empty).
    pub token_serial: String,
    /// The key's CKA_LABEL (may be empty).
    pub object_label: String,
    /// The key's CKA_ID (may be empty).
    pub object_id: Vec<u8>,
    /// How it wrapped.
    pub mechanism: Mechanism,
    /// The wrapped 32-byte key-encryption key (AES-GCM: ciphertext and tag).
    pub wrapped: Vec<u8>,
}

/// `u8 layout (1) || postcard(Blob)`.
pub(crate) fn encode(b: &Blob) -> Result<Vec<u8>, String> {
    check(b)?;
    let mut out = vec![BLOB_LAYOUT];
    let body = postcard::to_allocvec(b).map_err(|e| format!("cannot encode the slot: {e}"))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// The inverse of [`encode`]: refuses another layout, trailing bytes and out-of-range fields.
pub(crate) fn decode(blob: &[u8]) -> Result<Blob, String> {
    let bad = || "the PKCS#11 slot's blob is malformed".to_string();
    let (&layout, body) = blob.split_first().ok_or_else(bad)?;
    if layout != BLOB_LAYOUT {
        return Err(format!(
            "the PKCS#11 slot's blob has layout {layout}, this build reads layout {BLOB_LAYOUT}"
        ));
    }
    let (b, rest): (Blob, &[u8]) = postcard::take_from_bytes(body).map_err(|_| bad())?;
    if !rest.is_empty() {
        return Err(bad());
    }
    check(&b).map_err(|_| bad())?;
    Ok(b)
}

fn check(b: &Blob) -> Result<(), String> {
    let names_ok = [
        b.token_label.len(),
        b.token_serial.len(),
        b.object_label.len(),
    ]
    .into_iter()
    .chain([b.object_id.len()])
    .all(|n| n <= NAME_MAX);
    if !names_ok {
        return Err("a token or key name is longer than 256 bytes".into());
    }
    if b.token_label.is_empty() && b.token_serial.is_empty() {
        return Err("the token has neither a label nor a serial number".into());
    }
    if b.object_label.is_empty() && b.object_id.is_empty() {
        return Err("the key has neither a label nor an id".into());
    }
    if b.wrapped.is_empty() || b.wrapped.len() > WRAPPED_MAX {
        return Err("the wrapped key is empty or too long".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Blob {
        Blob {
            token_label: "tok".into(),
            token_serial: "0a1b".into(),
            object_label: "wrap".into(),
            object_id: vec![1, 2],
            mechanism: Mechanism::AesGcm { iv: [7; 12] },
            wrapped: vec![9; 48],
        }
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let blob = encode(&sample()).unwrap();
        assert_eq!(decode(&blob).unwrap(), sample());
        // layout 1, then postcard: a varint length before each string.
        assert_eq!(&blob[..5], &[1, 3, b't', b'o', b'k']);
        for cut in 0..blob.len() {
            assert!(decode(&blob[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let mut other = blob.clone();
        other[0] = 2;
        assert!(decode(&other).unwrap_err().contains("layout 2"));
        let rsa = Blob {
            mechanism: Mechanism::RsaOaepSha256,
            ..sample()
        };
        assert_eq!(decode(&encode(&rsa).unwrap()).unwrap(), rsa);
        let nameless = Blob {
            object_label: String::new(),
            object_id: Vec::new(),
            ..sample()
        };
        assert!(encode(&nameless).is_err());
    }
}
