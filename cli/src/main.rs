//! `tresor`: the command line of the tresor secrets vault. It uses only the library's public API.
//!
//! Exit status: 0 on success, 2 for usage errors, 1 for every other error (one `error:` line on
//! stderr); `run` returns its command's status.

#![forbid(unsafe_code)]

#[cfg(unix)]
mod agent;
mod args;
mod commands;
mod dotenv;
mod error;
mod events;
mod files;
mod hardening;
mod names;
mod output;
mod panics;
mod parse;
mod poll;
mod prompt;
#[cfg(feature = "server")]
mod serve;
mod store;
mod time;
mod unlock;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    hardening::apply();
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return args::usage_error(&e),
    };
    panics::quiet();
    match panics::catch(|| commands::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
