//! The JSON of the secrets REST API: bundles and items built from tresor's types, and request
//! bodies parsed into tresor's options.
//!
//! Times are whole Unix seconds. `id` and `recoveryId` are absolute URLs on the host the request
//! was sent to. Values travel as JSON strings: a value that is not UTF-8 text cannot be sent, and
//! reading it is refused (see [`value_text`]).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tresor::{
    DeletedSecret, PropertiesUpdate, Secret, SecretProperties, SetOptions, Timestamp, VaultSettings,
};
use zeroize::Zeroizing;

use super::errors::ApiError;
use super::http::Wiped;

/// What every bundle repeats: the base URL and the vault's recovery settings.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// `https://host[:port]`, from the request.
    pub base: String,
    /// Azure's `recoveryLevel`.
    pub recovery_level: &'static str,
    /// Azure's `recoverableDays` (the retention period).
    pub recoverable_days: u16,
}

/// Azure's `recoveryLevel` for the vault's settings: soft-delete is always on; purge protection
/// removes `Purgeable`; a retention under 90 days is `Customized`.
pub fn recovery_level(s: &VaultSettings) -> &'static str {
    match (s.retention_days < 90, s.purge_protection) {
        (false, false) => "Recoverable+Purgeable",
        (false, true) => "Recoverable",
        (true, false) => "CustomizedRecoverable+Purgeable",
        (true, true) => "CustomizedRecoverable",
    }
}

impl Ctx {
    /// `https://host/secrets/{name}[/{version}]`.
    pub fn secret_id(&self, p: &SecretProperties, with_version: bool) -> String {
        if with_version {
            format!("{}/secrets/{}/{}", self.base, p.name, p.version)
        } else {
            format!("{}/secrets/{}", self.base, p.name)
        }
    }

    fn attributes(&self, p: &SecretProperties) -> Value {
        let mut a = Map::new();
        a.insert("enabled".into(), p.enabled.into());
        if let Some(nbf) = p.not_before {
            a.insert("nbf".into(), nbf.unix().into());
        }
        if let Some(exp) = p.expires_on {
            a.insert("exp".into(), exp.unix().into());
        }
        a.insert("created".into(), p.created.unix().into());
        a.insert("updated".into(), p.updated.unix().into());
        a.insert("recoveryLevel".into(), self.recovery_level.into());
        a.insert("recoverableDays".into(), self.recoverable_days.into());
        Value::Object(a)
    }

    fn common(&self, p: &SecretProperties, with_version: bool) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), self.secret_id(p, with_version).into());
        m.insert("attributes".into(), self.attributes(p));
        // Azure leaves `tags` out when there are none.
        if !p.tags.is_empty() {
            m.insert("tags".into(), json!(p.tags));
        }
        if let Some(ct) = &p.content_type {
            m.insert("contentType".into(), ct.clone().into());
        }
        m
    }

    /// A `SecretBundle` without its value (update, recover and restore answer so; get and set
    /// add the value with [`render`]).
    pub fn bundle(&self, p: &SecretProperties) -> Value {
        Value::Object(self.common(p, true))
    }

    /// A `SecretItem` of a listing: `id` without the version in the list of secrets, with it in
    /// the list of versions.
    pub fn item(&self, p: &SecretProperties, with_version: bool) -> Value {
        Value::Object(self.common(p, with_version))
    }

    fn deleted(&self, d: &DeletedSecret, with_version: bool) -> Value {
        let mut m = self.common(&d.properties, with_version);
        m.insert(
            "recoveryId".into(),
            format!("{}/deletedsecrets/{}", self.base, d.properties.name).into(),
        );
        m.insert("deletedDate".into(), d.deleted_on.unix().into());
        m.insert("scheduledPurgeDate".into(), d.scheduled_purge.unix().into());
        Value::Object(m)
    }

    /// A `DeletedSecretBundle` (delete, get deleted).
    pub fn deleted_bundle(&self, d: &DeletedSecret) -> Value {
        self.deleted(d, true)
    }

    /// A `DeletedSecretItem` of the list of deleted secrets.
    pub fn deleted_item(&self, d: &DeletedSecret) -> Value {
        self.deleted(d, false)
    }
}

/// The JSON text of `doc` (an object), with `"value": value` added first when given, in a buffer
/// wiped when dropped. The value is written straight into a buffer large enough for it escaped,
/// so it is never held in a `serde_json::Value` or a buffer that grows.
pub fn render(doc: &Value, value: Option<&str>) -> Wiped {
    let rest = serde_json::to_vec(doc).unwrap_or_default();
    let Some(value) = value else {
        return Zeroizing::new(rest);
    };
    // Escaped, a byte takes at most 6 (`\u00XX`).
    let mut out = Zeroizing::new(Vec::with_capacity(
        rest.len() + value.len().saturating_mul(6) + 16,
    ));
    out.extend_from_slice(b"{\"value\":");
    let _ = serde_json::to_writer(&mut *out, value);
    match rest.get(1..) {
        Some(b"}") | None => out.push(b'}'),
        Some(tail) => {
            out.push(b',');
            out.extend_from_slice(tail);
        }
    }
    out
}

/// A page of a listing: `{"value": [...], "nextLink": url | null}`.
pub fn page(items: Vec<Value>, next_link: Option<String>) -> Value {
    json!({ "value": items, "nextLink": next_link })
}

/// The value of `secret` as text. tresor stores bytes and Azure's API carries strings: a value
/// that is not UTF-8 is refused with 400 `BadParameter` (inner `SecretValueNotText`) rather than
/// altered; read it with the tresor library or command line.
pub fn value_text<'a>(secret: &'a Secret, name: &str) -> Result<&'a str, ApiError> {
    secret.expose_str().ok_or_else(|| {
        ApiError::bad(format!(
            "The value of secret {name} is not UTF-8 text, which this API cannot carry; read it \
             with the tresor library or `tresor get`."
        ))
        .inner("SecretValueNotText")
    })
}

/// A JSON error without any of the input's content (which may be a secret value).
fn json_error(e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => "is not valid JSON",
        Category::Data => "does not have the expected fields and types",
    };
    ApiError::bad(format!(
        "The request body {what} (line {}, column {}).",
        e.line(),
        e.column()
    ))
}

#[derive(Deserialize)]
struct SetAttributes {
    enabled: Option<bool>,
    nbf: Option<i64>,
    exp: Option<i64>,
}

#[derive(Deserialize)]
struct SetBody {
    value: Option<Zeroizing<String>>,
    tags: Option<BTreeMap<String, String>>,
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    attributes: Option<SetAttributes>,
}

/// The body of PUT `/secrets/{name}`: `{"value", "tags"?, "contentType"?, "attributes"?:
/// {"enabled"?, "nbf"?, "exp"?}}`. Other fields are ignored, as Azure does.
pub fn parse_set(body: &[u8]) -> Result<(Zeroizing<String>, SetOptions), ApiError> {
    let b: SetBody = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
    let value = b
        .value
        .ok_or_else(|| ApiError::bad("The request body has no 'value'."))?;
    let mut o = SetOptions::new();
    if let Some(ct) = b.content_type {
        o = o.content_type(ct);
    }
    for (k, v) in b.tags.unwrap_or_default() {
        o = o.tag(k, v);
    }
    if let Some(a) = b.attributes {
        o = o.disabled(a.enabled == Some(false));
        if let Some(nbf) = a.nbf {
            o = o.not_before(Timestamp::from_unix(nbf));
        }
        if let Some(exp) = a.exp {
            o = o.expires_on(Timestamp::from_unix(exp));
        }
    }
    Ok((value, o))
}

fn optional_time(v: &Value, field: &str) -> Result<Option<Timestamp>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(|t| Some(Timestamp::from_unix(t)))
            .ok_or_else(|| ApiError::bad(format!("'{field}' is not a whole number of seconds."))),
        _ => Err(ApiError::bad(format!(
            "'{field}' is not a number of seconds."
        ))),
    }
}

/// The body of PATCH `/secrets/{name}/[{version}]`: `{"contentType"?, "tags"?, "attributes"?:
/// {"enabled"?, "nbf"?, "exp"?}}`. A field that is absent is left as it is; `null` clears
/// `contentType`, `nbf`, `exp` and `tags`.
pub fn parse_update(body: &[u8]) -> Result<PropertiesUpdate, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
    let Value::Object(m) = v else {
        return Err(ApiError::bad("The request body is not a JSON object."));
    };
    let mut up = PropertiesUpdate::new();
    if let Some(ct) = m.get("contentType") {
        up = match ct {
            Value::Null => up.content_type(None),
            Value::String(s) => up.content_type(Some(s.clone())),
            _ => return Err(ApiError::bad("'contentType' is not a string.")),
        };
    }
    if let Some(tags) = m.get("tags") {
        let map = match tags {
            Value::Null => BTreeMap::new(),
            Value::Object(t) => t
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(ApiError::bad("A tag value is not a string.")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(ApiError::bad("'tags' is not an object.")),
        };
        up = up.tags(map);
    }
    match m.get("attributes") {
        None | Some(Value::Null) => {}
        Some(Value::Object(a)) => {
            match a.get("enabled") {
                None | Some(Value::Null) => {}
                Some(Value::Bool(e)) => up = up.enabled(*e),
                Some(_) => return Err(ApiError::bad("'enabled' is not a boolean.")),
            }
            if let Some(nbf) = a.get("nbf") {
                up = up.not_before(optional_time(nbf, "nbf")?);
            }
            if let Some(exp) = a.get("exp") {
                up = up.expires_on(optional_time(exp, "exp")?);
            }
        }
        Some(_) => return Err(ApiError::bad("'attributes' is not an object.")),
    }
    Ok(up)
}

/// base64url without padding, as Azure writes backup blobs.
pub fn backup_result(blob: &[u8]) -> Value {
    json!({ "value": URL_SAFE_NO_PAD.encode(blob) })
}

#[derive(Deserialize)]
struct RestoreBody {
    value: Option<String>,
}

/// The body of POST `/secrets/restore`: `{"value": base64url blob}` (padding and the standard
/// alphabet are accepted too).
pub fn parse_restore(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let b: RestoreBody = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
    let text = b
        .value
        .ok_or_else(|| ApiError::bad("The request body has no 'value'."))?;
    let text = text.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .map_err(|_| ApiError::bad("'value' is not base64url."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_body() {
        let (v, o) = parse_set(
            br#"{"value":"s3cret","tags":{"env":"dev"},"contentType":"text/plain",
                "attributes":{"enabled":false,"nbf":10,"exp":20,"recoveryLevel":"x"},"extra":1}"#,
        )
        .unwrap();
        assert_eq!(v.as_str(), "s3cret");
        assert_eq!(o.content_type.as_deref(), Some("text/plain"));
        assert_eq!(o.tags.get("env").map(String::as_str), Some("dev"));
        assert!(o.disabled);
        assert_eq!(o.not_before, Some(Timestamp::from_unix(10)));
        assert_eq!(o.expires_on, Some(Timestamp::from_unix(20)));
        assert!(parse_set(br#"{"tags":{}}"#).is_err());
        assert!(parse_set(br#"{"value":5}"#).is_err());
        assert!(parse_set(br#"{"value":"x","tags":{"a":1}}"#).is_err());
        assert!(parse_set(b"{\"value\":").is_err());
        assert!(parse_set(b"[]").is_err());
    }

    #[test]
    fn rendered_values_are_escaped_and_never_reallocated() {
        let doc = json!({"id": "https://h/secrets/a/1", "tags": {}});
        for value in [
            "plain",
            "quote \" backslash \\ newline \n",
            "\u{1}\u{7f}é€😀",
            "",
        ] {
            let out = render(&doc, Some(value));
            let back: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(back["value"], value);
            assert_eq!(back["id"], doc["id"]);
            assert!(out.len() <= out.capacity());
        }
        // The worst case of escaping fits the buffer reserved at first.
        let controls = "\u{1}".repeat(100);
        let out = render(&json!({}), Some(&controls));
        assert_eq!(out.len(), "{\"value\":\"\"}".len() + 600);
        assert_eq!(out.capacity(), 2 + 600 + 16, "reserved once, never grown");
        assert_eq!(&*render(&json!({"a": 1}), None), br#"{"a":1}"#);
    }

    #[test]
    fn errors_do_not_echo_the_input() {
        let e = parse_set(br#"{"value": 12345678}"#).unwrap_err();
        assert!(!e.message.contains("12345678"), "{}", e.message);
        let e = parse_set(br#"{"value": "hunter2", "tags": {"a": ["hunter2"]}}"#).unwrap_err();
        assert!(!e.message.contains("hunter2"), "{}", e.message);
    }

    #[test]
    fn update_body_absent_null_and_set() {
        let up = parse_update(br#"{"attributes":{"enabled":false}}"#).unwrap();
        assert_eq!(up.enabled, Some(false));
        assert!(up.content_type.is_none() && up.tags.is_none() && up.expires_on.is_none());
        let up =
            parse_update(br#"{"contentType":null,"tags":null,"attributes":{"exp":null,"nbf":5}}"#)
                .unwrap();
        assert_eq!(up.content_type, Some(None));
        assert_eq!(up.tags, Some(BTreeMap::new()));
        assert_eq!(up.expires_on, Some(None));
        assert_eq!(up.not_before, Some(Some(Timestamp::from_unix(5))));
        for bad in [
            &br#"{"contentType":1}"#[..],
            br#"{"tags":{"a":1}}"#,
            br#"{"attributes":{"enabled":"yes"}}"#,
            br#"{"attributes":{"exp":1.5}}"#,
            br#"[1]"#,
            b"not json",
        ] {
            assert!(parse_update(bad).is_err());
        }
    }

    #[test]
    fn restore_body_base64url() {
        let blob = [0xfbu8, 0xff, 0x00, 0x10];
        let v = backup_result(&blob);
        let text = v["value"].as_str().unwrap();
        assert!(!text.contains('=') && !text.contains('+') && !text.contains('/'));
        let body = serde_json::to_vec(&v).unwrap();
        assert_eq!(parse_restore(&body).unwrap(), blob);
        assert_eq!(parse_restore(br#"{"value":"+/8AEA=="}"#).unwrap(), blob);
        assert!(parse_restore(br#"{"value":"!!"}"#).is_err());
        assert!(parse_restore(br#"{}"#).is_err());
    }

    #[test]
    fn recovery_levels() {
        let mut s = tresor_settings(90, false);
        assert_eq!(recovery_level(&s), "Recoverable+Purgeable");
        s.purge_protection = true;
        assert_eq!(recovery_level(&s), "Recoverable");
        let s = tresor_settings(7, true);
        assert_eq!(recovery_level(&s), "CustomizedRecoverable");
    }

    fn tresor_settings(days: u16, pp: bool) -> VaultSettings {
        let key = tresor::Credential::generate_key().unwrap();
        let v = tresor::Vault::create_in_memory(
            &key,
            tresor::Options::new()
                .retention_days(days)
                .purge_protection(pp),
        )
        .unwrap();
        v.settings().unwrap()
    }
}
