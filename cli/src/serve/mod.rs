//! `tresor serve`: a local HTTPS endpoint that speaks the Azure Key Vault secrets REST API, so
//! that apps written against Azure (through the real Azure SDKs) run offline against a tresor
//! vault. `tresor token …` makes the bearer tokens it accepts.
//!
//! - [`tls`]: the local CA and server certificate (rustls with `ring`).
//! - [`auth`]: the bearer challenge and the vault's tokens.
//! - [`routes`]: paths and methods to vault operations.
//! - [`json`]: Azure's JSON shapes.
//! - [`errors`]: Azure's error bodies and statuses.
//! - [`http`]: bodies, queries, hosts and responses.
//! - [`refusals`]: unknown bearer tokens, refused and counted in memory.
//! - [`identity`]: managed identities: the token endpoint and the access tokens it issues.
//! - [`identities`]: `tresor identity add|env|list|remove`.
//!
//! The vault is the synchronous library: every operation runs on tokio's blocking pool, so reads
//! proceed in parallel and a slow commit never stalls the executor. Sockets still in their TLS
//! handshake have a bound and a short deadline of their own; connections that completed one are
//! capped (`--max-connections`). A request head (and an idle keep-alive connection) and a
//! request body each have a deadline, and bodies a size cap, so that slow or malformed clients
//! cannot hold others up. Ctrl-C or SIGTERM stops accepting, lets requests in flight finish, and
//! commits buffered audit records before exiting.

pub mod args;
mod auth;
mod errors;
mod http;
pub mod identities;
mod identity;
mod json;
mod refusals;
mod routes;
mod tls;
pub mod tokens;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tresor::Vault;
use zeroize::Zeroizing;

use self::args::ServeArgs;
use self::auth::Policy;
use self::errors::ApiError;
use self::json::Ctx;
use self::routes::{Call, Route};
use crate::args::{AuditReads, Global};
use crate::error::{CliError, CliResult};
use crate::{output, unlock};

/// How long a TLS handshake may take (from the accept).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most sockets in their TLS handshake at once (apart from `--max-connections`, which counts
/// only connections that completed one); more wait in the listen backlog.
const MAX_HANDSHAKES: usize = 256;
/// How often ended windows of refused tokens are recorded.
const REFUSALS_TICK: Duration = Duration::from_secs(15);
/// How long a request head may take to arrive (also how long a keep-alive connection may idle).
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long requests in flight may take to finish after a stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head (request line and headers); a larger one gets 431.
const MAX_HEAD: usize = 32 * 1024;

/// What every request needs.
struct State {
    vault: Vault,
    policy: Policy,
    challenge: String,
    recovery_level: &'static str,
    recoverable_days: u16,
    max_body: u64,
    fallback_host: String,
    access_log: bool,
    served: AtomicU64,
    gate: refusals::Gate,
    identities: identity::Issuer,
}

/// `tresor serve`.
pub fn run(g: &Global, a: &ServeArgs) -> CliResult<ExitCode> {
    let path = unlock::vault_path(g);
    let opened = unlock::open(g, false)?;
    let vault = opened.vault;
    // The CLI (`tresor get`, `tresor token create`, …) goes through this process meanwhile.
    #[cfg(unix)]
    let held = match hold(&path, &vault) {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!(
                "tresor serve: note: other tresor commands cannot use the vault while the server \
                 runs: {e}"
            );
            None
        }
    };
    let settings = vault.settings()?;
    let tenant = auth::tenant(vault.vault_id());
    let tls = tls::setup(
        &path,
        a.cert.as_deref(),
        a.key.as_deref(),
        &tenant,
        &tls::Generated {
            names: &a.tls_name,
            keep_ca_key: a.keep_ca_key,
        },
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tresor-serve")
        .build()
        .map_err(|e| CliError::new(format!("cannot start the server runtime: {e}")))?;
    let state = Arc::new(State {
        vault: vault.clone(),
        policy: if a.allow_any_token {
            Policy::AnyToken
        } else {
            Policy::Tokens
        },
        challenge: auth::challenge(&tenant),
        recovery_level: json::recovery_level(&settings),
        recoverable_days: settings.retention_days,
        max_body: a.max_body,
        fallback_host: a.addr.to_string(),
        access_log: a.access_log,
        served: AtomicU64::new(0),
        gate: refusals::Gate::new(&vault),
        identities: identity::Issuer::new(a.identity_token_lifetime),
    });
    let listener = runtime
        .block_on(TcpListener::bind(a.addr))
        .map_err(|e| CliError::new(format!("cannot listen on {}: {e}", a.addr)))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::new(format!("cannot listen on {}: {e}", a.addr)))?;
    // The managed-identity endpoint: asked for, or on its default address when the vault has
    // identities. Loopback only: an identity header must not be usable from another machine.
    let identity_addr = match a.identity_addr {
        Some(addr) => Some(addr),
        None if state.gate.identity_count().unwrap_or(0) > 0 => {
            Some(identity::DEFAULT_ADDR.parse().expect("a socket address"))
        }
        None => None,
    };
    let identity_listener = match identity_addr {
        Some(addr) if !addr.ip().is_loopback() => {
            return Err(CliError::new(format!(
                "--identity-addr {addr}: the identity endpoint listens on loopback addresses \
                 only (127.0.0.1, ::1)"
            )));
        }
        Some(addr) => {
            let l = runtime.block_on(TcpListener::bind(addr)).map_err(|e| {
                CliError::new(format!(
                    "cannot listen on {addr} for the identity endpoint: {e} (choose another \
                     with --identity-addr)"
                ))
            })?;
            let local = l.local_addr().map_err(|e| {
                CliError::new(format!(
                    "cannot listen on {addr} for the identity endpoint: {e}"
                ))
            })?;
            Some((l, local))
        }
        None => None,
    };
    // Only an owner may list tokens (the gate did, if it could).
    let tokens = state.gate.token_count();
    banner(
        g,
        a,
        &path,
        local,
        &tls,
        tokens,
        identity_listener.as_ref().map(|(_, l)| *l),
        &state,
    )?;
    // Events and automatic backups, on a thread of their own fed by the vault's changes.
    let watcher = crate::events::Watcher::new(
        &path,
        &vault,
        &a.events,
        &a.backups,
        format!("https://{local}"),
    )?
    .map(|w| {
        eprintln!("tresor serve: {}", w.describe());
        crate::events::Running::start(
            w,
            vault.as_identity("events", vault.role())?,
            a.events.expiry_check,
        )
    })
    .transpose()?;
    let served = runtime.block_on(serve(
        listener,
        identity_listener.map(|(l, _)| l),
        TlsAcceptor::from(tls.config),
        state.clone(),
        a.max_connections as usize,
    ));
    drop(runtime);
    if let Some(w) = watcher {
        w.stop();
    }
    #[cfg(unix)]
    if let Some((handle, thread)) = held {
        handle.stop();
        let _ = thread.join();
    }
    // Refusals still counted in memory are recorded before the vault closes.
    refusals::record(&vault, &state.gate.ended(true));
    drop(state);
    // Buffered read records are committed before exit; the error, if any, is reported.
    let closed = vault.close();
    eprintln!("tresor serve: stopped after {served} requests; audit records committed");
    closed?;
    Ok(ExitCode::SUCCESS)
}

/// The holder's socket of the vault at `path`, served by a thread of its own with the same
/// open vault: commands of the same user work while the server runs. `tresor lock` does not
/// stop it (Ctrl-C does).
#[cfg(unix)]
type Hold = (
    tresor::agent::HolderHandle,
    std::thread::JoinHandle<tresor::Result<tresor::agent::StopReason>>,
);

#[cfg(unix)]
fn hold(path: &std::path::Path, vault: &Vault) -> CliResult<Hold> {
    use tresor::agent::{Holder, HolderOptions};
    let socket = tresor::agent::socket_path(path)?;
    let holder = Holder::bind(
        &socket,
        Arc::new(vault.clone()),
        HolderOptions::new().kind("serve").lockable(false),
    )
    .map_err(|e| match e {
        tresor::Error::Locked => CliError::new(format!(
            "another process holds this vault at {}",
            socket.display()
        )),
        other => CliError::from(other),
    })?;
    let handle = holder.handle();
    let thread = std::thread::Builder::new()
        .name("tresor-holder".to_string())
        .spawn(move || holder.serve())
        .map_err(|e| CliError::new(format!("cannot start the holder thread: {e}")))?;
    Ok((handle, thread))
}

/// What `tresor serve` prints when it is ready: the URL (first line, for scripts), the CA to
/// trust, how to get a token, the identity endpoint, and how to point the Python SDK at it.
#[allow(clippy::too_many_arguments)]
fn banner(
    g: &Global,
    a: &ServeArgs,
    vault: &std::path::Path,
    local: SocketAddr,
    tls: &tls::Tls,
    tokens: Option<usize>,
    identity_endpoint: Option<SocketAddr>,
    state: &State,
) -> CliResult<()> {
    let url = format!("https://{local}");
    let mut text = format!("listening on {url}\n");
    text.push_str(&format!("vault: {}\n", vault.display()));
    match &tls.ca {
        Some(ca) => text.push_str(&format!(
            "CA certificate: {}{}\n  (trust it: connection_verify=<it> in the Azure SDK, or \
             REQUESTS_CA_BUNDLE / SSL_CERT_FILE)\n",
            ca.display(),
            match (tls.generated, tls.replaced) {
                (_, Some(why)) => format!(
                    " (a new CA, generated now: {why}; clients must trust it instead of the \
                     old one)"
                ),
                (true, None) => " (generated now)".to_string(),
                (false, None) => String::new(),
            }
        )),
        None => text.push_str("certificate: --cert/--key as given\n"),
    }
    let count = tokens.map_or_else(|| "?".to_string(), |n| n.to_string());
    text.push_str(&format!(
        "tokens: {count} in this vault; make one with `tresor token create --role \
         reader|writer|owner --label NAME` (it goes through this server while it runs), and \
         send it as `Authorization: Bearer <token>`\n"
    ));
    if let Some(addr) = identity_endpoint {
        let count = state
            .gate
            .identity_count()
            .map_or_else(|| "?".to_string(), |n| n.to_string());
        text.push_str(&format!(
            "identity endpoint: http://{addr}{} (managed identities: {count}; access tokens \
             valid {} s; `tresor identity env NAME` prints an identity's environment)\n",
            identity::TOKEN_PATH,
            state.identities.lifetime().as_secs()
        ));
    }
    text.push_str(&format!(
        "python: SecretClient(vault_url=\"{url}\", credential=<a credential returning the \
         token>, verify_challenge_resource=False, connection_verify=\"<CA certificate>\")\n"
    ));
    let reads = match g.audit_reads {
        AuditReads::Durable => "durable (one commit per read; --audit-reads buffered is faster)",
        AuditReads::Buffered => {
            "buffered (committed with the next write, every 4096 reads, and at exit)"
        }
        AuditReads::Off => "off",
    };
    text.push_str(&format!("reads audited: {reads}\n"));
    if !local.ip().is_loopback() {
        eprintln!(
            "tresor serve: WARNING: listening on {local}, which is reachable from other \
             machines; the generated certificate names only localhost, 127.0.0.1, ::1 and any \
             --tls-name"
        );
    }
    if tokens == Some(0) && !a.allow_any_token {
        eprintln!(
            "tresor serve: warning: this vault has no tokens yet, so every request will be \
             refused with 401; make one with `tresor token create`"
        );
    }
    if a.allow_any_token {
        eprintln!(
            "tresor serve: WARNING: --allow-any-token: EVERY bearer token is accepted, with \
             the full rights of the key slot that unlocked the vault. For development only."
        );
    }
    // Warnings first: once the URL is out, everything about the start has been said.
    output::print_text(&text)?;
    Ok(())
}

/// Resolves when Ctrl-C or SIGTERM arrives.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Accepts connections until a stop signal, then drains them; returns the requests served.
///
/// A socket takes a handshake slot ([`MAX_HANDSHAKES`]) when accepted and has
/// [`HANDSHAKE_TIMEOUT`] to complete its TLS handshake; only then does it wait for one of the
/// `max_connections` slots, so sockets that never speak TLS cannot keep clients out.
async fn serve(
    listener: TcpListener,
    identity_listener: Option<TcpListener>,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    max_connections: usize,
) -> u64 {
    let (stop_tx, stop_rx) = watch::channel(false);
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut connections = JoinSet::new();
    let ticker = tokio::spawn(record_refusals(state.clone()));
    let identity_task =
        identity_listener.map(|l| tokio::spawn(identity::serve(l, state.clone(), stop_rx.clone())));
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        while connections.try_join_next().is_some() {}
        let handshake = tokio::select! {
            _ = &mut stop => break,
            p = handshakes.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    eprintln!("tresor serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        let slots = slots.clone();
        let mut stop_rx = stop_rx.clone();
        connections.spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            // The handshake slot is held while waiting for a connection slot, so that waiting
            // connections stay bounded too.
            let permit = tokio::select! {
                p = slots.acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = stop_rx.changed() => return,
            };
            drop(handshake);
            let _permit = permit;
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, peer, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true)
                .max_header_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop_rx.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    ticker.abort();
    let _ = stop_tx.send(true);
    eprintln!("tresor serve: stopping: finishing requests in flight");
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
        if let Some(t) = identity_task {
            let _ = t.await;
        }
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    state.served.load(Ordering::Relaxed)
}

/// Records the windows of refused tokens that have ended, every [`REFUSALS_TICK`].
async fn record_refusals(state: Arc<State>) {
    let mut tick = tokio::time::interval(REFUSALS_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ended = state.gate.ended(false);
        if !ended.is_empty() {
            let st = state.clone();
            let _ = tokio::task::spawn_blocking(move || refusals::record(&st.vault, &ended)).await;
        }
    }
}

/// Serves one request, and logs it with `--access-log`.
async fn handle(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (result, actor) = respond(&state, peer, req).await;
    let response = match result {
        Ok((status, Some(body))) => http::json_body(status, body),
        Ok((status, None)) => http::empty(status),
        Err(e) => http::error(&e, &state.challenge),
    };
    state.served.fetch_add(1, Ordering::Relaxed);
    if state.access_log {
        eprintln!(
            "{method} {} {} {} {:.1}ms",
            path.escape_debug(),
            response.status().as_u16(),
            actor.as_deref().unwrap_or("-"),
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    response
}

type Outcome = Result<(StatusCode, Option<http::Wiped>), ApiError>;

/// Runs `f` on the blocking pool; a panic there is a 500, never a crash.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(ApiError::internal("The request failed inside the server.")))
}

/// The checks and the operation of one request; returns the outcome and the caller's actor.
async fn respond(
    state: &Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> (Outcome, Option<String>) {
    let (parts, body) = req.into_parts();
    // No token, no action: the 401 challenge comes before anything else is looked at.
    let token = match auth::bearer(&parts.headers) {
        Ok(t) => Zeroizing::new(t.to_string()),
        Err(e) => return (Err(e), None),
    };
    // An access token of a managed identity is known in memory (or refused there); any other
    // unknown token is refused in memory too: neither costs a commit.
    let caller = if token.starts_with(identity::ACCESS_PREFIX) {
        match state.identities.lookup(&token) {
            identity::Lookup::Valid(handle) => Caller::Issued(handle),
            identity::Lookup::Expired => return (Err(identity::expired()), None),
            identity::Lookup::Unknown => {
                state.gate.refuse(peer.ip());
                return (Err(auth::unknown_token()), None);
            }
        }
    } else {
        match state.policy {
            Policy::AnyToken => Caller::Token(None),
            Policy::Tokens => match state.gate.check(&token, peer.ip()) {
                refusals::Check::Refuse => return (Err(auth::unknown_token()), None),
                refusals::Check::Consult(id) => Caller::Token(Some(id)),
            },
        }
    };
    let parsed = (|| {
        let host = http::host(&parts.headers, &parts.uri, &state.fallback_host)?;
        let query = http::Query::parse(&parts.uri)?;
        let api_version = routes::api_version(&query)?;
        let route = Route::parse(&parts.method, parts.uri.path())?;
        Ok::<_, ApiError>(Call {
            route,
            query,
            api_version,
            body: None,
            ctx: Ctx {
                base: format!("https://{host}"),
                recovery_level: state.recovery_level,
                recoverable_days: state.recoverable_days,
            },
        })
    })();
    let needs_body = matches!(&parsed, Ok(c) if c.route.needs_body());
    let st = state.clone();
    if !needs_body {
        // One trip to the blocking pool: who the caller is, then the operation.
        let outcome = blocking(move || {
            let handle = identify(&st, &token, caller)?;
            let actor = handle.actor().to_string();
            Ok(match parsed {
                Ok(call) => (routes::execute(&handle, &call), actor),
                Err(e) => (Err(e), actor),
            })
        })
        .await;
        return match outcome {
            Ok((r, actor)) => (r, Some(actor)),
            Err(e) => (Err(e), None),
        };
    }
    // A body is read only from a caller the vault knows.
    let identified = blocking(move || {
        let handle = identify(&st, &token, caller)?;
        let actor = handle.actor().to_string();
        Ok((handle, actor))
    })
    .await;
    let (handle, actor) = match identified {
        Ok(x) => x,
        Err(e) => return (Err(e), None),
    };
    let mut call = match parsed {
        Ok(c) => c,
        Err(e) => return (Err(e), Some(actor)),
    };
    match http::read_body(&parts.headers, body, state.max_body).await {
        Ok(b) => call.body = Some(b),
        Err(e) => return (Err(e), Some(actor)),
    }
    let outcome = blocking(move || routes::execute(&handle, &call)).await;
    (outcome, Some(actor))
}

/// Who presented a token, as far as memory tells.
enum Caller {
    /// An access token this server issued to a managed identity: its handle.
    Issued(Vault),
    /// A token for the vault to look up (with its public id, for the gate).
    Token(Option<refusals::TokenId>),
}

/// The handle for `token` (blocking); a token the vault confirms is remembered by the gate.
fn identify(state: &State, token: &str, caller: Caller) -> Result<Vault, ApiError> {
    let consulted = match caller {
        Caller::Issued(handle) => return Ok(handle),
        Caller::Token(id) => id,
    };
    let handle = auth::identify(&state.vault, state.policy, token)?;
    if let Some(id) = consulted {
        state.gate.known(id);
    }
    Ok(handle)
}
