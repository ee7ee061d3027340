//! `tresor identity add|env|list|remove`: managed identities for `tresor serve`'s identity
//! endpoint.
//!
//! An identity is a bearer-token record labelled `identity.NAME` ([`super::identity`]); the token
//! is the identity's `IDENTITY_HEADER`. The vault keeps only its hash, so the header is shown
//! when it is made: by `add`, and by `env`, which replaces it with a new one.

use std::path::Path;

use serde_json::{Value, json};
use tresor::{Role, TokenInfo, Vault};

use super::args::{IdentityAddArgs, IdentityCommand, IdentityEnvArgs, IdentityTarget};
use super::identity::{LABEL_PREFIX, is_identity_label, name_of};
use crate::args::Global;
use crate::error::{CliError, CliResult, quote};
use crate::{output, time, unlock};

/// Runs a `tresor identity` command on an open vault.
pub fn run(g: &Global, vault: &Vault, command: &IdentityCommand) -> CliResult<()> {
    match command {
        IdentityCommand::Add(a) => add(g, vault, a),
        IdentityCommand::Env(a) => env(g, vault, a),
        IdentityCommand::List(a) => list(vault, a.json),
        IdentityCommand::Remove(a) => remove(vault, &a.name),
    }
}

fn label(name: &str) -> String {
    format!("{LABEL_PREFIX}{name}")
}

fn find(vault: &Vault, name: &str) -> CliResult<Option<TokenInfo>> {
    let label = label(name);
    Ok(vault.list_tokens()?.into_iter().find(|t| t.label == label))
}

fn not_found(name: &str) -> CliError {
    CliError::new(format!(
        "not found: no identity {} (see `tresor identity list`)",
        quote(name)
    ))
}

/// `'…'` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The environment of an identity whose header is `header`, as `export` lines.
fn environment(g: &Global, target: &IdentityTarget, header: &str) -> CliResult<String> {
    for (flag, url) in [
        ("--endpoint", &target.endpoint),
        ("--vault-url", &target.vault_url),
    ] {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CliError::new(format!(
                "{flag} {}: not an http:// or https:// URL",
                quote(url)
            )));
        }
    }
    let tls = super::tls::dir_for(&unlock::vault_path(g));
    let ca = std::path::absolute(tls.join("ca.pem")).unwrap_or_else(|_| tls.join("ca.pem"));
    let ca = ca.to_string_lossy().into_owned();
    let mut out = String::new();
    for (k, v) in [
        ("IDENTITY_ENDPOINT", target.endpoint.as_str()),
        ("IDENTITY_HEADER", header),
        ("AZURE_KEYVAULT_URL", target.vault_url.as_str()),
        ("REQUESTS_CA_BUNDLE", ca.as_str()),
        ("SSL_CERT_FILE", ca.as_str()),
        ("NODE_EXTRA_CA_CERTS", ca.as_str()),
    ] {
        out.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    if !Path::new(&ca).exists() {
        eprintln!(
            "note: {} does not exist yet: `tresor serve` makes it on its first start",
            quote(&ca)
        );
    }
    Ok(out)
}

/// `identity add NAME --role R`: the record, and the environment on stdout.
fn add(g: &Global, vault: &Vault, a: &IdentityAddArgs) -> CliResult<()> {
    if find(vault, &a.name)?.is_some() {
        return Err(CliError::new(format!(
            "an identity {} exists already (`tresor identity env` gives it a new header)",
            quote(&a.name)
        )));
    }
    let role = Role::from(a.role);
    let new = vault
        .create_token(&label(&a.name), role)
        .map_err(|e| match e {
            tresor::Error::InvalidArgument(_) => CliError::new(format!(
                "{} is not an identity name: 1 to {} of 0-9, a-z, A-Z, '-', '_' and '.'",
                quote(&a.name),
                tresor::MAX_TOKEN_LABEL_LEN - LABEL_PREFIX.len()
            )),
            other => CliError::from(other),
        })?;
    let text = environment(g, &a.target, new.expose())?;
    eprintln!(
        "added identity {} ({} role); its environment is below, with the identity header shown \
         once (`tresor identity env {}` replaces it with a new one)",
        quote(&a.name),
        role,
        a.name
    );
    output::print_text(&text)
}

/// `identity env NAME`: a new header (the old one stops working), and the environment.
fn env(g: &Global, vault: &Vault, a: &IdentityEnvArgs) -> CliResult<()> {
    let old = find(vault, &a.name)?.ok_or_else(|| not_found(&a.name))?;
    // Check the target before the old header is revoked.
    environment(g, &a.target, "")?;
    vault.revoke_token(&old.id)?;
    let new = vault.create_token(&old.label, old.role)?;
    let text = environment(g, &a.target, new.expose())?;
    eprintln!(
        "identity {} ({} role) has a new identity header, below; the previous one no longer \
         works",
        quote(&a.name),
        old.role
    );
    output::print_text(&text)
}

fn identity_json(t: &TokenInfo) -> Value {
    json!({
        "name": name_of(&t.label),
        "role": t.role.as_str(),
        "actor": format!("identity:{}", name_of(&t.label).unwrap_or_default()),
        "token_id": t.id,
        "created": time::rfc3339(t.created),
        "created_unix": t.created.unix(),
    })
}

/// `identity list`.
fn list(vault: &Vault, as_json: bool) -> CliResult<()> {
    let ids: Vec<TokenInfo> = vault
        .list_tokens()?
        .into_iter()
        .filter(|t| is_identity_label(&t.label))
        .collect();
    if as_json {
        return output::print_json(&Value::Array(ids.iter().map(identity_json).collect()));
    }
    let mut t = output::table(&["NAME", "ROLE", "CREATED", "TOKEN ID"]);
    for i in &ids {
        t.add_row(vec![
            name_of(&i.label).unwrap_or_default().to_string(),
            i.role.to_string(),
            time::rfc3339(i.created),
            i.id.clone(),
        ]);
    }
    output::print_table(&t)
}

/// `identity remove NAME`.
fn remove(vault: &Vault, name: &str) -> CliResult<()> {
    let info = find(vault, name)?.ok_or_else(|| not_found(name))?;
    vault.revoke_token(&info.id)?;
    output::print_text(&format!(
        "removed identity {} ({} role): its header no longer signs in\n",
        quote(name),
        info.role
    ))
}
