//! The routing policy of one request, as a pure plan: which account (or official-API
//! key) to call next, when to wait, when to give up. No I/O, no clock, no randomness:
//! the caller passes the time and a random sample in, does what each [`Step`] says,
//! applies the [`Effect`]s that come with it, and reports back.
//!
//! ```text
//!   start ─▶ Acquire{exclude} ──pool answer──▶ Call ──outcome──▶ Done
//!              ▲      │                                 │
//!              │      └──▶ Wait ──▶ (waited) ──┐        ├──▶ RetrySame ──outcome──▶ …
//!              └───────────────────────────────┴────────┴──▶ Acquire / Wait / Fail
//! ```
//!
//! # Limits ([`Limits`])
//!
//! - at most `calls` upstream calls (each may still walk the configured endpoints);
//! - at most `accounts` distinct accounts (keys);
//! - each account at most `per_account` calls, plus one retry with a fresh token after
//!   a 401 on a token that had not been refreshed for this request, and one retry
//!   after its first transient fault (neither says anything against the account);
//! - at most `waits` waits, and never a wait that ends after `deadline` (`now +
//!   max_wait` at [`Plan::new`]). Calls themselves are not cut by the deadline.
//!
//! # The decision table
//!
//! [`failure`] maps Google's `ErrorClass` to the [`Failure`] the plan decides on (the
//! one place that mapping is written). After a failed call on account `a`:
//!
//! | failure (from `ErrorClass`) | condition | effects | next step |
//! | --- | --- | --- | --- |
//! | any 403 that blames `X-Goog-User-Project` (`project_header_blamed`), header still sent | `a` below its cap, calls left | `OmitProjectHeader` | `RetrySame` without the header |
//! | `TokenRefused` (401) | the call used a token refreshed for this request (`fresh_token`) | `InvalidateToken`, `Disable(FreshTokenRefused)` | next account |
//! | `TokenRefused` (401) | any other call (a stale token, or a 401 after a timeout), no fresh retry used yet, calls left | `InvalidateToken` | `RetrySame` with a fresh token |
//! | `TokenRefused` (401) | fresh retry used or no calls left | `InvalidateToken` | next account; if the request ends here, `Exhausted { token_unconfirmed: true }`: never "signed out" |
//! | `RefreshTokenDead` (`invalid_grant`) | | `Disable(RefreshTokenRefused)` | next account |
//! | `Project` (403) | | `InvalidateProject` | next account |
//! | `NeedsUser` (`VALIDATION_REQUIRED`) | | — | next account |
//! | `Banned` (ToS) | | `Disable(Banned)` | next account |
//! | `Limit`, cooldown `WaitThenRetrySame(d)` | `a` below its cap, a wait left, `now + d ≤ deadline` | — | `Wait(d)`, then acquire (`a` not excluded: its session sticks) |
//! | `Limit`, cooldown `WaitThenRetrySame(_)` | otherwise | — | next account |
//! | `Limit`, cooldown `Switch` (quota, `needs_quota_recheck`) | | `RecheckQuota` | next account |
//! | `Limit`, cooldown `Switch` (other), or no decision | | — | next account |
//! | `Limit`, cooldown `BackOff { until }` | a wait left, `until ≤ deadline` | — | `Wait(until − now)`, then acquire |
//! | `Limit`, cooldown `BackOff { until }` | otherwise | — | `Fail(Final)` |
//! | `Transient` (5xx, network, unreadable or truncated answer, stall) | `a` has its transient retry, or is below its cap | — | `a` parked: another account at once; if the pool has none, `a` again after a back-off (`Backoff::delay(waits, random)`, a wait left, within the deadline) |
//! | `Transient` | otherwise | — | next account |
//! | `NotFound`, `Request` (400s), `Local`, `KeyRefused` | | — | `Fail(Final)` |
//! | `ClientOutdated` | | `VersionRefused` | `Fail(Final)` |
//! | success | | `Succeeded` | `Done` |
//!
//! "Next account" means: `a` joins the excluded set, then `Acquire` (or a failure
//! when the budget is spent). After a transient fault `a` is only *parked*: excluded
//! while the pool has another account, re-admitted after a back-off when it has none,
//! so a single 500, truncated body or stall never ends a request that has budget,
//! time or accounts left.
//!
//! The pool's answer to `Acquire`:
//!
//! | answer | condition | effects | next step |
//! | --- | --- | --- | --- |
//! | `Acquired(b)` | `b` new and `accounts` already tried, or no calls left | — | `Fail(Exhausted)` |
//! | `Acquired(b)` | otherwise | `Switched { from, to: b }` when `b` differs from the last account and a call failed | `Call` |
//! | `AllCoolingDown` / `NoneUsable` | an account is parked, a back-off fits | — | `Wait(back-off)`, then acquire with the parked accounts re-admitted |
//! | `AllCoolingDown { r }` | `r ≤ short_pool_wait`, a wait left, `now + r ≤ deadline` | — | `Wait(r)`, then acquire |
//! | `AllCoolingDown { r }` | otherwise | — | `Fail(AllLimited { retry_after: max(r, 1 s) })` |
//! | `NoneUsable` | a call failed before | — | `Fail(Exhausted)` |
//! | `NoneUsable` | nothing was called | — | `Fail(NoAccount)` (the pool's own error) |
//!
//! A `RetrySame` whose account cannot be leased again ([`Plan::lease_failed`]: its
//! token refresh or discovery failed) is not counted as a call; the account is done
//! with, and the plan goes on to the next.
//!
//! # The official API's keys ([`Plan::for_keys`])
//!
//! The same plan, with keys for accounts (the executor answers `Acquire` with the
//! next key of its rotation that is not excluded, or `NoneUsable`), and this table:
//!
//! | failure | next step |
//! | --- | --- |
//! | `KeyRefused`, `TokenRefused`, `Limit` (rate limit, quota) | next key |
//! | `Transient`, `Limit` (capacity) | another key at once, or the same key after a back-off when it is the only one (so one faulted call never ends a safe-mode request) |
//! | anything else | `Fail(Final)` |
//!
//! No cooldowns, no account effects: a key is not an account.
//!
//! # A 401 during project discovery
//!
//! Discovery (`loadCodeAssist`, onboarding) runs while a lease is prepared, outside
//! the plan. Map its error's class with [`failure`] too: a `TokenRefused` there means
//! "refresh the token and discover again", and only failures for which
//! [`Failure::counts_against_project`] holds are project-id failures for safe mode.

use std::time::{Duration, Instant};

use agm_google::ErrorClass;

use crate::backoff::{Backoff, Jitter};
use crate::cooldown::{CooldownReason, Decision, Limit};

/// Backoff before retrying after a transient fault: short, because the client is
/// waiting; the circuit breaker takes over for longer outages.
pub const TRANSIENT_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(250),
    cap: Duration::from_secs(4),
    jitter: Jitter::Equal,
};

/// The bounds of one request's attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Distinct accounts (keys) one request may call.
    pub accounts: usize,
    /// Calls per account, not counting the one fresh-token retry after a 401 and the
    /// one retry after a transient fault.
    pub per_account: u32,
    /// Upstream calls per request, every retry included (no self-DDoS).
    pub calls: usize,
    /// Waits per request (short rate limits, capacity back-off, transient back-off,
    /// the pool's soonest reset).
    pub waits: usize,
    /// When every account is limited and the first is free again within this, wait
    /// for it instead of answering 429.
    pub short_pool_wait: Duration,
    /// No wait ends later than `max_wait` after the plan starts (`routing.max_wait`).
    pub max_wait: Duration,
    /// The back-off before a transient fault is retried on the same account.
    pub backoff: Backoff,
}

impl Limits {
    /// The Antigravity path: 3 accounts, 2 calls each, 6 calls, 3 waits, a 2 s pool
    /// wait.
    pub fn accounts(max_wait: Duration) -> Limits {
        Limits {
            accounts: 3,
            per_account: 2,
            calls: 6,
            waits: 3,
            short_pool_wait: Duration::from_secs(2),
            max_wait,
            backoff: TRANSIENT_BACKOFF,
        }
    }

    /// The official API with `keys` keys: every key, 2 calls each, 6 calls, 3 waits.
    pub fn keys(keys: usize, max_wait: Duration) -> Limits {
        Limits {
            accounts: keys.max(1),
            short_pool_wait: Duration::ZERO,
            ..Limits::accounts(max_wait)
        }
    }
}

/// What a failed call means for routing: [`failure`] of Google's `ErrorClass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A rate limit, quota or capacity: report it to `Cooldowns::report`, pass the
    /// decision in [`Failed::cooldown`].
    Limit(Limit),
    /// 5xx, no answer (network, timeout, stall), an unreadable or truncated answer.
    Transient,
    /// 401: the access token was refused.
    TokenRefused,
    /// `invalid_grant`: the refresh token is dead until the user signs in again.
    RefreshTokenDead,
    /// A project or licence problem (403).
    Project,
    /// The user must verify the account.
    NeedsUser,
    /// Disabled for a Terms of Service violation.
    Banned,
    /// The official API refused its API key.
    KeyRefused,
    /// 404: the model or endpoint is not there.
    NotFound,
    /// The request itself is wrong (400s: invalid argument, signature, prompt too
    /// long; other 4xx).
    Request,
    /// Google refuses the client version agm reports: the same for every account.
    ClientOutdated,
    /// agm could not build the request: nothing reached Google.
    Local,
}

/// The one mapping of Google's error classes to the plan's failures.
pub fn failure(class: &ErrorClass) -> Failure {
    match class {
        ErrorClass::RateLimited { delay } => Failure::Limit(Limit::RateLimited { delay: *delay }),
        ErrorClass::QuotaExhausted { delay } => {
            Failure::Limit(Limit::QuotaExhausted { delay: *delay })
        }
        ErrorClass::CapacityExhausted { delay } => {
            Failure::Limit(Limit::CapacityExhausted { delay: *delay })
        }
        ErrorClass::ServerError | ErrorClass::Network | ErrorClass::Decode => Failure::Transient,
        ErrorClass::Unauthorized => Failure::TokenRefused,
        ErrorClass::InvalidGrant => Failure::RefreshTokenDead,
        ErrorClass::ProjectProblem => Failure::Project,
        ErrorClass::ValidationRequired { .. } => Failure::NeedsUser,
        ErrorClass::Banned => Failure::Banned,
        ErrorClass::InvalidApiKey => Failure::KeyRefused,
        ErrorClass::NotFound => Failure::NotFound,
        ErrorClass::SignatureInvalid
        | ErrorClass::PromptTooLong
        | ErrorClass::InvalidArgument
        | ErrorClass::Other => Failure::Request,
        ErrorClass::ClientOutdated => Failure::ClientOutdated,
        ErrorClass::Local => Failure::Local,
    }
}

impl Failure {
    /// The limit to report to `Cooldowns::report`, if this is one.
    pub fn limit(self) -> Option<Limit> {
        match self {
            Failure::Limit(limit) => Some(limit),
            _ => None,
        }
    }

    /// Whether this failure, met during project discovery, counts as a project-id
    /// failure for safe mode. A refused access token (refresh it and discover again),
    /// a dead refresh token, agm's own failure, an outdated client version and a
    /// refused API key say nothing about the account's project.
    pub fn counts_against_project(self) -> bool {
        !matches!(
            self,
            Failure::TokenRefused
                | Failure::RefreshTokenDead
                | Failure::Local
                | Failure::ClientOutdated
                | Failure::KeyRefused
        )
    }
}

/// The limit to report to `Cooldowns::report` for this class, if any.
pub fn limit(class: &ErrorClass) -> Option<Limit> {
    failure(class).limit()
}

/// What the pool answered to [`Step::Acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolAnswer {
    /// A lease on this account (id), not one of the excluded.
    Acquired(String),
    /// Every account is cooling down; the soonest is free in `retry_after`.
    AllCoolingDown { retry_after: Duration },
    /// No account can serve (none set up, all excluded, disabled or blocked).
    NoneUsable,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failed(Failed),
}

/// A failed call, as the executor saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub class: ErrorClass,
    /// For a [`Failure::Limit`]: what `Cooldowns::report` decided for the account.
    pub cooldown: Option<Decision>,
    /// A 403 that names the `X-Goog-User-Project` header or the project, on a call
    /// that sent the header.
    pub project_header_blamed: bool,
}

impl Failed {
    /// A failure of `class`, no cooldown decision, the header not blamed.
    pub fn new(class: ErrorClass) -> Failed {
        Failed {
            class,
            cooldown: None,
            project_header_blamed: false,
        }
    }

    pub fn with_cooldown(self, decision: Decision) -> Failed {
        Failed {
            cooldown: Some(decision),
            ..self
        }
    }

    pub fn blaming_project_header(self) -> Failed {
        Failed {
            project_header_blamed: true,
            ..self
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Ask the pool for an account not in `exclude`; answer with [`Plan::acquired`].
    Acquire { exclude: Vec<String> },
    /// Call upstream on the lease just acquired; answer with [`Plan::called`].
    Call {
        account: String,
        /// The lease's token was refreshed for this request (its token had been
        /// invalidated).
        fresh_token: bool,
        /// Send no `X-Goog-User-Project` header.
        without_project_header: bool,
    },
    /// Call the same account again: lease it anew with a fresh token (the
    /// `InvalidateToken` effect came first), and/or without the project header.
    /// Answer with [`Plan::called`], or [`Plan::lease_failed`] when it cannot be leased.
    RetrySame {
        account: String,
        fresh_token: bool,
        without_project_header: bool,
    },
    /// Sleep this long, then [`Plan::waited`].
    Wait(Duration),
    /// The last call succeeded: hand its answer to the client.
    Done,
    /// Give up.
    Fail(RouteFailure),
}

/// Why a request failed, and whose upstream error to show. The executor keeps the
/// error of the latest failed call; `last_error_account` names its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFailure {
    pub kind: RouteFailureKind,
    pub last_error_account: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteFailureKind {
    /// Google's last answer ends the request as it is: the request's own fault (400,
    /// 404), an outdated client, agm's local failure, a capacity back-off past the
    /// deadline.
    Final,
    /// Every account is limited: 429 with this `retry-after` (at least 1 s).
    /// `last_error_account` is set only when the last failure was a limit (show it).
    AllLimited { retry_after: Duration },
    /// The budget (calls, waits, accounts, the deadline) ran out, or no other
    /// account was left, after retryable failures: answer with the last error —
    /// but when `token_unconfirmed`, that error is a 401 never retried with a fresh
    /// token: the account is not known to be signed out, so answer 503 (try again),
    /// never "signed out".
    Exhausted { token_unconfirmed: bool },
    /// Nothing was called and the pool had no account: the pool's own error (which
    /// may send the request to the official API).
    NoAccount,
}

/// Why the plan disables an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableReason {
    /// A 401 on a token refreshed for this very request.
    FreshTokenRefused,
    /// `invalid_grant`.
    RefreshTokenRefused,
    /// Terms of Service.
    Banned,
}

impl DisableReason {
    /// The account's recorded reason, with Google's message.
    pub fn describe(self, google: &str) -> String {
        match self {
            DisableReason::FreshTokenRefused => format!(
                "Google refused a freshly refreshed access token (401: {google}); sign in again with `agm accounts add`, then `agm accounts enable`"
            ),
            DisableReason::RefreshTokenRefused => format!(
                "Google refused the refresh token ({google}); sign in again with `agm accounts add`"
            ),
            DisableReason::Banned => {
                format!("Google disabled this account for a Terms of Service violation: {google}")
            }
        }
    }
}

/// A side effect the executor performs (in order, before the step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Forget the account's access token: its next lease refreshes it.
    InvalidateToken { account: String },
    /// Forget the account's project: its next lease runs discovery again.
    InvalidateProject { account: String },
    /// Stop sending `X-Goog-User-Project` for this account.
    OmitProjectHeader { account: String },
    /// Disable the account (audited, sticky sessions unbound).
    Disable {
        account: String,
        reason: DisableReason,
    },
    /// Ask Google's quota call when this account's quota for the model comes back.
    RecheckQuota { account: String },
    /// The request moved from one account to another after a failure (audit, metric).
    Switched {
        from: String,
        to: String,
        after: ErrorClass,
    },
    /// Google refused the client version (record the drift for `agm doctor`).
    VersionRefused { account: String },
    /// The call succeeded (record the success: cooldowns, catalogue, safe mode).
    Succeeded { account: String },
}

/// The plan's answer to an event: effects to apply first, then the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub effects: Vec<Effect>,
    pub step: Step,
}

impl Turn {
    fn only(step: Step) -> Turn {
        Turn {
            effects: Vec::new(),
            step,
        }
    }
}

/// `now + d`, or as late as `Instant` goes for an absurd `d` (no overflow panic).
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(now)
}

/// Accounts (the Antigravity path) or the official API's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Accounts,
    Keys,
}

/// One account the request has called.
#[derive(Debug, Clone)]
struct Tried {
    account: String,
    /// Calls, not counting the fresh-token retry and the transient retry.
    calls: u32,
    /// The fresh-token retry was used.
    refreshed: bool,
    /// The retry after a transient fault.
    transient: Exemption,
    /// The project header is off for it.
    header_off: bool,
}

/// The retry after a transient fault, outside the per-account cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exemption {
    Unused,
    /// Granted: the account's next call is that retry.
    Pending,
    Used,
}

/// The call in flight.
#[derive(Debug, Clone)]
struct InFlight {
    account: String,
    fresh_token: bool,
}

/// The latest failure.
#[derive(Debug, Clone)]
struct Last {
    account: String,
    class: ErrorClass,
    failure: Failure,
    /// A 401 that was not confirmed on a fresh token.
    token_unconfirmed: bool,
}

/// The attempts of one request. See the module docs for the decision table.
#[derive(Debug, Clone)]
pub struct Plan {
    mode: Mode,
    limits: Limits,
    deadline: Instant,
    calls: usize,
    waits: usize,
    tried: Vec<Tried>,
    /// Accounts this request is done with.
    done: Vec<String>,
    /// Accounts excluded after a transient fault, re-admitted after a back-off when
    /// the pool has nothing else.
    parked: Vec<String>,
    /// The random sample for the re-admission back-off.
    parked_random: f64,
    in_flight: Option<InFlight>,
    last: Option<Last>,
    /// The account of the latest call (for the switch audit).
    previous: Option<String>,
    finished: Option<Step>,
}

impl Plan {
    /// The plan of one request on the Antigravity path, started at `now`.
    pub fn new(limits: Limits, now: Instant) -> Plan {
        Plan {
            mode: Mode::Accounts,
            limits,
            deadline: later(now, limits.max_wait),
            calls: 0,
            waits: 0,
            tried: Vec::new(),
            done: Vec::new(),
            parked: Vec::new(),
            parked_random: 0.5,
            in_flight: None,
            last: None,
            previous: None,
            finished: None,
        }
    }

    /// The plan of one request on the official API: keys for accounts (see the
    /// module docs).
    pub fn for_keys(limits: Limits, now: Instant) -> Plan {
        Plan {
            mode: Mode::Keys,
            ..Plan::new(limits, now)
        }
    }

    /// The first step (always `Acquire`, unless the call budget is zero).
    pub fn start(&mut self, now: Instant) -> Turn {
        self.acquire(Vec::new(), now)
    }

    /// Upstream calls so far.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Waits so far.
    pub fn waits(&self) -> usize {
        self.waits
    }

    /// No wait ends after this.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The accounts called so far, in order.
    pub fn tried(&self) -> impl Iterator<Item = &str> {
        self.tried.iter().map(|t| t.account.as_str())
    }

    /// The pool answered the last `Acquire`.
    pub fn acquired(&mut self, answer: PoolAnswer, now: Instant) -> Turn {
        if let Some(step) = &self.finished {
            return Turn::only(step.clone());
        }
        match answer {
            PoolAnswer::Acquired(account) => self.call_acquired(account, now),
            PoolAnswer::AllCoolingDown { retry_after } => {
                if let Some(turn) = self.readmit(now) {
                    return turn;
                }
                if retry_after <= self.limits.short_pool_wait && self.may_wait(retry_after, now) {
                    return self.wait(retry_after);
                }
                let last_error_account = self
                    .last
                    .as_ref()
                    .filter(|l| matches!(l.failure, Failure::Limit(_)))
                    .map(|l| l.account.clone());
                self.finish(
                    Vec::new(),
                    RouteFailure {
                        kind: RouteFailureKind::AllLimited {
                            retry_after: retry_after.max(Duration::from_secs(1)),
                        },
                        last_error_account,
                    },
                )
            }
            PoolAnswer::NoneUsable => {
                if let Some(turn) = self.readmit(now) {
                    return turn;
                }
                if self.last.is_some() {
                    self.exhausted(Vec::new())
                } else {
                    self.finish(
                        Vec::new(),
                        RouteFailure {
                            kind: RouteFailureKind::NoAccount,
                            last_error_account: None,
                        },
                    )
                }
            }
        }
    }

    /// The last `Wait` is over.
    pub fn waited(&mut self, now: Instant) -> Turn {
        if let Some(step) = &self.finished {
            return Turn::only(step.clone());
        }
        self.acquire(Vec::new(), now)
    }

    /// The account of the last `RetrySame` could not be leased again (its token
    /// refresh or discovery failed): done with it, on to the next.
    pub fn lease_failed(&mut self, now: Instant) -> Turn {
        if let Some(step) = &self.finished {
            return Turn::only(step.clone());
        }
        if let Some(in_flight) = self.in_flight.take() {
            // Nothing reached Google: the call is not spent. The account is done with,
            // so this happens at most once per account.
            self.calls = self.calls.saturating_sub(1);
            self.mark_done(&in_flight.account);
        }
        self.acquire(Vec::new(), now)
    }

    /// The last `Call` or `RetrySame` ended with `outcome`. `random` is a sample in
    /// `[0, 1)` for the back-off's jitter.
    pub fn called(&mut self, outcome: Outcome, now: Instant, random: f64) -> Turn {
        if let Some(step) = &self.finished {
            return Turn::only(step.clone());
        }
        let Some(in_flight) = self.in_flight.take() else {
            // Out of order: nothing was in flight. End rather than loop.
            return self.exhausted(Vec::new());
        };
        let account = in_flight.account.clone();
        let failed = match outcome {
            Outcome::Success => {
                self.finished = Some(Step::Done);
                return Turn {
                    effects: vec![Effect::Succeeded { account }],
                    step: Step::Done,
                };
            }
            Outcome::Failed(failed) => failed,
        };
        let failure = failure(&failed.class);
        self.last = Some(Last {
            account: account.clone(),
            class: failed.class.clone(),
            failure,
            token_unconfirmed: false,
        });
        match self.mode {
            Mode::Accounts => self.account_failed(&in_flight, &failed, failure, now, random),
            Mode::Keys => self.key_failed(&account, failure, now, random),
        }
    }

    fn account_failed(
        &mut self,
        in_flight: &InFlight,
        failed: &Failed,
        failure: Failure,
        now: Instant,
        random: f64,
    ) -> Turn {
        let account = in_flight.account.clone();
        let mut effects = Vec::new();
        let below_cap = self.below_cap(&account);
        if failed.project_header_blamed && !self.entry(&account).header_off {
            // Some accounts get 403s because of the header: retry once without it, and
            // remember that for the account.
            self.entry(&account).header_off = true;
            effects.push(Effect::OmitProjectHeader {
                account: account.clone(),
            });
            if below_cap && self.calls < self.limits.calls {
                return self.retry_same(effects, &account, false);
            }
        }
        match failure {
            Failure::TokenRefused if in_flight.fresh_token => {
                // Refused with a token refreshed for this very request.
                effects.push(Effect::InvalidateToken {
                    account: account.clone(),
                });
                effects.push(Effect::Disable {
                    account: account.clone(),
                    reason: DisableReason::FreshTokenRefused,
                });
                self.next_account(effects, &account, now)
            }
            Failure::TokenRefused => {
                // A stale token (or one that expired while a call stalled): refresh
                // it and try again. Not a sign-out.
                effects.push(Effect::InvalidateToken {
                    account: account.clone(),
                });
                let calls_left = self.calls < self.limits.calls;
                let entry = self.entry(&account);
                if !entry.refreshed && calls_left {
                    entry.refreshed = true;
                    return self.retry_same(effects, &account, true);
                }
                if let Some(last) = &mut self.last {
                    last.token_unconfirmed = true;
                }
                self.next_account(effects, &account, now)
            }
            Failure::RefreshTokenDead | Failure::Banned | Failure::Project | Failure::NeedsUser => {
                let account = account.clone();
                effects.extend(match failure {
                    Failure::RefreshTokenDead => Some(Effect::Disable {
                        account: account.clone(),
                        reason: DisableReason::RefreshTokenRefused,
                    }),
                    Failure::Banned => Some(Effect::Disable {
                        account: account.clone(),
                        reason: DisableReason::Banned,
                    }),
                    Failure::Project => Some(Effect::InvalidateProject {
                        account: account.clone(),
                    }),
                    _ => None,
                });
                self.next_account(effects, &account, now)
            }
            Failure::Limit(_) => match failed.cooldown {
                Some(Decision::WaitThenRetrySame(wait))
                    if below_cap && self.may_wait(wait, now) =>
                {
                    // Short: wait on the same account (it keeps the prompt cache).
                    let mut turn = self.wait(wait);
                    turn.effects = effects;
                    turn
                }
                Some(Decision::BackOff { until }) => {
                    let wait = until.saturating_duration_since(now);
                    if !self.may_wait(wait, now) {
                        return self.final_failure(effects, &account);
                    }
                    if !below_cap {
                        self.mark_done(&account);
                    }
                    let mut turn = self.wait(wait);
                    turn.effects = effects;
                    turn
                }
                Some(Decision::Switch {
                    reason:
                        CooldownReason::QuotaExhausted {
                            needs_quota_recheck: true,
                        },
                    ..
                }) => {
                    effects.push(Effect::RecheckQuota {
                        account: account.clone(),
                    });
                    self.next_account(effects, &account, now)
                }
                Some(Decision::WaitThenRetrySame(_) | Decision::Switch { .. }) | None => {
                    self.next_account(effects, &account, now)
                }
            },
            Failure::Transient => self.transient(effects, &account, now, random),
            Failure::ClientOutdated => {
                effects.push(Effect::VersionRefused {
                    account: account.clone(),
                });
                self.final_failure(effects, &account)
            }
            Failure::NotFound | Failure::Request | Failure::Local | Failure::KeyRefused => {
                self.final_failure(effects, &account)
            }
        }
    }

    fn key_failed(&mut self, key: &str, failure: Failure, now: Instant, random: f64) -> Turn {
        match failure {
            Failure::KeyRefused
            | Failure::TokenRefused
            | Failure::Limit(Limit::RateLimited { .. } | Limit::QuotaExhausted { .. }) => {
                self.next_account(Vec::new(), key, now)
            }
            Failure::Transient | Failure::Limit(Limit::CapacityExhausted { .. }) => {
                self.transient(Vec::new(), key, now, random)
            }
            _ => self.final_failure(Vec::new(), key),
        }
    }

    /// A transient fault on `account`: another account at once; this one again after
    /// a back-off if the pool has no other (see [`Plan::readmit`]).
    fn transient(
        &mut self,
        effects: Vec<Effect>,
        account: &str,
        now: Instant,
        random: f64,
    ) -> Turn {
        let below_cap = self.below_cap(account);
        let entry = self.entry(account);
        if entry.transient == Exemption::Unused || below_cap {
            if entry.transient == Exemption::Unused {
                entry.transient = Exemption::Pending;
            }
            self.parked.push(account.to_owned());
            self.parked_random = random;
        } else {
            self.mark_done(account);
        }
        self.acquire(effects, now)
    }

    /// When the pool has nothing else: the parked accounts back in, after a
    /// back-off, if one fits.
    fn readmit(&mut self, now: Instant) -> Option<Turn> {
        if self.parked.is_empty() || self.calls >= self.limits.calls {
            return None;
        }
        let attempt = u32::try_from(self.waits).unwrap_or(u32::MAX);
        let delay = self.limits.backoff.delay(attempt, self.parked_random);
        if !self.may_wait(delay, now) {
            return None;
        }
        self.parked.clear();
        Some(self.wait(delay))
    }

    fn call_acquired(&mut self, account: String, now: Instant) -> Turn {
        if self.done.contains(&account) || self.parked.contains(&account) {
            // The pool handed out an excluded account: treat it as having none.
            return self.acquired(PoolAnswer::NoneUsable, now);
        }
        let known = self.tried.iter().any(|t| t.account == account);
        if self.calls >= self.limits.calls || (!known && self.tried.len() >= self.limits.accounts) {
            return self.exhausted(Vec::new());
        }
        let mut effects = Vec::new();
        if self.mode == Mode::Accounts
            && let Some(from) = &self.previous
            && *from != account
            && let Some(last) = &self.last
        {
            effects.push(Effect::Switched {
                from: from.clone(),
                to: account.clone(),
                after: last.class.clone(),
            });
        }
        self.previous = Some(account.clone());
        self.calls += 1;
        let entry = self.entry(&account);
        if entry.transient == Exemption::Pending {
            entry.transient = Exemption::Used;
        } else {
            entry.calls += 1;
        }
        let without_project_header = entry.header_off;
        self.in_flight = Some(InFlight {
            account: account.clone(),
            fresh_token: false,
        });
        Turn {
            effects,
            step: Step::Call {
                account,
                fresh_token: false,
                without_project_header,
            },
        }
    }

    fn retry_same(&mut self, effects: Vec<Effect>, account: &str, fresh_token: bool) -> Turn {
        self.calls += 1;
        let entry = self.entry(account);
        if !fresh_token {
            entry.calls += 1;
        }
        let without_project_header = entry.header_off;
        self.in_flight = Some(InFlight {
            account: account.to_owned(),
            fresh_token,
        });
        Turn {
            effects,
            step: Step::RetrySame {
                account: account.to_owned(),
                fresh_token,
                without_project_header,
            },
        }
    }

    /// `Acquire`, or the end when nothing more may be called.
    fn acquire(&mut self, effects: Vec<Effect>, now: Instant) -> Turn {
        if self.calls >= self.limits.calls {
            return self.exhausted(effects);
        }
        let open = self
            .tried
            .iter()
            .any(|t| !self.done.contains(&t.account) && !self.parked.contains(&t.account));
        if self.tried.len() >= self.limits.accounts && !open {
            // Every account this request may use is done with or parked.
            return match self.readmit(now) {
                Some(mut turn) => {
                    turn.effects = effects;
                    turn
                }
                None => self.exhausted(effects),
            };
        }
        let mut exclude = self.done.clone();
        exclude.extend(self.parked.iter().cloned());
        Turn {
            effects,
            step: Step::Acquire { exclude },
        }
    }

    /// Done with `account`: on to the next.
    fn next_account(&mut self, effects: Vec<Effect>, account: &str, now: Instant) -> Turn {
        self.mark_done(account);
        self.acquire(effects, now)
    }

    fn may_wait(&self, wait: Duration, now: Instant) -> bool {
        self.waits < self.limits.waits
            && now
                .checked_add(wait)
                .is_some_and(|end| end <= self.deadline)
    }

    fn wait(&mut self, wait: Duration) -> Turn {
        self.waits += 1;
        Turn::only(Step::Wait(wait))
    }

    fn below_cap(&self, account: &str) -> bool {
        self.tried
            .iter()
            .find(|t| t.account == account)
            .is_none_or(|t| t.calls < self.limits.per_account)
    }

    fn entry(&mut self, account: &str) -> &mut Tried {
        let index = match self.tried.iter().position(|t| t.account == account) {
            Some(index) => index,
            None => {
                self.tried.push(Tried {
                    account: account.to_owned(),
                    calls: 0,
                    refreshed: false,
                    transient: Exemption::Unused,
                    header_off: false,
                });
                self.tried.len() - 1
            }
        };
        &mut self.tried[index]
    }

    fn mark_done(&mut self, account: &str) {
        self.parked.retain(|a| a != account);
        if !self.done.iter().any(|a| a == account) {
            self.done.push(account.to_owned());
        }
    }

    fn final_failure(&mut self, effects: Vec<Effect>, account: &str) -> Turn {
        self.finish(
            effects,
            RouteFailure {
                kind: RouteFailureKind::Final,
                last_error_account: Some(account.to_owned()),
            },
        )
    }

    fn exhausted(&mut self, effects: Vec<Effect>) -> Turn {
        let token_unconfirmed = self.last.as_ref().is_some_and(|l| l.token_unconfirmed);
        let last_error_account = self.last.as_ref().map(|l| l.account.clone());
        self.finish(
            effects,
            RouteFailure {
                kind: RouteFailureKind::Exhausted { token_unconfirmed },
                last_error_account,
            },
        )
    }

    fn finish(&mut self, effects: Vec<Effect>, failure: RouteFailure) -> Turn {
        let step = Step::Fail(failure);
        self.finished = Some(step.clone());
        self.in_flight = None;
        Turn { effects, step }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use proptest::prelude::*;

    const A: &str = "a";
    const B: &str = "b";

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn s(x: &str) -> String {
        x.to_owned()
    }

    fn acquire(exclude: &[&str]) -> Step {
        Step::Acquire {
            exclude: exclude.iter().map(|a| s(a)).collect(),
        }
    }

    fn call(account: &str) -> Step {
        Step::Call {
            account: s(account),
            fresh_token: false,
            without_project_header: false,
        }
    }

    fn turn(effects: Vec<Effect>, step: Step) -> Turn {
        Turn { effects, step }
    }

    fn fail(kind: RouteFailureKind, account: Option<&str>) -> Step {
        Step::Fail(RouteFailure {
            kind,
            last_error_account: account.map(s),
        })
    }

    fn exhausted(account: Option<&str>) -> Step {
        fail(
            RouteFailureKind::Exhausted {
                token_unconfirmed: false,
            },
            account,
        )
    }

    fn failed(class: ErrorClass) -> Outcome {
        Outcome::Failed(Failed::new(class))
    }

    fn limited(class: ErrorClass, decision: Decision) -> Outcome {
        Outcome::Failed(Failed::new(class).with_cooldown(decision))
    }

    fn rate() -> ErrorClass {
        ErrorClass::RateLimited {
            delay: Some(secs(2)),
        }
    }

    fn quota() -> ErrorClass {
        ErrorClass::QuotaExhausted { delay: None }
    }

    fn capacity() -> ErrorClass {
        ErrorClass::CapacityExhausted { delay: None }
    }

    fn switch(t: Instant, reason: CooldownReason) -> Decision {
        Decision::Switch {
            until: t + secs(30),
            reason,
        }
    }

    /// A plan (accounts, or keys) that has acquired `A` and called it at `t`.
    fn calling_a(keys: bool, limits: Limits, t: Instant) -> Plan {
        let mut plan = if keys {
            Plan::for_keys(limits, t)
        } else {
            Plan::new(limits, t)
        };
        assert_eq!(plan.start(t), turn(vec![], acquire(&[])));
        assert_eq!(
            plan.acquired(PoolAnswer::Acquired(s(A)), t),
            turn(vec![], call(A))
        );
        plan
    }

    #[test]
    fn failure_is_mapped_once() {
        let rows = [
            (
                ErrorClass::RateLimited { delay: None },
                Failure::Limit(Limit::RateLimited { delay: None }),
            ),
            (
                ErrorClass::QuotaExhausted {
                    delay: Some(secs(9)),
                },
                Failure::Limit(Limit::QuotaExhausted {
                    delay: Some(secs(9)),
                }),
            ),
            (
                capacity(),
                Failure::Limit(Limit::CapacityExhausted { delay: None }),
            ),
            (ErrorClass::ServerError, Failure::Transient),
            (ErrorClass::Network, Failure::Transient),
            (ErrorClass::Decode, Failure::Transient),
            (ErrorClass::Unauthorized, Failure::TokenRefused),
            (ErrorClass::InvalidGrant, Failure::RefreshTokenDead),
            (ErrorClass::ProjectProblem, Failure::Project),
            (
                ErrorClass::ValidationRequired { url: None },
                Failure::NeedsUser,
            ),
            (ErrorClass::Banned, Failure::Banned),
            (ErrorClass::InvalidApiKey, Failure::KeyRefused),
            (ErrorClass::NotFound, Failure::NotFound),
            (ErrorClass::SignatureInvalid, Failure::Request),
            (ErrorClass::PromptTooLong, Failure::Request),
            (ErrorClass::InvalidArgument, Failure::Request),
            (ErrorClass::Other, Failure::Request),
            (ErrorClass::ClientOutdated, Failure::ClientOutdated),
            (ErrorClass::Local, Failure::Local),
        ];
        for (class, expected) in rows {
            assert_eq!(failure(&class), expected, "{class:?}");
            assert_eq!(limit(&class), expected.limit(), "{class:?}");
        }
    }

    #[test]
    fn what_counts_against_the_project_in_discovery() {
        // A 401 during discovery means "refresh and retry": never a project failure
        // (five of them turned safe mode on in the soak).
        assert!(!failure(&ErrorClass::Unauthorized).counts_against_project());
        assert!(!failure(&ErrorClass::InvalidGrant).counts_against_project());
        assert!(!failure(&ErrorClass::Local).counts_against_project());
        assert!(!failure(&ErrorClass::ClientOutdated).counts_against_project());
        assert!(failure(&ErrorClass::ProjectProblem).counts_against_project());
        assert!(failure(&ErrorClass::NotFound).counts_against_project());
        assert!(failure(&ErrorClass::ValidationRequired { url: None }).counts_against_project());
        assert!(failure(&ErrorClass::Banned).counts_against_project());
        assert!(failure(&ErrorClass::ServerError).counts_against_project());
    }

    /// Every row of the module docs' first table: the first call on `A` ends with
    /// this outcome, at t0 with a 60 s `max_wait`.
    #[test]
    fn the_decision_table_for_accounts() {
        let t = Instant::now();
        let a = || s(A);
        let rows: Vec<(&str, Outcome, Turn)> = vec![
            (
                "success",
                Outcome::Success,
                turn(vec![Effect::Succeeded { account: a() }], Step::Done),
            ),
            (
                "401 on a stale token: refresh, same account",
                failed(ErrorClass::Unauthorized),
                turn(
                    vec![Effect::InvalidateToken { account: a() }],
                    Step::RetrySame {
                        account: a(),
                        fresh_token: true,
                        without_project_header: false,
                    },
                ),
            ),
            (
                "the project header blamed: same account without it",
                Outcome::Failed(Failed::new(ErrorClass::ProjectProblem).blaming_project_header()),
                turn(
                    vec![Effect::OmitProjectHeader { account: a() }],
                    Step::RetrySame {
                        account: a(),
                        fresh_token: false,
                        without_project_header: true,
                    },
                ),
            ),
            (
                "invalid_grant disables",
                failed(ErrorClass::InvalidGrant),
                turn(
                    vec![Effect::Disable {
                        account: a(),
                        reason: DisableReason::RefreshTokenRefused,
                    }],
                    acquire(&[A]),
                ),
            ),
            (
                "project problem: invalidate, next",
                failed(ErrorClass::ProjectProblem),
                turn(
                    vec![Effect::InvalidateProject { account: a() }],
                    acquire(&[A]),
                ),
            ),
            (
                "validation required: next",
                failed(ErrorClass::ValidationRequired { url: None }),
                turn(vec![], acquire(&[A])),
            ),
            (
                "banned: disable, next",
                failed(ErrorClass::Banned),
                turn(
                    vec![Effect::Disable {
                        account: a(),
                        reason: DisableReason::Banned,
                    }],
                    acquire(&[A]),
                ),
            ),
            (
                "short rate limit: wait, same account not excluded",
                limited(rate(), Decision::WaitThenRetrySame(secs(2))),
                turn(vec![], Step::Wait(secs(2))),
            ),
            (
                "a short wait past the deadline: next",
                limited(rate(), Decision::WaitThenRetrySame(secs(61))),
                turn(vec![], acquire(&[A])),
            ),
            (
                "rate limit cooled down: next",
                limited(rate(), switch(t, CooldownReason::RateLimited)),
                turn(vec![], acquire(&[A])),
            ),
            (
                "a limit with no decision: next",
                failed(rate()),
                turn(vec![], acquire(&[A])),
            ),
            (
                "quota, re-check: ask for it, next",
                limited(
                    quota(),
                    switch(
                        t,
                        CooldownReason::QuotaExhausted {
                            needs_quota_recheck: true,
                        },
                    ),
                ),
                turn(vec![Effect::RecheckQuota { account: a() }], acquire(&[A])),
            ),
            (
                "quota with a reset: next",
                limited(
                    quota(),
                    switch(
                        t,
                        CooldownReason::QuotaExhausted {
                            needs_quota_recheck: false,
                        },
                    ),
                ),
                turn(vec![], acquire(&[A])),
            ),
            (
                "capacity within the deadline: wait",
                limited(capacity(), Decision::BackOff { until: t + secs(4) }),
                turn(vec![], Step::Wait(secs(4))),
            ),
            (
                "capacity past the deadline: fail",
                limited(
                    capacity(),
                    Decision::BackOff {
                        until: t + secs(61),
                    },
                ),
                turn(vec![], fail(RouteFailureKind::Final, Some(A))),
            ),
            (
                "5xx: another account at once",
                failed(ErrorClass::ServerError),
                turn(vec![], acquire(&[A])),
            ),
            (
                "network (a stall, a timeout): another account at once",
                failed(ErrorClass::Network),
                turn(vec![], acquire(&[A])),
            ),
            (
                "truncated body: another account at once",
                failed(ErrorClass::Decode),
                turn(vec![], acquire(&[A])),
            ),
            (
                "client outdated: record, fail",
                failed(ErrorClass::ClientOutdated),
                turn(
                    vec![Effect::VersionRefused { account: a() }],
                    fail(RouteFailureKind::Final, Some(A)),
                ),
            ),
        ];
        for (name, outcome, expected) in rows {
            let mut plan = calling_a(false, Limits::accounts(secs(60)), t);
            assert_eq!(plan.called(outcome, t, 0.5), expected, "{name}");
        }
        // The request's own fault (the caller retries a signature error without
        // thinking), agm's, or a key on the wrong path: fail at once, no blame.
        for class in [
            ErrorClass::NotFound,
            ErrorClass::InvalidArgument,
            ErrorClass::PromptTooLong,
            ErrorClass::SignatureInvalid,
            ErrorClass::Other,
            ErrorClass::Local,
            ErrorClass::InvalidApiKey,
        ] {
            let mut plan = calling_a(false, Limits::accounts(secs(60)), t);
            assert_eq!(
                plan.called(failed(class.clone()), t, 0.5),
                turn(vec![], fail(RouteFailureKind::Final, Some(A))),
                "{class:?}"
            );
        }
    }

    /// Every row of the keys table: the first call on key `A` ends with this.
    #[test]
    fn the_decision_table_for_keys() {
        let t = Instant::now();
        let rows: Vec<(&str, Outcome, Step)> = vec![
            ("success", Outcome::Success, Step::Done),
            (
                "refused key: next",
                failed(ErrorClass::InvalidApiKey),
                acquire(&[A]),
            ),
            ("401: next", failed(ErrorClass::Unauthorized), acquire(&[A])),
            ("rate limit: next", failed(rate()), acquire(&[A])),
            ("quota: next", failed(quota()), acquire(&[A])),
            (
                "5xx: another key, parked",
                failed(ErrorClass::ServerError),
                acquire(&[A]),
            ),
            (
                "network: another key, parked",
                failed(ErrorClass::Network),
                acquire(&[A]),
            ),
            (
                "capacity: another key, parked",
                failed(capacity()),
                acquire(&[A]),
            ),
            (
                "invalid argument: fail",
                failed(ErrorClass::InvalidArgument),
                fail(RouteFailureKind::Final, Some(A)),
            ),
            (
                "not found: fail",
                failed(ErrorClass::NotFound),
                fail(RouteFailureKind::Final, Some(A)),
            ),
            (
                "project problem (403): fail",
                failed(ErrorClass::ProjectProblem),
                fail(RouteFailureKind::Final, Some(A)),
            ),
        ];
        for (name, outcome, expected) in rows {
            let mut plan = calling_a(true, Limits::keys(2, secs(60)), t);
            let got = plan.called(outcome, t, 0.5);
            assert_eq!(got.step, expected, "{name}");
            assert!(
                got.effects
                    .iter()
                    .all(|e| matches!(e, Effect::Succeeded { .. })),
                "{name}: keys have no account effects"
            );
        }
    }

    /// The pool's answers (the module docs' second table).
    #[test]
    fn the_pool_answers() {
        let t = Instant::now();
        let limits = Limits::accounts(secs(60));
        // Nothing called, no account: the pool's own error.
        let mut plan = Plan::new(limits, t);
        plan.start(t);
        assert_eq!(
            plan.acquired(PoolAnswer::NoneUsable, t).step,
            fail(RouteFailureKind::NoAccount, None)
        );
        // Every account limited, free again in a moment: wait, then acquire.
        let mut plan = Plan::new(limits, t);
        plan.start(t);
        assert_eq!(
            plan.acquired(
                PoolAnswer::AllCoolingDown {
                    retry_after: ms(1500)
                },
                t
            )
            .step,
            Step::Wait(ms(1500))
        );
        assert_eq!(plan.waited(t + ms(1500)).step, acquire(&[]));
        // Free again later than short_pool_wait: 429 with retry-after, at least 1 s.
        assert_eq!(
            plan.acquired(
                PoolAnswer::AllCoolingDown {
                    retry_after: secs(30)
                },
                t
            )
            .step,
            fail(
                RouteFailureKind::AllLimited {
                    retry_after: secs(30)
                },
                None
            )
        );
        let mut plan = Plan::new(
            Limits {
                short_pool_wait: Duration::ZERO,
                ..limits
            },
            t,
        );
        plan.start(t);
        assert_eq!(
            plan.acquired(
                PoolAnswer::AllCoolingDown {
                    retry_after: ms(300)
                },
                t
            )
            .step,
            fail(
                RouteFailureKind::AllLimited {
                    retry_after: secs(1)
                },
                None
            )
        );
        // After a limit on A, the 429 shows A's error.
        let mut plan = calling_a(false, limits, t);
        plan.called(
            limited(rate(), switch(t, CooldownReason::RateLimited)),
            t,
            0.5,
        );
        assert_eq!(
            plan.acquired(
                PoolAnswer::AllCoolingDown {
                    retry_after: secs(30)
                },
                t
            )
            .step,
            fail(
                RouteFailureKind::AllLimited {
                    retry_after: secs(30)
                },
                Some(A)
            )
        );
        // After a failure, no account left: the last error.
        let mut plan = calling_a(false, limits, t);
        plan.called(failed(ErrorClass::ProjectProblem), t, 0.5);
        assert_eq!(
            plan.acquired(PoolAnswer::NoneUsable, t).step,
            exhausted(Some(A))
        );
        // A switch after a failure is audited.
        let mut plan = calling_a(false, limits, t);
        plan.called(failed(ErrorClass::ProjectProblem), t, 0.5);
        assert_eq!(
            plan.acquired(PoolAnswer::Acquired(s(B)), t),
            turn(
                vec![Effect::Switched {
                    from: s(A),
                    to: s(B),
                    after: ErrorClass::ProjectProblem
                }],
                call(B)
            )
        );
        // The pool handing out an excluded account is treated as having none.
        let mut plan = calling_a(false, limits, t);
        plan.called(failed(ErrorClass::ProjectProblem), t, 0.5);
        assert_eq!(
            plan.acquired(PoolAnswer::Acquired(s(A)), t).step,
            exhausted(Some(A))
        );
    }

    #[test]
    fn a_fresh_token_refused_disables() {
        let t = Instant::now();
        let mut plan = calling_a(false, Limits::accounts(secs(60)), t);
        plan.called(failed(ErrorClass::Unauthorized), t, 0.5);
        assert_eq!(
            plan.called(failed(ErrorClass::Unauthorized), t, 0.5),
            turn(
                vec![
                    Effect::InvalidateToken { account: s(A) },
                    Effect::Disable {
                        account: s(A),
                        reason: DisableReason::FreshTokenRefused
                    }
                ],
                acquire(&[A])
            )
        );
        // Confirmed: the answer may say "signed out".
        assert_eq!(
            plan.acquired(PoolAnswer::NoneUsable, t).step,
            exhausted(Some(A))
        );
        assert!(
            DisableReason::FreshTokenRefused
                .describe("expired")
                .contains("401: expired")
        );
    }

    #[test]
    fn a_401_after_a_timeout_refreshes_and_retries() {
        let t = Instant::now();
        let mut plan = calling_a(false, Limits::accounts(secs(60)), t);
        // A stall on the only account: back off, the same account again.
        assert_eq!(
            plan.called(failed(ErrorClass::Network), t + secs(10), 0.0)
                .step,
            acquire(&[A])
        );
        let t1 = t + secs(10);
        assert_eq!(
            plan.acquired(PoolAnswer::NoneUsable, t1).step,
            Step::Wait(ms(125))
        );
        let t2 = t1 + ms(125);
        assert_eq!(plan.waited(t2).step, acquire(&[]));
        assert_eq!(plan.acquired(PoolAnswer::Acquired(s(A)), t2).step, call(A));
        // Its token expired during the stall: refresh, not "signed out".
        let turn = plan.called(failed(ErrorClass::Unauthorized), t2, 0.5);
        assert_eq!(
            turn.effects,
            vec![Effect::InvalidateToken { account: s(A) }]
        );
        assert!(matches!(
            turn.step,
            Step::RetrySame {
                fresh_token: true,
                ..
            }
        ));
        assert_eq!(plan.called(Outcome::Success, t2, 0.5).step, Step::Done);
        assert_eq!(plan.calls(), 3);
    }

    #[test]
    fn a_401_with_no_retry_left_is_not_a_sign_out() {
        let t = Instant::now();
        let limits = Limits {
            calls: 1,
            ..Limits::accounts(secs(60))
        };
        let mut plan = calling_a(false, limits, t);
        assert_eq!(
            plan.called(failed(ErrorClass::Unauthorized), t, 0.5),
            turn(
                vec![Effect::InvalidateToken { account: s(A) }],
                fail(
                    RouteFailureKind::Exhausted {
                        token_unconfirmed: true
                    },
                    Some(A)
                )
            )
        );
    }

    #[test]
    fn a_second_401_after_the_refresh_and_a_fault_moves_on_unconfirmed() {
        let t = Instant::now();
        let mut plan = calling_a(false, Limits::accounts(secs(60)), t);
        plan.called(failed(ErrorClass::Unauthorized), t, 0.5);
        // The fresh token's call stalls: it never answered, so it proved nothing.
        assert_eq!(
            plan.called(failed(ErrorClass::Network), t, 0.5).step,
            acquire(&[A])
        );
        plan.acquired(PoolAnswer::NoneUsable, t);
        plan.waited(t + secs(1));
        plan.acquired(PoolAnswer::Acquired(s(A)), t + secs(1));
        let turn = plan.called(failed(ErrorClass::Unauthorized), t + secs(1), 0.5);
        assert!(
            !turn
                .effects
                .iter()
                .any(|e| matches!(e, Effect::Disable { .. })),
            "not disabled"
        );
        assert_eq!(turn.step, acquire(&[A]));
        assert_eq!(
            plan.acquired(PoolAnswer::NoneUsable, t + secs(1)).step,
            fail(
                RouteFailureKind::Exhausted {
                    token_unconfirmed: true
                },
                Some(A)
            )
        );
    }

    #[test]
    fn a_single_transient_fault_moves_to_another_account() {
        let t = Instant::now();
        for class in [
            ErrorClass::ServerError,
            ErrorClass::Network,
            ErrorClass::Decode,
        ] {
            // Even with every wait already spent.
            let limits = Limits {
                waits: 0,
                ..Limits::accounts(secs(60))
            };
            let mut plan = calling_a(false, limits, t);
            assert_eq!(
                plan.called(failed(class.clone()), t, 0.5).step,
                acquire(&[A])
            );
            assert_eq!(
                plan.acquired(PoolAnswer::Acquired(s(B)), t),
                turn(
                    vec![Effect::Switched {
                        from: s(A),
                        to: s(B),
                        after: class
                    }],
                    call(B)
                )
            );
            assert_eq!(plan.called(Outcome::Success, t, 0.5).step, Step::Done);
        }
    }

    #[test]
    fn the_only_account_is_retried_after_a_back_off() {
        let t = Instant::now();
        let mut plan = calling_a(false, Limits::accounts(secs(60)), t);
        plan.called(failed(ErrorClass::ServerError), t, 0.5);
        // Equal jitter: 125 ms + 0.5 · 125 ms.
        assert_eq!(
            plan.acquired(
                PoolAnswer::AllCoolingDown {
                    retry_after: secs(30)
                },
                t
            )
            .step,
            Step::Wait(Duration::from_micros(187_500))
        );
        assert_eq!(plan.waited(t + secs(1)).step, acquire(&[]));
        plan.acquired(PoolAnswer::Acquired(s(A)), t + secs(1));
        // That retry was outside A's cap: a second fault, a second back-off (longer).
        let t2 = t + secs(1);
        assert_eq!(
            plan.called(failed(ErrorClass::ServerError), t2, 0.5).step,
            acquire(&[A])
        );
        assert_eq!(
            plan.acquired(PoolAnswer::NoneUsable, t2).step,
            Step::Wait(ms(375))
        );
        plan.waited(t2 + secs(1));
        plan.acquired(PoolAnswer::Acquired(s(A)), t2 + secs(1));
        // A third: A has had its two calls and its retry.
        assert_eq!(
            plan.called(failed(ErrorClass::ServerError), t2 + secs(1), 0.5)
                .step,
            acquire(&[A])
        );
        assert_eq!(
            plan.acquired(PoolAnswer::NoneUsable, t2 + secs(1)).step,
            exhausted(Some(A))
        );
        assert_eq!(plan.calls(), 3);
    }

    #[test]
    fn no_back_off_past_the_deadline() {
        let t = Instant::now();
        let mut plan = calling_a(false, Limits::accounts(ms(100)), t);
        plan.called(failed(ErrorClass::ServerError), t, 0.9);
        assert_eq!(
            plan.acquired(PoolAnswer::NoneUsable, t).step,
            exhausted(Some(A))
        );
    }

    #[test]
    fn the_header_retry_is_once_and_within_the_budget() {
        let t = Instant::now();
        let blamed =
            || Outcome::Failed(Failed::new(ErrorClass::ProjectProblem).blaming_project_header());
        let mut plan = calling_a(false, Limits::accounts(secs(60)), t);
        plan.called(blamed(), t, 0.5);
        // Blamed again without the header: a project problem after all.
        assert_eq!(
            plan.called(blamed(), t, 0.5),
            turn(
                vec![Effect::InvalidateProject { account: s(A) }],
                acquire(&[A])
            )
        );
        // A later lease of A goes without the header.
        let limits = Limits {
            per_account: 3,
            ..Limits::accounts(secs(60))
        };
        let mut plan = calling_a(false, limits, t);
        plan.called(blamed(), t, 0.5);
        assert_eq!(
            plan.called(
                limited(rate(), Decision::WaitThenRetrySame(secs(1))),
                t,
                0.5,
            )
            .step,
            Step::Wait(secs(1))
        );
        assert_eq!(plan.waited(t + secs(1)).step, acquire(&[]));
        assert_eq!(
            plan.acquired(PoolAnswer::Acquired(s(A)), t + secs(1)).step,
            Step::Call {
                account: s(A),
                fresh_token: false,
                without_project_header: true
            }
        );
        // Today's loop could make a 7th call here; the plan never does.
        let limits = Limits {
            calls: 1,
            ..Limits::accounts(secs(60))
        };
        let mut plan = calling_a(false, limits, t);
        assert_eq!(
            plan.called(blamed(), t, 0.5),
            turn(
                vec![
                    Effect::OmitProjectHeader { account: s(A) },
                    Effect::InvalidateProject { account: s(A) }
                ],
                exhausted(Some(A))
            )
        );
    }

    #[test]
    fn a_short_wait_at_the_cap_moves_on() {
        let t = Instant::now();
        let mut plan = calling_a(false, Limits::accounts(secs(60)), t);
        let wait = || limited(rate(), Decision::WaitThenRetrySame(secs(1)));
        assert_eq!(plan.called(wait(), t, 0.5).step, Step::Wait(secs(1)));
        plan.waited(t + secs(1));
        plan.acquired(PoolAnswer::Acquired(s(A)), t + secs(1));
        assert_eq!(plan.called(wait(), t + secs(1), 0.5).step, acquire(&[A]));
    }

    #[test]
    fn at_most_three_accounts_and_six_calls() {
        let t = Instant::now();
        let mut plan = Plan::new(Limits::accounts(secs(60)), t);
        plan.start(t);
        for account in ["a", "b", "c"] {
            assert!(matches!(
                plan.acquired(PoolAnswer::Acquired(s(account)), t).step,
                Step::Call { .. }
            ));
            let step = plan.called(failed(ErrorClass::ProjectProblem), t, 0.5).step;
            if account == "c" {
                assert_eq!(step, exhausted(Some("c")));
            }
        }
        // Six calls: three accounts, each with a short wait and a retry.
        let limits = Limits {
            accounts: 10,
            waits: 10,
            ..Limits::accounts(secs(60))
        };
        let mut plan = Plan::new(limits, t);
        let mut step = plan.start(t).step;
        let mut n = 0;
        while let Step::Acquire { .. } | Step::Wait(_) = step {
            step = match step {
                Step::Wait(_) => plan.waited(t).step,
                _ => {
                    n += 1;
                    plan.acquired(PoolAnswer::Acquired(format!("acct-{n}")), t);
                    plan.called(failed(ErrorClass::ServerError), t, 0.5).step
                }
            };
        }
        assert_eq!(plan.calls(), 6);
        assert_eq!(step, exhausted(Some("acct-6")));
    }

    #[test]
    fn lease_failed_moves_on() {
        let t = Instant::now();
        let mut plan = calling_a(false, Limits::accounts(secs(60)), t);
        plan.called(failed(ErrorClass::Unauthorized), t, 0.5);
        assert_eq!(plan.lease_failed(t).step, acquire(&[A]));
    }

    #[test]
    fn keys_one_faulted_call_does_not_end_a_safe_mode_request() {
        let t = Instant::now();
        // One key: the same key after a back-off. Its only key parked, the plan does
        // not even ask the rotation.
        let mut plan = calling_a(true, Limits::keys(1, secs(60)), t);
        assert!(matches!(
            plan.called(failed(ErrorClass::ServerError), t, 0.5).step,
            Step::Wait(_)
        ));
        assert_eq!(plan.waited(t + secs(1)).step, acquire(&[]));
        assert_eq!(
            plan.acquired(PoolAnswer::Acquired(s(A)), t + secs(1)),
            turn(vec![], call(A)),
            "no switch audit for keys"
        );
        assert_eq!(
            plan.called(Outcome::Success, t + secs(1), 0.5).step,
            Step::Done
        );
        // Two keys: a refused key, then the other.
        let mut plan = calling_a(true, Limits::keys(2, secs(60)), t);
        plan.called(failed(ErrorClass::InvalidApiKey), t, 0.5);
        assert_eq!(
            plan.acquired(PoolAnswer::Acquired(s(B)), t),
            turn(vec![], call(B))
        );
        assert_eq!(
            plan.called(failed(quota()), t, 0.5).step,
            exhausted(Some(B))
        );
    }

    #[test]
    fn a_finished_plan_stays_finished() {
        let t = Instant::now();
        let mut plan = calling_a(false, Limits::accounts(secs(60)), t);
        assert_eq!(plan.called(Outcome::Success, t, 0.5).step, Step::Done);
        assert_eq!(plan.waited(t).step, Step::Done);
        assert_eq!(plan.acquired(PoolAnswer::NoneUsable, t).step, Step::Done);
        assert_eq!(plan.called(Outcome::Success, t, 0.5).step, Step::Done);
        // A huge max_wait does not overflow.
        let mut plan = Plan::new(Limits::accounts(Duration::MAX), t);
        plan.start(t);
        assert!(matches!(
            plan.acquired(
                PoolAnswer::AllCoolingDown {
                    retry_after: Duration::MAX
                },
                t
            )
            .step,
            Step::Fail(_)
        ));
    }

    // --- Properties over random outcome sequences ------------------------------

    /// One random event: a selector and two numbers.
    type Ev = (u8, u64, u8);

    fn outcome(ev: Ev, now: Instant) -> Outcome {
        let (kind, x, y) = ev;
        let d = ms(x % 8_000);
        let decision = match y % 4 {
            0 => Decision::WaitThenRetrySame(d),
            1 => Decision::BackOff { until: now + d * 4 },
            2 => Decision::Switch {
                until: now + d,
                reason: CooldownReason::QuotaExhausted {
                    needs_quota_recheck: y % 8 == 2,
                },
            },
            _ => Decision::Switch {
                until: now + d,
                reason: CooldownReason::RateLimited,
            },
        };
        let class = match kind % 16 {
            0..=3 => return Outcome::Success,
            4 => ErrorClass::ServerError,
            5 => ErrorClass::Network,
            6 => ErrorClass::Decode,
            7 => ErrorClass::Unauthorized,
            8 => ErrorClass::RateLimited { delay: Some(d) },
            9 => ErrorClass::QuotaExhausted { delay: None },
            10 => ErrorClass::CapacityExhausted { delay: None },
            11 => ErrorClass::ProjectProblem,
            12 => ErrorClass::InvalidApiKey,
            13 => ErrorClass::Banned,
            14 => ErrorClass::ValidationRequired { url: None },
            _ => match y % 5 {
                0 => ErrorClass::NotFound,
                1 => ErrorClass::InvalidArgument,
                2 => ErrorClass::ClientOutdated,
                3 => ErrorClass::Local,
                _ => ErrorClass::InvalidGrant,
            },
        };
        let mut failed = Failed::new(class.clone());
        if limit(&class).is_some() && y % 5 != 4 {
            failed = failed.with_cooldown(decision);
        }
        if class == ErrorClass::ProjectProblem && y % 2 == 0 {
            failed = failed.blaming_project_header();
        }
        Outcome::Failed(failed)
    }

    fn answer(ev: Ev, exclude: &[String], pool: usize) -> PoolAnswer {
        let free: Vec<String> = (0..pool)
            .map(|i| format!("acct-{i}"))
            .filter(|a| !exclude.contains(a))
            .collect();
        match ev.0 % 10 {
            0 => PoolAnswer::AllCoolingDown {
                retry_after: ms(ev.1 % 5_000),
            },
            1 => PoolAnswer::NoneUsable,
            _ if free.is_empty() => PoolAnswer::NoneUsable,
            _ => PoolAnswer::Acquired(free[(ev.1 as usize) % free.len()].clone()),
        }
    }

    fn limits_strategy() -> impl Strategy<Value = Limits> {
        (
            1usize..5,
            1u32..4,
            0usize..9,
            0usize..5,
            0u64..3_000,
            0u64..30_000,
        )
            .prop_map(
                |(accounts, per_account, calls, waits, short, max_wait)| Limits {
                    accounts,
                    per_account,
                    calls,
                    waits,
                    short_pool_wait: ms(short),
                    max_wait: ms(max_wait),
                    backoff: TRANSIENT_BACKOFF,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn the_plan_keeps_its_bounds(
            limits in limits_strategy(),
            keys in any::<bool>(),
            pool in 1usize..6,
            events in proptest::collection::vec((any::<u8>(), any::<u64>(), any::<u8>()), 1..60),
            lease_fails in any::<u8>(),
        ) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut plan = if keys { Plan::for_keys(limits, t0) } else { Plan::new(limits, t0) };
            let mut turn = plan.start(now);
            let mut calls = 0usize;
            let mut waits = 0usize;
            // Per account: calls that are not the fresh-token retry, and those.
            let mut per_account: HashMap<String, (u32, u32)> = HashMap::new();
            let mut last_success = false;
            // Each lease failure (at most one per account) costs two more steps.
            let bound = 2 * (limits.calls + limits.waits + limits.accounts) + 4;
            let mut last_account = String::new();
            let mut transient_seen: std::collections::HashSet<String> = Default::default();
            for step_no in 0.. {
                prop_assert!(step_no <= bound, "no end after {step_no} steps");
                let ev = events[step_no % events.len()];
                match turn.step.clone() {
                    Step::Acquire { exclude } => {
                        turn = plan.acquired(answer(ev, &exclude, pool), now);
                    }
                    Step::Call { account, fresh_token, .. }
                    | Step::RetrySame { account, fresh_token, .. } => {
                        if fresh_token && lease_fails % 3 == 0 {
                            turn = plan.lease_failed(now);
                            continue;
                        }
                        calls += 1;
                        last_account = account.clone();
                        prop_assert!(calls <= limits.calls, "call {calls} over the budget");
                        let counts = per_account.entry(account.clone()).or_default();
                        if fresh_token { counts.1 += 1 } else { counts.0 += 1 }
                        // Each account at most `per_account` times, plus one fresh-token
                        // retry and one retry after a transient fault.
                        let exempt = u32::from(transient_seen.contains(&account));
                        prop_assert!(counts.0 <= limits.per_account + exempt, "{account}: {counts:?}");
                        prop_assert!(counts.1 <= 1, "{account}: {counts:?}");
                        prop_assert!(per_account.len() <= limits.accounts);
                        if keys {
                            prop_assert!(turn.effects.is_empty(), "{:?}", turn.effects);
                        }
                        now += ms(ev.1 % 4_000);
                        let outcome = outcome(ev, now);
                        last_success = outcome == Outcome::Success;
                        if let Outcome::Failed(f) = &outcome {
                            let class = failure(&f.class);
                            if class == Failure::Transient
                                || (keys && matches!(class, Failure::Limit(Limit::CapacityExhausted { .. })))
                            {
                                transient_seen.insert(account.clone());
                            }
                        }
                        let random = f64::from(ev.2) / 256.0;
                        turn = plan.called(outcome, now, random);
                    }
                    Step::Wait(d) => {
                        waits += 1;
                        prop_assert!(waits <= limits.waits);
                        prop_assert!(now + d <= plan.deadline(), "a wait past the deadline");
                        now += d;
                        turn = plan.waited(now);
                    }
                    Step::Done => {
                        prop_assert!(last_success, "Done without a success");
                        prop_assert_eq!(
                            turn.effects.clone(),
                            vec![Effect::Succeeded { account: last_account.clone() }]
                        );
                        break;
                    }
                    Step::Fail(_) => {
                        prop_assert!(!last_success);
                        break;
                    }
                }
            }
            prop_assert_eq!(calls, plan.calls());
        }

        /// One transient fault, anywhere, never ends a request that has budget left.
        #[test]
        fn a_single_transient_fault_never_ends_a_request(
            keys in any::<bool>(),
            pool in 1usize..5,
            // Cooldowns grant one short wait per account before they switch it: the
            // fault comes first, or after that one wait.
            fault_at in 0usize..2,
            class in prop_oneof![
                Just(ErrorClass::ServerError),
                Just(ErrorClass::Network),
                Just(ErrorClass::Decode),
            ],
            random in 0.0f64..1.0,
            pick in any::<u64>(),
        ) {
            let t0 = Instant::now();
            let mut now = t0;
            let limits = if keys { Limits::keys(pool, secs(10)) } else { Limits::accounts(secs(10)) };
            let mut plan = if keys { Plan::for_keys(limits, t0) } else { Plan::new(limits, t0) };
            // Keys have no short waits: the fault comes first there.
            let fault_at = if keys { 0 } else { fault_at };
            let mut turn = plan.start(now);
            let mut calls = 0;
            loop {
                match turn.step.clone() {
                    Step::Acquire { exclude } => {
                        turn = plan.acquired(answer((2, pick, 0), &exclude, pool), now);
                    }
                    Step::Call { .. } | Step::RetrySame { .. } => {
                        let outcome = if calls == fault_at {
                            failed(class.clone())
                        } else if calls < fault_at {
                            // Some earlier short waits use up waits and time.
                            limited(rate(), Decision::WaitThenRetrySame(secs(1)))
                        } else {
                            Outcome::Success
                        };
                        calls += 1;
                        now += secs(1);
                        turn = plan.called(outcome, now, random);
                    }
                    Step::Wait(d) => {
                        now += d;
                        turn = plan.waited(now);
                    }
                    Step::Done => break,
                    Step::Fail(f) => prop_assert!(false, "failed: {f:?}"),
                }
            }
        }
    }
}
