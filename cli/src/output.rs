//! What the listing commands print: tables for people, JSON for programs.
//!
//! JSON field names are snake_case and stable. A time is two fields: `<field>` as an RFC 3339
//! string in UTC and `<field>_unix` as whole seconds since the epoch (both `null` when unset).
//!
//! Text that a writer or a client controls (names, tags, content types, labels, actors, error
//! messages quoting input) reaches a terminal only through [`escape`]: a control character
//! cannot retitle the terminal, move the cursor, or reorder what a line seems to say.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use comfy_table::{ContentArrangement, Table, presets};
use serde_json::{Map, Value, json};
use tresor::{
    AuditRecord, DeletedSecret, Principal, SecretProperties, SlotInfo, SlotKind, Timestamp,
    VaultSettings,
};

use crate::error::{CliError, CliResult};
use crate::time;

/// Whether a character may change what a terminal shows beyond itself: C0 and C1 controls,
/// DEL, and Unicode format characters that reorder or hide text (the library's one list, the
/// same that actor names may not hold).
pub fn is_hostile(c: char) -> bool {
    tresor::is_invisible_char(c)
}

/// Text for a terminal: every [`is_hostile`] character written as an escape (`\n`, `\t`,
/// `\r`, else `\u{XXXX}`), everything else as it is. Applying it twice changes nothing more.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hostile) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hostile(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// JSON text made safe for a terminal without changing what it means: serde_json escapes C0
/// controls, quotes and backslashes; the other [`is_hostile`] characters (which can only stand
/// inside strings) become `\uXXXX` escapes, so the document parses to the same values.
fn json_for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hostile) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hostile(c) && c != '\n' {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{u:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Prints `value` as one pretty JSON document and a newline.
pub fn print_json(value: &Value) -> CliResult<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::new(format!("cannot encode JSON: {e}")))?;
    print_text(&format!("{}\n", json_for_terminal(&text)))
}

/// Prints text to stdout.
pub fn print_text(text: &str) -> CliResult<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::new(format!("cannot write to stdout: {e}")))
}

/// A table in the plain style (aligned columns, no borders), fitted to the terminal if any.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// Prints a table (trailing spaces trimmed), every cell [`escape`]d: a cell holding a line
/// break or a terminal escape cannot forge a row or a column.
pub fn print_table(t: &Table) -> CliResult<()> {
    print_text(&table_text(t))
}

/// The text of a table as [`print_table`] prints it.
fn table_text(t: &Table) -> String {
    let cells = |row: &comfy_table::Row| -> Vec<String> {
        row.cell_iter()
            .map(|c| escape(&c.content()).into_owned())
            .collect()
    };
    let mut safe = Table::new();
    safe.load_preset(presets::NOTHING)
        .set_content_arrangement(t.content_arrangement());
    if let Some(header) = t.header() {
        safe.set_header(cells(header));
    }
    for row in t.row_iter() {
        safe.add_row(cells(row));
    }
    let mut text = String::new();
    for line in safe.to_string().lines() {
        // The preset pads every cell by one space: drop the left margin it makes.
        let line = line.strip_prefix(' ').unwrap_or(line);
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn insert_time(m: &mut Map<String, Value>, field: &str, t: Option<Timestamp>) {
    m.insert(
        field.into(),
        t.map_or(Value::Null, |t| time::rfc3339(t).into()),
    );
    m.insert(
        format!("{field}_unix"),
        t.map_or(Value::Null, |t| t.unix().into()),
    );
}

/// A version's properties as JSON.
pub fn properties_json(p: &SecretProperties) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), p.name.clone().into());
    m.insert("version".into(), p.version.to_string().into());
    m.insert("sequence".into(), p.sequence.into());
    m.insert("enabled".into(), p.enabled.into());
    m.insert(
        "content_type".into(),
        p.content_type.clone().map_or(Value::Null, Value::from),
    );
    m.insert("tags".into(), json!(p.tags));
    insert_time(&mut m, "not_before", p.not_before);
    insert_time(&mut m, "expires_on", p.expires_on);
    insert_time(&mut m, "created", Some(p.created));
    insert_time(&mut m, "updated", Some(p.updated));
    Value::Object(m)
}

/// A deleted secret as JSON: its current version's properties and the deletion dates.
pub fn deleted_json(d: &DeletedSecret) -> Value {
    let mut v = properties_json(&d.properties);
    if let Value::Object(m) = &mut v {
        insert_time(m, "deleted_on", Some(d.deleted_on));
        insert_time(m, "scheduled_purge", Some(d.scheduled_purge));
    }
    v
}

/// An audit record as JSON (`error` is null for success, else the error code).
pub fn audit_json(r: &AuditRecord) -> Value {
    let mut m = Map::new();
    m.insert("seq".into(), r.seq.into());
    insert_time(&mut m, "time", Some(r.time));
    m.insert("actor".into(), r.actor.clone().into());
    m.insert("operation".into(), r.operation.as_str().into());
    m.insert(
        "name".into(),
        r.name.clone().map_or(Value::Null, Value::from),
    );
    m.insert(
        "version".into(),
        r.version.map_or(Value::Null, |v| v.to_string().into()),
    );
    m.insert(
        "error".into(),
        r.error.clone().map_or(Value::Null, Value::from),
    );
    m.insert("principal".into(), principal_json(r.principal.as_ref()));
    Value::Object(m)
}

/// The credential behind an audit record: `{"kind": "slot"|"token", "id", "role"}`, or null
/// (the vault's own records, and records written before file format 3).
fn principal_json(p: Option<&Principal>) -> Value {
    match p {
        Some(Principal::Slot { id, role }) => {
            json!({"kind": "slot", "id": id.to_string(), "role": role.as_str()})
        }
        Some(Principal::Token { id, role }) => {
            json!({"kind": "token", "id": id, "role": role.as_str()})
        }
        Some(other) => {
            json!({"kind": other.to_string(), "id": null, "role": other.role().as_str()})
        }
        None => Value::Null,
    }
}

/// A key slot as JSON.
pub fn slot_json(s: &SlotInfo) -> Value {
    let (kind, kdf, provider) = slot_kind(&s.kind);
    let mut m = Map::new();
    m.insert("id".into(), s.id.into());
    m.insert("label".into(), s.label.clone().into());
    m.insert("role".into(), s.role.as_str().into());
    m.insert("kind".into(), kind.into());
    m.insert(
        "kdf".into(),
        kdf.map_or(Value::Null, |k| {
            json!({
                "memory_kib": k.memory_kib,
                "iterations": k.iterations,
                "parallelism": k.parallelism,
            })
        }),
    );
    m.insert("provider".into(), provider.map_or(Value::Null, Value::from));
    insert_time(&mut m, "created", Some(s.created));
    Value::Object(m)
}

fn slot_kind(k: &SlotKind) -> (&'static str, Option<tresor::KdfParams>, Option<String>) {
    match k {
        SlotKind::Passphrase(kdf) => ("passphrase", Some(*kdf), None),
        SlotKind::Key => ("key", None, None),
        SlotKind::Provider(id) => ("provider", None, Some(id.clone())),
        _ => ("other", None, None),
    }
}

/// Settings as JSON.
pub fn settings_json(s: &VaultSettings) -> Value {
    json!({
        "retention_days": s.retention_days,
        "purge_protection": s.purge_protection,
        "max_versions": s.max_versions,
    })
}

fn opt_time(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".into(), time::rfc3339)
}

fn tags_text(tags: &BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        return "-".into();
    }
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn enabled_text(enabled: bool) -> &'static str {
    if enabled { "yes" } else { "no" }
}

/// One version's state in words: enabled, disabled, expired, not yet valid.
pub fn state(p: &SecretProperties, now: Timestamp) -> &'static str {
    if !p.enabled {
        "disabled"
    } else if p.expires_on.is_some_and(|e| now >= e) {
        "expired"
    } else if p.not_before.is_some_and(|nb| now < nb) {
        "not yet valid"
    } else {
        "enabled"
    }
}

/// `show`: one version, one property per row.
pub fn properties_table(p: &SecretProperties, now: Timestamp) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic);
    let rows: [(&str, String); 11] = [
        ("name", p.name.clone()),
        ("version", p.version.to_string()),
        ("sequence", p.sequence.to_string()),
        ("state", state(p, now).into()),
        ("enabled", enabled_text(p.enabled).into()),
        (
            "content type",
            p.content_type.clone().unwrap_or_else(|| "-".into()),
        ),
        ("tags", tags_text(&p.tags)),
        ("not before", opt_time(p.not_before)),
        ("expires", opt_time(p.expires_on)),
        ("created", time::rfc3339(p.created)),
        ("updated", time::rfc3339(p.updated)),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    t
}

/// `list`: live secrets.
pub fn list_table(items: &[SecretProperties], now: Timestamp) -> Table {
    let mut t = table(&[
        "NAME",
        "STATE",
        "CONTENT TYPE",
        "EXPIRES",
        "UPDATED",
        "TAGS",
    ]);
    for p in items {
        t.add_row(vec![
            p.name.clone(),
            state(p, now).into(),
            p.content_type.clone().unwrap_or_else(|| "-".into()),
            opt_time(p.expires_on),
            time::rfc3339(p.updated),
            tags_text(&p.tags),
        ]);
    }
    t
}

/// `list --expiring`.
pub fn expiring_table(items: &[SecretProperties], now: Timestamp) -> Table {
    let mut t = table(&["NAME", "EXPIRES", "WHEN", "STATE"]);
    for p in items {
        t.add_row(vec![
            p.name.clone(),
            opt_time(p.expires_on),
            p.expires_on
                .map_or_else(|| "-".into(), |e| time::relative(e, now)),
            state(p, now).into(),
        ]);
    }
    t
}

/// `list --deleted`.
pub fn deleted_table(items: &[DeletedSecret], now: Timestamp) -> Table {
    let mut t = table(&["NAME", "DELETED", "SCHEDULED PURGE", "WHEN"]);
    for d in items {
        t.add_row(vec![
            d.properties.name.clone(),
            time::rfc3339(d.deleted_on),
            time::rfc3339(d.scheduled_purge),
            time::relative(d.scheduled_purge, now),
        ]);
    }
    t
}

/// `versions`.
pub fn versions_table(items: &[SecretProperties], now: Timestamp) -> Table {
    let mut t = table(&[
        "VERSION",
        "SEQ",
        "STATE",
        "CREATED",
        "EXPIRES",
        "CONTENT TYPE",
        "TAGS",
    ]);
    for p in items {
        t.add_row(vec![
            p.version.to_string(),
            p.sequence.to_string(),
            state(p, now).into(),
            time::rfc3339(p.created),
            opt_time(p.expires_on),
            p.content_type.clone().unwrap_or_else(|| "-".into()),
            tags_text(&p.tags),
        ]);
    }
    t
}

/// `audit`.
pub fn audit_table(items: &[AuditRecord]) -> Table {
    let mut t = table(&[
        "SEQ",
        "TIME",
        "ACTOR",
        "CREDENTIAL",
        "OPERATION",
        "NAME",
        "VERSION",
        "OUTCOME",
    ]);
    for r in items {
        t.add_row(vec![
            r.seq.to_string(),
            time::rfc3339(r.time),
            r.actor.clone(),
            r.principal
                .as_ref()
                .map_or_else(|| "-".into(), ToString::to_string),
            r.operation.as_str().into(),
            r.name.clone().unwrap_or_else(|| "-".into()),
            r.version.map_or_else(|| "-".into(), |v| v.to_string()),
            r.error.clone().unwrap_or_else(|| "ok".into()),
        ]);
    }
    t
}

/// `slot list`.
pub fn slots_table(items: &[SlotInfo], unlocked: Option<u32>) -> Table {
    let mut t = table(&["ID", "LABEL", "ROLE", "KIND", "CREATED", ""]);
    for s in items {
        let (kind, kdf, provider) = slot_kind(&s.kind);
        let kind = match (kdf, provider) {
            (Some(k), _) => format!(
                "{kind} (argon2id {} MiB, t={}, p={})",
                k.memory_kib / 1024,
                k.iterations,
                k.parallelism
            ),
            (_, Some(p)) => format!("{kind} ({p})"),
            _ => kind.to_string(),
        };
        t.add_row(vec![
            s.id.to_string(),
            s.label.clone(),
            s.role.as_str().into(),
            kind,
            time::rfc3339(s.created),
            if unlocked == Some(s.id) {
                "(unlocked with)".into()
            } else {
                String::new()
            },
        ]);
    }
    t
}

/// `settings`.
pub fn settings_table(s: &VaultSettings) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t.add_row(vec![
        "retention days".to_string(),
        s.retention_days.to_string(),
    ]);
    t.add_row(vec![
        "purge protection".to_string(),
        if s.purge_protection { "on" } else { "off" }.to_string(),
    ]);
    t.add_row(vec![
        "max versions".to_string(),
        s.max_versions
            .map_or_else(|| "unlimited".into(), |n| n.to_string()),
    ]);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a\u{1b}]0;owned\u{7}\u{9b}2J\u{7f}\u{202e}\u{2066}\u{200b}\nFORGED\r";

    fn inert(text: &str) -> bool {
        !text.chars().any(|c| c != '\n' && is_hostile(c))
    }

    #[test]
    fn escape_is_idempotent_and_leaves_text_alone() {
        assert_eq!(escape("db-password=ok é ü 日本"), "db-password=ok é ü 日本");
        let once = escape(HOSTILE).into_owned();
        assert!(inert(&once) && !once.contains('\n'), "{once}");
        assert_eq!(escape(&once), once);
        assert_eq!(
            once,
            "a\\u{1b}]0;owned\\u{7}\\u{9b}2J\\u{7f}\\u{202e}\\u{2066}\\u{200b}\\nFORGED\\r"
        );
    }

    #[test]
    fn tables_escape_every_cell_whoever_built_them() {
        // As `token list` (in the serve module) builds its table: raw cells.
        let mut t = table(&["ID", "LABEL"]);
        t.add_row(vec!["1".to_string(), HOSTILE.to_string()]);
        let text = table_text(&t);
        assert!(inert(&text), "{text:?}");
        assert_eq!(text.lines().count(), 2, "a cell forged a row: {text}");
        assert!(text.contains("\\u{202e}"));
    }

    #[test]
    fn json_stays_exact_and_inert() {
        let v = json!({"tag": HOSTILE, "plain": "x"});
        let text = serde_json::to_string_pretty(&v).unwrap();
        let safe = json_for_terminal(&text);
        assert!(inert(&safe), "{safe}");
        let back: Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
    }
}
