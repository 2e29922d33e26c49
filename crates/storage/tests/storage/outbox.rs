//! The outbox's claim and outcome statements, on both engines and (on PostgreSQL)
//! as the application role under row-level security: what is due, leases, a worker
//! whose lease passed to another, releases, counts, and concurrent claims.

use std::collections::BTreeSet;
use std::sync::Arc;

use agenda_entity::enums::{Locale, MessageKind, OutboxStatus};
use agenda_entity::outbox_message;
use agenda_storage::repo::outbox::{Claimed, NewMessage, OutboxRepo, Outcome};
use agenda_storage::{Db, TenantScope};
use agenda_testkit::both_engines;
use chrono::{DateTime, Duration, Utc};
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::connection::seed_org;

fn message(n: usize) -> NewMessage {
    let id = agenda_entity::new_id();
    NewMessage {
        id,
        recipient_user_id: None,
        kind: MessageKind::PasswordReset,
        locale: Locale::En,
        to_address: format!("person{n}@example.com"),
        to_name: None,
        subject: format!("message {n}"),
        body_text: "text".into(),
        body_html: "<p>html</p>".into(),
        message_id: format!("<{id}@agenda.test>"),
    }
}

async fn enqueue(db: &Db, scope: TenantScope, n: usize, at: DateTime<Utc>) -> Uuid {
    OutboxRepo::enqueue(db.conn(), scope, message(n), at)
        .await
        .unwrap()
        .id
}

async fn row(db: &Db, id: Uuid) -> outbox_message::Model {
    outbox_message::Entity::find_by_id(id)
        .one(db.conn())
        .await
        .unwrap()
        .unwrap()
}

async fn record(db: &Db, c: Claimed, worker: &str, outcome: Outcome, at: DateTime<Utc>) -> bool {
    let tx = db.begin_in(c.scope).await.unwrap();
    let held = OutboxRepo::record(&tx, c.scope, c.id, worker, outcome, at)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    held
}

both_engines! {
    /// Due messages of every tenant are claimed once, with the attempt counted; the
    /// outcome is recorded only by the worker that holds the claim; an expired lease
    /// is taken over; a release hands the message back uncounted.
    async fn claims_leases_and_outcomes(t: TestDb) {
        let app = t.app_role_pool().await;
        let (a, b) = (TenantScope::new(seed_org(&t.db).await), TenantScope::new(seed_org(&t.db).await));
        let now = agenda_entity::now();
        let first = enqueue(&t.db, a, 1, now).await;
        let second = enqueue(&t.db, b, 2, now).await;
        let later = enqueue(&t.db, a, 3, now + Duration::hours(1)).await;

        let lease = now + Duration::minutes(5);
        let claimed = OutboxRepo::claim(&app, "w1", now, lease, 10).await.unwrap();
        let ids: BTreeSet<Uuid> = claimed.iter().map(|c| c.id).collect();
        assert_eq!(ids, BTreeSet::from([first, second]), "both tenants' due mail, not the later one");
        assert_eq!(claimed.iter().find(|c| c.id == second).unwrap().scope, b);
        assert!(OutboxRepo::claim(&app, "w2", now, lease, 10).await.unwrap().is_empty(), "held by w1");
        let held = row(&t.db, first).await;
        assert_eq!((held.status, held.attempts, held.claimed_by.as_deref()), (OutboxStatus::Sending, 1, Some("w1")));

        // The worker's own tenant transaction reads it (row-level security allows it).
        let c1 = *claimed.iter().find(|c| c.id == first).unwrap();
        let tx = app.read_in(a).await.unwrap();
        assert_eq!(OutboxRepo::get(&tx, a, first).await.unwrap().subject, "message 1");
        assert!(OutboxRepo::get(&tx, a, second).await.is_err(), "another tenant's message is not found");
        tx.commit().await.unwrap();

        // Only the holder records; then it is sent.
        assert!(!record(&app, c1, "w2", Outcome::Sent, now).await, "w2 does not hold it");
        assert!(record(&app, c1, "w1", Outcome::Sent, now).await);
        let sent = row(&t.db, first).await;
        assert_eq!((sent.status, sent.claimed_by, sent.sent_at.is_some()), (OutboxStatus::Sent, None, true));

        // w1 dies holding `second`: after the lease another worker takes it over, and
        // w1 can no longer record anything for it.
        let c2 = *claimed.iter().find(|c| c.id == second).unwrap();
        let after_lease = lease + Duration::seconds(1);
        let taken = OutboxRepo::claim(&app, "w2", after_lease, after_lease + Duration::minutes(5), 10).await.unwrap();
        assert_eq!(taken.iter().map(|c| c.id).collect::<Vec<_>>(), vec![second]);
        assert_eq!(row(&t.db, second).await.attempts, 2);
        assert!(!record(&app, c2, "w1", Outcome::Sent, after_lease).await, "w1's lease passed to w2");
        let error = "451 4.3.0 try again later".to_owned();
        let retry_at = after_lease + Duration::seconds(30);
        assert!(record(&app, taken[0], "w2", Outcome::RetryAt { at: retry_at, error: error.clone() }, after_lease).await);
        let queued = row(&t.db, second).await;
        assert_eq!((queued.status, queued.last_error.as_deref(), queued.next_attempt_at), (OutboxStatus::Queued, Some(error.as_str()), retry_at));

        // Not due before its retry time; a release gives it back with the attempt undone.
        assert!(OutboxRepo::claim(&app, "w3", after_lease, after_lease + Duration::minutes(5), 10).await.unwrap().is_empty());
        let again = OutboxRepo::claim(&app, "w3", retry_at, retry_at + Duration::minutes(5), 1).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(row(&t.db, second).await.attempts, 3);
        assert!(record(&app, again[0], "w3", Outcome::Released, retry_at).await);
        let released = row(&t.db, second).await;
        assert_eq!((released.status, released.attempts), (OutboxStatus::Queued, 2));

        // Dead, and counted (as the application role too).
        let dead = OutboxRepo::claim(&app, "w3", retry_at, retry_at + Duration::minutes(5), 1).await.unwrap();
        assert!(record(&app, dead[0], "w3", Outcome::Dead { error: "550 5.1.1 no\nsuch user".into() }, retry_at).await);
        assert_eq!(row(&t.db, second).await.last_error.as_deref(), Some("550 5.1.1 no such user"), "one line");
        let counts = OutboxRepo::counts(app.conn()).await.unwrap();
        let of = |s| counts.iter().find(|c| c.status == s).map_or(0, |c| c.messages);
        assert_eq!((of(OutboxStatus::Queued), of(OutboxStatus::Sending), of(OutboxStatus::Dead)), (1, 0, 1));

        // Retention: finished messages created before the cut go, queued ones stay.
        let cut = agenda_entity::now() + Duration::seconds(1);
        assert_eq!(OutboxRepo::purge_finished(t.conn(), now).await.unwrap(), 0, "none older than that");
        assert_eq!(OutboxRepo::purge_finished(t.conn(), cut).await.unwrap(), 2, "the sent and the dead one");
        let left: Vec<Uuid> = outbox_message::Entity::find().all(t.conn()).await.unwrap().iter().map(|r| r.id).collect();
        assert_eq!(left, vec![later]);
    }

    /// Eight workers claiming 60 messages at once, in batches of 4, claim each
    /// exactly once.
    async fn concurrent_claims_never_overlap(t: TestDb) {
        let scope = TenantScope::new(seed_org(&t.db).await);
        let now = agenda_entity::now();
        for n in 0..60 {
            enqueue(&t.db, scope, n, now).await;
        }
        let app = t.app_role_pool().await;
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = Vec::new();
        for w in 0..8 {
            let (app, barrier) = (app.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let worker = format!("w{w}");
                let mut mine = Vec::new();
                loop {
                    let claimed = OutboxRepo::claim(&app, &worker, now, now + Duration::minutes(5), 4).await.unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.into_iter().map(|c| c.id));
                }
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        let distinct: BTreeSet<Uuid> = all.iter().copied().collect();
        assert_eq!((all.len(), distinct.len()), (60, 60), "each message claimed exactly once");
    }
}
