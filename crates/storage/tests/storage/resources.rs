//! The generic repository: CRUD, tenant isolation (ids and references), row rules
//! after partial updates, keyset pagination and allow-listed filters.

use agenda_entity::{availability, category, niche, service};
use agenda_storage::repo::resource::{ListQuery, MAX_PAGE_SIZE, Repo};
use agenda_storage::{StorageError, TenantScope};
use agenda_testkit::both_engines;
use sea_orm::{ConnectionTrait, Set};
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;

use crate::connection::{create_user, seed_org};

fn input<T: DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).unwrap()
}

async fn niche_in(db: &impl ConnectionTrait, scope: TenantScope, slug: &str) -> niche::Model {
    Repo::<niche::Entity>::create(
        db,
        scope,
        input(json!({"name": slug, "slug": slug})),
        |_| {},
    )
    .await
    .unwrap()
}

async fn category_in(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    niche: Uuid,
    slug: &str,
) -> Result<category::Model, StorageError> {
    Repo::<category::Entity>::create(
        db,
        scope,
        input(json!({"niche_id": niche, "name": slug, "slug": slug})),
        |_| {},
    )
    .await
}

both_engines! {
    async fn create_get_update_delete(t: TestDb) {
        let scope = TenantScope::new(seed_org(&t.db).await);
        let provider = create_user(t.conn(), scope, "p@example.com").await.unwrap();
        let created = Repo::<service::Entity>::create(
            t.conn(),
            scope,
            input(json!({"name": "Haircut", "duration_minutes": 45, "price_cents": 4000})),
            |row| row.provider_id = Set(provider.id),
        )
        .await
        .unwrap();
        assert_eq!((created.provider_id, created.is_active), (provider.id, true));
        assert_eq!(Repo::<service::Entity>::get(t.conn(), scope, created.id).await.unwrap(), created);

        let updated = Repo::<service::Entity>::update(
            t.conn(),
            scope,
            created.id,
            input(json!({"price_cents": 4500, "description": "with wash"})),
        )
        .await
        .unwrap();
        assert_eq!((updated.price_cents, updated.description.as_deref()), (4500, Some("with wash")));
        assert_eq!(updated.name, "Haircut", "absent fields are kept");
        let cleared = Repo::<service::Entity>::update(t.conn(), scope, created.id, input(json!({"description": null})))
            .await
            .unwrap();
        assert_eq!(cleared.description, None, "null clears");

        Repo::<service::Entity>::delete(t.conn(), scope, created.id).await.unwrap();
        let gone = Repo::<service::Entity>::get(t.conn(), scope, created.id).await.unwrap_err();
        assert!(matches!(gone, StorageError::NotFound { entity: "service" }), "{gone:?}");
        let again = Repo::<service::Entity>::delete(t.conn(), scope, created.id).await.unwrap_err();
        assert!(matches!(again, StorageError::NotFound { .. }));
    }

    async fn another_tenants_rows_and_references_are_unreachable(t: TestDb) {
        let mine = TenantScope::new(seed_org(&t.db).await);
        let theirs = TenantScope::new(seed_org(&t.db).await);
        let their_niche = niche_in(t.conn(), theirs, "theirs").await;
        let my_niche = niche_in(t.conn(), mine, "mine").await;

        // Their id is "not found" for every operation in my scope.
        let not_found = |r: Result<_, StorageError>| matches!(r, Err(StorageError::NotFound { entity: "niche" }));
        assert!(not_found(Repo::<niche::Entity>::get(t.conn(), mine, their_niche.id).await.map(|_| ())));
        assert!(not_found(Repo::<niche::Entity>::update(t.conn(), mine, their_niche.id, input(json!({"name": "x"}))).await.map(|_| ())));
        assert!(not_found(Repo::<niche::Entity>::delete(t.conn(), mine, their_niche.id).await));
        assert_eq!(Repo::<niche::Entity>::get(t.conn(), theirs, their_niche.id).await.unwrap().name, "theirs");
        let page = Repo::<niche::Entity>::list(t.conn(), mine, &ListQuery::default()).await.unwrap();
        assert_eq!(page.items, vec![my_niche.clone()]);

        // A reference to their row fails like a reference to nothing, on create and update.
        let err = category_in(t.conn(), mine, their_niche.id, "hair").await.unwrap_err();
        assert!(
            matches!(&err, StorageError::InvalidReference { constraint: Some(c) } if c == "fk_categories_niche_id_niches"),
            "{err:?}"
        );
        let nowhere = category_in(t.conn(), mine, Uuid::now_v7(), "hair").await.unwrap_err();
        assert!(matches!(nowhere, StorageError::InvalidReference { .. }));
        let mine_cat = category_in(t.conn(), mine, my_niche.id, "hair").await.unwrap();
        let err = Repo::<category::Entity>::update(t.conn(), mine, mine_cat.id, input(json!({"niche_id": their_niche.id})))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::InvalidReference { .. }), "{err:?}");
        let reread = Repo::<category::Entity>::get(t.conn(), mine, mine_cat.id).await.unwrap();
        assert_eq!(reread.niche_id, my_niche.id, "nothing was written");
    }

    async fn rules_are_checked_on_the_merged_row(t: TestDb) {
        let scope = TenantScope::new(seed_org(&t.db).await);
        let provider = create_user(t.conn(), scope, "p@example.com").await.unwrap();
        let window = Repo::<availability::Entity>::create(
            t.conn(),
            scope,
            input(json!({"kind": "weekly", "weekday": 1, "start_time": "09:00", "end_time": "18:00"})),
            |row| row.provider_id = Set(provider.id),
        )
        .await
        .unwrap();
        // Each field is fine alone; together they break "a weekly window has a weekday".
        let err = Repo::<availability::Entity>::update(t.conn(), scope, window.id, input(json!({"weekday": null})))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Validation { field: "weekday", .. }), "{err:?}");
        let err = Repo::<availability::Entity>::update(t.conn(), scope, window.id, input(json!({"end_time": "09:00"})))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Validation { field: "end_time", .. }), "{err:?}");
        let overnight = Repo::<availability::Entity>::update(t.conn(), scope, window.id, input(json!({"start_time": "22:00", "end_time": "02:00"})))
            .await
            .unwrap();
        assert_eq!(overnight.weekday, Some(1));
    }

    async fn lists_are_keyset_paginated_and_filtered(t: TestDb) {
        let scope = TenantScope::new(seed_org(&t.db).await);
        let mut created = Vec::new();
        for i in 0..5 {
            created.push(niche_in(t.conn(), scope, &format!("niche-{i}")).await.id);
        }
        let mut seen = Vec::new();
        let mut query = ListQuery { limit: Some(2), ..Default::default() };
        let mut pages = 0;
        loop {
            let page = Repo::<niche::Entity>::list(t.conn(), scope, &query).await.unwrap();
            pages += 1;
            seen.extend(page.items.iter().map(|n| n.id));
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        assert_eq!((pages, &seen), (3, &created), "creation order, no gaps or repeats");

        let newest = Repo::<niche::Entity>::list(t.conn(), scope, &ListQuery { newest_first: true, limit: Some(3), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(newest.items.iter().map(|n| n.id).collect::<Vec<_>>(), created.iter().rev().take(3).copied().collect::<Vec<_>>());

        // The page size is capped.
        for i in 5..(MAX_PAGE_SIZE + 5) {
            niche_in(t.conn(), scope, &format!("niche-{i}")).await;
        }
        let capped = Repo::<niche::Entity>::list(t.conn(), scope, &ListQuery { limit: Some(10_000), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(capped.items.len() as u64, MAX_PAGE_SIZE);
        assert!(capped.next.is_some());

        // Filters: allow-listed, typed.
        let by_slug = Repo::<niche::Entity>::list(t.conn(), scope, &ListQuery { filters: vec![("slug".into(), "niche-3".into())], ..Default::default() })
            .await
            .unwrap();
        assert_eq!(by_slug.items.iter().map(|n| n.id).collect::<Vec<_>>(), vec![created[3]]);
        let count = Repo::<niche::Entity>::count(t.conn(), scope, &[("is_active".into(), "true".into())]).await.unwrap();
        assert_eq!(count, MAX_PAGE_SIZE + 5);
        for (field, value) in [("name", "x"), ("is_active", "maybe")] {
            let err = Repo::<niche::Entity>::list(t.conn(), scope, &ListQuery { filters: vec![(field.into(), value.into())], ..Default::default() })
                .await
                .unwrap_err();
            assert!(matches!(err, StorageError::Validation { field: "filter", .. }), "{field}: {err:?}");
        }
        let err = Repo::<niche::Entity>::list(t.conn(), scope, &ListQuery { after: Some("garbage".into()), ..Default::default() })
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Validation { field: "after", .. }));
    }
}
