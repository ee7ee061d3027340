//! [`TpmProvider`]: key slots sealed to a TPM 2.0, optionally bound to PCR values.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::{SessionType, Tss2ResponseCodeKind};
use tss_esapi::handles::{KeyHandle, ObjectHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Digest, EccPoint, KeyedHashScheme, PcrSelectionList, PcrSelectionListBuilder, PcrSlot, Private,
    Public, PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters, SensitiveData,
    SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::{Context, TctiNameConf};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::slot::{KeyProvider, ProviderError};

/// The provider id of TPM slots (stored in the slot).
pub const TPM_PROVIDER_ID: &str = "tpm";

/// The environment variable naming the TPM to use (a TCTI configuration string); before
/// `TPM2TOOLS_TCTI` and `TCTI`, which tpm2-tools reads.
pub const TPM_TCTI_ENV: &str = "TRESOR_TPM_TCTI";

/// The TPM used when no environment variable names one: the kernel's resource manager.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// The blob layout this build writes (`docs/FORMAT.md`).
const BLOB_LAYOUT: u8 = 1;
/// The highest PCR index a slot may be bound to (PC client TPMs have 24 PCRs).
const PCR_MAX: u8 = 23;
/// The largest marshalled public area or private blob a slot may hold (a sealed keyed-hash
/// object's are about 100 and 150 bytes; the TPM's own buffers are smaller than this).
const PART_MAX: usize = 2048;
/// The length of the key a slot seals.
const KEY_LEN: usize = 32;

/// The sealed object and how to unseal it, as stored after the layout byte.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct Sealed {
    /// The SHA-256 PCRs the object's policy binds, ascending (empty: no policy).
    pcrs: Vec<u8>,
    /// The object's public area (a marshalled `TPMT_PUBLIC`).
    public: Vec<u8>,
    /// The object's private area, encrypted by the TPM under the primary key (the bytes of a
    /// `TPM2B_PRIVATE`, without its size).
    private: Vec<u8>,
}

/// A key provider that seals a slot's key-encryption key to a TPM 2.0, optionally bound to the
/// values of some SHA-256 PCRs (so that a device that booted something else cannot unseal it).
///
/// The key becomes a sealed data object under a primary storage key that the TPM derives again
/// at each use from its owner-hierarchy seed (the ECC P-256 storage key template of the TCG
/// provisioning guidance), so nothing persistent is stored in the TPM. The slot's blob holds the
/// sealed object's public and (TPM-encrypted) private parts and the PCR selection
/// (`docs/FORMAT.md`): only the TPM that sealed it can load it, and with PCRs only while they
/// hold the values they had when the slot was made. Commands that carry the key travel in
/// sessions salted to the primary key and encrypted.
///
/// The TPM is named by a TCTI string: [`TpmProvider::tcti`], else the environment variable
/// [`TPM_TCTI_ENV`] (`TRESOR_TPM_TCTI`), else `TPM2TOOLS_TCTI` or `TCTI`, else
/// [`DEFAULT_TCTI`] (`device:/dev/tpmrm0`). `swtpm:host=127.0.0.1,port=2321` names a software
/// TPM. Any `TpmProvider` unwraps any TPM slot its TPM sealed: the PCR selection is in the blob.
///
/// ```no_run
/// use std::sync::Arc;
/// use tresor::providers::TpmProvider;
/// use tresor::{Credential, Options, SlotSpec, Vault};
///
/// let vault = Vault::create("app.tresor", &Credential::passphrase("a long passphrase"), Options::new())?;
/// // A reader slot sealed to this device's TPM, bound to the firmware and Secure Boot PCRs.
/// let tpm = TpmProvider::new().pcrs([0, 7])?;
/// vault.add_slot(&SlotSpec::new(Credential::provider(Arc::new(tpm)), "device")
///     .role(tresor::Role::Reader))?;
/// drop(vault);
///
/// // At boot, without a passphrase:
/// let unlocker = Credential::provider(Arc::new(TpmProvider::new()));
/// let vault = Vault::open("app.tresor", &unlocker, Options::new())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TpmProvider {
    /// The TCTI given; `None`: from the environment at each use.
    tcti: Option<String>,
    /// The SHA-256 PCRs new slots are bound to, ascending and distinct.
    pcrs: Vec<u8>,
}

impl TpmProvider {
    /// A provider for the TPM the environment names, whose slots are bound to no PCR.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds the slots it makes to the current values of these SHA-256 PCRs (0 to 23; order
    /// and repetition do not matter; none: no binding). Unlocking needs no PCR list: the
    /// slot's blob has it.
    pub fn pcrs(mut self, pcrs: impl IntoIterator<Item = u8>) -> Result<Self> {
        let mut pcrs: Vec<u8> = pcrs.into_iter().collect();
        if let Some(bad) = pcrs.iter().find(|&&p| p > PCR_MAX) {
            return Err(Error::invalid(format!(
                "PCR {bad} does not exist: a TPM slot binds PCRs 0 to {PCR_MAX}"
            )));
        }
        pcrs.sort_unstable();
        pcrs.dedup();
        self.pcrs = pcrs;
        Ok(self)
    }

    /// Uses the TPM `tcti` names (`device:/dev/tpmrm0`, `swtpm:host=H,port=P`,
    /// `mssim:host=H,port=P`, `tabrmd:bus_name=…`) rather than the environment's.
    pub fn tcti(mut self, tcti: impl Into<String>) -> Self {
        self.tcti = Some(tcti.into());
        self
    }

    /// The PCRs new slots are bound to.
    pub fn pcr_selection(&self) -> &[u8] {
        &self.pcrs
    }

    /// The TCTI string of the TPM it uses: the one given, else `TRESOR_TPM_TCTI`,
    /// `TPM2TOOLS_TCTI` or `TCTI` from the environment, else [`DEFAULT_TCTI`].
    pub fn tcti_name(&self) -> String {
        if let Some(t) = &self.tcti {
            return t.clone();
        }
        [TPM_TCTI_ENV, "TPM2TOOLS_TCTI", "TCTI"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .find(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_TCTI.to_string())
    }

    /// Checks that the TPM answers and makes its primary storage key (what every slot
    /// operation does first).
    pub fn probe(&self) -> Result<()> {
        let tcti = self.tcti_name();
        let mut tpm = Tpm::connect(&tcti).map_err(Error::Provider)?;
        tpm.primary().map(|_| ()).map_err(Error::Provider)
    }
}

impl KeyProvider for TpmProvider {
    fn id(&self) -> &str {
        TPM_PROVIDER_ID
    }

    fn wrap(&self, key: &[u8]) -> std::result::Result<Vec<u8>, ProviderError> {
        if key.len() != KEY_LEN {
            return Err("a TPM slot seals a 32-byte key".into());
        }
        let tcti = self.tcti_name();
        let mut tpm = Tpm::connect(&tcti)?;
        let (public, private) = tpm.seal(key, &self.pcrs)?;
        let sealed = Sealed {
            pcrs: self.pcrs.clone(),
            public,
            private,
        };
        // Read it back: a slot whose key the TPM does not give back would open nothing.
        let back = tpm.unseal(&sealed)?;
        if back.as_slice() != key {
            return Err(format!("the TPM at {tcti} did not give back the key it sealed").into());
        }
        Ok(encode(&sealed)?)
    }

    fn unwrap(&self, blob: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, ProviderError> {
        let sealed = decode(blob)?;
        let tcti = self.tcti_name();
        let mut tpm = Tpm::connect(&tcti)?;
        let key = tpm.unseal(&sealed)?;
        if key.len() != KEY_LEN {
            return Err("the TPM slot's sealed object does not hold a 32-byte key".into());
        }
        Ok(key)
    }
}

/// `u8 layout (1) || postcard(Sealed)`.
fn encode(s: &Sealed) -> std::result::Result<Vec<u8>, String> {
    let mut out = vec![BLOB_LAYOUT];
    let body = postcard::to_allocvec(s).map_err(|e| format!("cannot encode a TPM slot: {e}"))?;
    out.extend_from_slice(&body);
    Ok(out)
}

fn decode(blob: &[u8]) -> std::result::Result<Sealed, String> {
    let bad = || "the TPM slot's blob is malformed".to_string();
    let (&layout, body) = blob.split_first().ok_or_else(bad)?;
    if layout != BLOB_LAYOUT {
        return Err(format!(
            "the TPM slot's blob has layout {layout}, this build reads layout {BLOB_LAYOUT}"
        ));
    }
    let (sealed, rest): (Sealed, _) = postcard::take_from_bytes(body).map_err(|_| bad())?;
    let ascending = sealed.pcrs.windows(2).all(|w| w[0] < w[1]);
    if !rest.is_empty()
        || !ascending
        || sealed.pcrs.iter().any(|&p| p > PCR_MAX)
        || sealed.public.is_empty()
        || sealed.private.is_empty()
        || sealed.public.len() > PART_MAX
        || sealed.private.len() > PART_MAX
    {
        return Err(bad());
    }
    Ok(sealed)
}

/// `0,7` for messages.
fn pcr_list(pcrs: &[u8]) -> String {
    pcrs.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
}

/// An open connection to a TPM, with the transient objects and sessions it made (flushed when
/// dropped: a TPM without a resource manager keeps them otherwise, and has room for few).
struct Tpm {
    ctx: Context,
    tcti: String,
    /// The primary storage key, once made.
    primary: Option<KeyHandle>,
    flush: Vec<ObjectHandle>,
}

impl fmt::Debug for Tpm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tpm({})", self.tcti)
    }
}

impl Drop for Tpm {
    fn drop(&mut self) {
        self.ctx.clear_sessions();
        for h in self.flush.drain(..).rev() {
            let _ = self.ctx.flush_context(h);
        }
    }
}

/// The text of a TPM software stack error (it carries no secret: response codes and kinds).
fn describe(e: tss_esapi::Error) -> String {
    e.to_string()
}

impl Tpm {
    fn connect(tcti: &str) -> std::result::Result<Self, String> {
        let conf = TctiNameConf::from_str(tcti).map_err(|_| {
            format!(
                "{tcti:?} names no TPM (a TCTI is device:PATH, swtpm:host=H,port=P, \
                 mssim:host=H,port=P or tabrmd:…)"
            )
        })?;
        if let Some(rest) = tcti.strip_prefix("device") {
            let path = rest.strip_prefix(':').filter(|p| !p.is_empty());
            let path = path.unwrap_or("/dev/tpm0");
            if !std::path::Path::new(path).exists() {
                return Err(format!("no TPM on this machine ({path} does not exist)"));
            }
        }
        let ctx = Context::new(conf)
            .map_err(|e| format!("the TPM at {tcti} cannot be reached: {}", describe(e)))?;
        Ok(Tpm {
            ctx,
            tcti: tcti.to_string(),
            primary: None,
            flush: Vec::new(),
        })
    }

    /// Flushes a transient object or session now (a TPM holds as few as 3 sessions).
    fn release(&mut self, handle: ObjectHandle) {
        self.flush.retain(|&h| h != handle);
        let _ = self.ctx.flush_context(handle);
    }

    /// A failure of the TPM at this TCTI doing `what`.
    fn failed(&self, what: &str) -> impl Fn(tss_esapi::Error) -> String + use<> {
        let tcti = self.tcti.clone();
        let what = what.to_string();
        move |e| format!("the TPM at {tcti} failed to {what}: {}", describe(e))
    }

    /// The primary storage key: ECC P-256, AES-128-CFB, restricted decryption, no
    /// dictionary-attack protection, under the owner hierarchy (its authorization empty).
    fn primary(&mut self) -> std::result::Result<KeyHandle, String> {
        if let Some(primary) = self.primary {
            return Ok(primary);
        }
        let public = primary_template().map_err(self.failed("describe its primary key"))?;
        let made = self
            .ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.create_primary(Hierarchy::Owner, public, None, None, None, None)
            })
            .map_err(|e| {
                let owner_auth = matches!(
                    &e,
                    tss_esapi::Error::Tss2Error(rc)
                        if matches!(rc.kind(), Some(Tss2ResponseCodeKind::BadAuth
                            | Tss2ResponseCodeKind::AuthFail))
                );
                let why = self.failed("make its primary storage key")(e);
                if owner_auth {
                    format!("{why} (the owner hierarchy has a password: a TPM slot needs it empty)")
                } else {
                    why
                }
            })?;
        self.flush.push(made.key_handle.into());
        self.primary = Some(made.key_handle);
        Ok(made.key_handle)
    }

    /// A session salted to `primary` whose commands and responses are encrypted (the key never
    /// crosses the bus in clear).
    fn session(
        &mut self,
        primary: KeyHandle,
        kind: SessionType,
    ) -> std::result::Result<AuthSession, String> {
        let session = self
            .ctx
            .start_auth_session(
                Some(primary),
                None,
                None,
                kind,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(self.failed("start a session"))?
            .ok_or_else(|| format!("the TPM at {} gave no session", self.tcti))?;
        self.flush.push(SessionHandleOf(session).into());
        let (attributes, mask) = SessionAttributesBuilder::new()
            .with_decrypt(true)
            .with_encrypt(true)
            .with_continue_session(true)
            .build();
        self.ctx
            .tr_sess_set_attributes(session, attributes, mask)
            .map_err(self.failed("set up a session"))?;
        Ok(session)
    }

    /// The SHA-256 selection of `pcrs`.
    fn selection(&self, pcrs: &[u8]) -> std::result::Result<PcrSelectionList, String> {
        let slots = pcrs
            .iter()
            .map(|&p| PcrSlot::try_from(1u32 << p))
            .collect::<tss_esapi::Result<Vec<_>>>()
            .map_err(self.failed("select PCRs"))?;
        PcrSelectionListBuilder::new()
            .with_selection(HashingAlgorithm::Sha256, &slots)
            .build()
            .map_err(self.failed("select PCRs"))
    }

    /// The policy digest of "the PCRs hold their current values".
    fn pcr_policy(&mut self, pcrs: &[u8]) -> std::result::Result<Digest, String> {
        let selection = self.selection(pcrs)?;
        let trial = self
            .ctx
            .start_auth_session(
                None,
                None,
                None,
                SessionType::Trial,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(self.failed("start a trial policy session"))?
            .ok_or_else(|| format!("the TPM at {} gave no session", self.tcti))?;
        self.flush.push(SessionHandleOf(trial).into());
        let policy = PolicySession::try_from(trial).map_err(self.failed("start a policy"))?;
        // An empty digest: the trial policy takes the PCRs' current values.
        self.ctx
            .execute_without_session(|ctx| ctx.policy_pcr(policy, Digest::default(), selection))
            .map_err(self.failed("read the PCRs into a policy"))?;
        let digest = self
            .ctx
            .execute_without_session(|ctx| ctx.policy_get_digest(policy))
            .map_err(self.failed("compute the PCR policy"));
        self.release(SessionHandleOf(trial).into());
        digest
    }

    /// Seals `key`; returns the sealed object's marshalled public area and private bytes.
    fn seal(&mut self, key: &[u8], pcrs: &[u8]) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
        let primary = self.primary()?;
        let policy = if pcrs.is_empty() {
            Digest::default()
        } else {
            self.pcr_policy(pcrs)?
        };
        let public = sealed_template(policy, pcrs.is_empty())
            .map_err(self.failed("describe a sealed object"))?;
        let data = SensitiveData::try_from(key.to_vec()).map_err(self.failed("take the key"))?;
        let session = self.session(primary, SessionType::Hmac)?;
        let made = self
            .ctx
            .execute_with_session(Some(session), |ctx| {
                ctx.create(primary, public, None, Some(data), None, None)
            })
            .map_err(self.failed("seal the key"));
        self.release(SessionHandleOf(session).into());
        let made = made?;
        let public = made
            .out_public
            .marshall()
            .map_err(self.failed("encode the sealed object"))?;
        Ok((public, made.out_private.value().to_vec()))
    }

    /// Unseals the key of `sealed`.
    fn unseal(&mut self, sealed: &Sealed) -> std::result::Result<Zeroizing<Vec<u8>>, String> {
        let public = Public::unmarshall(&sealed.public)
            .map_err(|_| "the TPM slot's sealed object is malformed".to_string())?;
        let private = Private::try_from(sealed.private.clone())
            .map_err(|_| "the TPM slot's sealed object is malformed".to_string())?;
        let primary = self.primary()?;
        let hmac = self.session(primary, SessionType::Hmac)?;
        let tcti = self.tcti.clone();
        let object = self
            .ctx
            .execute_with_session(Some(hmac), |ctx| ctx.load(primary, private, public))
            .map_err(|e| {
                format!(
                    "the TPM at {tcti} refuses the slot's sealed object (sealed by another TPM, \
                     its owner seed cleared since, or the blob damaged): {}",
                    describe(e)
                )
            })?;
        self.flush.push(object.into());
        if !sealed.pcrs.is_empty() {
            self.release(SessionHandleOf(hmac).into());
        }
        let data = if sealed.pcrs.is_empty() {
            self.ctx
                .execute_with_session(Some(hmac), |ctx| ctx.unseal(object.into()))
                .map_err(self.failed("unseal the key"))?
        } else {
            let selection = self.selection(&sealed.pcrs)?;
            let session = self.session(primary, SessionType::Policy)?;
            let policy = PolicySession::try_from(session).map_err(self.failed("start a policy"))?;
            self.ctx
                .execute_without_session(|ctx| ctx.policy_pcr(policy, Digest::default(), selection))
                .map_err(self.failed("read the PCRs into a policy"))?;
            self.ctx
                .execute_with_session(Some(session), |ctx| ctx.unseal(object.into()))
                .map_err(|e| {
                    let pcr_changed = matches!(
                        &e,
                        tss_esapi::Error::Tss2Error(rc)
                            if matches!(rc.kind(), Some(Tss2ResponseCodeKind::PolicyFail
                                | Tss2ResponseCodeKind::PcrChanged))
                    );
                    if pcr_changed {
                        format!(
                            "the TPM at {tcti} refuses to unseal: its PCR policy (SHA-256 PCRs \
                             {}) does not hold: the PCR values changed since the slot was made \
                             (the device booted other firmware, boot loader or settings, or a \
                             PCR was extended)",
                            pcr_list(&sealed.pcrs)
                        )
                    } else {
                        format!(
                            "the TPM at {tcti} failed to unseal the key: {}",
                            describe(e)
                        )
                    }
                })?
        };
        Ok(Zeroizing::new(data.value().to_vec()))
    }
}

/// The primary storage key's template: ECC P-256, AES-128-CFB, restricted decryption, no
/// dictionary-attack protection, empty unique field.
fn primary_template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

/// The sealed object's template: a keyed-hash object with no scheme, under `policy`; with
/// `user_with_auth` false the policy alone authorizes an unseal (PCR slots).
fn sealed_template(policy: Digest, user_with_auth: bool) -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .with_admin_with_policy(true)
        .with_user_with_auth(user_with_auth)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(policy)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
}

/// An auth session as the object handle `flush_context` takes.
struct SessionHandleOf(AuthSession);

impl From<SessionHandleOf> for ObjectHandle {
    fn from(s: SessionHandleOf) -> Self {
        let handle: tss_esapi::handles::SessionHandle = s.0.into();
        ObjectHandle::from(handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sealed {
        Sealed {
            pcrs: vec![0, 7],
            public: vec![0, 8, 0, 11, 1, 2],
            private: vec![9; 40],
        }
    }

    #[test]
    fn blob_round_trips_and_refuses_damage() {
        let blob = encode(&sample()).unwrap();
        assert_eq!(blob[0], 1);
        assert_eq!(&blob[1..4], &[2, 0, 7]);
        assert_eq!(decode(&blob), Ok(sample()));
        for cut in 0..blob.len() {
            assert!(decode(&blob[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let mut other = blob.clone();
        other[0] = 2;
        assert!(decode(&other).unwrap_err().contains("layout 2"));
        for pcrs in [vec![7, 0], vec![0, 0], vec![24]] {
            let s = Sealed { pcrs, ..sample() };
            assert!(decode(&encode(&s).unwrap()).is_err());
        }
    }

    #[test]
    fn pcr_lists_are_checked_and_normalised() {
        let p = TpmProvider::new().pcrs([7, 0, 7]).unwrap();
        assert_eq!(p.pcr_selection(), &[0, 7]);
        let e = TpmProvider::new().pcrs([24]).unwrap_err();
        assert!(e.to_string().contains("PCR 24"), "{e}");
        assert_eq!(pcr_list(&[0, 7, 16]), "0,7,16");
    }

    #[test]
    fn tcti_given_wins_and_bad_ones_are_named() {
        let p = TpmProvider::new().tcti("swtpm:host=127.0.0.1,port=9");
        assert_eq!(p.tcti_name(), "swtpm:host=127.0.0.1,port=9");
        let e = TpmProvider::new()
            .tcti("nonsense")
            .unwrap(&encode(&sample()).unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("names no TPM"), "{e}");
        let e = TpmProvider::new()
            .tcti("device:/nonexistent/tpm")
            .wrap(&[0u8; 32])
            .unwrap_err();
        assert!(e.to_string().contains("no TPM on this machine"), "{e}");
    }
}
