//! Secrets and their versions: set, get, show, list, versions, update.

use std::io::{IsTerminal, Write};

use serde_json::Value;
use tresor::{Expect, GetOptions, PropertiesUpdate, SetOptions};

use crate::store::Store;
use zeroize::Zeroizing;

use super::explain;
use crate::args::{GetArgs, ListArgs, SetArgs, ShowArgs, UpdateArgs, VersionsArgs};
use crate::error::{CliError, CliResult, SecretContext, quote};
use crate::output::{self, escape};
use crate::{files, time};

/// `set`: prints the new version id.
pub fn set(vault: &dyn Store, a: &SetArgs) -> CliResult<()> {
    tresor::validate_name(&a.name).about(&a.name)?;
    let value = read_value(a)?;
    let mut o = SetOptions::new().disabled(a.disabled);
    if let Some(ct) = &a.content_type {
        o = o.content_type(ct.clone());
    }
    for (k, v) in &a.tags {
        o = o.tag(k.clone(), v.clone());
    }
    if let Some(t) = a.times.expires {
        o = o.expires_on(t);
    }
    if let Some(t) = a.times.not_before {
        o = o.not_before(t);
    }
    if let Some(v) = a.if_version {
        o = o.expect(Expect::Version(v));
    }
    if a.if_absent {
        o = o.expect(Expect::Absent);
    }
    if let Some(n) = a.max_versions {
        o = o.max_versions(n);
    }
    let props = vault
        .set_with(&a.name, value.as_slice(), &o)
        .about(&a.name)?;
    output::print_text(&format!("{}\n", props.version))?;
    if a.value.is_some() {
        // After success: an error stays the only line on stderr.
        eprintln!(
            "warning: a value given as an argument can be read by other users in the process \
             list; pass it on stdin, with --file, or at the prompt"
        );
    }
    Ok(())
}

/// The value of `set`: the argument (warned about once stored), `--file`, a hidden prompt on
/// a terminal, or stdin. Every read is bounded by the vault's largest value limit; an empty
/// value needs `--allow-empty`.
fn read_value(a: &SetArgs) -> CliResult<Zeroizing<Vec<u8>>> {
    let value = if let Some(v) = &a.value {
        Zeroizing::new(v.as_bytes().to_vec())
    } else if let Some(path) = &a.file {
        files::read_bounded("value file", path, tresor::MAX_VALUE_LIMIT)?
    } else if std::io::stdin().is_terminal() {
        let text = crate::prompt::hidden(&format!("Value of {}: ", escape(&a.name)))?;
        Zeroizing::new(text.as_bytes().to_vec())
    } else {
        files::read_stream_bounded("stdin", std::io::stdin().lock(), tresor::MAX_VALUE_LIMIT)?
    };
    if value.is_empty() && !a.allow_empty {
        return Err(CliError::new(format!(
            "empty value for {}: nothing was stored; --allow-empty stores an empty value",
            quote(&a.name)
        )));
    }
    Ok(value)
}

/// `get`: the value's bytes on stdout, nothing added.
pub fn get(vault: &dyn Store, a: &GetArgs) -> CliResult<()> {
    let mut o = GetOptions::default();
    o.version = a.version;
    o.strict = a.strict;
    let secret = vault
        .get_with(&a.name, &o)
        .map_err(|e| explain(vault, &a.name, a.version.as_ref(), e))?;
    let mut out = std::io::stdout().lock();
    out.write_all(secret.expose())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::new(format!("cannot write to stdout: {e}")))
}

/// `show`: properties, never the value.
pub fn show(vault: &dyn Store, a: &ShowArgs) -> CliResult<()> {
    let p = vault
        .properties(&a.name, a.version.as_ref())
        .map_err(|e| explain(vault, &a.name, a.version.as_ref(), e))?;
    if a.json.json {
        output::print_json(&output::properties_json(&p))
    } else {
        output::print_table(&output::properties_table(&p, time::now()))
    }
}

/// `list`, `list --deleted`, `list --expiring`.
pub fn list(vault: &dyn Store, a: &ListArgs) -> CliResult<()> {
    let now = time::now();
    if a.deleted {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = vault.list_deleted(cursor.as_deref(), 1000)?;
            items.extend(page.items);
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        items.sort_by_key(|d| d.properties.name.to_ascii_lowercase());
        return if a.json.json {
            output::print_json(&Value::Array(
                items.iter().map(output::deleted_json).collect(),
            ))
        } else if items.is_empty() {
            output::print_text("no deleted secrets\n")
        } else {
            output::print_table(&output::deleted_table(&items, now))
        };
    }
    let (items, expiring) = match a.expiring {
        Some(within) => (vault.expiring(within)?, true),
        None => {
            let mut items = vault.list_all()?;
            items.sort_by_key(|p| p.name.to_ascii_lowercase());
            (items, false)
        }
    };
    if a.json.json {
        output::print_json(&Value::Array(
            items.iter().map(output::properties_json).collect(),
        ))
    } else if items.is_empty() {
        output::print_text(if expiring {
            "no expiring secrets\n"
        } else {
            "no secrets\n"
        })
    } else if expiring {
        output::print_table(&output::expiring_table(&items, now))
    } else {
        output::print_table(&output::list_table(&items, now))
    }
}

/// `versions`: newest first.
pub fn versions(vault: &dyn Store, a: &VersionsArgs) -> CliResult<()> {
    let items = vault
        .list_versions(&a.name)
        .map_err(|e| explain(vault, &a.name, None, e))?;
    if a.json.json {
        output::print_json(&Value::Array(
            items.iter().map(output::properties_json).collect(),
        ))
    } else {
        output::print_table(&output::versions_table(&items, time::now()))
    }
}

/// `update`: tags given with `--tag` are merged into the version's tags.
pub fn update(vault: &dyn Store, a: &UpdateArgs) -> CliResult<()> {
    let mut up = PropertiesUpdate::new();
    if a.enable {
        up = up.enabled(true);
    }
    if a.disable {
        up = up.enabled(false);
    }
    if let Some(ct) = &a.content_type {
        up = up.content_type(Some(ct.clone()));
    }
    if a.no_content_type {
        up = up.content_type(None);
    }
    if let Some(t) = a.expires {
        up = up.expires_on(Some(t));
    }
    if a.no_expires {
        up = up.expires_on(None);
    }
    if let Some(t) = a.not_before {
        up = up.not_before(Some(t));
    }
    if a.no_not_before {
        up = up.not_before(None);
    }
    if a.clear_tags || !a.tags.is_empty() || !a.untag.is_empty() {
        let mut tags = if a.clear_tags {
            Default::default()
        } else {
            vault
                .properties(&a.name, a.version.as_ref())
                .map_err(|e| explain(vault, &a.name, a.version.as_ref(), e))?
                .tags
        };
        for k in &a.untag {
            tags.remove(k);
        }
        for (k, v) in &a.tags {
            tags.insert(k.clone(), v.clone());
        }
        up = up.tags(tags);
    }
    let p = vault
        .update_properties(&a.name, a.version.as_ref(), &up)
        .map_err(|e| explain(vault, &a.name, a.version.as_ref(), e))?;
    output::print_text(&format!(
        "updated {} version {} ({})\n",
        quote(&p.name),
        p.version,
        output::state(&p, time::now())
    ))
}
