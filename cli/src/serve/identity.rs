//! Managed identities, locally: the App Service managed-identity token protocol that
//! `ManagedIdentityCredential` and `DefaultAzureCredential` use when `IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER` are set.
//!
//! An identity is one of the vault's bearer-token records, labelled `identity.NAME`
//! (`tresor identity add`); the token itself is the identity's `IDENTITY_HEADER`. It is never
//! accepted as a bearer token on the secrets API: it is only exchanged, on a plain-HTTP listener
//! bound to loopback, for a short-lived **access token**:
//!
//! `GET /msi/token?api-version=2019-08-01&resource=https://vault.azure.net` with
//! `X-IDENTITY-HEADER: <header>` →
//! `{"access_token", "expires_on" (Unix seconds, a string), "resource", "token_type": "Bearer"}`.
//!
//! Access tokens (`tresor_at_` and 64 hexadecimal characters, 256 random bits) live only in this
//! process's memory, by their BLAKE3 hash, each mapped to a handle acting as its identity
//! (actor `identity:NAME`, the identity's role, audit records naming its token record): they end
//! with their lifetime (`--identity-token-lifetime`, 1 h by default) or when the server stops.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tresor::Vault;
use zeroize::Zeroizing;

use super::errors::ApiError;
use super::{State, auth, http, refusals};

/// The label prefix of an identity's token record.
pub const LABEL_PREFIX: &str = "identity.";
/// The first characters of every access token.
pub const ACCESS_PREFIX: &str = "tresor_at_";
/// The path of the token endpoint.
pub const TOKEN_PATH: &str = "/msi/token";
/// The protocol version the SDKs send.
pub const MI_API_VERSION: &str = "2019-08-01";
/// The header carrying the identity's secret.
pub const HEADER: &str = "x-identity-header";
/// Where the token endpoint listens when the vault has identities and no `--identity-addr` is
/// given (next to `serve`'s default 127.0.0.1:8443).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8444";
/// The most access tokens held at once; beyond it expired ones, then the oldest, are dropped.
const MAX_ISSUED: usize = 4096;
/// The most connections to the token endpoint at once.
const MAX_CONNECTIONS: usize = 64;
/// How long a request head may take on the token endpoint.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a token record's label makes it an identity.
pub fn is_identity_label(label: &str) -> bool {
    label.starts_with(LABEL_PREFIX)
}

/// The identity's name in a token record's label.
pub fn name_of(label: &str) -> Option<&str> {
    label.strip_prefix(LABEL_PREFIX)
}

/// Parses a lifetime: a whole number with an optional unit `s`, `m` or `h` (seconds without
/// one), from 1 s to 24 h.
pub fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 90s, 30m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{s:?} is not a duration such as 90s, 30m or 1h")),
    };
    if !(1..=24 * 3600).contains(&secs) {
        return Err("a token lifetime is from 1s to 24h".to_string());
    }
    Ok(Duration::from_secs(secs))
}

/// What an access token presented to the secrets API is.
pub enum Lookup {
    /// One this server issued and that is still valid: act as its identity.
    Valid(Vault),
    /// One this server issued, now expired.
    Expired,
    /// Not one this server issued (or long forgotten).
    Unknown,
}

struct Issued {
    handle: Vault,
    expires: Instant,
}

/// The access tokens issued, by their hash.
pub struct Issuer {
    lifetime: Duration,
    issued: Mutex<HashMap<[u8; 32], Issued>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

impl Issuer {
    pub fn new(lifetime: Duration) -> Issuer {
        Issuer {
            lifetime,
            issued: Mutex::new(HashMap::new()),
        }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new access token acting as `handle`, and its end in Unix seconds.
    pub fn issue(&self, handle: Vault) -> Result<(Zeroizing<String>, i64), ApiError> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut raw = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut *raw)
            .map_err(|_| ApiError::internal("The system's random source failed."))?;
        let mut token = Zeroizing::new(String::with_capacity(ACCESS_PREFIX.len() + 64));
        token.push_str(ACCESS_PREFIX);
        for b in raw.iter() {
            token.push(char::from(HEX[usize::from(b >> 4)]));
            token.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        let now = Instant::now();
        let expires = now + self.lifetime;
        let expires_on =
            crate::time::now().unix() + i64::try_from(self.lifetime.as_secs()).unwrap_or(0);
        let mut issued = lock(&self.issued);
        if issued.len() >= MAX_ISSUED {
            issued.retain(|_, i| i.expires > now);
        }
        if issued.len() >= MAX_ISSUED
            && let Some(oldest) = issued
                .iter()
                .min_by_key(|(_, i)| i.expires)
                .map(|(k, _)| *k)
        {
            issued.remove(&oldest);
        }
        issued.insert(hash(&token), Issued { handle, expires });
        Ok((token, expires_on))
    }

    /// What `token` is.
    pub fn lookup(&self, token: &str) -> Lookup {
        match lock(&self.issued).get(&hash(token)) {
            None => Lookup::Unknown,
            Some(i) if i.expires <= Instant::now() => Lookup::Expired,
            Some(i) => Lookup::Valid(i.handle.clone()),
        }
    }
}

/// The 401 of an expired access token (the SDKs then ask the endpoint for a new one).
pub fn expired() -> ApiError {
    ApiError::unauthorized(
        "The access token has expired; get a new one from the identity endpoint.",
    )
}

/// Serves the token endpoint on `listener` until `stop` changes.
pub async fn serve(listener: TcpListener, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = stop.changed() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = stop.changed() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("tresor serve: identity endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, peer, req).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// One request to the token endpoint, logged with `--access-log` (never the header or token).
async fn handle(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (response, who) = match token_request(&state, peer, &req).await {
        Ok((body, who)) => (http::json_body(StatusCode::OK, body), Some(who)),
        Err(e) => (http::json(e.status, &e.body()), None),
    };
    if state.access_log {
        eprintln!(
            "identity endpoint: {method} {} {} {} {:.1}ms",
            path.escape_debug(),
            response.status().as_u16(),
            who.as_deref().unwrap_or("-"),
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    response
}

/// Checks a token request and issues an access token: the JSON body, and the identity's actor.
async fn token_request(
    state: &Arc<State>,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Result<(http::Wiped, String), ApiError> {
    if req.uri().path() != TOKEN_PATH {
        return Err(ApiError::no_route(req.uri().path()));
    }
    if req.method() != Method::GET {
        return Err(ApiError::method(req.method().as_str(), TOKEN_PATH));
    }
    let header = match req.headers().get(HEADER).map(|h| h.to_str()) {
        Some(Ok(h)) if !h.is_empty() => Zeroizing::new(h.to_string()),
        _ => {
            return Err(ApiError::bad(
                "The request has no X-IDENTITY-HEADER header (set IDENTITY_HEADER).",
            ));
        }
    };
    let query = http::Query::parse(req.uri())?;
    if query.get("api-version") != Some(MI_API_VERSION) {
        return Err(ApiError::bad(format!(
            "The identity endpoint speaks api-version {MI_API_VERSION} only."
        )));
    }
    let resource = query.get("resource").unwrap_or("");
    if resource.trim_end_matches('/') != auth::RESOURCE {
        return Err(ApiError::bad(format!(
            "Tokens are issued for the resource {} only.",
            auth::RESOURCE
        )));
    }
    let refused = || ApiError::unauthorized("The X-IDENTITY-HEADER is not one of an identity.");
    // Unknown headers are refused in memory where possible, as unknown bearer tokens are.
    let consulted = match state.gate.check(&header, peer.ip()) {
        refusals::Check::Refuse => return Err(refused()),
        refusals::Check::Consult(id) => id,
    };
    let st = state.clone();
    let handle = super::blocking(move || {
        let info = st
            .vault
            .token_identity(&header)
            .map_err(|e| super::errors::from_vault(&e, super::errors::Subject::Listing))?
            .ok_or_else(refused)?;
        let name = name_of(&info.label).ok_or_else(refused)?;
        st.gate.known(consulted);
        st.vault
            .as_token(&info)
            .and_then(|h| h.as_identity(format!("identity:{name}"), info.role))
            .map_err(|_| {
                ApiError::forbidden_role(
                    info.role,
                    &format!(
                        "be served: the vault was unlocked with a key slot of the {} role",
                        st.vault.role()
                    ),
                )
            })
    })
    .await?;
    let who = handle.actor().to_string();
    let (token, expires_on) = state.identities.issue(handle)?;
    let mut body = Zeroizing::new(Vec::with_capacity(token.len() + 160));
    body.extend_from_slice(b"{\"access_token\":\"");
    body.extend_from_slice(token.as_bytes());
    body.extend_from_slice(
        format!(
            "\",\"expires_on\":\"{expires_on}\",\"resource\":\"{}\",\"token_type\":\"Bearer\"}}",
            auth::RESOURCE
        )
        .as_bytes(),
    );
    Ok((body, who))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_lifetime("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_lifetime("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_lifetime("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "0s", "25h", "1d", "s", "-1s", "1.5h"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn issued_tokens_expire_and_unknown_ones_are_unknown() {
        let v = Vault::create_in_memory(
            &tresor::Credential::generate_key().unwrap(),
            tresor::Options::new(),
        )
        .unwrap();
        let issuer = Issuer::new(Duration::from_secs(3600));
        let h = v.as_identity("identity:app", tresor::Role::Reader).unwrap();
        let (t, _) = issuer.issue(h).unwrap();
        assert!(t.starts_with(ACCESS_PREFIX) && t.len() == ACCESS_PREFIX.len() + 64);
        assert!(matches!(issuer.lookup(&t), Lookup::Valid(h) if h.actor() == "identity:app"));
        assert!(matches!(issuer.lookup("tresor_at_00"), Lookup::Unknown));
        let short = Issuer::new(Duration::ZERO);
        let (t, _) = short
            .issue(v.as_identity("identity:x", tresor::Role::Reader).unwrap())
            .unwrap();
        assert!(matches!(short.lookup(&t), Lookup::Expired));
    }
}
