//! The CLI's output layer: the only place that prints.
//!
//! Data goes to stdout (a line, a table, or JSON for scripts); errors, warnings and
//! instructions meant for a person at a terminal go to stderr, so that
//! `agm ... --json | jq` and `KEY=$(agm keys create)` get only the data.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};

use serde::Serialize;

/// A line of a command's output, on stdout.
pub fn line(text: &str) {
    println!("{text}");
}

/// A user error: one line on stderr that says what to do.
pub fn error(text: &str) {
    eprintln!("agm: {text}");
}

/// Something the user should know that is not a failure, on stderr.
pub fn warn(text: &str) {
    eprintln!("agm: warning: {text}");
}

/// Instructions or progress for the person at the terminal, on stderr.
pub fn note(text: &str) {
    eprintln!("{text}");
}

/// Progress for a person watching, on stderr; quiet when stdout is not a terminal.
pub fn progress(text: &str) {
    if std::io::stdout().is_terminal() {
        eprintln!("{text}");
    }
}

/// A prompt on stderr, with no line break, flushed so that it shows before input.
pub fn prompt(text: &str) {
    eprint!("{text}");
    let _ = std::io::stderr().flush();
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
            s.to_owned()
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
