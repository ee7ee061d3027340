//! Errors as Azure Key Vault returns them: an HTTP status and
//! `{"error": {"code", "message", "innererror"?: {"code"}}}` (`innererror` left out when there is
//! none, as Azure does).
//!
//! Messages name secrets and versions, never values or tokens.

use hyper::StatusCode;
use serde_json::{Value, json};
use tresor::{Error, Role};

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Azure's error code (`SecretNotFound`, `Conflict`, `Forbidden`, `BadParameter`, …).
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
    /// The inner error code, where Azure gives one (`ObjectIsDeletedButRecoverable`, …).
    pub inner: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            inner: None,
        }
    }

    pub fn inner(mut self, code: &'static str) -> Self {
        self.inner = Some(code);
        self
    }

    /// 400 `BadParameter`.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadParameter", message)
    }

    /// 401 `Unauthorized` (sent with the bearer challenge).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    /// 403 `Forbidden` for a role that lacks the right.
    pub fn forbidden_role(role: Role, what: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("The caller's token has the {role} role, which may not {what}."),
        )
        .inner("ForbiddenByRbac")
    }

    /// 404 for a path that names no operation.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("No operation is served at {path}."),
        )
    }

    /// 405 for a known path with another method.
    pub fn method(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("The method {method} is not allowed on {path}."),
        )
    }

    /// 413 for a body over the limit.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestBodyTooLarge",
            format!("The request body is larger than {limit} bytes."),
        )
    }

    /// 408 for a body that did not arrive in time.
    pub fn body_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            "The request body did not arrive in time.",
        )
    }

    /// 500 for a failure of the server itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            message,
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(c) = self.inner {
            error["innererror"] = json!({ "code": c });
        }
        json!({ "error": error })
    }
}

/// What a failed library call was about, for messages.
#[derive(Clone, Copy, Debug)]
pub enum Subject<'a> {
    /// A live secret, maybe a version of it.
    Secret(&'a str, Option<&'a str>),
    /// A deleted secret.
    Deleted(&'a str),
    /// A backup blob.
    Backup,
    /// A listing.
    Listing,
}

/// Maps a library error to Azure's status, code and inner code.
pub fn from_vault(e: &Error, about: Subject<'_>) -> ApiError {
    let who = match about {
        Subject::Secret(n, Some(v)) => format!("{n}/{v}"),
        Subject::Secret(n, None) | Subject::Deleted(n) => n.to_string(),
        Subject::Backup | Subject::Listing => String::new(),
    };
    match e {
        Error::NotFound => match about {
            Subject::Deleted(n) => ApiError::new(
                StatusCode::NOT_FOUND,
                "SecretNotFound",
                format!("Deleted Secret not found: {n}"),
            ),
            _ => ApiError::new(
                StatusCode::NOT_FOUND,
                "SecretNotFound",
                format!(
                    "A secret with (name/id) {who} was not found in this key vault. If you \
                     recently deleted this secret you may be able to recover it using the \
                     correct recovery command."
                ),
            ),
        },
        Error::Conflict { deleted: true } => ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Secret {who} is currently in a deleted but recoverable state, and its name \
                 cannot be reused; in this state, the secret can only be recovered or purged."
            ),
        )
        .inner("ObjectIsDeletedButRecoverable"),
        Error::Conflict { deleted: false } => ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            "A secret with this name already exists in this key vault.",
        ),
        Error::Disabled => ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Operation get is not allowed on a disabled secret.",
        )
        .inner("SecretDisabled"),
        Error::OutsideValidity => ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Operation get is not allowed on a secret outside its validity window.",
        )
        .inner("SecretNotValid"),
        Error::Forbidden { role, operation } => {
            ApiError::forbidden_role(*role, operation.describe())
        }
        Error::PurgeProtected { .. } => ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Operation \"purge\" is not allowed because purge protection is enabled for this \
             vault. Key Vault service will automatically purge it after the retention period \
             has passed.",
        )
        .inner("PurgeProtectionEnabled"),
        Error::VersionConflict => ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            "The secret's current version is not the one expected.",
        ),
        Error::InvalidName(why) => {
            ApiError::bad(format!("The request URI contains an invalid name: {why}."))
        }
        Error::InvalidVersion => ApiError::new(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            format!("A secret with (name/id) {who} was not found in this key vault."),
        ),
        Error::InvalidArgument(why) => ApiError::bad(format!("Invalid parameter: {why}.")),
        Error::ValueTooLarge { len, max } => ApiError::bad(format!(
            "The secret value is {len} bytes; this vault accepts at most {max}."
        )),
        Error::InvalidBackup(why) => ApiError::bad(format!(
            "Backup blob contains invalid data ({why}). Check that the backup blob is not \
             corrupted, and that you are restoring to the vault it was taken from."
        )),
        Error::UnsupportedFormat { .. } => {
            ApiError::bad("The backup blob was made by a newer tresor.")
        }
        Error::Poisoned => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "An earlier commit failed; restart `tresor serve`.",
        ),
        other => ApiError::internal(format!("The vault failed: {}.", other.code())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_codes_and_inner_codes() {
        let e = from_vault(
            &Error::Conflict { deleted: true },
            Subject::Secret("db", None),
        );
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(
            e.body()["error"]["innererror"]["code"],
            "ObjectIsDeletedButRecoverable"
        );
        let e = from_vault(&Error::Disabled, Subject::Secret("db", None));
        assert_eq!(
            (e.status, e.code, e.inner),
            (StatusCode::FORBIDDEN, "Forbidden", Some("SecretDisabled"))
        );
        let e = from_vault(&Error::NotFound, Subject::Deleted("db"));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::NOT_FOUND, "SecretNotFound")
        );
        let e = from_vault(&Error::InvalidName("x"), Subject::Secret("a_b", None));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "BadParameter")
        );
        assert!(e.body()["error"].get("innererror").is_none());
        let e = from_vault(
            &Error::PurgeProtected {
                until: tresor::Timestamp::from_unix(0),
            },
            Subject::Deleted("db"),
        );
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.contains("purge protection"));
    }
}
