//! Appointments: free slots from the stored calendar, booking (and double booking
//! under concurrency), the status state machine, rescheduling and lists.

use std::sync::Arc;

use agenda_entity::enums::{AppointmentStatus, UserRole};
use agenda_entity::{availability, provider_break, provider_settings, service};
use agenda_storage::repo::appointments::{
    ActingUser, AppointmentQuery, AppointmentRepo, Booking, OVERLAP_CONSTRAINT, Offering,
};
use agenda_storage::repo::resource::Repo;
use agenda_storage::{ConflictKind, Db, StorageError, TenantScope};
use agenda_testkit::both_engines;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use sea_orm::Set;
use serde_json::json;
use uuid::Uuid;

use crate::connection::{create_user, seed_org};

/// An organization in America/Sao_Paulo (UTC−3) with one provider working every day
/// 09:00–18:00 with a 12:00–13:00 lunch break, 30-minute steps, a 15-minute buffer and
/// no lead time; a 60-minute service at 50.00; two clients.
struct Calendar {
    scope: TenantScope,
    provider: ActingUser,
    client: ActingUser,
    other_client: ActingUser,
    service: Uuid,
}

impl Calendar {
    async fn new(db: &Db) -> Calendar {
        let scope = TenantScope::new(seed_org(db).await);
        let conn = db.conn();
        let user =
            |email: &'static str| async move { create_user(conn, scope, email).await.unwrap().id };
        let provider = user("provider@example.com").await;
        let client = user("client@example.com").await;
        let other_client = user("other@example.com").await;
        let input = |v: serde_json::Value| v;
        Repo::<provider_settings::Entity>::create(
            conn,
            scope,
            serde_json::from_value(input(json!({
                "business_name": "Studio", "accepted_payment_methods": ["pix"],
                "buffer_minutes": 15, "slot_step_minutes": 30, "min_lead_minutes": 0
            })))
            .unwrap(),
            |row| row.provider_id = Set(provider),
        )
        .await
        .unwrap();
        for weekday in 1..=7 {
            Repo::<availability::Entity>::create(
                conn,
                scope,
                serde_json::from_value(json!({"kind": "weekly", "weekday": weekday, "start_time": "09:00", "end_time": "18:00"})).unwrap(),
                |row| row.provider_id = Set(provider),
            )
            .await
            .unwrap();
            Repo::<provider_break::Entity>::create(
                conn,
                scope,
                serde_json::from_value(json!({"kind": "weekly", "weekday": weekday, "start_time": "12:00", "end_time": "13:00", "label": "lunch"})).unwrap(),
                |row| row.provider_id = Set(provider),
            )
            .await
            .unwrap();
        }
        let service = Repo::<service::Entity>::create(
            conn,
            scope,
            serde_json::from_value(
                json!({"name": "Haircut", "duration_minutes": 60, "price_cents": 5000}),
            )
            .unwrap(),
            |row| row.provider_id = Set(provider),
        )
        .await
        .unwrap()
        .id;
        let acting = |id| ActingUser {
            id,
            role: UserRole::Client,
        };
        Calendar {
            scope,
            provider: ActingUser {
                id: provider,
                role: UserRole::Provider,
            },
            client: acting(client),
            other_client: acting(other_client),
            service,
        }
    }

    fn booking(&self, client: ActingUser, start: DateTime<Utc>) -> Booking {
        Booking {
            client_id: client.id,
            offering: Offering::Service(self.service),
            start_at: start,
            notes: None,
            payment_method: None,
            address_id: None,
            booked_by: client.id,
            coupon_code: None,
        }
    }

    async fn book(
        &self,
        db: &Db,
        client: ActingUser,
        start: DateTime<Utc>,
    ) -> Result<agenda_entity::appointment::Model, StorageError> {
        let tx = db.begin().await?;
        let booked =
            AppointmentRepo::book(&tx, self.scope, self.booking(client, start), now()).await?;
        tx.commit().await?;
        Ok(booked)
    }

    async fn transition(
        &self,
        db: &Db,
        id: Uuid,
        to: AppointmentStatus,
        by: ActingUser,
    ) -> Result<agenda_entity::appointment::Model, StorageError> {
        let tx = db.begin().await?;
        let done =
            AppointmentRepo::transition(&tx, self.scope, id, to, by, Some("because".into()), now())
                .await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn reschedule(
        &self,
        db: &Db,
        id: Uuid,
        start: DateTime<Utc>,
        by: ActingUser,
    ) -> Result<agenda_entity::appointment::Model, StorageError> {
        let tx = db.begin().await?;
        let done = AppointmentRepo::reschedule(&tx, self.scope, id, start, by, now()).await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn slots(&self, db: &Db) -> Vec<String> {
        AppointmentRepo::free_slots(
            db.conn(),
            None,
            self.scope,
            None,
            Offering::Service(self.service),
            day(),
            day(),
            now(),
        )
        .await
        .unwrap()
        .slots
        .iter()
        .map(|s| local(s.start))
        .collect()
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 2).unwrap()
}

/// 2026-12-02 at a local (UTC−3) time.
fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, hour + 3, minute, 0)
        .unwrap()
}

fn local(instant: DateTime<Utc>) -> String {
    instant
        .with_timezone(&chrono_tz::America::Sao_Paulo)
        .format("%H:%M")
        .to_string()
}

fn is_overlap(err: &StorageError) -> bool {
    matches!(err, StorageError::Conflict { kind: ConflictKind::Exclusion, constraint: Some(c) } if c == OVERLAP_CONSTRAINT)
}

const ALL_DAY: [&str; 13] = [
    "09:00", "09:30", "10:00", "10:30", "13:00", "13:30", "14:00", "14:30", "15:00", "15:30",
    "16:00", "16:30", "17:00",
];

both_engines! {
    async fn free_slots_follow_the_stored_calendar(t: TestDb) {
        let c = Calendar::new(&t.db).await;
        // 60 minutes + 15 of buffer may not touch lunch: 10:30 is the last morning start.
        assert_eq!(c.slots(&t.db).await, ALL_DAY);
        c.book(&t.db, c.client, at(10, 0)).await.unwrap();
        // [10:00, 11:15) is taken: 09:00 and 09:30 would run into it with their buffer.
        assert_eq!(c.slots(&t.db).await, &ALL_DAY[4..]);
    }

    async fn booking_snapshots_the_price_and_writes_history(t: TestDb) {
        let c = Calendar::new(&t.db).await;
        let booked = c.book(&t.db, c.client, at(10, 0)).await.unwrap();
        assert_eq!(booked.status, AppointmentStatus::Pending);
        assert_eq!((booked.price_cents, booked.currency.as_str()), (5000, "BRL"));
        assert_eq!((booked.start_at, booked.end_at), (at(10, 0), at(11, 0)));
        assert_eq!(booked.occupied_until, at(11, 15), "the provider's buffer");
        Repo::<service::Entity>::update(t.conn(), c.scope, c.service, serde_json::from_value(json!({"price_cents": 9900})).unwrap())
            .await
            .unwrap();
        let reread = AppointmentRepo::get(t.conn(), c.scope, booked.id).await.unwrap();
        assert_eq!(reread.price_cents, 5000, "the price at booking time");
        let history = AppointmentRepo::history(t.conn(), c.scope, booked.id).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!((history[0].from_status, history[0].to_status), (None, AppointmentStatus::Pending));
        assert_eq!(history[0].changed_by, Some(c.client.id));
    }

    async fn a_booking_must_fit_a_free_slot(t: TestDb) {
        let c = Calendar::new(&t.db).await;
        c.book(&t.db, c.client, at(10, 0)).await.unwrap();
        for start in [at(10, 0), at(10, 30), at(9, 30)] {
            let err = c.book(&t.db, c.other_client, start).await.unwrap_err();
            assert!(is_overlap(&err), "{start}: {err:?}");
        }
        for start in [at(10, 10), at(12, 0), at(17, 30), at(8, 0)] {
            let err = c.book(&t.db, c.other_client, start).await.unwrap_err();
            assert!(matches!(err, StorageError::Validation { field: "start_at", .. }), "{start}: {err:?}");
        }
        let count = AppointmentRepo::list(t.conn(), c.scope, &AppointmentQuery::default()).await.unwrap().items.len();
        assert_eq!(count, 1, "nothing else was written");
    }

    async fn fifty_bookings_of_one_slot_give_exactly_one(t: TestDb) {
        let c = Arc::new(Calendar::new(&t.db).await);
        let db = t.another_pool(|s| s.max_overflow = 10).await;
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (c, db) = (c.clone(), db.clone());
            tasks.push(tokio::spawn(async move { c.book(&db, c.client, at(14, 0)).await }));
        }
        let (mut booked, mut conflicts, mut other) = (0, 0, Vec::new());
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => booked += 1,
                Err(e) if is_overlap(&e) => conflicts += 1,
                Err(e) => other.push(format!("{e:?}")),
            }
        }
        assert_eq!((booked, conflicts), (1, 49), "unexpected errors: {other:?}");
        let page = AppointmentRepo::list(t.conn(), c.scope, &AppointmentQuery::default()).await.unwrap();
        assert_eq!(page.items.len(), 1);
        db.close().await;
    }

    async fn status_changes_follow_the_state_machine(t: TestDb) {
        let c = Calendar::new(&t.db).await;
        let a = c.book(&t.db, c.client, at(10, 0)).await.unwrap();
        let err = c.transition(&t.db, a.id, AppointmentStatus::Confirmed, c.client).await.unwrap_err();
        assert!(matches!(err, StorageError::Forbidden { code: "forbidden_transition", .. }), "{err:?}");
        let err = c.transition(&t.db, a.id, AppointmentStatus::Completed, c.provider).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidState { code: "illegal_transition", .. }), "{err:?}");
        let stranger = ActingUser { id: c.other_client.id, role: UserRole::Client };
        let err = c.transition(&t.db, a.id, AppointmentStatus::Canceled, stranger).await.unwrap_err();
        assert!(matches!(err, StorageError::Forbidden { .. }), "another client: {err:?}");

        for to in [AppointmentStatus::Confirmed, AppointmentStatus::InProgress, AppointmentStatus::Completed] {
            assert_eq!(c.transition(&t.db, a.id, to, c.provider).await.unwrap().status, to);
        }
        let err = c.transition(&t.db, a.id, AppointmentStatus::Canceled, c.provider).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidState { .. }), "completed is final: {err:?}");
        let history = AppointmentRepo::history(t.conn(), c.scope, a.id).await.unwrap();
        let steps: Vec<_> = history.iter().map(|h| (h.from_status, h.to_status)).collect();
        use AppointmentStatus::*;
        assert_eq!(steps, [(None, Pending), (Some(Pending), Confirmed), (Some(Confirmed), InProgress), (Some(InProgress), Completed)]);

        // Canceling frees the time.
        let b = c.book(&t.db, c.client, at(14, 0)).await.unwrap();
        let canceled = c.transition(&t.db, b.id, Canceled, c.client).await.unwrap();
        assert_eq!((canceled.canceled_by, canceled.canceled_at), (Some(c.client.id), Some(now())));
        assert_eq!(canceled.cancellation_reason.as_deref(), Some("because"));
        c.book(&t.db, c.other_client, at(14, 0)).await.unwrap();
    }

    async fn rescheduling_is_atomic(t: TestDb) {
        let c = Calendar::new(&t.db).await;
        let a = c.book(&t.db, c.client, at(10, 0)).await.unwrap();
        let b = c.book(&t.db, c.other_client, at(15, 0)).await.unwrap();
        // Onto a taken time: refused, and the appointment keeps its time.
        let err = c.reschedule(&t.db, a.id, at(15, 0), c.client).await.unwrap_err();
        assert!(is_overlap(&err), "{err:?}");
        assert_eq!(AppointmentRepo::get(t.conn(), c.scope, a.id).await.unwrap().start_at, at(10, 0));
        // Onto an overlapping time with itself: fine (its own old time does not count).
        let moved = c.reschedule(&t.db, a.id, at(10, 30), c.client).await.unwrap();
        assert_eq!((moved.start_at, moved.occupied_until), (at(10, 30), at(11, 45)));
        let moved = c.reschedule(&t.db, a.id, at(13, 0), c.client).await.unwrap();
        assert_eq!(moved.start_at, at(13, 0));
        // The old time is free again.
        c.book(&t.db, c.other_client, at(10, 0)).await.unwrap();
        let err = c.reschedule(&t.db, b.id, at(10, 10), c.other_client).await.unwrap_err();
        assert!(matches!(err, StorageError::Validation { field: "start_at", .. }));
        c.transition(&t.db, b.id, AppointmentStatus::Canceled, c.other_client).await.unwrap();
        let err = c.reschedule(&t.db, b.id, at(16, 0), c.other_client).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidState { code: "not_reschedulable", .. }), "{err:?}");
        let history = AppointmentRepo::history(t.conn(), c.scope, a.id).await.unwrap();
        assert_eq!(history.len(), 3, "booked and two moves");
        assert!(history[1].reason.as_deref().unwrap().starts_with("rescheduled from"));
    }

    async fn lists_page_by_start_time_and_filter(t: TestDb) {
        let c = Calendar::new(&t.db).await;
        let starts = [at(16, 0), at(9, 0), at(14, 30), at(10, 30), at(13, 0)];
        let mut ids = Vec::new();
        for start in starts {
            ids.push((start, c.book(&t.db, c.client, start).await.unwrap().id));
        }
        ids.sort();
        let mut query = AppointmentQuery { provider_id: Some(c.provider.id), limit: Some(2), ..Default::default() };
        let mut seen = Vec::new();
        loop {
            let page = AppointmentRepo::list(t.conn(), c.scope, &query).await.unwrap();
            seen.extend(page.items.iter().map(|a| (a.start_at, a.id)));
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ids, "start order, no gaps or repeats");
        c.transition(&t.db, ids[0].1, AppointmentStatus::Confirmed, c.provider).await.unwrap();
        let confirmed = AppointmentRepo::list(t.conn(), c.scope, &AppointmentQuery { status: Some(AppointmentStatus::Confirmed), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(confirmed.items.iter().map(|a| a.id).collect::<Vec<_>>(), vec![ids[0].1]);
        let afternoon = AppointmentRepo::list(t.conn(), c.scope, &AppointmentQuery { from: Some(at(13, 0)), to: Some(at(16, 0)), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(afternoon.items.len(), 2, "13:00 and 14:30; 16:00 is excluded");
        let none = AppointmentRepo::list(t.conn(), c.scope, &AppointmentQuery { client_id: Some(c.other_client.id), ..Default::default() })
            .await
            .unwrap();
        assert!(none.items.is_empty());
    }

    async fn another_tenants_appointments_are_unreachable(t: TestDb) {
        let mine = Calendar::new(&t.db).await;
        let theirs = Calendar::new(&t.db).await;
        let their = theirs.book(&t.db, theirs.client, at(10, 0)).await.unwrap();
        assert!(matches!(AppointmentRepo::get(t.conn(), mine.scope, their.id).await, Err(StorageError::NotFound { .. })));
        let tx = t.db.begin().await.unwrap();
        let err = AppointmentRepo::transition(&tx, mine.scope, their.id, AppointmentStatus::Canceled, mine.provider, None, now()).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { .. }));
        drop(tx);
        // Booking their service from my organization: not found.
        let mut booking = mine.booking(mine.client, at(10, 0));
        booking.offering = Offering::Service(theirs.service);
        let tx = t.db.begin().await.unwrap();
        let err = AppointmentRepo::book(&tx, mine.scope, booking, now()).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { entity: "service" }), "{err:?}");
    }
}

both_engines! {
    async fn completing_a_paid_appointment_writes_the_ledger(t: TestDb) {
        use agenda_entity::enums::{PaymentMethod, TransactionKind};
        use agenda_storage::repo::ledger::{EntriesQuery, LedgerRepo};
        let c = Calendar::new(&t.db).await;
        let a = c.book(&t.db, c.client, at(10, 0)).await.unwrap();
        let tx = t.db.begin().await.unwrap();
        let err = AppointmentRepo::mark_paid(&tx, c.scope, a.id, PaymentMethod::Pix, c.client).await.unwrap_err();
        assert!(matches!(err, StorageError::Forbidden { .. }), "{err:?}");
        AppointmentRepo::mark_paid(&tx, c.scope, a.id, PaymentMethod::Pix, c.provider).await.unwrap();
        tx.commit().await.unwrap();
        let entries = |t: &agenda_testkit::TestDb| {
            let scope = c.scope;
            let provider = c.provider.id;
            let db = t.db.clone();
            async move { LedgerRepo::entries(db.conn(), scope, provider, &EntriesQuery::default()).await.unwrap().items }
        };
        assert!(entries(&t).await.is_empty(), "paid but not completed: nothing yet");
        for to in [AppointmentStatus::Confirmed, AppointmentStatus::InProgress, AppointmentStatus::Completed] {
            c.transition(&t.db, a.id, to, c.provider).await.unwrap();
        }
        let written = entries(&t).await;
        let kinds: Vec<_> = written.iter().map(|e| (e.kind, e.amount_cents)).collect();
        // 10% platform fee (the default) of 50.00.
        assert_eq!(kinds, [(TransactionKind::Payment, 5000), (TransactionKind::Commission, -500)]);
        let balance = LedgerRepo::balance(t.conn(), c.scope, c.provider.id).await.unwrap();
        assert_eq!(balance.pending_cents, 4500);
        assert!(LedgerRepo::verify_balance(t.conn(), c.scope, c.provider.id).await.unwrap());
        // Recording again (idempotent) writes nothing.
        let tx = t.db.begin().await.unwrap();
        AppointmentRepo::mark_paid(&tx, c.scope, a.id, PaymentMethod::Pix, c.provider).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(entries(&t).await.len(), 2);
    }
}

both_engines! {
    async fn free_slots_take_a_fixed_number_of_queries(t: TestDb) {
        let c = Calendar::new(&t.db).await;
        for start in [at(10, 0), at(14, 0)] {
            c.book(&t.db, c.client, start).await.unwrap();
        }
        let mut counts = Vec::new();
        for days in [0, 6, 59] {
            let before = t.db.statements_executed();
            let slots = AppointmentRepo::free_slots(
                t.conn(),
                None,
                c.scope,
                None,
                Offering::Service(c.service),
                day(),
                day() + chrono::Duration::days(days),
                now(),
            )
            .await
            .unwrap()
            .slots;
            assert!(!slots.is_empty());
            counts.push(t.db.statements_executed() - before);
        }
        assert_eq!(counts[0], counts[1], "{counts:?}");
        assert_eq!(counts[0], counts[2], "one day or sixty: {counts:?}");
        assert!((5..=8).contains(&counts[0]), "{counts:?}");
    }
}
