//! `run`: a command with secrets in its environment.

use std::ffi::OsString;
use std::process::{Command, ExitCode};

use crate::store::Store;
use zeroize::Zeroizing;

use super::explain;
use crate::args::{Global, RunArgs};
use crate::error::{CliError, CliResult, describe, quote};
use crate::output::escape;
use crate::{names, unlock};

/// Reads the secrets, closes the vault (so that the command may open it too), runs the
/// command, and returns its exit status. Values are never printed.
pub fn run(g: &Global, a: &RunArgs) -> CliResult<ExitCode> {
    let (env, skipped) = match super::holder(g)? {
        Some(held) => collect(held.store(), a)?,
        None => {
            let opened = unlock::open(g, false)?;
            let collected = collect(&opened.vault, a)?;
            opened.vault.close()?;
            collected
        }
    };
    let skipped: Vec<&str> = skipped.iter().map(String::as_str).collect();
    super::transfer::note_skipped(&skipped);
    let (program, args) = a
        .command
        .split_first()
        .ok_or_else(|| CliError::new("no command to run"))?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    // The command gets the secrets asked for, not tresor's credentials or settings.
    for (var, _) in std::env::vars_os() {
        if names::is_own_env(&var.to_string_lossy()) {
            cmd.env_remove(var);
        }
    }
    for (var, value) in &env {
        cmd.env(var, os_value(var, value)?);
    }
    let status = cmd.status().map_err(|e| {
        CliError::new(format!(
            "cannot run {}: {e}",
            quote(&program.to_string_lossy())
        ))
    })?;
    drop(env);
    if let Some(code) = status.code() {
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return Ok(ExitCode::from(u8::try_from(128 + sig).unwrap_or(1)));
        }
    }
    Ok(ExitCode::from(1))
}

/// Environment variables and their values, in the order they are set.
type Vars = Vec<(String, Zeroizing<Vec<u8>>)>;

/// The variables to set (`--all` first, then each `--env VAR=NAME`, which wins) and the
/// disabled secrets `--all` left out. Every variable is checked against the deny list before
/// its secret is read; `--all` leaves a variable the environment has alone unless `--override`.
fn collect(vault: &dyn Store, a: &RunArgs) -> CliResult<(Vars, Vec<String>)> {
    let mut env: Vars = Vec::new();
    let mut skipped = Vec::new();
    let mut kept = Vec::new();
    for (var, name) in &a.env {
        names::check_env(var, name, &a.allow.vars)?;
    }
    if a.all {
        let mut secrets = vault.list_all()?;
        secrets.sort_by_key(|p| p.name.to_ascii_lowercase());
        let mut wanted = Vec::new();
        for p in secrets {
            if !p.enabled {
                skipped.push(p.name);
                continue;
            }
            let var = names::env_var(&p.name);
            names::check_env(&var, &p.name, &a.allow.vars)?;
            let mapped = a.env.iter().any(|(v, _)| *v == var);
            if !mapped && !a.override_env && std::env::var_os(&var).is_some() {
                kept.push(var);
                continue;
            }
            wanted.push((var, p.name));
        }
        for (var, name) in wanted {
            let s = vault
                .get(&name)
                .map_err(|e| CliError::new(describe(&e, Some(&name))))?;
            env.push((var, Zeroizing::new(s.expose().to_vec())));
        }
    }
    for (var, name) in &a.env {
        let s = vault.get(name).map_err(|e| explain(vault, name, None, e))?;
        env.retain(|(v, _)| v != var);
        env.push((var.clone(), Zeroizing::new(s.expose().to_vec())));
    }
    for var in kept {
        eprintln!(
            "note: {} is set already and was left as it is (--override replaces it)",
            escape(&var)
        );
    }
    Ok((env, skipped))
}

/// A value as the operating system takes it (no NUL byte; any bytes on Unix, UTF-8 elsewhere).
fn os_value(var: &str, value: &[u8]) -> CliResult<OsString> {
    if value.contains(&0) {
        return Err(CliError::new(format!(
            "the value for {} holds a NUL byte, which an environment variable cannot",
            quote(var)
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(std::ffi::OsStr::from_bytes(value).to_os_string())
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(value)
            .map(OsString::from)
            .map_err(|_| CliError::new(format!("the value for {} is not UTF-8 text", quote(var))))
    }
}
