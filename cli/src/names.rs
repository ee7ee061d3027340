//! Secret names and environment variable names: `db-password` is `DB_PASSWORD`.
//!
//! Secret names hold `0-9a-zA-Z-` and compare case-insensitively; environment variables
//! conventionally hold `A-Z0-9_`. A name maps to a variable by upper-casing it and turning `-`
//! into `_`; a variable maps back by lower-casing it and turning `_` into `-`. Both ways are
//! one-to-one on the names the vault tells apart.

use tresor::validate_name;

use crate::error::{CliError, CliResult, describe, quote};

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
