//! Where events go: a command run once per event with the event on its standard input, a
//! webhook on loopback, a JSON-lines file. Delivery never blocks the vault: commands and webhook
//! posts run on a few worker threads fed by a bounded queue; a full queue drops the event and
//! says so on stderr. A failure is logged, not retried.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{CliError, CliResult, io_error, quote};
use crate::output::escape;

/// Commands and webhook posts under way at once, at most.
pub const WORKERS: usize = 4;
/// Events waiting for a worker, at most; more are dropped (and logged).
pub const QUEUE: usize = 256;
/// How long an `--on-event` command may run before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a webhook may take to connect, and to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A webhook on loopback: `http://127.0.0.1:PORT/PATH`, `http://[::1]:PORT/PATH` or
/// `http://localhost:PORT/PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    addr: SocketAddr,
    host: String,
    path: String,
}

impl Webhook {
    /// Parses `url`, refusing anything but plain HTTP to a loopback address: events name
    /// secrets, and must not leave the machine.
    pub fn parse(url: &str) -> Result<Webhook, String> {
        let why = "the event webhook is plain http:// to a loopback address (127.0.0.1, [::1] \
                   or localhost) with a port: events name secrets and must not leave the machine";
        let rest = url.strip_prefix("http://").ok_or(why)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        if authority.contains('@') || path.chars().any(|c| c.is_control() || c == ' ') {
            return Err(why.into());
        }
        let (host, port) = authority.rsplit_once(':').ok_or(why)?;
        let port: u16 = port.parse().map_err(|_| why)?;
        let ip: IpAddr = match host {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            h => h
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(h)
                .parse()
                .map_err(|_| why)?,
        };
        if !ip.is_loopback() || port == 0 {
            return Err(why.into());
        }
        Ok(Webhook {
            addr: SocketAddr::new(ip, port),
            host: authority.to_string(),
            path: path.to_string(),
        })
    }

    /// POSTs `body` (an Event Grid array) and returns the status code.
    fn post(&self, body: &[u8]) -> std::io::Result<u16> {
        let mut s = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT)?;
        s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        s.set_write_timeout(Some(ANSWER_TIMEOUT))?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             aeg-event-type: Notification\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            body.len()
        );
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        s.flush()?;
        // The status line is all that is read of an answer.
        let mut line = String::new();
        BufReader::new(std::io::Read::take(s, 8 * 1024)).read_line(&mut line)?;
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other("not an HTTP answer"))
    }
}

/// Where events are delivered, as configured.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    /// `--on-event`: run through the shell once per event.
    pub command: Option<String>,
    /// `--event-webhook`.
    pub webhook: Option<Webhook>,
    /// `--event-log`.
    pub log: Option<PathBuf>,
}

impl Targets {
    /// Whether any sink is configured.
    pub fn any(&self) -> bool {
        self.command.is_some() || self.webhook.is_some() || self.log.is_some()
    }
}

enum Job {
    Command(String, Arc<String>),
    Webhook(Webhook, Arc<String>),
}

/// The sinks, open: the event log file, and the workers of commands and webhook posts.
pub struct Sinks {
    targets: Targets,
    log: Option<File>,
    queue: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Sinks {
    /// Opens the event log (created 0600 if missing, appended to) and starts the workers.
    pub fn open(targets: Targets) -> CliResult<Sinks> {
        let log = match &targets.log {
            Some(p) => Some(open_log(p)?),
            None => None,
        };
        let (queue, workers) = if targets.command.is_some() || targets.webhook.is_some() {
            let (tx, rx) = sync_channel::<Job>(QUEUE);
            let rx = Arc::new(Mutex::new(rx));
            let workers = (0..WORKERS)
                .map(|i| {
                    let rx = rx.clone();
                    std::thread::Builder::new()
                        .name(format!("tresor-events-{i}"))
                        .spawn(move || work(&rx))
                        .map_err(|e| CliError::new(format!("cannot start event workers: {e}")))
                })
                .collect::<CliResult<Vec<_>>>()?;
            (Some(tx), workers)
        } else {
            (None, Vec::new())
        };
        Ok(Sinks {
            targets,
            log,
            queue,
            workers,
        })
    }

    /// Delivers one event to every sink: the log line now, the command and the webhook post by
    /// the workers.
    pub fn deliver(&mut self, event: &Value) {
        let kind = event["eventType"].as_str().unwrap_or("event").to_string();
        if let (Some(file), Some(path)) = (&mut self.log, &self.targets.log) {
            let line = format!("{event}\n");
            if let Err(e) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
                eprintln!(
                    "tresor events: cannot append to {}: {e}",
                    quote(&path.display().to_string())
                );
            }
        }
        let Some(queue) = &self.queue else { return };
        let mut jobs = Vec::new();
        if let Some(cmd) = &self.targets.command {
            jobs.push(Job::Command(cmd.clone(), Arc::new(format!("{event}\n"))));
        }
        if let Some(hook) = &self.targets.webhook {
            // Event Grid posts arrays of events.
            jobs.push(Job::Webhook(hook.clone(), Arc::new(format!("[{event}]"))));
        }
        for job in jobs {
            match queue.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => eprintln!(
                    "tresor events: {} dropped: {QUEUE} deliveries are already waiting",
                    escape(&kind)
                ),
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Waits for deliveries under way and queued (each bounded by its timeout).
    pub fn finish(mut self) {
        self.queue = None;
        for w in std::mem::take(&mut self.workers) {
            let _ = w.join();
        }
    }
}

fn open_log(path: &Path) -> CliResult<File> {
    let mut o = std::fs::OpenOptions::new();
    o.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
        .map_err(|e| io_error("cannot open the event log", path, &e))
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            Ok(Job::Command(cmd, body)) => run_command(&cmd, &body),
            Ok(Job::Webhook(hook, body)) => match hook.post(body.as_bytes()) {
                Ok(code) if (200..300).contains(&code) => {}
                Ok(code) => eprintln!("tresor events: the webhook answered {code}"),
                Err(e) => eprintln!("tresor events: the webhook failed: {e}"),
            },
            Err(_) => return,
        }
    }
}

fn run_command(cmd: &str, body: &str) {
    let kind = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["eventType"].as_str().map(str::to_string))
        .unwrap_or_default();
    #[cfg(unix)]
    let mut c = {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(cmd);
        c
    };
    #[cfg(not(unix))]
    let mut c = {
        let mut c = Command::new("cmd");
        c.arg("/C").arg(cmd);
        c
    };
    // The command gets the event, not tresor's credentials or settings.
    for (var, _) in std::env::vars_os() {
        if crate::names::is_own_env(&var.to_string_lossy()) {
            c.env_remove(var);
        }
    }
    c.env("TRESOR_EVENT_TYPE", &kind)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut child = match c.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("tresor events: --on-event could not start: {e}");
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is not a failure.
        let _ = stdin.write_all(body.as_bytes());
    }
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return,
            Ok(Some(status)) => {
                eprintln!("tresor events: --on-event failed ({status}) for {kind}");
                return;
            }
            Ok(None) if started.elapsed() >= COMMAND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!(
                    "tresor events: --on-event killed after {} s for {kind}",
                    COMMAND_TIMEOUT.as_secs()
                );
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                eprintln!("tresor events: --on-event: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_are_loopback_http_only() {
        let ok = Webhook::parse("http://127.0.0.1:9000/hook").unwrap();
        assert_eq!(ok.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(ok.path, "/hook");
        assert_eq!(Webhook::parse("http://[::1]:9/").unwrap().addr.port(), 9);
        assert_eq!(Webhook::parse("http://localhost:80").unwrap().path, "/");
        for bad in [
            "https://127.0.0.1:9000/",
            "http://10.0.0.1:9000/",
            "http://example.com:80/",
            "http://127.0.0.1/",
            "http://127.0.0.1:0/",
            "http://user@127.0.0.1:80/",
            "http://127.0.0.1:80/a b",
            "ftp://127.0.0.1:80/",
            "http://0.0.0.0:80/",
        ] {
            assert!(Webhook::parse(bad).is_err(), "{bad}");
        }
    }
}
