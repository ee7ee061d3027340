//! Errors as the user reads them: one line, the cause in plain words, never a secret value.

use std::fmt;
use std::path::Path;

use tresor::Error;

use crate::output::escape;
use crate::time;

/// A failed command (exit status 1). The message follows `error: ` on one line.
#[derive(Debug)]
pub struct CliError(String);

/// The command line's result type.
pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        CliError(msg.into())
    }
}

impl fmt::Display for CliError {
    /// One line: any line break in a message becomes a space, any other control character is
    /// escaped (a message may quote input, and it goes to a terminal).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one_line: String = self
            .0
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        f.write_str(&escape(&one_line))
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError(describe(&e, None))
    }
}

/// A name (or path) quoted for a message, control characters escaped.
pub fn quote(s: &str) -> String {
    format!("'{}'", escape(s))
}

/// The message for a library error; `name` is the secret the command was about, if any.
pub fn describe(e: &Error, name: Option<&str>) -> String {
    let the = |fallback: &str| name.map_or_else(|| fallback.to_string(), quote);
    match e {
        Error::NotFound => match name {
            Some(n) => format!("not found: no secret named {}", quote(n)),
            None => "not found".into(),
        },
        Error::Conflict { deleted: true } => format!(
            "conflict: the name {} belongs to a deleted secret; recover or purge it first",
            the("given")
        ),
        Error::Conflict { deleted: false } => match name {
            Some(n) => format!("conflict: a secret named {} already exists", quote(n)),
            None => "conflict: a secret with this name already exists".into(),
        },
        Error::Disabled => match name {
            Some(n) => disabled(n, None),
            None => "disabled: the secret version is disabled".into(),
        },
        Error::OutsideValidity => format!(
            "outside validity: {} is not valid yet or has expired",
            the("the secret version")
        ),
        Error::WrongKey => {
            "wrong key: the key or passphrase given does not open any key slot of this vault".into()
        }
        Error::Forbidden { role, operation } => {
            format!("forbidden: the {role} role may not {operation}")
        }
        Error::PurgeProtected { until } => format!(
            "purge protected: {} may not be purged before {}",
            the("the secret"),
            time::rfc3339(*until)
        ),
        Error::VersionConflict => format!(
            "version conflict: the current version of {} is not the one expected",
            the("the secret")
        ),
        Error::InvalidName(why) => match name {
            Some(n) => format!("invalid name {}: {why}", quote(n)),
            None => format!("invalid name: {why}"),
        },
        Error::InvalidVersion => "invalid version id: expected 32 hexadecimal characters".into(),
        Error::InvalidArgument(why) => format!("invalid argument: {why}"),
        Error::ValueTooLarge { len, max } => format!(
            "value too large: {len} bytes{}, the limit is {max}",
            name.map(|n| format!(" for {}", quote(n)))
                .unwrap_or_default()
        ),
        Error::LastSlot => {
            "last key slot: it cannot be removed, the vault would not open any more".into()
        }
        Error::Locked => "locked: the vault is open in another process (or another handle)".into(),
        Error::Corrupted(why) => format!("not a tresor vault, or damaged: {why}"),
        Error::AuditBroken { seq } => format!(
            "audit chain broken at record {seq}: a record was altered, removed or reordered, or the log was cut"
        ),
        Error::MissingCredential { slot, label } => format!(
            "missing credential for key slot {slot} ({}): pass it with --also-key-file or --also-passphrase-file",
            quote(label)
        ),
        Error::Io(io) => format!("i/o error: {io}"),
        other => other.to_string(),
    }
}

/// The message for a disabled version of `name`: `version` is the one asked for, `None` for
/// the current one. The hint names the command that enables exactly that version.
pub fn disabled(name: &str, version: Option<&tresor::VersionId>) -> String {
    match version {
        Some(v) => format!(
            "disabled: version {v} of {} is disabled (enable it with `tresor update {} --version {v} --enable`)",
            quote(name),
            escape(name)
        ),
        None => format!(
            "disabled: the current version of {} is disabled (enable it with `tresor update {} --enable`)",
            quote(name),
            escape(name)
        ),
    }
}

/// Wraps an I/O error with the file it concerns.
pub fn io_error(what: &str, path: &Path, e: &std::io::Error) -> CliError {
    let cause = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::AlreadyExists => "it already exists".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    CliError::new(format!(
        "{what} {}: {cause}",
        quote(&path.display().to_string())
    ))
}

/// Adds the secret's name to a library error.
pub trait SecretContext<T> {
    /// Maps the error with `name` as the secret concerned.
    fn about(self, name: &str) -> CliResult<T>;
}

impl<T> SecretContext<T> for Result<T, Error> {
    fn about(self, name: &str) -> CliResult<T> {
        self.map_err(|e| CliError(describe(&e, Some(name))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_messages() {
        let e = CliError::new("first\nsecond\r\nthird");
        assert_eq!(e.to_string(), "first second  third");
        assert_eq!(quote("a\nb"), "'a\\nb'");
        let e = CliError::new("tag \u{1b}]0;owned\u{7} \u{202e}");
        assert_eq!(e.to_string(), "tag \\u{1b}]0;owned\\u{7} \\u{202e}");
    }

    #[test]
    fn causes_in_plain_words() {
        let wrong = describe(&Error::WrongKey, None);
        assert!(wrong.starts_with("wrong key"));
        let pp = describe(
            &Error::PurgeProtected {
                until: tresor::Timestamp::from_unix(1_769_860_800),
            },
            Some("db"),
        );
        assert_eq!(
            pp,
            "purge protected: 'db' may not be purged before 2026-01-31T12:00:00Z"
        );
        assert_eq!(
            describe(&Error::NotFound, Some("db")),
            "not found: no secret named 'db'"
        );
        assert!(describe(&Error::Conflict { deleted: true }, Some("db")).contains("deleted"));
        assert!(describe(&Error::Locked, None).starts_with("locked"));
    }
}
