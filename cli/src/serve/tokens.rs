//! `tresor token create|list|revoke`: the bearer tokens `tresor serve` accepts.

use serde_json::{Value, json};
use tresor::{Error, Role, TokenInfo};

use crate::store::Store;

use super::args::{TokenCommand, TokenCreateArgs, TokenListArgs, TokenRevokeArgs};
use crate::error::{CliError, CliResult, quote};
use crate::{output, time};

/// Runs a `tresor token` command on an open vault.
pub fn run(vault: &dyn Store, command: &TokenCommand) -> CliResult<()> {
    match command {
        TokenCommand::Create(a) => create(vault, a),
        TokenCommand::List(a) => list(vault, a),
        TokenCommand::Revoke(a) => revoke(vault, a),
    }
}

/// `<role>-<n>`, the first such label not taken.
fn default_label(vault: &dyn Store, role: Role) -> CliResult<String> {
    let taken: Vec<String> = vault.list_tokens()?.into_iter().map(|t| t.label).collect();
    let mut n = 1u32;
    loop {
        let label = format!("{role}-{n}");
        if !taken.contains(&label) {
            return Ok(label);
        }
        n += 1;
    }
}

/// `token create`: the token on stdout (its only showing), what it is on stderr.
fn create(vault: &dyn Store, a: &TokenCreateArgs) -> CliResult<()> {
    let role = Role::from(a.role);
    let label = match &a.label {
        Some(l) => l.clone(),
        None => default_label(vault, role)?,
    };
    if super::identity::is_identity_label(&label) {
        return Err(CliError::new(format!(
            "labels starting with {} are managed identities: use `tresor identity add`",
            quote(super::identity::LABEL_PREFIX)
        )));
    }
    let new = vault.create_token(&label, role)?;
    eprintln!(
        "created token {} ({}, {} role); it is shown once, below. Present it as \
         `Authorization: Bearer <token>` to `tresor serve`.",
        new.info.id,
        quote(&new.info.label),
        new.info.role
    );
    output::print_text(&format!("{}\n", new.expose()))
}

fn token_json(t: &TokenInfo) -> Value {
    json!({
        "id": t.id,
        "label": t.label,
        "role": t.role.as_str(),
        "actor": t.actor(),
        "created": time::rfc3339(t.created),
        "created_unix": t.created.unix(),
    })
}

/// `token list`.
fn list(vault: &dyn Store, a: &TokenListArgs) -> CliResult<()> {
    let tokens = vault.list_tokens()?;
    if a.json {
        return output::print_json(&Value::Array(tokens.iter().map(token_json).collect()));
    }
    let mut t = output::table(&["ID", "LABEL", "ROLE", "CREATED"]);
    for tok in &tokens {
        t.add_row(vec![
            tok.id.clone(),
            tok.label.clone(),
            tok.role.to_string(),
            time::rfc3339(tok.created),
        ]);
    }
    output::print_table(&t)
}

/// `token revoke ID|LABEL`.
fn revoke(vault: &dyn Store, a: &TokenRevokeArgs) -> CliResult<()> {
    let tokens = vault.list_tokens()?;
    let target = tokens
        .iter()
        .find(|t| t.id.eq_ignore_ascii_case(&a.token))
        .or_else(|| tokens.iter().find(|t| t.label == a.token))
        .ok_or_else(|| {
            CliError::new(format!(
                "not found: no token with id or label {}",
                quote(&a.token)
            ))
        })?;
    let info = vault.revoke_token(&target.id).map_err(|e| match e {
        Error::NotFound => CliError::new(format!("not found: no token {}", quote(&a.token))),
        other => CliError::from(other),
    })?;
    output::print_text(&format!(
        "revoked token {} ({}, {} role)\n",
        info.id,
        quote(&info.label),
        info.role
    ))
}
