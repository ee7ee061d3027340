//! `tresor backups list|restore`: the copies automatic backups wrote.

use std::path::Path;

use serde_json::json;
use tresor::Timestamp;

use crate::error::{CliError, CliResult, io_error, quote};
use crate::events::args::{BackupsCommand, BackupsListArgs, BackupsRestoreArgs};
use crate::events::autobackup;
use crate::{files, output, time};

/// `backups …`.
pub fn run(c: &BackupsCommand) -> CliResult<()> {
    match c {
        BackupsCommand::List(a) => list(a),
        BackupsCommand::Restore(a) => restore(a),
    }
}

/// The time a backup's name says it was taken.
fn taken(p: &Path) -> Option<Timestamp> {
    let name = p.file_name()?.to_str()?;
    let stamp = name.strip_prefix(autobackup::PREFIX)?.get(..16)?;
    // 20261202T051900Z -> 2026-12-02T05:19:00Z
    let b = stamp.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let s = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    );
    time::parse_when(&s, time::now())
}

fn list(a: &BackupsListArgs) -> CliResult<()> {
    let all = autobackup::list(&a.dir)?;
    let rows: Vec<(String, Option<Timestamp>, u64)> = all
        .iter()
        .map(|p| {
            let size = std::fs::metadata(p).map_or(0, |m| m.len());
            (
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                taken(p),
                size,
            )
        })
        .collect();
    if a.json {
        let items: Vec<_> = rows
            .iter()
            .map(|(name, t, size)| {
                json!({"file": name, "taken": t.map(time::rfc3339), "bytes": size})
            })
            .collect();
        return output::print_json(&json!({ "backups": items }));
    }
    let mut t = output::table(&["FILE", "TAKEN", "BYTES"]);
    for (name, when, size) in &rows {
        t.add_row(vec![
            output::escape(name).into_owned(),
            when.map(time::rfc3339).unwrap_or_default(),
            size.to_string(),
        ]);
    }
    output::print_table(&t)
}

fn restore(a: &BackupsRestoreArgs) -> CliResult<()> {
    let all = autobackup::list(&a.dir)?;
    let chosen = match a.at {
        Some(at) => all.iter().rev().find(|p| taken(p).is_some_and(|t| t <= at)),
        None => all.last(),
    };
    let Some(from) = chosen else {
        return Err(CliError::new(format!(
            "no backup in {}{}",
            quote(&a.dir.display().to_string()),
            a.at.map_or(String::new(), |t| format!(
                " taken at or before {}",
                time::rfc3339(t)
            ))
        )));
    };
    let mut src = files::open("backup", from)?;
    let mut dst = files::create_private(&a.to)?;
    let copied = std::io::copy(&mut src, &mut dst).and_then(|n| dst.sync_all().map(|()| n));
    if let Err(e) = copied {
        drop(dst);
        let _ = std::fs::remove_file(&a.to);
        return Err(io_error("cannot write", &a.to, &e));
    }
    output::print_text(&format!(
        "restored {} (taken {}) to {}\nit opens with the credentials the vault had then; it is a \
         new file to the rollback witness (to put it in the original's place, see `tresor \
         witness reset`)\n",
        quote(&from.display().to_string()),
        taken(from).map_or_else(|| "?".into(), time::rfc3339),
        quote(&a.to.display().to_string())
    ))
}
