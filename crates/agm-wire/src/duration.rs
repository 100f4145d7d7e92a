//! Go-style durations as Google writes them: `1h16m0.667s`, `510.79ms`, `42s`,
//! `0.539477544s`, `1.5µs`.

use std::time::Duration;

/// Parses a Go `time.Duration` string. `None` for anything else (including negatives).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let value: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_forms() {
        assert_eq!(parse_go_duration("42s"), Some(Duration::from_secs(42)));
        assert_eq!(
            parse_go_duration("1h16m0s"),
            Some(Duration::from_secs(4560))
        );
        assert_eq!(
            parse_go_duration("1h16m0.667s"),
            Some(Duration::from_secs_f64(4560.667))
        );
        assert_eq!(
            parse_go_duration("510.79ms"),
            Some(Duration::from_secs_f64(0.51079))
        );
        assert_eq!(
            parse_go_duration("0.539477544s"),
            Some(Duration::from_secs_f64(0.539477544))
        );
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("5µs"), Some(Duration::from_micros(5)));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "s", "10", "10x", "-5s", "1h-2m", "abc"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }
}
