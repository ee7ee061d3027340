//! The `.env` format of `import` and `export`.
//!
//! One `KEY=value` per line; blank lines and lines starting with `#` are skipped; an optional
//! `export ` prefix is allowed. A value is either
//! - unquoted: the rest of the line, trimmed, up to a ` #` comment;
//! - single-quoted: taken literally up to the closing quote;
//! - double-quoted: with the escapes `\n`, `\r`, `\t`, `\"`, `\\`, `\$` and `` \` ``, and may
//!   span lines.
//!
//! `export` writes single quotes when the value allows it, else double quotes with escapes, so
//! that `import` reads back exactly what was written.

use crate::error::{CliError, CliResult};

/// Parses `.env` text into `(KEY, value)` pairs, in file order.
pub fn parse(text: &str) -> CliResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let line_no = i + 1;
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, rest)) = line.split_once('=') else {
            return Err(CliError::new(format!("line {line_no}: expected KEY=value")));
        };
        let key = key.trim_end();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(CliError::new(format!(
                "line {line_no}: a key holds only A-Z, a-z, 0-9 and '_'"
            )));
        }
        let rest = rest.trim_start();
        let value = if let Some(body) = rest.strip_prefix('\'') {
            let Some(end) = body.find('\'') else {
                return Err(CliError::new(format!(
                    "line {line_no}: unterminated single quote"
                )));
            };
            check_trailing(&body[end + 1..], line_no)?;
            body[..end].to_string()
        } else if let Some(body) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chunk = body.to_string();
            loop {
                match unescape_until_quote(&chunk, &mut value) {
                    Some(after) => {
                        check_trailing(&chunk[after..], line_no)?;
                        break;
                    }
                    None => match lines.next() {
                        Some((_, next)) => {
                            value.push('\n');
                            chunk = next.to_string();
                        }
                        None => {
                            return Err(CliError::new(format!(
                                "line {line_no}: unterminated double quote"
                            )));
                        }
                    },
                }
            }
            value
        } else {
            let v = match rest.find(" #") {
                Some(pos) => &rest[..pos],
                None => rest,
            };
            v.trim_end().to_string()
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// Appends the unescaped text of `s` up to an unescaped `"` to `out`; returns the index just
/// past that quote, or `None` when the line ends first.
fn unescape_until_quote(s: &str, out: &mut String) -> Option<usize> {
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some(i + 1),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, e @ ('"' | '\\' | '$' | '`'))) => out.push(e),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            other => out.push(other),
        }
    }
    None
}

fn check_trailing(rest: &str, line_no: usize) -> CliResult<()> {
    let rest = rest.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err(CliError::new(format!(
            "line {line_no}: unexpected text after the closing quote"
        )))
    }
}

/// One `KEY=value` line (with its newline) that [`parse`] reads back as `value`.
pub fn line(key: &str, value: &str) -> String {
    if !value.contains(['\'', '\n', '\r']) {
        return format!("{key}='{value}'\n");
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '"' | '\\' | '$' | '`' => {
                quoted.push('\\');
                quoted.push(c);
            }
            c => quoted.push(c),
        }
    }
    format!("{key}=\"{quoted}\"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap()
    }

    #[test]
    fn forms() {
        let text = "# comment\n\nDB_USER=app\nexport DB_PASSWORD = 'p@ss #1' \nURL=\"a\\nb \\\"q\\\" \\$HOME\"\nPLAIN=value # note\nEMPTY=\nMULTI=\"one\ntwo\"\n";
        assert_eq!(
            pairs(text),
            vec![
                ("DB_USER".into(), "app".into()),
                ("DB_PASSWORD".into(), "p@ss #1".into()),
                ("URL".into(), "a\nb \"q\" $HOME".into()),
                ("PLAIN".into(), "value".into()),
                ("EMPTY".into(), String::new()),
                ("MULTI".into(), "one\ntwo".into()),
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line) in [
            ("A=1\nnot a pair\n", "line 2"),
            ("BAD-KEY=1\n", "line 1"),
            ("A='open\n", "line 1"),
            ("A=\"open\n", "line 1"),
            ("A='x' y\n", "line 1"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with(line), "{text:?}: {e}");
        }
    }

    #[test]
    fn export_reads_back() {
        for value in [
            "",
            "plain",
            "it's",
            "two\nlines",
            "q\"uote\\ $X `y` it's",
            " spaced ",
            "#hash",
            "cr\r\n",
        ] {
            let text = line("K", value);
            assert_eq!(
                pairs(&text),
                vec![("K".to_string(), value.to_string())],
                "{text}"
            );
        }
    }
}
