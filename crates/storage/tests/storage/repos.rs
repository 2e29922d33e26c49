//! Repositories of the first slice.

use agenda_entity::organization::UpdateOrganization;
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::repo::users::UserRepo;
use agenda_storage::{StorageError, TenantScope};
use agenda_testkit::both_engines;

use crate::connection::{create_user, seed_org};

both_engines! {
    async fn organizations_round_trip_with_timestamps(t: TestDb) {
        let id = seed_org(&t.db).await;
        let org = OrganizationRepo::get(t.conn(), id).await.unwrap();
        assert_eq!(org.id.get_version_num(), 7, "keys are UUIDv7");
        assert_eq!(org.created_at, org.updated_at);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let updated = OrganizationRepo::update(
            t.conn(),
            id,
            UpdateOrganization { name: Some("  Renamed  ".into()), ..Default::default() },
        )
        .await
        .unwrap();
        assert_eq!(updated.name, "Renamed");
        assert_eq!(updated.created_at, org.created_at);
        assert!(updated.updated_at > org.updated_at);
        let reread = OrganizationRepo::get(t.conn(), id).await.unwrap();
        assert_eq!(reread, updated, "what was written reads back identically");
        let missing = OrganizationRepo::get(t.conn(), uuid::Uuid::now_v7()).await.unwrap_err();
        assert!(matches!(missing, StorageError::NotFound { entity: "organization" }));
    }

    async fn another_tenants_user_is_not_found(t: TestDb) {
        let mine = TenantScope::new(seed_org(&t.db).await);
        let theirs = TenantScope::new(seed_org(&t.db).await);
        let their_user = create_user(t.conn(), theirs, "x@example.com").await.unwrap();
        let err = UserRepo::get(t.conn(), mine, their_user.id).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { .. }));
        assert!(UserRepo::find_by_email(t.conn(), mine, "x@example.com").await.unwrap().is_none());
        assert!(matches!(UserRepo::delete(t.conn(), mine, their_user.id).await, Err(StorageError::NotFound { .. })));
        assert_eq!(UserRepo::count(t.conn(), theirs).await.unwrap(), 1);
        assert_eq!(UserRepo::count(t.conn(), mine).await.unwrap(), 0);
        assert_eq!(UserRepo::get(t.conn(), theirs, their_user.id).await.unwrap().email, "x@example.com");
    }
}
