//! Row-level security on PostgreSQL (migration 11), exercised as the least-privilege
//! application role — the superuser the other tests use is not subject to it.
//!
//! Each test states what it proves. SQLite has no row-level security; there the
//! scoped repositories (and `clippy.toml`) are the whole boundary, which the
//! `every_repo` and `repos` modules test on both engines.

use std::collections::BTreeSet;

use agenda_storage::backup::{self, BackupScope};
use agenda_storage::repo::sessions::SessionRepo;
use agenda_storage::{Db, StorageError, TenantScope, tenant};
use agenda_testkit::TestDb;
use chrono::{Duration, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use uuid::Uuid;

use crate::connection::{create_user, seed_org};

/// Two organizations with three and two users, made by the superuser.
async fn two_tenants(t: &TestDb) -> (TenantScope, TenantScope) {
    let a = TenantScope::new(seed_org(t).await);
    let b = TenantScope::new(seed_org(t).await);
    for (scope, n) in [(a, 3), (b, 2)] {
        for i in 0..n {
            create_user(t.conn(), scope, &format!("u{i}@example.com"))
                .await
                .unwrap();
        }
    }
    (a, b)
}

/// The organizations of every row a query returns (column 0, a UUID).
async fn organizations(db: &impl ConnectionTrait, sql: &str) -> Vec<Uuid> {
    db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<Uuid>(0).unwrap())
        .collect()
}

async fn count(db: &impl ConnectionTrait, table: &str) -> i64 {
    db.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        format!("SELECT count(*) FROM {table}"),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index(0)
    .unwrap()
}

async fn postgres_with_app_role() -> Option<(TestDb, Db)> {
    let t = TestDb::postgres().await?;
    let app = t.app_role_pool().await;
    Some((t, app))
}

/// Every table with an `organization_id` column has row-level security enabled and
/// forced, with the tenant policy and the owner policy — checked against the live
/// catalog, so a future tenant-owned table without RLS fails here.
#[tokio::test]
async fn every_tenant_table_has_forced_row_level_security() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let rows = t
        .conn()
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity, \
                    (SELECT array_agg(p.polname::text ORDER BY p.polname) FROM pg_policy p \
                      WHERE p.polrelid = c.oid) \
             FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() \
             WHERE c.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_attribute a \
                   WHERE a.attrelid = c.oid AND a.attname = 'organization_id' AND NOT a.attisdropped) \
             ORDER BY 1",
        ))
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    for row in &rows {
        let table: String = row.try_get_by_index(0).unwrap();
        let enabled: bool = row.try_get_by_index(1).unwrap();
        let forced: bool = row.try_get_by_index(2).unwrap();
        let policies: Vec<String> = row.try_get_by_index(3).unwrap_or_default();
        assert!(
            enabled && forced,
            "{table}: enabled {enabled}, forced {forced}"
        );
        assert_eq!(
            policies,
            vec![format!("rls_{table}_owner"), format!("rls_{table}_tenant")],
            "{table}"
        );
        seen.insert(table);
    }
    let listed: BTreeSet<String> = migration::tenant_tables().map(str::to_owned).collect();
    assert_eq!(seen, listed, "TENANT_TABLES matches the catalog");
    assert_eq!(seen.len(), 36, "every table but organizations");
}

/// A raw query that forgets the tenant filter still sees only the tenant its
/// transaction entered: 3 users in A's transaction, 2 in B's, never the other's.
#[tokio::test]
async fn a_query_without_a_tenant_filter_sees_only_its_tenant() {
    let Some((t, app)) = postgres_with_app_role().await else {
        return;
    };
    let (a, b) = two_tenants(&t).await;
    for (scope, expected) in [(a, 3), (b, 2)] {
        let tx = app.read_in(scope).await.unwrap();
        let seen = organizations(&tx, "SELECT organization_id FROM users").await;
        assert_eq!(seen.len(), expected);
        assert!(seen.iter().all(|o| *o == scope.organization_id()));
        // Joins too: every users row reachable through organizations is A's or B's own.
        let joined = organizations(
            &tx,
            "SELECT o.id FROM organizations o JOIN users u ON u.organization_id = o.id",
        )
        .await;
        assert_eq!(joined.len(), expected);
        tx.commit().await.unwrap();
    }
    // The superuser (not subject to row-level security) sees all 5.
    assert_eq!(count(t.conn(), "users").await, 5);
}

/// With no tenant entered, the application role sees no row of any tenant table —
/// not in a transaction, not on the pool, and not after a transaction that had
/// entered one committed on the same connection (the setting is transaction-local).
#[tokio::test]
async fn with_no_tenant_set_nothing_is_visible() {
    let Some((t, _)) = postgres_with_app_role().await else {
        return;
    };
    let (a, _) = two_tenants(&t).await;
    // One connection, so the pool statement reuses the connection A's transaction used.
    let app = Db::connect(&{
        let mut s = t.app_role_settings().await;
        s.max_overflow = 1;
        s
    })
    .await
    .unwrap();
    let tx = app.read_in(a).await.unwrap();
    assert_eq!(count(&tx, "users").await, 3);
    tx.commit().await.unwrap();

    assert_eq!(
        count(app.conn(), "users").await,
        0,
        "pool, after A's commit"
    );
    let tx = app.begin_read().await.unwrap();
    for table in migration::tenant_tables() {
        assert_eq!(count(&tx, table).await, 0, "{table}");
    }
    tx.commit().await.unwrap();
    assert_eq!(
        count(app.conn(), "organizations").await,
        2,
        "organizations are not tenant rows"
    );

    // A rolled-back transaction does not leave its tenant behind either.
    let tx = app.read_in(a).await.unwrap();
    drop(tx);
    assert_eq!(
        count(app.conn(), "users").await,
        0,
        "pool, after A's rollback"
    );
}

/// Writing a row for another tenant fails (`tenant_boundary`) and writes nothing;
/// another tenant's rows cannot be updated, moved or deleted either (0 rows).
#[tokio::test]
async fn another_tenants_rows_cannot_be_written() {
    let Some((t, app)) = postgres_with_app_role().await else {
        return;
    };
    let (a, b) = two_tenants(&t).await;

    let tx = app.begin_in(a).await.unwrap();
    let err = create_user(&tx, b, "intruder@example.com")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Forbidden {
                code: "tenant_boundary",
                ..
            }
        ),
        "{err:?}"
    );
    drop(tx);
    assert_eq!(count(t.conn(), "users").await, 5, "nothing was written");

    let tx = app.begin_in(a).await.unwrap();
    let b_id = b.organization_id().to_string();
    let a_id = a.organization_id().to_string();
    for sql in [
        format!("UPDATE users SET full_name = 'x' WHERE organization_id = '{b_id}'"),
        format!("DELETE FROM users WHERE organization_id = '{b_id}'"),
    ] {
        let done = tx
            .execute_raw(Statement::from_string(DbBackend::Postgres, sql.clone()))
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 0, "{sql}");
    }
    // Moving one's own row into another tenant is refused by the policy's check.
    let moved = tx
        .execute_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("UPDATE users SET organization_id = '{b_id}' WHERE organization_id = '{a_id}'"),
        ))
        .await
        .unwrap_err();
    assert!(matches!(
        StorageError::from(moved),
        StorageError::Forbidden {
            code: "tenant_boundary",
            ..
        }
    ));
    drop(tx);
    let users = organizations(t.conn(), "SELECT organization_id FROM users").await;
    assert_eq!(
        users.iter().filter(|o| **o == a.organization_id()).count(),
        3
    );
    assert_eq!(
        users.iter().filter(|o| **o == b.organization_id()).count(),
        2
    );
}

/// Two tenants working concurrently through a pool of two connections never see
/// each other's rows: 2 × 300 interleaved transactions, each reading every users row
/// without a filter, each seeing exactly its own organization's 3 or 2 rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tenants_on_a_pool_of_two_never_mix() {
    let Some((t, _)) = postgres_with_app_role().await else {
        return;
    };
    let (a, b) = two_tenants(&t).await;
    let mut settings = t.app_role_settings().await;
    settings.pool_size = 0;
    settings.max_overflow = 2;
    let app = Db::connect(&settings).await.unwrap();
    let mut tasks = Vec::new();
    for (scope, expected) in [(a, 3usize), (b, 2)] {
        for _ in 0..3 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..100 {
                    let tx = app.read_in(scope).await.unwrap();
                    let seen = organizations(&tx, "SELECT organization_id FROM users").await;
                    assert_eq!(seen.len(), expected, "iteration {i}");
                    assert!(seen.iter().all(|o| *o == scope.organization_id()));
                    if i % 2 == 0 {
                        tx.commit().await.unwrap();
                    } else {
                        tx.rollback().await.unwrap();
                    }
                    let leaked = count(app.conn(), "users").await;
                    assert_eq!(leaked, 0, "a pooled connection kept a tenant");
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(app.pool_status().size <= 2);
}

/// A bearer token resolves to its session across tenants (a `SECURITY DEFINER`
/// lookup gives only its organization), and the transaction is then in that tenant.
#[tokio::test]
async fn authentication_finds_the_tenant_of_a_token() {
    let Some((t, app)) = postgres_with_app_role().await else {
        return;
    };
    let (_, b) = two_tenants(&t).await;
    let user = create_user(t.conn(), b, "signed-in@example.com")
        .await
        .unwrap();
    let digest = "ab".repeat(32);
    SessionRepo::create(
        t.conn(),
        b,
        user.id,
        &digest,
        Utc::now() + Duration::hours(1),
        None,
        None,
    )
    .await
    .unwrap();

    let tx = app.begin_read().await.unwrap();
    let found = SessionRepo::authenticate(&tx, &digest, Utc::now())
        .await
        .unwrap()
        .expect("the session");
    assert_eq!(found.user.id, user.id);
    assert_eq!(found.scope(), b);
    let seen = organizations(&tx, "SELECT organization_id FROM users").await;
    assert_eq!(seen.len(), 3, "B's 2 users and the signed-in one");
    assert!(seen.iter().all(|o| *o == b.organization_id()));
    tx.commit().await.unwrap();

    let tx = app.begin_read().await.unwrap();
    let unknown = SessionRepo::authenticate(&tx, &"cd".repeat(32), Utc::now())
        .await
        .unwrap();
    assert!(unknown.is_none());
    assert_eq!(
        count(&tx, "users").await,
        0,
        "an unknown token enters no tenant"
    );
    tx.commit().await.unwrap();

    // The lookup function is not for everyone: EXECUTE is revoked from PUBLIC.
    let granted: bool = t
        .conn()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT has_function_privilege('public', 'agenda_session_tenant(text)', 'EXECUTE')",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    assert!(!granted, "PUBLIC may not call the token lookup");
}

/// The outbox's cross-tenant functions (migration 12): PUBLIC may not call them, the
/// application role may; and outside them the application role sees no outbox row
/// of a tenant it has not entered.
#[tokio::test]
async fn the_outbox_functions_are_granted_to_the_application_role_only() {
    let Some((t, app)) = postgres_with_app_role().await else {
        return;
    };
    for function in migration::OUTBOX_FUNCTIONS {
        let sql = format!(
            "SELECT has_function_privilege('public', '{function}', 'EXECUTE'), \
                    has_function_privilege('{}', '{function}', 'EXECUTE')",
            agenda_testkit::APP_ROLE
        );
        let row = t
            .conn()
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .unwrap()
            .unwrap();
        let public: bool = row.try_get_by_index(0).unwrap();
        let role: bool = row.try_get_by_index(1).unwrap();
        assert!(!public, "PUBLIC may not call {function}");
        assert!(role, "the application role may call {function}");
    }
    let (a, _) = two_tenants(&t).await;
    let message = agenda_storage::repo::outbox::NewMessage {
        id: agenda_entity::new_id(),
        recipient_user_id: None,
        kind: agenda_entity::enums::MessageKind::PasswordReset,
        locale: agenda_entity::enums::Locale::En,
        to_address: "a@example.com".into(),
        to_name: None,
        subject: "s".into(),
        body_text: "t".into(),
        body_html: "h".into(),
        message_id: "<m@agenda.test>".into(),
    };
    agenda_storage::repo::outbox::OutboxRepo::enqueue(t.conn(), a, message, agenda_entity::now())
        .await
        .unwrap();
    assert_eq!(
        count(app.conn(), "outbox_messages").await,
        0,
        "no tenant entered"
    );
    let tx = app.read_in(a).await.unwrap();
    assert_eq!(count(&tx, "outbox_messages").await, 1, "in its tenant");
    tx.commit().await.unwrap();
}

/// Whole-database operations refuse the confined role instead of working half-blind:
/// a database backup is refused, an organization backup holds exactly that
/// organization's rows, and the superuser's backup holds everyone's.
#[tokio::test]
async fn whole_database_operations_need_a_role_that_sees_every_tenant() {
    let Some((t, app)) = postgres_with_app_role().await else {
        return;
    };
    let (a, _) = two_tenants(&t).await;
    assert!(tenant::sees_every_tenant(t.conn()).await.unwrap());
    assert!(!tenant::sees_every_tenant(app.conn()).await.unwrap());

    let mut out = Vec::new();
    let err = backup::create(&app, BackupScope::Database, &mut out)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");

    let mut out = Vec::new();
    let manifest = backup::create(
        &app,
        BackupScope::Organization(a.organization_id()),
        &mut out,
    )
    .await
    .unwrap();
    let users = manifest.table("users").unwrap();
    assert_eq!(users.rows, 3);

    let mut out = Vec::new();
    let everything = backup::create(&t, BackupScope::Database, &mut out)
        .await
        .unwrap();
    let users = everything.table("users").unwrap();
    assert_eq!(users.rows, 5);

    let status = agenda_storage::ops::status(&app, &[]).await.unwrap();
    assert!(status.counts_hidden_by_rls);
    let status = agenda_storage::ops::status(&t, &[]).await.unwrap();
    assert!(!status.counts_hidden_by_rls);
}

/// The transaction-scoped setting is what the policies read: entering B inside A's
/// transaction switches what the same statement returns, and `begin` (no tenant)
/// sees nothing — so nothing but `tenant::enter` decides visibility.
#[tokio::test]
async fn the_tenant_is_exactly_what_the_transaction_entered() {
    let Some((t, app)) = postgres_with_app_role().await else {
        return;
    };
    let (a, b) = two_tenants(&t).await;
    let tx = app.conn().begin().await.unwrap();
    assert_eq!(count(&tx, "users").await, 0);
    tenant::enter(&tx, a).await.unwrap();
    assert_eq!(count(&tx, "users").await, 3);
    tenant::enter(&tx, b).await.unwrap();
    assert_eq!(count(&tx, "users").await, 2);
    tx.commit().await.unwrap();
}

/// The demo seed writes only the demo organization's rows, in a transaction that
/// entered it, so it runs as the application role too — and a second run sees the
/// data and writes nothing.
#[tokio::test]
async fn the_demo_seed_runs_as_the_application_role() {
    let Some((t, app)) = postgres_with_app_role().await else {
        return;
    };
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$ZGVtbw$test-only-not-a-real-hash";
    let first = agenda_storage::seed::demo(&app, hash).await.unwrap();
    assert!(first.created);
    let again = agenda_storage::seed::demo(&app, hash).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.total_rows(), first.total_rows());
    assert_eq!(
        count(t.conn(), "appointments").await,
        first
            .tables
            .iter()
            .find(|(name, _)| *name == "appointments")
            .map(|(_, n)| *n as i64)
            .unwrap()
    );
}

/// The current transaction's `app.tenant` ('' when none was entered).
async fn tenant_setting(db: &impl ConnectionTrait) -> String {
    db.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT coalesce(current_setting('app.tenant', true), '')",
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index(0)
    .unwrap()
}

/// Migration 19's `agenda_authenticate`, as the application role on a pool of one
/// connection: a session of A enters A and shows none of B's rows; a revoked or
/// expired session, a deactivated user and an unknown digest return nothing and enter
/// no tenant; the tenant ends with the transaction (commit or rollback), so the next
/// transaction on the same connection has none; and PUBLIC may not call it.
#[tokio::test]
async fn authentication_in_one_call_enters_only_its_own_tenant() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let mut settings = t.app_role_settings().await;
    settings.pool_size = 1;
    settings.max_overflow = 0;
    let app = Db::connect(&settings).await.unwrap();
    let (a, b) = two_tenants(&t).await;
    let session = |scope: TenantScope, email: &'static str, digest: String, expires| {
        let t = &t;
        async move {
            let user = create_user(t.conn(), scope, email).await.unwrap();
            let made = SessionRepo::create(t.conn(), scope, user.id, &digest, expires, None, None)
                .await
                .unwrap();
            (user, made, digest)
        }
    };
    let later = Utc::now() + Duration::hours(1);
    let (user_a, _, digest_a) = session(a, "a@example.com", "a1".repeat(32), later).await;
    let (_, revoked, digest_revoked) = session(a, "r@example.com", "a2".repeat(32), later).await;
    SessionRepo::revoke(t.conn(), a, revoked.id, Utc::now())
        .await
        .unwrap();
    let soon = Utc::now() + Duration::seconds(2);
    let (_, _, digest_expired) = session(a, "e@example.com", "a3".repeat(32), soon).await;
    let (inactive, _, digest_inactive) = session(a, "i@example.com", "a4".repeat(32), later).await;
    t.conn()
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE users SET is_active = false WHERE id = $1",
            [inactive.id.into()],
        ))
        .await
        .unwrap();

    let tx = app.begin_read().await.unwrap();
    let found = SessionRepo::authenticate(&tx, &digest_a, Utc::now())
        .await
        .unwrap()
        .expect("A's session");
    assert_eq!((found.user.id, found.scope()), (user_a.id, a));
    assert_eq!(found.organization.id, a.organization_id());
    assert_eq!(tenant_setting(&tx).await, a.organization_id().to_string());
    let seen = organizations(&tx, "SELECT organization_id FROM users").await;
    assert!(!seen.is_empty() && seen.iter().all(|o| *o == a.organization_id()));
    let b_rows = organizations(
        &tx,
        &format!(
            "SELECT organization_id FROM users WHERE organization_id = '{}'",
            b.organization_id()
        ),
    )
    .await;
    assert!(b_rows.is_empty(), "a session of A read B's users");
    tx.commit().await.unwrap();

    // The same (only) connection: the tenant ended with the commit, and a dropped
    // transaction (the way a read ends in the server) ends it too.
    let tx = app.begin_read().await.unwrap();
    assert_eq!(
        tenant_setting(&tx).await,
        "",
        "the tenant outlived its commit"
    );
    SessionRepo::authenticate(&tx, &digest_a, Utc::now())
        .await
        .unwrap()
        .expect("A's session");
    drop(tx);
    let tx = app.begin_read().await.unwrap();
    assert_eq!(
        tenant_setting(&tx).await,
        "",
        "the tenant outlived a dropped transaction"
    );
    tx.commit().await.unwrap();

    let after_expiry = Utc::now() + Duration::seconds(3);
    for (digest, what) in [
        (digest_revoked, "a revoked session"),
        (digest_inactive, "a deactivated user"),
        ("ff".repeat(32), "an unknown digest"),
    ] {
        let tx = app.begin_read().await.unwrap();
        let found = SessionRepo::authenticate(&tx, &digest, Utc::now())
            .await
            .unwrap();
        assert!(found.is_none(), "{what} authenticated");
        assert_eq!(tenant_setting(&tx).await, "", "{what} entered a tenant");
        assert_eq!(count(&tx, "users").await, 0, "{what} sees users");
        tx.commit().await.unwrap();
    }
    let tx = app.begin_read().await.unwrap();
    let expired = SessionRepo::authenticate(&tx, &digest_expired, after_expiry)
        .await
        .unwrap();
    assert!(expired.is_none(), "an expired session authenticated");
    assert_eq!(tenant_setting(&tx).await, "");
    tx.commit().await.unwrap();

    let granted: bool = t
        .conn()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT has_function_privilege('public', 'agenda_authenticate(text, timestamptz)', 'EXECUTE')",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    assert!(!granted, "PUBLIC may not call agenda_authenticate");
    app.close().await;
}
