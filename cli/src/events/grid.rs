//! Azure's Event Grid schema for Key Vault's secret events: `SecretNewVersionCreated`,
//! `SecretNearExpiry` and `SecretExpired`, with the `data` fields Azure documents (`Id`,
//! `VaultName`, `ObjectType`, `ObjectName`, `Version`, `NBF`, `EXP`).

use serde_json::{Value, json};
use tresor::{Timestamp, VersionId};

use crate::time;

/// The event types tresor raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GridType {
    /// A new version of a secret was written.
    NewVersion,
    /// The current version of a secret expires within the near-expiry window.
    NearExpiry,
    /// The current version of a secret has expired.
    Expired,
}

impl GridType {
    /// Azure's `eventType`.
    pub fn as_str(self) -> &'static str {
        match self {
            GridType::NewVersion => "Microsoft.KeyVault.SecretNewVersionCreated",
            GridType::NearExpiry => "Microsoft.KeyVault.SecretNearExpiry",
            GridType::Expired => "Microsoft.KeyVault.SecretExpired",
        }
    }

    fn salt(self) -> u8 {
        match self {
            GridType::NewVersion => 0,
            GridType::NearExpiry => 1,
            GridType::Expired => 2,
        }
    }
}

/// The vault as events name it.
#[derive(Clone, Debug)]
pub struct VaultRef {
    /// `VaultName`: the vault file's name without its extension.
    pub name: String,
    /// The base of `Id`: the URL `tresor serve` answers on.
    pub url: String,
}

/// What one event says of a secret version.
pub struct Subject<'a> {
    /// The secret's name.
    pub name: &'a str,
    /// The version.
    pub version: &'a VersionId,
    /// Its `not_before`, if any.
    pub nbf: Option<Timestamp>,
    /// Its `expires_on`, if any.
    pub exp: Option<Timestamp>,
}

/// The event's id: a GUID made from the version id and the event type, so that the same event
/// has the same id wherever it is delivered (a consumer can drop repeats by id).
pub fn event_id(kind: GridType, version: &VersionId) -> String {
    let mut b = *version.as_bytes();
    b[15] ^= kind.salt();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// One event in Event Grid's schema.
pub fn event(kind: GridType, vault: &VaultRef, s: &Subject<'_>, at: Timestamp) -> Value {
    let unix = |t: Option<Timestamp>| t.map_or(Value::Null, |t| Value::from(t.unix()));
    json!({
        "id": event_id(kind, s.version),
        "topic": format!(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/tresor/providers/Microsoft.KeyVault/vaults/{}",
            vault.name
        ),
        "subject": s.name,
        "eventType": kind.as_str(),
        "eventTime": time::rfc3339(at),
        "data": {
            "Id": format!("{}/secrets/{}/{}", vault.url.trim_end_matches('/'), s.name, s.version),
            "VaultName": vault.name,
            "ObjectType": "Secret",
            "ObjectName": s.name,
            "Version": s.version.to_string(),
            "NBF": unix(s.nbf),
            "EXP": unix(s.exp),
        },
        "dataVersion": "1",
        "metadataVersion": "1",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_has_azures_envelope_and_data_fields() {
        let version: VersionId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        let vault = VaultRef {
            name: "billing".into(),
            url: "https://127.0.0.1:8443/".into(),
        };
        let s = Subject {
            name: "db",
            version: &version,
            nbf: None,
            exp: Some(Timestamp::from_unix(1_800_000_000)),
        };
        let e = event(GridType::NearExpiry, &vault, &s, Timestamp::from_unix(0));
        assert_eq!(e["eventType"], "Microsoft.KeyVault.SecretNearExpiry");
        assert_eq!(e["subject"], "db");
        assert_eq!(e["eventTime"], "1970-01-01T00:00:00Z");
        assert_eq!(
            e["data"]["Id"],
            "https://127.0.0.1:8443/secrets/db/0123456789abcdef0123456789abcdef"
        );
        assert_eq!(e["data"]["VaultName"], "billing");
        assert_eq!(e["data"]["ObjectType"], "Secret");
        assert_eq!(e["data"]["Version"], "0123456789abcdef0123456789abcdef");
        assert_eq!(e["data"]["NBF"], Value::Null);
        assert_eq!(e["data"]["EXP"], 1_800_000_000);
        assert_eq!(e["id"], "01234567-89ab-cdef-0123-456789abcdee");
        assert_ne!(
            event_id(GridType::NewVersion, &version),
            event_id(GridType::Expired, &version)
        );
    }
}
