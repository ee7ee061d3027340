//! Panics: never a stack trace on the user's screen.
//!
//! The storage engine can panic on a damaged file; the library catches those panics and returns
//! `Error::Corrupted`, but Rust's default hook would still print the panic to stderr first. The
//! hook installed here keeps the message instead (whatever `RUST_BACKTRACE` says), and a panic
//! nobody caught becomes one `error:` line.

use std::panic;
use std::sync::Mutex;

use crate::error::{CliError, CliResult};

/// The message of the last panic.
static LAST: Mutex<Option<String>> = Mutex::new(None);

/// Replaces the default panic hook by one that only remembers the message.
pub fn quiet() {
    panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_string());
        *LAST.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg);
    }));
}

/// Runs `f`; a panic that escapes it becomes an error.
pub fn catch<T>(f: impl FnOnce() -> CliResult<T>) -> CliResult<T> {
    panic::catch_unwind(panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        let msg = LAST
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| "unknown cause".to_string());
        Err(CliError::new(format!("internal error: {msg}")))
    })
}
