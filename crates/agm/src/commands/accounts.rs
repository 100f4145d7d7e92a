//! `agm accounts add|import|export|list|remove|enable|disable`.
//!
//! Every command works on the store in the data dir, with or without a running server
//! (which picks changes up within seconds). Adding and importing check each account
//! with Google before anything is saved.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use agm_store::{AccountInfo, AccountState, AuditKind, Pool, Store};
use anyhow::{Context, anyhow, bail};
use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;
use time::OffsetDateTime;

use crate::commands::sign_in::{SignInOptions, cancel_signal, sign_in};
use crate::commands::{Workspace, rfc3339};
use crate::output;
use agm_server::ops::account_files::{self, ExportFile};
use agm_server::ops::verify::{self, Saved, SetUp};

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Sign in with Google (in a browser, or by pasting the answer with --no-browser) and add the account
    Add(AddArgs),
    /// Add accounts from a refresh token or a JSON file, each checked with Google first
    Import(ImportArgs),
    /// Print every account with its refresh token, in the JSON `import --file` reads
    Export {
        /// Write to this file (a new file, mode 0600; never through a symbolic link) instead of stdout
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// List the accounts: id, e-mail, pool, tier, project and state (never a token)
    List {
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Remove an account and its tokens
    Remove {
        #[arg(value_name = "ID_OR_EMAIL")]
        account: String,
    },
    /// Let the gateway use an account again (sign in again first if Google refused its token)
    Enable {
        #[arg(value_name = "ID_OR_EMAIL")]
        account: String,
    },
    /// Ask Google for each account's per-model quota left and reset times (and store it)
    Quota {
        /// One account; default: every active one
        #[arg(value_name = "ID_OR_EMAIL")]
        account: Option<String>,
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Clear the rate-limit cooldowns of one account (or all): a running server follows within 2 s
    ClearCooldowns {
        /// One account; default: every account
        #[arg(value_name = "ID_OR_EMAIL")]
        account: Option<String>,
    },
    /// Stop the gateway from using an account, keeping it
    Disable {
        #[arg(value_name = "ID_OR_EMAIL")]
        account: String,
        /// Why, shown by `agm accounts list`
        #[arg(long, value_name = "TEXT", default_value = "disabled by the user")]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Print the sign-in address and read the pasted answer instead of opening a browser (SSH, headless machines)
    #[arg(long)]
    no_browser: bool,
    /// How long to wait for the sign-in
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Port of the redirect address http://localhost:PORT/oauth-callback (0 picks a free one)
    #[arg(long, value_name = "N", default_value_t = 0)]
    port: u16,
    /// Sign in as this account: suggested on Google's page; another account is refused
    #[arg(long, value_name = "EMAIL")]
    email: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["refresh_token", "file"])))]
pub struct ImportArgs {
    /// A Google refresh token; `-` reads it from stdin, which keeps it out of the process list and the shell history
    #[arg(long, value_name = "TOKEN")]
    refresh_token: Option<String>,
    /// Refuse the token unless it belongs to this e-mail
    #[arg(long, value_name = "EMAIL", conflicts_with = "file")]
    email: Option<String>,
    /// A JSON file (at most 16 MiB): an agm export, a gemini-cli oauth_creds.json, or an Antigravity Manager account file (one or a list)
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

pub async fn run(explicit: Option<&Path>, command: AccountsCommand) -> anyhow::Result<()> {
    let workspace = Workspace::open(explicit).await?;
    match command {
        AccountsCommand::Add(args) => add(&workspace, args).await,
        AccountsCommand::Import(args) => match (args.refresh_token, args.file) {
            (Some(token), _) => import_token(&workspace, &token, args.email.as_deref()).await,
            (None, Some(file)) => import_file(&workspace, &file).await,
            (None, None) => bail!("give --refresh-token TOKEN or --file PATH"),
        },
        AccountsCommand::Export { file } => export(&workspace.store, file.as_deref()).await,
        AccountsCommand::List { json } => list(&workspace.store, json).await,
        AccountsCommand::Remove { account } => {
            let (subject, name) = identify(&workspace.store, &account).await;
            if !workspace.store.remove_account(&account).await? {
                bail!("no account {account:?} (`agm accounts list` shows the ids and e-mails)");
            }
            audit(
                &workspace.store,
                &subject,
                "removed with `agm accounts remove`",
            )
            .await;
            output::line(&format!("removed {name}"));
            Ok(())
        }
        AccountsCommand::Quota { account, json } => {
            super::quota::run(&workspace, account.as_deref(), json).await
        }
        AccountsCommand::Enable { account } => {
            set_state(&workspace.store, &account, AccountState::Active, "enabled").await
        }
        AccountsCommand::Disable { account, reason } => {
            let state = AccountState::Disabled { reason };
            set_state(&workspace.store, &account, state, "disabled").await
        }
        AccountsCommand::ClearCooldowns { account } => {
            let id = match &account {
                Some(name) => Some(
                    workspace
                        .store
                        .get_account(name)
                        .await?
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "no account {name:?} (`agm accounts list` shows ids and e-mails)"
                            )
                        })?
                        .id,
                ),
                None => None,
            };
            agm_server::state::cooldowns::request_clear(&workspace.shared, id.as_deref()).await?;
            output::line(&match account {
                Some(name) => format!("cleared the cooldowns of {name}"),
                None => "cleared every cooldown".to_owned(),
            });
            Ok(())
        }
    }
}

async fn add(workspace: &Workspace, args: AddArgs) -> anyhow::Result<()> {
    // Ctrl-C is heard from before the sign-in address is printed until the checks with
    // Google are done; saving itself is not interrupted.
    let cancel = cancel_signal();
    let google = workspace.google()?;
    let options = SignInOptions {
        open_browser: !args.no_browser,
        timeout: args.timeout,
        port: args.port,
        login_hint: args.email.clone(),
    };
    let check = async {
        let signed_in = sign_in(&google, &options).await?;
        verify::from_grant(
            &google,
            signed_in.grant,
            &signed_in.refresh_token,
            args.email.as_deref(),
        )
        .await
        .map_err(|reason| anyhow!("not added: {reason}"))
    };
    let verified = tokio::select! {
        verified = check => verified?,
        () = cancel => {
            output::note("");
            bail!("sign-in cancelled; nothing was saved");
        }
    };
    let saved = verify::save(&workspace.store, verified, Pool::Antigravity, None).await?;
    finish(workspace, &google, saved, "added", "add").await;
    Ok(())
}

async fn import_token(
    workspace: &Workspace,
    token: &str,
    email: Option<&str>,
) -> anyhow::Result<()> {
    let token = if token == "-" {
        if std::io::stdin().is_terminal() {
            output::prompt("Paste the refresh token: ");
        }
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the refresh token from stdin")?;
        line.trim().to_owned()
    } else {
        output::warn(
            "a refresh token on the command line is visible to other users in the process list and stays in your shell history; \
             next time give `--refresh-token -` and paste it (or pipe it) on stdin",
        );
        token.trim().to_owned()
    };
    let google = workspace.google()?;
    let verified = verify::from_refresh_token(&google, &token, email)
        .await
        .map_err(|reason| anyhow!("not imported: {reason}; nothing was saved"))?;
    let saved = verify::save(&workspace.store, verified, Pool::Antigravity, None).await?;
    finish(workspace, &google, saved, "imported", "import").await;
    Ok(())
}

async fn import_file(workspace: &Workspace, path: &Path) -> anyhow::Result<()> {
    let text = read_import_file(path)?;
    let file = account_files::parse(&text)
        .map_err(|reason| anyhow!("cannot import {}: {reason}", path.display()))?;
    let total = file.entries.len();
    output::progress(&format!(
        "{}: {}, {total} account{}; checking each with Google",
        path.display(),
        file.format.describe(),
        if total == 1 { "" } else { "s" }
    ));
    let google = workspace.google()?;
    let mut refused = 0;
    for (index, entry) in file.entries.into_iter().enumerate() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(bad) => {
                refused += 1;
                output::line(&format!(
                    "refused {}: {}",
                    output::one_line(&bad.label),
                    output::one_line(&bad.reason)
                ));
                continue;
            }
        };
        let label = output::one_line(&entry.label(index)).into_owned();
        match account_files::import_entry(&google, &workspace.store, entry).await {
            Ok(saved) => finish(workspace, &google, saved, "imported", "import").await,
            Err(account_files::ImportError::Store(e)) => return Err(e.into()),
            Err(reason) => {
                refused += 1;
                // The reason may repeat the e-mail the file gave.
                output::line(&format!(
                    "refused {label}: {}",
                    output::one_line(&reason.to_string())
                ));
            }
        }
    }
    if refused > 0 {
        let rest = if refused == total {
            "nothing was saved"
        } else {
            "the others were saved"
        };
        bail!("{refused} of {total} accounts refused (see above); {rest}");
    }
    Ok(())
}

/// The most `accounts import --file` reads: far more than any real account file.
const IMPORT_FILE_MAX: u64 = 16 * 1024 * 1024;

/// The text of an account file: a regular file (not a device, FIFO or directory) of at
/// most [`IMPORT_FILE_MAX`] bytes, read through a bounded reader whatever its size says.
fn read_import_file(path: &Path) -> anyhow::Result<String> {
    let shown = path.display();
    let not_regular = || {
        anyhow!(
            "cannot import {shown}: it is not a regular file (a device, a FIFO or a directory); give the path of a JSON file"
        )
    };
    let too_large = || {
        anyhow!(
            "cannot import {shown}: it is larger than 16 MiB, the most `agm accounts import --file` reads; is it really an account file?"
        )
    };
    // Checked before opening: opening a FIFO would wait for a writer.
    let metadata = std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
    if !metadata.is_file() {
        return Err(not_regular());
    }
    if metadata.len() > IMPORT_FILE_MAX {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {shown}"))?;
    // The same file, as opened (it could have been swapped since).
    if !file
        .metadata()
        .with_context(|| format!("cannot read {shown}"))?
        .is_file()
    {
        return Err(not_regular());
    }
    let mut bytes = Vec::new();
    file.take(IMPORT_FILE_MAX + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {shown}"))?;
    if bytes.len() as u64 > IMPORT_FILE_MAX {
        return Err(too_large());
    }
    String::from_utf8(bytes)
        .map_err(|_| anyhow!("cannot import {shown}: it is not UTF-8 text; give a JSON file"))
}

/// Records an account saved by `agm accounts <command>` in the audit log, finishes its
/// project set-up while the user is there, and prints its summary: `<created>` (e.g.
/// `added`) for a new account, else `updated`. A set-up that fails on the network is a
/// warning: the gateway finds the project when the account is first used.
async fn finish(
    workspace: &Workspace,
    google: &agm_google::GoogleClient,
    mut saved: Saved,
    created: &str,
    command: &str,
) {
    let store = &workspace.store;
    let verb = if saved.created { created } else { "updated" };
    let detail = format!(
        "{verb} with `agm accounts {command}` (pool {})",
        saved.account.pool
    );
    audit(store, &saved.account.email, &detail).await;
    let setup = verify::set_up_project(store, google, &workspace.config, &mut saved.account).await;
    if let SetUp::Deferred { reason } = &setup {
        output::warn(&output::one_line(&format!(
            "could not set up the Cloud Code project of {} now ({reason}); the gateway tries again when the account is first used",
            saved.account.email
        )));
    }
    output::line(&summary(verb, &saved, &setup));
}

/// An `account` audit entry. The subject is the account's e-mail: this is the
/// operator's own terminal and store.
async fn audit(store: &Store, subject: &str, detail: &str) {
    agm_server::state::audit::append_audit(store, AuditKind::Account, subject, detail).await;
}

/// `added alice@example.com (project p, tier t)` (`added carol@example.com: onboarded,
/// project p on tier t` when the set-up onboarded it just now), plus what the user
/// should know, as one line.
fn summary(verb: &str, saved: &Saved, setup: &SetUp) -> String {
    let account = &saved.account;
    let mut facts = Vec::new();
    if let Some(project) = &account.project_id {
        facts.push(format!("project {project}"));
    }
    if let Some(tier) = &account.tier {
        facts.push(format!("tier {tier}"));
    }
    let mut line = format!("{verb} {}", account.email);
    match (setup, &account.project_id) {
        (SetUp::Project { onboarded: true }, Some(project)) => {
            line.push_str(&format!(": onboarded, project {project}"));
            if let Some(tier) = &account.tier {
                line.push_str(&format!(" on tier {tier}"));
            }
        }
        _ if !facts.is_empty() => line.push_str(&format!(" ({})", facts.join(", "))),
        _ => {}
    }
    if account.project_id.is_none() && account.state.is_active() {
        line.push_str(
            "; no Cloud Code project yet: the gateway finds or onboards one when the account is first used",
        );
    }
    match &account.state {
        AccountState::Active => {}
        AccountState::Disabled { reason } => line.push_str(&format!(
            "; disabled ({reason}): `agm accounts enable {}` turns it on",
            account.email
        )),
        AccountState::Blocked { reason, url } => {
            line.push_str(&format!("; blocked: {reason}"));
            if let Some(url) = url.as_deref().filter(|url| !reason.contains(url)) {
                line.push_str(&format!(": open {url}"));
            }
        }
    }
    // The e-mail, reason and URL came from a file or from Google.
    output::one_line(&line).into_owned()
}

async fn export(store: &Store, file: Option<&Path>) -> anyhow::Result<()> {
    let accounts = store.list_accounts().await?;
    let export = ExportFile::new(&accounts, OffsetDateTime::now_utc());
    output::warn(
        "the export holds every account's refresh token: anyone who has it can use those accounts; keep it private and delete it when done",
    );
    match file {
        None => output::json(&export),
        Some(path) => {
            let mut text = serde_json::to_string_pretty(&export)?;
            text.push('\n');
            write_private(path, &text)?;
            output::line(&format!(
                "exported {} account{} to {}",
                accounts.len(),
                if accounts.len() == 1 { "" } else { "s" },
                path.display()
            ));
            Ok(())
        }
    }
}

/// Writes `text` to `path` as a new file readable by its owner only: written to a new
/// temporary file (mode 0600) in the same directory, then renamed over `path`. A rename
/// replaces a link rather than following it, so nothing is ever written through one,
/// even if a link appears at `path` after the check; a link there is refused.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => bail!(
            "{shown} is a symbolic link: agm does not write an export through one; give the path of a new or regular file"
        ),
        Ok(meta) if !meta.is_file() => {
            bail!("{shown} is not a regular file; give the path of a new or regular file")
        }
        _ => {}
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{shown} does not name a file"))?
        .to_string_lossy();
    let (tmp, mut file) = create_temp(dir, &name)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow!(e).context(format!("cannot write {shown}")));
    }
    Ok(())
}

/// A new file `.<name>.<n>.tmp` in `dir`, mode 0600, that did not exist before (never
/// a link: `create_new` refuses anything already there).
fn create_temp(dir: &Path, name: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let seed = std::process::id() ^ OffsetDateTime::now_utc().nanosecond();
    let mut attempt = 0u32;
    loop {
        let tmp = dir.join(format!(".{name}.{:08x}.tmp", seed.wrapping_add(attempt)));
        match options.open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// An account as `list --json` shows it: no token.
#[derive(Serialize)]
struct Listed<'a> {
    id: &'a str,
    email: &'a str,
    pool: Pool,
    tier: Option<&'a str>,
    project_id: Option<&'a str>,
    #[serde(flatten)]
    state: &'a AccountState,
    created_at: String,
    updated_at: String,
    /// The latest per-model quota `agm accounts quota` fetched, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<agm_google::QuotaSnapshot>,
    /// Rate-limit cooldowns running now (as the server last stored them).
    cooldowns: Vec<agm_server::state::cooldowns::StoredCooldown>,
}

/// `27% (gemini-3-flash)`: the model with the least quota left, from the stored snapshot.
fn lowest_quota(snapshot: Option<&agm_google::QuotaSnapshot>) -> String {
    snapshot
        .and_then(|s| {
            s.models
                .iter()
                .filter_map(|m| m.remaining_fraction.map(|f| (f, m.model.as_str())))
                .min_by(|a, b| a.0.total_cmp(&b.0))
        })
        .map(|(f, model)| format!("{:.0}% ({model})", f * 100.0))
        .unwrap_or_default()
}

async fn list(store: &Store, json: bool) -> anyhow::Result<()> {
    let shared = agm_server::state::Shared::new(store.clone());
    // No secret is needed to list: an account whose tokens cannot be opened shows too.
    let accounts = store.list_account_infos().await?;
    let mut quotas = Vec::with_capacity(accounts.len());
    for a in &accounts {
        quotas.push(agm_server::state::quota::load(&shared, &a.id).await?);
    }
    let now = time::OffsetDateTime::now_utc();
    let cooldowns: Vec<_> = agm_server::state::cooldowns::load(&shared)
        .await?
        .into_iter()
        .filter(|c| c.until > now)
        .collect();
    let cooling = |id: &str| -> Vec<agm_server::state::cooldowns::StoredCooldown> {
        cooldowns
            .iter()
            .filter(|c| c.account == id)
            .cloned()
            .collect()
    };
    if json {
        let listed: Vec<Listed<'_>> = accounts
            .iter()
            .zip(quotas)
            .map(|(a, quota)| Listed {
                quota,
                cooldowns: cooling(&a.id),
                ..listed(a)
            })
            .collect();
        return output::json(&listed);
    }
    if accounts.is_empty() {
        output::line("no accounts yet: add one with `agm accounts add` or `agm accounts import`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = accounts
        .iter()
        .zip(&quotas)
        .map(|(a, quota)| {
            vec![
                a.id.clone(),
                a.email.clone(),
                a.pool.to_string(),
                a.tier.clone().unwrap_or_default(),
                a.project_id.clone().unwrap_or_default(),
                match (&a.state, cooling(&a.id).first()) {
                    (AccountState::Active, Some(c)) => format!(
                        "cooling down for {} until {}{}",
                        c.model,
                        rfc3339(c.until),
                        match cooling(&a.id).len() {
                            1 => String::new(),
                            n => format!(" (+{} more models)", n - 1),
                        }
                    ),
                    (state, _) => state_text(state),
                },
                lowest_quota(quota.as_ref()),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "EMAIL",
            "POOL",
            "TIER",
            "PROJECT",
            "STATE",
            "LOWEST QUOTA LEFT",
        ],
        &rows,
    );
    Ok(())
}

fn listed(a: &AccountInfo) -> Listed<'_> {
    Listed {
        id: &a.id,
        email: &a.email,
        pool: a.pool,
        tier: a.tier.as_deref(),
        project_id: a.project_id.as_deref(),
        state: &a.state,
        created_at: rfc3339(a.created_at),
        updated_at: rfc3339(a.updated_at),
        quota: None,
        cooldowns: Vec::new(),
    }
}

/// `active`, `disabled: why`, `blocked: why (url)`.
fn state_text(state: &AccountState) -> String {
    match state {
        AccountState::Active => "active".to_owned(),
        AccountState::Disabled { reason } => format!("disabled: {reason}"),
        AccountState::Blocked { reason, url: None } => format!("blocked: {reason}"),
        AccountState::Blocked {
            reason,
            url: Some(url),
        } => format!("blocked: {reason} ({url})"),
    }
}

async fn set_state(
    store: &Store,
    account: &str,
    state: AccountState,
    done: &str,
) -> anyhow::Result<()> {
    // `enabled` is what `agm accounts enable` did.
    let command = done.strip_suffix('d').unwrap_or(done);
    let detail = match &state {
        AccountState::Disabled { reason } => {
            format!("{done} with `agm accounts {command}`: {reason}")
        }
        _ => format!("{done} with `agm accounts {command}`"),
    };
    store.set_account_state(account, state).await?;
    let (subject, name) = identify(store, account).await;
    audit(store, &subject, &detail).await;
    output::line(&format!("{done} {name}"));
    Ok(())
}

/// The account's e-mail, and `alice@example.com (1a2b3c4d)`, when it can be read; else
/// what the user typed, twice.
async fn identify(store: &Store, account: &str) -> (String, String) {
    match store.get_account(account).await {
        Ok(Some(a)) => (a.email.clone(), format!("{} ({})", a.email, a.id)),
        _ => (account.to_owned(), account.to_owned()),
    }
}
