//! The flags of events and automatic backups (`tresor serve`, `tresor watch`), and of `tresor
//! watch` and `tresor backups`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use tresor::Timestamp;

use super::sinks::Webhook;
use crate::parse;

/// Where events go, and when near-expiry is.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Events")]
pub struct EventArgs {
    /// Run CMD (through the shell) once per event, the event's JSON on its standard input and
    /// its type in TRESOR_EVENT_TYPE; a failure is logged. At most 4 run at once
    #[arg(long, value_name = "CMD")]
    pub on_event: Option<String>,
    /// POST each event (as Event Grid does: a JSON array of one event) to this loopback URL:
    /// http://127.0.0.1:PORT/PATH; other hosts are refused
    #[arg(long, value_name = "URL", value_parser = Webhook::parse)]
    pub event_webhook: Option<Webhook>,
    /// Append each event as one JSON line to FILE (created 0600)
    #[arg(long, value_name = "FILE")]
    pub event_log: Option<PathBuf>,
    /// Raise SecretNearExpiry this long before a version expires (Azure: 30 days)
    #[arg(long, default_value = "30d", value_name = "DURATION", value_parser = parse::duration)]
    pub near_expiry: Duration,
    /// How often `serve` looks for versions near or past expiry
    #[arg(long, default_value = "1m", value_name = "DURATION", value_parser = parse::duration)]
    pub expiry_check: Duration,
    /// Where the last run stopped and what was sent already [default: <vault>.events]
    #[arg(long, value_name = "FILE")]
    pub event_state: Option<PathBuf>,
}

/// Automatic backups.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Backups")]
pub struct AutoBackupArgs {
    /// After changes, write a consistent copy of the vault into DIR (created 0700)
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// At most one copy per this interval
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse::duration,
          requires = "backup_dir")]
    pub backup_interval: Duration,
    /// Keep the newest N copies
    #[arg(long, default_value_t = 10, value_name = "N", requires = "backup_dir",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub backup_keep: u32,
}

/// `tresor watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub events: EventArgs,
    #[command(flatten)]
    pub backups: AutoBackupArgs,
    /// How often to look at the vault; each look opens it for a moment (so that other commands
    /// can use it between looks)
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse::duration,
          help_heading = "Watch")]
    pub interval: Duration,
    /// Look once, deliver what is due, and exit (for cron and scripts)
    #[arg(long, help_heading = "Watch")]
    pub once: bool,
    /// The vault's URL, the base of each event's data.Id (`tresor serve`'s URL)
    #[arg(
        long,
        default_value = "https://127.0.0.1:8443",
        value_name = "URL",
        help_heading = "Watch"
    )]
    pub vault_url: String,
}

/// `tresor backups …`.
#[derive(Debug, Subcommand)]
pub enum BackupsCommand {
    /// List the automatic backups in DIR, oldest first
    List(BackupsListArgs),
    /// Copy one automatic backup to a new vault file
    Restore(BackupsRestoreArgs),
}

#[derive(Debug, Args)]
pub struct BackupsListArgs {
    /// The backup directory (--backup-dir of serve or watch)
    pub dir: PathBuf,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BackupsRestoreArgs {
    /// The backup directory (--backup-dir of serve or watch)
    pub dir: PathBuf,
    /// The newest backup taken at or before TIME (RFC 3339, a date, or a duration ago: 2h)
    #[arg(long, value_name = "TIME", value_parser = ago, conflicts_with = "latest",
          required_unless_present = "latest")]
    pub at: Option<Timestamp>,
    /// The newest backup
    #[arg(long)]
    pub latest: bool,
    /// The vault file to write (must not exist)
    #[arg(long, value_name = "PATH")]
    pub to: PathBuf,
}

/// `--at`: a time, or a duration before now.
fn ago(s: &str) -> Result<Timestamp, String> {
    let now = crate::time::now();
    if let Some(d) = crate::time::parse_duration(s) {
        return Ok(now.minus(d));
    }
    parse::when(s)
}
