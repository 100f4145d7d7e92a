//! `agm update check`: compares this version with the newest release and says how to
//! update. It only reads `[updates] url` (GitHub's releases API by default); nothing is
//! downloaded or installed.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use semver::Version;
use serde::Deserialize;

use crate::commands::load_config;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Compare this version with the newest release
    Check,
}

#[derive(Deserialize)]
struct Release {
    tag_name: String,
    #[serde(default)]
    html_url: Option<String>,
}

pub async fn run(explicit: Option<&Path>, command: UpdateCommand) -> anyhow::Result<()> {
    let UpdateCommand::Check = command;
    let (loaded, _env) = load_config(explicit)?;
    let url = &loaded.config.updates.url;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("agm/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let response = http
        .get(url)
        .header("accept", "application/vnd.github+json")
        .send()
        .await
        .with_context(|| format!("cannot reach {url}; check the connection or [updates] url"))?;
    if !response.status().is_success() {
        bail!(
            "{url} answered {}; check [updates] url, or try again later",
            response.status()
        );
    }
    let release: Release = response
        .json()
        .await
        .with_context(|| format!("{url} did not answer with a release (tag_name)"))?;
    let current = Version::parse(env!("CARGO_PKG_VERSION"))?;
    let newest = Version::parse(release.tag_name.trim_start_matches('v')).with_context(|| {
        format!(
            "the newest release's tag {:?} is not a version",
            release.tag_name
        )
    })?;
    let page = release.html_url.unwrap_or_else(|| url.clone());
    output::line(&verdict(&current, &newest, &release.tag_name, &page));
    Ok(())
}

fn verdict(current: &Version, newest: &Version, tag: &str, page: &str) -> String {
    if newest > current {
        format!(
            "agm {newest} is out (this is {current}): see {page}; update with `cargo install --locked --git https://github.com/agm-gateway/agm --tag {tag} agm`, or download the release"
        )
    } else {
        format!("agm {current} is up to date (the newest release is {newest})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_releases_say_how_to_update() {
        let v = |s: &str| Version::parse(s).unwrap();
        let newer = verdict(&v("0.1.0"), &v("0.2.0"), "v0.2.0", "https://x/r");
        assert!(newer.starts_with("agm 0.2.0 is out (this is 0.1.0)"));
        assert!(newer.contains("--tag v0.2.0"));
        assert_eq!(
            verdict(&v("0.2.0"), &v("0.2.0"), "v0.2.0", "p"),
            "agm 0.2.0 is up to date (the newest release is 0.2.0)"
        );
        assert!(verdict(&v("0.2.0"), &v("0.2.0-rc.1"), "v0.2.0-rc.1", "p").contains("up to date"));
    }
}
