//! Alerts and automatic backups: Azure's Event Grid events for secrets (a new version, near
//! expiry, expired) delivered to a command, a loopback webhook and/or a JSON-lines file, and
//! copies of the vault written after changes. `tresor serve` runs them on the changes it commits
//! (a [`tresor::Subscription`]); `tresor watch` on the changes it finds in the audit log.
//!
//! - [`grid`]: the Event Grid schema.
//! - [`sinks`]: command, webhook, file.
//! - [`state`]: what was sent already (survives restarts).
//! - [`args`]: the flags of `serve` and `watch`.
//! - [`autobackup`]: copies after changes, debounced, with retention.

pub mod args;
pub mod autobackup;
pub mod grid;
pub mod sinks;
pub mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tresor::{Change, ChangeKind, Vault};

pub use self::args::{AutoBackupArgs, EventArgs};
use self::autobackup::AutoBackup;
use self::grid::{GridType, Subject, VaultRef};
use self::sinks::{Sinks, Targets};
use self::state::State;
use crate::error::CliResult;
use crate::time;

/// Audit records read per page when catching up.
const PAGE: usize = 1000;

/// Turns changes into events and backups.
pub struct Watcher {
    vault_ref: VaultRef,
    sinks: Option<Sinks>,
    state: State,
    state_file: PathBuf,
    near: Duration,
    backup: Option<AutoBackup>,
    /// The last audit record looked at.
    last_seq: u64,
}

impl Watcher {
    /// A watcher of the vault at `path` (open as `vault`); `None` when neither events nor
    /// backups are asked for. Events start after the last one sent before (from the state
    /// file), or from now on the first run.
    pub fn new(
        path: &Path,
        vault: &Vault,
        ev: &EventArgs,
        bk: &AutoBackupArgs,
        url: String,
    ) -> CliResult<Option<Watcher>> {
        let targets = Targets {
            command: ev.on_event.clone(),
            webhook: ev.event_webhook.clone(),
            log: ev.event_log.clone(),
        };
        if !targets.any() && bk.backup_dir.is_none() {
            return Ok(None);
        }
        let head = vault.audit_len()?;
        // Where the last run stopped: kept for backups too, so that `watch` sees the changes
        // made between its runs.
        let file = ev
            .event_state
            .clone()
            .unwrap_or_else(|| state::path_for(path));
        let id: String = vault
            .vault_id()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut s = State::load(&file, &id)?;
        if s.last_seq.is_none() {
            s.last_seq = Some(head);
            s.save(&file)?;
        }
        let last_seq = s.last_seq.unwrap_or(head).min(head);
        let backup = match &bk.backup_dir {
            Some(dir) => Some(AutoBackup::new(
                dir.clone(),
                bk.backup_interval,
                bk.backup_keep as usize,
            )?),
            None => None,
        };
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("tresor")
            .to_string();
        Ok(Some(Watcher {
            vault_ref: VaultRef { name, url },
            sinks: if targets.any() {
                Some(Sinks::open(targets)?)
            } else {
                None
            },
            state: s,
            state_file: file,
            near: ev.near_expiry,
            backup,
            last_seq,
        }))
    }

    /// Turns the audit records after the last one looked at into events (what was committed
    /// while nobody watched, or what a full subscription lost).
    pub fn catch_up(&mut self, vault: &Vault) -> CliResult<()> {
        loop {
            let page = vault.audit(self.last_seq, PAGE)?;
            let Some(last) = page.last().map(|r| r.seq) else {
                return Ok(());
            };
            for r in &page {
                if let Some(c) = Change::from_record(r) {
                    self.on_change(vault, &c);
                }
            }
            self.advance(last, true);
            if page.len() < PAGE {
                return Ok(());
            }
        }
    }

    /// Notes that the records up to `seq` were looked at; `persist` writes it down (after an
    /// event went out, so that a restart does not send it again; other changes are written
    /// down with the next event or page).
    fn advance(&mut self, seq: u64, persist: bool) {
        if seq > self.last_seq {
            self.last_seq = seq;
            self.state.last_seq = Some(seq);
        }
        if persist && let Err(e) = self.state.save(&self.state_file) {
            eprintln!("tresor events: {e}");
        }
    }

    /// One committed change: a `SecretNewVersionCreated` for a new version, and a backup due.
    /// Changes already looked at are ignored.
    pub fn on_change(&mut self, vault: &Vault, c: &Change) {
        if c.seq <= self.last_seq {
            return;
        }
        if let Some(b) = &mut self.backup {
            b.debounce.changed();
        }
        let mut sent = false;
        if c.kind == ChangeKind::SecretSet
            && let (Some(sinks), Some(version)) = (&mut self.sinks, &c.version)
        {
            sent = true;
            let props = vault.properties(&c.name, Some(version)).ok();
            let subject = Subject {
                name: &c.name,
                version,
                nbf: props.as_ref().and_then(|p| p.not_before),
                exp: props.as_ref().and_then(|p| p.expires_on),
            };
            sinks.deliver(&grid::event(
                GridType::NewVersion,
                &self.vault_ref,
                &subject,
                c.at,
            ));
        }
        self.advance(c.seq, sent);
    }

    /// Raises `SecretNearExpiry` and `SecretExpired` for current versions, once per version.
    pub fn scan_expiry(&mut self, vault: &Vault) {
        let Some(sinks) = &mut self.sinks else {
            return;
        };
        let (state, file) = (&mut self.state, &self.state_file);
        let expiring = match vault.expiring(self.near) {
            Ok(e) => e,
            Err(e) => {
                eprintln!(
                    "tresor events: cannot list expiring secrets: {}",
                    crate::error::describe(&e, None)
                );
                return;
            }
        };
        let now = time::now();
        for p in &expiring {
            let Some(exp) = p.expires_on else { continue };
            let v = p.version.to_string();
            let kind = if exp <= now {
                if state.expired.contains(&v) {
                    continue;
                }
                state.expired.insert(v);
                GridType::Expired
            } else {
                if state.near.contains(&v) {
                    continue;
                }
                state.near.insert(v);
                GridType::NearExpiry
            };
            let subject = Subject {
                name: &p.name,
                version: &p.version,
                nbf: p.not_before,
                exp: Some(exp),
            };
            sinks.deliver(&grid::event(kind, &self.vault_ref, &subject, now));
            // Saved after each event: a crash repeats at most the one event under way.
            if let Err(e) = state.save(file) {
                eprintln!("tresor events: {e}");
            }
        }
    }

    /// Writes a backup if one is due (`closing`: the last chance before the vault closes).
    pub fn tick_backup(&mut self, vault: &Vault, closing: bool) {
        let seq = self.last_seq;
        if let Some(b) = &mut self.backup {
            b.tick(vault, seq, closing);
        }
    }

    /// The last backup if one is pending, where this run stopped written down, and deliveries
    /// under way finished.
    pub fn finish(mut self, vault: &Vault) {
        self.tick_backup(vault, true);
        self.advance(self.last_seq, true);
        if let Some(s) = self.sinks.take() {
            s.finish();
        }
    }

    /// A line for banners: what is watched and where events go.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.sinks.is_some() {
            parts.push(format!(
                "events: SecretNewVersionCreated, SecretNearExpiry ({} s ahead), SecretExpired",
                self.near.as_secs()
            ));
        }
        if let Some(b) = &self.backup {
            parts.push(b.describe());
        }
        parts.join("; ")
    }
}

/// `serve`'s watcher, on a thread of its own: the vault's changes through a subscription.
#[cfg(feature = "server")]
pub struct Running {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

#[cfg(feature = "server")]
impl Running {
    /// Starts `watcher` on `vault`'s committed changes (after catching up with those committed
    /// since the last run).
    pub fn start(mut watcher: Watcher, vault: Vault, expiry_check: Duration) -> CliResult<Self> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let sub = vault.subscribe()?;
        if let Err(e) = watcher.catch_up(&vault) {
            eprintln!("tresor events: cannot read the audit log to catch up: {e}");
        }
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tresor-watch".into())
            .spawn(move || {
                let mut next_scan = std::time::Instant::now();
                while !flag.load(Ordering::SeqCst) {
                    if std::time::Instant::now() >= next_scan {
                        watcher.scan_expiry(&vault);
                        next_scan = std::time::Instant::now() + expiry_check;
                    }
                    match sub.recv_timeout(Duration::from_millis(200)) {
                        Some(tresor::Event::Change(c)) => watcher.on_change(&vault, &c),
                        Some(tresor::Event::Lagged(n)) => {
                            eprintln!(
                                "tresor events: {n} changes came faster than they were sent; \
                                 reading them from the audit log"
                            );
                            if let Err(e) = watcher.catch_up(&vault) {
                                eprintln!("tresor events: {e}");
                            }
                        }
                        Some(_) | None => {}
                    }
                    watcher.tick_backup(&vault, false);
                }
                watcher.finish(&vault);
            })
            .map_err(|e| crate::error::CliError::new(format!("cannot start the watcher: {e}")))?;
        Ok(Running { stop, thread })
    }

    /// Stops the watcher: the last backup if one is pending, deliveries under way finished.
    pub fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.thread.join();
    }
}
