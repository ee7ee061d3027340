//! Key slots: list, add, remove, and changing a passphrase.

use serde_json::Value;
use tresor::secrecy::ExposeSecret;
use tresor::{Credential, SlotKind, SlotSpec, Vault};

use crate::store::Store;

use crate::args::{Global, JsonFlag, PasswdArgs, SlotAddArgs, SlotRemoveArgs};
use crate::error::{CliError, CliResult, quote};
use crate::output;
use crate::unlock::{self, Kind, Opened};

/// `slot list`.
pub fn list(vault: &dyn Store, a: &JsonFlag) -> CliResult<()> {
    let slots = vault.slots()?;
    if a.json {
        output::print_json(&Value::Array(slots.iter().map(output::slot_json).collect()))
    } else {
        output::print_table(&output::slots_table(&slots, vault.unlocked_slot()))
    }
}

/// A new passphrase: from a file, else asked twice on the terminal.
fn new_passphrase(file: Option<&std::path::Path>, what: &str) -> CliResult<Credential> {
    if let Some(p) = file {
        return unlock::passphrase_file(p);
    }
    if unlock::can_prompt() {
        return unlock::prompt_passphrase(&format!("New passphrase for {what}: "), true);
    }
    Err(CliError::new(
        "no new passphrase: pass --new-passphrase-file, or run in a terminal to be asked",
    ))
}

/// `slot add`.
pub fn add(g: &Global, vault: &Vault, a: &SlotAddArgs) -> CliResult<()> {
    let (credential, note) = match (
        &a.new_key_file,
        unlock::new_provider(&a.provider, &a.label)?,
    ) {
        (_, Some(c)) => c,
        (Some(p), None) => (
            unlock::key_file(p, g.allow_insecure_key_file)?,
            String::new(),
        ),
        (None, None) => (
            new_passphrase(
                a.new_passphrase_file.as_deref(),
                &format!("slot {}", quote(&a.label)),
            )?,
            String::new(),
        ),
    };
    let spec = SlotSpec::new(credential, a.label.clone())
        .role(a.role.into())
        .kdf(g.kdf);
    let info = vault.add_slot(&spec)?;
    output::print_text(&format!(
        "added key slot {} ({}, {} role{})\n",
        info.id,
        quote(&info.label),
        info.role,
        note
    ))
}

/// `slot remove ID`.
pub fn remove(g: &Global, vault: &Vault, a: &SlotRemoveArgs) -> CliResult<()> {
    vault.remove_slot(a.id).map_err(|e| match e {
        tresor::Error::NotFound => CliError::new(format!("not found: no key slot {}", a.id)),
        other => CliError::from(other),
    })?;
    output::print_text(&format!("removed key slot {}\n", a.id))?;
    if a.rotate {
        return super::vault::rotate_and_compact(g, vault, &a.others);
    }
    // Every slot unwraps the same master key: the removed slot's holder may have kept it.
    eprintln!(
        "note: the removed slot's credential still opens older copies of this file, and its \
         holder may have kept the master key; `tresor rotate-key` (or `slot remove --rotate`) \
         re-keys the vault so that it opens nothing written from now on"
    );
    Ok(())
}

/// `passwd`: the slot given, else the passphrase slot that unlocked the vault, else the only
/// passphrase slot.
pub fn passwd(g: &Global, opened: &Opened, a: &PasswdArgs) -> CliResult<()> {
    let vault = &opened.vault;
    let slots = vault.slots()?;
    let is_passphrase = |id: u32| {
        slots
            .iter()
            .any(|s| s.id == id && matches!(s.kind, SlotKind::Passphrase(_)))
    };
    let id = match a.slot {
        Some(id) => {
            if !slots.iter().any(|s| s.id == id) {
                return Err(CliError::new(format!("not found: no key slot {id}")));
            }
            if !is_passphrase(id) {
                return Err(CliError::new(format!(
                    "key slot {id} is not a passphrase slot"
                )));
            }
            id
        }
        None => match vault.unlocked_slot() {
            Some(id) if opened.kind == Kind::Passphrase && is_passphrase(id) => id,
            _ => {
                let ids: Vec<u32> = slots
                    .iter()
                    .filter(|s| matches!(s.kind, SlotKind::Passphrase(_)))
                    .map(|s| s.id)
                    .collect();
                match ids.as_slice() {
                    [only] => *only,
                    [] => return Err(CliError::new("this vault has no passphrase slot")),
                    _ => {
                        return Err(CliError::new(
                            "this vault has several passphrase slots: choose one with --slot ID",
                        ));
                    }
                }
            }
        },
    };
    let Credential::Passphrase(new) =
        new_passphrase(a.new_passphrase_file.as_deref(), &format!("key slot {id}"))?
    else {
        return Err(CliError::new("the new credential is not a passphrase"));
    };
    if new.expose_secret().is_empty() {
        return Err(CliError::new("empty passphrase"));
    }
    vault.change_passphrase(id, &new, g.kdf)?;
    output::print_text(&format!("changed the passphrase of key slot {id}\n"))?;
    if a.rotate {
        return super::vault::rotate_and_compact(g, vault, &a.others);
    }
    eprintln!(
        "note: the old passphrase still opens older copies of this file, and whoever knew it \
         may have kept the master key; `tresor rotate-key` (or `passwd --rotate`) re-keys the \
         vault"
    );
    Ok(())
}
