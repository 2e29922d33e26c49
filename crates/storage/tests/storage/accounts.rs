//! The repositories behind running an organization: the last active admin (also
//! under concurrency), organization status, integration secrets sealed to their row,
//! and saved payment methods with one default.

use agenda_entity::enums::{OrganizationStatus, UserRole};
use agenda_entity::{integration_setting, user};
use agenda_storage::repo::integrations::{
    IntegrationChange, IntegrationRepo, SecretChange, SecretUnavailable,
};
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::repo::payment_methods::PaymentMethodRepo;
use agenda_storage::repo::users::{LAST_ADMIN, UserRepo};
use agenda_storage::secrets::{SecretKeys, SecretsError};
use agenda_storage::{Db, StorageError, TenantScope};
use agenda_testkit::both_engines;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel, Set, Statement};
use serde_json::json;

use crate::connection::{create_user, seed_org};

async fn with_role(db: &Db, scope: TenantScope, email: &str, role: UserRole) -> user::Model {
    let created = create_user(db.conn(), scope, email).await.unwrap();
    let mut row = created.into_active_model();
    row.role = Set(role);
    row.update(db.conn()).await.unwrap()
}

fn is_last_admin(result: &Result<impl std::fmt::Debug, StorageError>) -> bool {
    matches!(result, Err(StorageError::InvalidState { code, .. }) if *code == LAST_ADMIN)
}

both_engines! {
    async fn the_last_active_admin_is_neither_demoted_nor_deactivated(t: TestDb) {
        let db = t.app_role_pool().await;
        let scope = TenantScope::new(seed_org(&t.db).await);
        let a = with_role(&t.db, scope, "a@example.com", UserRole::Admin).await;
        let client = with_role(&t.db, scope, "c@example.com", UserRole::Client).await;

        let tx = db.begin_in(scope).await.unwrap();
        assert!(is_last_admin(&UserRepo::change_role(&tx, scope, a.id, UserRole::Support).await));
        assert!(is_last_admin(&UserRepo::set_active(&tx, scope, a.id, false).await));
        // Setting what is already so is no change, and allowed.
        let same = UserRepo::change_role(&tx, scope, a.id, UserRole::Admin).await.unwrap();
        assert!(!same.changed());
        // An inactive admin does not count: promoting the client makes a second one.
        let promoted = UserRepo::change_role(&tx, scope, client.id, UserRole::Admin).await.unwrap();
        assert_eq!((promoted.before.role, promoted.after.role), (UserRole::Client, UserRole::Admin));
        let off = UserRepo::set_active(&tx, scope, client.id, false).await.unwrap();
        assert!(off.changed() && !off.after.is_active);
        assert!(is_last_admin(&UserRepo::change_role(&tx, scope, a.id, UserRole::Client).await), "the other admin is inactive");
        UserRepo::set_active(&tx, scope, client.id, true).await.unwrap();
        let demoted = UserRepo::change_role(&tx, scope, a.id, UserRole::Client).await.unwrap();
        assert_eq!(demoted.after.role, UserRole::Client);
        tx.commit().await.unwrap();

        // Another organization's user is not found.
        let theirs = TenantScope::new(seed_org(&t.db).await);
        let tx = db.begin_in(theirs).await.unwrap();
        assert!(matches!(UserRepo::change_role(&tx, theirs, a.id, UserRole::Admin).await, Err(StorageError::NotFound { .. })));
        assert!(matches!(UserRepo::set_active(&tx, theirs, a.id, false).await, Err(StorageError::NotFound { .. })));
    }

    async fn suspending_changes_the_status_once(t: TestDb) {
        let id = seed_org(&t.db).await;
        let (changed, org) = OrganizationRepo::set_status(t.conn(), id, OrganizationStatus::Suspended).await.unwrap();
        assert!(changed && org.status == OrganizationStatus::Suspended);
        let (changed, _) = OrganizationRepo::set_status(t.conn(), id, OrganizationStatus::Suspended).await.unwrap();
        assert!(!changed, "suspended already");
        let suspended = OrganizationRepo::list(t.conn(), Some(OrganizationStatus::Suspended)).await.unwrap();
        assert_eq!(suspended.iter().map(|o| o.id).collect::<Vec<_>>(), [id]);
        assert!(OrganizationRepo::list(t.conn(), Some(OrganizationStatus::Active)).await.unwrap().iter().all(|o| o.id != id));
        let (changed, org) = OrganizationRepo::set_status(t.conn(), id, OrganizationStatus::Active).await.unwrap();
        assert!(changed && org.status == OrganizationStatus::Active);
    }

    /// A sealed secret opens only in its own row: copied into another organization's
    /// row it does not; the database never holds it in clear; without a key it is
    /// refused, not stored.
    async fn integration_secrets_are_sealed_to_their_row(t: TestDb) {
        let db = t.app_role_pool().await;
        let keys = SecretKeys::from_keys(Some([3; 32]), &[]);
        let acme = TenantScope::new(seed_org(&t.db).await);
        let beta = TenantScope::new(seed_org(&t.db).await);
        let secret = "whsec_acme_0123456789";
        let change = |secret: SecretChange| IntegrationChange { is_enabled: Some(true), config: None, secret };

        let tx = db.begin_in(acme).await.unwrap();
        let (row, created) = IntegrationRepo::put(&tx, acme, &keys, "stripe", change(SecretChange::Store(secret.into()))).await.unwrap();
        tx.commit().await.unwrap();
        assert!(created && row.secret_ref.is_none() && row.secret_hint.as_deref() == Some("6789"));
        let stored = integration_setting::Entity::find_by_id(row.id).one(t.conn()).await.unwrap().unwrap();
        assert!(!stored.secret_ciphertext.as_deref().unwrap().contains("whsec"));
        assert_eq!(IntegrationRepo::secret(&keys, acme, &stored).unwrap().expose(), secret.as_bytes());

        // The same ciphertext in beta's row does not open.
        let tx = db.begin_in(beta).await.unwrap();
        let (theirs, _) = IntegrationRepo::put(&tx, beta, &keys, "stripe", change(SecretChange::Keep)).await.unwrap();
        tx.commit().await.unwrap();
        let mut copied = theirs.into_active_model();
        copied.secret_ciphertext = Set(stored.secret_ciphertext.clone());
        copied.secret_key_id = Set(stored.secret_key_id.clone());
        let copied = copied.update(t.conn()).await.unwrap();
        assert!(matches!(IntegrationRepo::secret(&keys, beta, &copied), Err(SecretUnavailable::Sealed(SecretsError::Corrupt))));

        // No key: refused on `secret`, and the row keeps what it had.
        let tx = db.begin_in(acme).await.unwrap();
        let refused = IntegrationRepo::put(&tx, acme, &SecretKeys::default(), "stripe", change(SecretChange::Store("other".into()))).await;
        assert!(matches!(refused, Err(StorageError::Validation { field: "secret", .. })), "{refused:?}");
        drop(tx);
        // A reference replaces the sealed secret; clearing leaves none.
        let tx = db.begin_in(acme).await.unwrap();
        let (row, _) = IntegrationRepo::put(&tx, acme, &keys, "stripe", change(SecretChange::Reference("env:AGENDA_TEST_UNSET_VARIABLE".into()))).await.unwrap();
        assert!(row.secret_ciphertext.is_none() && row.secret_key_id.is_none() && row.secret_hint.is_none());
        assert!(matches!(IntegrationRepo::secret(&keys, acme, &row), Err(SecretUnavailable::UnsetVariable(_))));
        let (row, _) = IntegrationRepo::put(&tx, acme, &keys, "stripe", change(SecretChange::Clear)).await.unwrap();
        assert!(matches!(IntegrationRepo::secret(&keys, acme, &row), Err(SecretUnavailable::None)));
        tx.commit().await.unwrap();
        // Lists and lookups stay in the tenant.
        let tx = db.read_in(beta).await.unwrap();
        assert_eq!(IntegrationRepo::list(&tx, beta).await.unwrap().len(), 1);
        assert!(IntegrationRepo::find(&tx, beta, "paypal").await.unwrap().is_none());
        assert!(matches!(IntegrationRepo::delete(&tx, beta, "paypal").await, Err(StorageError::NotFound { .. })));
    }

    async fn a_client_has_one_default_payment_method(t: TestDb) {
        let db = t.app_role_pool().await;
        let scope = TenantScope::new(seed_org(&t.db).await);
        let client = with_role(&t.db, scope, "c@example.com", UserRole::Client).await;
        let other = with_role(&t.db, scope, "o@example.com", UserRole::Client).await;
        let method = |token: &str, default: Option<bool>| {
            serde_json::from_value(json!({"processor": "stripe", "processor_token": token, "brand": "visa", "last4": "4242", "is_default": default})).unwrap()
        };
        let tx = db.begin_in(scope).await.unwrap();
        let first = PaymentMethodRepo::add(&tx, scope, client.id, method("pm_1", None)).await.unwrap();
        assert!(first.is_default, "the first method is the default");
        let second = PaymentMethodRepo::add(&tx, scope, client.id, method("pm_2", None)).await.unwrap();
        assert!(!second.is_default);
        let third = PaymentMethodRepo::add(&tx, scope, client.id, method("pm_3", Some(true))).await.unwrap();
        let listed = PaymentMethodRepo::list(&tx, scope, client.id).await.unwrap();
        assert_eq!(listed.iter().map(|m| (m.id, m.is_default)).collect::<Vec<_>>(), [(third.id, true), (first.id, false), (second.id, false)]);
        let update = serde_json::from_value(json!({"is_default": true})).unwrap();
        PaymentMethodRepo::update(&tx, scope, client.id, second.id, update).await.unwrap();
        let defaults: Vec<_> = PaymentMethodRepo::list(&tx, scope, client.id).await.unwrap().into_iter().filter(|m| m.is_default).map(|m| m.id).collect();
        assert_eq!(defaults, [second.id]);
        // Another user's method is not found, for every operation.
        assert!(matches!(PaymentMethodRepo::get(&tx, scope, other.id, first.id).await, Err(StorageError::NotFound { .. })));
        let update = serde_json::from_value(json!({"brand": "x"})).unwrap();
        assert!(matches!(PaymentMethodRepo::update(&tx, scope, other.id, first.id, update).await, Err(StorageError::NotFound { .. })));
        assert!(matches!(PaymentMethodRepo::remove(&tx, scope, other.id, first.id).await, Err(StorageError::NotFound { .. })));
        PaymentMethodRepo::remove(&tx, scope, client.id, first.id).await.unwrap();
        assert_eq!(PaymentMethodRepo::list(&tx, scope, client.id).await.unwrap().len(), 2);
        tx.commit().await.unwrap();
    }
}

/// Two admins demote each other in two transactions that overlap: the second waits
/// for the first's lock on the admins (observed in `pg_stat_activity`), then re-reads
/// them and refuses. Without the lock both would see two admins and both succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrent_demotion_waits_for_the_first_and_is_refused() {
    let Some(t) = agenda_testkit::TestDb::postgres().await else {
        return;
    };
    let db = t.app_role_pool().await;
    let scope = TenantScope::new(seed_org(&t.db).await);
    let a = with_role(&t.db, scope, "a@example.com", UserRole::Admin).await;
    let b = with_role(&t.db, scope, "b@example.com", UserRole::Admin).await;

    let first = db.begin_in(scope).await.unwrap();
    UserRepo::change_role(&first, scope, b.id, UserRole::Client)
        .await
        .unwrap();
    let second = {
        let db = db.clone();
        tokio::spawn(async move {
            let tx = db.begin_in(scope).await.unwrap();
            let result = UserRepo::change_role(&tx, scope, a.id, UserRole::Client).await;
            tx.commit().await.unwrap();
            result
        })
    };
    // Wait (by condition, with a generous bound) until the second is blocked on a lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let row = t
            .conn()
            .query_one_raw(Statement::from_string(
                t.conn().get_database_backend(),
                "SELECT count(*) AS waiting FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND datname = current_database()",
            ))
            .await
            .unwrap()
            .unwrap();
        if row.try_get::<i64>("", "waiting").unwrap() > 0 {
            break;
        }
        assert!(
            !second.is_finished(),
            "the second change did not wait for the first"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the second change never waited for the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    first.commit().await.unwrap();
    let result = second.await.unwrap();
    assert!(is_last_admin(&result), "{result:?}");
    let a = user::Entity::find_by_id(a.id)
        .one(t.conn())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.role, UserRole::Admin, "one admin is left");
}
