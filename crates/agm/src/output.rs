//! The CLI's output layer: the only place that prints.
//!
//! Data goes to stdout (a line, a table, or JSON for scripts); errors, warnings and
//! instructions meant for a person at a terminal go to stderr, so that
//! `agm ... --json | jq` and `KEY=$(agm keys create)` get only the data.
//!
//! Text often carries what came from outside (e-mails, names, reasons from a file or
//! from Google): every function here writes control characters out (`\x1b`, `\r`,
//! `\u{202e}`) so that none of it can move the cursor, recolour or rewrite the
//! terminal. Only the line breaks and tabs of multi-line text are kept, and never in
//! errors, warnings or table cells. JSON is escaped by serde.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

use serde::Serialize;

/// A line of a command's output, on stdout.
pub fn line(text: &str) {
    println!("{}", escape_controls(text, Breaks::Keep));
}

/// A user error: one line on stderr that says what to do.
pub fn error(text: &str) {
    eprintln!("agm: {}", escape_controls(text, Breaks::Escape));
}

/// Something the user should know that is not a failure, on stderr.
pub fn warn(text: &str) {
    eprintln!("agm: warning: {}", escape_controls(text, Breaks::Escape));
}

/// Instructions or progress for the person at the terminal, on stderr.
pub fn note(text: &str) {
    eprintln!("{}", escape_controls(text, Breaks::Keep));
}

/// Progress for a person watching, on stderr; quiet when stdout is not a terminal.
pub fn progress(text: &str) {
    if std::io::stdout().is_terminal() {
        eprintln!("{}", escape_controls(text, Breaks::Keep));
    }
}

/// A prompt on stderr, with no line break, flushed so that it shows before input.
pub fn prompt(text: &str) {
    eprint!("{}", escape_controls(text, Breaks::Escape));
    let _ = std::io::stderr().flush();
}

/// `text` as one line: line breaks and every other control character written out. For
/// a value from outside (an e-mail or a reason from a file) inside a line of output.
pub fn one_line(text: &str) -> Cow<'_, str> {
    escape_controls(text, Breaks::Escape)
}

/// Whether [`escape_controls`] keeps line breaks and tabs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Breaks {
    Keep,
    Escape,
}

/// `text` with every control character (C0, DEL, C1) and every bidirectional override
/// written out as an escape, `\n` and `\t` kept if `breaks` says so. Borrows when there is
/// nothing to escape, as almost always.
fn escape_controls(text: &str, breaks: Breaks) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && !(breaks == Breaks::Keep && matches!(c, '\n' | '\t'))) || is_bidi(c)
    };
    if !text.contains(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !unsafe_char(c) {
            out.push(c);
            continue;
        }
        let _ = match c {
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            '\t' => out.write_str("\\t"),
            c if c.is_ascii() => write!(out, "\\x{:02x}", u32::from(c)),
            c => write!(out, "\\u{{{:x}}}", u32::from(c)),
        };
    }
    Cow::Owned(out)
}

/// The characters that reorder what follows them on screen (a name could otherwise
/// show as another).
fn is_bidi(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `value` as pretty JSON on stdout.
pub fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{text}");
    Ok(())
}

/// A table on stdout: a header row, then one row per item, columns aligned with two
/// spaces between them. An empty cell shows as `-`.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    for text in table_lines(headers, rows) {
        println!("{text}");
    }
}

fn table_lines(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let cell = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            escape_controls(s, Breaks::Escape).into_owned()
        }
    };
    let all: Vec<Vec<String>> = std::iter::once(headers.iter().map(|h| (*h).to_owned()).collect())
        .chain(rows.iter().map(|r| r.iter().map(|c| cell(c)).collect()))
        .collect();
    let mut widths = vec![0usize; headers.len()];
    for row in &all {
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(text.chars().count());
        }
    }
    all.iter()
        .map(|row| {
            let mut out = String::new();
            for (i, text) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    out.push_str(text);
                } else {
                    let pad = widths
                        .get(i)
                        .copied()
                        .unwrap_or(0)
                        .saturating_sub(text.chars().count());
                    out.push_str(text);
                    out.push_str(&" ".repeat(pad + 2));
                }
            }
            out.trim_end().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_written_out() {
        let hostile = "eve@x.test\u{1b}]0;owned\u{7}\r\u{9b}2J\u{202e}moc.evil";
        let shown = escape_controls(hostile, Breaks::Keep);
        assert_eq!(
            shown,
            "eve@x.test\\x1b]0;owned\\x07\\r\\u{9b}2J\\u{202e}moc.evil"
        );
        assert!(!shown.chars().any(char::is_control));
        assert_eq!(escape_controls("a\n\tb", Breaks::Keep), "a\n\tb");
        assert_eq!(escape_controls("a\n\tb", Breaks::Escape), "a\\n\\tb");
        assert!(matches!(
            escape_controls("plain alice@example.com", Breaks::Escape),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn table_cells_are_one_line_each() {
        let lines = table_lines(&["EMAIL"], &[vec!["a\nb\u{1b}[2J".into()]]);
        assert_eq!(lines, ["EMAIL", "a\\nb\\x1b[2J"]);
    }

    #[test]
    fn tables_align_and_fill_empty_cells() {
        let lines = table_lines(
            &["ID", "EMAIL", "STATE"],
            &[
                vec!["1a".into(), "alice@x".into(), "active".into()],
                vec!["2b2b".into(), String::new(), "disabled: why".into()],
            ],
        );
        assert_eq!(
            lines,
            [
                "ID    EMAIL    STATE",
                "1a    alice@x  active",
                "2b2b  -        disabled: why",
            ]
        );
    }
}
