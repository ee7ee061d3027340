//! Import from and export to `.env` and JSON files.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tresor::{Error, SetOptions};

use crate::store::Store;
use zeroize::Zeroizing;

use crate::args::{ExportArgs, Format, ImportArgs};
use crate::error::{CliError, CliResult, describe, quote};
use crate::{dotenv, files, names, output};

/// The format of an import file: `--format`, else JSON for `*.json` or text starting with `{`.
fn detect(path: &Path, text: &str, given: Option<Format>) -> Format {
    if let Some(f) = given {
        return f;
    }
    let json_ext = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if json_ext || text.trim_start().starts_with('{') {
        Format::Json
    } else {
        Format::Env
    }
}

/// `(secret name, value)` pairs of an import file, names checked, no name twice.
fn read_items(a: &ImportArgs) -> CliResult<Vec<(String, Zeroizing<String>)>> {
    let shown = quote(&a.file.display().to_string());
    let bytes = files::read_bounded("import file", &a.file, files::BLOB_MAX)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CliError::new(format!("{shown} is not UTF-8 text")))?;
    let items: Vec<(String, Zeroizing<String>)> = match detect(&a.file, text, a.format) {
        Format::Env => dotenv::parse(text)
            .map_err(|e| CliError::new(format!("{shown}: {e}")))?
            .into_iter()
            .map(|(k, v)| Ok((names::secret_name(&k)?, Zeroizing::new(v))))
            .collect::<CliResult<_>>()?,
        Format::Json => {
            let doc: Value = serde_json::from_str(text).map_err(|e| {
                // serde_json's message names the line and column, never the text.
                CliError::new(format!("{shown} is not valid JSON: {e}"))
            })?;
            let Value::Object(map) = doc else {
                return Err(CliError::new(format!(
                    "{shown}: expected one JSON object {{\"name\": \"value\", …}}"
                )));
            };
            map.into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => {
                        tresor::validate_name(&k)
                            .map_err(|e| CliError::new(describe(&e, Some(&k))))?;
                        Ok((k, Zeroizing::new(s)))
                    }
                    _ => Err(CliError::new(format!(
                        "{shown}: the value of {} is not a string",
                        quote(&k)
                    ))),
                })
                .collect::<CliResult<_>>()?
        }
    };
    let mut seen = BTreeMap::new();
    for (name, _) in &items {
        if let Some(first) = seen.insert(name.to_ascii_lowercase(), name.clone()) {
            return Err(CliError::new(format!(
                "{shown} names the secret {} twice (names ignore case)",
                quote(&first)
            )));
        }
    }
    Ok(items)
}

/// `import FILE`: every secret in one transaction, all or nothing.
pub fn import(vault: &dyn Store, a: &ImportArgs) -> CliResult<()> {
    let items = read_items(a)?;
    if items.is_empty() {
        return output::print_text("nothing to import\n");
    }
    let bar = ProgressBar::new(items.len() as u64).with_message("importing");
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let options = SetOptions::new();
    let taken = Cell::new(0usize);
    let result = vault.set_many(&mut items.iter().map(|(name, value)| {
        taken.set(taken.get() + 1);
        bar.set_position(taken.get() as u64);
        (name.as_str(), value.as_bytes(), &options)
    }));
    bar.finish_and_clear();
    match result {
        Ok(written) => output::print_text(&format!(
            "imported {} secrets in one transaction\n",
            written.len()
        )),
        Err(e) => {
            // The batch stops at the item that fails: the last one taken.
            let about_item = matches!(
                e,
                Error::InvalidName(_)
                    | Error::ValueTooLarge { .. }
                    | Error::Conflict { .. }
                    | Error::VersionConflict
                    | Error::InvalidArgument(_)
            );
            let name = (about_item && taken.get() > 0).then(|| items[taken.get() - 1].0.as_str());
            Err(CliError::new(format!(
                "{} (nothing was imported)",
                describe(&e, name)
            )))
        }
    }
}

/// `export`: every live secret's current value, sorted by name. Disabled secrets are left out
/// (with a note on stderr).
pub fn export(vault: &dyn Store, a: &ExportArgs) -> CliResult<()> {
    if let Some(out) = &a.out
        && std::fs::symlink_metadata(out).is_ok()
    {
        return Err(CliError::new(format!(
            "{} already exists (export never overwrites a file)",
            quote(&out.display().to_string())
        )));
    }
    let mut secrets = vault.list_all()?;
    secrets.sort_by_key(|p| p.name.to_ascii_lowercase());
    // Checked before any value is read: a `.env` file is made to be loaded into an environment.
    if a.format == Format::Env {
        for p in secrets.iter().filter(|p| p.enabled) {
            names::check_env(&names::env_var(&p.name), &p.name, &a.allow.vars)?;
        }
    }
    let mut text = Zeroizing::new(String::new());
    let mut json = serde_json::Map::new();
    let mut skipped = Vec::new();
    for p in &secrets {
        if !p.enabled {
            skipped.push(p.name.as_str());
            continue;
        }
        let secret = vault
            .get(&p.name)
            .map_err(|e| CliError::new(describe(&e, Some(&p.name))))?;
        let value = secret.expose_str().ok_or_else(|| {
            CliError::new(format!(
                "{} is not UTF-8 text and cannot be exported as {}",
                quote(&p.name),
                if a.format == Format::Env {
                    ".env"
                } else {
                    "JSON"
                }
            ))
        })?;
        match a.format {
            Format::Env => text.push_str(&dotenv::line(&names::env_var(&p.name), value)),
            Format::Json => {
                json.insert(p.name.clone(), Value::String(value.to_string()));
            }
        }
    }
    if a.format == Format::Json {
        let doc = serde_json::to_string_pretty(&Value::Object(json))
            .map_err(|e| CliError::new(format!("cannot encode JSON: {e}")))?;
        text.push_str(&doc);
        text.push('\n');
    }
    match &a.out {
        Some(out) => files::write_private(out, text.as_bytes())?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| CliError::new(format!("cannot write to stdout: {e}")))?;
        }
    }
    note_skipped(&skipped);
    Ok(())
}

/// Says on stderr which disabled secrets were left out (after success: an error stays the
/// only line on stderr).
pub fn note_skipped(names: &[&str]) {
    for name in names {
        eprintln!("note: {} is disabled and was left out", quote(name));
    }
}
