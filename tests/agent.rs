//! The agent: a vault held open by one process and used by others through its socket.
//! Every request round-trips; oversized and cut-short messages change nothing; another user
//! is refused and audited; a holder that is gone gives a clear error.

#![cfg(unix)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tresor::agent::{Client, Holder, HolderOptions, StopReason};
use tresor::{
    Credential, Error, Expect, GetOptions, Operation, Options, PropertiesUpdate, Role, SetOptions,
    Vault,
};

struct Served {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    vault: Arc<Vault>,
    thread: Option<JoinHandle<tresor::Result<StopReason>>>,
}

fn serve(options: HolderOptions) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let key = Credential::generate_key().unwrap();
    let vault = Arc::new(
        Vault::create(
            dir.path().join("v.tresor"),
            &key,
            Options::new().retention_days(7),
        )
        .unwrap(),
    );
    let socket = dir.path().join("run").join("v.sock");
    let holder = Holder::bind(&socket, vault.clone(), options).unwrap();
    let thread = Some(std::thread::spawn(move || holder.serve()));
    Served {
        _dir: dir,
        socket,
        vault,
        thread,
    }
}

impl Served {
    fn stop(&mut self) -> StopReason {
        Client::connect(&self.socket).unwrap().lock().unwrap();
        self.thread.take().unwrap().join().unwrap().unwrap()
    }
}

#[test]
fn every_request_round_trips() {
    let mut s = serve(HolderOptions::new());
    let c = Client::connect(&s.socket).unwrap().actor("runner").unwrap();
    let status = c.status().unwrap();
    assert_eq!(status.pid, std::process::id());
    assert_eq!(status.role, Role::Owner);
    assert_eq!(status.kind, "agent");

    let v1 = c
        .set_with(
            "db-password",
            "hunter2",
            &SetOptions::new()
                .tag("env", "dev")
                .content_type("text/plain"),
        )
        .unwrap();
    let v2 = c
        .set_with(
            "db-password",
            "s3cret",
            &SetOptions::new().expect(Expect::Version(v1.version)),
        )
        .unwrap();
    assert!(matches!(
        c.set_with(
            "db-password",
            "x",
            &SetOptions::new().expect(Expect::Absent)
        ),
        Err(Error::VersionConflict)
    ));
    assert_eq!(c.get("db-password").unwrap().expose(), b"s3cret");
    assert_eq!(
        c.get_version("db-password", &v1.version).unwrap().expose(),
        b"hunter2"
    );
    let mut strict = GetOptions::default();
    strict.strict = true;
    assert_eq!(c.get_with("db-password", &strict).unwrap().properties, v2);
    // The same answers as the vault itself gives.
    assert_eq!(
        c.properties("db-password", Some(&v1.version)).unwrap(),
        s.vault
            .properties("db-password", Some(&v1.version))
            .unwrap()
    );
    assert_eq!(
        c.list_versions("db-password").unwrap(),
        s.vault.list_versions("db-password").unwrap()
    );
    let updated = c
        .update_properties(
            "db-password",
            Some(&v1.version),
            &PropertiesUpdate::new().enabled(false),
        )
        .unwrap();
    assert!(!updated.enabled);
    assert!(matches!(
        c.get_version("db-password", &v1.version),
        Err(Error::Disabled)
    ));
    c.set("api-key", "k").unwrap();
    let page = c.list(None, 1).unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.next.is_some());
    assert_eq!(c.list_all().unwrap().len(), 2);
    assert!(c.expiring(Duration::from_secs(3600)).unwrap().is_empty());

    let blob = c.backup_secret("api-key").unwrap();
    let deleted = c.delete("api-key").unwrap();
    assert_eq!(deleted.properties.name, "api-key");
    assert_eq!(c.deleted_properties("api-key").unwrap(), deleted);
    assert_eq!(c.list_deleted(None, 10).unwrap().items, vec![deleted]);
    assert!(matches!(c.get("api-key"), Err(Error::NotFound)));
    c.recover("api-key").unwrap();
    c.delete("api-key").unwrap();
    c.purge("api-key").unwrap();
    assert_eq!(c.restore_secret(&blob).unwrap().name, "api-key");
    assert!(matches!(
        c.restore_secret(b"junk"),
        Err(Error::InvalidBackup("not a tresor backup"))
    ));
    let items = [("a-1", b"1".as_slice(), &SetOptions::new())];
    assert_eq!(c.set_many(items).unwrap().len(), 1);

    let token = c.create_token("ci", Role::Reader).unwrap();
    assert!(token.expose().starts_with("tresor_"));
    assert_eq!(c.list_tokens().unwrap(), vec![token.info.clone()]);
    assert_eq!(c.revoke_token(&token.info.id).unwrap(), token.info);
    assert_eq!(c.slots().unwrap(), s.vault.slots().unwrap());
    assert_eq!(c.settings().unwrap(), s.vault.settings().unwrap());

    c.flush().unwrap();
    let n = c.verify_audit().unwrap();
    // The verification's own record follows the records it verified.
    assert_eq!(n + 1, c.audit_len().unwrap());
    let records = c.audit(0, 10_000).unwrap();
    // The audit read's own record comes after the records it returned.
    assert_eq!(records, s.vault.audit(0, records.len()).unwrap());
    // Each request was recorded under the actor the client named.
    assert!(
        records
            .iter()
            .any(|r| r.actor == "runner" && r.operation == Operation::SecretSet)
    );
    assert!(c.checkpoint().unwrap().seq() > n);
    assert!(matches!(
        c.get("bad_name"),
        Err(Error::InvalidName(
            "a name may hold only 0-9, a-z, A-Z and '-'"
        ))
    ));
    assert_eq!(s.stop(), StopReason::Locked);
}

#[test]
fn oversized_message_refused_before_it_is_read() {
    let mut s = serve(HolderOptions::new());
    let mut raw = UnixStream::connect(&s.socket).unwrap();
    // A 4 GiB frame is announced; the holder answers at once without waiting for (or
    // allocating) its body, and closes the connection.
    raw.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let mut answer = Vec::new();
    raw.read_to_end(&mut answer).unwrap();
    assert!(!answer.is_empty());
    assert!(String::from_utf8_lossy(&answer).contains("over the limit"));
    // The holder serves the next client.
    let c = Client::connect(&s.socket).unwrap();
    c.set("x", "1").unwrap();
    assert_eq!(s.stop(), StopReason::Locked);
}

#[test]
fn a_client_dying_mid_request_leaves_nothing_written() {
    let mut s = serve(HolderOptions::new());
    let before = s.vault.audit_len().unwrap();
    {
        let mut raw = UnixStream::connect(&s.socket).unwrap();
        // A frame of 1,000 bytes announced, version 1, then only part of a set request.
        raw.write_all(&1000u32.to_be_bytes()).unwrap();
        raw.write_all(&1u16.to_be_bytes()).unwrap();
        raw.write_all(&[0, 2, 4]).unwrap();
        raw.write_all(b"half-").unwrap();
        // The client dies: its socket closes.
    }
    let c = Client::connect(&s.socket).unwrap();
    assert!(c.list_all().unwrap().is_empty());
    c.flush().unwrap();
    let records = s.vault.audit(before, 100).unwrap();
    assert!(records.iter().all(|r| r.operation != Operation::SecretSet));
    assert_eq!(s.stop(), StopReason::Locked);
}

#[test]
fn a_frame_of_another_version_is_answered_with_an_error() {
    let mut s = serve(HolderOptions::new());
    let mut raw = UnixStream::connect(&s.socket).unwrap();
    raw.write_all(&3u32.to_be_bytes()).unwrap();
    raw.write_all(&99u16.to_be_bytes()).unwrap();
    raw.write_all(&[0]).unwrap();
    let mut answer = Vec::new();
    raw.read_to_end(&mut answer).unwrap();
    assert!(String::from_utf8_lossy(&answer).contains("protocol version 99"));
    assert_eq!(s.stop(), StopReason::Locked);
}

#[test]
fn a_holder_gone_gives_an_error_naming_the_socket() {
    let mut s = serve(HolderOptions::new());
    let c = Client::connect(&s.socket).unwrap();
    c.set("x", "1").unwrap();
    assert_eq!(s.stop(), StopReason::Locked);
    assert!(!s.socket.exists(), "the socket is removed on lock");
    let err = c.get("x").unwrap_err();
    assert!(matches!(err, Error::Agent { .. }), "{err}");
    assert!(err.to_string().contains(&s.socket.display().to_string()));
    let err = Client::connect(&s.socket).unwrap_err();
    assert!(matches!(err, Error::Agent { .. }), "{err}");
}

#[test]
fn idle_holder_locks_itself() {
    let mut s = serve(HolderOptions::new().idle(Some(Duration::from_millis(300))));
    let c = Client::connect(&s.socket).unwrap();
    assert!(c.status().unwrap().idle_deadline.is_some());
    drop(c);
    let reason = s.thread.take().unwrap().join().unwrap().unwrap();
    assert_eq!(reason, StopReason::Idle);
    assert!(!s.socket.exists());
}

#[test]
fn an_idle_holder_stops_even_when_its_socket_file_was_removed() {
    let mut s = serve(HolderOptions::new().idle(Some(Duration::from_millis(200))));
    std::fs::remove_file(&s.socket).unwrap();
    let reason = s.thread.take().unwrap().join().unwrap().unwrap();
    assert_eq!(reason, StopReason::Idle);
}

#[test]
fn a_second_holder_on_a_live_socket_is_refused_and_a_stale_one_replaced() {
    let mut s = serve(HolderOptions::new());
    let other = Arc::new(
        Vault::create_in_memory(&Credential::generate_key().unwrap(), Options::new()).unwrap(),
    );
    assert!(matches!(
        Holder::bind(&s.socket, other.clone(), HolderOptions::new()),
        Err(Error::Locked)
    ));
    assert_eq!(s.stop(), StopReason::Locked);
    // A socket file that nothing answers on (a killed holder's) is replaced.
    let stale = std::os::unix::net::UnixListener::bind(&s.socket).unwrap();
    drop(stale);
    assert!(s.socket.exists());
    let holder = Holder::bind(&s.socket, other, HolderOptions::new()).unwrap();
    let handle = holder.handle();
    let t = std::thread::spawn(move || holder.serve());
    Client::connect(&s.socket).unwrap().set("x", "1").unwrap();
    handle.stop();
    assert_eq!(t.join().unwrap().unwrap(), StopReason::Stopped);
}

#[test]
fn a_socket_directory_open_to_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let vault = Arc::new(
        Vault::create_in_memory(&Credential::generate_key().unwrap(), Options::new()).unwrap(),
    );
    let err = Holder::bind(open.join("v.sock"), vault, HolderOptions::new())
        .err()
        .unwrap();
    assert!(err.to_string().contains("open to other users"), "{err}");
    assert!(matches!(
        Client::connect(open.join("v.sock")),
        Err(Error::Agent { .. })
    ));
}

/// The environment variable that makes `peer_child` the other user's client.
const CHILD_SOCKET: &str = "TRESOR_AGENT_TEST_CHILD_SOCKET";

/// Runs as another user (started by `another_user_is_refused_and_audited`): connects, reads the
/// holder's answer to the end, and prints how many bytes it got.
#[test]
fn peer_child() {
    let Some(socket) = std::env::var_os(CHILD_SOCKET) else {
        return;
    };
    let mut raw = UnixStream::connect(Path::new(&socket)).unwrap();
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    println!("\nCHILD-GOT {}", answer.len());
}

#[test]
fn another_user_is_refused_and_audited() {
    if rustix_uid() != 0 {
        eprintln!("skipped: running a client as another user needs root (setpriv)");
        return;
    }
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    let mut s = serve(HolderOptions::new());
    // The file modes alone keep other users out; open them so that only the peer check is left.
    let run = s.socket.parent().unwrap();
    std::fs::set_permissions(
        run.parent().unwrap(),
        std::fs::Permissions::from_mode(0o711),
    )
    .unwrap();
    std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&s.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args(["--exact", "peer_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_SOCKET, &s.socket)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("CHILD-GOT"))
        .unwrap_or_else(|| panic!("the child did not run: {stdout}"));
    // It got the refusal and then the end of the connection, and nothing else.
    assert_ne!(line, "CHILD-GOT 0", "{line}");
    let records = s.vault.audit(0, 1000).unwrap();
    let refusal = records
        .iter()
        .find(|r| r.operation == Operation::AgentConnect)
        .expect("the refusal is audited");
    assert_eq!(refusal.actor, "uid:65534");
    assert_eq!(refusal.error.as_deref(), Some("PeerRefused"));
    std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(s.stop(), StopReason::Locked);
}

fn rustix_uid() -> u32 {
    // The owner of a file this process just made is its effective user.
    use std::os::unix::fs::MetadataExt;
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().metadata().unwrap().uid()
}

#[test]
fn a_connection_the_holder_closed_while_idle_is_replaced() {
    let mut s = serve(HolderOptions::new().io_timeout(Duration::from_millis(100)));
    let c = Client::connect(&s.socket).unwrap();
    c.set("x", "1").unwrap();
    // Longer than the holder lets a connection idle: it has closed this one.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(c.get("x").unwrap().expose(), b"1");
    assert_eq!(s.stop(), StopReason::Locked);
}
