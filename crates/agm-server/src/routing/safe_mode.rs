//! Safe mode as the server runs it (layers L0 and L1 of docs/ARCHITECTURE.md): the
//! state machine of `agm_pool::safe_mode`, stored in the settings table so that the
//! CLI can read and change it with or without a running server, a running server
//! follows the CLI within [`SYNC_EVERY`], and a restart keeps it.
//!
//! Every transition is logged, written to the audit log and counted in the metrics.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use agm_pool::safe_mode::{
    Route, SafeMode, SafeModeConfig, SafeModeEvent, SafeModeRecord, SafeModeStatus,
};
use agm_store::{AuditKind, Store};

use crate::state::audit::append_audit;

use crate::config::Config;
use crate::state::{Shared, StateError, keys};
/// How often a running server reads the stored state (the CLI's changes arrive within
/// this).
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

pub struct SafeModeControl {
    machine: Mutex<SafeMode>,
    /// Mirrors "on" for the response header, read without the lock.
    active: AtomicBool,
    /// The revision of the stored record this process last read or wrote.
    revision: AtomicU64,
    /// The stored record's `reset_generation` last seen.
    reset_generation: AtomicU64,
    store: Store,
    shared: Shared,
    /// One save at a time in this process: a second one then sees the first's revision
    /// as its own, and only another process's write is taken over instead of written.
    save_lock: tokio::sync::Mutex<()>,
}

/// The state-machine settings from the config.
pub fn config_of(config: &Config) -> SafeModeConfig {
    SafeModeConfig {
        enable_antigravity: config.routing.enable_antigravity,
        auto_activate_threshold: config.safe_mode.auto_activate_threshold,
        retry_interval: config.safe_mode.retry_interval,
    }
}

impl SafeModeControl {
    pub fn new(config: SafeModeConfig, store: Store, shared: Shared) -> SafeModeControl {
        SafeModeControl {
            active: AtomicBool::new(!config.enable_antigravity),
            machine: Mutex::new(SafeMode::new(config)),
            revision: AtomicU64::new(0),
            reset_generation: AtomicU64::new(u64::MAX),
            store,
            shared,
            save_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Takes new thresholds (`[safe_mode] auto_activate_threshold`, `retry_interval`,
    /// changed in the console) while keeping the state: on or off, since when, the
    /// failures counted so far. A retry already scheduled keeps its time.
    pub fn set_config(&self, config: SafeModeConfig) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut machine = self.lock();
        let record = machine.to_record(0, now, wall);
        let mut fresh = SafeMode::new(config);
        fresh.adopt(&record, now, wall);
        *machine = fresh;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SafeMode> {
        self.machine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether requests go to the official API now (safe mode on, or Antigravity off).
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Whether safe mode is on because someone turned it on by hand (a successful probe
    /// does not turn that off).
    pub fn is_manual(&self) -> bool {
        matches!(
            self.lock().state(),
            agm_pool::safe_mode::SafeModeState::On {
                reason: agm_pool::safe_mode::SafeModeReason::Manual { .. },
                ..
            }
        )
    }

    /// Where the next request goes.
    pub fn route(&self) -> Route {
        self.lock().route(Instant::now())
    }

    /// Whether one account failed to get a project id often enough to be left out.
    pub fn account_tripped(&self, account: &str) -> bool {
        self.lock().account_tripped(account)
    }

    /// Project-id failures in a row over all accounts (0 while safe mode is on).
    pub fn consecutive_failures(&self) -> u32 {
        match self.lock().state() {
            agm_pool::safe_mode::SafeModeState::Off {
                consecutive_failures,
            } => *consecutive_failures,
            agm_pool::safe_mode::SafeModeState::On { .. } => 0,
        }
    }

    pub fn status(&self) -> SafeModeStatus {
        self.lock().status(Instant::now(), SystemTime::now())
    }

    /// An account's project discovery failed with `error`.
    pub async fn record_project_failure(&self, account: &str, error: &str) {
        let events = self
            .lock()
            .record_project_failure(account, error, Instant::now());
        self.after(events).await;
    }

    /// An account's project was found.
    pub async fn record_project_success(&self, account: &str) {
        let (event, counted) = {
            let mut machine = self.lock();
            let counted = machine.account_failures(account) > 0
                || !matches!(
                    machine.state(),
                    agm_pool::safe_mode::SafeModeState::Off {
                        consecutive_failures: 0
                    }
                );
            (
                machine.record_project_success(account, Instant::now()),
                counted,
            )
        };
        // Only write when something was counted: a success is the common case.
        if counted || event.is_some() {
            self.after(event.into_iter().collect()).await;
        }
    }

    /// Logs, audits and counts `events`, then stores the state.
    async fn after(&self, events: Vec<SafeModeEvent>) {
        for event in &events {
            self.announce(event).await;
        }
        if let Err(e) = self.save().await {
            tracing::warn!(error = %e, "could not store the safe-mode state");
        }
    }

    async fn announce(&self, event: &SafeModeEvent) {
        let (subject, detail) = describe(event);
        match event {
            SafeModeEvent::Activated { .. } => {
                metrics::counter!("safe_mode_activations_total").increment(1);
                tracing::error!("safe mode ON: {detail}; requests go to the official Gemini API");
            }
            SafeModeEvent::Deactivated { .. } => {
                tracing::warn!("safe mode OFF: {detail}");
            }
            SafeModeEvent::AccountTripped { .. } => {
                tracing::error!(
                    account = %subject,
                    "ALERT: {detail}; the account is left out until its project is found"
                );
            }
        }
        let kind = match event {
            SafeModeEvent::AccountTripped { .. } => AuditKind::Alert,
            _ => AuditKind::SafeMode,
        };
        append_audit(&self.store, kind, &subject, &detail).await;
    }

    /// Writes the state with a new revision — unless the stored record changed since
    /// this process last read it (`agm safe-mode` or another replica wrote): then the
    /// stored record wins and is taken over, and nothing the operator did is lost.
    async fn save(&self) -> Result<(), StateError> {
        let _one_at_a_time = self.save_lock.lock().await;
        let seen = self.revision.load(Ordering::Relaxed);
        let record = {
            let machine = self.lock();
            self.active.store(
                machine.is_on() || !machine.config().enable_antigravity,
                Ordering::Relaxed,
            );
            machine.to_record(0, Instant::now(), SystemTime::now())
        };
        let written = self
            .shared
            .update(&keys::SAFE_MODE, move |stored: Option<SafeModeRecord>| {
                let stored_revision = stored.as_ref().map_or(0, |r| r.revision);
                if stored_revision > seen {
                    return (None, None);
                }
                let record = SafeModeRecord {
                    revision: stored_revision.max(seen) + 1,
                    reset_generation: stored.map_or(0, |r| r.reset_generation),
                    ..record
                };
                let revision = record.revision;
                (Some(record), Some(revision))
            })
            .await?;
        match written {
            Some(revision) => {
                self.revision.store(revision, Ordering::Relaxed);
                Ok(())
            }
            None => {
                tracing::info!("safe mode was changed elsewhere meanwhile; following that");
                self.sync().await.map(|_| ())
            }
        }
    }

    /// Reads the stored state and takes it over if it is newer than what this process
    /// last saw (the CLI changed it, or this is the first read after a start). Returns
    /// true when `agm safe-mode reset-all` ran since the last call (not on the first):
    /// the caller then resets its breakers and cooldowns too.
    pub async fn sync(&self) -> Result<bool, StateError> {
        let Some(record) = self.shared.get(&keys::SAFE_MODE).await? else {
            return Ok(false);
        };
        let seen = self
            .reset_generation
            .swap(record.reset_generation, Ordering::Relaxed);
        let reset_all = seen != u64::MAX && record.reset_generation > seen;
        if record.revision <= self.revision.load(Ordering::Relaxed) {
            return Ok(reset_all);
        }
        let mut machine = self.lock();
        let was_on = machine.is_on();
        machine.adopt(&record, Instant::now(), SystemTime::now());
        let on = machine.is_on();
        self.active.store(
            on || !machine.config().enable_antigravity,
            Ordering::Relaxed,
        );
        self.revision.store(record.revision, Ordering::Relaxed);
        if on != was_on {
            tracing::warn!(
                "safe mode {} (from the stored state)",
                if on { "ON" } else { "OFF" }
            );
        }
        Ok(reset_all)
    }
}

/// What an event is about, and what happened, in words (for the log and the audit).
fn describe(event: &SafeModeEvent) -> (String, String) {
    match event {
        SafeModeEvent::Activated { reason, .. } => {
            ("safe mode".to_owned(), format!("turned on: {reason}"))
        }
        SafeModeEvent::Deactivated { was_on_for, .. } => (
            "safe mode".to_owned(),
            format!(
                "turned off after {}",
                humantime::format_duration(Duration::from_secs(was_on_for.as_secs()))
            ),
        ),
        SafeModeEvent::AccountTripped {
            account, failures, ..
        } => (
            account.clone(),
            format!("project-id discovery failed {failures} times in a row"),
        ),
    }
}

/// The stored safe-mode record, if any (the CLI's `status` without a server).
pub async fn load_record(shared: &Shared) -> Result<Option<SafeModeRecord>, StateError> {
    shared.get(&keys::SAFE_MODE).await
}

/// Replaces the stored record (tests and recovery).
pub async fn save_record(shared: &Shared, record: &SafeModeRecord) -> Result<(), StateError> {
    shared.put(&keys::SAFE_MODE, record).await
}

/// The stored state as a status, without a server and without writing.
pub async fn stored_status(
    config: SafeModeConfig,
    shared: &Shared,
) -> Result<SafeModeStatus, StateError> {
    let now = Instant::now();
    let wall = SystemTime::now();
    let mut machine = SafeMode::new(config);
    if let Some(record) = load_record(shared).await? {
        machine.adopt(&record, now, wall);
    }
    Ok(machine.status(now, wall))
}

/// Who changed safe mode by hand, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Cli,
    Console,
}

impl Origin {
    fn label(self) -> &'static str {
        match self {
            Origin::Cli => "CLI",
            Origin::Console => "console",
        }
    }
}

/// A command from the CLI (`agm safe-mode ...`) or the console, applied to the stored
/// state with or without a server. Returns the status after it.
pub enum Command {
    Status,
    Enable { note: Option<String> },
    Disable,
    ResetAll,
}

pub async fn apply(
    config: SafeModeConfig,
    store: &Store,
    shared: &Shared,
    command: Command,
    origin: Origin,
) -> Result<SafeModeStatus, StateError> {
    if matches!(command, Command::Status) {
        return stored_status(config, shared).await;
    }
    let now = Instant::now();
    let wall = SystemTime::now();
    let reset_all = matches!(command, Command::ResetAll);
    // One transaction: a server writing meanwhile waits, then sees this record's newer
    // revision and takes it over.
    let (status, event) = shared
        .update(&keys::SAFE_MODE, move |stored: Option<SafeModeRecord>| {
            let mut machine = SafeMode::new(config);
            if let Some(record) = &stored {
                machine.adopt(record, now, wall);
            }
            let event = match command {
                Command::Status => None, // answered above, without a write
                Command::Enable { note } => machine.enable(note, now),
                Command::Disable => machine.disable(now),
                Command::ResetAll => machine.reset_all(now),
            };
            let revision = stored.as_ref().map_or(0, |r| r.revision) + 1;
            let reset_generation =
                stored.as_ref().map_or(0, |r| r.reset_generation) + u64::from(reset_all);
            let record = SafeModeRecord {
                reset_generation,
                ..machine.to_record(revision, now, wall)
            };
            (Some(record), (machine.status(now, wall), event))
        })
        .await?;
    if let Some(event) = &event {
        let (subject, detail) = describe(event);
        append_audit(
            store,
            AuditKind::SafeMode,
            &subject,
            &format!("{detail} ({})", origin.label()),
        )
        .await;
    }
    if reset_all {
        append_audit(
            store,
            AuditKind::SafeMode,
            "safe mode",
            &format!(
                "reset-all: project-id failure counts, circuit breakers and cooldowns cleared ({})",
                origin.label()
            ),
        )
        .await;
    }
    Ok(status)
}
