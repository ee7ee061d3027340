//! `tresor watch`: events and automatic backups for a vault no server holds, from its audit
//! log. Each look opens the vault for a moment; between looks other commands can use it.

use crate::args::Global;
use crate::error::{CliError, CliResult};
use crate::events::Watcher;
use crate::events::args::WatchArgs;
use crate::poll::{Look, Poller};

/// `watch`.
pub fn watch(g: &Global, a: &WatchArgs) -> CliResult<()> {
    let (mut poller, vault) = Poller::start(g, !a.once)?;
    let path = poller.path().to_path_buf();
    let Some(mut watcher) =
        Watcher::new(&path, &vault, &a.events, &a.backups, a.vault_url.clone())?
    else {
        return Err(CliError::new(
            "nothing to do: give --on-event, --event-webhook, --event-log or --backup-dir",
        ));
    };
    if !a.once {
        eprintln!("tresor watch: {}", watcher.describe());
    }
    let interval = a.interval.max(std::time::Duration::from_secs(1));
    let mut vault = Some(vault);
    let mut said_locked = false;
    loop {
        if let Some(v) = vault.take() {
            said_locked = false;
            watcher.catch_up(&v)?;
            watcher.scan_expiry(&v);
            if a.once {
                // The copy of what changed, whatever the interval, and deliveries under way
                // finished before exit.
                watcher.finish(&v);
                v.close()?;
                return Ok(());
            }
            watcher.tick_backup(&v, false);
            v.close()?;
        }
        std::thread::sleep(interval);
        match poller.look()? {
            Look::Open(v) => vault = Some(v),
            Look::Locked if !said_locked => {
                eprintln!("tresor watch: {}; trying again", poller.locked());
                said_locked = true;
            }
            Look::Locked => {}
        }
    }
}
