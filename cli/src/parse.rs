//! Parsers of argument values. A value that does not parse is a usage error (exit status 2).

use std::time::Duration;

use tresor::{Checkpoint, KdfParams, Timestamp, VersionId};

use crate::time;

/// `--profile`: a file name stem, nothing that could leave `.tresor/`.
pub fn profile(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_string())
    } else {
        Err("a profile is 1-64 characters of 0-9, a-z, A-Z, '-' and '_'".into())
    }
}

/// `--tag K=V`.
pub fn tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected K=V with a non-empty K".into()),
    }
}

/// `--env VAR=NAME`.
pub fn env_mapping(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((var, name)) if !var.is_empty() && !name.is_empty() && !var.contains('\0') => {
            Ok((var.to_string(), name.to_string()))
        }
        _ => Err("expected VAR=NAME (an environment variable and a secret name)".into()),
    }
}

/// `--expires`, `--not-before`.
pub fn when(s: &str) -> Result<Timestamp, String> {
    time::parse_when(s, time::now()).ok_or_else(|| {
        "expected an RFC 3339 time (2026-01-31T12:00:00Z), a date (2026-01-31) \
         or a duration from now (90d, 12h, 30m)"
            .into()
    })
}

/// `--expiring`.
pub fn duration(s: &str) -> Result<Duration, String> {
    time::parse_duration(s).ok_or_else(|| "expected a duration such as 30d, 12h or 1h30m".into())
}

/// An idle timeout (`agent --idle`): a duration, or `0` for none.
pub fn idle(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    duration(s)
}

/// `--version`, `--if-version`.
pub fn version(s: &str) -> Result<VersionId, String> {
    s.parse()
        .map_err(|_| "a version id is 32 hexadecimal characters".into())
}

/// `--expect-checkpoint`.
pub fn checkpoint(s: &str) -> Result<Checkpoint, String> {
    s.parse()
        .map_err(|_| "expected a checkpoint printed by `tresor checkpoint`".into())
}

/// `--kdf`.
pub fn kdf(s: &str) -> Result<KdfParams, String> {
    match s {
        "default" => return Ok(KdfParams::DEFAULT),
        "min" | "minimum" => return Ok(KdfParams::MINIMUM),
        _ => {}
    }
    let parts: Vec<&str> = s.split(',').collect();
    let nums: Option<Vec<u32>> = parts.iter().map(|p| p.trim().parse().ok()).collect();
    match nums.as_deref() {
        Some(&[memory_kib, iterations, parallelism]) => Ok(KdfParams {
            memory_kib,
            iterations,
            parallelism,
        }),
        _ => Err("expected `default`, `min`, or MEMORY_KIB,ITERATIONS,PARALLELISM".into()),
    }
}

/// The one value `settings --purge-protection` takes.
#[derive(Clone, Copy, Debug)]
pub struct On;

/// `settings --purge-protection on`.
pub fn purge_protection(s: &str) -> Result<On, String> {
    match s {
        "on" => Ok(On),
        "off" => Err("purge protection cannot be turned off: once on, it stays on".into()),
        _ => Err("the only value is `on`".into()),
    }
}

/// `settings --max-versions N|none`.
#[derive(Clone, Copy, Debug)]
pub enum MaxVersions {
    /// At most this many.
    Limit(u32),
    /// No limit.
    Unlimited,
}

/// `settings --max-versions`.
pub fn max_versions(s: &str) -> Result<MaxVersions, String> {
    if s == "none" {
        return Ok(MaxVersions::Unlimited);
    }
    match s.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(MaxVersions::Limit(n)),
        _ => Err("expected a number of versions (at least 1) or `none`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_mappings() {
        assert_eq!(tag("env=prod"), Ok(("env".into(), "prod".into())));
        assert_eq!(tag("k=a=b"), Ok(("k".into(), "a=b".into())));
        assert_eq!(tag("k="), Ok(("k".into(), String::new())));
        assert!(tag("=v").is_err());
        assert!(tag("novalue").is_err());
        assert_eq!(
            env_mapping("DB=db-password"),
            Ok(("DB".into(), "db-password".into()))
        );
        assert!(env_mapping("DB=").is_err());
        assert!(env_mapping("=x").is_err());
    }

    #[test]
    fn profiles() {
        assert!(profile("dev").is_ok());
        assert!(profile("prod_eu-1").is_ok());
        for bad in ["", "../x", "a/b", "a.b", "a b"] {
            assert!(profile(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kdf_costs() {
        assert_eq!(kdf("min"), Ok(KdfParams::MINIMUM));
        assert_eq!(kdf("default"), Ok(KdfParams::DEFAULT));
        assert_eq!(
            kdf("32768,3,2"),
            Ok(KdfParams {
                memory_kib: 32768,
                iterations: 3,
                parallelism: 2
            })
        );
        assert!(kdf("1,2").is_err());
        assert!(kdf("fast").is_err());
    }

    #[test]
    fn settings_values() {
        assert!(purge_protection("on").is_ok());
        assert!(
            purge_protection("off")
                .unwrap_err()
                .contains("cannot be turned off")
        );
        assert!(matches!(max_versions("none"), Ok(MaxVersions::Unlimited)));
        assert!(matches!(max_versions("3"), Ok(MaxVersions::Limit(3))));
        assert!(max_versions("0").is_err());
    }
}
