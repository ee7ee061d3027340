//! The commands: each opens the vault it needs, does one thing, and closes the vault.

mod audit;
mod backups;
mod events;
mod follow;
mod lifecycle;
mod run;
mod secrets;
mod slots;
mod transfer;
mod vault;
mod witness;

use std::process::ExitCode;

use clap::CommandFactory;
use tresor::{Error, VersionId};

use crate::args::{Cli, Command, Global, SlotCommand};
use crate::error::{CliError, CliResult, describe, quote};
use crate::store::Store;
use crate::{time, unlock};

/// Runs the command line; `Ok` holds the exit status (a child's, for `run`).
pub fn dispatch(cli: Cli) -> CliResult<ExitCode> {
    let g = &cli.global;
    match &cli.command {
        Command::Keygen(a) => vault::keygen(a)?,
        Command::Init(a) => vault::init(g, a)?,
        Command::Check => {
            refuse_if_held(g, "check")?;
            vault::check(g)?
        }
        Command::Run(a) => return run::run(g, a),
        Command::Witness(c) => {
            refuse_if_held(g, "witness")?;
            witness::run(g, c)?
        }
        Command::Audit(a) if a.follow => follow::follow(g, a)?,
        Command::Watch(a) => events::watch(g, a)?,
        Command::Backups(c) => backups::run(c)?,
        #[cfg(feature = "server")]
        Command::Serve(a) => return crate::serve::run(g, a),
        Command::Completions(a) => {
            let mut cmd = Cli::command();
            clap_complete::generate(a.shell, &mut cmd, "tresor", &mut std::io::stdout());
        }
        #[cfg(unix)]
        Command::Agent(a) => return crate::agent::run(g, a, false),
        #[cfg(unix)]
        Command::Unlock(a) => return crate::agent::run(g, a, true),
        #[cfg(unix)]
        Command::Lock => crate::agent::lock(g)?,
        #[cfg(unix)]
        Command::Status => crate::agent::status(g)?,
        command => {
            // A process that holds the vault (an agent, `tresor serve`) answers for it.
            if let Some(held) = holder(g)? {
                return routed(&held, command).map(|()| ExitCode::SUCCESS);
            }
            let opened = unlock::open(g, false)?;
            let v = &opened.vault;
            let result = match on_store(v, command) {
                Some(result) => result,
                // The commands that need the file itself.
                None => match command {
                    Command::Copy(a) => vault::copy(v, a),
                    Command::Slot(SlotCommand::Add(a)) => slots::add(g, v, a),
                    Command::Slot(SlotCommand::Remove(a)) => slots::remove(g, v, a),
                    Command::Passwd(a) => slots::passwd(g, &opened, a),
                    Command::RotateKey(a) => vault::rotate_key(g, v, a),
                    Command::Compact => vault::compact(v),
                    Command::Settings(a) => vault::settings(v, a),
                    #[cfg(feature = "server")]
                    Command::Identity(a) => crate::serve::identities::run(g, v, a),
                    _ => unreachable!("every other command is handled above or by on_store"),
                },
            };
            // Close (committing buffered audit records) whether or not the command failed;
            // the command's own error is the one reported.
            let closed = opened.vault.close().map_err(CliError::from);
            result?;
            closed?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The process holding the vault, when one answers on its socket.
pub struct Held {
    /// The connection to it.
    #[cfg(unix)]
    pub client: tresor::agent::Client,
    /// Without Unix domain sockets there are no holders: this cannot be made.
    #[cfg(not(unix))]
    never: std::convert::Infallible,
    /// What it is, for messages: "an agent (pid 123)".
    pub what: String,
}

impl Held {
    /// The holder as the commands see a vault.
    pub fn store(&self) -> &dyn Store {
        #[cfg(unix)]
        return &self.client;
        #[cfg(not(unix))]
        match self.never {}
    }
}

/// The holder of the vault the global flags name, if one runs.
#[cfg(unix)]
pub fn holder(g: &Global) -> CliResult<Option<Held>> {
    crate::agent::holder(g)
}

/// No holders where Unix domain sockets are missing.
#[cfg(not(unix))]
pub fn holder(_g: &Global) -> CliResult<Option<Held>> {
    Ok(None)
}

/// Commands that open the file themselves fail at once, naming the holder, while one runs.
fn refuse_if_held(g: &Global, name: &str) -> CliResult<()> {
    match holder(g)? {
        Some(held) => Err(held_error(&held, name)),
        None => Ok(()),
    }
}

fn held_error(held: &Held, name: &str) -> CliError {
    CliError::new(format!(
        "locked: the vault is held by {}; `tresor {name}` needs the file itself: stop the \
         holder first (`tresor lock` for an agent; Ctrl-C for `tresor serve`)",
        held.what
    ))
}

/// Runs a command through the vault's holder. Commands that need the file itself fail with a
/// message naming the holder and how to stop it.
fn routed(held: &Held, command: &Command) -> CliResult<()> {
    if let Some(result) = on_store(held.store(), command) {
        return result;
    }
    let name = match command {
        Command::Copy(_) => "copy",
        Command::Slot(SlotCommand::Add(_)) => "slot add",
        Command::Slot(SlotCommand::Remove(_)) => "slot remove",
        Command::Passwd(_) => "passwd",
        Command::RotateKey(_) => "rotate-key",
        Command::Compact => "compact",
        Command::Settings(_) => "settings (a change)",
        #[cfg(feature = "server")]
        Command::Identity(_) => "identity",
        _ => "this command",
    };
    Err(held_error(held, name))
}

/// Runs a command that works the same on the vault opened here and through a holder (the same
/// code on both paths, so output and exit status match); `None` for the commands that need the
/// file itself.
fn on_store(v: &dyn Store, command: &Command) -> Option<CliResult<()>> {
    Some(match command {
        Command::Set(a) => secrets::set(v, a),
        Command::Get(a) => secrets::get(v, a),
        Command::Show(a) => secrets::show(v, a),
        Command::List(a) => secrets::list(v, a),
        Command::Versions(a) => secrets::versions(v, a),
        Command::Update(a) => secrets::update(v, a),
        Command::Delete(a) => lifecycle::delete(v, a),
        Command::Recover(a) => lifecycle::recover(v, a),
        Command::Purge(a) => lifecycle::purge(v, a),
        Command::Backup(a) => lifecycle::backup(v, a),
        Command::Restore(a) => lifecycle::restore(v, a),
        Command::Audit(a) => audit::audit(v, a),
        Command::Checkpoint => audit::checkpoint(v),
        Command::Slot(SlotCommand::List(a)) => slots::list(v, a),
        Command::Settings(a) if a.purge_protection.is_none() && a.max_versions.is_none() => {
            vault::show_settings(v, a)
        }
        Command::Import(a) => transfer::import(v, a),
        Command::Export(a) => transfer::export(v, a),
        #[cfg(feature = "server")]
        Command::Token(a) => crate::serve::tokens::run(v, a),
        _ => return None,
    })
}

/// The message for an error about the secret `name`: a name that reads as not found may be
/// deleted, or the version asked for may be what is missing.
pub fn explain(vault: &dyn Store, name: &str, version: Option<&VersionId>, e: Error) -> CliError {
    if matches!(e, Error::Disabled) {
        return CliError::new(crate::error::disabled(name, version));
    }
    if !matches!(e, Error::NotFound) {
        return CliError::new(describe(&e, Some(name)));
    }
    if let Some(v) = version
        && vault.properties(name, None).is_ok()
    {
        return CliError::new(format!("not found: {} has no version {v}", quote(name)));
    }
    if let Ok(d) = vault.deleted_properties(name) {
        return CliError::new(format!(
            "deleted: {} was deleted on {} and is purged on {} unless recovered (`tresor recover {}`)",
            quote(&d.properties.name),
            time::rfc3339(d.deleted_on),
            time::rfc3339(d.scheduled_purge),
            d.properties.name
        ));
    }
    CliError::new(describe(&e, Some(name)))
}
