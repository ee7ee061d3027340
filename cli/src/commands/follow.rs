//! `tresor audit --follow`: audit records printed as they commit, as text or (with `--json`) one
//! JSON object per line in the shape of Azure Key Vault's diagnostic logs (category
//! `AuditEvent`). The vault is opened for each look and closed between looks, so that the
//! commands being watched can use it.

use serde_json::{Map, Value, json};
use tresor::{AuditRecord, Principal};

use crate::args::{AuditArgs, Global};
use crate::error::CliResult;
use crate::poll::{Look, Poller};
use crate::{output, time};

/// Records read per page.
const PAGE: usize = 1000;

/// The HTTP status Azure answers an operation that failed with `code` (the error codes of
/// [`tresor::Error::code`]), and its reason phrase.
fn status_of(code: Option<&str>) -> (u16, &'static str) {
    match code {
        None => (200, "OK"),
        Some("NotFound") => (404, "Not Found"),
        Some("Conflict" | "ObjectIsDeletedButRecoverable" | "VersionConflict") => (409, "Conflict"),
        Some("Forbidden" | "Disabled" | "OutsideValidity" | "PurgeProtected") => (403, "Forbidden"),
        Some("WrongKey" | "MissingCredential") => (401, "Unauthorized"),
        Some(
            "InvalidName" | "InvalidVersion" | "InvalidArgument" | "InvalidBackup"
            | "InvalidCheckpoint",
        ) => (400, "Bad Request"),
        Some("ValueTooLarge") => (413, "Payload Too Large"),
        Some(_) => (500, "Internal Server Error"),
    }
}

/// One record as Azure's `AuditEvent` diagnostic log entry: `time`, `resourceId`,
/// `operationName` (`SecretGet`, …), `category`, `resultType`, `resultSignature`,
/// `resultDescription`, `correlationId`, `identity.claim`, `properties` (`id`,
/// `httpStatusCode`, …), with tresor's own fields under `properties` (`sequence`, `actor`,
/// `principal`, `errorCode`).
pub fn audit_event(r: &AuditRecord, vault_name: &str, vault_url: &str) -> Value {
    let (status, signature) = status_of(r.error.as_deref());
    let mut claim = Map::new();
    claim.insert("appid".into(), r.actor.clone().into());
    match &r.principal {
        Some(Principal::Slot { id, role }) => {
            claim.insert(
                "http://schemas.microsoft.com/identity/claims/objectidentifier".into(),
                format!("slot:{id}").into(),
            );
            claim.insert("role".into(), role.as_str().into());
        }
        Some(Principal::Token { id, role }) => {
            claim.insert(
                "http://schemas.microsoft.com/identity/claims/objectidentifier".into(),
                format!("token:{id}").into(),
            );
            claim.insert("role".into(), role.as_str().into());
        }
        _ => {}
    }
    let id = match (&r.name, &r.version) {
        (Some(n), Some(v)) => format!("{vault_url}/secrets/{n}/{v}"),
        (Some(n), None) => format!("{vault_url}/secrets/{n}"),
        _ => format!("{vault_url}/"),
    };
    json!({
        "time": time::rfc3339(r.time),
        "resourceId": format!(
            "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/TRESOR/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/{}",
            vault_name.to_uppercase()
        ),
        "operationName": r.operation.as_str(),
        "category": "AuditEvent",
        "resultType": if r.error.is_none() { "Success" } else { "Failure" },
        "resultSignature": signature,
        "resultDescription": r.error.clone().unwrap_or_default(),
        "correlationId": r.seq.to_string(),
        "identity": { "claim": claim },
        "properties": {
            "id": id,
            "httpStatusCode": status,
            "sequence": r.seq,
            "actor": r.actor,
            "errorCode": r.error,
        },
    })
}

/// `audit --follow`: the last `--tail N` records (none by default), then each new one as it
/// commits, until interrupted.
pub fn follow(g: &Global, a: &AuditArgs) -> CliResult<()> {
    let (mut poller, vault) = Poller::start(g, true)?;
    if a.verify {
        let n = vault.verify_audit()?;
        eprintln!("ok: the audit chain of {n} records verifies");
    }
    let head = vault.audit_len()?;
    let mut after = head.saturating_sub(a.tail.unwrap_or(0));
    let name = poller
        .path()
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("tresor")
        .to_string();
    let url = a.vault_url.trim_end_matches('/').to_string();
    let mut vault = Some(vault);
    let mut said_locked = false;
    loop {
        if let Some(v) = vault.take() {
            said_locked = false;
            loop {
                let page = v.audit(after, PAGE)?;
                for r in &page {
                    let line = if a.json.json {
                        format!("{}\n", audit_event(r, &name, &url))
                    } else {
                        format!(
                            "{} {} {} {} {}{}\n",
                            r.seq,
                            time::rfc3339(r.time),
                            output::escape(&r.actor),
                            r.operation.as_str(),
                            output::escape(r.name.as_deref().unwrap_or("-")),
                            r.error
                                .as_deref()
                                .map_or(String::new(), |e| format!(" ({e})"))
                        )
                    };
                    // A closed pipe (`| head`) ends the command quietly.
                    if output::print_text(&line).is_err() {
                        return Ok(());
                    }
                    after = r.seq;
                }
                if page.len() < PAGE {
                    break;
                }
            }
            v.close()?;
        }
        std::thread::sleep(a.interval.max(std::time::Duration::from_millis(100)));
        match poller.look()? {
            Look::Open(v) => vault = Some(v),
            Look::Locked if !said_locked => {
                eprintln!(
                    "tresor audit: {}; trying again (records appear once it is free)",
                    poller.locked()
                );
                said_locked = true;
            }
            Look::Locked => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_azures() {
        assert_eq!(status_of(None), (200, "OK"));
        assert_eq!(status_of(Some("NotFound")).0, 404);
        assert_eq!(status_of(Some("Forbidden")).0, 403);
        assert_eq!(status_of(Some("ObjectIsDeletedButRecoverable")).0, 409);
        assert_eq!(status_of(Some("InvalidName")).0, 400);
    }
}
