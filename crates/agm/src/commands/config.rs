//! `agm config init|show|path`.

use std::path::Path;

use agm_server::config::{Config, DEFAULT_CONFIG_TOML, config_path, process_env};
use anyhow::{Context, bail};
use clap::Subcommand;

use crate::output;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write a commented default config file (refuses to overwrite without --force)
    Init {
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
    },
    /// Print the effective config: file, then environment overrides (secrets masked)
    Show,
    /// Print the config file's path
    Path,
}

pub fn run(explicit: Option<&Path>, command: ConfigCommand) -> anyhow::Result<()> {
    let env = process_env();
    match command {
        ConfigCommand::Path => {
            output::line(&config_path(explicit, &env).display().to_string());
        }
        ConfigCommand::Show => {
            let loaded = Config::load(explicit, &env)?;
            let source = if loaded.file_exists {
                format!("# from {} and the environment", loaded.path.display())
            } else {
                format!(
                    "# {} does not exist: defaults and the environment",
                    loaded.path.display()
                )
            };
            output::line(&source);
            output::line(&masked_toml(&loaded.config));
        }
        ConfigCommand::Init { force } => {
            let path = config_path(explicit, &env);
            if path.exists() && !force {
                bail!(
                    "{} already exists; keep it, or overwrite it with `agm config init --force`",
                    path.display()
                );
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            std::fs::write(&path, DEFAULT_CONFIG_TOML)
                .with_context(|| format!("cannot write {}", path.display()))?;
            output::line(&format!("wrote {}", path.display()));
        }
    }
    Ok(())
}

/// The config as TOML with every secret masked: the client keys, the admin password,
/// the Gemini API keys, the OAuth client secret, and the passwords in the storage URLs.
fn masked_toml(config: &Config) -> String {
    let mut shown = config.clone();
    for key in shown
        .server
        .api_keys
        .iter_mut()
        .chain(shown.safe_mode.gemini_api_keys.iter_mut())
        .chain([
            &mut shown.server.admin_password,
            &mut shown.google.oauth_client_secret,
        ])
    {
        *key = mask_secret(key);
    }
    for url in [
        &mut shown.storage.postgres_url,
        &mut shown.cluster.redis_url,
    ] {
        *url = mask_url_password(url);
    }
    toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
}

/// Enough of a secret to tell two apart, never enough to use one: the first 4
/// characters of a secret of 16 or more, then `****`; a shorter one is `****` only. An
/// empty value (not set) stays empty.
fn mask_secret(secret: &str) -> String {
    match secret.chars().count() {
        0 => String::new(),
        n if n >= 16 => format!("{}****", secret.chars().take(4).collect::<String>()),
        _ => "****".to_owned(),
    }
}

/// A URL with its password (`scheme://user:PASSWORD@host`, or a `password=` query
/// parameter) replaced by `****`. A libpq `key=value` string has its `password=` masked.
fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return mask_password_params(url, ' ');
    };
    let (head, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:****@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => format!("{path}?{}", mask_password_params(query, '&')),
        None => tail.to_owned(),
    };
    format!("{head}{authority}{tail}")
}

/// `a=1<sep>password=x` → `a=1<sep>password=****`.
fn mask_password_params(text: &str, separator: char) -> String {
    text.split(separator)
        .map(|part| match part.split_once('=') {
            Some((name, _)) if name.trim().eq_ignore_ascii_case("password") => {
                format!("{name}=****")
            }
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(&separator.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_show_at_most_four_characters_of_a_long_one() {
        assert_eq!(mask_secret("agm-0123456789abcdefghij"), "agm-****");
        assert_eq!(mask_secret("0123456789abcdef"), "0123****");
        assert_eq!(mask_secret("0123456789abcde"), "****");
        assert_eq!(mask_secret("hunter2"), "****");
        assert_eq!(mask_secret(""), "");
    }

    #[test]
    fn url_passwords_are_masked() {
        for (url, shown) in [
            (
                "postgres://agm:s3cret-pw@db.example:5432/agm?sslmode=require",
                "postgres://agm:****@db.example:5432/agm?sslmode=require",
            ),
            (
                "redis://:redispw@cache:6379/0",
                "redis://:****@cache:6379/0",
            ),
            ("rediss://default:p@ss@cache", "rediss://default:****@cache"),
            ("redis://cache:6379", "redis://cache:6379"),
            ("postgres://agm@db/agm", "postgres://agm@db/agm"),
            (
                "postgres://db/agm?user=agm&password=pw&x=1",
                "postgres://db/agm?user=agm&password=****&x=1",
            ),
            (
                "host=db user=agm password=pw dbname=agm",
                "host=db user=agm password=**** dbname=agm",
            ),
            ("", ""),
        ] {
            assert_eq!(mask_url_password(url), shown, "{url}");
        }
    }
}
