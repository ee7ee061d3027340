//! `tresor serve` end to end, without Python: the built binary serves fresh vaults on free
//! loopback ports, and an HTTPS client (hyper over rustls, trusting the generated CA) drives
//! every route of the Azure Key Vault secrets API, the bearer challenge and tokens, bad input,
//! stalled and concurrent clients, the TLS material, and a clean shutdown.

#![cfg(feature = "server")]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc;

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, WWW_AUTHENTICATE};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tresor::{Credential, Operation, Options, Role, SetOptions, Vault};

const API: &str = "api-version=2026-04-01";

/// A fresh vault with owner, writer and reader tokens.
struct Fixture {
    dir: TempDir,
    vault: PathBuf,
    key: PathBuf,
    owner: String,
    writer: String,
    reader: String,
}

fn fixture(options: Options, prepare: impl FnOnce(&Vault)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("v.tresor");
    let key = dir.path().join("k.key");
    let credential = Credential::generate_key().unwrap();
    std::fs::write(&key, credential.key_hex().unwrap().as_bytes()).unwrap();
    // Key files others can read are refused by the command line.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let v = Vault::create(&vault, &credential, options).unwrap();
    let owner = v
        .create_token("owner", Role::Owner)
        .unwrap()
        .expose()
        .to_string();
    let writer = v
        .create_token("writer", Role::Writer)
        .unwrap()
        .expose()
        .to_string();
    let reader = v
        .create_token("reader", Role::Reader)
        .unwrap()
        .expose()
        .to_string();
    prepare(&v);
    drop(v);
    Fixture {
        dir,
        vault,
        key,
        owner,
        writer,
        reader,
    }
}

impl Fixture {
    fn open(&self) -> Vault {
        Vault::open(
            &self.vault,
            &Credential::key_file(&self.key).unwrap(),
            Options::new(),
        )
        .unwrap()
    }

    /// The number of audit records.
    fn open_len(&self) -> u64 {
        self.open().audit_len().unwrap()
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("v.tresor.tls").join("ca.pem")
    }
}

/// A running `tresor serve`; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// The identity endpoint's address, when it listens.
    identity: Option<SocketAddr>,
    stderr: PathBuf,
}

impl Server {
    fn start(f: &Fixture, extra: &[&str]) -> Server {
        Server::start_with(f, "buffered", extra)
    }

    /// With `--audit-reads audit_reads`.
    fn start_with(f: &Fixture, audit_reads: &str, extra: &[&str]) -> Server {
        let stderr = f
            .dir
            .path()
            .join(format!("serve-{}.err", std::process::id()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_tresor"))
            .arg("--vault")
            .arg(&f.vault)
            .arg("--key-file")
            .arg(&f.key)
            .args([
                "--audit-reads",
                audit_reads,
                "serve",
                "--addr",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let first = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "tresor serve did not start: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            });
        let url = first
            .strip_prefix("listening on https://")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        // The rest of the banner, up to its last line.
        let mut identity = None;
        while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) {
            if let Some(rest) = line.strip_prefix("identity endpoint: http://") {
                let addr = rest.split_once("/msi/token").unwrap().0;
                identity = Some(addr.parse().unwrap());
            }
            if line.starts_with("reads audited:") {
                break;
            }
        }
        Server {
            child,
            addr: url.parse().unwrap(),
            identity,
            stderr,
        }
    }

    /// SIGTERM, and the exit status.
    fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn client(&self, ca: &Path) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Client {
            tls: TlsConnector::from(Arc::new(config)),
            addr: self.addr,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
struct Client {
    tls: TlsConnector,
    addr: SocketAddr,
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: HeaderMap,
    json: Value,
}

impl Resp {
    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
    fn inner(&self) -> &str {
        self.json["error"]["innererror"]["code"]
            .as_str()
            .unwrap_or("")
    }
}

impl Client {
    async fn tls_stream(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let name = ServerName::IpAddress(self.addr.ip().into());
        self.tls.connect(name, tcp).await.unwrap()
    }

    async fn send(&self, method: &str, target: &str, token: Option<&str>, body: &[u8]) -> Resp {
        let stream = self.tls_stream().await;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(target)
            .header(HOST, self.addr.to_string())
            .header(CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = sender
            .send_request(req.body(Full::new(Bytes::copy_from_slice(body))).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Resp {
            status,
            headers,
            json,
        }
    }

    async fn get(&self, target: &str, token: &str) -> Resp {
        self.send("GET", target, Some(token), b"").await
    }

    async fn put(&self, target: &str, token: &str, body: &Value) -> Resp {
        self.send("PUT", target, Some(token), body.to_string().as_bytes())
            .await
    }

    /// Follows `nextLink`s (absolute, on this server) from `first`; returns every item and the
    /// number of pages.
    async fn all_pages(&self, first: &str, token: &str) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut pages = 0;
        let mut target = first.to_string();
        loop {
            let r = self.get(&target, token).await;
            assert_eq!(r.status, 200, "{target}: {:?}", r.json);
            pages += 1;
            items.extend(r.json["value"].as_array().unwrap().iter().cloned());
            match r.json["nextLink"].as_str() {
                Some(next) => {
                    let prefix = format!("https://{}/", self.addr);
                    assert!(next.starts_with(&prefix), "nextLink {next} is not absolute");
                    target = next[prefix.len() - 1..].to_string();
                }
                None => return (items, pages),
            }
        }
    }
}

fn id_tail(v: &Value) -> &str {
    v["id"].as_str().unwrap().rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_secrets_api() {
    let f = fixture(Options::new().retention_days(30), |_| {});
    let server = Server::start(&f, &[]);
    let c = server.client(&f.ca());
    let base = format!("https://{}", server.addr);
    let o = f.owner.as_str();

    // Set with tags, content type and attributes.
    let set = c
        .put(
            &format!("/secrets/db-pass?{API}"),
            o,
            &json!({"value": "hunter2", "tags": {"env": "dev"}, "contentType": "text/plain",
                    "attributes": {"nbf": 1_700_000_000, "exp": 4_000_000_000u64}}),
        )
        .await;
    assert_eq!(set.status, 200, "{:?}", set.json);
    let v1 = id_tail(&set.json).to_string();
    assert_eq!(v1.len(), 32);
    assert_eq!(set.json["id"], format!("{base}/secrets/db-pass/{v1}"));
    assert_eq!(set.json["value"], "hunter2");
    assert_eq!(set.json["contentType"], "text/plain");
    assert_eq!(set.json["tags"], json!({"env": "dev"}));
    let attrs = &set.json["attributes"];
    assert_eq!(attrs["enabled"], true);
    assert_eq!(attrs["nbf"], 1_700_000_000);
    assert_eq!(attrs["exp"], 4_000_000_000u64);
    assert!(attrs["created"].is_i64() && attrs["updated"].is_i64());
    assert_eq!(attrs["recoveryLevel"], "CustomizedRecoverable+Purgeable");
    assert_eq!(attrs["recoverableDays"], 30);
    assert_eq!(
        set.headers.get("cache-control").unwrap(),
        "no-store",
        "bodies with values are not cached"
    );

    let set2 = c
        .put(
            &format!("/secrets/DB-pass?{API}"),
            o,
            &json!({"value": "s3cret"}),
        )
        .await;
    let v2 = id_tail(&set2.json).to_string();
    // Names compare case-insensitively and keep the case they were created with.
    assert_eq!(set2.json["id"], format!("{base}/secrets/db-pass/{v2}"));

    // Get latest (with and without the trailing slash) and by version.
    for path in ["/secrets/db-pass/", "/secrets/db-pass"] {
        let g = c.get(&format!("{path}?{API}"), &f.reader).await;
        assert_eq!((g.status, g.json["value"].as_str()), (200, Some("s3cret")));
    }
    let g = c
        .get(&format!("/secrets/db-pass/{v1}?api-version=7.0"), &f.reader)
        .await;
    assert_eq!(g.json["value"], "hunter2");
    assert_eq!(g.json["tags"], json!({"env": "dev"}));
    let missing = c
        .get(&format!("/secrets/db-pass/{}?{API}", "0".repeat(32)), o)
        .await;
    assert_eq!((missing.status, missing.code()), (404, "SecretNotFound"));
    let bad_version = c
        .get(&format!("/secrets/db-pass/not-a-version?{API}"), o)
        .await;
    assert_eq!(bad_version.status, 404);

    // Update the latest version and an older one: no value in the answer.
    let up = c
        .send(
            "PATCH",
            &format!("/secrets/db-pass/?{API}"),
            Some(&f.writer),
            br#"{"contentType":"application/json","tags":{"team":"pay"}}"#,
        )
        .await;
    assert_eq!(up.status, 200, "{:?}", up.json);
    assert!(up.json.get("value").is_none());
    assert_eq!(up.json["contentType"], "application/json");
    let up_old = c
        .send(
            "PATCH",
            &format!("/secrets/db-pass/{v1}?{API}"),
            Some(o),
            br#"{"attributes":{"exp":null}}"#,
        )
        .await;
    assert!(up_old.json["attributes"].get("exp").is_none());
    assert_eq!(id_tail(&up_old.json), v1);

    // Versions, newest first, in pages.
    for i in 0..5 {
        c.put(
            &format!("/secrets/db-pass?{API}"),
            o,
            &json!({"value": format!("v{i}")}),
        )
        .await;
    }
    let (versions, pages) = c
        .all_pages(&format!("/secrets/db-pass/versions?{API}&maxresults=3"), o)
        .await;
    assert_eq!((versions.len(), pages), (7, 3));
    assert!(versions.iter().all(|v| v.get("value").is_none()));
    assert_eq!(id_tail(&versions[6]), v1);
    assert_eq!(id_tail(&versions[5]), v2);
    let none = c
        .get(&format!("/secrets/nothing-here/versions?{API}"), o)
        .await;
    assert_eq!(
        (none.status, none.json["value"].as_array().unwrap().len()),
        (200, 0)
    );

    // List secrets in pages: ids without versions, no values.
    for i in 0..6 {
        c.put(
            &format!("/secrets/item-{i}?{API}"),
            o,
            &json!({"value": "x"}),
        )
        .await;
    }
    let (items, pages) = c
        .all_pages(&format!("/secrets?{API}&maxresults=2"), o)
        .await;
    assert_eq!((items.len(), pages), (7, 4));
    assert!(items.iter().all(|i| i.get("value").is_none()));
    assert!(
        items
            .iter()
            .any(|i| i["id"] == format!("{base}/secrets/item-3"))
    );
    let (all, _) = c.all_pages(&format!("/secrets?{API}"), o).await;
    assert_eq!(all.len(), 7);

    // Delete: the deleted bundle, then the name is reserved.
    let del = c
        .send(
            "DELETE",
            &format!("/secrets/item-0?{API}"),
            Some(&f.writer),
            b"",
        )
        .await;
    assert_eq!(del.status, 200, "{:?}", del.json);
    assert_eq!(
        del.json["recoveryId"],
        format!("{base}/deletedsecrets/item-0")
    );
    let deleted_on = del.json["deletedDate"].as_i64().unwrap();
    assert_eq!(
        del.json["scheduledPurgeDate"].as_i64().unwrap(),
        deleted_on + 30 * 86_400
    );
    let gone = c.get(&format!("/secrets/item-0/?{API}"), o).await;
    assert_eq!((gone.status, gone.code()), (404, "SecretNotFound"));
    let reuse = c
        .put(&format!("/secrets/item-0?{API}"), o, &json!({"value": "y"}))
        .await;
    assert_eq!(
        (reuse.status, reuse.code(), reuse.inner()),
        (409, "Conflict", "ObjectIsDeletedButRecoverable")
    );
    let gd = c
        .get(&format!("/deletedsecrets/item-0?{API}"), &f.reader)
        .await;
    assert_eq!(
        (gd.status, gd.json["deletedDate"].as_i64()),
        (200, Some(deleted_on))
    );
    c.send("DELETE", &format!("/secrets/item-1?{API}"), Some(o), b"")
        .await;
    let (deleted, pages) = c
        .all_pages(&format!("/deletedsecrets?{API}&maxresults=1"), o)
        .await;
    assert_eq!((deleted.len(), pages), (2, 2));
    assert!(deleted.iter().all(|d| d["recoveryId"].is_string()));

    // Recover one, purge the other (204), and the purged name is free again.
    let rec = c
        .send(
            "POST",
            &format!("/deletedsecrets/item-0/recover?{API}"),
            Some(&f.writer),
            b"",
        )
        .await;
    assert_eq!(rec.status, 200, "{:?}", rec.json);
    assert_eq!(
        c.get(&format!("/secrets/item-0/?{API}"), o).await.json["value"],
        "x"
    );
    let purge = c
        .send(
            "DELETE",
            &format!("/deletedsecrets/item-1?{API}"),
            Some(o),
            b"",
        )
        .await;
    assert_eq!((purge.status, purge.json.clone()), (204, Value::Null));
    let purged = c.get(&format!("/deletedsecrets/item-1?{API}"), o).await;
    assert_eq!((purged.status, purged.code()), (404, "SecretNotFound"));
    assert_eq!(
        c.put(
            &format!("/secrets/item-1?{API}"),
            o,
            &json!({"value": "new"})
        )
        .await
        .status,
        200
    );

    // Backup and restore (base64url), refused while the name exists.
    let backup = c
        .send(
            "POST",
            &format!("/secrets/db-pass/backup?{API}"),
            Some(o),
            b"",
        )
        .await;
    assert_eq!(backup.status, 200);
    let blob = backup.json["value"].as_str().unwrap().to_string();
    assert!(!blob.contains(['=', '+', '/']));
    let restore_body = json!({"value": blob}).to_string();
    let clash = c
        .send(
            "POST",
            &format!("/secrets/restore?{API}"),
            Some(o),
            restore_body.as_bytes(),
        )
        .await;
    assert_eq!(clash.status, 409);
    c.send("DELETE", &format!("/secrets/db-pass?{API}"), Some(o), b"")
        .await;
    c.send(
        "DELETE",
        &format!("/deletedsecrets/db-pass?{API}"),
        Some(o),
        b"",
    )
    .await;
    let restored = c
        .send(
            "POST",
            &format!("/secrets/restore?{API}"),
            Some(o),
            restore_body.as_bytes(),
        )
        .await;
    assert_eq!(restored.status, 200, "{:?}", restored.json);
    assert!(restored.json.get("value").is_none());
    assert_eq!(
        c.get(&format!("/secrets/db-pass/{v1}?{API}"), o).await.json["value"],
        "hunter2"
    );
    let tampered = json!({"value": format!("{}AA", &blob[..blob.len() - 4])}).to_string();
    let bad = c
        .send(
            "POST",
            &format!("/secrets/restore?{API}"),
            Some(o),
            tampered.as_bytes(),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "BadParameter"));

    // A disabled version: 403 with SecretDisabled; its properties still list.
    c.send(
        "PATCH",
        &format!("/secrets/item-2/?{API}"),
        Some(o),
        br#"{"attributes":{"enabled":false}}"#,
    )
    .await;
    let disabled = c.get(&format!("/secrets/item-2/?{API}"), o).await;
    assert_eq!(
        (disabled.status, disabled.code(), disabled.inner()),
        (403, "Forbidden", "SecretDisabled")
    );
    assert_eq!(
        disabled.json["error"]["message"],
        "Operation get is not allowed on a disabled secret."
    );
    let listed = c.get(&format!("/secrets/item-2/versions?{API}"), o).await;
    assert_eq!(listed.json["value"][0]["attributes"]["enabled"], false);

    assert!(server.stop().success());
    let v = f.open();
    v.verify_audit().unwrap();
    assert_eq!(v.get("item-1").unwrap().expose(), b"new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_challenge_tokens_and_roles() {
    let f = fixture(Options::new(), |v| {
        v.set("shared", "s").unwrap();
    });
    let server = Server::start(&f, &[]);
    let c = server.client(&f.ca());
    let target = format!("/secrets/shared/?{API}");

    // No token: 401 with the challenge the Azure SDKs expect, whatever the path.
    for path in [target.as_str(), "/secrets", "/nowhere"] {
        let r = c.send("GET", path, None, b"").await;
        assert_eq!((r.status, r.code()), (401, "Unauthorized"), "{path}");
        let challenge = r.headers.get(WWW_AUTHENTICATE).unwrap().to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer authorization=\"https://login.microsoftonline.com/"),
            "{challenge}"
        );
        assert!(challenge.ends_with("\", resource=\"https://vault.azure.net\""));
    }
    // Not a bearer token, or an unknown one: 401, nothing done.
    let no_token = c
        .send(
            "PUT",
            &format!("/secrets/x?{API}"),
            None,
            br#"{"value":"v"}"#,
        )
        .await;
    assert_eq!(no_token.status, 401);
    let unknown = "tresor_".to_string() + &"ab".repeat(32);
    let r = c
        .put(
            &format!("/secrets/x?{API}"),
            &unknown,
            &json!({"value": "v"}),
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(r.headers.contains_key(WWW_AUTHENTICATE));

    // A reader reads and may not write: 403, nothing written.
    assert_eq!(c.get(&target, &f.reader).await.json["value"], "s");
    let r = c
        .put(
            &format!("/secrets/x?{API}"),
            &f.reader,
            &json!({"value": "v"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code(), r.inner()),
        (403, "Forbidden", "ForbiddenByRbac")
    );
    let r = c
        .send(
            "DELETE",
            &format!("/secrets/shared?{API}"),
            Some(&f.reader),
            b"",
        )
        .await;
    assert_eq!(r.status, 403);
    // A writer writes and deletes, but may not purge.
    assert_eq!(
        c.put(
            &format!("/secrets/w?{API}"),
            &f.writer,
            &json!({"value": "v"})
        )
        .await
        .status,
        200
    );
    c.send("DELETE", &format!("/secrets/w?{API}"), Some(&f.writer), b"")
        .await;
    let r = c
        .send(
            "DELETE",
            &format!("/deletedsecrets/w?{API}"),
            Some(&f.writer),
            b"",
        )
        .await;
    assert_eq!(r.status, 403);

    assert!(server.stop().success());
    let v = f.open();
    assert!(matches!(v.get("x"), Err(tresor::Error::NotFound)));
    let log = v.audit(0, 10_000).unwrap();
    let has = |actor: &str, op: Operation, err: Option<&str>| {
        log.iter()
            .any(|r| r.actor == actor && r.operation == op && r.error.as_deref() == err)
    };
    assert!(has("token:reader", Operation::SecretGet, None));
    assert!(has("token:reader", Operation::SecretSet, Some("Forbidden")));
    assert!(has("token:writer", Operation::SecretSet, None));
    assert!(has(
        "token:writer",
        Operation::SecretPurge,
        Some("Forbidden")
    ));
    assert!(
        log.iter()
            .any(|r| r.operation == Operation::TokenAuthenticate
                && r.error.as_deref() == Some("WrongKey"))
    );
    // Tokens never reach the audit log.
    for r in &log {
        for t in [&f.owner, &f.writer, &f.reader, &unknown] {
            assert!(!r.actor.contains(t.as_str()) && r.name.as_deref() != Some(t.as_str()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_azure_errors_and_writes_nothing() {
    let f = fixture(Options::new(), |_| {});
    let server = Server::start(&f, &["--max-body", "4096"]);
    let c = server.client(&f.ca());
    let o = f.owner.as_str();
    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        (
            "PUT",
            format!("/secrets/a?{API}"),
            b"{\"value\":".to_vec(),
            400,
            "BadParameter",
        ),
        (
            "PUT",
            format!("/secrets/a?{API}"),
            b"[1,2]".to_vec(),
            400,
            "BadParameter",
        ),
        (
            "PUT",
            format!("/secrets/a?{API}"),
            br#"{"tags":{}}"#.to_vec(),
            400,
            "BadParameter",
        ),
        (
            "PUT",
            format!("/secrets/a?{API}"),
            br#"{"value":7}"#.to_vec(),
            400,
            "BadParameter",
        ),
        (
            "PUT",
            format!("/secrets/a?{API}"),
            vec![0xff, 0xfe],
            400,
            "BadParameter",
        ),
        (
            "PUT",
            format!("/secrets/a?{API}"),
            format!(r#"{{"value":"{}"}}"#, "x".repeat(5000)).into_bytes(),
            413,
            "RequestBodyTooLarge",
        ),
        (
            "PUT",
            format!("/secrets/a?{API}"),
            br#"{"value":"v","tags":{"":"empty name"}}"#.to_vec(),
            400,
            "BadParameter",
        ),
        (
            "PUT",
            format!("/secrets/bad_name?{API}"),
            br#"{"value":"v"}"#.to_vec(),
            400,
            "BadParameter",
        ),
        (
            "PUT",
            format!("/secrets/{}?{API}", "n".repeat(128)),
            br#"{"value":"v"}"#.to_vec(),
            400,
            "BadParameter",
        ),
        (
            "GET",
            format!("/secrets/bad.name/?{API}"),
            vec![],
            400,
            "BadParameter",
        ),
        (
            "PUT",
            "/secrets/a".to_string(),
            br#"{"value":"v"}"#.to_vec(),
            400,
            "BadParameter",
        ),
        (
            "PUT",
            "/secrets/a?api-version=6.0".to_string(),
            br#"{"value":"v"}"#.to_vec(),
            400,
            "BadParameter",
        ),
        ("GET", format!("/keys/a?{API}"), vec![], 404, "NotFound"),
        (
            "GET",
            format!("/secrets/a/b/c/d?{API}"),
            vec![],
            404,
            "NotFound",
        ),
        (
            "POST",
            format!("/secrets?{API}"),
            vec![],
            405,
            "MethodNotAllowed",
        ),
        (
            "GET",
            format!("/secrets?{API}&maxresults=26"),
            vec![],
            400,
            "BadParameter",
        ),
        (
            "GET",
            format!("/secrets?{API}&maxresults=0"),
            vec![],
            400,
            "BadParameter",
        ),
        (
            "GET",
            format!("/secrets?{API}&$skiptoken=zz"),
            vec![],
            400,
            "BadParameter",
        ),
        (
            "GET",
            format!("/secrets/a/versions?{API}&$skiptoken=x"),
            vec![],
            400,
            "BadParameter",
        ),
        (
            "GET",
            format!("/secrets/%ZZ?{API}"),
            vec![],
            400,
            "BadParameter",
        ),
        (
            "POST",
            format!("/secrets/restore?{API}"),
            br#"{"value":"!!"}"#.to_vec(),
            400,
            "BadParameter",
        ),
        (
            "POST",
            format!("/secrets/restore?{API}"),
            br#"{"value":"AAAA"}"#.to_vec(),
            400,
            "BadParameter",
        ),
        (
            "PATCH",
            format!("/secrets/a/?{API}"),
            br#"{"attributes":{"enabled":"no"}}"#.to_vec(),
            400,
            "BadParameter",
        ),
    ];
    for (method, target, body, status, code) in &cases {
        let r = c.send(method, target, Some(o), body).await;
        assert_eq!(
            (r.status, r.code()),
            (*status, *code),
            "{method} {target}: {:?}",
            r.json
        );
        assert!(r.json["error"]["message"].is_string());
    }
    // A request head that is not HTTP, and bytes that are not TLS: the connection ends, the
    // server goes on.
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    drop(raw);
    let mut tls = c.tls_stream().await;
    tls.write_all(b"\x00\x01 not http at all\r\n\r\n")
        .await
        .unwrap();
    drop(tls);
    // A request head over the limit: 431, and the server goes on.
    let mut big = c.tls_stream().await;
    let head = format!(
        "GET /secrets?{API}&pad={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "x".repeat(40 * 1024)
    );
    big.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = big.read_to_end(&mut answer).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let list = c.get(&format!("/secrets?{API}"), o).await;
    assert_eq!(
        (list.status, list.json["value"].as_array().unwrap().len()),
        (200, 0)
    );
    assert!(server.stop().success());
    let v = f.open();
    assert!(v.list_all().unwrap().is_empty());
    assert!(v.list_deleted(None, 10).unwrap().items.is_empty());
    v.verify_audit().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_refused_under_purge_protection() {
    let f = fixture(Options::new().purge_protection(true), |v| {
        v.set("kept", "k").unwrap();
    });
    let server = Server::start(&f, &[]);
    let c = server.client(&f.ca());
    let o = f.owner.as_str();
    let del = c
        .send("DELETE", &format!("/secrets/kept?{API}"), Some(o), b"")
        .await;
    assert_eq!(del.json["attributes"]["recoveryLevel"], "Recoverable");
    let r = c
        .send(
            "DELETE",
            &format!("/deletedsecrets/kept?{API}"),
            Some(o),
            b"",
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "Forbidden"));
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("purge protection is enabled")
    );
    assert_eq!(
        c.get(&format!("/deletedsecrets/kept?{API}"), o)
            .await
            .status,
        200
    );
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_do_not_hold_up_concurrent_ones() {
    let f = fixture(Options::new(), |v| {
        for i in 0..8 {
            v.set(&format!("s-{i}"), format!("value-{i}")).unwrap();
        }
    });
    let server = Server::start(&f, &[]);
    let c = server.client(&f.ca());
    // Connections that never finish a TLS handshake, and one that never finishes its head.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        stalled.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let mut half = c.tls_stream().await;
    half.write_all(b"GET /secrets?api-version=7.4 HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut slow_body = c.tls_stream().await;
    slow_body
        .write_all(
            format!(
                "PUT /secrets/slow?{API} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Length: 100\r\n\r\n{{\"value\":",
                f.owner
            )
            .as_bytes(),
        )
        .await
        .unwrap();

    // Meanwhile, many clients at once: reads in parallel, and writes.
    let mut tasks = Vec::new();
    for t in 0..16 {
        let c = c.clone();
        let reader = f.reader.clone();
        let writer = f.writer.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let n = (t + i) % 8;
                let r = c.get(&format!("/secrets/s-{n}/?{API}"), &reader).await;
                assert_eq!(r.status, 200);
                assert_eq!(r.json["value"], format!("value-{n}"));
            }
            let r = c
                .put(
                    &format!("/secrets/w-{t}?{API}"),
                    &writer,
                    &json!({"value": format!("{t}")}),
                )
                .await;
            assert_eq!(r.status, 200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop((stalled, half, slow_body));
    assert!(server.stop().success());
    let v = f.open();
    for t in 0..16 {
        assert_eq!(
            v.get(&format!("w-{t}")).unwrap().expose_str(),
            Some(t.to_string().as_str())
        );
    }
    assert!(matches!(v.get("slow"), Err(tresor::Error::NotFound)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_commits_buffered_audit_records() {
    let f = fixture(Options::new(), |v| {
        v.set("read-me", "r").unwrap();
    });
    let server = Server::start(&f, &[]);
    let c = server.client(&f.ca());
    for _ in 0..3 {
        assert_eq!(
            c.get(&format!("/secrets/read-me/?{API}"), &f.reader)
                .await
                .status,
            200
        );
    }
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    let v = f.open();
    v.verify_audit().unwrap();
    let reads = v
        .audit(0, 10_000)
        .unwrap()
        .into_iter()
        .filter(|r| r.actor == "token:reader" && r.operation == Operation::SecretGet)
        .count();
    assert_eq!(reads, 3, "buffered reads are committed at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_material_is_reused_and_an_own_certificate_can_be_served() {
    let f = fixture(Options::new(), |_| {});
    let server = Server::start(&f, &[]);
    let tls_dir = f.dir.path().join("v.tresor.tls");
    let ca = std::fs::read(f.ca()).unwrap();
    let served = std::fs::read(tls_dir.join("server.pem")).unwrap();
    let text = String::from_utf8(served.clone()).unwrap();
    assert!(text.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        server
            .client(&f.ca())
            .get(&format!("/secrets?{API}"), &f.owner)
            .await
            .status,
        200
    );
    assert!(server.stop().success());

    // A second start reuses the CA and certificate: the same CA file still works.
    let again = Server::start(&f, &[]);
    assert_eq!(std::fs::read(f.ca()).unwrap(), ca);
    assert_eq!(std::fs::read(tls_dir.join("server.pem")).unwrap(), served);
    assert_eq!(
        again
            .client(&f.ca())
            .get(&format!("/secrets?{API}"), &f.owner)
            .await
            .status,
        200
    );
    assert!(again.stop().success());

    // --cert/--key: a certificate of one's own (here a copy of the generated one).
    let own = f.dir.path().join("own");
    std::fs::create_dir(&own).unwrap();
    std::fs::copy(tls_dir.join("server.pem"), own.join("c.pem")).unwrap();
    std::fs::copy(tls_dir.join("server-key.pem"), own.join("k.pem")).unwrap();
    std::fs::remove_dir_all(&tls_dir).unwrap();
    let cert = own.join("c.pem");
    let key = own.join("k.pem");
    let byo = Server::start(
        &f,
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert!(!tls_dir.exists(), "nothing is generated with --cert");
    let ca_copy = own.join("ca.pem");
    std::fs::write(&ca_copy, &ca).unwrap();
    assert_eq!(
        byo.client(&ca_copy)
            .get(&format!("/secrets?{API}"), &f.owner)
            .await
            .status,
        200
    );
    assert!(byo.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_are_not_text_are_refused_not_altered() {
    let f = fixture(Options::new(), |v| {
        v.set_with("blob", [0xffu8, 0x00, 0xfe], &SetOptions::new())
            .unwrap();
    });
    let server = Server::start(&f, &[]);
    let c = server.client(&f.ca());
    let r = c.get(&format!("/secrets/blob/?{API}"), &f.owner).await;
    assert_eq!((r.status, r.inner()), (400, "SecretValueNotText"));
    let list = c.get(&format!("/secrets?{API}"), &f.owner).await;
    assert_eq!(list.json["value"].as_array().unwrap().len(), 1);
    assert!(server.stop().success());
    assert_eq!(f.open().get("blob").unwrap().expose(), [0xff, 0x00, 0xfe]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_any_token_is_loud() {
    let f = fixture(Options::new(), |_| {});
    let server = Server::start(&f, &["--allow-any-token"]);
    assert!(server.stderr().contains("WARNING: --allow-any-token"));
    let c = server.client(&f.ca());
    let r = c
        .put(
            &format!("/secrets/dev?{API}"),
            "anything-at-all",
            &json!({"value": "d"}),
        )
        .await;
    assert_eq!(r.status, 200);
    // Still no token at all is a 401.
    assert_eq!(
        c.send("GET", &format!("/secrets?{API}"), None, b"")
            .await
            .status,
        401
    );
    assert!(server.stop().success());
    let log = f.open().audit(0, 10_000).unwrap();
    assert!(
        log.iter()
            .any(|r| r.actor.starts_with("any-token") && r.operation == Operation::SecretSet)
    );
}

/// `tresor token create|list|revoke` through the binary.
#[test]
fn token_commands() {
    let f = fixture(Options::new(), |_| {});
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tresor"))
            .arg("--vault")
            .arg(&f.vault)
            .arg("--key-file")
            .arg(&f.key)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (ok, token, err) = run(&["token", "create", "--role", "writer", "--label", "ci-job"]);
    assert!(ok, "{err}");
    let token = token.trim();
    assert!(token.starts_with("tresor_") && token.len() == 71);
    assert!(err.contains("ci-job") && !err.contains(token));
    let (ok, auto, _) = run(&["token", "create", "--role", "reader"]);
    assert!(ok);
    let (ok, dup, err) = run(&["token", "create", "--role", "reader", "--label", "ci-job"]);
    assert!(!ok && dup.is_empty() && err.contains("exists"), "{err}");
    let (ok, list, _) = run(&["token", "list", "--json"]);
    assert!(ok);
    let list: Value = serde_json::from_str(&list).unwrap();
    let mut labels: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["label"].as_str().unwrap().to_string())
        .collect();
    labels.sort();
    assert_eq!(labels, ["ci-job", "owner", "reader", "reader-1", "writer"]);
    assert!(!list.to_string().contains(token) && !list.to_string().contains(auto.trim()));
    let (ok, table, _) = run(&["token", "list"]);
    assert!(ok && table.contains("ci-job") && table.contains("writer"));
    let (ok, _, err) = run(&["token", "revoke", "ci-job"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["token", "revoke", "ci-job"]);
    assert!(!ok && err.contains("not found"));
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "reader-1")
        .unwrap()["id"]
        .as_str()
        .unwrap();
    assert!(run(&["token", "revoke", id]).0);
    let v = f.open();
    assert!(v.token_identity(token).unwrap().is_none());
    assert_eq!(v.list_tokens().unwrap().len(), 3);
}

/// Occurrences of each of `needles` in the writable memory of process `pid` (heap, stacks,
/// anonymous mappings), read through `/proc/<pid>/mem`; `None` when the kernel refuses the read.
#[cfg(target_os = "linux")]
fn copies_in_memory(pid: u32, needles: &[&[u8]]) -> Option<Vec<usize>> {
    use std::os::unix::fs::FileExt;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let longest = needles.iter().map(|n| n.len()).max().unwrap_or(1);
    let mut counts = vec![0; needles.len()];
    let mut read_any = false;
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (range, perms) = (fields[0], fields[1]);
        let path = fields.get(5).copied().unwrap_or("");
        if !perms.starts_with("rw") || path.starts_with("[v") {
            continue;
        }
        let (lo, hi) = range.split_once('-').unwrap();
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).unwrap(),
            u64::from_str_radix(hi, 16).unwrap(),
        );
        // Chunks overlapping by one needle less one byte: no occurrence is missed or counted twice.
        let mut buf = Vec::new();
        let mut at = lo;
        while at < hi {
            let len = (hi - at).min(1 << 22) as usize;
            let keep = buf.len().min(longest - 1);
            buf.drain(..buf.len() - keep);
            let start = buf.len();
            buf.resize(start + len, 0);
            match mem.read_at(&mut buf[start..], at) {
                Ok(n) if n > 0 => {
                    read_any = true;
                    buf.truncate(start + n);
                    at += n as u64;
                }
                _ => break,
            }
            for (i, needle) in needles.iter().enumerate() {
                counts[i] += buf.windows(needle.len()).filter(|w| w == needle).count();
            }
        }
    }
    read_any.then_some(counts)
}

/// Secret values and tokens do not linger in the server's memory once requests are answered:
/// bodies, parsed values, serialized responses and the token's copies are wiped. The server
/// also turns core dumps off.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_tokens_are_wiped_from_server_memory() {
    let f = fixture(Options::new(), |_| {});
    let server = Server::start(&f, &[]);
    let pid = server.child.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .split_whitespace()
        .skip(4)
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(core, ["0", "0"], "core dumps are off: {limits}");
    // `Dumpable` is not in every kernel's status; where it is, it reads 0.
    if let Some(d) = status.lines().find(|l| l.starts_with("Dumpable:")) {
        assert!(d.ends_with('0'), "{d}");
    }
    // Memory is locked where the server may lock without limit (CAP_IPC_LOCK, as this test's
    // own process has it when it runs as root outside a container).
    let field = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_string())
    };
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let may_lock = field(&own, "CapEff:")
        .and_then(|c| u64::from_str_radix(&c, 16).ok())
        .is_some_and(|c| c & (1 << 14) != 0);
    if may_lock {
        assert_ne!(
            field(&status, "VmLck:").as_deref(),
            Some("0 kB"),
            "{status}"
        );
    } else {
        eprintln!("skipped the mlock check: this process lacks CAP_IPC_LOCK");
    }
    let c = server.client(&f.ca());
    let marker: String = format!("MARKER{}", "9f3c1a7e".repeat(6));
    for i in 0..3 {
        let r = c
            .put(
                &format!("/secrets/m-{i}?{API}"),
                &f.writer,
                &json!({ "value": marker }),
            )
            .await;
        assert_eq!(r.status, 200);
        for _ in 0..2 {
            let r = c.get(&format!("/secrets/m-{i}/?{API}"), &f.reader).await;
            assert_eq!(r.json["value"], marker.as_str());
        }
    }
    // Let the server close the connections the client has dropped.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let Some(counts) = copies_in_memory(pid, &[marker.as_bytes(), f.reader.as_bytes()]) else {
        eprintln!("skipped the memory scan: /proc/{pid}/mem cannot be read by this user");
        return;
    };
    eprintln!(
        "copies left in the server's memory after 9 requests: value {}, reader token {}",
        counts[0], counts[1]
    );
    // Before the values were wiped, 12 to 14 copies of the value were left (request and
    // response bodies, JSON values). What remains is in hyper's and rustls's buffers, freed
    // without being wiped (see docs/SECURITY.md).
    assert!(counts[0] <= 8, "{} copies of the value", counts[0]);
    assert!(server.stop().success());
}

/// Requests with unknown tokens cost no commit: they are refused in memory, counted per source
/// address, and recorded as one refused `TokenAuthenticate` per source and minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tokens_do_not_grow_the_vault() {
    const N: usize = 1000;
    let f = fixture(Options::new(), |_| {});
    // Durable read auditing: before, every refusal was a commit of its own.
    let before_len = f.open_len();
    let server = Server::start_with(&f, "durable", &[]);
    let size_before = std::fs::metadata(&f.vault).unwrap().len();
    let c = server.client(&f.ca());
    let mut tasks = Vec::new();
    for t in 0..4 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            // One connection, many requests: the refusals come fast.
            let stream = c.tls_stream().await;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            for i in 0..N / 4 {
                let req = Request::builder()
                    .uri(format!("/secrets?{API}"))
                    .header(HOST, c.addr.to_string())
                    .header(AUTHORIZATION, format!("Bearer tresor_{t}{i:063x}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let r = sender.send_request(req).await.unwrap();
                assert_eq!(r.status(), 401);
                let _ = r.into_body().collect().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // A real token still works.
    assert_eq!(
        c.get(&format!("/secrets?{API}"), &f.reader).await.status,
        200
    );
    let size_during = std::fs::metadata(&f.vault).unwrap().len();
    assert!(server.stop().success());
    let size_after = std::fs::metadata(&f.vault).unwrap().len();
    eprintln!(
        "vault file: {size_before} bytes before {N} unknown tokens, {size_during} while serving, \
         {size_after} after the stop"
    );
    assert!(
        size_after <= size_before + 64 * 1024,
        "{size_before} -> {size_after} bytes"
    );
    let v = f.open();
    v.verify_audit().unwrap();
    let log = v.audit(before_len, 100_000).unwrap();
    let refusals: Vec<_> = log
        .iter()
        .filter(|r| r.operation == Operation::TokenAuthenticate)
        .collect();
    // The server's open, its token listing and the reader's listing, and the refusals' one.
    assert!(
        log.len() <= 8,
        "{} records for {N} refused requests: {log:?}",
        log.len()
    );
    // Still recorded: one record, naming the source and the count, never a token.
    assert_eq!(refusals.len(), 1, "{log:?}");
    assert!(refusals[0].error.is_some());
    assert!(
        refusals[0]
            .actor
            .starts_with(&format!("refused tokens from 127.0.0.1: {N} since ")),
        "{}",
        refusals[0].actor
    );
    assert!(!log.iter().any(|r| r.actor.contains("tresor_")));
}

/// Sockets that never start a TLS handshake do not count against `--max-connections`: a real
/// client is answered while as many idle sockets as the cap (and more) are still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_do_not_hold_the_connection_cap() {
    let f = fixture(Options::new(), |_| {});
    let server = Server::start(&f, &["--max-connections", "4"]);
    let c = server.client(&f.ca());
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // They send nothing. Now a real client, with a generous overall timeout: a server whose
    // cap they held would answer it only after closing them at their handshake deadline.
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        c.get(&format!("/secrets?{API}"), &f.reader),
    )
    .await
    .expect("answered");
    assert_eq!(answered.status, 200);
    // It was answered while every idle socket was still open: the server did not have to close
    // any of them (at their handshake deadline) to make room.
    let mut still_open = 0;
    for s in &idle {
        let mut buf = [0u8; 1];
        if let Err(e) = s.try_read(&mut buf)
            && e.kind() == std::io::ErrorKind::WouldBlock
        {
            still_open += 1;
        }
    }
    eprintln!("{still_open} of 8 idle sockets still open when the client was answered");
    assert_eq!(
        still_open, 8,
        "the client was answered only after idle sockets were closed"
    );
    drop(idle);
    assert!(server.stop().success());
}

/// The certificate of `name` signed by the CA in `ca_pem` with its key `ca_key_pem`, and what
/// a client trusting that CA (rustls's own verifier) says of it.
fn verify_signed_by_ca(ca_pem: &str, ca_key_pem: &str, name: &str) -> Result<(), rustls::Error> {
    use rustls::client::danger::ServerCertVerifier;
    let ca_key = rcgen::KeyPair::from_pem(ca_key_pem).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca_pem, ca_key).unwrap();
    let mut p = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    p.is_ca = rcgen::IsCa::ExplicitNoCa;
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = p
        .signed_by(&rcgen::KeyPair::generate().unwrap(), &issuer)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    verifier
        .verify_server_cert(
            leaf.der(),
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            rustls::pki_types::UnixTime::now(),
        )
        .map(|_| ())
}

/// The generated CA can sign for local names only (X.509 name constraints), lives 90 days, and
/// its key is dropped once the server certificate is signed unless `--keep-ca-key` is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_ca_is_name_constrained_short_lived_and_keyless() {
    use x509_parser::extensions::GeneralName;
    let f = fixture(Options::new(), |_| {});
    let tls_dir = f.dir.path().join("v.tresor.tls");
    let server = Server::start(&f, &[]);
    assert!(
        !tls_dir.join("ca-key.pem").exists(),
        "the CA key is dropped"
    );
    let c = server.client(&f.ca());
    assert_eq!(
        c.get(&format!("/secrets?{API}"), &f.reader).await.status,
        200
    );
    assert!(server.stop().success());

    let ca_der = CertificateDer::from_pem_file(f.ca()).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert!(ca.is_ca());
    let nc = ca
        .name_constraints()
        .unwrap()
        .expect("the CA carries name constraints");
    assert!(nc.critical, "name constraints are critical");
    let permitted: Vec<String> = nc
        .value
        .permitted_subtrees
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| match &t.base {
            GeneralName::DNSName(d) => format!("dns:{d}"),
            GeneralName::IPAddress(b) => format!("ip:{b:02x?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        permitted,
        [
            "dns:localhost".to_string(),
            format!("ip:{:02x?}", [127u8, 0, 0, 0, 255, 0, 0, 0]),
            format!(
                "ip:{:02x?}",
                [[0u8; 15].as_slice(), &[1], &[0xff; 16]].concat()
            ),
        ]
    );
    let server_der =
        CertificateDer::from_pem_file(f.dir.path().join("v.tresor.tls").join("server.pem"))
            .unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&server_der).unwrap();
    for cert in [&ca, &leaf] {
        let v = cert.validity();
        let days = (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400;
        assert!(days <= 91, "valid for {days} days");
    }
    let ca_pem = std::fs::read_to_string(f.ca()).unwrap();

    // --keep-ca-key: a new CA (the old one's key is gone), whose key stays beside the vault.
    let kept = Server::start(&f, &["--keep-ca-key"]);
    let ca_key = std::fs::read_to_string(tls_dir.join("ca-key.pem")).expect("the key is kept");
    let new_ca = std::fs::read_to_string(f.ca()).unwrap();
    assert_ne!(new_ca, ca_pem, "re-issuing makes a new CA");
    let c = kept.client(&f.ca());
    assert_eq!(
        c.get(&format!("/secrets?{API}"), &f.reader).await.status,
        200
    );
    assert!(kept.stop().success());

    // Even with its key, the CA cannot make a certificate for another name that a client
    // trusting it accepts; one for localhost it can.
    assert!(verify_signed_by_ca(&new_ca, &ca_key, "localhost").is_ok());
    assert!(verify_signed_by_ca(&new_ca, &ca_key, "127.0.0.2").is_ok());
    for other in ["example.com", "localhost.example.com", "10.0.0.1", "::2"] {
        let e = verify_signed_by_ca(&new_ca, &ca_key, other).unwrap_err();
        assert!(
            format!("{e:?}").contains("NameConstraintViolation"),
            "{other}: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_api_versions_no_empty_tags_and_no_null_inner_errors() {
    let f = fixture(Options::new(), |_| {});
    let server = Server::start(&f, &[]);
    let c = server.client(&f.ca());
    let o = f.owner.as_str();

    // Every dated api-version from 2016-10-01 on (the Python SDK still offers 2016-10-01).
    for v in ["2016-10-01", "2019-09-01", "7.0", "7.6", "2026-04-01"] {
        let r = c
            .put(
                &format!("/secrets/plain?api-version={v}"),
                o,
                &json!({"value": "x"}),
            )
            .await;
        assert_eq!(r.status, 200, "{v}: {:?}", r.json);
    }
    for v in ["2016-09-30", "2015-06-01", "6.0"] {
        let r = c.get(&format!("/secrets/plain/?api-version={v}"), o).await;
        assert_eq!((r.status, r.code()), (400, "BadParameter"), "{v}");
        // No inner error: the key is left out, not null.
        assert!(r.json["error"].get("innererror").is_none(), "{:?}", r.json);
    }

    // A secret without tags has no `tags` key anywhere: bundle, item, version item, deleted.
    let get = c.get(&format!("/secrets/plain/?{API}"), o).await;
    assert_eq!(get.status, 200);
    assert!(get.json.get("tags").is_none(), "{:?}", get.json);
    let list = c.get(&format!("/secrets?{API}"), o).await;
    let item = &list.json["value"][0];
    assert_eq!(item["id"], format!("https://{}/secrets/plain", server.addr));
    assert!(item.get("tags").is_none(), "{item:?}");
    let versions = c.get(&format!("/secrets/plain/versions?{API}"), o).await;
    for item in versions.json["value"].as_array().unwrap() {
        assert!(item.get("tags").is_none(), "{item:?}");
    }
    // With tags they are there; clearing them removes the key again.
    let tagged = c
        .put(
            &format!("/secrets/tagged?{API}"),
            o,
            &json!({"value": "x", "tags": {"env": "dev"}}),
        )
        .await;
    assert_eq!(tagged.json["tags"], json!({"env": "dev"}));
    let cleared = c
        .send(
            "PATCH",
            &format!("/secrets/tagged/?{API}"),
            Some(o),
            br#"{"tags": null}"#,
        )
        .await;
    assert_eq!(cleared.status, 200, "{:?}", cleared.json);
    assert!(cleared.json.get("tags").is_none(), "{:?}", cleared.json);
    let deleted = c
        .send("DELETE", &format!("/secrets/plain?{API}"), Some(o), b"")
        .await;
    assert_eq!(deleted.status, 200);
    assert!(deleted.json.get("tags").is_none(), "{:?}", deleted.json);

    // An error with an inner error keeps it; one without has no key at all.
    let conflict = c
        .put(&format!("/secrets/plain?{API}"), o, &json!({"value": "y"}))
        .await;
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.inner(), "ObjectIsDeletedButRecoverable");
    let missing = c.get(&format!("/secrets/nothing/?{API}"), o).await;
    assert_eq!(missing.status, 404);
    assert!(missing.json["error"].get("innererror").is_none());
    let unauthorized = c.send("GET", &format!("/secrets?{API}"), None, b"").await;
    assert_eq!(unauthorized.status, 401);
    assert!(unauthorized.json["error"].get("innererror").is_none());
}

/// A plain-HTTP request to the identity endpoint at `addr`, with `X-IDENTITY-HEADER: header`.
async fn identity_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    header: Option<&str>,
) -> Resp {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(target)
        .header(HOST, addr.to_string());
    if let Some(h) = header {
        req = req.header("X-IDENTITY-HEADER", h);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Resp {
        status,
        headers,
        json,
    }
}

/// What the Azure SDKs send for a Key Vault token.
const MI_TOKEN: &str = "/msi/token?api-version=2019-08-01&resource=https://vault.azure.net";

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs the `tresor` command line on the fixture's vault: success, stdout, stderr.
fn run_cli(f: &Fixture, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .arg("--vault")
        .arg(&f.vault)
        .arg("--key-file")
        .arg(&f.key)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The value of `export NAME='…'` in the output of `tresor identity add|env`.
fn exported(env: &str, name: &str) -> String {
    let prefix = format!("export {name}='");
    env.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no {name} in {env}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_identity_tokens_act_as_the_identity() {
    let mut headers = Vec::new();
    let f = fixture(Options::new(), |v| {
        for (name, role) in [
            ("identity.app", Role::Writer),
            ("identity.ro", Role::Reader),
        ] {
            headers.push(v.create_token(name, role).unwrap().expose().to_string());
        }
    });
    let (app, ro) = (headers[0].clone(), headers[1].clone());
    let server = Server::start(&f, &["--identity-addr", "127.0.0.1:0"]);
    let mi = server.identity.expect("the identity endpoint listens");
    assert!(mi.ip().is_loopback());
    let c = server.client(&f.ca());

    let before = unix_now();
    let r = identity_request(mi, "GET", MI_TOKEN, Some(&app)).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["resource"], "https://vault.azure.net");
    // `expires_on` is Unix seconds as a string: an hour from now by default.
    let expires: i64 = r.json["expires_on"].as_str().unwrap().parse().unwrap();
    assert!(
        (before + 3600..=unix_now() + 3600).contains(&expires),
        "{expires}"
    );
    let token = r.json["access_token"].as_str().unwrap().to_string();
    assert!(token.starts_with("tresor_at_") && token.len() == 74);
    assert_ne!(token, app);
    // A trailing slash on the resource is the same resource (scopes end up either way).
    let again = identity_request(mi, "GET", &format!("{MI_TOKEN}/"), Some(&app)).await;
    assert_eq!(again.status, 200);
    assert_ne!(again.json["access_token"], r.json["access_token"]);

    // The access token acts with the identity's role.
    let set = c
        .put(
            &format!("/secrets/from-mi?{API}"),
            &token,
            &json!({"value": "v"}),
        )
        .await;
    assert_eq!(set.status, 200, "{:?}", set.json);
    let ro_token = identity_request(mi, "GET", MI_TOKEN, Some(&ro)).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        c.get(&format!("/secrets/from-mi/?{API}"), &ro_token)
            .await
            .status,
        200
    );
    let refused = c
        .put(
            &format!("/secrets/from-mi?{API}"),
            &ro_token,
            &json!({"value": "w"}),
        )
        .await;
    assert_eq!((refused.status, refused.inner()), (403, "ForbiddenByRbac"));
    // The identity header itself is never a bearer token.
    let r = c.get(&format!("/secrets/from-mi/?{API}"), &app).await;
    assert_eq!(r.status, 401);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("identity header")
    );
    // Neither the header nor a token reach the server's output.
    let err_path = server.stderr.clone();
    assert_eq!(server.stop().code(), Some(0));
    let text = std::fs::read_to_string(err_path).unwrap();
    assert!(!text.contains(&app) && !text.contains(&token));

    // Audited under the identity's name, with its token record as the credential.
    let v = f.open();
    let log = v.audit(0, 1000).unwrap();
    let set = log
        .iter()
        .find(|r| r.operation == Operation::SecretSet && r.name.as_deref() == Some("from-mi"))
        .unwrap();
    assert_eq!(set.actor, "identity:app");
    let info = v.token_identity(&app).unwrap().unwrap();
    assert_eq!(
        set.principal,
        Some(tresor::Principal::Token {
            id: info.id,
            role: Role::Writer
        })
    );
    assert!(
        log.iter()
            .any(|r| r.actor == "identity:ro" && r.error.is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_identity_endpoint_refusals() {
    let mut header = String::new();
    let mut plain = String::new();
    let f = fixture(Options::new(), |v| {
        header = v
            .create_token("identity.app", Role::Reader)
            .unwrap()
            .expose()
            .to_string();
        plain = v
            .create_token("plain", Role::Reader)
            .unwrap()
            .expose()
            .to_string();
    });
    // Not on an address other hosts can reach.
    let out = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .arg("--vault")
        .arg(&f.vault)
        .arg("--key-file")
        .arg(&f.key)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--identity-addr",
            "0.0.0.0:0",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));

    let server = Server::start(&f, &["--identity-addr", "127.0.0.1:0"]);
    let mi = server.identity.unwrap();
    let c = server.client(&f.ca());
    let wrong = "tresor_".to_string() + &"ab".repeat(32);
    let cases: [(&str, &str, Option<&str>, u16); 9] = [
        ("missing header", MI_TOKEN, None, 400),
        ("empty header", MI_TOKEN, Some(""), 400),
        ("wrong header", MI_TOKEN, Some(&wrong), 401),
        ("a token that is no identity", MI_TOKEN, Some(&plain), 401),
        (
            "wrong resource",
            "/msi/token?api-version=2019-08-01&resource=https://management.azure.com",
            Some(&header),
            400,
        ),
        (
            "no resource",
            "/msi/token?api-version=2019-08-01",
            Some(&header),
            400,
        ),
        (
            "other api-version",
            "/msi/token?api-version=2017-09-01&resource=https://vault.azure.net",
            Some(&header),
            400,
        ),
        (
            "other path",
            "/token?api-version=2019-08-01&resource=https://vault.azure.net",
            Some(&header),
            404,
        ),
        ("right everything", MI_TOKEN, Some(&header), 200),
    ];
    for (what, target, h, status) in cases {
        let r = identity_request(mi, "GET", target, h).await;
        assert_eq!(r.status, status, "{what}: {:?}", r.json);
        if status != 200 {
            assert!(r.json.get("access_token").is_none(), "{what}");
        }
    }
    let r = identity_request(mi, "POST", MI_TOKEN, Some(&header)).await;
    assert_eq!(r.status, 405);
    // An access token this server never issued is refused.
    let forged = "tresor_at_".to_string() + &"00".repeat(32);
    let r = c.get(&format!("/secrets?{API}"), &forged).await;
    assert_eq!(r.status, 401);
    assert_eq!(server.stop().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_identity_access_tokens_expire() {
    let mut header = String::new();
    let f = fixture(Options::new(), |v| {
        header = v
            .create_token("identity.app", Role::Reader)
            .unwrap()
            .expose()
            .to_string();
    });
    let server = Server::start(
        &f,
        &[
            "--identity-addr",
            "127.0.0.1:0",
            "--identity-token-lifetime",
            "2s",
        ],
    );
    let mi = server.identity.unwrap();
    let c = server.client(&f.ca());
    let before = unix_now();
    let r = identity_request(mi, "GET", MI_TOKEN, Some(&header)).await;
    assert_eq!(r.status, 200);
    let expires: i64 = r.json["expires_on"].as_str().unwrap().parse().unwrap();
    assert!(
        (before + 2..=unix_now() + 2).contains(&expires),
        "{expires}"
    );
    let token = r.json["access_token"].as_str().unwrap().to_string();
    // Refused once its lifetime has passed, as expired (waiting at most a generous minute).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let refused = loop {
        let r = c.get(&format!("/secrets?{API}"), &token).await;
        if r.status == 401 {
            break r;
        }
        assert_eq!(r.status, 200);
        assert!(std::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert!(unix_now() >= expires);
    assert!(
        refused.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert!(refused.headers.contains_key(WWW_AUTHENTICATE));
    // The header still gets a new one.
    let r = identity_request(mi, "GET", MI_TOKEN, Some(&header)).await;
    assert_eq!(r.status, 200);
    assert_ne!(r.json["access_token"].as_str().unwrap(), token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_identity_commands_rotation_and_removal() {
    let f = fixture(Options::new(), |_| {});
    let (ok, env, err) = run_cli(&f, &["identity", "add", "app", "--role", "reader"]);
    assert!(ok, "{err}");
    let header = exported(&env, "IDENTITY_HEADER");
    assert!(header.starts_with("tresor_") && header.len() == 71);
    assert!(!err.contains(&header));
    assert_eq!(
        exported(&env, "IDENTITY_ENDPOINT"),
        "http://127.0.0.1:8444/msi/token"
    );
    assert_eq!(
        exported(&env, "AZURE_KEYVAULT_URL"),
        "https://127.0.0.1:8443"
    );
    // The CA variables name the generated CA by an absolute path.
    for var in ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS"] {
        assert_eq!(Path::new(&exported(&env, var)), f.ca(), "{var}");
    }
    let (ok, _, err) = run_cli(&f, &["identity", "add", "app", "--role", "owner"]);
    assert!(!ok && err.contains("exists"), "{err}");
    let (ok, _, err) = run_cli(
        &f,
        &[
            "token",
            "create",
            "--role",
            "owner",
            "--label",
            "identity.x",
        ],
    );
    assert!(!ok && err.contains("tresor identity add"), "{err}");
    let (ok, list, _) = run_cli(&f, &["identity", "list", "--json"]);
    assert!(ok);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["name"], "app");
    assert_eq!(list[0]["role"], "reader");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&header));

    // `identity env` gives a new header and the old one stops signing in.
    let (ok, env2, err) = run_cli(
        &f,
        &[
            "identity",
            "env",
            "app",
            "--endpoint",
            "http://127.0.0.1:1/msi/token",
            "--vault-url",
            "https://localhost:2",
        ],
    );
    assert!(ok, "{err}");
    let header2 = exported(&env2, "IDENTITY_HEADER");
    assert_ne!(header2, header);
    assert_eq!(
        exported(&env2, "IDENTITY_ENDPOINT"),
        "http://127.0.0.1:1/msi/token"
    );
    assert_eq!(exported(&env2, "AZURE_KEYVAULT_URL"), "https://localhost:2");

    // Without --identity-addr the endpoint listens when the vault has identities (on
    // 127.0.0.1:8444); given here so that tests do not contend for that port.
    let server = Server::start(&f, &["--identity-addr", "127.0.0.1:0"]);
    let mi = server.identity.unwrap();
    assert_eq!(
        identity_request(mi, "GET", MI_TOKEN, Some(&header))
            .await
            .status,
        401
    );
    let r = identity_request(mi, "GET", MI_TOKEN, Some(&header2)).await;
    assert_eq!(r.status, 200);
    let token = r.json["access_token"].as_str().unwrap().to_string();
    let c = server.client(&f.ca());
    assert_eq!(c.get(&format!("/secrets?{API}"), &token).await.status, 200);
    assert_eq!(server.stop().code(), Some(0));

    // Removed: neither its header nor its access tokens work any more.
    let (ok, out, err) = run_cli(&f, &["identity", "remove", "app"]);
    assert!(ok && out.contains("removed identity 'app'"), "{err}");
    let (ok, _, err) = run_cli(&f, &["identity", "remove", "app"]);
    assert!(!ok && err.contains("not found"));
    let server = Server::start(&f, &["--identity-addr", "127.0.0.1:0"]);
    let mi = server.identity.unwrap();
    assert_eq!(
        identity_request(mi, "GET", MI_TOKEN, Some(&header2))
            .await
            .status,
        401
    );
    let c = server.client(&f.ca());
    assert_eq!(c.get(&format!("/secrets?{API}"), &token).await.status, 401);
    // Without identities and without --identity-addr, no identity endpoint.
    assert_eq!(server.stop().code(), Some(0));
    let server = Server::start(&f, &[]);
    assert!(server.identity.is_none());
}

/// Waits until `path` holds at least `n` JSON lines; returns them.
fn wait_for_lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let lines: Vec<Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= n || std::time::Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn event_types(lines: &[Value]) -> Vec<(String, String)> {
    lines
        .iter()
        .map(|e| {
            (
                e["eventType"].as_str().unwrap().to_string(),
                e["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_raises_events_once_and_backs_up_after_changes() {
    let f = fixture(Options::new(), |_| {});
    let log = f.dir.path().join("events.jsonl");
    let backups = f.dir.path().join("backups");
    let flags = [
        "--event-log",
        log.to_str().unwrap(),
        "--near-expiry",
        "2h",
        "--expiry-check",
        "1s",
        "--backup-dir",
        backups.to_str().unwrap(),
        "--backup-interval",
        "1h",
    ];
    let server = Server::start(&f, &flags);
    let c = server.client(&f.ca());
    let soon = unix_now() + 3600;
    for (name, body) in [
        ("a", json!({"value": "1"})),
        ("a", json!({"value": "2"})),
        ("b", json!({"value": "3", "attributes": {"exp": soon}})),
    ] {
        let r = c
            .put(&format!("/secrets/{name}?{API}"), &f.writer, &body)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json);
    }
    // A refused write raises nothing.
    let r = c
        .put(
            &format!("/secrets/c?{API}"),
            &f.reader,
            &json!({"value": "x"}),
        )
        .await;
    assert_eq!(r.status, 403);
    let lines = wait_for_lines(&log, 4);
    let mut got = event_types(&lines);
    got.sort();
    assert_eq!(
        got,
        [
            ("Microsoft.KeyVault.SecretNearExpiry".into(), "b".into()),
            (
                "Microsoft.KeyVault.SecretNewVersionCreated".into(),
                "a".into()
            ),
            (
                "Microsoft.KeyVault.SecretNewVersionCreated".into(),
                "a".into()
            ),
            (
                "Microsoft.KeyVault.SecretNewVersionCreated".into(),
                "b".into()
            ),
        ]
    );
    let new_b = lines
        .iter()
        .find(|e| {
            e["subject"] == "b" && e["eventType"] == "Microsoft.KeyVault.SecretNewVersionCreated"
        })
        .unwrap();
    assert_eq!(new_b["data"]["EXP"], soon);
    assert!(
        new_b["data"]["Id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("https://{}/secrets/b/", server.addr))
    );
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    // Three changes within the interval: one copy at the first, one for the rest at shutdown.
    let copies = std::fs::read_dir(&backups).unwrap().count();
    assert_eq!(copies, 2);

    // Restarted, the server sends nothing again: not the new versions, not b's near-expiry.
    // It looks for expiring versions first, so once c's event is in, that look is done.
    let server = Server::start(&f, &flags);
    let c = server.client(&f.ca());
    let r = c
        .put(
            &format!("/secrets/c?{API}"),
            &f.writer,
            &json!({"value": "x"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let lines = wait_for_lines(&log, 5);
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[4]["subject"], "c");
    server.stop();
    // Written while no server ran: raised at the next start.
    f.open().set("d", "offline").unwrap();
    let server = Server::start(&f, &flags);
    let lines = wait_for_lines(&log, 6);
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(lines[5]["subject"], "d");
    server.stop();
    assert!(f.open().verify_audit().is_ok());
}
