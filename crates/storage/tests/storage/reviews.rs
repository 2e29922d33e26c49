//! Review rating counters are kept by the storage layer: after any sequence of
//! creates, moderations and deletes, each provider's `rating_count` / `rating_total`
//! equal the count and sum of their approved reviews.

use agenda_entity::enums::{AppointmentStatus, ModerationStatus, PaymentStatus};
use agenda_entity::{appointment, provider_settings, review, service};
use agenda_storage::TenantOwned;
use agenda_storage::repo::resource::Repo;
use agenda_storage::repo::reviews::ReviewRepo;
use agenda_storage::{Db, TenantScope};
use agenda_testkit::both_engines;
use chrono::{Duration, TimeZone, Utc};
use sea_orm::{ActiveModelTrait, Set};
use uuid::Uuid;

use crate::connection::{create_user, seed_org};

async fn completed(
    db: &Db,
    scope: TenantScope,
    client: Uuid,
    provider: Uuid,
    service: Uuid,
    n: i64,
) -> Uuid {
    let start = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap() + Duration::hours(n);
    appointment::ActiveModel {
        organization_id: Set(scope.organization_id()),
        client_id: Set(client),
        provider_id: Set(provider),
        service_id: Set(Some(service)),
        start_at: Set(start),
        end_at: Set(start + Duration::minutes(30)),
        occupied_until: Set(start + Duration::minutes(30)),
        status: Set(AppointmentStatus::Completed),
        price_cents: Set(5_000),
        discount_cents: Set(0),
        currency: Set("BRL".into()),
        payment_status: Set(PaymentStatus::Paid),
        ..Default::default()
    }
    .insert(db.conn())
    .await
    .unwrap()
    .id
}

async fn counters(db: &Db, scope: TenantScope, provider: Uuid) -> (i64, i64) {
    let all = Repo::<provider_settings::Entity>::list(db.conn(), scope, &Default::default())
        .await
        .unwrap();
    let row = all
        .items
        .iter()
        .find(|s| s.provider_id == provider)
        .unwrap();
    (i64::from(row.rating_count), row.rating_total)
}

both_engines! {
    async fn rating_counters_equal_the_aggregate_after_random_operations(t: TestDb) {
        let db = &t.db;
        let scope = TenantScope::new(seed_org(db).await);
        let client = create_user(db.conn(), scope, "client@example.com").await.unwrap().id;
        let mut providers = Vec::new();
        for email in ["ana@example.com", "bruno@example.com"] {
            let provider = create_user(db.conn(), scope, email).await.unwrap().id;
            Repo::<provider_settings::Entity>::create(
                db.conn(),
                scope,
                serde_json::from_value(serde_json::json!({"business_name": email, "accepted_payment_methods": ["pix"]})).unwrap(),
                |r| r.provider_id = Set(provider),
            )
            .await
            .unwrap();
            let service = service::ActiveModel {
                organization_id: Set(scope.organization_id()),
                provider_id: Set(provider),
                name: Set("Haircut".into()),
                duration_minutes: Set(30),
                price_cents: Set(5_000),
                is_active: Set(true),
                ..Default::default()
            }
            .insert(db.conn())
            .await
            .unwrap()
            .id;
            providers.push((provider, service));
        }

        let mut rng = fastrand::Rng::with_seed(14);
        let mut appointments: Vec<(Uuid, Uuid)> = Vec::new();
        for n in 0..40 {
            let (provider, service) = providers[n as usize % 2];
            appointments.push((completed(db, scope, client, provider, service, n).await, provider));
        }
        let statuses = [ModerationStatus::Pending, ModerationStatus::Approved, ModerationStatus::Rejected];
        let (mut creates, mut moderations, mut deletes) = (0, 0, 0);
        for step in 0..120 {
            // What exists now (a rolled-back step changed nothing).
            let existing = review::Entity::find_in(scope).all(db.conn()).await.unwrap();
            let reviews: Vec<Uuid> = existing.iter().map(|r| r.id).collect();
            let unreviewed: Vec<(Uuid, Uuid)> = appointments
                .iter()
                .filter(|(a, _)| !existing.iter().any(|r| r.appointment_id == *a))
                .copied()
                .collect();
            let tx = db.begin().await.unwrap();
            let now = Utc::now();
            match rng.u8(0..10) {
                0..=3 if !unreviewed.is_empty() => {
                    let (appointment, provider) = unreviewed[rng.usize(..unreviewed.len())];
                    let input = review::CreateReview { appointment_id: appointment, rating: rng.i32(1..=5), comment: None };
                    let status = statuses[rng.usize(..2)];
                    ReviewRepo::create(&tx, scope, input, client, provider, status).await.unwrap();
                    creates += 1;
                }
                0..=7 if !reviews.is_empty() => {
                    let id = reviews[rng.usize(..reviews.len())];
                    let to = statuses[1 + rng.usize(..2)];
                    ReviewRepo::moderate(&tx, scope, id, to, client, now).await.unwrap();
                    moderations += 1;
                }
                _ if !reviews.is_empty() => {
                    let id = reviews[rng.usize(..reviews.len())];
                    ReviewRepo::delete(&tx, scope, id, now).await.unwrap();
                    deletes += 1;
                }
                _ => {}
            }
            // Half of the steps roll back: the counters must roll back with them.
            if rng.bool() {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            for (provider, _) in &providers {
                let aggregate = ReviewRepo::rating_aggregate(db.conn(), scope, *provider).await.unwrap();
                assert_eq!(counters(db, scope, *provider).await, aggregate, "step {step}");
            }
        }
        assert!(creates > 10 && moderations > 10 && deletes > 5, "{creates} {moderations} {deletes}");
    }
}
