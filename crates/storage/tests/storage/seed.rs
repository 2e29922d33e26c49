//! The demo seed (`agenda seed demo`): idempotent, deterministic, and consistent with
//! the rules the schema cannot check on SQLite (no overlapping appointments, balances
//! equal to the ledger).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use agenda_entity::enums::{AppointmentStatus, BalanceBucket, ModerationStatus, TransactionKind};
use agenda_entity::organization::CreateOrganization;
use agenda_entity::{
    appointment, appointment_status_history, catalog, organization, provider_balance,
    provider_settings, provider_transaction, review, user,
};
use agenda_storage::StorageError;
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::seed::{self, DEMO_ID_EPOCH_MS, DEMO_ORGANIZATION_ID, SeedReport};
use agenda_testkit::{TestDb, both_engines};
use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, EntityTrait, Iterable, QueryOrder, Statement};
use uuid::Uuid;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZGVtbw$test-only-not-a-real-hash";

/// A Sunday: nobody works, so the in-progress appointment moves to Saturday.
fn sunday() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()
}

/// Every row of every table, by table: (id, row count).
async fn all_ids(conn: &impl ConnectionTrait) -> BTreeMap<&'static str, BTreeSet<Uuid>> {
    let mut out = BTreeMap::new();
    for table in catalog::tables() {
        let sql = format!("SELECT id FROM {}", table.name);
        let rows = conn
            .query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
            .await
            .unwrap();
        let ids: BTreeSet<Uuid> = rows
            .iter()
            .map(|r| r.try_get::<Uuid>("", "id").unwrap())
            .collect();
        assert_eq!(ids.len(), rows.len(), "{}: duplicate ids", table.name);
        out.insert(table.name, ids);
    }
    out
}

fn assert_created(report: &SeedReport) {
    assert!(report.created);
    assert_eq!(report.organization_id, DEMO_ORGANIZATION_ID);
    assert_eq!(report.slug, "demo");
    for (table, rows) in &report.tables {
        assert!(*rows > 0, "the seed wrote no rows to {table}");
    }
    assert_eq!(report.rows("organizations"), Some(1));
    assert_eq!(
        report.rows("users"),
        Some(18),
        "admin, support, 4 providers, 12 clients"
    );
}

both_engines! {
    async fn a_second_run_writes_nothing(t: TestDb) {
        let first = seed::demo(&t.db, HASH).await.unwrap();
        assert_created(&first);
        let before = all_ids(t.conn()).await;
        for (table, rows) in &first.tables {
            assert_eq!(before[table].len() as u64, *rows, "{table}: the report counts what is there");
        }

        let second = seed::demo(&t.db, HASH).await.unwrap();
        assert!(!second.created, "the demo organization exists: nothing is written");
        assert_eq!(second.tables, first.tables, "the second report counts the same rows");
        assert_eq!(all_ids(t.conn()).await, before, "no table changed");

        let org = organization::Entity::find_by_id(DEMO_ORGANIZATION_ID).one(t.conn()).await.unwrap().unwrap();
        assert_eq!((org.slug.as_str(), org.time_zone.as_str(), org.currency.as_str()), ("demo", "America/Sao_Paulo", "BRL"));
        let users = user::Entity::find().all(t.conn()).await.unwrap();
        assert!(users.iter().all(|u| u.password_hash == HASH && u.organization_id == DEMO_ORGANIZATION_ID));
        assert!(users.iter().any(|u| u.email == seed::DEMO_ADMIN_EMAIL));
    }

    async fn ids_are_uuidv7_and_the_same_on_every_run(t: TestDb) {
        let report = seed::demo_on(&t.db, HASH, sunday()).await.unwrap();
        assert_created(&report);
        let ids = all_ids(t.conn()).await;
        assert!(ids["organizations"].contains(&DEMO_ORGANIZATION_ID));
        for (table, set) in &ids {
            for id in set {
                assert_eq!(id.get_version_num(), 7, "{table} {id}");
                let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
                assert_eq!(secs * 1000 + u64::from(nanos) / 1_000_000, DEMO_ID_EPOCH_MS, "{table} {id}");
            }
        }
        // A fresh database of the same engine seeded for the same day gets the same ids.
        let other = TestDb::for_engine(t.engine()).await.expect("a second database");
        seed::demo_on(&other.db, HASH, sunday()).await.unwrap();
        assert_eq!(all_ids(other.conn()).await, ids);
        // Another day moves the appointments in time, not their ids.
        let later = TestDb::for_engine(t.engine()).await.expect("a third database");
        seed::demo_on(&later.db, HASH, sunday() + chrono::Duration::days(3)).await.unwrap();
        assert_eq!(all_ids(later.conn()).await["appointments"], ids["appointments"]);
    }

    async fn every_status_appears_and_active_appointments_never_overlap(t: TestDb) {
        for today in [None, Some(sunday())] {
            let db = TestDb::for_engine(t.engine()).await.unwrap();
            match today {
                None => seed::demo(&db.db, HASH).await.unwrap(),
                Some(day) => seed::demo_on(&db.db, HASH, day).await.unwrap(),
            };
            let appointments = appointment::Entity::find()
                .order_by_asc(appointment::Column::StartAt)
                .all(db.conn())
                .await
                .unwrap();
            let statuses: BTreeSet<&str> = appointments.iter().map(|a| a.status.as_str()).collect();
            let all: BTreeSet<&str> = AppointmentStatus::iter().map(|s| s.as_str()).collect();
            assert_eq!(statuses, all, "seeded for {today:?}");

            let mut by_provider: HashMap<Uuid, Vec<&appointment::Model>> = HashMap::new();
            for a in &appointments {
                assert!(a.start_at < a.end_at && a.end_at <= a.occupied_until);
                assert!(a.service_id.is_some() != a.provider_service_id.is_some());
                assert!(0 <= a.discount_cents && a.discount_cents <= a.price_cents);
                if a.status.is_active() {
                    by_provider.entry(a.provider_id).or_default().push(a);
                }
            }
            assert_eq!(by_provider.len(), 4, "every provider has appointments");
            for list in by_provider.values() {
                for pair in list.windows(2) {
                    assert!(
                        pair[1].start_at >= pair[0].occupied_until,
                        "{} overlaps {}",
                        pair[0].id,
                        pair[1].id
                    );
                }
            }

            // The history replays to the current status, one step at a time.
            let history = appointment_status_history::Entity::find()
                .order_by_asc(appointment_status_history::Column::CreatedAt)
                .all(db.conn())
                .await
                .unwrap();
            let mut chains: HashMap<Uuid, Vec<&appointment_status_history::Model>> = HashMap::new();
            for h in &history {
                chains.entry(h.appointment_id).or_default().push(h);
            }
            assert_eq!(chains.len(), appointments.len(), "every appointment has a history");
            for a in &appointments {
                let chain = &chains[&a.id];
                assert_eq!(chain[0].from_status, None);
                for pair in chain.windows(2) {
                    assert_eq!(pair[1].from_status, Some(pair[0].to_status), "{}", a.id);
                }
                assert_eq!(chain.last().unwrap().to_status, a.status, "{}", a.id);
                assert_eq!(a.canceled_at.is_some(), a.status == AppointmentStatus::Canceled);
            }
        }
    }

    async fn balances_equal_the_ledger_and_ratings_the_reviews(t: TestDb) {
        seed::demo(&t.db, HASH).await.unwrap();
        let entries = provider_transaction::Entity::find().all(t.conn()).await.unwrap();
        let balances = provider_balance::Entity::find().all(t.conn()).await.unwrap();
        assert_eq!(balances.len(), 4);
        let mut total_available = 0;
        for balance in &balances {
            let sum = |bucket| -> i64 {
                entries
                    .iter()
                    .filter(|e| e.provider_id == balance.provider_id && e.bucket == bucket)
                    .map(|e| e.amount_cents)
                    .sum()
            };
            assert_eq!(balance.available_cents, sum(BalanceBucket::Available));
            assert_eq!(balance.pending_cents, sum(BalanceBucket::Pending));
            total_available += balance.available_cents;
        }
        assert!(total_available > 0);
        assert!(entries.iter().any(|e| e.kind == TransactionKind::Withdrawal && e.amount_cents < 0));

        // Each completed appointment was paid through the platform: one payment
        // credit and one commission debit, never more than the payment.
        let appointments = appointment::Entity::find().all(t.conn()).await.unwrap();
        for a in &appointments {
            let mine: Vec<_> = entries.iter().filter(|e| e.appointment_id == Some(a.id)).collect();
            if a.status == AppointmentStatus::Completed {
                let payment = mine.iter().find(|e| e.kind == TransactionKind::Payment).unwrap();
                let fee = mine.iter().find(|e| e.kind == TransactionKind::Commission).unwrap();
                assert_eq!(mine.len(), 2);
                assert_eq!(payment.amount_cents, a.price_cents - a.discount_cents);
                assert!(fee.amount_cents < 0 && -fee.amount_cents < payment.amount_cents);
            } else {
                assert!(mine.is_empty(), "{:?} appointment {} has ledger entries", a.status, a.id);
            }
        }

        // Reviews only of completed appointments; rating aggregates from approved ones.
        let reviews = review::Entity::find().all(t.conn()).await.unwrap();
        assert!(!reviews.is_empty());
        let status: HashMap<Uuid, AppointmentStatus> = appointments.iter().map(|a| (a.id, a.status)).collect();
        for r in &reviews {
            assert_eq!(status[&r.appointment_id], AppointmentStatus::Completed);
            assert!((1..=5).contains(&r.rating));
        }
        for settings in provider_settings::Entity::find().all(t.conn()).await.unwrap() {
            let approved = reviews
                .iter()
                .filter(|r| r.provider_id == settings.provider_id && r.moderation_status == ModerationStatus::Approved);
            assert_eq!(i64::from(settings.rating_count), approved.clone().count() as i64);
            assert_eq!(settings.rating_total, approved.map(|r| i64::from(r.rating)).sum::<i64>());
        }
    }

    async fn refuses_when_another_organization_holds_the_slug(t: TestDb) {
        OrganizationRepo::create(
            t.conn(),
            CreateOrganization {
                slug: "demo".into(),
                name: "Not the demo".into(),
                time_zone: "UTC".into(),
                currency: "EUR".into(),
                locale: None,
            },
        )
        .await
        .unwrap();
        let err = seed::demo(&t.db, HASH).await.unwrap_err();
        assert!(matches!(err, StorageError::Validation { field: "slug", .. }), "{err:?}");
        assert_eq!(user::Entity::find().all(t.conn()).await.unwrap().len(), 0, "nothing written");
    }
}

/// SQLite and PostgreSQL get the same rows' ids for the same day.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_engines_get_the_same_ids() {
    let Some(postgres) = TestDb::postgres().await else {
        return;
    };
    let sqlite = TestDb::sqlite().await;
    seed::demo_on(&sqlite.db, HASH, sunday()).await.unwrap();
    seed::demo_on(&postgres.db, HASH, sunday()).await.unwrap();
    let ids = all_ids(sqlite.conn()).await;
    assert!(ids["appointments"].len() > 100);
    assert_eq!(all_ids(postgres.conn()).await, ids);
}
