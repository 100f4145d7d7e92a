#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Accounts, settings, client keys and logs through the public API, each test run
//! against both backends: SQLite in memory, and PostgreSQL in a schema of its own.

mod common;

use agm_store::{
    AccountState, ApiKind, AuditEvent, AuditFilter, AuditKind, KeyPolicy, KeySource, NewAccount,
    Pool, RequestLogEntry, RequestLogFilter, Secret, StatusFilter, Store, StoreError, TokenUpdate,
    UsageBucket, UsageGroup, UsageQuery,
};
use time::OffsetDateTime;
use time::macros::datetime;

fn alice(refresh: &str) -> NewAccount {
    NewAccount {
        email: "alice@example.com".into(),
        pool: Pool::Antigravity,
        refresh_token: Secret::new(refresh),
        access_token: Some(Secret::new("ya29.alice-access")),
        access_expires_at: Some(datetime!(2030-01-01 00:00 UTC)),
        project_id: Some("proj-alice".into()),
        tier: Some("free-tier".into()),
    }
}

#[tokio::test]
async fn in_memory_store_has_no_files() {
    let store = Store::open_in_memory().await.unwrap();
    assert_eq!(store.db_path(), None);
    assert_eq!(store.key_source(), KeySource::Memory);
    assert!(store.list_accounts().await.unwrap().is_empty());
}

async fn upsert_inserts_then_updates_by_pool_and_email(store: Store) {
    let first = store.upsert_account(alice("1//refresh-one")).await.unwrap();
    assert_eq!(first.id.len(), 8);
    assert!(first.id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(first.email, "alice@example.com");
    assert_eq!(first.refresh_token.expose(), "1//refresh-one");
    assert_eq!(
        first.access_token.as_ref().unwrap().expose(),
        "ya29.alice-access"
    );
    assert_eq!(first.project_id.as_deref(), Some("proj-alice"));
    assert_eq!(first.state, AccountState::Active);

    // Same account again, e-mail in another case, no project this time.
    let second = store
        .upsert_account(NewAccount {
            email: " Alice@Example.com".into(),
            refresh_token: Secret::new("1//refresh-two"),
            access_token: None,
            access_expires_at: None,
            project_id: None,
            tier: None,
            ..alice("")
        })
        .await
        .unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at >= first.updated_at);
    assert_eq!(second.refresh_token.expose(), "1//refresh-two");
    assert_eq!(
        second.access_token, None,
        "an access token belongs to its refresh token"
    );
    assert_eq!(second.project_id.as_deref(), Some("proj-alice"), "kept");
    assert_eq!(second.tier.as_deref(), Some("free-tier"), "kept");

    let all = store.list_accounts().await.unwrap();
    assert_eq!(all, vec![second.clone()]);
    assert_eq!(
        store.get_account(&first.id).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        store.get_account("ALICE@example.com").await.unwrap(),
        Some(second)
    );
    assert_eq!(store.get_account("nobody@example.com").await.unwrap(), None);
}

async fn one_email_in_two_pools_is_two_accounts(store: Store) {
    let ag = store.upsert_account(alice("1//ag")).await.unwrap();
    let ca = store
        .upsert_account(NewAccount {
            pool: Pool::CodeAssist,
            ..alice("1//ca")
        })
        .await
        .unwrap();
    assert_ne!(ag.id, ca.id);
    assert_eq!(store.list_accounts().await.unwrap().len(), 2);

    let err = store.get_account("alice@example.com").await.unwrap_err();
    assert!(matches!(err, StoreError::AmbiguousAccount { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&ag.id) && message.contains(&ca.id),
        "{message}"
    );
    assert!(!message.contains("1//"), "{message}");

    let found = store.get_account(&ca.id).await.unwrap().unwrap();
    assert_eq!(found.pool, Pool::CodeAssist);
    assert_eq!(found.refresh_token.expose(), "1//ca");
}

async fn state_tokens_and_project_updates(store: Store) {
    let account = store.upsert_account(alice("1//old")).await.unwrap();

    let blocked = AccountState::Blocked {
        reason: "Google asks to verify the account".into(),
        url: Some("https://accounts.google.com/signin/continue".into()),
    };
    // By e-mail, as `agm accounts disable alice@example.com` would.
    store
        .set_account_state("alice@example.com", blocked.clone())
        .await
        .unwrap();
    assert_eq!(
        store.get_account(&account.id).await.unwrap().unwrap().state,
        blocked
    );

    let expires = datetime!(2031-05-06 07:08:09.123 UTC);
    store
        .update_tokens(
            &account.id,
            TokenUpdate {
                access_token: Secret::new("ya29.new"),
                access_expires_at: expires,
                refresh_token: None,
            },
        )
        .await
        .unwrap();
    let updated = store.get_account(&account.id).await.unwrap().unwrap();
    assert_eq!(updated.access_token.unwrap().expose(), "ya29.new");
    assert_eq!(updated.access_expires_at, Some(expires));
    assert_eq!(updated.refresh_token.expose(), "1//old", "not rotated");

    store
        .update_tokens(
            &account.id,
            TokenUpdate {
                access_token: Secret::new("ya29.newer"),
                access_expires_at: expires,
                refresh_token: Some(Secret::new("1//rotated")),
            },
        )
        .await
        .unwrap();
    let rotated = store.get_account(&account.id).await.unwrap().unwrap();
    assert_eq!(rotated.refresh_token.expose(), "1//rotated");

    store
        .set_project(&account.id, Some("proj-2"), Some("standard-tier"))
        .await
        .unwrap();
    let moved = store.get_account(&account.id).await.unwrap().unwrap();
    assert_eq!(moved.project_id.as_deref(), Some("proj-2"));
    assert_eq!(moved.tier.as_deref(), Some("standard-tier"));
    store.set_project(&account.id, None, None).await.unwrap();
    let cleared = store.get_account(&account.id).await.unwrap().unwrap();
    assert_eq!((cleared.project_id, cleared.tier), (None, None));

    store
        .set_account_state(&account.id, AccountState::Active)
        .await
        .unwrap();
    assert!(
        store
            .get_account(&account.id)
            .await
            .unwrap()
            .unwrap()
            .state
            .is_active()
    );
}

async fn unknown_accounts_are_not_found(store: Store) {
    let err = store
        .set_account_state("deadbeef", AccountState::Active)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "account",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("agm accounts list"), "{err}");
    let tokens = TokenUpdate {
        access_token: Secret::new("ya29.x"),
        access_expires_at: OffsetDateTime::now_utc(),
        refresh_token: None,
    };
    assert!(matches!(
        store.update_tokens("deadbeef", tokens).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.set_project("deadbeef", Some("p"), None).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(!store.remove_account("deadbeef").await.unwrap());
}

async fn remove_account(store: Store) {
    let account = store.upsert_account(alice("1//x")).await.unwrap();
    assert!(store.remove_account(&account.id).await.unwrap());
    assert!(!store.remove_account(&account.id).await.unwrap());
    assert!(store.list_accounts().await.unwrap().is_empty());

    store.upsert_account(alice("1//y")).await.unwrap();
    assert!(store.remove_account("Alice@Example.com").await.unwrap());
    assert!(store.list_accounts().await.unwrap().is_empty());
}

async fn empty_email_is_refused(store: Store) {
    let err = store
        .upsert_account(NewAccount {
            email: "  ".into(),
            ..alice("1//x")
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err}");
}

async fn debug_of_an_account_shows_no_token(store: Store) {
    let account = store
        .upsert_account(alice("1//debug-refresh"))
        .await
        .unwrap();
    let debug = format!("{account:?} {:?}", alice("1//debug-refresh"));
    assert!(!debug.contains("1//debug-refresh"), "{debug}");
    assert!(!debug.contains("ya29.alice-access"), "{debug}");
    assert!(debug.contains("[redacted]"), "{debug}");
    assert!(debug.contains("alice@example.com"), "{debug}");
}

async fn concurrent_writers_share_one_store(store: Store) {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .upsert_account(NewAccount {
                        email: format!("user{i}@example.com"),
                        ..alice(&format!("1//token-{i}"))
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let accounts = store.list_accounts().await.unwrap();
    assert_eq!(accounts.len(), 20);
    let mut ids: Vec<_> = accounts.iter().map(|a| a.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
}

async fn settings_are_json_by_key(store: Store) {
    assert_eq!(store.get_setting("safe_mode").await.unwrap(), None);
    let on = serde_json::json!({"active": true, "reason": "5 project-ID failures"});
    store.set_setting("safe_mode", &on).await.unwrap();
    assert_eq!(store.get_setting("safe_mode").await.unwrap(), Some(on));
    store
        .set_setting("safe_mode", &serde_json::json!({"active": false}))
        .await
        .unwrap();
    assert_eq!(
        store.get_setting("safe_mode").await.unwrap(),
        Some(serde_json::json!({"active": false}))
    );
    assert!(
        store
            .set_setting("", &serde_json::Value::Null)
            .await
            .is_err()
    );
}

async fn client_keys_create_verify_revoke(store: Store) {
    let (key, secret) = store.create_client_key("laptop").await.unwrap();
    assert!(secret.starts_with("agm-") && secret.len() == 44, "{secret}");
    assert_eq!(key.name, "laptop");
    assert_eq!(key.prefix, secret[..10]);
    assert_eq!((key.last_used_at, key.revoked_at), (None, None));
    let (other, other_secret) = store.create_client_key("ci").await.unwrap();
    assert_ne!(other.id, key.id);
    assert_ne!(other_secret, secret);

    let verified = store.verify_client_key(&secret).await.unwrap().unwrap();
    assert_eq!(verified.id, key.id);
    assert!(verified.last_used_at.is_some());
    let listed = store.list_client_keys().await.unwrap();
    assert_eq!(listed.len(), 2);
    let find = |keys: &[agm_store::ClientKey], id: &str| {
        keys.iter().find(|k| k.id == id).cloned().unwrap()
    };
    assert_eq!(find(&listed, &key.id).last_used_at, verified.last_used_at);
    assert_eq!(find(&listed, &other.id).last_used_at, None);

    // Wrong secrets, including one with the right prefix.
    assert_eq!(store.verify_client_key("agm-nope").await.unwrap(), None);
    let mut near = secret.clone();
    near.pop();
    near.push(if secret.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(store.verify_client_key(&near).await.unwrap(), None);
    assert_eq!(store.verify_client_key("").await.unwrap(), None);

    assert!(store.revoke_client_key(&key.id).await.unwrap());
    assert!(
        !store.revoke_client_key(&key.id).await.unwrap(),
        "already revoked"
    );
    assert!(!store.revoke_client_key("00000000").await.unwrap());
    assert_eq!(store.verify_client_key(&secret).await.unwrap(), None);
    assert_eq!(
        store
            .verify_client_key(&other_secret)
            .await
            .unwrap()
            .unwrap()
            .id,
        other.id
    );
    let listed = store.list_client_keys().await.unwrap();
    assert!(!find(&listed, &key.id).is_active());
    assert!(find(&listed, &key.id).revoked_at.is_some());
    assert!(find(&listed, &other.id).is_active());
}

async fn purging_deletes_only_revoked_keys(store: Store) {
    assert!(store.purge_revoked_client_keys().await.unwrap().is_empty());
    let (first, _) = store.create_client_key("old").await.unwrap();
    let (second, _) = store.create_client_key("older").await.unwrap();
    let (live, live_secret) = store.create_client_key("live").await.unwrap();
    assert!(store.revoke_client_key(&second.id).await.unwrap());
    assert!(store.revoke_client_key(&first.id).await.unwrap());

    let mut purged = store.purge_revoked_client_keys().await.unwrap();
    purged.sort();
    let mut expected = vec![first.id, second.id];
    expected.sort();
    assert_eq!(purged, expected);
    let listed = store.list_client_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, live.id);
    assert!(
        store
            .verify_client_key(&live_secret)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.purge_revoked_client_keys().await.unwrap().is_empty());
}

fn event(at: OffsetDateTime, kind: AuditKind, subject: &str) -> AuditEvent {
    AuditEvent {
        at,
        kind,
        subject: subject.into(),
        detail: format!("{subject} happened"),
    }
}

/// A key's limits are stored with it, come back from list and verify, and are replaced
/// whole by `set_client_key_policy`.
async fn client_key_policies_are_kept_and_changed(store: Store) {
    let policy = KeyPolicy {
        models: vec!["gemini-2.5-*".into(), "claude-sonnet-4-5".into()],
        rpm: Some(60),
        concurrency: Some(2),
        daily_tokens: Some(1_000_000),
        daily_requests: Some(500),
        expires_at: Some(datetime!(2027-01-01 00:00 UTC)),
    };
    let (key, secret) = store.create_client_key_with("ci", &policy).await.unwrap();
    assert_eq!(key.policy, policy);
    let verified = store.verify_client_key(&secret).await.unwrap().unwrap();
    assert_eq!(verified.policy, policy);
    let (plain, _) = store.create_client_key("laptop").await.unwrap();
    assert_eq!(plain.policy, KeyPolicy::default());

    let changed = KeyPolicy {
        rpm: None,
        models: Vec::new(),
        ..policy.clone()
    };
    assert!(
        store
            .set_client_key_policy(&key.id, &changed)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_client_key_policy("00000000", &changed)
            .await
            .unwrap()
    );
    let listed = store.list_client_keys().await.unwrap();
    let listed = listed.iter().find(|k| k.id == key.id).unwrap();
    assert_eq!(listed.policy, changed);

    let bad = KeyPolicy {
        models: vec!["a b".into()],
        ..KeyPolicy::default()
    };
    assert!(matches!(
        store.create_client_key_with("x", &bad).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(store.set_client_key_policy(&key.id, &bad).await.is_err());
}

/// Usage from the request log: per day or hour, per key, account or model, with
/// successes, tokens and latency percentiles; the range is `[since, until)`.
async fn usage_is_summed_by_bucket_and_group(store: Store) {
    let day1 = datetime!(2025-06-01 10:30 UTC);
    let day2 = datetime!(2025-06-02 23:59 UTC);
    let row = |at, key: Option<&str>, status, latency, model: &str| RequestLogEntry {
        status,
        latency_ms: latency,
        key_id: key.map(str::to_owned),
        upstream_model: model.into(),
        input_tokens: 100,
        output_tokens: 10,
        ..request(at, "client-model")
    };
    let mut batch = Vec::new();
    for i in 0..10u64 {
        batch.push(row(day1, Some("k1"), 200, (i + 1) * 100, "gemini-2.5-pro"));
    }
    batch.push(row(day1, Some("k2"), 429, 5, "gemini-2.5-flash"));
    batch.push(row(day2, None, 200, 50, ""));
    // Outside the range.
    batch.push(row(
        datetime!(2025-06-03 00:00 UTC),
        Some("k1"),
        200,
        1,
        "x",
    ));
    store.append_request_logs(batch).await.unwrap();

    let query = |bucket, group| UsageQuery {
        since: datetime!(2025-06-01 00:00 UTC),
        until: datetime!(2025-06-03 00:00 UTC),
        bucket,
        group,
    };
    let by_key = store
        .usage(&query(UsageBucket::All, UsageGroup::Key))
        .await
        .unwrap();
    let groups: Vec<Option<&str>> = by_key.iter().map(|r| r.group.as_deref()).collect();
    assert_eq!(groups, [None, Some("k1"), Some("k2")]);
    let k1 = &by_key[1];
    assert_eq!(k1.start, datetime!(2025-06-01 00:00 UTC));
    assert_eq!((k1.requests, k1.successes, k1.errors()), (10, 10, 0));
    assert_eq!((k1.input_tokens, k1.output_tokens), (1000, 100));
    assert_eq!((k1.p50_ms, k1.p95_ms, k1.p99_ms), (500, 1000, 1000));
    assert_eq!((by_key[2].requests, by_key[2].errors()), (1, 1));

    let by_day = store
        .usage(&query(UsageBucket::Day, UsageGroup::None))
        .await
        .unwrap();
    let days: Vec<(OffsetDateTime, u64)> = by_day.iter().map(|r| (r.start, r.requests)).collect();
    assert_eq!(
        days,
        [
            (datetime!(2025-06-01 00:00 UTC), 11),
            (datetime!(2025-06-02 00:00 UTC), 1)
        ]
    );
    let by_hour = store
        .usage(&query(UsageBucket::Hour, UsageGroup::Model))
        .await
        .unwrap();
    let hours: Vec<(OffsetDateTime, Option<&str>)> = by_hour
        .iter()
        .map(|r| (r.start, r.group.as_deref()))
        .collect();
    assert_eq!(
        hours,
        [
            (datetime!(2025-06-01 10:00 UTC), Some("gemini-2.5-flash")),
            (datetime!(2025-06-01 10:00 UTC), Some("gemini-2.5-pro")),
            (datetime!(2025-06-02 23:00 UTC), Some("client-model")),
        ]
    );
    let by_account = store
        .usage(&query(UsageBucket::All, UsageGroup::Account))
        .await
        .unwrap();
    assert_eq!(by_account.len(), 1);
    assert_eq!(by_account[0].group.as_deref(), Some("0a1b2c3d"));

    // Per minute (the console's last hour), with agm's own time averaged over the
    // requests that called Google.
    let t = datetime!(2025-07-01 12:00:10 UTC);
    let with_overhead = |at, us| RequestLogEntry {
        overhead_us: us,
        ..request(at, "m")
    };
    store
        .append_request_logs(vec![
            with_overhead(t, Some(100)),
            with_overhead(t + time::Duration::seconds(20), Some(300)),
            with_overhead(t + time::Duration::seconds(60), None),
        ])
        .await
        .unwrap();
    let by_minute = store
        .usage(&UsageQuery {
            since: datetime!(2025-07-01 12:00 UTC),
            until: datetime!(2025-07-01 12:05 UTC),
            bucket: UsageBucket::Minute,
            group: UsageGroup::None,
        })
        .await
        .unwrap();
    let minutes: Vec<(OffsetDateTime, u64, Option<u64>)> = by_minute
        .iter()
        .map(|r| (r.start, r.requests, r.overhead_avg_us))
        .collect();
    assert_eq!(
        minutes,
        [
            (datetime!(2025-07-01 12:00 UTC), 2, Some(200)),
            (datetime!(2025-07-01 12:01 UTC), 1, None),
        ]
    );
}

async fn audit_log_is_listed_newest_first_from_since(store: Store) {
    let t1 = datetime!(2025-06-01 10:00 UTC);
    let t2 = datetime!(2025-06-01 11:00 UTC);
    let t3 = datetime!(2025-06-01 12:00 UTC);
    // Appended out of order: the time decides, then the order of appending.
    store
        .append_audit(event(t2, AuditKind::Breaker, "b"))
        .await
        .unwrap();
    store
        .append_audit(event(t1, AuditKind::SafeMode, "a"))
        .await
        .unwrap();
    store
        .append_audit(event(t3, AuditKind::Key, "c"))
        .await
        .unwrap();
    store
        .append_audit(event(t3, AuditKind::Alert, "d"))
        .await
        .unwrap();

    let all = store.list_audit(None, 100).await.unwrap();
    let subjects: Vec<_> = all.iter().map(|r| r.event.subject.as_str()).collect();
    assert_eq!(subjects, ["d", "c", "b", "a"]);
    assert_eq!(all[3].event, event(t1, AuditKind::SafeMode, "a"));

    let since: Vec<_> = store
        .list_audit(Some(t2), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event.subject)
        .collect();
    assert_eq!(since, ["d", "c", "b"], "since is inclusive");

    let newest = store.list_audit(None, 1).await.unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].event.subject, "d");
    assert!(store.list_audit(None, 0).await.unwrap().is_empty());
}

fn request(at: OffsetDateTime, model: &str) -> RequestLogEntry {
    RequestLogEntry {
        at,
        api: ApiKind::OpenAiResponses,
        client_model: model.into(),
        upstream_model: "gemini-2.5-pro".into(),
        account_id: Some("0a1b2c3d".into()),
        status: 200,
        latency_ms: 1234,
        input_tokens: 1000,
        output_tokens: 50,
        error_class: None,
        route: "/v1/responses".into(),
        attempts: 2,
        overhead_us: Some(180),
        context_scaled: Some("aggressive; cut=90000 tokens".into()),
        key_id: Some("9f8e7d6c".into()),
    }
}

async fn request_log_batches_in_one_go(store: Store) {
    let at = datetime!(2025-06-01 00:00 UTC);
    let batch: Vec<RequestLogEntry> = (0..50)
        .map(|i| RequestLogEntry {
            overhead_us: None,
            context_scaled: (i % 2 == 0).then(|| format!("standard; cut={i} tokens")),
            key_id: (i % 3 == 0).then(|| format!("k{i}")),
            ..request(at, &format!("m{i}"))
        })
        .collect();
    store.append_request_logs(batch.clone()).await.unwrap();
    store.append_request_logs(Vec::new()).await.unwrap();
    let mut stored: Vec<RequestLogEntry> = store
        .list_request_log(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.entry)
        .collect();
    stored.reverse();
    assert_eq!(stored, batch, "every field comes back as written");
}

async fn request_log_append_list_and_prune(store: Store) {
    let day = |d: u8| datetime!(2025-06-01 00:00 UTC).replace_day(d).unwrap();
    for d in 1..=4 {
        store
            .append_request_log(request(day(d), &format!("m{d}")))
            .await
            .unwrap();
    }
    let failed = RequestLogEntry {
        api: ApiKind::Anthropic,
        account_id: None,
        status: 429,
        error_class: Some("rate-limited".into()),
        ..request(day(4), "m5")
    };
    store.append_request_log(failed.clone()).await.unwrap();

    let newest = store.list_request_log(None, 1).await.unwrap();
    assert_eq!(newest[0].entry, failed);

    assert_eq!(store.prune_request_log(day(3)).await.unwrap(), 2);
    assert_eq!(store.prune_request_log(day(3)).await.unwrap(), 0);
    let left: Vec<_> = store
        .list_request_log(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.entry.client_model)
        .collect();
    assert_eq!(left, ["m5", "m4", "m3"]);
    assert_eq!(
        store.list_request_log(None, 100).await.unwrap()[2].entry,
        request(day(3), "m3")
    );
}

async fn update_setting_reads_modifies_writes_and_deletes(store: Store) {
    use serde_json::{Value, json};
    // Missing: f sees None; Some is stored.
    let stored = store
        .update_setting("counter", |old: Option<Value>| {
            assert_eq!(old, None);
            Ok::<_, StoreError>(Some(json!(1)))
        })
        .await
        .unwrap();
    assert_eq!(stored, Some(json!(1)));
    let stored = store
        .update_setting("counter", |old| {
            Ok::<_, StoreError>(Some(json!(old.unwrap().as_i64().unwrap() + 1)))
        })
        .await
        .unwrap();
    assert_eq!(stored, Some(json!(2)));
    assert_eq!(store.get_setting("counter").await.unwrap(), Some(json!(2)));

    // An error from f changes nothing and comes back as it is.
    #[derive(Debug, PartialEq)]
    enum Refused {
        No,
        Store,
    }
    impl From<StoreError> for Refused {
        fn from(_: StoreError) -> Refused {
            Refused::Store
        }
    }
    let err = store
        .update_setting("counter", |_| Err(Refused::No))
        .await
        .unwrap_err();
    assert_eq!(err, Refused::No);
    assert_eq!(store.get_setting("counter").await.unwrap(), Some(json!(2)));

    // None deletes.
    let stored = store
        .update_setting("counter", |_| Ok::<_, StoreError>(None))
        .await
        .unwrap();
    assert_eq!(stored, None);
    assert_eq!(store.get_setting("counter").await.unwrap(), None);
    assert!(store.update_setting("", Ok::<_, StoreError>).await.is_err());
}

/// 20 increments at once, each a read-modify-write: exactly 20, none lost.
async fn concurrent_setting_updates_lose_nothing(store: Store) {
    assert_eq!(
        common::race_increments(&[store]).await,
        Some(serde_json::json!(20))
    );
}

async fn request_log_searches_by_every_filter(store: Store) {
    let at = |m: u8| datetime!(2025-06-01 10:00 UTC).replace_minute(m).unwrap();
    let rows = [
        request(at(1), "claude-sonnet-4-5"),
        RequestLogEntry {
            api: ApiKind::Anthropic,
            status: 429,
            account_id: Some("4e5f6a7b".into()),
            error_class: Some("rate-limited".into()),
            ..request(at(2), "claude-opus-4-5")
        },
        RequestLogEntry {
            api: ApiKind::Gemini,
            status: 503,
            account_id: None,
            upstream_model: "gemini-3-pro".into(),
            route: "/v1beta/models/{*rest}".into(),
            error_class: Some("upstream-5xx".into()),
            ..request(at(3), "gemini-3-pro")
        },
    ];
    store.append_request_logs(rows.to_vec()).await.unwrap();
    let models = |filter: RequestLogFilter| {
        let store = store.clone();
        async move {
            store
                .search_request_log(filter, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.entry.client_model)
                .collect::<Vec<_>>()
        }
    };
    let all = models(RequestLogFilter::default()).await;
    assert_eq!(
        all,
        ["gemini-3-pro", "claude-opus-4-5", "claude-sonnet-4-5"]
    );
    let since = RequestLogFilter {
        since: Some(at(2)),
        until: Some(at(3)),
        ..RequestLogFilter::default()
    };
    assert_eq!(
        models(since).await,
        ["claude-opus-4-5"],
        "since in, until out"
    );
    let api = RequestLogFilter {
        api: Some(ApiKind::OpenAiResponses),
        ..RequestLogFilter::default()
    };
    assert_eq!(models(api).await, ["claude-sonnet-4-5"]);
    let upstream = RequestLogFilter {
        model: Some("gemini-2.5-pro".into()),
        ..RequestLogFilter::default()
    };
    assert_eq!(
        models(upstream).await,
        ["claude-opus-4-5", "claude-sonnet-4-5"],
        "the upstream model matches too"
    );
    let account = RequestLogFilter {
        account_id: Some("4e5f6a7b".into()),
        ..RequestLogFilter::default()
    };
    assert_eq!(models(account).await, ["claude-opus-4-5"]);
    for (status, wanted) in [
        (StatusFilter::Code(429), vec!["claude-opus-4-5"]),
        (StatusFilter::Class(5), vec!["gemini-3-pro"]),
        (StatusFilter::Error, vec!["gemini-3-pro", "claude-opus-4-5"]),
        (StatusFilter::Ok, vec!["claude-sonnet-4-5"]),
    ] {
        let filter = RequestLogFilter {
            status: Some(status),
            ..RequestLogFilter::default()
        };
        assert_eq!(models(filter).await, wanted, "{status:?}");
    }
    for (text, wanted) in [
        ("RATE", vec!["claude-opus-4-5"]),
        ("v1beta", vec!["gemini-3-pro"]),
        ("sonnet", vec!["claude-sonnet-4-5"]),
        ("' OR 1=1 --", vec![]),
        ("%", vec![]),
    ] {
        let filter = RequestLogFilter {
            text: Some(text.into()),
            ..RequestLogFilter::default()
        };
        assert_eq!(models(filter).await, wanted, "{text}");
    }
    let limited = store
        .search_request_log(RequestLogFilter::default(), 1)
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    let one = store.get_request_log(limited[0].id).await.unwrap().unwrap();
    assert_eq!(one, limited[0]);
    assert_eq!(
        store.get_request_log(limited[0].id + 1000).await.unwrap(),
        None
    );
}

async fn audit_log_searches_by_every_filter(store: Store) {
    let t = |h: u8| datetime!(2025-06-01 00:00 UTC).replace_hour(h).unwrap();
    for (at, kind, subject, detail) in [
        (
            t(1),
            AuditKind::Account,
            "alice@example.com",
            "disabled with the console",
        ),
        (
            t(2),
            AuditKind::Breaker,
            "bob@example.com",
            "circuit opened for gemini-3-pro",
        ),
        (
            t(3),
            AuditKind::Account,
            "bob@example.com",
            "enabled with the console",
        ),
        (
            t(4),
            AuditKind::Settings,
            "config",
            "routing.scheduling = \"balance\"",
        ),
    ] {
        store
            .append_audit(AuditEvent {
                at,
                kind,
                subject: subject.into(),
                detail: detail.into(),
            })
            .await
            .unwrap();
    }
    let subjects = |filter: AuditFilter| {
        let store = store.clone();
        async move {
            store
                .search_audit(filter, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.event.detail)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(subjects(AuditFilter::default()).await.len(), 4);
    let kind = AuditFilter {
        kind: Some(AuditKind::Account),
        ..AuditFilter::default()
    };
    assert_eq!(
        subjects(kind).await,
        ["enabled with the console", "disabled with the console"]
    );
    let bob = AuditFilter {
        subject: Some("Bob@Example.com".into()),
        since: Some(t(3)),
        ..AuditFilter::default()
    };
    assert_eq!(subjects(bob).await, ["enabled with the console"]);
    let text = AuditFilter {
        text: Some("GEMINI-3".into()),
        until: Some(t(3)),
        ..AuditFilter::default()
    };
    assert_eq!(subjects(text).await, ["circuit opened for gemini-3-pro"]);
    let quoted = AuditFilter {
        text: Some("\"balance\"".into()),
        ..AuditFilter::default()
    };
    assert_eq!(subjects(quoted).await.len(), 1);
}

on_both_backends!(
    upsert_inserts_then_updates_by_pool_and_email,
    one_email_in_two_pools_is_two_accounts,
    state_tokens_and_project_updates,
    unknown_accounts_are_not_found,
    remove_account,
    empty_email_is_refused,
    debug_of_an_account_shows_no_token,
    concurrent_writers_share_one_store,
    settings_are_json_by_key,
    client_keys_create_verify_revoke,
    purging_deletes_only_revoked_keys,
    client_key_policies_are_kept_and_changed,
    usage_is_summed_by_bucket_and_group,
    audit_log_is_listed_newest_first_from_since,
    request_log_batches_in_one_go,
    request_log_append_list_and_prune,
    update_setting_reads_modifies_writes_and_deletes,
    concurrent_setting_updates_lose_nothing,
    request_log_searches_by_every_filter,
    audit_log_searches_by_every_filter,
);
