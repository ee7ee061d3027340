//! [`Pkcs11Provider`]: key slots whose key-encryption key is wrapped by a key on a PKCS#11
//! token (an HSM, a smart card, a YubiKey's PIV applet, SoftHSM2).

mod blob;
mod uri;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism as CkMechanism;
use cryptoki::mechanism::MechanismType;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Slot, TokenInfo};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use self::blob::{Blob, GCM_AAD, Mechanism};
use self::uri::{ObjectType, Pkcs11Uri, id_text};
use crate::crypto;
use crate::error::Result;
use crate::slot::{KeyProvider, ProviderError};

/// The provider id of PKCS#11 slots (stored in the slot).
pub const PKCS11_PROVIDER_ID: &str = "pkcs11";

/// The environment variable naming the PKCS#11 module (a shared library such as
/// `/usr/lib/softhsm/libsofthsm2.so` or `/usr/lib/x86_64-linux-gnu/libykcs11.so`) when neither
/// the URI (`module-path=`) nor [`Pkcs11Provider::module`] does.
pub const PKCS11_MODULE_ENV: &str = "TRESOR_PKCS11_MODULE";

/// The environment variable holding the token's user PIN when neither the URI (`pin-value=`,
/// `pin-source=`) nor [`Pkcs11Provider::pin`] gives one; the PIN callback is asked last.
pub const PKCS11_PIN_ENV: &str = "TRESOR_PKCS11_PIN";

/// The longest PIN file read.
const PIN_FILE_MAX: u64 = 4096;

/// Asks a person for a token's PIN: called with a description of the token ("PKCS#11 token
/// \"my-hsm\" (serial 0123)"); `None` when nobody can answer.
pub type PinCallback = Arc<dyn Fn(&str) -> Option<SecretString> + Send + Sync>;

/// A key provider that wraps a slot's key-encryption key with a key that never leaves a PKCS#11
/// token, found by a PKCS#11 URI (RFC 7512).
///
/// Two mechanisms, chosen by the key the URI names:
///
/// - **AES-GCM** (`CKM_AES_GCM`, 12-byte IV, 128-bit tag) under an AES secret key on the token:
///   what HSMs and SoftHSM2 offer; one symmetric operation, the fastest.
/// - **RSA-OAEP** (`CKM_RSA_PKCS_OAEP`, SHA-256, or SHA-1 on tokens that offer nothing else)
///   to an RSA key pair on the token: what smart cards and a YubiKey's PIV applet offer (they
///   have no AES keys). The wrap uses the public key, the unwrap the private key.
///
/// With `type=secret-key` or `type=private`/`type=public` the URI picks one; without `type=` a
/// secret key is looked for first, then an RSA key pair. The slot's blob records the token
/// (label, serial), the key (label, id), the mechanism and the wrapped key
/// (`docs/FORMAT.md`): never the PIN, never the module's path (it may differ from machine to
/// machine). Making a slot unwraps the key once more, so a slot is only made if it opens.
///
/// The module (the token's PKCS#11 library, loaded at run time: nothing is linked at build
/// time) comes from [`Pkcs11Provider::module`], else the URI's `module-path=`, else
/// [`PKCS11_MODULE_ENV`]. The user PIN from [`Pkcs11Provider::pin`], else the URI's
/// `pin-value=` or `pin-source=` (a file), else [`PKCS11_PIN_ENV`], else the
/// [`PinCallback`]; a token with a PIN pad (protected authentication path) asks on the pad.
///
/// ```no_run
/// use std::sync::Arc;
/// use tresor::providers::Pkcs11Provider;
/// use tresor::{Credential, Options, SlotSpec, Vault};
///
/// let vault = Vault::create("app.tresor", &Credential::passphrase("a long passphrase"), Options::new())?;
/// // A slot whose key an AES key on a SoftHSM2 token wraps (PIN from TRESOR_PKCS11_PIN).
/// let hsm = Pkcs11Provider::new(
///     "pkcs11:token=app;object=tresor-wrap;type=secret-key\
///      ?module-path=/usr/lib/softhsm/libsofthsm2.so",
/// )?;
/// vault.add_slot(&SlotSpec::new(Credential::provider(Arc::new(hsm)), "hsm"))?;
/// drop(vault);
///
/// // Later: any PKCS#11 slot whose token is present opens, with the module and PIN given.
/// let unlocker = Pkcs11Provider::unlocker()
///     .module("/usr/lib/softhsm/libsofthsm2.so")
///     .pin_callback(|_token| std::env::var("APP_HSM_PIN").ok().map(Into::into));
/// let vault = Vault::open("app.tresor", &Credential::provider(Arc::new(unlocker)), Options::new())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Pkcs11Provider {
    /// The token and key new slots are wrapped by; `None` for an unlocker.
    uri: Option<Pkcs11Uri>,
    module: Option<PathBuf>,
    pin: Option<Arc<SecretString>>,
    pin_callback: Option<PinCallback>,
}

impl fmt::Debug for Pkcs11Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Provider")
            .field("uri", &self.uri)
            .field("module", &self.module)
            .field("pin", &self.pin.as_ref().map(|_| "[REDACTED]"))
            .field("pin_callback", &self.pin_callback.is_some())
            .finish()
    }
}

impl Pkcs11Provider {
    /// A provider that makes slots wrapped by the key `uri` names (and unlocks any PKCS#11
    /// slot). Fails on a URI it cannot use: not `pkcs11:`, no token or no key named, an
    /// attribute it does not support. Path attributes: `token`, `serial`, `manufacturer`,
    /// `model`, `slot-id`, `object`, `id`, `type` (`secret-key`, `private`, `public`); query
    /// attributes: `module-path`, `pin-value`, `pin-source` (a file); vendor attributes (`x-…`)
    /// are ignored. Values are percent-decoded (`id=%01%02`, `token=My%20HSM`).
    pub fn new(uri: &str) -> Result<Self> {
        Ok(Pkcs11Provider {
            uri: Some(Pkcs11Uri::parse(uri)?),
            module: None,
            pin: None,
            pin_callback: None,
        })
    }

    /// A provider that only unlocks: it finds the token and the key each PKCS#11 slot's blob
    /// names.
    pub fn unlocker() -> Self {
        Pkcs11Provider {
            uri: None,
            module: None,
            pin: None,
            pin_callback: None,
        }
    }

    /// Loads this PKCS#11 module (overrides the URI's `module-path=` and
    /// [`PKCS11_MODULE_ENV`]).
    pub fn module(mut self, path: impl Into<PathBuf>) -> Self {
        self.module = Some(path.into());
        self
    }

    /// Logs in to the token with this user PIN.
    pub fn pin(mut self, pin: SecretString) -> Self {
        self.pin = Some(Arc::new(pin));
        self
    }

    /// Asks `callback` for the PIN when no other source gives one.
    pub fn pin_callback(
        mut self,
        callback: impl Fn(&str) -> Option<SecretString> + Send + Sync + 'static,
    ) -> Self {
        self.pin_callback = Some(Arc::new(callback));
        self
    }

    /// The module this provider loads: [`Pkcs11Provider::module`], else the URI's
    /// `module-path=`, else [`PKCS11_MODULE_ENV`]; `None` when none names one.
    pub fn module_path(&self) -> Option<PathBuf> {
        self.module
            .clone()
            .or_else(|| self.uri.as_ref().and_then(|u| u.module_path.clone()))
            .or_else(|| std::env::var_os(PKCS11_MODULE_ENV).map(PathBuf::from))
            .filter(|p| !p.as_os_str().is_empty())
    }

    fn context(&self) -> std::result::Result<(Pkcs11, PathBuf), String> {
        let module = self.module_path().ok_or_else(|| {
            format!(
                "no PKCS#11 module: give module-path= in the URI or set {PKCS11_MODULE_ENV} \
                 (the token's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so)"
            )
        })?;
        Ok((context(&module)?, module))
    }

    /// The user PIN for the token `what`, from the first source that has one.
    fn user_pin(&self, what: &str) -> std::result::Result<SecretString, String> {
        if let Some(p) = &self.pin {
            return Ok(SecretString::from(p.expose_secret().to_string()));
        }
        if let Some(u) = &self.uri {
            if let Some(v) = &u.pin_value {
                return Ok(SecretString::from(v.to_string()));
            }
            if let Some(path) = &u.pin_source {
                return pin_file(path);
            }
        }
        if let Some(v) = std::env::var_os(PKCS11_PIN_ENV) {
            let v = Zeroizing::new(
                v.into_string()
                    .map_err(|_| format!("{PKCS11_PIN_ENV} is not valid UTF-8"))?,
            );
            return Ok(SecretString::from(v.to_string()));
        }
        if let Some(ask) = &self.pin_callback
            && let Some(pin) = ask(what)
        {
            return Ok(pin);
        }
        Err(format!(
            "no PIN for {what}: set {PKCS11_PIN_ENV}, or give pin-value= or pin-source= in the URI"
        ))
    }

    /// Logs in as the user unless the token needs no login (or the application already is).
    fn login(
        &self,
        session: &Session,
        info: &TokenInfo,
        what: &str,
    ) -> std::result::Result<(), String> {
        if !info.login_required() {
            return Ok(());
        }
        let result = if info.protected_authentication_path() {
            session.login(UserType::User, None)
        } else {
            let pin = self.user_pin(what)?;
            session.login(UserType::User, Some(&pin))
        };
        match result {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(e) => Err(format!("{what}: login failed: {}", describe(&e))),
        }
    }
}

/// The PKCS#11 contexts of this process, one per module: loaded and initialized once, never
/// finalized (another part of the application may use the same module).
static MODULES: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());

fn context(module: &Path) -> std::result::Result<Pkcs11, String> {
    let shown = module.display();
    let mut loaded = MODULES
        .lock()
        .map_err(|_| "an earlier PKCS#11 call panicked".to_string())?;
    if let Some((_, ctx)) = loaded.iter().find(|(p, _)| p == module) {
        return Ok(ctx.clone());
    }
    if !module.is_file() {
        return Err(format!(
            "the PKCS#11 module {shown} does not exist (is the token's middleware installed?)"
        ));
    }
    let ctx =
        Pkcs11::new(module).map_err(|e| format!("cannot load the PKCS#11 module {shown}: {e}"))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(format!(
                "the PKCS#11 module {shown} failed to start: {}",
                describe(&e)
            ));
        }
    }
    loaded.push((module.to_path_buf(), ctx.clone()));
    Ok(ctx)
}

fn pin_file(path: &Path) -> std::result::Result<SecretString, String> {
    use std::io::Read;
    let shown = path.display();
    let mut text = Zeroizing::new(String::new());
    std::fs::File::open(path)
        .and_then(|f| f.take(PIN_FILE_MAX + 1).read_to_string(&mut text))
        .map_err(|e| format!("cannot read the PIN file {shown}: {e}"))?;
    if text.len() as u64 > PIN_FILE_MAX {
        return Err(format!("the PIN file {shown} is larger than 4 KiB"));
    }
    let pin = text.trim_end_matches(['\n', '\r']);
    if pin.is_empty() {
        return Err(format!("the PIN file {shown} is empty"));
    }
    Ok(SecretString::from(pin.to_string()))
}

/// A PKCS#11 failure in a few words (the return value's name; no data).
fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::PinIncorrect => "wrong PIN (CKR_PIN_INCORRECT)".into(),
            RvError::PinLocked => "the PIN is locked: too many wrong tries (CKR_PIN_LOCKED)".into(),
            RvError::PinExpired => "the PIN has expired (CKR_PIN_EXPIRED)".into(),
            RvError::PinLenRange | RvError::PinInvalid => {
                "the token refuses the PIN's length or characters".into()
            }
            RvError::TokenNotPresent | RvError::DeviceRemoved => {
                "the token was removed (CKR_TOKEN_NOT_PRESENT)".into()
            }
            RvError::DeviceError | RvError::DeviceMemory => {
                "the token failed (device error)".into()
            }
            RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange => {
                "the wrapped key does not decrypt under this key: it was altered, or the key \
                 was replaced"
                    .into()
            }
            RvError::MechanismInvalid => "the token does not offer this mechanism".into(),
            other => format!("{other:?}"),
        },
        other => other.to_string(),
    }
}

/// "PKCS#11 token "label" (serial S)".
fn token_text(label: &str, serial: &str) -> String {
    match (label.is_empty(), serial.is_empty()) {
        (false, false) => format!("PKCS#11 token {label:?} (serial {serial})"),
        (false, true) => format!("PKCS#11 token {label:?}"),
        _ => format!("PKCS#11 token with serial {serial}"),
    }
}

/// "key "label" (id %01)".
fn key_text(label: &str, id: &[u8]) -> String {
    match (label.is_empty(), id.is_empty()) {
        (false, false) => format!("key {label:?} (id {})", id_text(id)),
        (false, true) => format!("key {label:?}"),
        _ => format!("key with id {}", id_text(id)),
    }
}

/// What a token must match.
struct TokenWant<'a> {
    label: Option<&'a str>,
    serial: Option<&'a str>,
    manufacturer: Option<&'a str>,
    model: Option<&'a str>,
    slot_id: Option<u64>,
}

impl TokenWant<'_> {
    fn matches(&self, slot: Slot, info: &TokenInfo) -> bool {
        let eq = |want: Option<&str>, have: &str| want.is_none_or(|w| w == have.trim_end());
        eq(self.label, info.label())
            && eq(self.serial, info.serial_number())
            && eq(self.manufacturer, info.manufacturer_id())
            && eq(self.model, info.model())
            && self.slot_id.is_none_or(|id| id == slot.id())
    }

    fn text(&self) -> String {
        match self.slot_id {
            Some(id) if self.label.is_none() && self.serial.is_none() => {
                format!("the PKCS#11 token in slot {id}")
            }
            _ => token_text(self.label.unwrap_or(""), self.serial.unwrap_or("")),
        }
    }
}

/// The one token `want` names, with its info.
fn find_token(
    ctx: &Pkcs11,
    module: &Path,
    want: &TokenWant<'_>,
) -> std::result::Result<(Slot, TokenInfo), String> {
    let slots = ctx.get_slots_with_token().map_err(|e| {
        format!(
            "the PKCS#11 module {} cannot list its tokens: {}",
            module.display(),
            describe(&e)
        )
    })?;
    let mut seen = Vec::new();
    let mut found = Vec::new();
    for slot in slots {
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        if !info.token_initialized() {
            continue;
        }
        if want.matches(slot, &info) {
            found.push((slot, info));
        } else {
            seen.push(format!("{:?}", info.label().trim_end()));
        }
    }
    match found.len() {
        1 => found.pop().ok_or_else(|| "no token".to_string()),
        0 => Err(format!(
            "{} is not present in the PKCS#11 module {} (removed, or not initialized?); tokens \
             present: {}",
            want.text(),
            module.display(),
            if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join(", ")
            }
        )),
        n => Err(format!(
            "{n} tokens match {}: name one with serial=",
            want.text()
        )),
    }
}

/// The objects of `class` (and `key_type`) with the label and id given.
fn find_keys(
    session: &Session,
    class: ObjectClass,
    key_type: KeyType,
    label: Option<&str>,
    id: Option<&[u8]>,
) -> std::result::Result<Vec<ObjectHandle>, String> {
    let mut template = vec![Attribute::Class(class), Attribute::KeyType(key_type)];
    if let Some(l) = label.filter(|l| !l.is_empty()) {
        template.push(Attribute::Label(l.as_bytes().to_vec()));
    }
    if let Some(i) = id.filter(|i| !i.is_empty()) {
        template.push(Attribute::Id(i.to_vec()));
    }
    session
        .find_objects(&template)
        .map_err(|e| format!("cannot search the token's keys: {}", describe(&e)))
}

/// The one object of `found`, or why not.
fn one(found: Vec<ObjectHandle>, what: &str) -> std::result::Result<Option<ObjectHandle>, String> {
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(format!(
            "{} keys match {what}: name one with id=",
            many.len()
        )),
    }
}

/// The label and id of `key` as the token stores them.
fn label_and_id(
    session: &Session,
    key: ObjectHandle,
) -> std::result::Result<(String, Vec<u8>), String> {
    let attrs = session
        .get_attributes(key, &[AttributeType::Label, AttributeType::Id])
        .map_err(|e| format!("cannot read the key's label and id: {}", describe(&e)))?;
    let (mut label, mut id) = (String::new(), Vec::new());
    for a in attrs {
        match a {
            Attribute::Label(l) => label = String::from_utf8_lossy(&l).into_owned(),
            Attribute::Id(i) => id = i,
            _ => {}
        }
    }
    Ok((label, id))
}

fn oaep(sha1: bool) -> CkMechanism<'static> {
    CkMechanism::RsaPkcsOaep(if sha1 {
        PkcsOaepParams::new(
            MechanismType::SHA1,
            PkcsMgfType::MGF1_SHA1,
            PkcsOaepSource::empty(),
        )
    } else {
        PkcsOaepParams::new(
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
            PkcsOaepSource::empty(),
        )
    })
}

/// Unwraps `wrapped` with `key` by `mechanism`.
fn decrypt(
    session: &Session,
    mechanism: Mechanism,
    key: ObjectHandle,
    wrapped: &[u8],
) -> std::result::Result<Zeroizing<Vec<u8>>, CkError> {
    let out = match mechanism {
        Mechanism::AesGcm { iv } => {
            let mut iv = iv;
            let params = GcmParams::new(&mut iv, GCM_AAD, 128.into())?;
            session.decrypt(&CkMechanism::AesGcm(params), key, wrapped)?
        }
        Mechanism::RsaOaepSha256 => session.decrypt(&oaep(false), key, wrapped)?,
        Mechanism::RsaOaepSha1 => session.decrypt(&oaep(true), key, wrapped)?,
    };
    Ok(Zeroizing::new(out))
}

/// Why an unwrap failed. A GCM tag or an OAEP padding that does not verify is
/// CKR_ENCRYPTED_DATA_INVALID in the standard, CKR_GENERAL_ERROR in some modules (SoftHSM2):
/// both say the same here.
fn decrypt_failure(mechanism: Mechanism, e: &CkError) -> String {
    match e {
        CkError::Pkcs11(RvError::GeneralError, _) => format!(
            "{}: the wrapped key does not decrypt under this key: it was altered, or the key \
             was replaced (CKR_GENERAL_ERROR)",
            mechanism.name()
        ),
        other => format!("{}: {}", mechanism.name(), describe(other)),
    }
}

impl KeyProvider for Pkcs11Provider {
    fn id(&self) -> &str {
        PKCS11_PROVIDER_ID
    }

    fn wrap(&self, key: &[u8]) -> std::result::Result<Vec<u8>, ProviderError> {
        let Some(uri) = &self.uri else {
            return Err("this PKCS#11 provider only unlocks: give a URI to make a slot".into());
        };
        let (ctx, module) = self.context()?;
        let want = TokenWant {
            label: uri.token.as_deref(),
            serial: uri.serial.as_deref(),
            manufacturer: uri.manufacturer.as_deref(),
            model: uri.model.as_deref(),
            slot_id: uri.slot_id,
        };
        let (slot, info) = find_token(&ctx, &module, &want)?;
        let (token_label, token_serial) = (
            info.label().trim_end().to_string(),
            info.serial_number().trim_end().to_string(),
        );
        let token = token_text(&token_label, &token_serial);
        let session = ctx
            .open_ro_session(slot)
            .map_err(|e| format!("{token}: cannot open a session: {}", describe(&e)))?;
        self.login(&session, &info, &token)?;
        let (label, id) = (uri.object.as_deref(), uri.id.as_deref());
        let wanted = key_text(label.unwrap_or(""), id.unwrap_or(&[]));
        let named = |why: String| format!("{token}, {wanted}: {why}");

        let secret = if uri.object_type == Some(ObjectType::KeyPair) {
            None
        } else {
            one(
                find_keys(&session, ObjectClass::SECRET_KEY, KeyType::AES, label, id)
                    .map_err(named)?,
                "an AES key",
            )
            .map_err(named)?
        };
        let (handle, unwrap_handle, mechanism, wrapped) = match secret {
            Some(k) => {
                let iv: [u8; 12] = crypto::random().map_err(|e| e.to_string())?;
                let mut iv_buf = iv;
                let params = GcmParams::new(&mut iv_buf, GCM_AAD, 128.into())
                    .map_err(|e| named(describe(&e)))?;
                let wrapped = session
                    .encrypt(&CkMechanism::AesGcm(params), k, key)
                    .map_err(|e| named(format!("AES-GCM: {}", describe(&e))))?;
                (k, k, Mechanism::AesGcm { iv }, wrapped)
            }
            None if uri.object_type == Some(ObjectType::SecretKey) => {
                return Err(named("no such AES secret key on the token".into()).into());
            }
            None => {
                let public = one(
                    find_keys(&session, ObjectClass::PUBLIC_KEY, KeyType::RSA, label, id)
                        .map_err(named)?,
                    "an RSA public key",
                )
                .map_err(named)?;
                let private = one(
                    find_keys(&session, ObjectClass::PRIVATE_KEY, KeyType::RSA, label, id)
                        .map_err(named)?,
                    "an RSA private key",
                )
                .map_err(named)?;
                let (public, private) = match (public, private) {
                    (Some(p), Some(q)) => (p, q),
                    (None, None) => {
                        return Err(named(
                            "no such key on the token (an AES secret key, or an RSA key pair)"
                                .into(),
                        )
                        .into());
                    }
                    (None, Some(_)) => {
                        return Err(named(
                            "the token shows the RSA private key but not its public key".into(),
                        )
                        .into());
                    }
                    (Some(_), None) => {
                        return Err(named(
                            "the token has the RSA public key but not its private key".into(),
                        )
                        .into());
                    }
                };
                // SHA-256 first; SHA-1 where the token offers OAEP with nothing else.
                match session.encrypt(&oaep(false), public, key) {
                    Ok(w) => (public, private, Mechanism::RsaOaepSha256, w),
                    Err(CkError::Pkcs11(
                        RvError::MechanismParamInvalid | RvError::ArgumentsBad,
                        _,
                    )) => {
                        let w = session
                            .encrypt(&oaep(true), public, key)
                            .map_err(|e| named(format!("RSA-OAEP: {}", describe(&e))))?;
                        (public, private, Mechanism::RsaOaepSha1, w)
                    }
                    Err(e) => return Err(named(format!("RSA-OAEP: {}", describe(&e))).into()),
                }
            }
        };
        // The slot is made only if it opens: unwrap once with the key unlocks will use.
        let back = decrypt(&session, mechanism, unwrap_handle, &wrapped).map_err(|e| {
            named(format!(
                "{} did not unwrap what it wrapped: {}",
                mechanism.name(),
                describe(&e)
            ))
        })?;
        if back.as_slice() != key {
            return Err(named(format!("{} did not give the key back", mechanism.name())).into());
        }
        let (object_label, object_id) = label_and_id(&session, handle).map_err(named)?;
        let blob = Blob {
            token_label,
            token_serial,
            object_label,
            object_id,
            mechanism,
            wrapped,
        };
        Ok(blob::encode(&blob).map_err(named)?)
    }

    fn unwrap(&self, blob: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, ProviderError> {
        let b = blob::decode(blob)?;
        let (ctx, module) = self.context()?;
        let nonempty = |s: &str| (!s.is_empty()).then_some(s.to_string());
        let (label, serial) = (nonempty(&b.token_label), nonempty(&b.token_serial));
        let want = TokenWant {
            label: label.as_deref(),
            serial: serial.as_deref(),
            manufacturer: None,
            model: None,
            slot_id: None,
        };
        let (slot, info) = find_token(&ctx, &module, &want)?;
        let token = token_text(&b.token_label, &b.token_serial);
        let session = ctx
            .open_ro_session(slot)
            .map_err(|e| format!("{token}: cannot open a session: {}", describe(&e)))?;
        self.login(&session, &info, &token)?;
        let wanted = key_text(&b.object_label, &b.object_id);
        let named = |why: String| format!("{token}, {wanted}: {why}");
        let (class, key_type) = match b.mechanism {
            Mechanism::AesGcm { .. } => (ObjectClass::SECRET_KEY, KeyType::AES),
            Mechanism::RsaOaepSha256 | Mechanism::RsaOaepSha1 => {
                (ObjectClass::PRIVATE_KEY, KeyType::RSA)
            }
        };
        let key = one(
            find_keys(
                &session,
                class,
                key_type,
                Some(&b.object_label),
                Some(&b.object_id),
            )
            .map_err(named)?,
            "the slot's key",
        )
        .map_err(named)?
        .ok_or_else(|| named("no such key on the token (deleted, or another token?)".into()))?;
        let kek = decrypt(&session, b.mechanism, key, &b.wrapped)
            .map_err(|e| named(decrypt_failure(b.mechanism, &e)))?;
        if kek.len() != 32 {
            return Err(named("the unwrapped key is not 32 bytes".into()).into());
        }
        Ok(kek)
    }
}
