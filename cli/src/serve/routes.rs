//! The secrets REST surface of Azure Key Vault: which method and path is which operation, and
//! each operation run on the caller's vault handle.
//!
//! | method | path | operation |
//! |---|---|---|
//! | PUT | `/secrets/{name}` | set (a new version) |
//! | GET | `/secrets/{name}/` or `/secrets/{name}/{version}` | get a value |
//! | PATCH | `/secrets/{name}/` or `/secrets/{name}/{version}` | update properties |
//! | DELETE | `/secrets/{name}` | soft-delete |
//! | GET | `/secrets`, `/secrets/{name}/versions` | list (pages of `maxresults` ≤ 25) |
//! | POST | `/secrets/{name}/backup`, `/secrets/restore` | backup blob, restore |
//! | GET | `/deletedsecrets`, `/deletedsecrets/{name}` | deleted secrets |
//! | POST | `/deletedsecrets/{name}/recover` | recover |
//! | DELETE | `/deletedsecrets/{name}` | purge (204) |
//!
//! Every request needs an `api-version`: 7.0 to 7.6, or a dated one from 2016-10-01 to
//! 2026-04-01.

use hyper::{Method, StatusCode};
use serde_json::Value;
use tresor::{Error, Vault, VersionId};

use super::errors::{ApiError, Subject, from_vault};
use super::http::{Query, Wiped, percent_decode};
use super::json::{self, Ctx};

/// The largest page of a listing (Azure's limit), and the size of a page when none is asked.
pub const MAX_RESULTS: usize = 25;

/// The newest `api-version` served (the Python SDK's default in azure-keyvault-secrets 4.12).
pub const NEWEST_API_VERSION: &str = "2026-04-01";

/// The oldest dated `api-version` served (`2016-10-01`, which the Python SDK still offers).
pub const OLDEST_API_VERSION: &str = "2016-10-01";

/// Whether `v` is an `api-version` this server speaks: `7.0` to `7.6` or a dated version from
/// `2016-10-01` to `2026-04-01`, either with an optional `-preview…` suffix. The secrets surface
/// served is the same for all of them.
pub fn supported_api_version(v: &str) -> bool {
    let base = v.split_once("-preview").map_or(v, |(b, _)| b);
    if let Some(minor) = base.strip_prefix("7.") {
        return matches!(minor.as_bytes(), [b'0'..=b'6']);
    }
    let b = base.as_bytes();
    let dated = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    dated && (OLDEST_API_VERSION..=NEWEST_API_VERSION).contains(&base)
}

/// The request's `api-version`, checked.
pub fn api_version(q: &Query) -> Result<String, ApiError> {
    let v = q.get("api-version").ok_or_else(|| {
        ApiError::bad(format!(
            "The request has no 'api-version' query parameter; this server accepts 7.0 to 7.6 \
             and {OLDEST_API_VERSION} to {NEWEST_API_VERSION}."
        ))
    })?;
    if !supported_api_version(v) {
        return Err(ApiError::bad(format!(
            "The api-version '{}' is not supported; this server accepts 7.0 to 7.6 and \
             {OLDEST_API_VERSION} to {NEWEST_API_VERSION}.",
            v.escape_debug()
        )));
    }
    Ok(v.to_string())
}

/// One operation of the API, with the names and version from its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    ListSecrets,
    Set(String),
    Get(String, Option<String>),
    Update(String, Option<String>),
    Delete(String),
    Versions(String),
    Backup(String),
    Restore,
    ListDeleted,
    GetDeleted(String),
    Recover(String),
    Purge(String),
}

impl Route {
    /// Whether the operation reads a request body.
    pub fn needs_body(&self) -> bool {
        matches!(self, Route::Set(_) | Route::Update(..) | Route::Restore)
    }

    /// The operation at `method` `path`: 404 for a path that names none, 405 for a known path
    /// with another method, 400 for a path that does not decode.
    pub fn parse(method: &Method, path: &str) -> Result<Route, ApiError> {
        let raw = path.strip_prefix('/').unwrap_or(path);
        let mut segs = raw
            .split('/')
            .map(|s| percent_decode(s, false))
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| ApiError::bad("The request path does not decode."))?;
        // One trailing slash is the same path without it (`/secrets/{name}/` is "latest").
        if segs.len() > 1 && segs.last().is_some_and(String::is_empty) {
            segs.pop();
        }
        let is = |s: &String, word: &str| s.eq_ignore_ascii_case(word);
        let m = method.clone();
        let wrong = || ApiError::method(method.as_str(), path);
        let route = match segs.as_slice() {
            [c] if is(c, "secrets") => match m {
                Method::GET => Route::ListSecrets,
                _ => return Err(wrong()),
            },
            [c, r] if is(c, "secrets") && is(r, "restore") && m == Method::POST => Route::Restore,
            [c, n] if is(c, "secrets") && !n.is_empty() => match m {
                Method::PUT => Route::Set(n.clone()),
                Method::GET => Route::Get(n.clone(), None),
                Method::PATCH => Route::Update(n.clone(), None),
                Method::DELETE => Route::Delete(n.clone()),
                _ => return Err(wrong()),
            },
            [c, n, v] if is(c, "secrets") && !n.is_empty() && is(v, "versions") => match m {
                Method::GET => Route::Versions(n.clone()),
                _ => return Err(wrong()),
            },
            [c, n, b] if is(c, "secrets") && !n.is_empty() && is(b, "backup") => match m {
                Method::POST => Route::Backup(n.clone()),
                _ => return Err(wrong()),
            },
            [c, n, v] if is(c, "secrets") && !n.is_empty() && !v.is_empty() => match m {
                Method::GET => Route::Get(n.clone(), Some(v.clone())),
                Method::PATCH => Route::Update(n.clone(), Some(v.clone())),
                _ => return Err(wrong()),
            },
            [c] if is(c, "deletedsecrets") => match m {
                Method::GET => Route::ListDeleted,
                _ => return Err(wrong()),
            },
            [c, n] if is(c, "deletedsecrets") && !n.is_empty() => match m {
                Method::GET => Route::GetDeleted(n.clone()),
                Method::DELETE => Route::Purge(n.clone()),
                _ => return Err(wrong()),
            },
            [c, n, r] if is(c, "deletedsecrets") && !n.is_empty() && is(r, "recover") => match m {
                Method::POST => Route::Recover(n.clone()),
                _ => return Err(wrong()),
            },
            _ => return Err(ApiError::no_route(path)),
        };
        Ok(route)
    }
}

/// A request ready to run: the route, its paging parameters and body, and what its JSON needs.
pub struct Call {
    pub route: Route,
    pub query: Query,
    pub api_version: String,
    pub body: Option<Wiped>,
    pub ctx: Ctx,
}

/// The page size asked for: `maxresults` from 1 to 25, 25 when absent.
fn max_results(q: &Query) -> Result<usize, ApiError> {
    match q.get("maxresults") {
        None | Some("") => Ok(MAX_RESULTS),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_RESULTS).contains(&n) => Ok(n),
            _ => Err(ApiError::bad(format!(
                "maxresults must be a whole number from 1 to {MAX_RESULTS}."
            ))),
        },
    }
}

fn skip_token(q: &Query) -> Option<&str> {
    q.get("$skiptoken").filter(|t| !t.is_empty())
}

/// The absolute `nextLink` of a listing at `path`.
fn next_link(call: &Call, path: &str, limit: usize, token: &str) -> String {
    format!(
        "{}{path}?api-version={}&maxresults={limit}&$skiptoken={token}",
        call.ctx.base, call.api_version
    )
}

fn version_id(name: &str, v: &str) -> Result<VersionId, ApiError> {
    v.parse::<VersionId>()
        .map_err(|e| from_vault(&e, Subject::Secret(name, Some(v))))
}

fn body_of(call: &Call) -> &[u8] {
    call.body.as_deref().map_or(&[], Vec::as_slice)
}

/// Runs `call` on `vault` (the caller's handle) and renders its JSON answer. Blocking: run it
/// off the async executor.
pub fn execute(vault: &Vault, call: &Call) -> Result<(StatusCode, Option<Wiped>), ApiError> {
    let ctx = &call.ctx;
    let ok = |v: Value| Ok((StatusCode::OK, Some(json::render(&v, None))));
    let ok_with = |v: Value, value: &str| Ok((StatusCode::OK, Some(json::render(&v, Some(value)))));
    match &call.route {
        Route::ListSecrets => {
            let limit = max_results(&call.query)?;
            let page = vault
                .list(skip_token(&call.query), limit)
                .map_err(|e| from_vault(&e, Subject::Listing))?;
            let items = page.items.iter().map(|p| ctx.item(p, false)).collect();
            let next = page.next.map(|c| next_link(call, "/secrets", limit, &c));
            ok(json::page(items, next))
        }
        Route::Versions(name) => {
            let limit = max_results(&call.query)?;
            let after = skip_token(&call.query)
                .map(|t| {
                    t.parse::<u64>()
                        .map_err(|_| ApiError::bad("$skiptoken is not a token of this listing."))
                })
                .transpose()?;
            // A secret that does not exist has no versions (an empty list, as Azure answers).
            let all = match vault.list_versions(name) {
                Ok(v) => v,
                Err(Error::NotFound) => Vec::new(),
                Err(e) => return Err(from_vault(&e, Subject::Secret(name, None))),
            };
            let mut rest = all
                .into_iter()
                .filter(|p| after.is_none_or(|a| p.sequence < a))
                .peekable();
            let page: Vec<_> = rest.by_ref().take(limit).collect();
            let next = match (rest.peek(), page.last()) {
                (Some(_), Some(last)) => Some(next_link(
                    call,
                    &format!("/secrets/{name}/versions"),
                    limit,
                    &last.sequence.to_string(),
                )),
                _ => None,
            };
            ok(json::page(
                page.iter().map(|p| ctx.item(p, true)).collect(),
                next,
            ))
        }
        Route::ListDeleted => {
            let limit = max_results(&call.query)?;
            let page = vault
                .list_deleted(skip_token(&call.query), limit)
                .map_err(|e| from_vault(&e, Subject::Listing))?;
            let items = page.items.iter().map(|d| ctx.deleted_item(d)).collect();
            let next = page
                .next
                .map(|c| next_link(call, "/deletedsecrets", limit, &c));
            ok(json::page(items, next))
        }
        Route::Get(name, version) => {
            let secret = match version {
                None => vault.get(name),
                Some(v) => vault.get_version(name, &version_id(name, v)?),
            }
            .map_err(|e| from_vault(&e, Subject::Secret(name, version.as_deref())))?;
            let text = json::value_text(&secret, name)?;
            ok_with(ctx.bundle(&secret.properties), text)
        }
        Route::Set(name) => {
            let (value, options) = json::parse_set(body_of(call))?;
            let props = vault
                .set_with(name, value.as_bytes(), &options)
                .map_err(|e| from_vault(&e, Subject::Secret(name, None)))?;
            ok_with(ctx.bundle(&props), value.as_str())
        }
        Route::Update(name, version) => {
            let update = json::parse_update(body_of(call))?;
            let id = version
                .as_deref()
                .map(|v| version_id(name, v))
                .transpose()?;
            let props = vault
                .update_properties(name, id.as_ref(), &update)
                .map_err(|e| from_vault(&e, Subject::Secret(name, version.as_deref())))?;
            ok(ctx.bundle(&props))
        }
        Route::Delete(name) => {
            let d = vault
                .delete(name)
                .map_err(|e| from_vault(&e, Subject::Secret(name, None)))?;
            ok(ctx.deleted_bundle(&d))
        }
        Route::Backup(name) => {
            let blob = vault
                .backup_secret(name)
                .map_err(|e| from_vault(&e, Subject::Secret(name, None)))?;
            ok(json::backup_result(&blob))
        }
        Route::Restore => {
            let blob = json::parse_restore(body_of(call))?;
            let props = vault
                .restore_secret(&blob)
                .map_err(|e| from_vault(&e, Subject::Backup))?;
            ok(ctx.bundle(&props))
        }
        Route::GetDeleted(name) => {
            let d = vault
                .deleted_properties(name)
                .map_err(|e| from_vault(&e, Subject::Deleted(name)))?;
            ok(ctx.deleted_bundle(&d))
        }
        Route::Recover(name) => {
            let props = vault
                .recover(name)
                .map_err(|e| from_vault(&e, Subject::Deleted(name)))?;
            ok(ctx.bundle(&props))
        }
        Route::Purge(name) => {
            vault
                .purge(name)
                .map_err(|e| from_vault(&e, Subject::Deleted(name)))?;
            Ok((StatusCode::NO_CONTENT, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(m: Method, p: &str) -> Result<Route, u16> {
        Route::parse(&m, p).map_err(|e| e.status.as_u16())
    }

    #[test]
    fn routes() {
        let s = |x: &str| x.to_string();
        assert_eq!(r(Method::GET, "/secrets"), Ok(Route::ListSecrets));
        assert_eq!(r(Method::GET, "/secrets/"), Ok(Route::ListSecrets));
        assert_eq!(r(Method::PUT, "/secrets/db"), Ok(Route::Set(s("db"))));
        assert_eq!(
            r(Method::GET, "/secrets/db/"),
            Ok(Route::Get(s("db"), None))
        );
        assert_eq!(r(Method::GET, "/secrets/db"), Ok(Route::Get(s("db"), None)));
        assert_eq!(
            r(Method::GET, "/secrets/db/abc"),
            Ok(Route::Get(s("db"), Some(s("abc"))))
        );
        assert_eq!(
            r(Method::PATCH, "/secrets/db/"),
            Ok(Route::Update(s("db"), None))
        );
        assert_eq!(r(Method::DELETE, "/secrets/db"), Ok(Route::Delete(s("db"))));
        assert_eq!(
            r(Method::GET, "/secrets/db/versions"),
            Ok(Route::Versions(s("db")))
        );
        assert_eq!(
            r(Method::POST, "/secrets/db/backup"),
            Ok(Route::Backup(s("db")))
        );
        assert_eq!(r(Method::POST, "/secrets/restore"), Ok(Route::Restore));
        assert_eq!(
            r(Method::GET, "/secrets/restore/"),
            Ok(Route::Get(s("restore"), None))
        );
        assert_eq!(r(Method::GET, "/deletedsecrets"), Ok(Route::ListDeleted));
        assert_eq!(
            r(Method::GET, "/deletedsecrets/db"),
            Ok(Route::GetDeleted(s("db")))
        );
        assert_eq!(
            r(Method::DELETE, "/deletedsecrets/db"),
            Ok(Route::Purge(s("db")))
        );
        assert_eq!(
            r(Method::POST, "/deletedsecrets/db/recover"),
            Ok(Route::Recover(s("db")))
        );
        assert_eq!(
            r(Method::GET, "/secrets/a%2Db/"),
            Ok(Route::Get(s("a-b"), None))
        );
        assert_eq!(r(Method::GET, "/keys/db"), Err(404));
        assert_eq!(r(Method::GET, "/"), Err(404));
        assert_eq!(r(Method::GET, "/secrets//"), Err(404));
        assert_eq!(r(Method::GET, "/secrets/a/b/c"), Err(404));
        assert_eq!(r(Method::POST, "/secrets"), Err(405));
        assert_eq!(r(Method::DELETE, "/secrets/db/versions"), Err(405));
        assert_eq!(r(Method::GET, "/secrets/%zz"), Err(400));
        assert!(Route::Set(s("x")).needs_body() && !Route::Delete(s("x")).needs_body());
    }

    #[test]
    fn api_versions() {
        for ok in [
            "7.0",
            "7.4",
            "7.6",
            "7.6-preview.2",
            "2016-10-01",
            "2019-09-01",
            "2025-07-01",
            "2026-04-01",
        ] {
            assert!(supported_api_version(ok), "{ok}");
        }
        for bad in [
            "",
            "7",
            "7.7",
            "7.10",
            "6.0",
            "2016-09-30",
            "2015-06-01",
            "2026-04-02",
            "2026-4-01",
            "latest",
        ] {
            assert!(!supported_api_version(bad), "{bad}");
        }
    }
}
