//! `postgres://` URLs: what tokio-postgres takes, plus libpq's `sslmode=verify-ca`,
//! `verify-full` and `sslrootcert=PATH`, which it does not know.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};

use crate::error::{StoreError, describe_pg};

/// How far the server's certificate is checked (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsCheck {
    /// Encrypted, the certificate not checked (`prefer` and `require`, as in libpq).
    EncryptOnly,
    /// The certificate must chain to a trusted root (`verify-ca`, or `require` with
    /// `sslrootcert`).
    Chain,
    /// The chain, and the certificate must name the host (`verify-full`).
    Full,
}

/// A parsed URL.
pub(crate) struct Target {
    pub config: tokio_postgres::Config,
    pub check: TlsCheck,
    /// `sslrootcert`: the roots to trust instead of the public web's.
    pub root_cert: Option<PathBuf>,
    /// `user@host:port/database`, for messages: never the password.
    pub display: String,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
    let url = url.trim();
    let bad = |problem: String| StoreError::PostgresUrl { problem };
    let rest = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or_else(|| bad("it does not start with postgres://".to_owned()))?;
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut kept = Vec::new();
    let mut mode = None;
    let mut root_cert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = Some(percent_decode(value).map_err(bad)?),
            "sslrootcert" => root_cert = Some(PathBuf::from(percent_decode(value).map_err(bad)?)),
            _ => kept.push(pair),
        }
    }
    let (ssl_mode, mut check) = match mode.as_deref().unwrap_or("prefer") {
        "disable" => (SslMode::Disable, TlsCheck::EncryptOnly),
        "allow" | "prefer" => (SslMode::Prefer, TlsCheck::EncryptOnly),
        "require" => (SslMode::Require, TlsCheck::EncryptOnly),
        "verify-ca" => (SslMode::Require, TlsCheck::Chain),
        "verify-full" => (SslMode::Require, TlsCheck::Full),
        other => {
            return Err(bad(format!(
                "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
            )));
        }
    };
    // As libpq: a root certificate given means the chain is checked.
    if root_cert.is_some() && check == TlsCheck::EncryptOnly && ssl_mode == SslMode::Require {
        check = TlsCheck::Chain;
    }
    let rebuilt = if kept.is_empty() {
        format!("postgres://{base}")
    } else {
        format!("postgres://{base}?{}", kept.join("&"))
    };
    let mut config =
        tokio_postgres::Config::from_str(&rebuilt).map_err(|e| bad(describe_pg(&e)))?;
    config.ssl_mode(ssl_mode);
    if config.get_hosts().is_empty() {
        return Err(bad("it names no host".to_owned()));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("agm");
    }
    let display = describe(&config);
    Ok(Target {
        config,
        check,
        root_cert,
        display,
    })
}

/// `user@host:port/database`.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = config
                .get_ports()
                .get(i)
                .or_else(|| config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() { "" } else { "@" };
    format!("{user}{at}{}/{db}", hosts.join(","))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| "a %-escape in the query is broken".to_owned())?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "the query is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_prefer_tls_without_checking_like_libpq() {
        let t = parse("postgres://agm:pw@db.internal:6543/agm").unwrap();
        assert_eq!(t.display, "agm@db.internal:6543/agm");
        assert_eq!(t.config.get_ssl_mode(), SslMode::Prefer);
        assert_eq!(t.check, TlsCheck::EncryptOnly);
        assert_eq!(t.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
    }

    #[test]
    fn libpq_ssl_modes_map_onto_a_check() {
        let mode = |q: &str| {
            let t = parse(&format!("postgresql://u@h/d?{q}")).unwrap();
            (t.config.get_ssl_mode(), t.check)
        };
        assert_eq!(
            mode("sslmode=disable"),
            (SslMode::Disable, TlsCheck::EncryptOnly)
        );
        assert_eq!(
            mode("sslmode=require"),
            (SslMode::Require, TlsCheck::EncryptOnly)
        );
        assert_eq!(
            mode("sslmode=verify-ca"),
            (SslMode::Require, TlsCheck::Chain)
        );
        assert_eq!(
            mode("sslmode=verify-full"),
            (SslMode::Require, TlsCheck::Full)
        );
        assert_eq!(
            mode("sslmode=require&sslrootcert=%2Fetc%2Fca.pem"),
            (SslMode::Require, TlsCheck::Chain)
        );
        let t =
            parse("postgres://u@h/d?sslrootcert=/etc/ca.pem&options=-c%20search_path%3Dx").unwrap();
        assert_eq!(t.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(t.config.get_options(), Some("-c search_path=x"));
    }

    #[test]
    fn bad_urls_say_why_and_never_show_the_password() {
        for (url, words) in [
            ("mysql://u:hunter2@h/d", "does not start with postgres://"),
            ("postgres://u:hunter2@h/d?sslmode=always", "sslmode=always"),
            ("postgres://u:hunter2@h:notaport/d", "invalid"),
            ("postgres://u:hunter2@/d", "no host"),
        ] {
            let err = parse(url).err().unwrap();
            let message = err.to_string();
            assert!(message.contains(words), "{url}: {message}");
            assert!(!message.contains("hunter2"), "{url}: {message}");
        }
    }
}
