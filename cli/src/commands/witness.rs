//! `witness show` and `witness reset`: the rollback witness kept beside the vault.

use tresor::{Checkpoint, Witness};

use crate::args::{AuditReads, Global, WitnessCommand};
use crate::error::{CliError, CliResult, describe, quote};
use crate::{output, unlock};

/// Runs a `witness` subcommand (each opens the vault itself).
pub fn run(g: &Global, command: &WitnessCommand) -> CliResult<()> {
    let path = unlock::vault_path(g);
    let Some(witness) = unlock::witness(g, &path)? else {
        return Err(CliError::new(
            "no witness is kept (--no-witness, or no state directory: set --witness-dir)",
        ));
    };
    match command {
        WitnessCommand::Show => {
            // Opened without the witness, so that a file behind it can be shown too.
            // Reads not audited either: showing must not write to a file it judges.
            let quiet = Global {
                no_witness: true,
                audit_reads: AuditReads::Off,
                ..g.clone()
            };
            let opened = unlock::open(&quiet, false)?;
            let at = opened.vault.checkpoint()?;
            let stored = witness
                .load(&opened.vault.vault_id())
                .map_err(|e| CliError::new(describe(&e.into(), None)))?;
            opened.vault.close()?;
            // Whether the file's chain holds the witness's position: an open that expects it.
            let holds = stored.is_some_and(|s| {
                unlock::open_with(&quiet, |o| o.expect_checkpoint(s.at))
                    .is_ok_and(|o| o.vault.close().is_ok())
            });
            output::print_text(&show(
                &witness.path().display().to_string(),
                at,
                stored,
                holds,
            ))
        }
        WitnessCommand::Reset => {
            let opened = unlock::open_with(g, |o| o.reset_witness(true))?;
            let at = opened.vault.checkpoint()?;
            opened.vault.close()?;
            output::print_text(&format!(
                "the witness now follows {} as it is ({} audit records)\n",
                quote(&path.display().to_string()),
                at.seq()
            ))
        }
    }
}

fn show(file: &str, at: Checkpoint, stored: Option<tresor::WitnessState>, holds: bool) -> String {
    let mut out = format!("witness file: {}\nvault file:   {at}\n", quote(file));
    match stored {
        None => out.push_str("witness:      none yet (the next change writes it)\n"),
        Some(s) => {
            out.push_str(&format!("witness:      {}\n", s.at));
            if let Some(also) = s.also {
                out.push_str(&format!(
                    "              {also} (before a master-key rotation)\n"
                ));
            }
            let state = if s.at == at || s.also == Some(at) {
                "in step"
            } else if s.at.seq() > at.seq() {
                "the vault file is BEHIND its witness (an older copy put back?)"
            } else if holds {
                "the vault file is ahead of its witness (it catches up at the next open)"
            } else {
                "the vault file DIFFERS from what its witness saw (another copy, or an older copy \
                 written to since)"
            };
            out.push_str(&format!("state:        {state}\n"));
        }
    }
    out
}
