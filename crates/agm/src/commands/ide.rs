//! `agm ide status | switch ACCOUNT | restore`: signs a local Antigravity IDE into one
//! of the pool's accounts by writing that account's tokens where the IDE keeps its
//! sign-in, `<user data dir>/User/globalStorage/state.vscdb` (docs/PROTOCOL.md, Part C),
//! and puts the user's own sign-in back.
//!
//! The rules: the IDE must be closed (it caches the sign-in and would write over it);
//! the first switch copies the store to `state.vscdb.agm-backup` (0600, with a small
//! manifest beside it), and no later switch replaces that copy, so it stays the user's
//! original sign-in until `restore` puts it back and removes it; the sign-in keys are
//! written in one SQLite transaction; every other row (the IDE's settings, its device
//! and telemetry identifiers) is left exactly as it is. agm never generates, rotates
//! or randomises device identifiers.
//!
//! Whether the IDE runs is read from the process list (`/proc` on Linux, `ps` on
//! macOS and other Unixes, `tasklist` on Windows). `AGM_IDE_PROCESS_NAMES` (comma
//! separated, undocumented) replaces the process names looked for; the tests use it to
//! fake a running IDE without disturbing each other.

mod format;

use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use agm_store::{AuditKind, Pool};
use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::commands::{Workspace, rfc3339};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum IdeCommand {
    /// Which account the Antigravity IDE is signed in as, whether agm holds a backup of
    /// its own sign-in, and whether it is running
    Status {
        #[command(flatten)]
        dir: IdeDir,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Sign the (closed) Antigravity IDE into a pool account; the first switch backs up
    /// the IDE's own sign-in
    Switch {
        /// The pool account: its id or e-mail (`agm accounts list`)
        account: String,
        #[command(flatten)]
        dir: IdeDir,
    },
    /// Put the IDE's own sign-in back from agm's backup, and remove the backup
    Restore {
        #[command(flatten)]
        dir: IdeDir,
    },
}

#[derive(Debug, Args)]
pub struct IdeDir {
    /// The IDE's user data dir [default: $AGM_IDE_DIR, else the OS's: ~/.config/Antigravity
    /// IDE or ~/.config/Antigravity on Linux, ~/Library/Application Support/… on macOS,
    /// %APPDATA%\… on Windows]
    #[arg(long = "ide-dir", value_name = "PATH", env = "AGM_IDE_DIR")]
    path: Option<PathBuf>,
}

pub async fn run(explicit: Option<&Path>, command: IdeCommand) -> anyhow::Result<()> {
    match command {
        IdeCommand::Status { dir, json } => status(&Ide::locate(dir.path)?, json),
        IdeCommand::Switch { account, dir } => {
            switch(explicit, &Ide::locate(dir.path)?, &account).await
        }
        IdeCommand::Restore { dir } => restore(explicit, &Ide::locate(dir.path)?).await,
    }
}

/// `agm doctor`'s line: whether an Antigravity IDE is here and whether agm switched it
/// (its own sign-in then waits in the backup).
pub fn doctor_check() -> agm_server::ops::doctor::Check {
    use agm_server::ops::doctor::{Check, Status};
    let explicit = std::env::var_os("AGM_IDE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let line = |status, detail: String| Check {
        name: "ide",
        status,
        detail,
    };
    let Ok(ide) = Ide::locate(explicit) else {
        return line(
            Status::Ok,
            "no Antigravity IDE data here (`agm ide` needs none)".into(),
        );
    };
    if !ide.backup.is_file() {
        return line(
            Status::Ok,
            format!("Antigravity IDE at {}: its own sign-in", ide.shown()),
        );
    }
    let email = read_sign_in(&ide.db)
        .ok()
        .and_then(|s| s.email)
        .unwrap_or_else(|| "a pool account".into());
    let made = read_manifest(&ide).map_or_else(|| "at an unknown time".into(), |m| m.created_at);
    line(
        Status::Ok,
        format!(
            "Antigravity IDE at {} signed into {email} by `agm ide switch`; its own sign-in is in the backup made {made} (`agm ide restore`)",
            ide.shown()
        ),
    )
}

/// The folder names the IDE's user data dir has had, newest first (docs/PROTOCOL.md
/// §C.1).
const DATA_DIR_NAMES: [&str; 2] = ["Antigravity IDE", "Antigravity"];

/// A located IDE install: its user data dir and the files agm reads and writes there.
struct Ide {
    dir: PathBuf,
    db: PathBuf,
    backup: PathBuf,
    manifest: PathBuf,
}

impl Ide {
    /// The IDE at `explicit` (`--ide-dir` / `AGM_IDE_DIR`), else the first of the OS's
    /// default places that holds a sign-in store. Errors name where agm looked.
    fn locate(explicit: Option<PathBuf>) -> anyhow::Result<Ide> {
        let candidates = match explicit {
            Some(dir) => vec![dir],
            None => default_dirs()?,
        };
        for dir in &candidates {
            let ide = Ide::at(dir.clone());
            if ide.db.is_file() {
                return Ok(ide);
            }
        }
        let shown: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
        bail!(
            "no Antigravity IDE data at {}: pass --ide-dir (the IDE's user data dir, holding User/globalStorage/state.vscdb)",
            shown.join(" or ")
        )
    }

    fn at(dir: PathBuf) -> Ide {
        let global = dir.join("User").join("globalStorage");
        Ide {
            db: global.join("state.vscdb"),
            backup: global.join("state.vscdb.agm-backup"),
            manifest: global.join("state.vscdb.agm-backup.json"),
            dir,
        }
    }

    fn shown(&self) -> String {
        self.dir.display().to_string()
    }
}

/// The IDE's default user data dirs on this OS: Electron's app-data dir (`$APPDATA`
/// on Windows, `~/Library/Application Support` on macOS, `$XDG_CONFIG_HOME` or
/// `~/.config` elsewhere) joined with each of [`DATA_DIR_NAMES`].
fn default_dirs() -> anyhow::Result<Vec<PathBuf>> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let home = || {
        var("HOME")
            .or_else(|| var("USERPROFILE"))
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("cannot find the IDE's data: no home directory; pass --ide-dir"))
    };
    let app_data = if cfg!(windows) {
        var("APPDATA").map(PathBuf::from).ok_or_else(|| {
            anyhow!("cannot find the IDE's data: %APPDATA% is not set; pass --ide-dir")
        })?
    } else if cfg!(target_os = "macos") {
        home()?.join("Library").join("Application Support")
    } else {
        match var("XDG_CONFIG_HOME") {
            Some(dir) => PathBuf::from(dir),
            None => home()?.join(".config"),
        }
    };
    Ok(DATA_DIR_NAMES.iter().map(|n| app_data.join(n)).collect())
}

/// What `agm ide status` reports.
#[derive(Debug, Serialize)]
struct Status {
    ide_dir: String,
    /// Whether the IDE holds a sign-in (a refresh token).
    signed_in: bool,
    /// The e-mail the IDE stores for its sign-in, when it stores one.
    email: Option<String>,
    backup: Option<BackupStatus>,
    running: bool,
}

#[derive(Debug, Serialize)]
struct BackupStatus {
    path: String,
    created_at: Option<String>,
    /// Whom the IDE was signed in as when the backup was made.
    original_email: Option<String>,
}

/// The manifest beside the backup (`state.vscdb.agm-backup.json`): when agm made the
/// backup, and whom the IDE was signed in as then. No secret.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    created_at: String,
    original_signed_in: bool,
    original_email: Option<String>,
    agm_version: String,
}

fn status(ide: &Ide, json: bool) -> anyhow::Result<()> {
    let sign_in = read_sign_in(&ide.db)?;
    let running = ide_running()?;
    let backup = ide.backup.is_file().then(|| {
        let manifest = read_manifest(ide);
        BackupStatus {
            path: ide.backup.display().to_string(),
            created_at: manifest.as_ref().map(|m| m.created_at.clone()),
            original_email: manifest.and_then(|m| m.original_email),
        }
    });
    let report = Status {
        ide_dir: ide.shown(),
        signed_in: sign_in.signed_in,
        email: sign_in.email,
        backup,
        running,
    };
    if json {
        return output::json(&report);
    }
    output::line(&format!("Antigravity IDE data: {}", report.ide_dir));
    output::line(&match (report.signed_in, &report.email) {
        (true, Some(email)) => format!("signed in as: {email}"),
        (true, None) => "signed in as: an account whose e-mail the IDE does not store".to_owned(),
        (false, _) => "signed in as: nobody (not signed in)".to_owned(),
    });
    output::line(&match &report.backup {
        None => "backup: none (the first `agm ide switch` makes one)".to_owned(),
        Some(b) => format!(
            "backup: {} of the IDE's own sign-in ({}), made {}; `agm ide restore` puts it back",
            b.path,
            b.original_email.as_deref().unwrap_or("not signed in"),
            b.created_at.as_deref().unwrap_or("at an unknown time")
        ),
    });
    output::line(if report.running {
        "IDE: running (close it before `agm ide switch` or `agm ide restore`)"
    } else {
        "IDE: not running"
    });
    Ok(())
}

async fn switch(explicit: Option<&Path>, ide: &Ide, wanted: &str) -> anyhow::Result<()> {
    refuse_if_running()?;
    let workspace = Workspace::open(explicit).await?;
    let store = &workspace.store;
    let account = store.get_account(wanted).await?.ok_or_else(|| {
        anyhow!("no account {wanted} in the pool: `agm accounts list` shows them")
    })?;
    if account.pool != Pool::Antigravity {
        bail!(
            "{} is in the {} pool: only an Antigravity account can sign the IDE in",
            account.email,
            account.pool
        );
    }
    let google = workspace.google()?;
    let tokens = super::tokens::fresh_tokens(&google, store, &account).await?;
    // The refresh above may have taken a while: look again before touching the files.
    refuse_if_running()?;

    let kept = if ide.backup.is_file() {
        true
    } else {
        make_backup(ide)?;
        false
    };
    write_sign_in(&ide.db, &account.email, &tokens)?;
    agm_server::state::audit::append_audit(
        store,
        AuditKind::Account,
        &account.email,
        &format!(
            "signed the Antigravity IDE at {} into it with `agm ide switch`",
            ide.shown()
        ),
    )
    .await;
    output::line(&format!(
        "signed the Antigravity IDE into {} ({}); start it to use the account",
        account.email, account.id
    ));
    output::line(&if kept {
        format!(
            "kept the backup of the IDE's own sign-in at {}: `agm ide restore` puts it back",
            ide.backup.display()
        )
    } else {
        format!(
            "backed up the IDE's own sign-in to {}: `agm ide restore` puts it back",
            ide.backup.display()
        )
    });
    Ok(())
}

async fn restore(explicit: Option<&Path>, ide: &Ide) -> anyhow::Result<()> {
    if !ide.backup.is_file() {
        bail!(
            "no backup of the IDE's sign-in at {}: nothing to restore (agm makes one at the first `agm ide switch`)",
            ide.backup.display()
        );
    }
    refuse_if_running()?;
    let manifest = read_manifest(ide);
    settle(&ide.db)?;
    let staged = sibling(&ide.db, ".agm-restore");
    copy_synced(&ide.backup, &staged, permissions_of(&ide.db))?;
    fs::rename(&staged, &ide.db)
        .with_context(|| format!("cannot put the backup back at {}", ide.db.display()))?;
    fs::remove_file(&ide.backup).with_context(|| {
        format!(
            "restored, but cannot remove the backup {}",
            ide.backup.display()
        )
    })?;
    if ide.manifest.exists() {
        fs::remove_file(&ide.manifest)
            .with_context(|| format!("restored, but cannot remove {}", ide.manifest.display()))?;
    }
    let who = manifest
        .as_ref()
        .and_then(|m| m.original_email.clone())
        .unwrap_or_else(|| "not signed in".to_owned());
    // The files are back whatever the store says: a store that cannot open costs
    // the audit entry only.
    match Workspace::open(explicit).await {
        Ok(workspace) => {
            agm_server::state::audit::append_audit(
                &workspace.store,
                AuditKind::Account,
                &who,
                &format!(
                    "restored the Antigravity IDE's own sign-in at {} with `agm ide restore`",
                    ide.shown()
                ),
            )
            .await;
        }
        Err(e) => output::warn(&format!(
            "restored, but not recorded in the audit log: {e:#}"
        )),
    }
    output::line(&format!(
        "restored the Antigravity IDE's own sign-in ({who}) and removed the backup"
    ));
    Ok(())
}

/// The sign-in the IDE holds, as far as `status` tells it.
struct SignIn {
    signed_in: bool,
    email: Option<String>,
}

/// Reads the sign-in from the store, read-only (the IDE may be running).
fn read_sign_in(db: &Path) -> anyhow::Result<SignIn> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open the IDE's sign-in store {}", db.display()))?;
    let get = |key: &str| item(&conn, key).with_context(|| not_a_store(db));
    let mut signed_in = false;
    let mut email = None;
    if let Some(value) = get(format::OAUTH_TOKEN_KEY)?
        && let Ok(Some(info)) = format::topic_payload(&value, format::OAUTH_SENTINEL)
    {
        signed_in = matches!(format::refresh_token_of(&info), Ok(Some(_)));
    }
    if let Some(value) = get(format::USER_STATUS_KEY)?
        && let Ok(Some(payload)) = format::topic_payload(&value, format::USER_STATUS_SENTINEL)
    {
        email = format::email_of_user_status(&payload);
    }
    if let Some(value) = get(format::LEGACY_STATE_KEY)?
        && let Ok((legacy_email, legacy_signed_in)) = format::legacy_sign_in(&value)
    {
        signed_in |= legacy_signed_in;
        email = email.or(legacy_email);
    }
    if email.is_none()
        && let Some(value) = get(format::AUTH_STATUS_KEY)?
    {
        email = format::email_of_auth_status(&value);
    }
    Ok(SignIn {
        signed_in,
        email: if signed_in { email } else { None },
    })
}

fn not_a_store(db: &Path) -> String {
    format!(
        "{} is not an Antigravity IDE state store (no readable ItemTable)",
        db.display()
    )
}

/// The value under `key` in `ItemTable`, as text (VS Code stores text, older builds
/// blobs of UTF-8).
fn item(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM ItemTable WHERE key = ?1", [key], |row| {
        Ok(match row.get_ref(0)? {
            rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                Some(String::from_utf8_lossy(t).into_owned())
            }
            _ => None,
        })
    })
    .optional()
    .map(Option::flatten)
}

/// Writes the account's sign-in where the IDE (1.16.5 and later) reads it, in one
/// transaction (docs/PROTOCOL.md §C.2): the OAuth token and a minimal user status
/// (other entries of those topics kept), the onboarding flag; and removes what holds
/// the previous account (the pre-1.16.5 state, the cached auth status, the Google
/// Cloud project preference). Nothing else is touched.
fn write_sign_in(db: &Path, email: &str, tokens: &super::tokens::Tokens) -> anyhow::Result<()> {
    let mut conn = open_for_writing(db)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .with_context(|| format!("cannot write to {} (is the IDE running?)", db.display()))?;
    let token = item(&tx, format::OAUTH_TOKEN_KEY).with_context(|| not_a_store(db))?;
    let token = format::topic_with(
        token.as_deref(),
        format::OAUTH_SENTINEL,
        &format::oauth_token_info(
            tokens.access.expose(),
            tokens.refresh.expose(),
            tokens.expires_at.unix_timestamp(),
        ),
    )
    .with_context(|| format!("the IDE's {} is damaged", format::OAUTH_TOKEN_KEY))?;
    let status = item(&tx, format::USER_STATUS_KEY)?;
    let status = format::topic_with(
        status.as_deref(),
        format::USER_STATUS_SENTINEL,
        &format::minimal_user_status(email),
    )
    .with_context(|| format!("the IDE's {} is damaged", format::USER_STATUS_KEY))?;
    let put = "INSERT OR REPLACE INTO ItemTable (key, value) VALUES (?1, ?2)";
    tx.execute(put, [format::OAUTH_TOKEN_KEY, token.as_str()])?;
    tx.execute(put, [format::USER_STATUS_KEY, status.as_str()])?;
    tx.execute(put, [format::ONBOARDING_KEY, "true"])?;
    for stale in [
        format::LEGACY_STATE_KEY,
        format::AUTH_STATUS_KEY,
        format::ENTERPRISE_PREFERENCES_KEY,
    ] {
        tx.execute("DELETE FROM ItemTable WHERE key = ?1", [stale])?;
    }
    tx.commit()
        .with_context(|| format!("cannot write to {}", db.display()))?;
    Ok(())
}

fn open_for_writing(db: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("cannot open the IDE's sign-in store {}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    Ok(conn)
}

/// Brings the store file up to date on its own, so that a copy of it is whole: a
/// write-ahead log is checkpointed into it, an interrupted transaction rolled back.
/// The content does not change.
fn settle(db: &Path) -> anyhow::Result<()> {
    let conn = open_for_writing(db)?;
    conn.query_row("SELECT count(*) FROM ItemTable", [], |_| Ok(()))
        .with_context(|| not_a_store(db))?;
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    if mode.eq_ignore_ascii_case("wal") {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    conn.close()
        .map_err(|(_, e)| e)
        .with_context(|| format!("cannot close {}", db.display()))?;
    Ok(())
}

/// Copies the store to the backup (0600: it holds the user's refresh token), then
/// writes the manifest. Called only when there is no backup yet.
fn make_backup(ide: &Ide) -> anyhow::Result<()> {
    let original = read_sign_in(&ide.db)?;
    settle(&ide.db)?;
    let staged = sibling(&ide.backup, ".tmp");
    copy_synced(&ide.db, &staged, None)?;
    fs::rename(&staged, &ide.backup)
        .with_context(|| format!("cannot write the backup {}", ide.backup.display()))?;
    let manifest = Manifest {
        created_at: rfc3339(OffsetDateTime::now_utc()),
        original_signed_in: original.signed_in,
        original_email: original.email,
        agm_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let text = serde_json::to_string_pretty(&manifest)?;
    write_new(&ide.manifest, text.as_bytes(), None)
        .with_context(|| format!("cannot write {}", ide.manifest.display()))?;
    Ok(())
}

fn read_manifest(ide: &Ide) -> Option<Manifest> {
    let text = fs::read_to_string(&ide.manifest).ok()?;
    serde_json::from_str(&text).ok()
}

/// `path` with `suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// The permissions of `path`, to give a file replacing it.
fn permissions_of(path: &Path) -> Option<fs::Permissions> {
    fs::metadata(path).ok().map(|m| m.permissions())
}

/// Copies `from` to a new file `to` (replacing a stale one), flushed to disk.
fn copy_synced(from: &Path, to: &Path, permissions: Option<fs::Permissions>) -> anyhow::Result<()> {
    let bytes = fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    write_new(to, &bytes, permissions).with_context(|| format!("cannot write {}", to.display()))
}

/// Writes `bytes` to `path` (0600 unless `permissions` says otherwise), replacing a
/// regular file there, and syncs it.
fn write_new(
    path: &Path,
    bytes: &[u8],
    permissions: Option<fs::Permissions>,
) -> std::io::Result<()> {
    if fs::symlink_metadata(path).is_ok() {
        fs::remove_file(path)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    if let Some(permissions) = permissions {
        file.set_permissions(permissions)?;
    }
    file.sync_all()
}

fn refuse_if_running() -> anyhow::Result<()> {
    if ide_running()? {
        bail!(
            "Antigravity is running: close it first (it keeps its sign-in in memory and would write over the change)"
        );
    }
    Ok(())
}

/// The process names of the IDE (lowercase, without `.exe`), or those in
/// `AGM_IDE_PROCESS_NAMES`.
fn process_names() -> Vec<String> {
    match std::env::var("AGM_IDE_PROCESS_NAMES") {
        Ok(names) if !names.trim().is_empty() => names
            .split(',')
            .map(|n| n.trim().to_lowercase())
            .filter(|n| !n.is_empty())
            .collect(),
        _ => ["antigravity", "antigravity-ide", "antigravity ide"]
            .map(str::to_owned)
            .to_vec(),
    }
}

/// Whether `process` (a process name or an executable's path) is the IDE: its file
/// name, without `.exe`, is one of `names`, or it lies inside the IDE's macOS app
/// bundle (`Antigravity.app`, `Antigravity IDE.app`: the main process and its helpers).
fn is_ide_process(process: &str, names: &[String]) -> bool {
    let lower = process.trim().to_lowercase();
    let file = lower.rsplit(['/', '\\']).next().unwrap_or(&lower);
    let file = file.strip_suffix(".exe").unwrap_or(file);
    names.iter().any(|n| n == file) || names.iter().any(|n| lower.contains(&format!("/{n}.app/")))
}

fn ide_running() -> anyhow::Result<bool> {
    let names = process_names();
    let processes = process_list().context("cannot tell whether Antigravity is running")?;
    Ok(processes.iter().any(|p| is_ide_process(p, &names)))
}

/// Every process's name (Linux: `/proc/<pid>/comm`, and the executable's path).
#[cfg(target_os = "linux")]
fn process_list() -> anyhow::Result<Vec<String>> {
    let own = std::process::id().to_string();
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        // A process may end while it is read: skip what is gone.
        if let Ok(comm) = fs::read_to_string(entry.path().join("comm")) {
            out.push(comm.trim_end_matches('\n').to_owned());
        }
        if let Ok(exe) = fs::read_link(entry.path().join("exe")) {
            out.push(exe.to_string_lossy().into_owned());
        }
    }
    Ok(out)
}

/// Every process's executable path, from `ps`.
#[cfg(all(unix, not(target_os = "linux")))]
fn process_list() -> anyhow::Result<Vec<String>> {
    let out = std::process::Command::new("ps")
        .args(["-axo", "comm="])
        .output()
        .context("cannot run ps")?;
    if !out.status.success() {
        bail!("ps failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Every process's image name, from `tasklist`.
#[cfg(windows)]
fn process_list() -> anyhow::Result<Vec<String>> {
    let out = std::process::Command::new("tasklist")
        .args(["/FO", "CSV", "/NH"])
        .output()
        .context("cannot run tasklist")?;
    if !out.status.success() {
        bail!("tasklist failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(',').next())
        .map(|name| name.trim_matches('"').to_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ide_is_recognised_by_its_processes_on_each_os() {
        let names = ["antigravity", "antigravity-ide", "antigravity ide"].map(str::to_owned);
        for process in [
            "antigravity",
            "/usr/share/antigravity/antigravity",
            "Antigravity.exe",
            "Antigravity IDE.exe",
            "/Applications/Antigravity.app/Contents/MacOS/Electron",
            "/Applications/Antigravity IDE.app/Contents/Frameworks/Antigravity Helper (Renderer).app/Contents/MacOS/Antigravity Helper (Renderer)",
        ] {
            assert!(is_ide_process(process, &names), "{process}");
        }
        for process in [
            "agm",
            "antigravity_tools",
            "/Applications/Antigravity Tools.app/Contents/MacOS/antigravity_tools",
            "language_server_linux_x64",
            "code",
        ] {
            assert!(!is_ide_process(process, &names), "{process}");
        }
    }

    #[test]
    fn the_backup_lies_beside_the_store() {
        let ide = Ide::at(PathBuf::from("/x/Antigravity"));
        assert_eq!(
            ide.db,
            Path::new("/x/Antigravity/User/globalStorage/state.vscdb")
        );
        assert_eq!(
            sibling(&ide.db, ".agm-restore"),
            Path::new("/x/Antigravity/User/globalStorage/state.vscdb.agm-restore")
        );
        assert_eq!(
            ide.backup,
            Path::new("/x/Antigravity/User/globalStorage/state.vscdb.agm-backup")
        );
    }
}
