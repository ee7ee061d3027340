//! The client side: a process that is not the holder uses the vault through its socket, with
//! methods named and typed like [`Vault`](crate::Vault)'s.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use secrecy::SecretSlice;
use zeroize::Zeroizing;

use super::path::{check_socket, current_uid};
use super::protocol::{
    FrameError, Request, RequestFrame, Response, WireSetOptions, WireUpdate, decode, read_frame,
    write_frame,
};
use crate::access::Role;
use crate::audit::{AuditRecord, Checkpoint};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::secret::{
    DeletedSecret, GetOptions, Page, PropertiesUpdate, Secret, SecretProperties, SetOptions,
    VersionId,
};
use crate::slot::SlotInfo;
use crate::vault::{NewToken, TokenInfo, VaultSettings};

/// What a holder says of itself ([`Client::status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HolderStatus {
    /// The holder's process id.
    pub pid: u32,
    /// What it is: `"agent"` or `"serve"`.
    pub kind: String,
    /// Since when it serves.
    pub since: Timestamp,
    /// When it locks itself if no request comes before (`None`: no idle timeout).
    pub idle_deadline: Option<Timestamp>,
    /// The actor of the holder's session (the unlocking slot's label, or its `--actor`).
    pub actor: String,
    /// The role of the holder's session: what every client may do.
    pub role: Role,
    /// Whether [`Client::lock`] stops it.
    pub lockable: bool,
    /// The key slot that unlocked the holder's vault.
    pub unlocked_slot: Option<u32>,
}

/// A connection to the holder of a vault. `Send + Sync`; calls from several threads take turns
/// on the one connection.
///
/// Every call acts with the holder's session (the role of the key slot that unlocked it), under
/// the actor this client names ([`Client::actor`]; the holder's own when none). A call that
/// fails because the holder is gone (killed, locked, stopped) returns [`Error::Agent`] naming
/// the socket; nothing of a request the holder did not receive whole was acted on.
///
/// ```no_run
/// use tresor::agent::{Client, socket_path};
///
/// let client = Client::connect(socket_path("app.tresor")?)?.actor("report-job")?;
/// let secret = client.get("db-password")?;
/// # let _ = secret;
/// # Ok::<(), tresor::Error>(())
/// ```
pub struct Client {
    socket: PathBuf,
    actor: Option<String>,
    timeout: Duration,
    stream: Mutex<Option<UnixStream>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("socket", &self.socket)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// The default time a call may wait for its answer.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl Client {
    /// Connects to the holder listening at `socket` (see [`socket_path`](super::socket_path)).
    /// The socket must be this user's, in a directory only this user may enter; a holder of
    /// another user is refused. No holder there: [`Error::Agent`].
    pub fn connect(socket: impl AsRef<Path>) -> Result<Client> {
        let socket = socket.as_ref().to_path_buf();
        let client = Client {
            stream: Mutex::new(None),
            socket,
            actor: None,
            timeout: DEFAULT_TIMEOUT,
        };
        let stream = client.open()?;
        *client.guard() = Some(stream);
        Ok(client)
    }

    /// Names the actor this client's audit records show (checked by the holder as
    /// [`Vault::as_identity`](crate::Vault::as_identity) checks it).
    pub fn actor(mut self, actor: impl Into<String>) -> Result<Client> {
        let actor = actor.into();
        crate::actor::check(&actor, "an actor name")?;
        self.actor = Some(actor);
        Ok(self)
    }

    /// How long a call waits for its answer (default 60 s).
    pub fn timeout(mut self, t: Duration) -> Client {
        self.timeout = t;
        if let Some(s) = self.guard().as_ref() {
            let _ = s.set_read_timeout(Some(t));
            let _ = s.set_write_timeout(Some(t));
        }
        self
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn gone(&self, reason: impl Into<String>) -> Error {
        Error::Agent {
            socket: self.socket.clone(),
            reason: reason.into(),
        }
    }

    fn guard(&self) -> MutexGuard<'_, Option<UnixStream>> {
        self.stream.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(&self) -> Result<UnixStream> {
        check_socket(&self.socket)?;
        let stream = UnixStream::connect(&self.socket)
            .map_err(|e| self.gone(format!("no holder answers: {e}")))?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let peer = rustix::net::sockopt::socket_peercred(&stream)
                .map_err(|e| self.gone(format!("cannot read the holder's credentials: {e}")))?;
            if peer.uid.as_raw() != current_uid() {
                return Err(self.gone(format!(
                    "the process at the socket runs as uid {}, not as this user",
                    peer.uid.as_raw()
                )));
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = current_uid;
        let _ = stream.set_read_timeout(Some(self.timeout));
        let _ = stream.set_write_timeout(Some(self.timeout));
        Ok(stream)
    }

    /// One request, one response. A connection that failed is opened again on the next call
    /// (never for the failed one: it may or may not have been acted on).
    fn call(&self, request: Request) -> Result<Response> {
        let mut guard = self.guard();
        let stream = match guard.take() {
            // The holder closes a connection that stayed idle (or it restarted): such a
            // connection is replaced before the request is sent, never after.
            Some(s) if alive(&s) => s,
            _ => self.open()?,
        };
        let frame = RequestFrame {
            actor: self.actor.clone(),
            request,
        };
        let sent = {
            // Unbuffered: frames go from and to zeroizing buffers only.
            let mut w = &stream;
            write_frame(&mut w, &frame)
        };
        drop(frame);
        let io = |e: FrameError| match e {
            FrameError::Closed => {
                self.gone("the holder closed the connection (it stopped, or was killed)")
            }
            other => self.gone(format!(
                "the holder went away mid-request: {}",
                other.describe()
            )),
        };
        sent.map_err(io)?;
        let body = read_frame(&mut &stream).map_err(io)?;
        let response: Response = decode(&body).map_err(|e| self.gone(e.describe()))?;
        *guard = Some(stream);
        match response {
            Response::Error(e) => Err(e.into_error(&self.socket)),
            other => Ok(other),
        }
    }

    fn unexpected(&self) -> Error {
        self.gone("the holder answered with another kind of response")
    }

    fn properties_of(&self, r: Response) -> Result<SecretProperties> {
        match r {
            Response::Properties(p) => Ok(p.into()),
            _ => Err(self.unexpected()),
        }
    }

    fn list_of(&self, r: Response) -> Result<Vec<SecretProperties>> {
        match r {
            Response::PropertiesList(items) => Ok(items.into_iter().map(Into::into).collect()),
            _ => Err(self.unexpected()),
        }
    }

    fn deleted_of(&self, r: Response) -> Result<DeletedSecret> {
        match r {
            Response::Deleted(d) => Ok(d.into()),
            _ => Err(self.unexpected()),
        }
    }

    fn unit_of(&self, r: Response) -> Result<()> {
        match r {
            Response::Unit => Ok(()),
            _ => Err(self.unexpected()),
        }
    }

    fn count_of(&self, r: Response) -> Result<u64> {
        match r {
            Response::Count(n) => Ok(n),
            _ => Err(self.unexpected()),
        }
    }

    /// What the holder says of itself: its pid, kind, start, idle deadline and session.
    pub fn status(&self) -> Result<HolderStatus> {
        match self.call(Request::Status)? {
            Response::Status(s) => Ok(HolderStatus {
                pid: s.pid,
                kind: s.kind,
                since: Timestamp::from_unix(s.since),
                idle_deadline: s.idle_deadline.map(Timestamp::from_unix),
                actor: s.actor,
                role: super::protocol::role(s.role)?,
                lockable: s.lockable,
                unlocked_slot: s.unlocked_slot,
            }),
            _ => Err(self.unexpected()),
        }
    }

    /// Asks the holder to stop: it drops the vault (wiping its keys), removes its socket and
    /// returns. A holder that is not lockable (`tresor serve`) refuses with an error naming it.
    pub fn lock(&self) -> Result<()> {
        let r = self.call(Request::Lock)?;
        self.unit_of(r)
    }

    /// As [`Vault::set`](crate::Vault::set).
    pub fn set(&self, name: &str, value: impl AsRef<[u8]>) -> Result<SecretProperties> {
        self.set_with(name, value, &SetOptions::new())
    }

    /// As [`Vault::set_with`](crate::Vault::set_with).
    pub fn set_with(
        &self,
        name: &str,
        value: impl AsRef<[u8]>,
        options: &SetOptions,
    ) -> Result<SecretProperties> {
        let r = self.call(Request::Set {
            name: name.to_string(),
            value: Zeroizing::new(value.as_ref().to_vec()),
            options: WireSetOptions::from_options(options),
        })?;
        self.properties_of(r)
    }

    /// As [`Vault::set_many`](crate::Vault::set_many): all or nothing, in one transaction.
    pub fn set_many<'a, I>(&self, items: I) -> Result<Vec<SecretProperties>>
    where
        I: IntoIterator<Item = (&'a str, &'a [u8], &'a SetOptions)>,
    {
        let items = items
            .into_iter()
            .map(|(n, v, o)| {
                (
                    n.to_string(),
                    Zeroizing::new(v.to_vec()),
                    WireSetOptions::from_options(o),
                )
            })
            .collect();
        let r = self.call(Request::SetMany { items })?;
        self.list_of(r)
    }

    /// As [`Vault::get`](crate::Vault::get).
    pub fn get(&self, name: &str) -> Result<Secret> {
        self.get_with(name, &GetOptions::default())
    }

    /// As [`Vault::get_version`](crate::Vault::get_version).
    pub fn get_version(&self, name: &str, version: &VersionId) -> Result<Secret> {
        self.get_with(name, &GetOptions::from_wire(Some(version.0), false))
    }

    /// As [`Vault::get_with`](crate::Vault::get_with).
    pub fn get_with(&self, name: &str, options: &GetOptions) -> Result<Secret> {
        match self.call(Request::Get {
            name: name.to_string(),
            version: options.version.map(|v| v.0),
            strict: options.strict,
        })? {
            Response::Secret { properties, value } => Ok(Secret {
                properties: properties.into(),
                value: SecretSlice::from(value.as_slice().to_vec()),
            }),
            _ => Err(self.unexpected()),
        }
    }

    /// As [`Vault::properties`](crate::Vault::properties).
    pub fn properties(&self, name: &str, version: Option<&VersionId>) -> Result<SecretProperties> {
        let r = self.call(Request::Properties {
            name: name.to_string(),
            version: version.map(|v| v.0),
        })?;
        self.properties_of(r)
    }

    /// As [`Vault::update_properties`](crate::Vault::update_properties).
    pub fn update_properties(
        &self,
        name: &str,
        version: Option<&VersionId>,
        update: &PropertiesUpdate,
    ) -> Result<SecretProperties> {
        let r = self.call(Request::UpdateProperties {
            name: name.to_string(),
            version: version.map(|v| v.0),
            update: WireUpdate::from_update(update),
        })?;
        self.properties_of(r)
    }

    /// As [`Vault::list`](crate::Vault::list) (the holder caps a page at 1,000 items).
    pub fn list(&self, cursor: Option<&str>, limit: usize) -> Result<Page<SecretProperties>> {
        match self.call(Request::List {
            cursor: cursor.map(str::to_string),
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
        })? {
            Response::PropertiesPage { items, next } => Ok(Page {
                items: items.into_iter().map(Into::into).collect(),
                next,
            }),
            _ => Err(self.unexpected()),
        }
    }

    /// As [`Vault::list_all`](crate::Vault::list_all): every page.
    pub fn list_all(&self) -> Result<Vec<SecretProperties>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list(cursor.as_deref(), super::protocol::MAX_PAGE)?;
            out.extend(page.items);
            match page.next {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// As [`Vault::list_versions`](crate::Vault::list_versions).
    pub fn list_versions(&self, name: &str) -> Result<Vec<SecretProperties>> {
        let r = self.call(Request::ListVersions {
            name: name.to_string(),
        })?;
        self.list_of(r)
    }

    /// As [`Vault::delete`](crate::Vault::delete).
    pub fn delete(&self, name: &str) -> Result<DeletedSecret> {
        let r = self.call(Request::Delete {
            name: name.to_string(),
        })?;
        self.deleted_of(r)
    }

    /// As [`Vault::recover`](crate::Vault::recover).
    pub fn recover(&self, name: &str) -> Result<SecretProperties> {
        let r = self.call(Request::Recover {
            name: name.to_string(),
        })?;
        self.properties_of(r)
    }

    /// As [`Vault::purge`](crate::Vault::purge).
    pub fn purge(&self, name: &str) -> Result<()> {
        let r = self.call(Request::Purge {
            name: name.to_string(),
        })?;
        self.unit_of(r)
    }

    /// As [`Vault::deleted_properties`](crate::Vault::deleted_properties).
    pub fn deleted_properties(&self, name: &str) -> Result<DeletedSecret> {
        let r = self.call(Request::DeletedProperties {
            name: name.to_string(),
        })?;
        self.deleted_of(r)
    }

    /// As [`Vault::list_deleted`](crate::Vault::list_deleted).
    pub fn list_deleted(&self, cursor: Option<&str>, limit: usize) -> Result<Page<DeletedSecret>> {
        match self.call(Request::ListDeleted {
            cursor: cursor.map(str::to_string),
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
        })? {
            Response::DeletedPage { items, next } => Ok(Page {
                items: items.into_iter().map(Into::into).collect(),
                next,
            }),
            _ => Err(self.unexpected()),
        }
    }

    /// As [`Vault::expiring`](crate::Vault::expiring).
    pub fn expiring(&self, within: Duration) -> Result<Vec<SecretProperties>> {
        let r = self.call(Request::Expiring {
            within_secs: within.as_secs(),
        })?;
        self.list_of(r)
    }

    /// As [`Vault::backup_secret`](crate::Vault::backup_secret).
    pub fn backup_secret(&self, name: &str) -> Result<Vec<u8>> {
        match self.call(Request::BackupSecret {
            name: name.to_string(),
        })? {
            Response::Blob(b) => Ok(b.as_slice().to_vec()),
            _ => Err(self.unexpected()),
        }
    }

    /// As [`Vault::restore_secret`](crate::Vault::restore_secret).
    pub fn restore_secret(&self, blob: &[u8]) -> Result<SecretProperties> {
        let r = self.call(Request::RestoreSecret {
            blob: Zeroizing::new(blob.to_vec()),
        })?;
        self.properties_of(r)
    }

    /// As [`Vault::audit`](crate::Vault::audit) (at most 1,000 records per call).
    pub fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        match self.call(Request::Audit {
            after,
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
        })? {
            Response::Audit(records) => records.into_iter().map(TryInto::try_into).collect(),
            _ => Err(self.unexpected()),
        }
    }

    /// As [`Vault::audit_len`](crate::Vault::audit_len).
    pub fn audit_len(&self) -> Result<u64> {
        let r = self.call(Request::AuditLen)?;
        self.count_of(r)
    }

    /// As [`Vault::verify_audit`](crate::Vault::verify_audit).
    pub fn verify_audit(&self) -> Result<u64> {
        let r = self.call(Request::VerifyAudit)?;
        self.count_of(r)
    }

    /// As [`Vault::checkpoint`](crate::Vault::checkpoint).
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        match self.call(Request::Checkpoint)? {
            Response::Checkpoint(s) => s.parse(),
            _ => Err(self.unexpected()),
        }
    }

    /// As [`Vault::settings`](crate::Vault::settings).
    pub fn settings(&self) -> Result<VaultSettings> {
        match self.call(Request::Settings)? {
            Response::Settings {
                retention_days,
                purge_protection,
                max_versions,
            } => Ok(VaultSettings {
                retention_days,
                purge_protection,
                max_versions,
            }),
            _ => Err(self.unexpected()),
        }
    }

    /// As [`Vault::slots`](crate::Vault::slots).
    pub fn slots(&self) -> Result<Vec<SlotInfo>> {
        match self.call(Request::Slots)? {
            Response::Slots(s) => s.into_iter().map(TryInto::try_into).collect(),
            _ => Err(self.unexpected()),
        }
    }

    /// As [`Vault::create_token`](crate::Vault::create_token).
    pub fn create_token(&self, label: &str, role: Role) -> Result<NewToken> {
        match self.call(Request::CreateToken {
            label: label.to_string(),
            role: role.code(),
        })? {
            Response::NewToken { token, info } => Ok(NewToken::from_parts(token, info.try_into()?)),
            _ => Err(self.unexpected()),
        }
    }

    /// As [`Vault::list_tokens`](crate::Vault::list_tokens).
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        match self.call(Request::ListTokens)? {
            Response::Tokens(t) => t.into_iter().map(TryInto::try_into).collect(),
            _ => Err(self.unexpected()),
        }
    }

    /// As [`Vault::revoke_token`](crate::Vault::revoke_token).
    pub fn revoke_token(&self, id: &str) -> Result<TokenInfo> {
        match self.call(Request::RevokeToken { id: id.to_string() })? {
            Response::Token(t) => t.try_into(),
            _ => Err(self.unexpected()),
        }
    }

    /// As [`Vault::flush`](crate::Vault::flush): the holder commits buffered read records now.
    pub fn flush(&self) -> Result<()> {
        let r = self.call(Request::Flush)?;
        self.unit_of(r)
    }
}

/// Whether the holder's end of an idle connection is still open: nothing is due on it between
/// two calls, so a read that would block means open, and an end of file (or anything else)
/// means the connection is done.
fn alive(stream: &UnixStream) -> bool {
    use std::io::Read;
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let open = matches!(
        (&*stream).read(&mut byte),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    );
    stream.set_nonblocking(false).is_ok() && open
}
