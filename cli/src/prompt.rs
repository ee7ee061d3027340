//! Hidden prompts on the terminal, and the terminal put back as it was on every way out.
//!
//! rpassword turns echo off and reads the terminal raw; on Ctrl-C it raises SIGINT, which
//! would end the process before it restores the terminal (a shell such as `sh` does not repair
//! it: the user is left typing blind). While a prompt is up, SIGINT, SIGTERM and SIGHUP are
//! caught instead: the terminal is restored, then the process ends with status 128 + the
//! signal number (130 for Ctrl-C). Outside a prompt these signals keep their default action.

use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};

/// Asks `prompt` on the terminal with echo off; returns the line typed, without its newline.
pub fn hidden(prompt: &str) -> CliResult<Zeroizing<String>> {
    #[cfg(unix)]
    let _prompting = unix::Prompting::start();
    match rpassword::prompt_password(prompt) {
        Ok(text) => Ok(Zeroizing::new(text)),
        #[cfg(unix)]
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
            unix::end(signal_hook::consts::SIGINT)
        }
        Err(e) => Err(CliError::new(format!("cannot read from the terminal: {e}"))),
    }
}

#[cfg(unix)]
mod unix {
    use std::fs::{File, OpenOptions};
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, OnceLock};

    use rustix::termios::{OptionalActions, Termios, tcgetattr, tcsetattr};
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    /// Whether a prompt is up.
    static PROMPTING: AtomicBool = AtomicBool::new(false);
    /// Whether the process is ending (the first to get here ends it).
    static ENDING: AtomicBool = AtomicBool::new(false);
    /// The terminal and its settings before the prompt.
    static SAVED: Mutex<Option<(File, Termios)>> = Mutex::new(None);
    /// Whether the signal thread runs.
    static WATCHING: OnceLock<bool> = OnceLock::new();

    /// Starts, once, the thread that receives the signals: during a prompt it ends the process
    /// cleanly; otherwise it does what the signal would have done.
    fn watch() -> bool {
        *WATCHING.get_or_init(|| {
            let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
                return false;
            };
            std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || {
                    for sig in signals.forever() {
                        if PROMPTING.load(Ordering::SeqCst) {
                            end(sig);
                        }
                        let _ = signal_hook::low_level::emulate_default_handler(sig);
                    }
                })
                .is_ok()
        })
    }

    /// A prompt in progress: the terminal's settings are saved and the signals caught.
    pub struct Prompting;

    impl Prompting {
        pub fn start() -> Prompting {
            if let Ok(tty) = OpenOptions::new().read(true).write(true).open("/dev/tty")
                && let Ok(settings) = tcgetattr(&tty)
            {
                *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some((tty, settings));
            }
            watch();
            PROMPTING.store(true, Ordering::SeqCst);
            Prompting
        }
    }

    impl Drop for Prompting {
        fn drop(&mut self) {
            PROMPTING.store(false, Ordering::SeqCst);
            SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }

    /// Restores the terminal and ends the process with status 128 + `sig`.
    pub fn end(sig: i32) -> ! {
        if ENDING.swap(true, Ordering::SeqCst) {
            // The other thread is ending the process.
            loop {
                std::thread::park();
            }
        }
        if let Some((tty, settings)) = SAVED.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = tcsetattr(tty, OptionalActions::Now, settings);
            let _ = (&*tty).write_all(b"\n");
        }
        std::process::exit(128 + sig)
    }
}
