//! Secrets as callers see them: names and their rules, version ids, properties, values, and the
//! options of the calls that write them. The rules are Azure Key Vault's.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretSlice};

use crate::clock::Timestamp;
use crate::crypto;
use crate::error::{Error, Result};
use crate::limits::{MAX_CONTENT_TYPE_LEN, MAX_NAME_LEN, MAX_TAG_LEN, MAX_TAGS};

/// Checks a secret name against Azure's rules: 1–127 characters of `0-9`, `a-z`, `A-Z` and `-`.
///
/// ```
/// assert!(tresor::validate_name("db-password").is_ok());
/// assert!(tresor::validate_name("db_password").is_err());
/// assert!(tresor::validate_name("").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidName("a name needs at least one character"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidName("a name has at most 127 characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::InvalidName(
            "a name may hold only 0-9, a-z, A-Z and '-'",
        ));
    }
    Ok(())
}

/// The id of one version of a secret: 16 random bytes, shown as 32 lowercase hex characters
/// (the form Azure Key Vault uses in its URLs).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId(pub(crate) [u8; 16]);

impl VersionId {
    /// The raw 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crypto::hex(&self.0))
    }
}

impl fmt::Debug for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionId({self})")
    }
}

impl FromStr for VersionId {
    type Err = Error;

    /// Parses 32 hexadecimal characters (either case).
    fn from_str(s: &str) -> Result<Self> {
        crypto::unhex::<16>(s)
            .map(VersionId)
            .ok_or(Error::InvalidVersion)
    }
}

/// The properties of one version of a secret: everything but its value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretProperties {
    /// The name as it was written when the secret was created.
    pub name: String,
    /// This version's id.
    pub version: VersionId,
    /// This version's sequence number within the secret (1 for the first, rising by one per `set`).
    pub sequence: u64,
    /// Whether the value may be read.
    pub enabled: bool,
    /// Not valid before this time (informational unless the strict rule is on).
    pub not_before: Option<Timestamp>,
    /// Not valid after this time (informational unless the strict rule is on).
    pub expires_on: Option<Timestamp>,
    /// A free-form content type, ≤ 255 characters.
    pub content_type: Option<String>,
    /// Up to 15 tags.
    pub tags: BTreeMap<String, String>,
    /// When this version was created.
    pub created: Timestamp,
    /// When this version's properties were last changed.
    pub updated: Timestamp,
}

impl SecretProperties {
    /// Whether `now` lies outside the `not_before`..`expires_on` window.
    pub fn is_outside_validity(&self, now: Timestamp) -> bool {
        self.not_before.is_some_and(|nb| now < nb) || self.expires_on.is_some_and(|exp| now >= exp)
    }
}

/// A secret's value with the properties of its version. The value is held in a zeroizing box and
/// never printed by `Debug`.
#[derive(Debug)]
#[non_exhaustive]
pub struct Secret {
    /// The version's properties.
    pub properties: SecretProperties,
    /// The value.
    pub value: SecretSlice<u8>,
}

impl Secret {
    /// The value's bytes.
    pub fn expose(&self) -> &[u8] {
        self.value.expose_secret()
    }

    /// The value as UTF-8 text, or `None` when it is not valid UTF-8.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(self.value.expose_secret()).ok()
    }
}

/// A soft-deleted secret: the properties of its current version and when it will be purged.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeletedSecret {
    /// The properties of the version that was current when the secret was deleted.
    pub properties: SecretProperties,
    /// When it was deleted.
    pub deleted_on: Timestamp,
    /// When the vault purges it (deleted_on + the retention period).
    pub scheduled_purge: Timestamp,
}

/// What a check-and-set write expects to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The secret must not exist yet (neither live nor deleted).
    Absent,
    /// The secret's current version must be this one.
    Version(VersionId),
}

/// Options of [`Vault::set_with`](crate::Vault::set_with).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SetOptions {
    /// Content type of the new version.
    pub content_type: Option<String>,
    /// Tags of the new version.
    pub tags: BTreeMap<String, String>,
    /// Create the version disabled.
    pub disabled: bool,
    /// Not valid before.
    pub not_before: Option<Timestamp>,
    /// Expires on.
    pub expires_on: Option<Timestamp>,
    /// Check-and-set: fail with [`Error::VersionConflict`] unless the secret is as expected.
    pub expect: Option<Expect>,
    /// Keep at most this many versions of this secret from now on (overrides the vault's setting).
    pub max_versions: Option<u32>,
}

impl SetOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the content type.
    pub fn content_type(mut self, ct: impl Into<String>) -> Self {
        self.content_type = Some(ct.into());
        self
    }
    /// Adds a tag.
    pub fn tag(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.tags.insert(k.into(), v.into());
        self
    }
    /// Creates the version disabled (or not).
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }
    /// Sets `not_before`.
    pub fn not_before(mut self, t: Timestamp) -> Self {
        self.not_before = Some(t);
        self
    }
    /// Sets `expires_on`.
    pub fn expires_on(mut self, t: Timestamp) -> Self {
        self.expires_on = Some(t);
        self
    }
    /// Check-and-set: the write fails with [`Error::VersionConflict`] unless the secret is as expected.
    pub fn expect(mut self, e: Expect) -> Self {
        self.expect = Some(e);
        self
    }
    /// Keeps at most `n` versions of this secret (n ≥ 1).
    pub fn max_versions(mut self, n: u32) -> Self {
        self.max_versions = Some(n);
        self
    }
}

/// A change of properties: each `Some` field is written, each `None` left as it is.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PropertiesUpdate {
    /// Enable or disable the version.
    pub enabled: Option<bool>,
    /// Set (`Some(Some(t))`) or clear (`Some(None)`) `not_before`.
    pub not_before: Option<Option<Timestamp>>,
    /// Set or clear `expires_on`.
    pub expires_on: Option<Option<Timestamp>>,
    /// Set or clear the content type.
    pub content_type: Option<Option<String>>,
    /// Replace the tags.
    pub tags: Option<BTreeMap<String, String>>,
}

impl PropertiesUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Enables or disables the version.
    pub fn enabled(mut self, e: bool) -> Self {
        self.enabled = Some(e);
        self
    }
    /// Sets or clears `not_before`.
    pub fn not_before(mut self, t: Option<Timestamp>) -> Self {
        self.not_before = Some(t);
        self
    }
    /// Sets or clears `expires_on`.
    pub fn expires_on(mut self, t: Option<Timestamp>) -> Self {
        self.expires_on = Some(t);
        self
    }
    /// Sets or clears the content type.
    pub fn content_type(mut self, ct: Option<String>) -> Self {
        self.content_type = Some(ct);
        self
    }
    /// Replaces the tags.
    pub fn tags(mut self, tags: BTreeMap<String, String>) -> Self {
        self.tags = Some(tags);
        self
    }
}

/// Options of [`Vault::get_with`](crate::Vault::get_with).
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct GetOptions {
    /// A specific version instead of the current one.
    pub version: Option<VersionId>,
    /// Refuse a version outside its validity window with [`Error::OutsideValidity`]
    /// (otherwise the handle's [`Options::strict_validity`](crate::Options::strict_validity) decides).
    pub strict: bool,
}

/// One page of a listing. Pass `next` back as the cursor to get the following page.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The cursor of the next page, `None` on the last one.
    pub next: Option<String>,
}

pub(crate) fn check_content_type(ct: Option<&str>) -> Result<()> {
    if ct.is_some_and(|c| c.chars().count() > MAX_CONTENT_TYPE_LEN) {
        return Err(Error::invalid("a content type has at most 255 characters"));
    }
    Ok(())
}

pub(crate) fn check_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::invalid("at most 15 tags"));
    }
    for (k, v) in tags {
        if k.is_empty() {
            return Err(Error::invalid("a tag name may not be empty"));
        }
        if k.chars().count() > MAX_TAG_LEN || v.chars().count() > MAX_TAG_LEN {
            return Err(Error::invalid(
                "tag names and values have at most 512 characters",
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_window(nb: Option<Timestamp>, exp: Option<Timestamp>) -> Result<()> {
    if let (Some(nb), Some(exp)) = (nb, exp)
        && exp < nb
    {
        return Err(Error::invalid("expires_on is before not_before"));
    }
    Ok(())
}
