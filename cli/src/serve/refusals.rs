//! Unknown bearer tokens, refused in memory.
//!
//! The library audits every unknown token it is shown as a refused `TokenAuthenticate`, and a
//! durable record is a commit: a client sending garbage tokens would grow the vault file without
//! bound. So a presented token is first looked up here, by its public id (the first 8 bytes of
//! its lookup hash, `docs/FORMAT.md`):
//!
//! - A server unlocked as `owner` lists the vault's token ids at start (tokens cannot change
//!   while it holds the file). A token whose id is not among them is refused without asking the
//!   vault.
//! - Any other server cannot list tokens: a token not seen valid before is looked up in the
//!   vault (which records a refusal) at most [`CONSULTS_PER_WINDOW`] times per source address
//!   and [`WINDOW`]; beyond that it is refused without asking.
//!
//! Refusals made here are counted per source address (at most [`MAX_SOURCES`] addresses, the
//! rest together), and each window that counted any becomes one refused `TokenAuthenticate`
//! record once it ends (and at shutdown), whose actor carries the source, the count and the
//! window's start: `refused tokens from 127.0.0.1: 500 since 2026-12-02T01:56:09Z`. The token
//! itself is never recorded.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tresor::{Role, Timestamp, Vault};

/// How long one source's refusals are counted together.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The most source addresses counted apart; refusals from more are counted together.
pub const MAX_SOURCES: usize = 1024;
/// How many tokens not seen before a source may have looked up in the vault per window, when
/// the server cannot list the vault's tokens.
pub const CONSULTS_PER_WINDOW: u32 = 4;
/// What the refusal record presents to the vault: never a token (tokens start `tresor_`).
const PLACEHOLDER: &str = "-";

/// A token's public id: the first 8 bytes of its lookup hash.
pub type TokenId = [u8; 8];

/// The public id of `token` in the vault `vault_id`: the first 8 bytes of
/// `BLAKE3-derive_key("tresor 2026 bearer token lookup v1", vault_id || token)`.
pub fn token_id(vault_id: &[u8; 16], token: &str) -> TokenId {
    let mut h = blake3::Hasher::new_derive_key("tresor 2026 bearer token lookup v1");
    h.update(vault_id);
    h.update(token.as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&h.finalize().as_bytes()[..8]);
    id
}

fn parse_id(hex: &str) -> Option<TokenId> {
    let b = hex.as_bytes();
    if b.len() != 16 {
        return None;
    }
    let mut id = [0u8; 8];
    for (i, pair) in b.chunks(2).enumerate() {
        id[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(id)
}

/// One source's refusals in the current window.
struct Window {
    since: Timestamp,
    opened: Instant,
    refused: u64,
    consulted: u32,
}

/// What to do with a presented token.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// Look it up in the vault; call [`Gate::known`] with the id if the vault knows it.
    Consult(TokenId),
    /// Refuse it (401): counted here, nothing written.
    Refuse,
}

/// A window that ended: where from, since when, how many.
pub struct Ended {
    source: Option<IpAddr>,
    since: Timestamp,
    refused: u64,
}

/// The token ids known to be the vault's, and the refusals counted in memory.
pub struct Gate {
    vault_id: [u8; 16],
    /// How many tokens the vault has, when the handle may list them.
    count: Option<usize>,
    /// How many of them are managed identities (`identity.NAME`).
    identities: Option<usize>,
    /// Every token's id (`complete`), or those the vault has confirmed.
    known: Mutex<HashSet<TokenId>>,
    complete: bool,
    windows: Mutex<HashMap<Option<IpAddr>, Window>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Gate {
    /// The gate of `vault`: complete when the handle may list tokens (owner).
    pub fn new(vault: &Vault) -> Gate {
        let listed = (vault.role() == Role::Owner)
            .then(|| vault.list_tokens().ok())
            .flatten();
        let complete = listed.is_some();
        let count = listed.as_ref().map(Vec::len);
        let identities = listed.as_ref().map(|l| {
            l.iter()
                .filter(|t| super::identity::is_identity_label(&t.label))
                .count()
        });
        let known = listed
            .unwrap_or_default()
            .iter()
            .filter_map(|t| parse_id(&t.id))
            .collect();
        Gate {
            vault_id: vault.vault_id(),
            count,
            identities,
            known: Mutex::new(known),
            complete,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the gate holds every token id of the vault.
    #[cfg(test)]
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// How many tokens the vault has (`None` when the handle may not list them).
    pub fn token_count(&self) -> Option<usize> {
        self.count
    }

    /// How many managed identities the vault has (`None` when the handle may not list them).
    pub fn identity_count(&self) -> Option<usize> {
        self.identities
    }

    /// What to do with `token`, presented from `source`.
    pub fn check(&self, token: &str, source: IpAddr) -> Check {
        let id = token_id(&self.vault_id, token);
        if lock(&self.known).contains(&id) {
            return Check::Consult(id);
        }
        let mut windows = lock(&self.windows);
        let w = window(&mut windows, source);
        if !self.complete && w.consulted < CONSULTS_PER_WINDOW {
            w.consulted += 1;
            return Check::Consult(id);
        }
        w.refused += 1;
        Check::Refuse
    }

    /// Counts a refusal decided elsewhere (an access token this server never issued).
    pub fn refuse(&self, source: IpAddr) {
        window(&mut lock(&self.windows), source).refused += 1;
    }

    /// The vault knew the token `id`: later requests with it skip the budget.
    pub fn known(&self, id: TokenId) {
        lock(&self.known).insert(id);
    }

    /// Takes the windows that have ended (all of them with `all`), keeping those that counted
    /// refusals.
    pub fn ended(&self, all: bool) -> Vec<Ended> {
        let mut windows = lock(&self.windows);
        let due: Vec<Option<IpAddr>> = windows
            .iter()
            .filter(|(_, w)| all || w.opened.elapsed() >= WINDOW)
            .map(|(k, _)| *k)
            .collect();
        due.into_iter()
            .filter_map(|k| windows.remove(&k).map(|w| (k, w)))
            .filter(|(_, w)| w.refused > 0)
            .map(|(source, w)| Ended {
                source,
                since: w.since,
                refused: w.refused,
            })
            .collect()
    }
}

/// The window of `source`, opened now if there is none (the shared one when too many sources
/// are counted).
fn window(windows: &mut HashMap<Option<IpAddr>, Window>, source: IpAddr) -> &mut Window {
    let key = if windows.len() < MAX_SOURCES || windows.contains_key(&Some(source)) {
        Some(source)
    } else {
        None
    };
    windows.entry(key).or_insert_with(|| Window {
        since: crate::time::now(),
        opened: Instant::now(),
        refused: 0,
        consulted: 0,
    })
}

/// The actor of the record of `e`.
fn actor(e: &Ended) -> String {
    let from = e
        .source
        .map_or_else(|| "other addresses".to_string(), |ip| ip.to_string());
    format!(
        "refused tokens from {from}: {} since {}",
        e.refused,
        crate::time::rfc3339(e.since)
    )
}

/// Records each ended window as one refused `TokenAuthenticate`. Blocking.
pub fn record(vault: &Vault, ended: &[Ended]) {
    for e in ended {
        let result = vault
            .as_identity(actor(e), vault.role())
            .and_then(|h| h.token_identity(PLACEHOLDER));
        if let Err(err) = result {
            eprintln!("tresor serve: cannot record refused tokens: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tresor::{Credential, Operation, Options};

    fn vault() -> Vault {
        Vault::create_in_memory(&Credential::generate_key().unwrap(), Options::new()).unwrap()
    }

    #[test]
    fn ids_are_the_vaults_own() {
        let v = vault();
        let t = v.create_token("a", Role::Reader).unwrap();
        let id = token_id(&v.vault_id(), t.expose());
        assert_eq!(parse_id(&t.info.id), Some(id));
        assert_eq!(parse_id("zz"), None);
    }

    #[test]
    fn an_owner_gate_refuses_unknown_tokens_without_the_vault() {
        let v = vault();
        let t = v.create_token("a", Role::Reader).unwrap();
        let before = v.audit_len().unwrap();
        let gate = Gate::new(&v);
        assert!(gate.complete());
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(matches!(gate.check(t.expose(), ip), Check::Consult(_)));
        for i in 0..100 {
            assert_eq!(gate.check(&format!("tresor_{i}"), ip), Check::Refuse);
        }
        assert!(gate.ended(false).is_empty(), "the window is still open");
        let ended = gate.ended(true);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].refused, 100);
        record(&v, &ended);
        let log = v.audit(before, 100).unwrap();
        let refusals: Vec<_> = log
            .iter()
            .filter(|r| r.operation == Operation::TokenAuthenticate)
            .collect();
        assert_eq!(refusals.len(), 1);
        assert!(
            refusals[0]
                .actor
                .starts_with("refused tokens from 127.0.0.1: 100 since ")
        );
        assert!(refusals[0].error.is_some());
    }

    #[test]
    fn other_gates_consult_the_vault_a_few_times_per_window() {
        let v = vault();
        let t = v.create_token("a", Role::Reader).unwrap();
        let reader = v.as_identity("server", Role::Reader).unwrap();
        let gate = Gate::new(&reader);
        assert!(!gate.complete());
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut consulted = 0;
        for i in 0..50 {
            if gate.check(&format!("tresor_{i}"), ip) != Check::Refuse {
                consulted += 1;
            }
        }
        assert_eq!(consulted, CONSULTS_PER_WINDOW);
        // A token the vault confirmed passes whatever the budget.
        let Check::Consult(id) = gate.check(t.expose(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        else {
            panic!("a new source has a budget");
        };
        gate.known(id);
        assert_eq!(gate.check(t.expose(), ip), Check::Consult(id));
    }

    #[test]
    fn sources_beyond_the_cap_share_one_window() {
        let v = vault();
        let gate = Gate::new(&v);
        for i in 0..(MAX_SOURCES as u32 + 10) {
            gate.check("tresor_x", IpAddr::V4(Ipv4Addr::from(i)));
        }
        let ended = gate.ended(true);
        assert_eq!(ended.len(), MAX_SOURCES + 1);
        assert_eq!(
            ended.iter().find(|e| e.source.is_none()).unwrap().refused,
            10
        );
    }
}
