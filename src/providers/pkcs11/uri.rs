//! PKCS#11 URIs (RFC 7512): which token, which key, which module, which PIN.

use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The longest URI accepted (real ones are a few hundred bytes).
const URI_MAX: usize = 4096;

/// The kind of object a URI names (`type=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ObjectType {
    /// `type=secret-key`: an AES key (AES-GCM).
    SecretKey,
    /// `type=private` or `type=public`: an RSA key pair (RSA-OAEP).
    KeyPair,
}

/// A parsed PKCS#11 URI. Only the attributes tresor acts on are kept; `pin-value` is held in
/// a zeroizing string and never shown.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Pkcs11Uri {
    pub token: Option<String>,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub slot_id: Option<u64>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    pub object_type: Option<ObjectType>,
    pub module_path: Option<PathBuf>,
    pub pin_value: Option<Zeroizing<String>>,
    pub pin_source: Option<PathBuf>,
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Uri")
            .field("token", &self.token)
            .field("serial", &self.serial)
            .field("object", &self.object)
            .field("id", &self.id.as_deref().map(crate::crypto::hex))
            .field("object_type", &self.object_type)
            .field("module_path", &self.module_path)
            .field("pin_value", &self.pin_value.as_ref().map(|_| "[REDACTED]"))
            .field("pin_source", &self.pin_source)
            .finish()
    }
}

fn bad(why: impl fmt::Display) -> Error {
    Error::invalid(format!("not a PKCS#11 URI tresor can use: {why}"))
}

/// Decodes `%XX` escapes (RFC 3986). Raw bytes: `id=` is binary.
fn percent_decode(s: &str, attr: &str) -> Result<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(format!("a bad %-escape in the value of {attr}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn text(value: &str, attr: &str) -> Result<String> {
    String::from_utf8(percent_decode(value, attr)?)
        .map_err(|_| bad(format!("the value of {attr} is not UTF-8")))
}

fn set<T>(slot: &mut Option<T>, v: T, attr: &str) -> Result<()> {
    if slot.is_some() {
        return Err(bad(format!("{attr} is given twice")));
    }
    *slot = Some(v);
    Ok(())
}

impl Pkcs11Uri {
    /// Parses `pkcs11:path-attributes?query-attributes`. Path attributes: `token`, `serial`,
    /// `manufacturer`, `model`, `slot-id`, `object`, `id`, `type`; query attributes:
    /// `module-path`, `pin-value`, `pin-source`. Vendor attributes (`x-…`) are ignored; any
    /// other attribute is refused, since a key it would have narrowed the choice to could not be
    /// told apart.
    pub(crate) fn parse(uri: &str) -> Result<Self> {
        let uri = uri.trim();
        if uri.len() > URI_MAX {
            return Err(bad("longer than 4096 bytes"));
        }
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| bad("it does not start with `pkcs11:`"))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, q),
            None => (rest, ""),
        };
        let mut u = Pkcs11Uri::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| bad(format!("the path attribute {attr:?} has no `=`")))?;
            match name {
                "token" => set(&mut u.token, text(value, name)?, name)?,
                "serial" => set(&mut u.serial, text(value, name)?, name)?,
                "manufacturer" => set(&mut u.manufacturer, text(value, name)?, name)?,
                "model" => set(&mut u.model, text(value, name)?, name)?,
                "object" => set(&mut u.object, text(value, name)?, name)?,
                "id" => set(&mut u.id, percent_decode(value, name)?, name)?,
                "slot-id" => {
                    let n = text(value, name)?
                        .parse::<u64>()
                        .map_err(|_| bad("slot-id is not a number"))?;
                    set(&mut u.slot_id, n, name)?
                }
                "type" => {
                    let t = match text(value, name)?.as_str() {
                        "secret-key" => ObjectType::SecretKey,
                        "private" | "public" => ObjectType::KeyPair,
                        other => {
                            return Err(bad(format!(
                                "type={other}: a slot's key is a secret-key (AES) or an RSA \
                                 private/public key pair"
                            )));
                        }
                    };
                    set(&mut u.object_type, t, name)?
                }
                n if n.starts_with("x-") => {}
                other => {
                    return Err(bad(format!(
                        "the path attribute {other:?} is not supported (token, serial, \
                         manufacturer, model, slot-id, object, id, type)"
                    )));
                }
            }
        }
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| bad(format!("a query attribute has no `=` ({})", name_of(attr))))?;
            match name {
                "module-path" => set(&mut u.module_path, PathBuf::from(text(value, name)?), name)?,
                "pin-value" => {
                    let pin = Zeroizing::new(percent_decode(value, name)?);
                    let pin =
                        std::str::from_utf8(&pin).map_err(|_| bad("pin-value is not UTF-8"))?;
                    set(&mut u.pin_value, Zeroizing::new(pin.to_string()), name)?
                }
                "pin-source" => {
                    let src = text(value, name)?;
                    // A file URI (`file:/path`, `file:///path`) or a plain path.
                    let path = src
                        .strip_prefix("file://")
                        .or_else(|| src.strip_prefix("file:"))
                        .unwrap_or(&src);
                    set(&mut u.pin_source, PathBuf::from(path), name)?
                }
                "module-name" => {
                    return Err(bad(
                        "module-name is not supported: name the module's file with module-path \
                         or TRESOR_PKCS11_MODULE",
                    ));
                }
                n if n.starts_with("x-") => {}
                other => {
                    return Err(bad(format!(
                        "the query attribute {other:?} is not supported (module-path, \
                         pin-value, pin-source)"
                    )));
                }
            }
        }
        if u.token.is_none() && u.serial.is_none() && u.slot_id.is_none() {
            return Err(bad(
                "it names no token (token=LABEL, serial=… or slot-id=…)",
            ));
        }
        if u.object.is_none() && u.id.is_none() {
            return Err(bad("it names no key (object=LABEL or id=%XX…)"));
        }
        Ok(u)
    }
}

/// The name part of a query attribute, for messages (its value may be a PIN).
fn name_of(attr: &str) -> String {
    if attr.starts_with("pin") {
        "pin-…".to_string()
    } else {
        attr.chars().take(32).collect()
    }
}

/// `%XX` for every byte of `id` (how URIs and messages show key ids).
pub(crate) fn id_text(id: &[u8]) -> String {
    id.iter().map(|b| format!("%{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_attributes_used() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=My%20Token;serial=0123;object=wrap;id=%01%ff;type=secret-key\
             ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=12%334&x-vendor=1",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("My Token"));
        assert_eq!(u.serial.as_deref(), Some("0123"));
        assert_eq!(u.object.as_deref(), Some("wrap"));
        assert_eq!(u.id.as_deref(), Some(&[1u8, 255][..]));
        assert_eq!(u.object_type, Some(ObjectType::SecretKey));
        assert_eq!(
            u.module_path.as_deref(),
            Some(std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(u.pin_value.as_deref().map(String::as_str), Some("1234"));
        assert!(!format!("{u:?}").contains("1234"));
        let u = Pkcs11Uri::parse("pkcs11:token=t;object=k?pin-source=file:/run/pin").unwrap();
        assert_eq!(
            u.pin_source.as_deref(),
            Some(std::path::Path::new("/run/pin"))
        );
        assert_eq!(id_text(&[1, 0xab]), "%01%ab");
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for (uri, why) in [
            ("token=t;object=k", "pkcs11:"),
            ("pkcs11:object=k", "names no token"),
            ("pkcs11:token=t", "names no key"),
            ("pkcs11:token=t;object=k;library-version=1", "not supported"),
            (
                "pkcs11:token=t;object=k?module-name=softhsm2",
                "module-path",
            ),
            ("pkcs11:token=t;object=k;type=cert", "type=cert"),
            ("pkcs11:token=t;token=u;object=k", "twice"),
            ("pkcs11:token=%zz;object=k", "%-escape"),
            ("pkcs11:token=t;object=k?pin-value=%zz", "%-escape"),
        ] {
            let e = Pkcs11Uri::parse(uri).unwrap_err().to_string();
            assert!(e.contains(why), "{uri}: {e}");
        }
        // A malformed query attribute that holds a PIN is not echoed.
        let e = Pkcs11Uri::parse("pkcs11:token=t;object=k?pin9876")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("9876"), "{e}");
    }
}
