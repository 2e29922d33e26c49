//! The read cache: per tenant, invalidated by writes through the repository,
//! observable through hit and miss counts.

use agenda_entity::niche;
use agenda_storage::TenantScope;
use agenda_storage::cache;
use agenda_storage::repo::resource::Repo;
use agenda_testkit::both_engines;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::connection::seed_org;

async fn names(t: &agenda_testkit::TestDb, scope: TenantScope) -> Vec<String> {
    cache::all::<niche::Entity>(t.conn(), scope)
        .await
        .unwrap()
        .iter()
        .map(|n| n.name.clone())
        .collect()
}

async fn create(t: &agenda_testkit::TestDb, scope: TenantScope, name: &str) -> niche::Model {
    Repo::<niche::Entity>::create(
        t.conn(),
        scope,
        serde_json::from_value(json!({"name": name, "slug": name})).unwrap(),
        |_| {},
    )
    .await
    .unwrap()
}

both_engines! {
    async fn reads_are_cached_per_tenant_and_writes_invalidate(t: TestDb) {
        let mine = TenantScope::new(seed_org(&t.db).await);
        let theirs = TenantScope::new(seed_org(&t.db).await);
        create(&t, mine, "hair").await;
        create(&t, theirs, "nails").await;

        let before = cache::stats();
        assert_eq!(names(&t, mine).await, ["hair"]);
        let after_miss = cache::stats();
        assert!(after_miss.misses > before.misses, "{before:?} {after_miss:?}");
        assert_eq!(names(&t, theirs).await, ["nails"], "never another tenant's entry");

        // A change made behind the repository's back is not seen: the read was a hit.
        let backend = t.conn().get_database_backend();
        t.conn()
            .execute_raw(Statement::from_string(backend, "UPDATE niches SET name = 'renamed behind the cache'"))
            .await
            .unwrap();
        assert_eq!(names(&t, mine).await, ["hair"]);
        assert!(cache::stats().hits > after_miss.hits);

        // A write through the repository is visible to the next read.
        let beauty = create(&t, mine, "beauty").await;
        assert_eq!(names(&t, mine).await.len(), 2);
        Repo::<niche::Entity>::update(t.conn(), mine, beauty.id, serde_json::from_value(json!({"name": "Beauty"})).unwrap())
            .await
            .unwrap();
        assert!(names(&t, mine).await.contains(&"Beauty".to_owned()));
        Repo::<niche::Entity>::delete(t.conn(), mine, beauty.id).await.unwrap();
        assert_eq!(names(&t, mine).await, ["renamed behind the cache"]);
        // The other tenant's entry was not touched by my writes.
        assert_eq!(names(&t, theirs).await, ["nails"]);
        assert!(cache::stats().invalidations >= 3);
    }
}
