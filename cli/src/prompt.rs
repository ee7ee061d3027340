//! Hidden prompts on the terminal, and the terminal given back as it was on every way out.
//!
//! rpassword (7.x) puts the terminal in raw mode and, on Ctrl-C, raises SIGINT before it
//! restores the terminal: the process dies with echo off, and a shell such as `sh` does not
//! repair it (the user types blind). On Unix the prompt here reads the terminal itself, with
//! echo and signal keys off: Ctrl-C is read as a byte, the terminal's settings are put back,
//! and the process ends with status 130 (128 + SIGINT), as an interrupted command does. No
//! signal handler is installed, so signals keep their default action everywhere else (and
//! `serve`'s own handling is untouched). A prompt ended any other way (Enter, Ctrl-D, an error,
//! a panic) restores the settings when its guard is dropped.

use zeroize::Zeroizing;

use crate::error::CliResult;

/// Asks `prompt` on the terminal without echo; returns the line typed, without its newline.
pub fn hidden(prompt: &str) -> CliResult<Zeroizing<String>> {
    #[cfg(unix)]
    {
        unix::read_hidden(prompt)
    }
    #[cfg(not(unix))]
    {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| crate::error::CliError::new(format!("cannot read from the terminal: {e}")))
    }
}

#[cfg(unix)]
mod unix {
    use std::fs::{File, OpenOptions};
    use std::io::{Read, Write};

    use rustix::termios::{
        LocalModes, OptionalActions, SpecialCodeIndex, Termios, tcgetattr, tcsetattr,
    };
    use zeroize::Zeroizing;

    use crate::error::{CliError, CliResult};

    const CTRL_C: u8 = 0x03;
    const CTRL_D: u8 = 0x04;
    const BACKSPACE: u8 = 0x08;
    const CTRL_U: u8 = 0x15;
    const ESC: u8 = 0x1b;
    const DEL: u8 = 0x7f;

    /// The terminal with echo and signal keys off; its settings come back when dropped.
    struct Raw<'a> {
        tty: &'a File,
        saved: Termios,
    }

    impl<'a> Raw<'a> {
        fn enter(tty: &'a File) -> std::io::Result<Raw<'a>> {
            let saved = tcgetattr(tty)?;
            let mut raw = saved.clone();
            raw.local_modes -=
                LocalModes::ECHO | LocalModes::ECHONL | LocalModes::ICANON | LocalModes::ISIG;
            raw.special_codes[SpecialCodeIndex::VMIN] = 1;
            raw.special_codes[SpecialCodeIndex::VTIME] = 0;
            tcsetattr(tty, OptionalActions::Flush, &raw)?;
            Ok(Raw { tty, saved })
        }
    }

    impl Drop for Raw<'_> {
        fn drop(&mut self) {
            let _ = tcsetattr(self.tty, OptionalActions::Now, &self.saved);
        }
    }

    fn tty_error(e: impl std::fmt::Display) -> CliError {
        CliError::new(format!("cannot read from the terminal: {e}"))
    }

    /// Reads one line from the controlling terminal without echo.
    pub fn read_hidden(prompt: &str) -> CliResult<Zeroizing<String>> {
        let tty = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .map_err(tty_error)?;
        (&tty)
            .write_all(prompt.as_bytes())
            .and_then(|()| (&tty).flush())
            .map_err(tty_error)?;
        let raw = Raw::enter(&tty).map_err(tty_error)?;
        let mut line = Zeroizing::new(Vec::<u8>::with_capacity(256));
        let mut byte = Zeroizing::new([0u8; 1]);
        loop {
            match (&tty).read(&mut byte[..]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(tty_error(e)),
            }
            match byte[0] {
                b'\r' | b'\n' => break,
                CTRL_C => {
                    drop(raw);
                    let _ = (&tty).write_all(b"\n");
                    std::process::exit(130);
                }
                CTRL_D if line.is_empty() => {
                    drop(raw);
                    let _ = (&tty).write_all(b"\n");
                    return Err(CliError::new("cannot read from the terminal: end of input"));
                }
                DEL | BACKSPACE => {
                    // One character: its continuation bytes, then its first byte.
                    while line.last().is_some_and(|b| b & 0xc0 == 0x80) {
                        line.pop();
                    }
                    line.pop();
                }
                CTRL_U => line.clear(),
                ESC => skip_escape(&tty),
                b if b < 0x20 => {}
                b => {
                    if line.len() == line.capacity() {
                        // Grow without leaving an unwiped copy behind.
                        let mut bigger = Zeroizing::new(Vec::with_capacity(line.capacity() * 2));
                        bigger.extend_from_slice(&line);
                        line = bigger;
                    }
                    line.push(b);
                }
            }
        }
        drop(raw);
        let _ = (&tty).write_all(b"\n");
        let text = std::str::from_utf8(&line)
            .map_err(|_| CliError::new("the text typed is not valid UTF-8"))?;
        Ok(Zeroizing::new(text.to_string()))
    }

    /// Skips the rest of an escape sequence (an arrow key, …): `ESC [ … final` or `ESC O x`.
    fn skip_escape(tty: &File) {
        let mut b = [0u8; 1];
        if !matches!((&*tty).read(&mut b), Ok(1)) || !matches!(b[0], b'[' | b'O') {
            return;
        }
        let csi = b[0] == b'[';
        while matches!((&*tty).read(&mut b), Ok(1)) {
            if !csi || (0x40..=0x7e).contains(&b[0]) {
                return;
            }
        }
    }
}
