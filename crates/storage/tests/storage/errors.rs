//! Database errors are classified the same way on both engines, with the constraint
//! name the naming convention gives.

use agenda_entity::organization::CreateOrganization;
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::{ConflictKind, StorageError, TenantScope};
use agenda_testkit::both_engines;
use sea_orm::{ConnectionTrait, Statement};

use crate::connection::{create_user, seed_org};

fn acme() -> CreateOrganization {
    CreateOrganization {
        slug: "acme".into(),
        name: "Acme".into(),
        time_zone: "UTC".into(),
        currency: "EUR".into(),
        locale: None,
    }
}

both_engines! {
    async fn unique_violation_names_the_constraint(t: TestDb) {
        OrganizationRepo::create(t.conn(), acme()).await.unwrap();
        let err = OrganizationRepo::create(t.conn(), acme()).await.unwrap_err();
        match err {
            StorageError::Conflict { kind: ConflictKind::Unique, constraint } => {
                assert_eq!(constraint.as_deref(), Some("uq_organizations_slug"));
            }
            other => panic!("expected a unique conflict, got {other:?}"),
        }
        let scope = TenantScope::new(seed_org(&t.db).await);
        create_user(t.conn(), scope, "a@example.com").await.unwrap();
        let err = create_user(t.conn(), scope, "A@Example.com").await.unwrap_err();
        assert_eq!(err.constraint(), Some("uq_users_organization_id_email"), "{err:?}");
    }

    async fn foreign_key_violation_is_an_invalid_reference(t: TestDb) {
        let nowhere = TenantScope::new(uuid::Uuid::now_v7());
        let err = create_user(t.conn(), nowhere, "a@example.com").await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidReference { .. }), "{err:?}");
    }

    async fn check_violation_names_the_constraint(t: TestDb) {
        let org = OrganizationRepo::create(t.conn(), acme()).await.unwrap();
        let backend = t.conn().get_database_backend();
        let err = t
            .conn()
            .execute_raw(Statement::from_sql_and_values(
                backend,
                match backend {
                    sea_orm::DbBackend::Postgres => "UPDATE organizations SET status = 'closed-forever' WHERE id = $1",
                    _ => "UPDATE organizations SET status = 'closed-forever' WHERE id = ?",
                },
                [org.id.into()],
            ))
            .await
            .map_err(StorageError::from)
            .unwrap_err();
        assert_eq!(err.constraint(), Some("ck_organizations_status"), "{err:?}");
        assert!(matches!(err, StorageError::CheckViolation { .. }));
    }
}

/// A statement beyond `statement_timeout` is a `Timeout`, and the connection is
/// usable afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_is_classified_as_timeout() {
    let Some(t) = agenda_testkit::TestDb::postgres_with(|s| {
        s.statement_timeout = std::time::Duration::from_millis(200);
        s.max_overflow = 1;
    })
    .await
    else {
        return;
    };
    let started = std::time::Instant::now();
    let err = t
        .conn()
        .execute_unprepared("SELECT pg_sleep(2)")
        .await
        .map_err(StorageError::from)
        .unwrap_err();
    assert!(matches!(err, StorageError::Timeout { .. }), "{err:?}");
    // Within the timeout plus a margin a loaded machine cannot eat: far from 2 s.
    assert!(started.elapsed() < std::time::Duration::from_millis(1900));
    assert!(err.is_transient());
    // The single pooled connection was reused for this.
    t.conn().execute_unprepared("SELECT 1").await.unwrap();
    assert_eq!(t.pool_status().size, 1);
}
