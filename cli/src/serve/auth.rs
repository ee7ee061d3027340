//! Who a request comes from: the bearer token, as Azure Key Vault clients send it.
//!
//! A request without `Authorization: Bearer …` gets 401 with the challenge the Azure SDKs
//! expect (`WWW-Authenticate: Bearer authorization="…/<tenant>", resource="https://vault.azure.net"`);
//! the SDKs then fetch a token from their credential and send the request again. A token is one
//! of the vault's own ([`Vault::token_identity`]): its role decides what the request may do, and
//! the request runs on a handle whose audit records name `token:<label>`.

use hyper::HeaderMap;
use hyper::header::AUTHORIZATION;
use tresor::Vault;

use super::errors::ApiError;

/// The resource the challenge names (Azure Key Vault's).
pub const RESOURCE: &str = "https://vault.azure.net";

/// The `WWW-Authenticate` header of a 401, naming `tenant` (the vault id as a GUID).
pub fn challenge(tenant: &str) -> String {
    format!(
        "Bearer authorization=\"https://login.microsoftonline.com/{tenant}\", resource=\"{RESOURCE}\""
    )
}

/// The vault id as a GUID (8-4-4-4-12 hex), used as the challenge's tenant.
pub fn tenant(vault_id: [u8; 16]) -> String {
    let h: String = vault_id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The bearer token of a request. `Err` is the 401 to send: no header, or not a bearer token.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let missing = || ApiError::unauthorized("Request is missing a Bearer token.");
    let value = headers.get(AUTHORIZATION).ok_or_else(missing)?;
    let text = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(missing());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(missing());
    }
    Ok(token)
}

/// How tokens are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Only the vault's tokens.
    Tokens,
    /// `--allow-any-token`: every bearer token is accepted with the server handle's role.
    AnyToken,
}

/// The actor of requests under `--allow-any-token`.
pub const ANY_TOKEN_ACTOR: &str = "any-token (--allow-any-token)";

/// The 401 of a token the vault does not know.
pub fn unknown_token() -> ApiError {
    ApiError::unauthorized(
        "The bearer token is not one this vault knows (never created, or revoked).",
    )
}

/// The handle a request runs on, for the token it presented. Blocking: call it off the async
/// executor. `Err` is the 401 (unknown token) or 403 (a role the server's key slot cannot grant)
/// to send.
pub fn identify(vault: &Vault, policy: Policy, token: &str) -> Result<Vault, ApiError> {
    // A token's handle names the token in its audit records (its id and role).
    let (handle, role) = match policy {
        Policy::AnyToken => (
            vault.as_identity(ANY_TOKEN_ACTOR, vault.role()),
            vault.role(),
        ),
        Policy::Tokens => match vault.token_identity(token) {
            // An identity's header is exchanged for access tokens, never used as one.
            Ok(Some(info)) if super::identity::is_identity_label(&info.label) => {
                return Err(ApiError::unauthorized(
                    "An identity header is not a bearer token: exchange it for an access token \
                     at the identity endpoint.",
                ));
            }
            Ok(Some(info)) => (vault.as_token(&info), info.role),
            Ok(None) => return Err(unknown_token()),
            Err(e) => {
                return Err(super::errors::from_vault(
                    &e,
                    super::errors::Subject::Listing,
                ));
            }
        },
    };
    handle.map_err(|_| {
        ApiError::forbidden_role(
            role,
            &format!(
                "be served: the vault was unlocked with a key slot of the {} role, which cannot \
                 act as {role}",
                vault.role()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use tresor::Role;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert!(bearer(&h).is_err());
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(bearer(&h).is_err());
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(bearer(&h).is_err());
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer tresor_ab"));
        assert_eq!(bearer(&h).unwrap(), "tresor_ab");
    }

    #[test]
    fn challenge_names_tenant_and_resource() {
        let t = tenant([0xab; 16]);
        assert_eq!(t.len(), 36);
        assert_eq!(
            challenge(&t),
            format!(
                "Bearer authorization=\"https://login.microsoftonline.com/{t}\", \
                 resource=\"https://vault.azure.net\""
            )
        );
    }

    #[test]
    fn identities_from_tokens() {
        let v = Vault::create_in_memory(
            &tresor::Credential::generate_key().unwrap(),
            tresor::Options::new(),
        )
        .unwrap();
        let t = v.create_token("app", Role::Reader).unwrap();
        let h = identify(&v, Policy::Tokens, t.expose()).unwrap();
        assert_eq!((h.actor(), h.role()), ("token:app", Role::Reader));
        let e = identify(&v, Policy::Tokens, "tresor_nope").unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::UNAUTHORIZED);
        let any = identify(&v, Policy::AnyToken, "whatever").unwrap();
        assert_eq!(any.role(), Role::Owner);
        // A reader-unlocked server cannot serve a writer token.
        let w = v.create_token("w", Role::Writer).unwrap();
        let reader_server = v.as_identity("server", Role::Reader).unwrap();
        let e = identify(&reader_server, Policy::Tokens, w.expose()).unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::FORBIDDEN);
        // An identity's header is not a bearer token.
        let i = v.create_token("identity.app", Role::Reader).unwrap();
        let e = identify(&v, Policy::Tokens, i.expose()).unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::UNAUTHORIZED);
    }
}
