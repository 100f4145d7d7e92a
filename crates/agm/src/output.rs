//! The CLI's output layer: the only place that prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

/// A line of a command's output, on stdout.
pub fn line(text: &str) {
    println!("{text}");
}

/// A user error: one line on stderr that says what to do.
pub fn error(text: &str) {
    eprintln!("agm: {text}");
}
