//! The read cache on its own: per tenant, read on the caller's connection, dropped
//! only when the writer's request says its commit succeeded, and never refilled by a
//! request that began before an invalidation.

use agenda_entity::niche;
use agenda_storage::TenantScope;
use agenda_storage::cache::{CacheConfig, ReadCache};
use agenda_storage::repo::resource::Repo;
use agenda_testkit::both_engines;
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::connection::seed_org;

async fn names(t: &agenda_testkit::TestDb, cache: &ReadCache, scope: TenantScope) -> Vec<String> {
    cache
        .rows::<niche::Entity>(t.conn(), scope)
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
    async fn reads_are_cached_per_tenant_and_dropped_after_commit(t: TestDb) {
        let cache = ReadCache::new(CacheConfig::default());
        let mine = TenantScope::new(seed_org(&t.db).await);
        let theirs = TenantScope::new(seed_org(&t.db).await);
        create(&t, mine, "hair").await;
        create(&t, theirs, "nails").await;

        assert_eq!(names(&t, &cache, mine).await, ["hair"]);
        assert_eq!(names(&t, &cache, theirs).await, ["nails"]);
        let filled = cache.stats();
        assert_eq!((filled.hits, filled.misses, filled.entries), (0, 2, 2));

        // A change behind the cache is not seen: the entry is served.
        t.conn().execute_unprepared("UPDATE niches SET name = 'renamed behind the cache'").await.unwrap();
        assert_eq!(names(&t, &cache, mine).await, ["hair"]);
        assert_eq!(cache.stats().hits, 1);

        // A write in a tracked request is recorded, not applied: until the request
        // reports its commit, other readers keep the committed entry...
        let (_, written) = cache.track(create(&t, mine, "beard")).await;
        assert!(!written.is_empty());
        assert_eq!(names(&t, &cache, mine).await, ["hair"]);
        // ...and once it does, the tenant's entry (only theirs) goes.
        cache.invalidate_written(&written);
        let mut fresh = names(&t, &cache, mine).await;
        fresh.sort();
        assert_eq!(fresh, ["beard", "renamed behind the cache"]);
        assert_eq!(names(&t, &cache, theirs).await, ["nails"], "the other tenant's entry stays");
        assert_eq!(cache.stats().invalidations, 1);
    }
}

both_engines! {
    async fn a_request_never_caches_what_it_wrote_nor_what_predates_an_invalidation(t: TestDb) {
        let cache = ReadCache::new(CacheConfig::default());
        let scope = TenantScope::new(seed_org(&t.db).await);
        create(&t, scope, "hair").await;

        // Inside the writing request the table is read from the database (its own
        // uncommitted rows) and not stored.
        let ((), written) = cache
            .track(async {
                create(&t, scope, "beard").await;
                assert_eq!(names(&t, &cache, scope).await.len(), 2);
                assert_eq!(names(&t, &cache, scope).await.len(), 2);
            })
            .await;
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(cache.stats().hits, 0);
        cache.invalidate_written(&written);

        // A request that began before another request's invalidation may hold an
        // older snapshot: what it loads is served to it, not stored.
        let ((), _) = cache
            .track(async {
                cache.invalidate(scope.organization_id(), "niches");
                names(&t, &cache, scope).await;
            })
            .await;
        assert_eq!(cache.stats().entries, 0);
        names(&t, &cache, scope).await;
        assert_eq!(cache.stats().entries, 1, "a read that began after it fills");
    }
}

both_engines! {
    async fn every_cached_table_notifies_on_postgres(t: TestDb) {
        // Migration 15 keeps its own (frozen) list of tables; the cache's list must
        // not grow past it, or writes to the new table would not reach other servers.
        if t.engine() != agenda_storage::Engine::Postgres {
            return;
        }
        for table in agenda_storage::cache::CACHED_TABLES {
            let found = t
                .conn()
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!("SELECT 1 FROM pg_trigger WHERE tgname = 'trg_{table}_cache_notify'"),
                ))
                .await
                .unwrap();
            assert!(found.is_some(), "no cache trigger on {table}");
        }
    }
}
