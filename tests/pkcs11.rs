//! PKCS#11 key slots (`tresor::providers::Pkcs11Provider`) against SoftHSM2, a real PKCS#11
//! module: AES-GCM under a secret key and RSA-OAEP to a key pair, made on tokens initialized
//! here and keys generated through the PKCS#11 API.
//!
//! This test has its own `main` (`harness = false` in Cargo.toml): a PKCS#11 module reads its
//! configuration once per process, so each test runs in a process of its own, with a private
//! `SOFTHSM2_CONF` whose token directory is a fresh temporary one (a test may not change its own
//! environment). Without SoftHSM2 (`softhsm2` in Debian) every test prints that it was skipped.
//!
//! `cargo test --features pkcs11 --test pkcs11 [FILTER] [-- --nocapture]`; the timings test
//! prints unlock times next to a key file's.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use tresor::providers::Pkcs11Provider;
use tresor::secrecy::SecretString;
use tresor::{Credential, Error, KeyProvider, Options, Role, SlotKind, SlotSpec, Vault};

/// Set in a test's own process: the test to run.
const ONE_ENV: &str = "TRESOR_TEST_PKCS11_ONE";
/// Where SoftHSM2's module is, when not in one of the usual places.
const MODULE_ENV: &str = "TRESOR_TEST_SOFTHSM2_MODULE";

const PIN: &str = "246810";
const SO_PIN: &str = "13579135";

type TestFn = fn(&Hsm);

fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        ("aes_slot_reopens", aes_slot_reopens),
        ("rsa_oaep_slot_reopens", rsa_oaep_slot_reopens),
        (
            "wrong_pin_is_clear_and_key_slot_still_opens",
            wrong_pin_is_clear_and_key_slot_still_opens,
        ),
        (
            "deleted_key_is_clear_and_next_slot_opens",
            deleted_key_is_clear_and_next_slot_opens,
        ),
        ("missing_token_is_clear", missing_token_is_clear),
        ("wrong_module_is_clear", wrong_module_is_clear),
        ("tampered_blob_is_refused", tampered_blob_is_refused),
        ("pin_sources", pin_sources),
        ("uri_choices_are_honoured", uri_choices_are_honoured),
        ("timings", timings),
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Ok(name) = std::env::var(ONE_ENV) {
        let module = softhsm_module().expect("the parent found the module");
        let hsm = Hsm::start(module);
        let f = tests()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| f)
            .expect("a known test");
        f(&hsm);
        return;
    }
    let filter: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let nocapture = args.iter().any(|a| a == "--nocapture");
    let (mut passed, mut failed, mut skipped, mut filtered) = (0, 0, 0, 0);
    let module = softhsm_module();
    let tool = Command::new("softhsm2-util").arg("--version").output();
    for (name, _) in tests() {
        if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
            filtered += 1;
            continue;
        }
        print!("test {name} ... ");
        io::stdout().flush().ok();
        if module.is_none() || tool.is_err() {
            println!(
                "ignored (skipped: SoftHSM2 is not installed: no libsofthsm2.so or no \
                 softhsm2-util; `apt-get install softhsm2`, or set {MODULE_ENV})"
            );
            skipped += 1;
            continue;
        }
        match run_one(name) {
            Ok(out) => {
                println!("ok");
                if nocapture {
                    print!("{out}");
                }
                passed += 1;
            }
            Err(out) => {
                println!("FAILED\n{out}");
                failed += 1;
            }
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; {skipped} ignored; 0 measured; {filtered} filtered out",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    if failed > 0 {
        std::process::exit(101);
    }
}

fn softhsm_module() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(MODULE_ENV) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
        "/usr/lib64/pkcs11/libsofthsm2.so",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Runs test `name` in a process of its own with a private SoftHSM2 configuration and token
/// directory; its output.
fn run_one(name: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).expect("token directory");
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
             slots.removable = false\n",
            tokens.display()
        ),
    )
    .expect("configuration");
    let out = Command::new(std::env::current_exe().expect("current exe"))
        .env(ONE_ENV, name)
        .env("SOFTHSM2_CONF", &conf)
        .env_remove(tresor::providers::PKCS11_MODULE_ENV)
        .env_remove(tresor::providers::PKCS11_PIN_ENV)
        .output()
        .expect("run the test's process");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// SoftHSM2 in this process: tokens are initialized and keys generated through the PKCS#11 API.
struct Hsm {
    module: PathBuf,
    ctx: Pkcs11,
}

fn pin(p: &str) -> SecretString {
    SecretString::from(p.to_string())
}

impl Hsm {
    fn start(module: PathBuf) -> Hsm {
        let ctx = Pkcs11::new(&module).expect("load SoftHSM2");
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .expect("initialize SoftHSM2");
        Hsm { module, ctx }
    }

    /// The slot of the token labelled `label`.
    fn slot(&self, label: &str) -> Slot {
        self.ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| self.ctx.get_token_info(*s).unwrap().label() == label)
            .expect("the token")
    }

    /// Initializes a fresh token labelled `label` with the user PIN [`PIN`].
    fn token(&self, label: &str) {
        let free = self
            .ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| !self.ctx.get_token_info(*s).unwrap().token_initialized())
            .expect("a free slot");
        self.ctx
            .init_token(free, &pin(SO_PIN), label)
            .expect("init token");
        let s = self.ctx.open_rw_session(self.slot(label)).unwrap();
        s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
        s.init_pin(&pin(PIN)).unwrap();
    }

    /// A logged-in read-write session on the token `label`.
    fn session(&self, label: &str) -> Session {
        let s = self.ctx.open_rw_session(self.slot(label)).unwrap();
        s.login(UserType::User, Some(&pin(PIN))).unwrap();
        s
    }

    /// Generates an AES-256 key on the token, not extractable.
    fn aes_key(&self, token: &str, label: &str, id: &[u8]) {
        self.session(token)
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::ValueLen(32.into()),
                    Attribute::Label(label.as_bytes().to_vec()),
                    Attribute::Id(id.to_vec()),
                ],
            )
            .expect("generate an AES key");
    }

    /// Generates an RSA-2048 key pair on the token, the private key not extractable.
    fn rsa_key(&self, token: &str, label: &str, id: &[u8]) {
        self.session(token)
            .generate_key_pair(
                &Mechanism::RsaPkcsKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::Encrypt(true),
                    Attribute::ModulusBits(2048.into()),
                    Attribute::PublicExponent(vec![1, 0, 1]),
                    Attribute::Label(label.as_bytes().to_vec()),
                    Attribute::Id(id.to_vec()),
                ],
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Decrypt(true),
                    Attribute::Label(label.as_bytes().to_vec()),
                    Attribute::Id(id.to_vec()),
                ],
            )
            .expect("generate an RSA key pair");
    }

    /// Destroys every key labelled `label` on the token.
    fn delete_keys(&self, token: &str, label: &str) {
        let s = self.session(token);
        let found = s
            .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
            .unwrap();
        assert!(!found.is_empty());
        for o in found {
            s.destroy_object(o).unwrap();
        }
    }

    /// A provider for `uri` (`pkcs11:` added) with the module and the PIN.
    fn provider(&self, uri: &str) -> Pkcs11Provider {
        Pkcs11Provider::new(&format!("pkcs11:{uri}"))
            .unwrap()
            .module(&self.module)
            .pin(pin(PIN))
    }

    /// An unlocker with the module and `pin`.
    fn unlocker(&self, p: &str) -> Credential {
        Credential::provider(Arc::new(
            Pkcs11Provider::unlocker().module(&self.module).pin(pin(p)),
        ))
    }
}

fn provider(p: Pkcs11Provider) -> Credential {
    Credential::provider(Arc::new(p))
}

/// A vault (owner slot: a random key) in `dir` with a secret; its path and key.
fn vault(dir: &Path) -> (PathBuf, Credential) {
    let key = Credential::generate_key().unwrap();
    let path = dir.join("v.tresor");
    let v = Vault::create(&path, &key, Options::new()).unwrap();
    v.set("db", "s3cret").unwrap();
    v.close().unwrap();
    (path, key)
}

/// [`vault`], with a second slot: an AES key `wrap` on a new token `app`, labelled `hsm`.
fn vault_with_app_slot(hsm: &Hsm, dir: &Path) -> (PathBuf, Credential) {
    hsm.token("app");
    hsm.aes_key("app", "wrap", &[0x01]);
    let (path, key) = vault(dir);
    let v = open(&path, &key).unwrap();
    v.add_slot(&SlotSpec::new(
        provider(hsm.provider("token=app;object=wrap")),
        "hsm",
    ))
    .unwrap();
    v.close().unwrap();
    (path, key)
}

fn open(path: &Path, c: &Credential) -> tresor::Result<Vault> {
    Vault::open(path, c, Options::new())
}

fn provider_error(e: Error) -> String {
    match e {
        Error::Provider(why) => why,
        other => panic!("expected a provider error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

/// An AES key on the token wraps a reader slot; an unlocker (module and PIN only) reopens the
/// vault with it, and the blob holds neither the key nor the PIN.
fn aes_slot_reopens(hsm: &Hsm) {
    hsm.token("app");
    hsm.aes_key("app", "tresor-wrap", &[0x01]);
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = vault(dir.path());
    let v = open(&path, &key).unwrap();
    let info = v
        .add_slot(
            &SlotSpec::new(
                provider(hsm.provider("token=app;object=tresor-wrap")),
                "hsm",
            )
            .role(Role::Reader),
        )
        .unwrap();
    assert_eq!(info.kind, SlotKind::Provider("pkcs11".into()));
    v.close().unwrap();

    let v = open(&path, &hsm.unlocker(PIN)).unwrap();
    assert_eq!(v.unlocked_slot(), Some(info.id));
    assert_eq!(v.role(), Role::Reader);
    assert_eq!(v.get("db").unwrap().expose_str(), Some("s3cret"));
    v.close().unwrap();

    // A master-key rotation needs the token for that slot, and the slot opens after it.
    let v = open(&path, &key).unwrap();
    let e = v.rotate_master_key(&[], |_| {}).unwrap_err();
    assert!(matches!(e, Error::MissingCredential { .. }), "{e:?}");
    v.rotate_master_key(&[hsm.unlocker(PIN)], |_| {}).unwrap();
    v.close().unwrap();
    let v = open(&path, &hsm.unlocker(PIN)).unwrap();
    assert_eq!(v.get("db").unwrap().expose_str(), Some("s3cret"));
    v.close().unwrap();

    // The provider alone: what it wraps comes back, and the blob names the token and key.
    let p = hsm.provider("token=app;object=tresor-wrap;type=secret-key");
    let kek = [0x5au8; 32];
    let blob = p.wrap(&kek).unwrap();
    assert_eq!(p.unwrap(&blob).unwrap().as_slice(), &kek);
    assert!(!blob.windows(4).any(|w| w == [0x5a; 4]), "the key in clear");
    assert!(!blob.windows(PIN.len()).any(|w| w == PIN.as_bytes()));
    assert!(blob.windows(11).any(|w| w == b"tresor-wrap"));
    // Two wraps of one key differ (a fresh IV each).
    assert_ne!(p.wrap(&kek).unwrap(), blob);
    // Debug never shows the PIN.
    assert!(!format!("{p:?}").contains(PIN));
}

/// An RSA key pair (what smart cards and YubiKey PIV offer) wraps a slot: RSA-OAEP to the public
/// key, unwrapped by the private key.
fn rsa_oaep_slot_reopens(hsm: &Hsm) {
    hsm.token("card");
    hsm.rsa_key("card", "piv-9d", &[0x03]);
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = vault(dir.path());
    let v = open(&path, &key).unwrap();
    let info = v
        .add_slot(&SlotSpec::new(
            provider(hsm.provider("token=card;id=%03;type=private")),
            "card",
        ))
        .unwrap();
    v.close().unwrap();
    let v = open(&path, &hsm.unlocker(PIN)).unwrap();
    assert_eq!(v.unlocked_slot(), Some(info.id));
    assert_eq!(v.role(), Role::Owner);
    v.close().unwrap();
    // Without type=, a token with no AES key of that name falls to its RSA key pair.
    let p = hsm.provider("token=card;object=piv-9d");
    let blob = p.wrap(&[7u8; 32]).unwrap();
    assert_eq!(p.unwrap(&blob).unwrap().as_slice(), &[7u8; 32]);
    // The mechanism the token took (docs/FORMAT.md: after the layout, four length-prefixed
    // fields): 1 is RSA-OAEP with SHA-256, 2 with SHA-1.
    let at = 1 + (1 + 4) + (1 + blob[6] as usize) + (1 + 6) + (1 + 1);
    let hash = match blob[at] {
        1 => "SHA-256",
        2 => "SHA-1",
        other => panic!("mechanism {other}"),
    };
    println!("    SoftHSM2 took RSA-OAEP with {hash}");
    // An RSA key named as a secret key is not found.
    let e = hsm
        .provider("token=card;object=piv-9d;type=secret-key")
        .wrap(&[7u8; 32])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such AES secret key"), "{e}");
}

/// A wrong PIN: an error naming the slot and the cause, never the PIN; the key-file slot still
/// opens; the file is not changed by the failed unlock.
fn wrong_pin_is_clear_and_key_slot_still_opens(hsm: &Hsm) {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = vault_with_app_slot(hsm, dir.path());
    let before = std::fs::read(&path).unwrap();
    let wrong = "99999999";
    let why = provider_error(open(&path, &hsm.unlocker(wrong)).unwrap_err());
    assert!(why.contains("key slot 2 (\"hsm\")"), "{why}");
    assert!(why.contains("PKCS#11 token \"app\""), "{why}");
    assert!(why.contains("wrong PIN"), "{why}");
    assert!(!why.contains(wrong) && !why.contains(PIN), "{why}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file changed");
    let v = open(&path, &key).unwrap();
    assert_eq!(v.unlocked_slot(), Some(1));
    v.close().unwrap();
    // The right PIN still opens it (the wrong tries did not lock the token).
    open(&path, &hsm.unlocker(PIN)).unwrap().close().unwrap();
    // A new slot with a wrong PIN is refused before anything is written.
    let v = open(&path, &key).unwrap();
    let e = v
        .add_slot(&SlotSpec::new(
            provider(hsm.provider("token=app;object=wrap").pin(pin(wrong))),
            "other",
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("wrong PIN") && !e.contains(wrong), "{e}");
    assert_eq!(v.slots().unwrap().len(), 2);
    v.close().unwrap();
}

/// The key deleted from the token: that slot fails with an error naming the key, and another
/// PKCS#11 slot (another token) still opens.
fn deleted_key_is_clear_and_next_slot_opens(hsm: &Hsm) {
    hsm.token("first");
    hsm.token("second");
    hsm.aes_key("first", "wrap", &[0x01]);
    hsm.aes_key("second", "wrap", &[0x02]);
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = vault(dir.path());
    let v = open(&path, &key).unwrap();
    let a = v
        .add_slot(&SlotSpec::new(
            provider(hsm.provider("token=first;object=wrap")),
            "first",
        ))
        .unwrap();
    let b = v
        .add_slot(
            &SlotSpec::new(provider(hsm.provider("token=second;object=wrap")), "second")
                .role(Role::Writer),
        )
        .unwrap();
    v.close().unwrap();
    let v = open(&path, &hsm.unlocker(PIN)).unwrap();
    assert_eq!(v.unlocked_slot(), Some(a.id));
    v.close().unwrap();

    hsm.delete_keys("first", "wrap");
    let v = open(&path, &hsm.unlocker(PIN)).unwrap();
    assert_eq!(v.unlocked_slot(), Some(b.id));
    assert_eq!(v.role(), Role::Writer);
    v.close().unwrap();

    hsm.delete_keys("second", "wrap");
    let why = provider_error(open(&path, &hsm.unlocker(PIN)).unwrap_err());
    for (s, token) in [(&a, "first"), (&b, "second")] {
        assert!(
            why.contains(&format!("key slot {} (\"{}\")", s.id, s.label)),
            "{why}"
        );
        assert!(why.contains(&format!("token \"{token}\"")), "{why}");
    }
    assert!(why.contains("key \"wrap\" (id %01)"), "{why}");
    assert!(why.contains("no such key on the token"), "{why}");
    open(&path, &key).unwrap().close().unwrap();
}

/// The token gone (re-initialized under another label, as when another card is inserted): an
/// error naming the token and the tokens present.
fn missing_token_is_clear(hsm: &Hsm) {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = vault_with_app_slot(hsm, dir.path());
    hsm.ctx
        .init_token(hsm.slot("app"), &pin(SO_PIN), "someone-else")
        .unwrap();
    let why = provider_error(open(&path, &hsm.unlocker(PIN)).unwrap_err());
    assert!(why.contains("key slot 2 (\"hsm\")"), "{why}");
    assert!(why.contains("PKCS#11 token \"app\""), "{why}");
    assert!(why.contains("is not present"), "{why}");
    assert!(why.contains("\"someone-else\""), "{why}");
    open(&path, &key).unwrap().close().unwrap();
    // Making a slot on a token that is not there fails the same way.
    let e = hsm
        .provider("token=app;object=wrap")
        .wrap(&[0u8; 32])
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not present"), "{e}");
}

/// No module, a module path that does not exist, a file that is no PKCS#11 library: each a clear
/// error naming the slot and the module; the key-file slot still opens.
fn wrong_module_is_clear(hsm: &Hsm) {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = vault_with_app_slot(hsm, dir.path());
    let not_a_library = dir.path().join("libnot.so");
    std::fs::write(&not_a_library, b"not a shared library").unwrap();
    for (module, says) in [
        (None, "no PKCS#11 module"),
        (
            Some(Path::new("/nonexistent/libpkcs11.so")),
            "does not exist",
        ),
        (
            Some(not_a_library.as_path()),
            "cannot load the PKCS#11 module",
        ),
    ] {
        let mut p = Pkcs11Provider::unlocker().pin(pin(PIN));
        if let Some(m) = module {
            p = p.module(m);
        }
        let why = provider_error(open(&path, &provider(p)).unwrap_err());
        assert!(why.contains("key slot 2 (\"hsm\")"), "{why}");
        assert!(why.contains(says), "{module:?}: {why}");
        if let Some(m) = module {
            assert!(why.contains(&m.display().to_string()), "{why}");
        }
    }
    open(&path, &key).unwrap().close().unwrap();
}

/// A blob altered in its wrapped key, its IV, its names or its layout: an error, never a key.
fn tampered_blob_is_refused(hsm: &Hsm) {
    hsm.token("app");
    hsm.aes_key("app", "wrap", &[0x01]);
    hsm.rsa_key("app", "rsa", &[0x02]);
    for uri in ["token=app;object=wrap", "token=app;object=rsa"] {
        let p = hsm.provider(uri);
        let blob = p.wrap(&[9u8; 32]).unwrap();
        assert_eq!(p.unwrap(&blob).unwrap().as_slice(), &[9u8; 32]);
        // Every byte flipped: refused (the wrapped key and the IV are authenticated by GCM or
        // checked by OAEP; a changed name finds no token or no key; a changed length or layout
        // does not decode).
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            match p.unwrap(&bad) {
                Err(_) => {}
                Ok(k) => panic!(
                    "{uri}: byte {i} flipped gave a key back ({} bytes)",
                    k.len()
                ),
            }
        }
        let last = blob.len() - 1;
        let mut bad = blob.clone();
        bad[last] ^= 0x80;
        let e = p.unwrap(&bad).unwrap_err().to_string();
        assert!(e.contains("does not decrypt under this key"), "{uri}: {e}");
        let e = p.unwrap(&blob[..blob.len() - 1]).unwrap_err().to_string();
        assert!(e.contains("malformed"), "{e}");
        let mut other = blob.clone();
        other[0] = 9;
        let e = p.unwrap(&other).unwrap_err().to_string();
        assert!(e.contains("layout 9"), "{e}");
    }
}

/// The PIN from the URI (`pin-value`, `pin-source`), from the callback, or from nowhere.
fn pin_sources(hsm: &Hsm) {
    hsm.token("app");
    hsm.aes_key("app", "wrap", &[0x01]);
    let dir = tempfile::tempdir().unwrap();
    let module = hsm.module.display().to_string();
    let by_value = Pkcs11Provider::new(&format!(
        "pkcs11:token=app;object=wrap?module-path={module}&pin-value={PIN}"
    ))
    .unwrap();
    let blob = by_value.wrap(&[1u8; 32]).unwrap();
    assert!(!format!("{by_value:?}").contains(PIN));
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let by_file = Pkcs11Provider::new(&format!(
        "pkcs11:token=app;object=wrap?module-path={module}&pin-source=file:{}",
        pin_file.display()
    ))
    .unwrap();
    assert_eq!(by_file.unwrap(&blob).unwrap().as_slice(), &[1u8; 32]);
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    let by_callback = Pkcs11Provider::unlocker()
        .module(&hsm.module)
        .pin_callback(move |what| {
            seen.lock().unwrap().push(what.to_string());
            Some(pin(PIN))
        });
    assert_eq!(by_callback.unwrap(&blob).unwrap().as_slice(), &[1u8; 32]);
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert!(asked[0].starts_with("PKCS#11 token \"app\""), "{asked:?}");
    let nobody = Pkcs11Provider::unlocker()
        .module(&hsm.module)
        .pin_callback(|_| None);
    let e = nobody.unwrap(&blob).unwrap_err().to_string();
    assert!(e.contains("no PIN for PKCS#11 token \"app\""), "{e}");
    assert!(e.contains("TRESOR_PKCS11_PIN"), "{e}");
    // An unlocker cannot make a slot.
    let e = hsm_unlocker(hsm).wrap(&[0u8; 32]).unwrap_err().to_string();
    assert!(e.contains("only unlocks"), "{e}");
}

fn hsm_unlocker(hsm: &Hsm) -> Pkcs11Provider {
    Pkcs11Provider::unlocker().module(&hsm.module).pin(pin(PIN))
}

/// The URI's token and key attributes choose: by serial, by id, by type; several keys that match
/// are refused rather than one picked.
fn uri_choices_are_honoured(hsm: &Hsm) {
    hsm.token("app");
    hsm.aes_key("app", "wrap", &[0x01]);
    hsm.aes_key("app", "wrap", &[0x02]);
    let serial = hsm
        .ctx
        .get_token_info(hsm.slot("app"))
        .unwrap()
        .serial_number()
        .trim_end()
        .to_string();
    let e = hsm
        .provider("token=app;object=wrap")
        .wrap(&[0u8; 32])
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 keys match"), "{e}");
    let p = hsm.provider(&format!("serial={serial};object=wrap;id=%02"));
    let blob = p.wrap(&[3u8; 32]).unwrap();
    assert_eq!(
        hsm_unlocker(hsm).unwrap(&blob).unwrap().as_slice(),
        &[3u8; 32]
    );
    // The key with id %01 does not open what %02 wrapped.
    hsm.delete_keys("app", "wrap");
    hsm.aes_key("app", "wrap", &[0x02]);
    let e = hsm_unlocker(hsm).unwrap(&blob).unwrap_err().to_string();
    assert!(e.contains("does not decrypt"), "{e}");
    let e = hsm
        .provider("token=nope;object=wrap")
        .wrap(&[0u8; 32])
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"nope\" is not present"), "{e}");
    assert!(e.contains("\"app\""), "{e}");
    // A URI it cannot honour is refused when the provider is made.
    for bad in [
        "token=app",
        "object=wrap",
        "token=app;object=wrap;library-description=x",
    ] {
        assert!(
            Pkcs11Provider::new(&format!("pkcs11:{bad}")).is_err(),
            "{bad}"
        );
    }
}

/// Unlock times: a key file, a PKCS#11 AES-GCM slot, a PKCS#11 RSA-OAEP slot (SoftHSM2), each
/// the only slot of a vault of its own holding the same secret.
fn timings(hsm: &Hsm) {
    hsm.token("app");
    hsm.aes_key("app", "aes", &[0x01]);
    hsm.rsa_key("app", "rsa", &[0x02]);
    let dir = tempfile::tempdir().unwrap();
    let key = Credential::generate_key().unwrap();
    let unlocker = hsm.unlocker(PIN);
    let kinds = [
        ("key file (32-byte key)", key.clone(), key),
        (
            "PKCS#11 AES-GCM (SoftHSM2)",
            provider(hsm.provider("token=app;object=aes")),
            unlocker.clone(),
        ),
        (
            "PKCS#11 RSA-OAEP (SoftHSM2)",
            provider(hsm.provider("token=app;object=rsa")),
            unlocker,
        ),
    ];
    println!();
    for (i, (name, make, unlock)) in kinds.iter().enumerate() {
        let path = dir.path().join(format!("{i}.tresor"));
        let v = Vault::create(&path, make, Options::new()).unwrap();
        v.set("db", "s3cret").unwrap();
        v.close().unwrap();
        // One open first: the module is loaded once per process.
        open(&path, unlock).unwrap().close().unwrap();
        let n = 50;
        let start = Instant::now();
        for _ in 0..n {
            let v = open(&path, unlock).unwrap();
            assert_eq!(v.unlocked_slot(), Some(1));
            v.close().unwrap();
        }
        println!(
            "    unlock, {name:<30} {:>8.2} ms (mean of {n} opens)",
            start.elapsed().as_secs_f64() * 1000.0 / f64::from(n)
        );
    }
}
