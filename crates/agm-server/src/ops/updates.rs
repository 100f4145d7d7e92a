//! Update notices: the newest release from `[updates] url` (GitHub's releases API
//! shape: `tag_name`, `html_url`), compared with this build by semantic version. One
//! implementation for `agm update check` and the background job of `agm serve`; both
//! write the result to the shared state (`updates:latest`), where the console reads it. The
//! request path never looks at any of it.

use std::time::Duration;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::config::UpdatesSection;
use crate::state::{Key, Shared, StateError, keys};
/// How long one check may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The first check of `agm serve` waits this long (or one interval, if shorter), so a
/// start costs nothing and a short-lived run asks nothing.
const STARTUP_DELAY: Duration = Duration::from_secs(30);

/// This build's version.
pub fn current() -> Version {
    Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or_else(|_| Version::new(0, 0, 0))
}

/// The newest release, as the releases URL names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: Version,
    /// The tag as written (`v0.2.0`): what `cargo install --tag` takes.
    pub tag: String,
    /// The release page (the releases URL when the answer names none).
    pub url: String,
}

impl Release {
    /// True when this release is newer than `current`.
    pub fn is_newer_than(&self, current: &Version) -> bool {
        self.version > *current
    }

    /// The command that installs this release.
    pub fn update_command(&self) -> String {
        format!(
            "cargo install --locked --git https://github.com/agm-gateway/agm --tag {} agm",
            self.tag
        )
    }

    /// One line for the user: newer (with the link and the command), or up to date.
    pub fn verdict(&self, current: &Version) -> String {
        if self.is_newer_than(current) {
            format!(
                "agm {} is out (this is {current}): see {}; update with `{}`, or download the release",
                self.version,
                self.url,
                self.update_command()
            )
        } else {
            format!(
                "agm {current} is up to date (the newest release is {})",
                self.version
            )
        }
    }
}

/// Why a check found no release.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot reach {url}; check the connection or [updates] url ({detail})")]
    Unreachable { url: String, detail: String },
    #[error("{url} answered {status}; check [updates] url, or try again later")]
    Status { url: String, status: u16 },
    #[error("{url} did not answer with a release (tag_name): {detail}")]
    Malformed { url: String, detail: String },
    #[error("the newest release's tag {tag:?} is not a version")]
    NotAVersion { tag: String },
}

#[derive(Deserialize)]
struct ReleaseAnswer {
    tag_name: String,
    #[serde(default)]
    html_url: Option<String>,
}

/// Asks `url` for the newest release.
pub async fn check(url: &str) -> Result<Release, CheckError> {
    let unreachable = |e: reqwest::Error| CheckError::Unreachable {
        url: url.to_owned(),
        detail: e.without_url().to_string(),
    };
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("agm/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(unreachable)?;
    let response = http
        .get(url)
        .header("accept", "application/vnd.github+json")
        .send()
        .await
        .map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(CheckError::Status {
            url: url.to_owned(),
            status: response.status().as_u16(),
        });
    }
    let body = response.bytes().await.map_err(unreachable)?;
    let answer: ReleaseAnswer =
        serde_json::from_slice(&body).map_err(|e| CheckError::Malformed {
            url: url.to_owned(),
            detail: e.to_string(),
        })?;
    let tag = answer.tag_name.trim().to_owned();
    let version = Version::parse(tag.trim_start_matches('v'))
        .map_err(|_| CheckError::NotAVersion { tag: tag.clone() })?;
    let page = answer
        .html_url
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .unwrap_or_else(|| url.to_owned());
    Ok(Release {
        version,
        tag,
        url: page,
    })
}

/// The last check's result, as stored under [`keys::UPDATE_LATEST`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latest {
    /// The newest release's version.
    pub version: String,
    pub tag: String,
    /// The release page.
    pub url: String,
    /// When it was checked (RFC 3339).
    pub checked_at: String,
}

impl Latest {
    fn of(release: &Release) -> Latest {
        Latest {
            version: release.version.to_string(),
            tag: release.tag.clone(),
            url: release.url.clone(),
            checked_at: agm_store::now_rfc3339(),
        }
    }

    /// The release again (`None` if the stored version is not one).
    pub fn release(&self) -> Option<Release> {
        Some(Release {
            version: Version::parse(&self.version).ok()?,
            tag: self.tag.clone(),
            url: self.url.clone(),
        })
    }

    /// True when the stored release is newer than this build.
    pub fn is_newer(&self) -> bool {
        self.release().is_some_and(|r| r.is_newer_than(&current()))
    }

    fn checked_at(&self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::parse(
            &self.checked_at,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
    }
}

/// A version remembered for the notices (announced, dismissed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMark {
    pub version: String,
}

/// Checks `url` and stores the result; a failed check leaves the stored one.
pub async fn check_and_store(shared: &Shared, url: &str) -> Result<Release, CheckError> {
    let release = check(url).await?;
    if let Err(e) = shared
        .put(&keys::UPDATE_LATEST, &Latest::of(&release))
        .await
    {
        tracing::debug!(error = %e, "could not store the update check");
    }
    Ok(release)
}

/// The last stored check, if any.
pub async fn load(shared: &Shared) -> Result<Option<Latest>, StateError> {
    shared.get(&keys::UPDATE_LATEST).await
}

async fn version_at(shared: &Shared, key: &Key<VersionMark>) -> Option<String> {
    shared.get(key).await.ok().flatten().map(|m| m.version)
}

async fn set_version_at(
    shared: &Shared,
    key: &Key<VersionMark>,
    version: &str,
) -> Result<(), StateError> {
    let mark = VersionMark {
        version: version.to_owned(),
    };
    shared.put(key, &mark).await
}

/// The version dismissed in the console, if any.
pub async fn dismissed(shared: &Shared) -> Option<String> {
    version_at(shared, &keys::UPDATE_DISMISSED).await
}

/// Hides the notice of `version` (the console's dismiss); a newer one shows again.
pub async fn dismiss(shared: &Shared, version: &str) -> Result<(), StateError> {
    set_version_at(shared, &keys::UPDATE_DISMISSED, version).await
}

/// The newest version announced in `agm serve`'s log, if any.
pub async fn announced(shared: &Shared) -> Option<String> {
    version_at(shared, &keys::UPDATE_ANNOUNCED).await
}

/// What the console shows: the last check, whether it is newer, and whether the user
/// dismissed its notice.
pub async fn status(
    shared: &Shared,
    config: &UpdatesSection,
) -> Result<serde_json::Value, StateError> {
    let latest = load(shared).await?;
    let dismissed = dismissed(shared).await;
    let newer = latest.as_ref().is_some_and(Latest::is_newer);
    let show = newer
        && latest
            .as_ref()
            .is_some_and(|l| dismissed.as_deref() != Some(l.version.as_str()));
    let command = latest
        .as_ref()
        .and_then(Latest::release)
        .filter(|_| newer)
        .map(|r| r.update_command());
    Ok(serde_json::json!({
        "check": config.check,
        "current": current().to_string(),
        "latest": latest,
        "newer": newer,
        "dismissed": dismissed,
        "show": show,
        "command": command,
    }))
}

/// Logs a newer release once per version (remembered under [`keys::UPDATE_ANNOUNCED`]).
async fn announce(shared: &Shared, release: &Release) {
    if !release.is_newer_than(&current()) {
        return;
    }
    let version = release.version.to_string();
    if announced(shared).await.as_deref() == Some(version.as_str()) {
        return;
    }
    tracing::warn!(
        version = %version,
        url = %release.url,
        "agm {version} is out (this is {}): see {}; update with `{}`",
        current(),
        release.url,
        release.update_command()
    );
    if let Err(e) = set_version_at(shared, &keys::UPDATE_ANNOUNCED, &version).await {
        tracing::debug!(error = %e, "could not remember the announced version");
    }
}

/// How long until the next check is due: one interval after the stored check, but
/// never sooner than `first` from now.
async fn first_wait(shared: &Shared, interval: Duration, first: Duration) -> Duration {
    let since = load(shared)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.checked_at())
        .map(|at| time::OffsetDateTime::now_utc() - at)
        .and_then(|age| Duration::try_from(age).ok());
    match since {
        Some(age) if age < interval => (interval - age).max(first),
        _ => first,
    }
}

/// The background job of `agm serve`: checks every `[updates] interval` (the first
/// check shortly after start, unless the stored one is still fresh), stores the
/// result and announces a newer release once. Returns at once when
/// `[updates] check = false`.
pub async fn watch(shared: Shared, config: UpdatesSection, may_run: impl Fn() -> bool) {
    if !config.check {
        return;
    }
    let interval = config.interval;
    let mut wait = first_wait(&shared, interval, STARTUP_DELAY.min(interval)).await;
    loop {
        tokio::time::sleep(wait).await;
        if !may_run() {
            // Cluster mode: the leader checks; this replica asks again later.
            wait = STARTUP_DELAY.min(interval);
            continue;
        }
        match check_and_store(&shared, &config.url).await {
            Ok(release) => announce(&shared, &release).await,
            Err(e) => tracing::debug!(error = %e, "update check failed"),
        }
        wait = interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(v: &str) -> Release {
        Release {
            version: Version::parse(v).unwrap(),
            tag: format!("v{v}"),
            url: "https://x/r".into(),
        }
    }

    #[test]
    fn newer_releases_say_how_to_update() {
        let v = |s: &str| Version::parse(s).unwrap();
        let newer = release("0.2.0").verdict(&v("0.1.0"));
        assert!(
            newer.starts_with("agm 0.2.0 is out (this is 0.1.0)"),
            "{newer}"
        );
        assert!(newer.contains("--tag v0.2.0"), "{newer}");
        assert!(newer.contains("https://x/r"), "{newer}");
        assert_eq!(
            release("0.2.0").verdict(&v("0.2.0")),
            "agm 0.2.0 is up to date (the newest release is 0.2.0)"
        );
        // Semantic, not textual: 0.10.0 is newer than 0.9.0; a pre-release is older.
        assert!(release("0.10.0").is_newer_than(&v("0.9.0")));
        assert!(!release("0.2.0-rc.1").is_newer_than(&v("0.2.0")));
        assert!(release("0.2.0").verdict(&v("0.3.0")).contains("up to date"));
    }
}
