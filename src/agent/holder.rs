//! The serving side: a process that holds a vault open answers its clients on a Unix socket.

use std::collections::HashMap;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::path::{check_private_dir, current_uid, prepare_dir};
use super::protocol::{
    FrameError, MAX_PAGE, Request, RequestFrame, Response, WireError, WireSetOptions, WireStatus,
    decode, read_frame, settings_of, write_frame,
};
use crate::access::Operation;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::secret::{GetOptions, VersionId};
use crate::vault::Vault;

/// How a [`Holder`] serves.
///
/// ```
/// use std::time::Duration;
/// use tresor::agent::HolderOptions;
///
/// let options = HolderOptions::new().idle(Some(Duration::from_secs(900))).kind("agent");
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct HolderOptions {
    idle: Option<Duration>,
    max_connections: usize,
    io_timeout: Duration,
    lockable: bool,
    kind: String,
}

impl Default for HolderOptions {
    fn default() -> Self {
        HolderOptions {
            idle: None,
            max_connections: 64,
            io_timeout: Duration::from_secs(30),
            lockable: true,
            kind: "agent".to_string(),
        }
    }
}

impl HolderOptions {
    /// No idle timeout, 64 connections, 30 s per message, stopped by a client's `lock`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stop serving once no request came for this long (`None`: never).
    pub fn idle(mut self, idle: Option<Duration>) -> Self {
        self.idle = idle;
        self
    }

    /// The most connections served at once; more are answered with an error and closed.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a connection may take to send the rest of a message, or stay idle between two.
    pub fn io_timeout(mut self, t: Duration) -> Self {
        self.io_timeout = t;
        self
    }

    /// Whether a client's [`Client::lock`](super::Client::lock) stops the holder (an agent's
    /// yes; `tresor serve` says no, and is stopped where it runs).
    pub fn lockable(mut self, on: bool) -> Self {
        self.lockable = on;
        self
    }

    /// What the holder calls itself in its status (`"agent"`, `"serve"`).
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }
}

/// Why [`Holder::serve`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// A client asked (`tresor lock`).
    Locked,
    /// No request came within the idle timeout.
    Idle,
    /// The process stopped it through a [`HolderHandle`].
    Stopped,
}

struct Shared {
    stop: AtomicBool,
    reason: Mutex<Option<StopReason>>,
    last: Mutex<Instant>,
    active: AtomicUsize,
    /// Requests being answered now.
    busy: AtomicUsize,
    socket: PathBuf,
    /// The open connections, shut down when the holder stops.
    conns: Mutex<HashMap<u64, UnixStream>>,
    /// The listening socket, shut down when the holder stops (which wakes the accept loop even
    /// when the socket's file was removed).
    listener: Option<UnixListener>,
    next_conn: AtomicU64,
}

impl Shared {
    fn stop(&self, reason: StopReason) {
        {
            let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
            if r.is_none() {
                *r = Some(reason);
            }
        }
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop: a shut-down listening socket fails its accept.
        if let Some(l) = &self.listener {
            let _ = rustix::net::shutdown(l, rustix::net::Shutdown::Both);
        }
        let _ = UnixStream::connect(&self.socket);
        // Ends every connection: a client's next call gets an error, and no thread keeps the
        // vault open after the holder stopped.
        for c in self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn register(&self, stream: &UnixStream) -> Option<u64> {
        let id = self.next_conn.fetch_add(1, Ordering::SeqCst);
        let clone = stream.try_clone().ok()?;
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, clone);
        if self.stop.load(Ordering::SeqCst) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        Some(id)
    }

    fn unregister(&self, id: Option<u64>) {
        if let Some(id) = id {
            self.conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

/// Stops a running [`Holder`] from another thread.
#[derive(Clone)]
pub struct HolderHandle {
    shared: Arc<Shared>,
}

impl HolderHandle {
    /// Stops the holder: it accepts no more connections, removes its socket, and
    /// [`Holder::serve`] returns [`StopReason::Stopped`].
    pub fn stop(&self) {
        self.shared.stop(StopReason::Stopped);
    }
}

/// A vault served on a Unix domain socket to processes of the same user.
///
/// Each connection runs on a thread of its own (up to a cap); each request runs on a view of
/// the vault acting as the actor the client names (see the module documentation for the rights
/// a client gets).
///
/// ```
/// use std::sync::Arc;
/// use tresor::agent::{Client, Holder, HolderOptions};
/// use tresor::{Credential, Options, Vault};
///
/// # let dir = tempfile::tempdir().unwrap();
/// let vault = Arc::new(Vault::create_in_memory(&Credential::generate_key()?, Options::new())?);
/// // Its directory is made 0700 when missing; one open to other users is refused.
/// let socket = dir.path().join("run").join("vault.sock");
/// let holder = Holder::bind(&socket, vault, HolderOptions::new())?;
/// let handle = holder.handle();
/// let serving = std::thread::spawn(move || holder.serve());
/// let client = Client::connect(&socket)?;
/// client.set("db-password", "hunter2")?;
/// assert_eq!(client.get("db-password")?.expose(), b"hunter2");
/// handle.stop();
/// serving.join().unwrap()?;
/// # Ok::<(), tresor::Error>(())
/// ```
pub struct Holder {
    listener: UnixListener,
    vault: Arc<Vault>,
    options: HolderOptions,
    shared: Arc<Shared>,
    since: Timestamp,
}

impl Holder {
    /// Listens at `socket` (its directory made 0700 if missing, refused if another user owns
    /// it or others may enter it; the socket 0600). A stale socket (nothing answers) is
    /// replaced; a live one is [`Error::Locked`].
    pub fn bind(
        socket: impl AsRef<Path>,
        vault: Arc<Vault>,
        options: HolderOptions,
    ) -> Result<Holder> {
        let socket = socket.as_ref().to_path_buf();
        let dir = socket
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        prepare_dir(dir)?;
        if std::fs::symlink_metadata(&socket).is_ok() {
            if UnixStream::connect(&socket).is_ok() {
                return Err(Error::Locked);
            }
            std::fs::remove_file(&socket)?;
        }
        let listener = UnixListener::bind(&socket)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
        }
        check_private_dir(dir)?;
        let now = vault.now();
        let waker = listener.try_clone().ok();
        Ok(Holder {
            listener,
            vault,
            options,
            shared: Arc::new(Shared {
                stop: AtomicBool::new(false),
                reason: Mutex::new(None),
                last: Mutex::new(Instant::now()),
                active: AtomicUsize::new(0),
                busy: AtomicUsize::new(0),
                socket,
                conns: Mutex::new(HashMap::new()),
                listener: waker,
                next_conn: AtomicU64::new(0),
            }),
            since: now,
        })
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.shared.socket
    }

    /// A handle that stops the holder from another thread.
    pub fn handle(&self) -> HolderHandle {
        HolderHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until stopped (a client's lock, the idle timeout, or a [`HolderHandle`]); then
    /// removes the socket. Blocking. Buffered audit records are committed before it returns.
    pub fn serve(self) -> Result<StopReason> {
        let idle_watch = self.options.idle.map(|idle| {
            let shared = self.shared.clone();
            std::thread::spawn(move || {
                let step = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
                while !shared.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(step);
                    if shared.busy.load(Ordering::SeqCst) == 0 && shared.idle_for() >= idle {
                        shared.stop(StopReason::Idle);
                    }
                }
            })
        });
        let status = Arc::new(StatusInfo {
            kind: self.options.kind.clone(),
            since: self.since,
            idle: self.options.idle,
            lockable: self.options.lockable,
        });
        for conn in self.listener.incoming() {
            if self.shared.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = conn else {
                // Out of descriptors or the like: a pause instead of a busy loop.
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let active = self.shared.active.fetch_add(1, Ordering::SeqCst);
            if active >= self.options.max_connections {
                self.shared.active.fetch_sub(1, Ordering::SeqCst);
                let mut w = &stream;
                let _ = write_frame(
                    &mut w,
                    &Response::Error(WireError::Agent(
                        "too many connections; try again".to_string(),
                    )),
                );
                continue;
            }
            let vault = self.vault.clone();
            let shared = self.shared.clone();
            let options = self.options.clone();
            let status = status.clone();
            let spawned = std::thread::Builder::new()
                .name("tresor-holder".to_string())
                .spawn(move || {
                    let id = shared.register(&stream);
                    connection(&stream, &vault, &shared, &options, &status);
                    shared.unregister(id);
                    shared.active.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                self.shared.active.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.shared.stop(StopReason::Stopped);
        let _ = std::fs::remove_file(&self.shared.socket);
        if let Some(t) = idle_watch {
            let _ = t.join();
        }
        // Requests in flight finish before the holder returns (each is short; bounded wait).
        let deadline = Instant::now() + self.options.io_timeout;
        while self.shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.vault.flush()?;
        let reason = *self.shared.reason.lock().unwrap_or_else(|e| e.into_inner());
        Ok(reason.unwrap_or(StopReason::Stopped))
    }
}

struct StatusInfo {
    kind: String,
    since: Timestamp,
    idle: Option<Duration>,
    lockable: bool,
}

/// Serves one connection: the peer check, then requests until it closes.
fn connection(
    stream: &UnixStream,
    vault: &Vault,
    shared: &Shared,
    options: &HolderOptions,
    status: &StatusInfo,
) {
    let _ = stream.set_read_timeout(Some(options.io_timeout));
    let _ = stream.set_write_timeout(Some(options.io_timeout));
    // Unbuffered on purpose: a frame is written whole from a zeroizing buffer and read straight
    // into one, so no copy of a value is left in an I/O buffer that is not wiped.
    let mut writer = stream;
    if let Err(e) = check_peer(stream, vault) {
        let _ = write_frame(&mut writer, &Response::Error(WireError::from(&e)));
        return;
    }
    let mut reader = stream;
    loop {
        let body = match read_frame(&mut reader) {
            Ok(b) => b,
            Err(FrameError::Closed) => return,
            Err(e @ (FrameError::TooLarge(_) | FrameError::Version(_) | FrameError::Decode)) => {
                let _ = write_frame(
                    &mut writer,
                    &Response::Error(WireError::Agent(e.describe())),
                );
                return;
            }
            // A client that died or stalled mid-message: nothing of it was acted on.
            Err(FrameError::Io(_)) => return,
        };
        let frame: RequestFrame = match decode(&body) {
            Ok(f) => f,
            Err(e) => {
                let _ = write_frame(
                    &mut writer,
                    &Response::Error(WireError::Agent(e.describe())),
                );
                return;
            }
        };
        drop(body);
        if shared.stop.load(Ordering::SeqCst) {
            let _ = write_frame(
                &mut writer,
                &Response::Error(WireError::Agent("the holder has stopped".to_string())),
            );
            return;
        }
        // A status request (`tresor status`, a client finding the holder) is not activity.
        let activity = !matches!(frame.request, Request::Status);
        if activity {
            shared.touch();
        }
        let lock = matches!(frame.request, Request::Lock);
        shared.busy.fetch_add(1, Ordering::SeqCst);
        let response = match answer(frame, vault, status, shared) {
            Ok(r) => r,
            Err(e) => Response::Error(WireError::from(&e)),
        };
        shared.busy.fetch_sub(1, Ordering::SeqCst);
        let sent = write_frame(&mut writer, &response);
        if activity {
            shared.touch();
        }
        if lock && options.lockable {
            shared.stop(StopReason::Locked);
            return;
        }
        if sent.is_err() {
            return;
        }
    }
}

/// Only the holder's own user is served; another is refused, and the refusal audited.
fn check_peer(stream: &UnixStream, vault: &Vault) -> Result<()> {
    let me = current_uid();
    let peer = peer_uid(stream)?;
    if peer == me {
        return Ok(());
    }
    let err = Error::PeerRefused { uid: peer };
    let _ = vault.record_refusal(&format!("uid:{peer}"), Operation::AgentConnect, &err);
    Err(err)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn peer_uid(stream: &UnixStream) -> Result<u32> {
    let cred = rustix::net::sockopt::socket_peercred(stream).map_err(std::io::Error::from)?;
    Ok(cred.uid.as_raw())
}

/// Without SO_PEERCRED, the socket's mode (0600, in a 0700 directory) is the check.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn peer_uid(_stream: &UnixStream) -> Result<u32> {
    Ok(current_uid())
}

fn version(v: Option<[u8; 16]>) -> Option<VersionId> {
    v.map(VersionId)
}

fn limit(n: u32) -> usize {
    (n as usize).clamp(1, MAX_PAGE)
}

/// Runs one request on the view of the vault the client acts as.
fn answer(
    frame: RequestFrame,
    vault: &Vault,
    status: &StatusInfo,
    shared: &Shared,
) -> Result<Response> {
    let view;
    let v = match frame.actor {
        Some(actor) => {
            view = vault.as_identity(actor, vault.role())?;
            &view
        }
        None => vault,
    };
    Ok(match frame.request {
        Request::Status => Response::Status(WireStatus {
            pid: std::process::id(),
            kind: status.kind.clone(),
            since: status.since.unix(),
            idle_deadline: status.idle.map(|idle| {
                let left = idle.saturating_sub(shared.idle_for());
                v.now().plus(left).unix()
            }),
            actor: vault.actor().to_string(),
            role: vault.role().code(),
            lockable: status.lockable,
            unlocked_slot: vault.unlocked_slot(),
        }),
        Request::Lock => {
            if status.lockable {
                Response::Unit
            } else {
                return Err(Error::invalid(format!(
                    "the vault is held by `tresor {}` (pid {}), which a lock does not stop: \
                     stop it where it runs",
                    status.kind,
                    std::process::id()
                )));
            }
        }
        Request::Set {
            name,
            value,
            options,
        } => {
            let o = WireSetOptions::into_options(options)?;
            Response::Properties((&v.set_with(&name, value.as_slice(), &o)?).into())
        }
        Request::Get {
            name,
            version: ver,
            strict,
        } => {
            let s = v.get_with(&name, &GetOptions::from_wire(ver, strict))?;
            Response::Secret {
                properties: (&s.properties).into(),
                value: Zeroizing::new(s.expose().to_vec()),
            }
        }
        Request::Properties { name, version: ver } => {
            Response::Properties((&v.properties(&name, version(ver).as_ref())?).into())
        }
        Request::UpdateProperties {
            name,
            version: ver,
            update,
        } => Response::Properties(
            (&v.update_properties(&name, version(ver).as_ref(), &update.into_update())?).into(),
        ),
        Request::List { cursor, limit: n } => {
            let page = v.list(cursor.as_deref(), limit(n))?;
            Response::PropertiesPage {
                items: page.items.iter().map(Into::into).collect(),
                next: page.next,
            }
        }
        Request::ListVersions { name } => {
            Response::PropertiesList(v.list_versions(&name)?.iter().map(Into::into).collect())
        }
        Request::Delete { name } => Response::Deleted((&v.delete(&name)?).into()),
        Request::Recover { name } => Response::Properties((&v.recover(&name)?).into()),
        Request::Purge { name } => {
            v.purge(&name)?;
            Response::Unit
        }
        Request::DeletedProperties { name } => {
            Response::Deleted((&v.deleted_properties(&name)?).into())
        }
        Request::ListDeleted { cursor, limit: n } => {
            let page = v.list_deleted(cursor.as_deref(), limit(n))?;
            Response::DeletedPage {
                items: page.items.iter().map(Into::into).collect(),
                next: page.next,
            }
        }
        Request::Expiring { within_secs } => Response::PropertiesList(
            v.expiring(Duration::from_secs(within_secs))?
                .iter()
                .map(Into::into)
                .collect(),
        ),
        Request::BackupSecret { name } => Response::Blob(Zeroizing::new(v.backup_secret(&name)?)),
        Request::RestoreSecret { blob } => Response::Properties((&v.restore_secret(&blob)?).into()),
        Request::Audit { after, limit: n } => {
            Response::Audit(v.audit(after, limit(n))?.iter().map(Into::into).collect())
        }
        Request::AuditLen => Response::Count(v.audit_len()?),
        Request::VerifyAudit => Response::Count(v.verify_audit()?),
        Request::Checkpoint => Response::Checkpoint(v.checkpoint()?.to_string()),
        Request::Settings => settings_of(&v.settings()?),
        Request::CreateToken { label, role } => {
            let t = v.create_token(&label, super::protocol::role(role)?)?;
            Response::NewToken {
                token: Zeroizing::new(t.expose().to_string()),
                info: (&t.info).into(),
            }
        }
        Request::ListTokens => Response::Tokens(v.list_tokens()?.iter().map(Into::into).collect()),
        Request::RevokeToken { id } => Response::Token((&v.revoke_token(&id)?).into()),
        Request::Slots => Response::Slots(v.slots()?.iter().map(Into::into).collect()),
        Request::SetMany { items } => {
            let mut parsed = Vec::with_capacity(items.len());
            for (name, value, options) in items {
                parsed.push((name, value, options.into_options()?));
            }
            Response::PropertiesList(
                v.set_many(
                    parsed
                        .iter()
                        .map(|(n, val, o)| (n.as_str(), val.as_slice(), o)),
                )?
                .iter()
                .map(Into::into)
                .collect(),
            )
        }
        Request::Flush => {
            v.flush()?;
            Response::Unit
        }
    })
}
