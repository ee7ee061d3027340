//! Secret names and environment variable names: `db-password` is `DB_PASSWORD`.
//!
//! Secret names hold `0-9a-zA-Z-` and compare case-insensitively; environment variables
//! conventionally hold `A-Z0-9_`. A name maps to a variable by upper-casing it and turning `-`
//! into `_`; a variable maps back by lower-casing it and turning `_` into `-`. Both ways are
//! one-to-one on the names the vault tells apart.

use tresor::validate_name;

use crate::error::{CliError, CliResult, describe, quote};
use crate::output::escape;

/// The prefix of tresor's own variables (credentials, vault, settings): never passed to a
/// child of `run`, never set from a secret, never written by `export`.
pub const OWN_PREFIX: &str = "TRESOR_";

/// Variables that change how a program, its dynamic loader or its language runtime starts, or
/// that make it run another command: a secret that sets one can run code in the child. Compared
/// ignoring case. Names ending in `*` are prefixes.
pub const DENIED_ENV: &[&str] = &[
    // The dynamic loader (glibc, musl, macOS) and the C library.
    "LD_*",
    "DYLD_*",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "LOCPATH",
    "NLSPATH",
    "HOSTALIASES",
    "MALLOC_*",
    // Shells: startup files, options, prompts, the search path.
    "PATH",
    "BASH_ENV",
    "ENV",
    "BASH_FUNC_*",
    "SHELLOPTS",
    "BASHOPTS",
    "IFS",
    "PS0",
    "PS1",
    "PS2",
    "PS3",
    "PS4",
    "PROMPT_COMMAND",
    "CDPATH",
    "GLOBIGNORE",
    "ZDOTDIR",
    "HOME",
    "SHELL",
    // Language runtimes.
    "PYTHON*",
    "PERL5*",
    "PERLLIB",
    "PERLIO",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
    "NODE_PATH",
    "NODE_EXTRA_CA_CERTS",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "LUA_INIT*",
    "LUA_PATH*",
    "LUA_CPATH*",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    "TCLLIBPATH",
    "DOTNET_STARTUP_HOOKS",
    "GODEBUG",
    // Programs that run another command named in the environment.
    "EDITOR",
    "VISUAL",
    "PAGER",
    "GIT_PAGER",
    "MANPAGER",
    "LESSOPEN",
    "LESSCLOSE",
    "BROWSER",
    "SSH_ASKPASS",
    "SUDO_ASKPASS",
    "GIT_ASKPASS",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH",
    "GIT_PROXY_COMMAND",
    "GIT_CONFIG*",
];

/// Whether `var` is on [`DENIED_ENV`].
pub fn is_denied_env(var: &str) -> bool {
    let var = var.to_ascii_uppercase();
    DENIED_ENV.iter().any(|d| match d.strip_suffix('*') {
        Some(prefix) => var.starts_with(prefix),
        None => var == *d,
    })
}

/// Whether `var` is one of tresor's own variables.
pub fn is_own_env(var: &str) -> bool {
    var.to_ascii_uppercase().starts_with(OWN_PREFIX)
}

/// Refuses to put the secret `secret` in the variable `var` (for `run` and `export`) when the
/// variable is tresor's own, or is on [`DENIED_ENV`] and not in `allowed` (`--allow-env`).
pub fn check_env(var: &str, secret: &str, allowed: &[String]) -> CliResult<()> {
    if is_own_env(var) {
        return Err(CliError::new(format!(
            "the secret {} would set {}, one of tresor's own variables, which are never \
             passed on",
            quote(secret),
            escape(var)
        )));
    }
    if is_denied_env(var) && !allowed.iter().any(|a| a.eq_ignore_ascii_case(var)) {
        return Err(CliError::new(format!(
            "the secret {} would set {}, which changes how a program starts or what it runs; \
             refused (allow it with --allow-env {})",
            quote(secret),
            escape(var),
            escape(var)
        )));
    }
    Ok(())
}

/// The environment variable for a secret: `db-password` → `DB_PASSWORD`.
pub fn env_var(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// The secret name for an environment variable: `DB_PASSWORD` → `db-password`.
pub fn secret_name(var: &str) -> CliResult<String> {
    let name = var.to_ascii_lowercase().replace('_', "-");
    validate_name(&name).map_err(|e| {
        CliError::new(format!(
            "cannot map {} to a secret name: {}",
            quote(var),
            describe(&e, None)
        ))
    })?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_variables_are_denied() {
        for var in [
            "LD_PRELOAD",
            "ld_preload",
            "DYLD_INSERT_LIBRARIES",
            "BASH_ENV",
            "ENV",
            "PATH",
            "IFS",
            "PS4",
            "SHELLOPTS",
            "BASHOPTS",
            "NODE_OPTIONS",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PERL5OPT",
            "PERL5LIB",
            "RUBYOPT",
            "JAVA_TOOL_OPTIONS",
            "_JAVA_OPTIONS",
            "GCONV_PATH",
        ] {
            assert!(is_denied_env(var), "{var}");
            assert!(check_env(var, "s", &[]).is_err(), "{var}");
            assert!(check_env(var, "s", &[var.to_string()]).is_ok(), "{var}");
        }
        for var in [
            "DB_PASSWORD",
            "API_KEY",
            "PATHOLOGY",
            "ENVIRONMENT",
            "NODE_ENV",
            "LDAP",
        ] {
            assert!(!is_denied_env(var), "{var}");
            assert!(check_env(var, "s", &[]).is_ok(), "{var}");
        }
        let own = check_env(
            "TRESOR_KEY_FILE",
            "tresor-key-file",
            &["TRESOR_KEY_FILE".into()],
        );
        assert!(own.is_err());
    }

    #[test]
    fn both_ways() {
        assert_eq!(env_var("db-password"), "DB_PASSWORD");
        assert_eq!(env_var("ApiKey2"), "APIKEY2");
        assert_eq!(secret_name("DB_PASSWORD").unwrap(), "db-password");
        assert_eq!(secret_name("api_key_2").unwrap(), "api-key-2");
        assert!(secret_name("DB.PASSWORD").is_err());
        assert!(secret_name("").is_err());
        for name in ["a", "db-password", "x-1-y"] {
            assert_eq!(secret_name(&env_var(name)).unwrap(), name);
        }
    }
}
