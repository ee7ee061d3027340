//! Automatic backups: after changes, a consistent copy of the vault ([`Vault::backup_to`]) in a
//! directory (0700), at most one per interval, keeping the newest N. Names sort by time:
//! `tresor-<UTC time>-<audit seq>.tresor`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tresor::{Timestamp, Vault};

use crate::error::{CliError, CliResult, io_error, quote};
use crate::time;

/// The prefix and extension of backup files.
pub const PREFIX: &str = "tresor-";
/// The extension of backup files.
pub const SUFFIX: &str = ".tresor";

/// The name of a backup taken at `t` at audit position `seq`: sorts by time, then position.
pub fn file_name(t: Timestamp, seq: u64) -> String {
    // 20261202T051900Z: RFC 3339 without separators, so that names sort as times do.
    let stamp: String = time::rfc3339(t)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{PREFIX}{stamp}-{seq:012}{SUFFIX}")
}

/// The backups in `dir`, oldest first.
pub fn list(dir: &Path) -> CliResult<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_error("cannot read", dir, &e))?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
                && p.is_file()
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Creates `dir` (0700) if missing; refuses one its group or other users can enter.
pub fn prepare_dir(dir: &Path) -> CliResult<()> {
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir)
            .map_err(|e| io_error("cannot create the backup directory", dir, &e))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)
            .map_err(|e| io_error("cannot read", dir, &e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CliError::new(format!(
                "the backup directory {} is open to its group or other users (mode {:04o}): \
                 `chmod 700` it",
                quote(&dir.display().to_string()),
                mode & 0o7777
            )));
        }
    }
    Ok(())
}

/// When to write the next copy: after a change, at most once per interval.
#[derive(Debug)]
pub struct Debounce {
    interval: Duration,
    dirty: bool,
    last: Option<Instant>,
}

impl Debounce {
    /// At most one copy per `interval`.
    pub fn new(interval: Duration) -> Self {
        Debounce {
            interval,
            dirty: false,
            last: None,
        }
    }

    /// A change was committed.
    pub fn changed(&mut self) {
        self.dirty = true;
    }

    /// Whether a copy is due at `now` (`closing`: the last chance, interval or not).
    pub fn due(&self, now: Instant, closing: bool) -> bool {
        self.dirty
            && (closing
                || self
                    .last
                    .is_none_or(|l| now.saturating_duration_since(l) >= self.interval))
    }

    /// A copy was written at `now`.
    pub fn written(&mut self, now: Instant) {
        self.dirty = false;
        self.last = Some(now);
    }
}

/// Automatic backups of one vault.
#[derive(Debug)]
pub struct AutoBackup {
    dir: PathBuf,
    keep: usize,
    /// When the next copy is due.
    pub debounce: Debounce,
}

impl AutoBackup {
    /// Backups into `dir` (created 0700), at most one per `interval`, keeping `keep`.
    pub fn new(dir: PathBuf, interval: Duration, keep: usize) -> CliResult<Self> {
        prepare_dir(&dir)?;
        Ok(AutoBackup {
            dir,
            keep: keep.max(1),
            debounce: Debounce::new(interval),
        })
    }

    /// A line for banners.
    pub fn describe(&self) -> String {
        format!(
            "backups: into {} after changes, at most one per {} s, the newest {} kept",
            crate::output::escape(&self.dir.display().to_string()),
            self.debounce.interval.as_secs(),
            self.keep
        )
    }

    /// Writes a copy if one is due, then removes all but the newest `keep`. `seq` is the audit
    /// position the copy includes (for its name).
    pub fn tick(&mut self, vault: &Vault, seq: u64, closing: bool) {
        let now = Instant::now();
        if !self.debounce.due(now, closing) {
            return;
        }
        let path = self.dir.join(file_name(time::now(), seq));
        if path.exists() {
            // Already copied at this position in this second.
            self.debounce.written(now);
            return;
        }
        match vault.backup_to(&path) {
            Ok(()) => {
                self.debounce.written(now);
                self.prune();
            }
            Err(e) => eprintln!(
                "tresor backups: cannot write {}: {}",
                quote(&path.display().to_string()),
                crate::error::describe(&e, None)
            ),
        }
    }

    fn prune(&self) {
        let Ok(all) = list(&self.dir) else { return };
        let excess = all.len().saturating_sub(self.keep);
        for old in &all[..excess] {
            if let Err(e) = std::fs::remove_file(old) {
                eprintln!(
                    "tresor backups: cannot remove {}: {e}",
                    quote(&old.display().to_string())
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_then_position() {
        let a = file_name(Timestamp::from_unix(1_800_000_000), 9);
        let b = file_name(Timestamp::from_unix(1_800_000_000), 10);
        let c = file_name(Timestamp::from_unix(1_800_000_001), 1);
        assert_eq!(a, "tresor-20270115T080000Z-000000000009.tresor");
        assert!(a < b && b < c);
    }

    #[test]
    fn at_most_one_copy_per_interval_and_only_after_a_change() {
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut d = Debounce::new(hour);
        assert!(!d.due(t0, false), "nothing changed");
        assert!(!d.due(t0, true), "nothing changed, even when closing");
        d.changed();
        assert!(d.due(t0, false), "the first change is copied at once");
        d.written(t0);
        d.changed();
        d.changed();
        assert!(
            !d.due(t0 + Duration::from_secs(60), false),
            "within the interval"
        );
        assert!(d.due(t0 + hour, false), "the interval has passed");
        assert!(
            d.due(t0 + Duration::from_secs(60), true),
            "closing copies what is pending"
        );
        d.written(t0 + hour);
        assert!(!d.due(t0 + 3 * hour, false), "nothing changed since");
    }
}
