//! TPM key slots (`tresor::providers::TpmProvider`) against a software TPM: `swtpm`, one fresh
//! instance per test on free local ports. Without `swtpm` installed (Debian packages swtpm and
//! swtpm-tools) each test says so and returns.
//!
//! `cargo test --features tpm --test tpm -- --nocapture` also prints unlock times.

#![cfg(unix)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use tresor::providers::TpmProvider;
use tresor::{Credential, Error, KeyProvider, Options, Role, SlotInfo, SlotKind, SlotSpec, Vault};

#[path = "common/swtpm.rs"]
mod swtpm;
use swtpm::{Swtpm, free_port_pair};

impl Swtpm {
    fn provider(&self) -> TpmProvider {
        TpmProvider::new().tcti(self.tcti())
    }

    /// Extends SHA-256 PCR `pcr` with a measurement, as a boot loader would.
    fn extend(&self, pcr: u8) {
        use tss_esapi::handles::PcrHandle;
        use tss_esapi::interface_types::algorithm::HashingAlgorithm;
        use tss_esapi::structures::{Digest, DigestValues};
        let mut ctx =
            tss_esapi::Context::new(tss_esapi::TctiNameConf::from_str(&self.tcti()).unwrap())
                .unwrap();
        let mut values = DigestValues::new();
        values.set(
            HashingAlgorithm::Sha256,
            Digest::try_from(vec![0x5a; 32]).unwrap(),
        );
        let handle =
            PcrHandle::try_from(tss_esapi::tss2_esys::ESYS_TR_PCR0 + u32::from(pcr)).unwrap();
        ctx.execute_with_nullauth_session(|c| c.pcr_extend(handle, values))
            .unwrap();
    }
}

fn provider(p: &TpmProvider) -> Credential {
    Credential::provider(Arc::new(p.clone()))
}

/// A vault (owner slot: a random key) in `dir`, with a secret; returns its path and key.
fn vault(dir: &Path) -> (PathBuf, Credential) {
    let key = Credential::generate_key().unwrap();
    let path = dir.join("v.tresor");
    let v = Vault::create(&path, &key, Options::new()).unwrap();
    v.set("db", "s3cret").unwrap();
    v.close().unwrap();
    (path, key)
}

fn add(path: &Path, key: &Credential, p: &TpmProvider, label: &str) -> SlotInfo {
    let v = Vault::open(path, key, Options::new()).unwrap();
    let s = v
        .add_slot(&SlotSpec::new(provider(p), label).role(Role::Reader))
        .unwrap();
    v.close().unwrap();
    s
}

/// The provider error of a failed open.
fn provider_error(e: Error) -> String {
    match e {
        Error::Provider(why) => why,
        other => panic!("expected a provider error, got {other:?}"),
    }
}

#[test]
fn tpm_slot_opens_the_vault_and_no_other_tpm_does() {
    let Some(tpm) = Swtpm::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = vault(dir.path());
    let s = add(&path, &key, &tpm.provider(), "device");
    assert_eq!(s.kind, SlotKind::Provider("tpm".into()));

    let v = Vault::open(&path, &provider(&tpm.provider()), Options::new()).unwrap();
    assert_eq!(v.unlocked_slot(), Some(s.id));
    assert_eq!(v.role(), Role::Reader);
    assert_eq!(v.get("db").unwrap().expose_str(), Some("s3cret"));
    v.close().unwrap();

    // The file copied to another device: that device's TPM cannot load the sealed object.
    let Some(other) = Swtpm::start() else { return };
    let why = provider_error(
        Vault::open(&path, &provider(&other.provider()), Options::new()).unwrap_err(),
    );
    assert!(
        why.contains(&format!("key slot {} (\"device\")", s.id)),
        "{why}"
    );
    assert!(why.contains("refuses the slot's sealed object"), "{why}");

    // Unlock times, printed (no threshold).
    let n = 10u32;
    for (name, c) in [
        ("key file (32-byte key)", &key),
        ("tpm (swtpm)", &provider(&tpm.provider())),
    ] {
        let start = Instant::now();
        for _ in 0..n {
            Vault::open(&path, c, Options::new())
                .unwrap()
                .close()
                .unwrap();
        }
        println!(
            "    unlock, {name:<24} {:>8.2} ms (mean of {n} opens)",
            start.elapsed().as_secs_f64() * 1000.0 / f64::from(n)
        );
    }
}

#[test]
fn pcr_change_refuses_the_slot_and_leaves_the_vault_whole() {
    let Some(tpm) = Swtpm::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = vault(dir.path());
    let bound = tpm.provider().pcrs([7, 0]).unwrap();
    let s = add(&path, &key, &bound, "boot");
    // Any provider of that TPM unlocks: the PCR selection is in the slot.
    let v = Vault::open(&path, &provider(&tpm.provider()), Options::new()).unwrap();
    assert_eq!(v.unlocked_slot(), Some(s.id));
    v.close().unwrap();

    // Something else booted: PCR 7 measured another value.
    tpm.extend(7);
    let before = std::fs::read(&path).unwrap();
    let why =
        provider_error(Vault::open(&path, &provider(&tpm.provider()), Options::new()).unwrap_err());
    assert!(
        why.contains(&format!("key slot {} (\"boot\")", s.id)),
        "{why}"
    );
    assert!(
        why.contains("PCR policy (SHA-256 PCRs 0,7) does not hold"),
        "{why}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the failed unlock wrote"
    );
    // The key slot still opens it, and nothing was lost.
    let v = Vault::open(&path, &key, Options::new()).unwrap();
    assert_eq!(v.get("db").unwrap().expose_str(), Some("s3cret"));
    assert_eq!(v.slots().unwrap().len(), 2);
    v.close().unwrap();

    // A PCR outside the selection changes nothing.
    let other = add(&path, &key, &tpm.provider().pcrs([0]).unwrap(), "firmware");
    tpm.extend(16);
    let v = Vault::open(&path, &provider(&tpm.provider()), Options::new()).unwrap();
    assert_eq!(v.unlocked_slot(), Some(other.id));
    v.close().unwrap();
}

#[test]
fn absent_tpm_is_a_clear_error_naming_the_slot() {
    let Some(tpm) = Swtpm::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = vault(dir.path());
    let s = add(&path, &key, &tpm.provider(), "device");
    let port = tpm.port;
    drop(tpm);

    let gone = TpmProvider::new().tcti(format!("swtpm:host=127.0.0.1,port={port}"));
    let why = provider_error(Vault::open(&path, &provider(&gone), Options::new()).unwrap_err());
    assert!(
        why.contains(&format!("key slot {} (\"device\")", s.id)),
        "{why}"
    );
    assert!(why.contains("cannot be reached"), "{why}");

    let no_device = TpmProvider::new().tcti("device:/nonexistent/tpmrm0");
    let why =
        provider_error(Vault::open(&path, &provider(&no_device), Options::new()).unwrap_err());
    assert!(why.contains("no TPM on this machine"), "{why}");
    assert!(no_device.probe().is_err());

    // Making a slot fails as clearly, and adds nothing.
    let v = Vault::open(&path, &key, Options::new()).unwrap();
    let e = v
        .add_slot(&SlotSpec::new(provider(&gone), "again"))
        .unwrap_err();
    assert!(e.to_string().contains("cannot be reached"), "{e}");
    assert_eq!(v.slots().unwrap().len(), 2);
    assert_eq!(v.get("db").unwrap().expose_str(), Some("s3cret"));
    v.close().unwrap();
}

#[test]
fn tampered_blobs_are_refused() {
    let Some(tpm) = Swtpm::start() else { return };
    let p = tpm.provider().pcrs([7]).unwrap();
    p.probe().unwrap();
    let key = [0x42u8; 32];
    let blob = p.wrap(&key).unwrap();
    assert_eq!(p.unwrap(&blob).unwrap().as_slice(), &key);
    // Every byte flipped in turn: each is refused (malformed, not loaded by the TPM, or a
    // policy that does not hold), never a panic, never another key.
    let mut messages = std::collections::BTreeSet::new();
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x01;
        match p.unwrap(&bad) {
            Err(e) => {
                let e = e.to_string();
                messages.insert(e.split(": ").next().unwrap_or_default().to_string());
            }
            Ok(k) => assert_eq!(k.as_slice(), &key, "byte {i} flipped gave another key"),
        }
    }
    println!("tampered blobs: {messages:?}");
    // Dropping the PCR selection does not lift the policy.
    let stripped = {
        let mut b = blob.clone();
        assert_eq!(&b[1..3], &[1, 7]);
        b.splice(1..3, [0u8]);
        b
    };
    let e = p.unwrap(&stripped).unwrap_err().to_string();
    assert!(e.contains("unseal"), "{e}");
    assert!(p.unwrap(&[]).is_err());
    assert!(p.unwrap(&[1]).is_err());
}

/// Forwards connections from `from` to `to` on 127.0.0.1, both directions, appending every byte
/// it carries to `capture` (a sniffer on the TPM's socket, or its bus).
fn sniffing_proxy(from: u16, to: u16, capture: Arc<std::sync::Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind(("127.0.0.1", from)).unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let server = TcpStream::connect(("127.0.0.1", to)).unwrap();
            for (mut src, mut dst) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let capture = Arc::clone(&capture);
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = src.read(&mut buf) {
                        if n == 0 || dst.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        capture.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = dst.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
}

/// SECURITY.md: the key travels between tresor and the TPM only in encrypted sessions, so a
/// sniffer on the TPM's socket or bus does not see it. Every byte of a seal and an unseal (with
/// and without a PCR policy) is captured through a proxy; the key appears nowhere in it.
#[test]
fn a_sniffer_between_tresor_and_the_tpm_never_sees_the_key() {
    let Some(tpm) = Swtpm::start() else { return };
    let capture = Arc::new(std::sync::Mutex::new(Vec::new()));
    let port = free_port_pair();
    sniffing_proxy(port, tpm.port, Arc::clone(&capture));
    sniffing_proxy(port + 1, tpm.port + 1, Arc::clone(&capture));
    let tcti = format!("swtpm:host=127.0.0.1,port={port}");
    // A key no TPM command would hold by chance.
    let key: [u8; 32] = std::array::from_fn(|i| 0xa5 ^ (i as u8).wrapping_mul(37));
    for p in [
        TpmProvider::new().tcti(tcti.clone()),
        TpmProvider::new().tcti(tcti.clone()).pcrs([7]).unwrap(),
    ] {
        let blob = p.wrap(&key).unwrap();
        assert_eq!(p.unwrap(&blob).unwrap().as_slice(), &key);
    }
    let seen = std::mem::take(&mut *capture.lock().unwrap());
    assert!(
        seen.len() > 1000,
        "the proxy carried only {} bytes",
        seen.len()
    );
    // Not the key, nor any 8 bytes of it.
    let sees_key = |seen: &[u8]| {
        key.windows(8)
            .any(|window| seen.windows(8).any(|w| w == window))
    };
    assert!(!sees_key(&seen), "the sniffer saw bytes of the key");

    // The control: the same bytes sent to the TPM without a session (TPM2_Hash of the key) are
    // in the capture, so the check above would have caught a key sent in clear.
    {
        use tss_esapi::interface_types::algorithm::HashingAlgorithm;
        use tss_esapi::interface_types::resource_handles::Hierarchy;
        use tss_esapi::structures::MaxBuffer;
        let mut ctx =
            tss_esapi::Context::new(tss_esapi::TctiNameConf::from_str(&tcti).unwrap()).unwrap();
        ctx.hash(
            MaxBuffer::try_from(key.to_vec()).unwrap(),
            HashingAlgorithm::Sha256,
            Hierarchy::Null,
        )
        .unwrap();
    }
    assert!(
        sees_key(&capture.lock().unwrap()),
        "the control did not reach the sniffer"
    );
}
