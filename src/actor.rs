//! Actor names: what a caller may call itself in audit records (slot labels, `Options::actor`,
//! `Vault::as_identity`).
//!
//! An actor name is free text for people, so the rules keep it honest on a terminal and in the
//! log: 1 to 128 characters; no control or invisible formatting characters (C0, DEL, C1, bidi
//! overrides and isolates, zero-width characters), which could disguise a log line; no leading
//! or trailing white space; and never the vault's own name, [`SYSTEM_ACTOR`], in any form that
//! reads as it — compared after Unicode compatibility normalisation (NFKC), in either case, and
//! by the confusable skeleton of Unicode TR 39 (so `ѕystem` with a Cyrillic `ѕ`, or fullwidth
//! `ｓｙｓｔｅｍ`, are refused too). Records also name the credential that acted, which a
//! name cannot forge; these rules keep the name from misleading a reader on its own.

use unicode_normalization::UnicodeNormalization;
use unicode_security::skeleton;

use crate::error::{Error, Result};

/// The actor named in records of what the vault does by itself (automatic purges, pruning).
pub const SYSTEM_ACTOR: &str = "system";

/// The longest actor name (and slot label), in characters.
pub(crate) const MAX_ACTOR_LEN: usize = 128;

/// Whether a character changes how text is shown rather than being shown: C0 and C1 controls,
/// DEL, bidi marks, embeddings, overrides and isolates, zero-width characters, line and paragraph
/// separators, the BOM, and other invisible format characters. Actor names and slot labels may
/// not hold them; a program printing what a writer stored should escape them.
///
/// ```
/// assert!(tresor::is_invisible_char('\u{202E}'));
/// assert!(tresor::is_invisible_char('\u{1b}'));
/// assert!(!tresor::is_invisible_char('é'));
/// ```
pub fn is_invisible_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// Whether `name` reads as [`SYSTEM_ACTOR`]: after NFKC and trimming, in either case, or by its
/// confusable skeleton.
fn reads_as_system(name: &str) -> bool {
    let folded: String = name.nfkc().collect::<String>().trim().to_lowercase();
    if folded == SYSTEM_ACTOR {
        return true;
    }
    let target: String = skeleton(SYSTEM_ACTOR).collect();
    let upper_target: String = skeleton(&SYSTEM_ACTOR.to_uppercase()).collect();
    skeleton(&folded).collect::<String>() == target
        || skeleton(&folded.to_uppercase()).collect::<String>() == upper_target
        || skeleton(name.trim()).collect::<String>() == target
}

/// Checks an actor name (or a slot label, which is the default actor) against the rules of
/// this module; `what` names it in the error ("an actor name", "a slot label").
pub(crate) fn check(name: &str, what: &str) -> Result<()> {
    let len = name.chars().count();
    if len == 0 || len > MAX_ACTOR_LEN {
        return Err(Error::invalid(format!("{what} has 1 to 128 characters")));
    }
    if name.chars().any(is_invisible_char) {
        return Err(Error::invalid(format!(
            "{what} may not hold control or invisible formatting characters"
        )));
    }
    if name.trim() != name {
        return Err(Error::invalid(format!(
            "{what} may not start or end with white space"
        )));
    }
    if reads_as_system(name) {
        return Err(Error::invalid(format!(
            "{what} may not read as \"system\", which is reserved for the vault's own audit records"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_in_any_guise_is_refused() {
        for name in [
            "system",
            "SYSTEM",
            "System",
            "ｓｙｓｔｅｍ",
            "\u{0455}ystem",
            "syst\u{0435}m",
            "\u{0405}YSTEM",
            "sys\u{00AD}tem",
            "system\u{200B}",
            "system ",
            " system",
        ] {
            assert!(check(name, "an actor name").is_err(), "{name:?} accepted");
        }
    }

    #[test]
    fn controls_and_bidi_are_refused_and_plain_names_pass() {
        for name in [
            "a\u{1b}[2Jb",
            "a\nb",
            "\u{202E}evil",
            "a\u{2066}b",
            "",
            "a\u{7f}",
        ] {
            assert!(check(name, "an actor name").is_err(), "{name:?} accepted");
        }
        assert!(check(&"x".repeat(129), "an actor name").is_err());
        for name in [
            "billing-service",
            "Jürgen Müller",
            "token:ci",
            "системный",
            "systems",
            "ops team",
        ] {
            check(name, "an actor name").unwrap();
        }
    }
}
