//! The account files `agm accounts import --file` and the console's import read, and
//! `agm accounts export` and the console's export write.
//!
//! agm's own export:
//!
//! ```json
//! {"version": 1, "exported_at": "2026-01-02T03:04:05Z",
//!  "accounts": [{"id": "1a2b3c4d", "email": "alice@example.com", "pool": "antigravity",
//!                "refresh_token": "1//0g...", "project_id": "p", "tier": "free-tier",
//!                "state": "active" | "disabled" | "blocked", "reason": "...", "url": "...",
//!                "created_at": "..."}]}
//! ```
//!
//! Also read: gemini-cli's `oauth_creds.json` (`{access_token, refresh_token, scope,
//! token_type, id_token, expiry_date}`, no e-mail: Google names the account), an
//! Antigravity Manager account file (`{id, email, name, token: {access_token,
//! refresh_token, expires_in, expiry_timestamp, token_type, email, project_id, ...},
//! disabled, disabled_reason, ...}`) or an array of them, and a plain list of
//! `{email, refresh_token}` objects, bare or under `"accounts"` (`refreshToken` and
//! `projectId` are accepted too). Only the refresh token is used: every account is
//! refreshed and checked with Google before it is saved.

use agm_store::{Account, AccountState, Pool};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use agm_store::rfc3339;

/// The version of the export format this agm writes and reads.
pub const EXPORT_VERSION: u64 = 1;

/// agm's export file.
#[derive(Debug, Serialize)]
pub struct ExportFile {
    pub version: u64,
    pub exported_at: String,
    pub accounts: Vec<ExportedAccount>,
}

/// One account in agm's export, secrets included.
#[derive(Debug, Serialize)]
pub struct ExportedAccount {
    pub id: String,
    pub email: String,
    pub pool: Pool,
    pub refresh_token: String,
    pub project_id: Option<String>,
    pub tier: Option<String>,
    #[serde(flatten)]
    pub state: AccountState,
    pub created_at: String,
}

impl ExportFile {
    pub fn new(accounts: &[Account], now: OffsetDateTime) -> ExportFile {
        ExportFile {
            version: EXPORT_VERSION,
            exported_at: rfc3339(now),
            accounts: accounts
                .iter()
                .map(|a| ExportedAccount {
                    id: a.id.clone(),
                    email: a.email.clone(),
                    pool: a.pool,
                    refresh_token: a.refresh_token.expose().to_owned(),
                    project_id: a.project_id.clone(),
                    tier: a.tier.clone(),
                    state: a.state.clone(),
                    created_at: rfc3339(a.created_at),
                })
                .collect(),
        }
    }
}

/// Which kind of file was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    AgmExport,
    GeminiCli,
    AntigravityManager,
    AccountList,
}

impl Format {
    pub fn describe(self) -> &'static str {
        match self {
            Format::AgmExport => "an agm export",
            Format::GeminiCli => "a gemini-cli oauth_creds.json",
            Format::AntigravityManager => "an Antigravity Manager account file",
            Format::AccountList => "a list of accounts",
        }
    }
}

/// One account read from a file: what it says, before Google has confirmed any of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The e-mail the file claims; the token's own must match it.
    pub email: Option<String>,
    pub refresh_token: String,
    pub pool: Pool,
    /// The state the file gives (an export, or Antigravity Manager's `disabled`).
    pub state: Option<AccountState>,
}

/// An entry that cannot be imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEntry {
    pub label: String,
    pub reason: String,
}

/// A parsed file: its format and its entries, in order.
#[derive(Debug)]
pub struct ImportFile {
    pub format: Format,
    pub entries: Vec<Result<Entry, BadEntry>>,
}

impl Entry {
    /// How the report names it before Google has: its e-mail, else its position.
    pub fn label(&self, index: usize) -> String {
        self.email
            .clone()
            .unwrap_or_else(|| format!("account {}", index + 1))
    }
}

/// Why one entry of a file was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "gemini-api keys are not imported as accounts; list them under [safe_mode] gemini_api_keys"
    )]
    GeminiApiKey,
    #[error(transparent)]
    Verify(#[from] crate::ops::verify::VerifyError),
    #[error("the store failed: {0}")]
    Store(#[from] agm_store::StoreError),
}

/// Checks one entry with Google and saves it, in the pool and state the file gives
/// (`agm accounts import --file` and the console's import both do this).
pub async fn import_entry(
    google: &agm_google::GoogleClient,
    store: &agm_store::Store,
    entry: Entry,
) -> Result<crate::ops::verify::Saved, ImportError> {
    use crate::ops::verify;
    if entry.pool == Pool::GeminiApi {
        return Err(ImportError::GeminiApiKey);
    }
    let verified =
        verify::from_refresh_token(google, &entry.refresh_token, entry.email.as_deref()).await?;
    Ok(verify::save(store, verified, entry.pool, entry.state).await?)
}

/// Reads any of the supported files. An error means no account could be found in it.
pub fn parse(text: &str) -> Result<ImportFile, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("it is not valid JSON ({e})"))?;
    let (format, items): (Format, Vec<&Value>) = match &value {
        Value::Array(items) => {
            let format = if items.iter().any(|i| i.get("token").is_some()) {
                Format::AntigravityManager
            } else {
                Format::AccountList
            };
            (format, items.iter().collect())
        }
        Value::Object(object) => match object.get("accounts") {
            Some(Value::Array(items)) => {
                let format = match object.get("version") {
                    None => Format::AccountList,
                    Some(v) if v.as_u64() == Some(EXPORT_VERSION) => Format::AgmExport,
                    Some(v) => {
                        return Err(format!(
                            "it is an agm export of version {v}, and this agm reads version {EXPORT_VERSION}; upgrade agm"
                        ));
                    }
                };
                (format, items.iter().collect())
            }
            Some(_) => return Err("its \"accounts\" is not a list".to_owned()),
            None if object.get("token").is_some_and(Value::is_object) => {
                (Format::AntigravityManager, vec![&value])
            }
            None if object.contains_key("refresh_token") => {
                let format = if object.contains_key("email") {
                    Format::AccountList
                } else {
                    Format::GeminiCli
                };
                (format, vec![&value])
            }
            None => return Err(unknown_file()),
        },
        _ => return Err(unknown_file()),
    };
    if items.is_empty() {
        return Err("it holds no accounts".to_owned());
    }
    let entries = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| entry(item, i))
        .collect();
    Ok(ImportFile { format, entries })
}

fn unknown_file() -> String {
    "it holds no accounts agm can read: expected an agm export ({\"version\":1,\"accounts\":[...]}), \
     a gemini-cli oauth_creds.json or an Antigravity Manager account file"
        .to_owned()
}

fn entry(item: &Value, index: usize) -> Result<Entry, BadEntry> {
    let fallback_label = format!("account {}", index + 1);
    let Some(object) = item.as_object() else {
        return Err(BadEntry {
            label: fallback_label,
            reason: "it is not a JSON object".to_owned(),
        });
    };
    let email = text(object, &["email"]).or_else(|| {
        object
            .get("token")
            .and_then(Value::as_object)
            .and_then(|t| text(t, &["email"]))
    });
    let label = email.clone().unwrap_or(fallback_label);
    let bad = |reason: String| BadEntry {
        label: label.clone(),
        reason,
    };
    let (refresh_token, state) = match object.get("token").and_then(Value::as_object) {
        // Antigravity Manager: the tokens sit in `token`, the state in `disabled`.
        Some(token) => {
            let state = object
                .get("disabled")
                .and_then(Value::as_bool)
                .filter(|d| *d)
                .map(|_| AccountState::Disabled {
                    reason: text(object, &["disabled_reason"])
                        .unwrap_or_else(|| "disabled in Antigravity Manager".to_owned()),
                });
            (text(token, &["refresh_token", "refreshToken"]), state)
        }
        None => (
            text(object, &["refresh_token", "refreshToken"]),
            state_of(object).map_err(bad)?,
        ),
    };
    let Some(refresh_token) = refresh_token else {
        return Err(bad("it has no refresh_token".to_owned()));
    };
    let pool = match text(object, &["pool"]) {
        None => Pool::Antigravity,
        Some(name) => name.parse::<Pool>().map_err(|e| bad(e.to_string()))?,
    };
    Ok(Entry {
        email,
        refresh_token,
        pool,
        state,
    })
}

/// agm's `state`, `reason`, `url`; absent means the file does not say.
fn state_of(object: &Map<String, Value>) -> Result<Option<AccountState>, String> {
    let reason = text(object, &["reason"]);
    Ok(match text(object, &["state"]).as_deref() {
        None => None,
        Some("active") => Some(AccountState::Active),
        Some("disabled") => Some(AccountState::Disabled {
            reason: reason.unwrap_or_else(|| "disabled".to_owned()),
        }),
        Some("blocked") => Some(AccountState::Blocked {
            reason: reason.unwrap_or_else(|| "blocked".to_owned()),
            url: text(object, &["url"]),
        }),
        Some(other) => {
            return Err(format!(
                "unknown state {other:?} (expected active, disabled or blocked)"
            ));
        }
    })
}

/// The first of `names` that holds a non-empty string, trimmed.
fn text(object: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| object.get(*n).and_then(Value::as_str))
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(file: &ImportFile) -> Vec<Entry> {
        file.entries.iter().cloned().map(Result::unwrap).collect()
    }

    #[test]
    fn gemini_cli_creds() {
        let file = parse(
            r#"{"access_token":"ya29.x","refresh_token":"1//0g-cli","scope":"openid",
                "token_type":"Bearer","id_token":"a.b.c","expiry_date":1760000000000}"#,
        )
        .unwrap();
        assert_eq!(file.format, Format::GeminiCli);
        assert_eq!(
            ok(&file),
            [Entry {
                email: None,
                refresh_token: "1//0g-cli".into(),
                pool: Pool::Antigravity,
                state: None,
            }]
        );
    }

    #[test]
    fn antigravity_manager_single_and_array() {
        let one = r#"{"id":"u1","email":"Alice@Example.com","name":null,
            "token":{"access_token":"ya29.a","refresh_token":"1//0g-am","expires_in":3599,
                     "expiry_timestamp":1760000000,"token_type":"Bearer","email":"alice@example.com",
                     "project_id":"p-1","is_gcp_tos":true},
            "disabled":true,"disabled_reason":"invalid_grant","created_at":1,"last_used":2}"#;
        let file = parse(one).unwrap();
        assert_eq!(file.format, Format::AntigravityManager);
        let entries = ok(&file);
        assert_eq!(entries[0].email.as_deref(), Some("Alice@Example.com"));
        assert_eq!(entries[0].refresh_token, "1//0g-am");
        assert_eq!(
            entries[0].state,
            Some(AccountState::Disabled {
                reason: "invalid_grant".into()
            })
        );

        let many = format!(
            r#"[{one}, {{"id":"u2","email":"bob@example.com","token":{{"refresh_token":"1//0g-bob"}}}},
                {{"id":"u3","email":"carol@example.com","token":{{"access_token":"only"}}}}]"#
        );
        let file = parse(&many).unwrap();
        assert_eq!(file.format, Format::AntigravityManager);
        assert_eq!(file.entries.len(), 3);
        assert_eq!(file.entries[1].as_ref().unwrap().state, None);
        assert_eq!(
            file.entries[2],
            Err(BadEntry {
                label: "carol@example.com".into(),
                reason: "it has no refresh_token".into()
            })
        );
    }

    #[test]
    fn agm_export_reads_pool_and_state() {
        let file = parse(
            r#"{"version":1,"exported_at":"2026-01-01T00:00:00Z","accounts":[
                {"id":"1","email":"a@x","pool":"code-assist","refresh_token":"t1","project_id":"p",
                 "tier":"free-tier","state":"blocked","reason":"verify","url":"https://v","created_at":"x"},
                {"id":"2","email":"b@x","pool":"vertex","refresh_token":"t2","state":"active"}]}"#,
        )
        .unwrap();
        assert_eq!(file.format, Format::AgmExport);
        let first = file.entries[0].as_ref().unwrap();
        assert_eq!(first.pool, Pool::CodeAssist);
        assert_eq!(
            first.state,
            Some(AccountState::Blocked {
                reason: "verify".into(),
                url: Some("https://v".into())
            })
        );
        let second = file.entries[1].as_ref().unwrap_err();
        assert_eq!(second.label, "b@x");
        assert!(second.reason.contains("unknown pool"), "{}", second.reason);
    }

    #[test]
    fn plain_lists_and_camel_case() {
        let file = parse(
            r#"{"accounts":[{"email":"a@x","refreshToken":"t1","projectId":"p"}],"activeIndex":0}"#,
        )
        .unwrap();
        assert_eq!(file.format, Format::AccountList);
        assert_eq!(ok(&file)[0].refresh_token, "t1");
        let file = parse(r#"[{"email":"a@x","refresh_token":"t1"}, 7]"#).unwrap();
        assert_eq!(file.entries[1].as_ref().unwrap_err().label, "account 2");
    }

    #[test]
    fn unreadable_files_say_what_is_expected() {
        assert!(parse("nope").unwrap_err().contains("not valid JSON"));
        assert!(
            parse(r#"{"hello":1}"#)
                .unwrap_err()
                .contains("oauth_creds.json")
        );
        assert!(parse("[]").unwrap_err().contains("no accounts"));
        assert!(
            parse(r#"{"version":2,"accounts":[]}"#)
                .unwrap_err()
                .contains("upgrade agm")
        );
    }

    #[test]
    fn export_serializes_state_inline() {
        let file = ExportFile {
            version: 1,
            exported_at: "now".into(),
            accounts: vec![ExportedAccount {
                id: "1".into(),
                email: "a@x".into(),
                pool: Pool::Antigravity,
                refresh_token: "t".into(),
                project_id: None,
                tier: Some("free-tier".into()),
                state: AccountState::Disabled { reason: "r".into() },
                created_at: "then".into(),
            }],
        };
        let value = serde_json::to_value(&file).unwrap();
        assert_eq!(value["accounts"][0]["state"], "disabled");
        assert_eq!(value["accounts"][0]["reason"], "r");
        let back = parse(&value.to_string()).unwrap();
        assert_eq!(
            ok(&back)[0],
            Entry {
                email: Some("a@x".into()),
                refresh_token: "t".into(),
                pool: Pool::Antigravity,
                state: Some(AccountState::Disabled { reason: "r".into() }),
            }
        );
    }
}
