//! `tresor agent`, `unlock`, `lock` and `status`: one process holds the vault open and unlocked,
//! and every other command of the same user goes through it (see `tresor::agent`).
//!
//! The agent acts with the session it unlocked (the role of its key slot); the commands that go
//! through it need no credential of their own, and name their `--actor` as usual. `unlock`
//! starts the agent in the background: it resolves the credential (one prompt), then starts
//! `tresor agent --detached`, handing a passphrase over on the child's stdin, and returns once
//! the socket answers.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tresor::agent::{Client, Holder, HolderOptions, StopReason};
use tresor::secrecy::ExposeSecret;
use tresor::{Credential, Error};

use crate::args::{AgentArgs, AuditReads, Global};
use crate::commands::Held;
use crate::error::{CliError, CliResult, describe, quote};
use crate::output::escape;
use crate::{output, time, unlock};

/// How long `unlock` waits for the agent it started to answer.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The socket of the vault the global flags name; `None` when the vault file does not exist.
fn socket(g: &Global) -> Option<PathBuf> {
    tresor::agent::socket_path(unlock::vault_path(g)).ok()
}

/// The holder of the vault, when one answers. A socket nothing answers on (its holder was
/// killed) is removed, and the command opens the file itself.
pub fn holder(g: &Global) -> CliResult<Option<Held>> {
    let Some(socket) = socket(g) else {
        return Ok(None);
    };
    if std::fs::symlink_metadata(&socket).is_err() {
        return Ok(None);
    }
    if let Err(e) = UnixStream::connect(&socket) {
        if matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
        ) {
            // A stale socket (its holder was killed): removed when it is this user's.
            use std::os::unix::fs::MetadataExt;
            let mine = std::fs::symlink_metadata(&socket)
                .is_ok_and(|m| m.uid() == rustix::process::geteuid().as_raw());
            if mine {
                let _ = std::fs::remove_file(&socket);
            }
            return Ok(None);
        }
        return Err(CliError::new(format!(
            "cannot reach the vault's holder at {}: {e}",
            quote(&socket.display().to_string())
        )));
    }
    let client = Client::connect(&socket).map_err(|e| CliError::new(describe(&e, None)))?;
    let client = match &g.actor {
        Some(a) => client.actor(a.clone())?,
        None => client,
    };
    let what = match client.status() {
        Ok(s) => format!("{} (pid {})", held_by(&s.kind), s.pid),
        // The holder went away between the connect and now: open the file.
        Err(Error::Agent { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(Some(Held { client, what }))
}

fn held_by(kind: &str) -> String {
    match kind {
        "agent" => "an agent".to_string(),
        other => format!("`tresor {other}`"),
    }
}

/// `tresor agent` (in the foreground, or `--daemon`) and `tresor unlock` (`background`).
pub fn run(g: &Global, a: &AgentArgs, background: bool) -> CliResult<ExitCode> {
    let path = unlock::vault_path(g);
    let shown = quote(&path.display().to_string());
    if a.detached {
        // The background agent: a session of its own, away from the terminal that started it.
        let _ = rustix::process::setsid();
    } else if let Some(held) = holder(g)? {
        let socket = held.client.socket().display().to_string();
        if background || a.daemon {
            output::print_text(&format!(
                "already unlocked: {shown} is held by {} at {}\n",
                held.what,
                escape(&socket)
            ))?;
            return Ok(ExitCode::SUCCESS);
        }
        return Err(CliError::new(format!(
            "{shown} is already held by {} (`tresor lock` stops an agent)",
            held.what
        )));
    }
    let opened = unlock::open(g, false)?;
    if (background || a.daemon) && !a.detached {
        let credential = opened.credential.clone();
        opened.vault.close()?;
        return start_background(g, &path, &credential, a.idle);
    }
    let vault = Arc::new(opened.vault);
    let socket = tresor::agent::socket_path(&path)?;
    let idle = (!a.idle.is_zero()).then_some(a.idle);
    let holder = Holder::bind(
        &socket,
        vault.clone(),
        HolderOptions::new().idle(idle).kind("agent"),
    )
    .map_err(|e| bind_error(&socket, e))?;
    if a.detached {
        // The parent stops reading once the socket answers: nothing more goes to stderr.
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            let _ = rustix::stdio::dup2_stderr(&null);
        }
    } else {
        eprintln!(
            "tresor agent: serving {shown} at {} ({}); `tresor lock` stops it",
            escape(&socket.display().to_string()),
            match idle {
                Some(d) => format!("locks after {} s without a request", d.as_secs()),
                None => "no idle timeout".to_string(),
            }
        );
    }
    let reason = holder.serve()?;
    // The last handle: dropping it wipes the keys and closes the file.
    match Arc::try_unwrap(vault) {
        Ok(v) => v.close()?,
        Err(v) => v.flush()?,
    }
    if !a.detached {
        eprintln!(
            "tresor agent: {}; the key is wiped and the vault closed",
            match reason {
                StopReason::Idle => "idle timeout",
                StopReason::Locked => "locked",
                _ => "stopped",
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn bind_error(socket: &Path, e: Error) -> CliError {
    match e {
        Error::Locked => CliError::new(format!(
            "another holder already answers at {}",
            quote(&socket.display().to_string())
        )),
        other => CliError::new(describe(&other, None)),
    }
}

/// Starts `tresor … agent --detached` with the same flags and returns once its socket answers.
/// A passphrase (typed at the prompt, or from the environment) goes to it on its stdin, as
/// `--passphrase-file /dev/stdin`; key files, age identities and the keychain it reads itself.
fn start_background(
    g: &Global,
    path: &Path,
    credential: &Credential,
    idle: Duration,
) -> CliResult<ExitCode> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::new(format!("cannot find the tresor program: {e}")))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("agent").arg("--detached");
    cmd.arg("--idle").arg(format!("{}s", idle.as_secs()));
    // The global flags that matter to an open; their environment variables are inherited.
    cmd.arg("--vault").arg(path);
    if let Some(k) = &g.key_file {
        cmd.arg("--key-file").arg(k);
    }
    if g.allow_insecure_key_file {
        cmd.arg("--allow-insecure-key-file");
    }
    for id in &g.age_identity {
        cmd.arg("--age-identity").arg(id);
    }
    if let Some(w) = &g.witness_dir {
        cmd.arg("--witness-dir").arg(w);
    }
    if g.no_witness {
        cmd.arg("--no-witness");
    }
    if let Some(a) = &g.actor {
        cmd.arg("--actor").arg(a);
    }
    cmd.arg("--audit-reads").arg(match g.audit_reads {
        AuditReads::Durable => "durable",
        AuditReads::Buffered => "buffered",
        AuditReads::Off => "off",
    });
    if let Some(cp) = &g.expect_checkpoint {
        cmd.arg("--expect-checkpoint").arg(cp.to_string());
    }
    let passphrase = match credential {
        Credential::Passphrase(p) if g.passphrase_file.is_none() => Some(p.clone()),
        _ => None,
    };
    match (&passphrase, &g.passphrase_file) {
        (Some(_), _) => {
            cmd.arg("--passphrase-file").arg("/dev/stdin");
        }
        (None, Some(f)) => {
            cmd.arg("--passphrase-file").arg(f);
        }
        (None, None) => {}
    }
    cmd.stdin(if passphrase.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::new(format!("cannot start the agent: {e}")))?;
    if let (Some(p), Some(mut stdin)) = (passphrase, child.stdin.take()) {
        let mut text = zeroize::Zeroizing::new(p.expose_secret().as_bytes().to_vec());
        text.push(b'\n');
        let _ = stdin.write_all(&text);
    }
    let socket = tresor::agent::socket_path(path)?;
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let err = err.trim();
            let err = err.strip_prefix("error: ").unwrap_or(err);
            return Err(CliError::new(format!(
                "the agent did not start ({status}){}",
                if err.is_empty() {
                    String::new()
                } else {
                    format!(": {err}")
                }
            )));
        }
        if let Ok(c) = Client::connect(&socket)
            && let Ok(s) = c.status()
        {
            output::print_text(&format!(
                "unlocked: an agent (pid {}) holds {} at {}\n",
                s.pid,
                quote(&path.display().to_string()),
                escape(&socket.display().to_string())
            ))?;
            eprintln!(
                "every tresor command of this user now goes through it; `tresor lock` locks \
                 it (it also locks {})",
                match s.idle_deadline {
                    Some(t) => format!("after {} without a request", idle_text(t)),
                    None => "never by itself".to_string(),
                }
            );
            return Ok(ExitCode::SUCCESS);
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            return Err(CliError::new("the agent did not answer in time"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn idle_text(deadline: tresor::Timestamp) -> String {
    let secs = deadline.unix() - time::now().unix();
    format!("{} s", secs.max(0))
}

/// `tresor lock`: the agent wipes its key, closes the file and exits.
pub fn lock(g: &Global) -> CliResult<()> {
    let Some(held) = holder(g)? else {
        return output::print_text(&format!(
            "not unlocked: no agent holds {}\n",
            quote(&unlock::vault_path(g).display().to_string())
        ));
    };
    held.client.lock().map_err(|e| match e {
        Error::InvalidArgument(why) => CliError::new(why),
        other => CliError::new(describe(&other, None)),
    })?;
    // Returns once the socket is gone (the agent removes it before it closes the file; a
    // command right after waits out the rest with --wait).
    let socket = held.client.socket().to_path_buf();
    let started = Instant::now();
    while socket.exists() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    output::print_text(&format!("locked: {} stopped\n", held.what))
}

/// `tresor status`.
pub fn status(g: &Global) -> CliResult<()> {
    let path = unlock::vault_path(g);
    let Some(held) = holder(g)? else {
        return output::print_text(&format!(
            "not held: commands open {} themselves\n",
            quote(&path.display().to_string())
        ));
    };
    let s = held.client.status()?;
    let mut text = format!(
        "held by {}\nvault: {}\nsocket: {}\nsince: {}\nsession: actor {}, {} role\n",
        held.what,
        escape(&path.display().to_string()),
        escape(&held.client.socket().display().to_string()),
        time::rfc3339(s.since),
        escape(&s.actor),
        s.role
    );
    text.push_str(&match s.idle_deadline {
        Some(t) => format!("locks at: {} if idle\n", time::rfc3339(t)),
        None => "locks at: never by itself\n".to_string(),
    });
    output::print_text(&text)
}
