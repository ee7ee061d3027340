//! What has been sent already, kept in a small file beside the vault (`<vault>.events`, 0600):
//! the sequence number of the last audit record turned into events, and the versions whose
//! near-expiry and expiry events went out. It survives restarts, so a restart neither resends
//! nor skips.
//!
//! A file, not the vault's audit log: recording a notice in the vault would be a write (an
//! owner's or writer's commit, a new kind of audit record older readers do not know), for
//! bookkeeping that only the sender needs. The file names no secret: version ids and a number.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tresor::VersionId;

use crate::error::{CliError, CliResult, io_error, quote};
use crate::files;

/// The most bytes the state file may have (a million versions' ids fit).
const MAX: usize = 80 * 1024 * 1024;

/// The state, loaded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct State {
    /// The vault it belongs to (hex).
    pub vault_id: String,
    /// The last audit record turned into events; `None` before the first run.
    pub last_seq: Option<u64>,
    /// Versions whose `SecretNearExpiry` went out.
    pub near: BTreeSet<String>,
    /// Versions whose `SecretExpired` went out.
    pub expired: BTreeSet<String>,
}

/// The state file of the vault file `vault`.
pub fn path_for(vault: &Path) -> PathBuf {
    let mut p = vault.as_os_str().to_owned();
    p.push(".events");
    PathBuf::from(p)
}

impl State {
    /// Loads the state of the vault `vault_id` from `path`; a missing file, or one of another
    /// vault (a file replaced at that path), is a fresh state.
    pub fn load(path: &Path, vault_id: &str) -> CliResult<State> {
        let fresh = State {
            vault_id: vault_id.to_string(),
            ..State::default()
        };
        if !path.exists() {
            return Ok(fresh);
        }
        let bytes = files::read_bounded("event state file", path, MAX)?;
        let bad = || {
            CliError::new(format!(
                "the event state file {} is damaged: remove it to start afresh (events already \
                 sent may then be sent again)",
                quote(&path.display().to_string())
            ))
        };
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if v["vault_id"].as_str() != Some(vault_id) {
            eprintln!(
                "tresor events: {} belongs to another vault; starting afresh",
                quote(&path.display().to_string())
            );
            return Ok(fresh);
        }
        let set = |k: &str| -> CliResult<BTreeSet<String>> {
            v[k].as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|x| {
                    x.as_str()
                        .filter(|s| s.parse::<VersionId>().is_ok())
                        .map(str::to_string)
                        .ok_or_else(bad)
                })
                .collect()
        };
        Ok(State {
            vault_id: vault_id.to_string(),
            last_seq: match &v["last_seq"] {
                Value::Null => None,
                n => Some(n.as_u64().ok_or_else(bad)?),
            },
            near: set("near_expiry")?,
            expired: set("expired")?,
        })
    }

    /// Writes the state to `path` whole: a new private file renamed over the old one.
    pub fn save(&self, path: &Path) -> CliResult<()> {
        let doc = json!({
            "vault_id": self.vault_id,
            "last_seq": self.last_seq,
            "near_expiry": self.near,
            "expired": self.expired,
        });
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        files::write_private(&tmp, doc.to_string().as_bytes())?;
        std::fs::rename(&tmp, path).map_err(|e| io_error("cannot replace", path, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_another_vaults_is_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.tresor.events");
        let mut s = State::load(&p, "aa").unwrap();
        assert_eq!(s.last_seq, None);
        s.last_seq = Some(42);
        s.near.insert("0123456789abcdef0123456789abcdef".into());
        s.save(&p).unwrap();
        assert_eq!(State::load(&p, "aa").unwrap(), s);
        assert_eq!(State::load(&p, "bb").unwrap().last_seq, None);
        std::fs::write(&p, b"{").unwrap();
        assert!(State::load(&p, "aa").is_err());
    }
}
