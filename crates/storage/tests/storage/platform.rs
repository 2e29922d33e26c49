//! Sessions, password-reset tokens, notifications, idempotency keys and the audit
//! log: tenant isolation, the cross-tenant lookups by token digest, single use and
//! claim races under concurrency, and the append-only log.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use agenda_entity::enums::{AppointmentStatus, NotificationKind, PaymentStatus, TokenPurpose};
use agenda_entity::{appointment, audit_log, idempotency_key, password_reset_token, service, user};
use agenda_storage::repo::audit::{AuditEntry, AuditQuery, AuditRepo};
use agenda_storage::repo::idempotency::{IdempotencyRepo, IdempotencyState, IdempotentRequest};
use agenda_storage::repo::notifications::NotificationRepo;
use agenda_storage::repo::resource::{MAX_PAGE_SIZE, Repo};
use agenda_storage::repo::sessions::{OneTimeTokenRepo, SessionRepo};
use agenda_storage::{Db, StorageError, TenantScope};
use agenda_testkit::both_engines;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::connection::{create_user, seed_org};

/// A random SHA-256-shaped digest (64 hex digits).
fn digest() -> String {
    (0..64)
        .map(|_| char::from_digit(fastrand::u32(..16), 16).unwrap())
        .collect()
}

fn now() -> DateTime<Utc> {
    agenda_entity::now()
}

/// An organization with two users.
struct Tenant {
    scope: TenantScope,
    user: user::Model,
    other_user: user::Model,
}

impl Tenant {
    async fn new(db: &Db) -> Tenant {
        let scope = TenantScope::new(seed_org(db).await);
        let user = create_user(db.conn(), scope, "user@example.com")
            .await
            .unwrap();
        let other_user = create_user(db.conn(), scope, "other@example.com")
            .await
            .unwrap();
        Tenant {
            scope,
            user,
            other_user,
        }
    }

    /// An appointment of this organization (written directly: the booking rules are
    /// not what these tests are about).
    async fn appointment(&self, db: &impl ConnectionTrait) -> Uuid {
        let service = Repo::<service::Entity>::create(
            db,
            self.scope,
            serde_json::from_value(
                json!({"name": "Haircut", "duration_minutes": 60, "price_cents": 5000}),
            )
            .unwrap(),
            |row| row.provider_id = Set(self.other_user.id),
        )
        .await
        .unwrap();
        let start = now() + Duration::days(1);
        appointment::ActiveModel {
            organization_id: Set(self.scope.organization_id()),
            client_id: Set(self.user.id),
            provider_id: Set(self.other_user.id),
            service_id: Set(Some(service.id)),
            start_at: Set(start),
            end_at: Set(start + Duration::hours(1)),
            occupied_until: Set(start + Duration::hours(1)),
            status: Set(AppointmentStatus::Confirmed),
            price_cents: Set(5000),
            discount_cents: Set(0),
            currency: Set("BRL".into()),
            payment_status: Set(PaymentStatus::Unpaid),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap()
        .id
    }
}

async fn session(t: &Db, scope: TenantScope, user_id: Uuid, ttl: Duration) -> (String, Uuid) {
    let hash = digest();
    let s = SessionRepo::create(
        t.conn(),
        scope,
        user_id,
        &hash,
        now() + ttl,
        Some("203.0.113.7"),
        Some("test-agent"),
    )
    .await
    .unwrap();
    (hash, s.id)
}

async fn begin_committed(
    db: &Db,
    scope: TenantScope,
    request: &IdempotentRequest<'_>,
    at: DateTime<Utc>,
) -> Result<IdempotencyState, StorageError> {
    let tx = db.begin().await?;
    let state = IdempotencyRepo::begin(&tx, scope, request, at, Duration::hours(1)).await?;
    tx.commit().await?;
    Ok(state)
}

fn entry(actor_id: Option<Uuid>, action: &str, entity_type: &str) -> AuditEntry {
    AuditEntry {
        actor_id,
        action: action.into(),
        entity_type: entity_type.into(),
        entity_id: Some(Uuid::now_v7()),
        details: json!({"before": "client", "after": "admin"}),
        ip_address: Some("198.51.100.1".into()),
        request_id: Some("req-1".into()),
    }
}

both_engines! {
    async fn sessions_are_active_until_expired_or_revoked(t: TestDb) {
        let a = Tenant::new(&t.db).await;
        let start = now();
        let (hash, id) = session(&t.db, a.scope, a.user.id, Duration::hours(1)).await;

        let active = SessionRepo::find_active(t.conn(), a.scope, &hash, start).await.unwrap().unwrap();
        assert_eq!((active.id, active.user_id, active.ip_address.as_deref()), (id, a.user.id, Some("203.0.113.7")));
        let later = start + Duration::hours(2);
        assert!(SessionRepo::find_active(t.conn(), a.scope, &hash, later).await.unwrap().is_none(), "expired");

        // Resolution by digest across tenants: session, user, organization and scope.
        let auth = SessionRepo::authenticate(&t.begin_read().await.unwrap(), &hash, start).await.unwrap().unwrap();
        assert_eq!((auth.session.id, auth.user.id, auth.organization.id), (id, a.user.id, a.scope.organization_id()));
        assert_eq!(auth.scope(), a.scope);
        assert!(SessionRepo::authenticate(&t.begin_read().await.unwrap(), &hash, later).await.unwrap().is_none(), "expired");
        assert!(SessionRepo::authenticate(&t.begin_read().await.unwrap(), &digest(), start).await.unwrap().is_none(), "unknown");

        let used = start + Duration::minutes(5);
        SessionRepo::touch(t.conn(), a.scope, id, used).await.unwrap();
        let touched = SessionRepo::find_active(t.conn(), a.scope, &hash, start).await.unwrap().unwrap();
        assert_eq!(touched.last_used_at, Some(used));
        let err = SessionRepo::touch(t.conn(), a.scope, id, later).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { entity: "session" }), "an expired session is not extended: {err:?}");

        // Revoked: never active again; revoking twice keeps the first instant.
        SessionRepo::revoke(t.conn(), a.scope, id, start).await.unwrap();
        assert!(SessionRepo::find_active(t.conn(), a.scope, &hash, start).await.unwrap().is_none());
        assert!(SessionRepo::authenticate(&t.begin_read().await.unwrap(), &hash, start).await.unwrap().is_none());
        SessionRepo::revoke(t.conn(), a.scope, id, later).await.unwrap();
        let row = user_sessions_row(t.conn(), id).await;
        assert_eq!(row.revoked_at, Some(start));
        let err = SessionRepo::touch(t.conn(), a.scope, id, used).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");

        // A deactivated user's sessions do not authenticate.
        let (hash2, _) = session(&t.db, a.scope, a.other_user.id, Duration::hours(1)).await;
        assert!(SessionRepo::authenticate(&t.begin_read().await.unwrap(), &hash2, start).await.unwrap().is_some());
        let mut off: user::ActiveModel = a.other_user.clone().into();
        off.is_active = Set(false);
        off.update(t.conn()).await.unwrap();
        assert!(SessionRepo::authenticate(&t.begin_read().await.unwrap(), &hash2, start).await.unwrap().is_none());

        // Bad input never reaches the table.
        let err = SessionRepo::create(t.conn(), a.scope, a.user.id, "raw-token", start + Duration::hours(1), None, None).await.unwrap_err();
        assert!(matches!(err, StorageError::Validation { field: "token_hash", .. }), "{err:?}");
        let err = SessionRepo::create(t.conn(), a.scope, a.user.id, &digest(), start - Duration::hours(1), None, None).await.unwrap_err();
        assert!(matches!(err, StorageError::Validation { field: "expires_at", .. }), "{err:?}");
    }

    async fn sessions_are_revoked_per_user_and_isolated_per_tenant(t: TestDb) {
        let a = Tenant::new(&t.db).await;
        let b = Tenant::new(&t.db).await;
        let start = now();
        let mut mine = Vec::new();
        for _ in 0..3 {
            mine.push(session(&t.db, a.scope, a.user.id, Duration::hours(1)).await);
        }
        let (kept_hash, _) = session(&t.db, a.scope, a.other_user.id, Duration::days(30)).await;
        let (their_hash, their_id) = session(&t.db, b.scope, b.user.id, Duration::hours(1)).await;

        // Another organization's session is not found, whatever the operation.
        let err = SessionRepo::revoke(t.conn(), a.scope, their_id, start).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { entity: "session" }), "{err:?}");
        let err = SessionRepo::touch(t.conn(), a.scope, their_id, start).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");
        assert!(SessionRepo::find_active(t.conn(), a.scope, &their_hash, start).await.unwrap().is_none());
        assert_eq!(SessionRepo::revoke_all_for_user(t.conn(), a.scope, b.user.id, start).await.unwrap(), 0);
        let theirs = SessionRepo::authenticate(&t.begin_read().await.unwrap(), &their_hash, start).await.unwrap().unwrap();
        assert_eq!(theirs.scope(), b.scope, "the digest resolves to its own tenant");
        // A user of another organization cannot get a session here.
        let err = SessionRepo::create(t.conn(), a.scope, b.user.id, &digest(), start + Duration::hours(1), None, None).await.unwrap_err();
        assert!(matches!(&err, StorageError::InvalidReference { constraint: Some(c) } if c == "fk_user_sessions_user_id_users"), "{err:?}");

        // Logout everywhere: one user's sessions only.
        assert_eq!(SessionRepo::revoke_all_for_user(t.conn(), a.scope, a.user.id, start).await.unwrap(), 3);
        assert_eq!(SessionRepo::revoke_all_for_user(t.conn(), a.scope, a.user.id, start).await.unwrap(), 0);
        for (hash, _) in &mine {
            assert!(SessionRepo::authenticate(&t.begin_read().await.unwrap(), hash, start).await.unwrap().is_none());
        }
        assert!(SessionRepo::authenticate(&t.begin_read().await.unwrap(), &kept_hash, start).await.unwrap().is_some());

        // Operator cleanup across tenants: everything expired by then, nothing else.
        let deleted = SessionRepo::delete_expired(t.conn(), start + Duration::hours(2)).await.unwrap();
        assert_eq!(deleted, 4);
        assert!(SessionRepo::authenticate(&t.begin_read().await.unwrap(), &kept_hash, start).await.unwrap().is_some());
    }

    async fn reset_tokens_are_single_use_and_expire(t: TestDb) {
        let a = Tenant::new(&t.db).await;
        let start = now();
        let hash = digest();
        OneTimeTokenRepo::issue(t.conn(), a.scope, a.user.id, TokenPurpose::PasswordReset, &hash, start + Duration::hours(1)).await.unwrap();

        // Rolled back with the caller's transaction: still usable.
        let tx = t.begin().await.unwrap();
        OneTimeTokenRepo::consume(&tx, TokenPurpose::PasswordReset, &hash, start).await.unwrap();
        drop(tx);

        let tx = t.begin().await.unwrap();
        let user = OneTimeTokenRepo::consume(&tx, TokenPurpose::PasswordReset, &hash, start).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!((user.id, user.organization_id), (a.user.id, a.scope.organization_id()));

        let tx = t.begin().await.unwrap();
        let err = OneTimeTokenRepo::consume(&tx, TokenPurpose::PasswordReset, &hash, start).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { entity: "token" }), "used: {err:?}");
        let err = OneTimeTokenRepo::consume(&tx, TokenPurpose::PasswordReset, &digest(), start).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { .. }), "unknown: {err:?}");
        drop(tx);

        // Expired: refused, and the refusal does not use it up.
        let late = digest();
        OneTimeTokenRepo::issue(t.conn(), a.scope, a.user.id, TokenPurpose::PasswordReset, &late, start + Duration::hours(1)).await.unwrap();
        let tx = t.begin().await.unwrap();
        let err = OneTimeTokenRepo::consume(&tx, TokenPurpose::PasswordReset, &late, start + Duration::hours(2)).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { .. }), "expired: {err:?}");
        tx.commit().await.unwrap();
        let row = password_reset_token::Entity::find()
            .filter(password_reset_token::Column::TokenHash.eq(late.as_str()))
            .one(t.conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.used_at, None);

        // A token is good for its own purpose only; trying another does not use it up.
        let reset = digest();
        OneTimeTokenRepo::issue(t.conn(), a.scope, a.user.id, TokenPurpose::PasswordReset, &reset, start + Duration::hours(1)).await.unwrap();
        let tx = t.begin().await.unwrap();
        for purpose in [TokenPurpose::EmailVerification, TokenPurpose::Invitation] {
            let err = OneTimeTokenRepo::consume(&tx, purpose, &reset, start).await.unwrap_err();
            assert!(matches!(err, StorageError::NotFound { .. }), "{purpose}: {err:?}");
        }
        OneTimeTokenRepo::consume(&tx, TokenPurpose::PasswordReset, &reset, start).await.unwrap();
        tx.commit().await.unwrap();

        // A user of another organization cannot get a token here.
        let b = Tenant::new(&t.db).await;
        let err = OneTimeTokenRepo::issue(t.conn(), a.scope, b.user.id, TokenPurpose::PasswordReset, &digest(), start + Duration::hours(1)).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidReference { .. }), "{err:?}");
    }

    async fn ten_concurrent_consumes_of_one_token_give_one_success(t: TestDb) {
        let a = Tenant::new(&t.db).await;
        let hash = Arc::new(digest());
        let start = now();
        OneTimeTokenRepo::issue(t.conn(), a.scope, a.user.id, TokenPurpose::PasswordReset, &hash, start + Duration::hours(1)).await.unwrap();
        let pool = t
            .another_pool(|s| {
                s.max_overflow = 10;
                s.pool_timeout = StdDuration::from_secs(30);
            })
            .await;
        let barrier = Arc::new(tokio::sync::Barrier::new(10));
        let mut handles = Vec::new();
        for _ in 0..10 {
            let (pool, hash, barrier) = (pool.clone(), hash.clone(), barrier.clone());
            handles.push(tokio::spawn(async move {
                barrier.wait().await;
                let tx = pool.begin().await?;
                let user = OneTimeTokenRepo::consume(&tx, TokenPurpose::PasswordReset, &hash, start).await?;
                tx.commit().await?;
                Ok::<_, StorageError>(user)
            }));
        }
        let (mut ok, mut used, mut other) = (0, 0, Vec::new());
        for h in handles {
            match h.await.unwrap() {
                Ok(user) => {
                    assert_eq!(user.id, a.user.id);
                    ok += 1;
                }
                Err(StorageError::NotFound { .. }) => used += 1,
                Err(e) => other.push(format!("{e:?}")),
            }
        }
        assert_eq!((ok, used), (1, 9), "unexpected errors: {other:?}");
        pool.close().await;
    }

    async fn notifications_are_listed_newest_first_and_marked_read(t: TestDb) {
        let a = Tenant::new(&t.db).await;
        let (user, other) = (a.user.id, a.other_user.id);
        let mut ids = Vec::new();
        for i in 0..5 {
            let n = NotificationRepo::create(t.conn(), a.scope, user, NotificationKind::System, &format!("Note {i}"), "body", None)
                .await
                .unwrap();
            assert!(!n.is_read && n.read_at.is_none());
            ids.push(n.id);
        }
        let theirs = NotificationRepo::create(t.conn(), a.scope, other, NotificationKind::System, "Theirs", "", None).await.unwrap();

        // Newest first, two per page, no gaps or repeats; only the user's own.
        let (mut seen, mut after, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let page = NotificationRepo::list_for_user(t.conn(), a.scope, user, true, Some(2), after.as_deref()).await.unwrap();
            pages += 1;
            seen.extend(page.items.iter().map(|n| n.id));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let newest_first: Vec<Uuid> = ids.iter().rev().copied().collect();
        assert_eq!((pages, &seen), (3, &newest_first));

        let read_at = now();
        let read = NotificationRepo::mark_read(t.conn(), a.scope, user, ids[1], read_at).await.unwrap();
        assert_eq!((read.is_read, read.read_at), (true, Some(read_at)));
        let again = NotificationRepo::mark_read(t.conn(), a.scope, user, ids[1], read_at + Duration::hours(1)).await.unwrap();
        assert_eq!(again.read_at, Some(read_at), "the first read_at is kept");
        let unread = NotificationRepo::list_for_user(t.conn(), a.scope, user, true, None, None).await.unwrap();
        assert_eq!(unread.items.iter().map(|n| n.id).collect::<Vec<_>>(), vec![ids[4], ids[3], ids[2], ids[0]]);
        let all = NotificationRepo::list_for_user(t.conn(), a.scope, user, false, None, None).await.unwrap();
        assert_eq!(all.items.len(), 5);
        assert_eq!(NotificationRepo::unread_count(t.conn(), a.scope, user).await.unwrap(), 4);

        // Another user's notification is not found, and stays unread.
        let err = NotificationRepo::mark_read(t.conn(), a.scope, user, theirs.id, read_at).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { entity: "notification" }), "{err:?}");
        assert_eq!(NotificationRepo::mark_all_read(t.conn(), a.scope, user, read_at).await.unwrap(), 4);
        assert_eq!(NotificationRepo::mark_all_read(t.conn(), a.scope, user, read_at).await.unwrap(), 0);
        assert_eq!(NotificationRepo::unread_count(t.conn(), a.scope, user).await.unwrap(), 0);
        assert_eq!(NotificationRepo::unread_count(t.conn(), a.scope, other).await.unwrap(), 1);
        let all = NotificationRepo::list_for_user(t.conn(), a.scope, user, false, None, None).await.unwrap();
        assert!(all.items.iter().all(|n| n.is_read && n.read_at.is_some()));

        // Another organization sees none of it.
        let b = Tenant::new(&t.db).await;
        let err = NotificationRepo::mark_read(t.conn(), b.scope, user, ids[0], read_at).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");
        assert_eq!(NotificationRepo::mark_all_read(t.conn(), b.scope, other, read_at).await.unwrap(), 0);
        assert!(NotificationRepo::list_for_user(t.conn(), b.scope, user, false, None, None).await.unwrap().items.is_empty());

        // Bad input.
        let err = NotificationRepo::list_for_user(t.conn(), a.scope, user, false, None, Some("garbage")).await.unwrap_err();
        assert!(matches!(err, StorageError::Validation { field: "after", .. }), "{err:?}");
        let err = NotificationRepo::create(t.conn(), a.scope, user, NotificationKind::System, "  ", "", None).await.unwrap_err();
        assert!(matches!(err, StorageError::Validation { field: "title", .. }), "{err:?}");
    }

    async fn notification_pages_are_capped(t: TestDb) {
        let a = Tenant::new(&t.db).await;
        for i in 0..=MAX_PAGE_SIZE {
            NotificationRepo::create(t.conn(), a.scope, a.user.id, NotificationKind::System, &format!("n{i}"), "", None).await.unwrap();
        }
        let page = NotificationRepo::list_for_user(t.conn(), a.scope, a.user.id, false, Some(10_000), None).await.unwrap();
        assert_eq!(page.items.len() as u64, MAX_PAGE_SIZE);
        let rest = NotificationRepo::list_for_user(t.conn(), a.scope, a.user.id, false, Some(10_000), page.next.as_deref()).await.unwrap();
        assert_eq!((rest.items.len(), rest.next), (1, None));
    }

    async fn notifications_refer_only_to_the_tenants_rows(t: TestDb) {
        let a = Tenant::new(&t.db).await;
        let b = Tenant::new(&t.db).await;
        let mine = a.appointment(t.conn()).await;
        let theirs = b.appointment(t.conn()).await;
        let ok = NotificationRepo::create(t.conn(), a.scope, a.user.id, NotificationKind::AppointmentConfirmed, "Confirmed", "See you", Some(mine))
            .await
            .unwrap();
        assert_eq!(ok.appointment_id, Some(mine));
        for appointment in [theirs, Uuid::now_v7()] {
            let err = NotificationRepo::create(t.conn(), a.scope, a.user.id, NotificationKind::AppointmentConfirmed, "Confirmed", "", Some(appointment))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, StorageError::InvalidReference { constraint: Some(c) } if c == "fk_notifications_appointment_id_appointments"),
                "{err:?}"
            );
        }
        let err = NotificationRepo::create(t.conn(), a.scope, b.user.id, NotificationKind::System, "Hi", "", None).await.unwrap_err();
        assert!(
            matches!(&err, StorageError::InvalidReference { constraint: Some(c) } if c == "fk_notifications_user_id_users"),
            "{err:?}"
        );
        let total = agenda_entity::notification::Entity::find().count(t.conn()).await.unwrap();
        assert_eq!(total, 1, "nothing else was written");
    }

    async fn idempotency_keys_replay_completed_responses(t: TestDb) {
        let a = Tenant::new(&t.db).await;
        let at = now();
        let request = IdempotentRequest { user_id: a.user.id, key: "k-1", method: "POST", path: "/appointments", request_hash: "h1" };

        let IdempotencyState::New { id } = begin_committed(&t.db, a.scope, &request, at).await.unwrap() else {
            panic!("the first use claims the key");
        };
        assert_eq!(begin_committed(&t.db, a.scope, &request, at).await.unwrap(), IdempotencyState::InProgress);

        let body = json!({"id": "0193", "status": "confirmed"});
        let tx = t.begin().await.unwrap();
        IdempotencyRepo::complete(&tx, a.scope, id, 201, Some(body.clone())).await.unwrap();
        tx.commit().await.unwrap();
        let replay = begin_committed(&t.db, a.scope, &request, at + Duration::minutes(1)).await.unwrap();
        assert_eq!(replay, IdempotencyState::Replay { status: 201, body: Some(body) });
        let tx = t.begin().await.unwrap();
        let err = IdempotencyRepo::complete(&tx, a.scope, id, 500, None).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidState { code: "idempotency_key_completed", .. }), "{err:?}");
        drop(tx);

        // The same key for another request is refused (body or path).
        for changed in [
            IdempotentRequest { request_hash: "h2", ..request },
            IdempotentRequest { path: "/withdrawals", ..request },
        ] {
            let err = begin_committed(&t.db, a.scope, &changed, at).await.unwrap_err();
            assert!(matches!(err, StorageError::Validation { field: "idempotency_key", .. }), "{err:?}");
        }

        // Keys are per user; other tenants reach nothing.
        let theirs = IdempotentRequest { user_id: a.other_user.id, ..request };
        assert!(matches!(begin_committed(&t.db, a.scope, &theirs, at).await.unwrap(), IdempotencyState::New { .. }));
        let b = Tenant::new(&t.db).await;
        let err = begin_committed(&t.db, b.scope, &request, at).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidReference { .. }), "{err:?}");
        let tx = t.begin().await.unwrap();
        let err = IdempotencyRepo::complete(&tx, b.scope, id, 200, None).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { entity: "idempotency key" }), "{err:?}");
        drop(tx);

        // A failed request gives its claim back.
        let retry = IdempotentRequest { key: "k-2", ..request };
        let IdempotencyState::New { id: claim } = begin_committed(&t.db, a.scope, &retry, at).await.unwrap() else { panic!() };
        IdempotencyRepo::abandon(t.conn(), a.scope, claim).await.unwrap();
        assert!(matches!(begin_committed(&t.db, a.scope, &retry, at).await.unwrap(), IdempotencyState::New { .. }));
        let err = IdempotencyRepo::abandon(t.conn(), a.scope, id).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidState { .. }), "a completed key is kept: {err:?}");
    }

    async fn expired_idempotency_keys_can_be_reused_and_purged(t: TestDb) {
        let a = Tenant::new(&t.db).await;
        let at = now();
        let first = IdempotentRequest { user_id: a.user.id, key: "k", method: "POST", path: "/payments", request_hash: "h1" };
        let IdempotencyState::New { id: old } = begin_committed(&t.db, a.scope, &first, at).await.unwrap() else { panic!() };
        let later = at + Duration::hours(2);
        let second = IdempotentRequest { request_hash: "h2", ..first };
        let IdempotencyState::New { id: new } = begin_committed(&t.db, a.scope, &second, later).await.unwrap() else {
            panic!("an expired key is claimed afresh");
        };
        assert_ne!(old, new);
        let rows = idempotency_key::Entity::find().all(t.conn()).await.unwrap();
        assert_eq!(rows.iter().map(|r| (r.id, r.request_hash.as_str())).collect::<Vec<_>>(), vec![(new, "h2")]);

        // Operator purge: across tenants, only what has expired.
        let b = Tenant::new(&t.db).await;
        let theirs = IdempotentRequest { user_id: b.user.id, ..first };
        begin_committed(&t.db, b.scope, &theirs, at + Duration::hours(10)).await.unwrap();
        assert_eq!(IdempotencyRepo::purge_expired(t.conn(), later).await.unwrap(), 0);
        assert_eq!(IdempotencyRepo::purge_expired(t.conn(), later + Duration::hours(1)).await.unwrap(), 1);
        assert_eq!(idempotency_key::Entity::find().count(t.conn()).await.unwrap(), 1);
    }

    async fn ten_concurrent_begins_with_one_key_give_one_new(t: TestDb) {
        let a = Tenant::new(&t.db).await;
        let (scope, user_id, at) = (a.scope, a.user.id, now());
        let pool = t
            .another_pool(|s| {
                s.max_overflow = 10;
                s.pool_timeout = StdDuration::from_secs(30);
            })
            .await;
        let barrier = Arc::new(tokio::sync::Barrier::new(10));
        let mut handles = Vec::new();
        for _ in 0..10 {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            handles.push(tokio::spawn(async move {
                let request = IdempotentRequest { user_id, key: "race", method: "POST", path: "/appointments", request_hash: "h" };
                barrier.wait().await;
                begin_committed(&pool, scope, &request, at).await
            }));
        }
        let (mut new, mut in_progress, mut other) = (0, 0, Vec::new());
        for h in handles {
            match h.await.unwrap() {
                Ok(IdempotencyState::New { .. }) => new += 1,
                Ok(IdempotencyState::InProgress) => in_progress += 1,
                r => other.push(format!("{r:?}")),
            }
        }
        assert_eq!((new, in_progress), (1, 9), "unexpected: {other:?}");
        assert_eq!(idempotency_key::Entity::find().count(t.conn()).await.unwrap(), 1);
        pool.close().await;
    }

    async fn audit_log_keeps_tenants_and_platform_apart(t: TestDb) {
        let a = Tenant::new(&t.db).await;
        let b = Tenant::new(&t.db).await;
        let mut mine = Vec::new();
        for (actor, action) in [
            (Some(a.user.id), "user.role_change"),
            (Some(a.other_user.id), "service.update"),
            (Some(a.user.id), "service.update"),
            (None, "settings.update"),
            (Some(a.user.id), "user.role_change"),
        ] {
            let entity_type = action.split('.').next().unwrap();
            mine.push(AuditRepo::record(t.conn(), a.scope, entry(actor, action, entity_type)).await.unwrap());
        }
        let theirs = AuditRepo::record(t.conn(), b.scope, entry(Some(b.user.id), "user.role_change", "user")).await.unwrap();
        let platform = AuditRepo::record_platform(t.conn(), entry(None, "backup.create", "database")).await.unwrap();
        assert_eq!((platform.organization_id, theirs.organization_id), (None, Some(b.scope.organization_id())));

        // Newest first, paginated; never another tenant's or a platform row.
        let (mut seen, mut query, mut pages) = (Vec::new(), AuditQuery { limit: Some(2), ..Default::default() }, 0);
        loop {
            let page = AuditRepo::list(t.conn(), a.scope, &query).await.unwrap();
            pages += 1;
            seen.extend(page.items.iter().map(|e| e.id));
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, mine.iter().rev().map(|e| e.id).collect::<Vec<_>>());

        let ids = |page: agenda_storage::repo::resource::Page<audit_log::Model>| page.items.into_iter().map(|e| e.id).collect::<Vec<_>>();
        let by_actor = AuditRepo::list(t.conn(), a.scope, &AuditQuery { actor_id: Some(a.user.id), ..Default::default() }).await.unwrap();
        assert_eq!(ids(by_actor), vec![mine[4].id, mine[2].id, mine[0].id]);
        let by_action = AuditRepo::list(t.conn(), a.scope, &AuditQuery { action: Some("user.role_change".into()), ..Default::default() }).await.unwrap();
        assert_eq!(ids(by_action), vec![mine[4].id, mine[0].id], "b's role change is not listed");
        let by_type = AuditRepo::list(t.conn(), a.scope, &AuditQuery { entity_type: Some("service".into()), actor_id: Some(a.other_user.id), ..Default::default() }).await.unwrap();
        assert_eq!(ids(by_type), vec![mine[1].id]);
        let none = AuditRepo::list(t.conn(), a.scope, &AuditQuery { entity_type: Some("database".into()), ..Default::default() }).await.unwrap();
        assert!(none.items.is_empty(), "platform rows are not tenant rows");
        assert_eq!(ids(AuditRepo::list(t.conn(), b.scope, &AuditQuery::default()).await.unwrap()), vec![theirs.id]);
        assert_eq!(ids(AuditRepo::list_platform(t.conn(), &AuditQuery::default()).await.unwrap()), vec![platform.id]);

        // An actor of another organization is refused like a missing one.
        let err = AuditRepo::record(t.conn(), a.scope, entry(Some(b.user.id), "x.y", "x")).await.unwrap_err();
        assert!(
            matches!(&err, StorageError::InvalidReference { constraint: Some(c) } if c == "fk_audit_log_actor_id_users"),
            "{err:?}"
        );
        let err = AuditRepo::record(t.conn(), a.scope, entry(None, " ", "x")).await.unwrap_err();
        assert!(matches!(err, StorageError::Validation { field: "action", .. }), "{err:?}");
    }

    async fn audit_log_is_append_only(t: TestDb) {
        let a = Tenant::new(&t.db).await;
        let row = AuditRepo::record(t.conn(), a.scope, entry(Some(a.user.id), "user.role_change", "user")).await.unwrap();
        let err = t
            .conn()
            .execute_unprepared("UPDATE audit_log SET action = 'tampered'")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        let reread = audit_log::Entity::find_by_id(row.id).one(t.conn()).await.unwrap().unwrap();
        assert_eq!(reread, row);
    }
}

async fn user_sessions_row(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> agenda_entity::user_session::Model {
    agenda_entity::user_session::Entity::find_by_id(id)
        .one(db)
        .await
        .unwrap()
        .unwrap()
}
