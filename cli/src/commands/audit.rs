//! The audit log: listing, verifying, checkpoints.

use crate::store::Store;
use serde_json::{Value, json};

use crate::args::AuditArgs;
use crate::error::CliResult;
use crate::output;

/// The most records one read of the log returns.
const PAGE: usize = 1000;

/// `audit`: the records (all, or the last `--tail N`), after verifying the chain with
/// `--verify` (alone, `--verify` prints only the result).
pub fn audit(vault: &dyn Store, a: &AuditArgs) -> CliResult<()> {
    let verified = if a.verify {
        Some(vault.verify_audit()?)
    } else {
        None
    };
    let show_records = !a.verify || a.tail.is_some();
    let mut records = Vec::new();
    if show_records {
        let mut after = match a.tail {
            Some(n) => vault.audit_len()?.saturating_sub(n),
            None => 0,
        };
        let limit = a.tail.map_or(u64::MAX, |n| n);
        while (records.len() as u64) < limit {
            let want = usize::try_from(limit - records.len() as u64).map_or(PAGE, |w| w.min(PAGE));
            let page = vault.audit(after, want)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full = page.len() == want;
            records.extend(page);
            if !full {
                break;
            }
        }
    }
    if a.json.json {
        return output::print_json(&json!({
            "verified_records": verified,
            "records": Value::Array(records.iter().map(output::audit_json).collect()),
        }));
    }
    if let Some(n) = verified {
        output::print_text(&format!("ok: the audit chain of {n} records verifies\n"))?;
    }
    if show_records {
        output::print_table(&output::audit_table(&records))?;
    }
    Ok(())
}

/// `checkpoint`.
pub fn checkpoint(vault: &dyn Store) -> CliResult<()> {
    output::print_text(&format!("{}\n", vault.checkpoint()?))
}
