//! The marketplace ledger: payments and commissions by the fee rules, releases after
//! the payout delay, withdrawals that can never overdraw (also concurrently), and the
//! invariant "the balance equals the sums of the ledger" — on both engines.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration as StdDuration, Instant};

use agenda_entity::enums::{
    AppointmentStatus, BalanceBucket, PaymentStatus, PayoutMethod, PayoutSchedule, TransactionKind,
    WithdrawalStatus,
};
use agenda_entity::payment_settings::CreatePaymentSettings;
use agenda_entity::{
    appointment, payment_settings, payment_withdrawal, provider_balance, provider_service_fee,
    provider_transaction, service,
};
use agenda_storage::fees::{FeeRules, PayoutRules, platform_fee};
use agenda_storage::repo::ledger::{EntriesQuery, Entry, LedgerRepo};
use agenda_storage::{Db, StorageError, TenantScope};
use agenda_testkit::both_engines;
use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, Statement,
};
use uuid::Uuid;

use crate::connection::{create_user, seed_org};

/// An organization with fee and payout settings, a provider, a client and a service.
struct Market {
    scope: TenantScope,
    provider: Uuid,
    client: Uuid,
    service: Uuid,
    /// Appointments get consecutive hours, so they never overlap (PostgreSQL's
    /// exclusion constraint would refuse that).
    slot: AtomicI64,
}

/// The fee and payout settings of a test organization.
#[derive(Clone, Copy)]
struct Settings {
    bp: i32,
    fixed: i64,
    min: i64,
    max: Option<i64>,
    delay_days: i32,
    minimum_withdrawal: i64,
}

const SETTINGS: Settings = Settings {
    bp: 1_000,
    fixed: 50,
    min: 100,
    max: Some(5_000),
    delay_days: 2,
    minimum_withdrawal: 1_000,
};

/// No fee at all: every payment nets its full amount.
const FREE: Settings = Settings {
    bp: 0,
    fixed: 0,
    min: 0,
    max: None,
    delay_days: 2,
    minimum_withdrawal: 1_000,
};

impl Market {
    async fn new(db: &Db, settings: Option<Settings>) -> Market {
        let scope = TenantScope::new(seed_org(db).await);
        let provider = create_user(db.conn(), scope, "provider@example.com")
            .await
            .unwrap()
            .id;
        let client = create_user(db.conn(), scope, "client@example.com")
            .await
            .unwrap()
            .id;
        let service = service::ActiveModel {
            organization_id: Set(scope.organization_id()),
            provider_id: Set(provider),
            category_id: Set(None),
            template_id: Set(None),
            name: Set("Haircut".into()),
            description: Set(None),
            duration_minutes: Set(60),
            price_cents: Set(5_000),
            is_active: Set(true),
            ..Default::default()
        }
        .insert(db.conn())
        .await
        .unwrap()
        .id;
        if let Some(s) = settings {
            payment_settings::ActiveModel {
                organization_id: Set(scope.organization_id()),
                fee_percentage_bp: Set(s.bp),
                fee_fixed_cents: Set(s.fixed),
                fee_min_cents: Set(s.min),
                fee_max_cents: Set(s.max),
                payout_schedule: Set(PayoutSchedule::Weekly),
                payout_delay_days: Set(s.delay_days),
                minimum_withdrawal_cents: Set(s.minimum_withdrawal),
                ..Default::default()
            }
            .insert(db.conn())
            .await
            .unwrap();
        }
        Market {
            scope,
            provider,
            client,
            service,
            slot: AtomicI64::new(0),
        }
    }

    /// Another provider of the same organization.
    async fn another_provider(&self, db: &Db, email: &str) -> Uuid {
        create_user(db.conn(), self.scope, email).await.unwrap().id
    }

    /// A completed, paid appointment of `provider`.
    async fn completed(
        &self,
        conn: &impl ConnectionTrait,
        provider: Uuid,
        price: i64,
        discount: i64,
    ) -> appointment::Model {
        let n = self.slot.fetch_add(1, Ordering::Relaxed);
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap() + Duration::hours(n);
        let end = start + Duration::minutes(60);
        appointment::ActiveModel {
            organization_id: Set(self.scope.organization_id()),
            client_id: Set(self.client),
            provider_id: Set(provider),
            service_id: Set(Some(self.service)),
            provider_service_id: Set(None),
            promotion_id: Set(None),
            address_id: Set(None),
            start_at: Set(start),
            end_at: Set(end),
            occupied_until: Set(end),
            status: Set(AppointmentStatus::Completed),
            price_cents: Set(price),
            discount_cents: Set(discount),
            currency: Set("BRL".into()),
            payment_method: Set(Some(agenda_entity::enums::PaymentMethod::Card)),
            payment_status: Set(PaymentStatus::Paid),
            notes: Set(None),
            provider_notes: Set(None),
            cancellation_reason: Set(None),
            canceled_at: Set(None),
            canceled_by: Set(None),
            ..Default::default()
        }
        .insert(conn)
        .await
        .unwrap()
    }

    /// Books a completed appointment and records its payment in one transaction.
    async fn pay(
        &self,
        db: &Db,
        provider: Uuid,
        price: i64,
        discount: i64,
    ) -> (Entry, Option<Entry>) {
        let tx = db.begin().await.unwrap();
        let a = self.completed(&tx, provider, price, discount).await;
        let recorded = LedgerRepo::record_payment(&tx, self.scope, &a, price - discount)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        recorded
    }

    async fn release(&self, db: &Db, provider: Uuid, now: DateTime<Utc>) -> i64 {
        let tx = db.begin().await.unwrap();
        let moved = LedgerRepo::release_due(&tx, self.scope, provider, now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        moved
    }

    /// Pays `net` (no fee under [`FREE`]) and releases everything: `net` available.
    async fn fund(&self, db: &Db, provider: Uuid, net: i64) {
        self.pay(db, provider, net, 0).await;
        let moved = self.release(db, provider, far_future()).await;
        assert!(moved >= net);
    }

    async fn withdraw(
        &self,
        db: &Db,
        provider: Uuid,
        amount: i64,
    ) -> Result<payment_withdrawal::Model, StorageError> {
        let tx = db.begin().await.unwrap();
        let result =
            LedgerRepo::request_withdrawal(&tx, self.scope, provider, amount, PayoutMethod::Pix)
                .await;
        if result.is_ok() {
            tx.commit().await.unwrap();
        }
        result
    }

    async fn balance(&self, db: &Db, provider: Uuid) -> (i64, i64) {
        let b = LedgerRepo::balance(db.conn(), self.scope, provider)
            .await
            .unwrap();
        (b.available_cents, b.pending_cents)
    }

    /// The balance row equals the ledger sums (computed here with plain SQL, and by
    /// `verify_balance`), and `pending` is not negative (`available` is while the
    /// provider is in debt).
    async fn assert_consistent(&self, db: &Db, provider: Uuid) {
        let (available, pending) = self.balance(db, provider).await;
        assert!(pending >= 0, "{available} / {pending}");
        assert_eq!(
            (available, pending),
            sql_sums(db.conn(), provider).await,
            "balance row vs ledger sums"
        );
        assert!(
            LedgerRepo::verify_balance(db.conn(), self.scope, provider)
                .await
                .unwrap()
        );
    }
}

fn far_future() -> DateTime<Utc> {
    Utc::now() + Duration::days(365)
}

/// (available, pending) sums of the provider's ledger, with plain SQL.
async fn sql_sums(conn: &impl ConnectionTrait, provider: Uuid) -> (i64, i64) {
    let backend = conn.get_database_backend();
    let p = match backend {
        sea_orm::DbBackend::Postgres => "$1",
        _ => "?",
    };
    let sql = format!(
        "SELECT \
           CAST(COALESCE(SUM(CASE WHEN bucket = 'available' THEN amount_cents END), 0) AS BIGINT), \
           CAST(COALESCE(SUM(CASE WHEN bucket = 'pending' THEN amount_cents END), 0) AS BIGINT) \
         FROM provider_transactions WHERE provider_id = {p}"
    );
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [provider.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get_by_index::<i64>(0).unwrap(),
        row.try_get_by_index::<i64>(1).unwrap(),
    )
}

async fn count(conn: &impl ConnectionTrait, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

fn is_amount_refusal(err: &StorageError) -> bool {
    matches!(
        err,
        StorageError::Validation {
            field: "amount_cents",
            ..
        }
    )
}

fn is_not_open(err: &StorageError) -> bool {
    matches!(
        err,
        StorageError::InvalidState {
            code: "withdrawal_not_open",
            ..
        }
    )
}

fn is_not_found(err: &StorageError) -> bool {
    matches!(err, StorageError::NotFound { .. })
}

both_engines! {
    async fn payment_and_commission_follow_the_fee_rules(t: TestDb) {
        let m = Market::new(&t.db, Some(SETTINGS)).await;
        // Reduced rate: 8 %, at most 300; fixed and minimum inherited.
        let reduced = m.another_provider(&t.db, "reduced@example.com").await;
        provider_service_fee::ActiveModel {
            organization_id: Set(m.scope.organization_id()),
            provider_id: Set(reduced),
            fee_percentage_bp: Set(Some(800)),
            fee_fixed_cents: Set(None),
            fee_min_cents: Set(None),
            fee_max_cents: Set(Some(300)),
            reason: Set(Some("launch partner".into())),
            ..Default::default()
        }
        .insert(t.conn())
        .await
        .unwrap();

        // (provider, price, discount, expected fee)
        let cases = [
            (m.provider, 10_050, 50, 1_050), // 10 % of 10,000 + 50
            (m.provider, 300, 0, 100),       // 30 + 50 raised to the minimum
            (m.provider, 100_000, 0, 5_000), // 10,000 + 50 lowered to the maximum
            (m.provider, 1_005, 0, 151),     // 100.5 rounds half up to 101, + 50
            (m.provider, 80, 0, 80),         // the minimum, but never more than the amount
            (reduced, 10_000, 0, 300),       // 800 + 50 lowered to the override's maximum
            (reduced, 1_000, 0, 130),        // 80 + 50
            (reduced, 500, 0, 100),          // 40 + 50 raised to the inherited minimum
        ];
        let mut pending = std::collections::HashMap::<Uuid, i64>::new();
        for (provider, price, discount, fee) in cases {
            let (payment, commission) = m.pay(&t.db, provider, price, discount).await;
            let net = price - discount;
            assert_eq!(payment.kind, TransactionKind::Payment);
            assert_eq!(payment.bucket, BalanceBucket::Pending);
            assert_eq!(payment.amount_cents, net);
            assert_eq!(payment.currency, "BRL");
            let appointment = payment.appointment_id.unwrap();
            assert_eq!(payment.external_ref.as_deref(), Some(appointment.to_string().as_str()));
            let commission = commission.expect("a non-zero fee has a commission entry");
            assert_eq!(commission.kind, TransactionKind::Commission);
            assert_eq!(commission.bucket, BalanceBucket::Pending);
            assert_eq!(commission.amount_cents, -fee, "price {price}, discount {discount}");
            assert_eq!(commission.appointment_id, Some(appointment));
            *pending.entry(provider).or_default() += net - fee;
            assert_eq!(m.balance(&t.db, provider).await, (0, pending[&provider]));
        }
        for provider in [m.provider, reduced] {
            m.assert_consistent(&t.db, provider).await;
        }
        // The loader agrees with what was charged.
        let rules = agenda_storage::fees::fee_rules(t.conn(), m.scope, reduced).await.unwrap();
        assert_eq!(rules, FeeRules { percentage_bp: 800, fixed_cents: 50, min_cents: 100, max_cents: Some(300) });
    }

    async fn an_organization_without_settings_gets_the_defaults(t: TestDb) {
        let m = Market::new(&t.db, None).await;
        let (_, commission) = m.pay(&t.db, m.provider, 12_345, 0).await;
        // 10 % of 12,345 = 1,234.5 -> 1,235.
        assert_eq!(commission.unwrap().amount_cents, -1_235);
        assert_eq!(
            agenda_storage::fees::payout_rules(t.conn(), m.scope).await.unwrap(),
            PayoutRules::DEFAULT
        );
        // The documented defaults are the column defaults of payment_settings.
        let row = CreatePaymentSettings {
            fee_percentage_bp: None,
            fee_fixed_cents: None,
            fee_min_cents: None,
            fee_max_cents: None,
            payout_schedule: None,
            payout_delay_days: None,
            minimum_withdrawal_cents: None,
        }
        .into_active_model(m.scope.organization_id())
        .insert(t.conn())
        .await
        .unwrap();
        assert_eq!(FeeRules::from_settings(Some(&row)), FeeRules::DEFAULT);
        assert_eq!(PayoutRules::from_settings(Some(&row)), PayoutRules::DEFAULT);
        m.assert_consistent(&t.db, m.provider).await;
    }

    async fn recording_a_payment_twice_returns_the_first_entries(t: TestDb) {
        let m = Market::new(&t.db, Some(SETTINGS)).await;
        let a = m.completed(t.conn(), m.provider, 10_000, 0).await;
        let tx = t.begin().await.unwrap();
        let first = LedgerRepo::record_payment(&tx, m.scope, &a, 10_000).await.unwrap();
        tx.commit().await.unwrap();
        let entries = count(t.conn(), "provider_transactions").await;
        let balance = m.balance(&t.db, m.provider).await;

        let tx = t.begin().await.unwrap();
        let second = LedgerRepo::record_payment(&tx, m.scope, &a, 10_000).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(first, second);
        assert_eq!(count(t.conn(), "provider_transactions").await, entries);
        assert_eq!(m.balance(&t.db, m.provider).await, balance);

        // The unique index backs it: a second payment entry with the same reference
        // is a conflict on the named constraint.
        let err = provider_transaction::ActiveModel {
            organization_id: Set(m.scope.organization_id()),
            provider_id: Set(m.provider),
            kind: Set(TransactionKind::Payment),
            bucket: Set(BalanceBucket::Pending),
            amount_cents: Set(10_000),
            currency: Set("BRL".into()),
            appointment_id: Set(Some(a.id)),
            withdrawal_id: Set(None),
            external_ref: Set(Some(a.id.to_string())),
            description: Set(None),
            ..Default::default()
        }
        .insert(t.conn())
        .await
        .map_err(StorageError::from)
        .unwrap_err();
        assert_eq!(
            err.constraint(),
            Some("uq_provider_transactions_provider_id_kind_external_ref"),
            "{err:?}"
        );

        // Only completed, paid appointments, for their exact net amount.
        let tx = t.begin().await.unwrap();
        let err = LedgerRepo::record_payment(&tx, m.scope, &a, 9_999).await.unwrap_err();
        assert!(matches!(err, StorageError::Validation { field: "paid_cents", .. }), "{err:?}");
        let unpaid = m.completed(&tx, m.provider, 5_000, 0).await;
        let mut unpaid_row: appointment::ActiveModel = unpaid.clone().into();
        unpaid_row.payment_status = Set(PaymentStatus::Pending);
        let unpaid = unpaid_row.update(&tx).await.unwrap();
        let err = LedgerRepo::record_payment(&tx, m.scope, &unpaid, 5_000).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidState { code: "appointment_not_paid", .. }), "{err:?}");
        drop(tx);
        m.assert_consistent(&t.db, m.provider).await;
    }

    async fn concurrent_recordings_write_one_payment_and_one_balance(t: TestDb) {
        // The provider has no balance row yet: every task races to create it, and
        // to record the same payment.
        let m = Arc::new(Market::new(&t.db, Some(SETTINGS)).await);
        let a = Arc::new(m.completed(t.conn(), m.provider, 10_000, 0).await);
        let pool = t
            .another_pool(|s| {
                s.max_overflow = 10;
                s.pool_timeout = StdDuration::from_secs(30);
            })
            .await;
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let mut handles = Vec::new();
        for _ in 0..8 {
            let (pool, m, a, barrier) = (pool.clone(), m.clone(), a.clone(), barrier.clone());
            handles.push(tokio::spawn(async move {
                barrier.wait().await;
                let tx = pool.begin().await?;
                let recorded = LedgerRepo::record_payment(&tx, m.scope, &a, 10_000).await?;
                tx.commit().await?;
                Ok::<_, StorageError>(recorded)
            }));
        }
        let mut results = Vec::new();
        for h in handles {
            results.push(h.await.unwrap().unwrap());
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]), "every caller gets the same entries");
        assert_eq!(count(t.conn(), "provider_transactions").await, 2);
        assert_eq!(count(t.conn(), "provider_balances").await, 1);
        assert_eq!(m.balance(&t.db, m.provider).await, (0, 8_950));
        m.assert_consistent(&t.db, m.provider).await;
        pool.close().await;
    }

    async fn release_due_moves_only_payments_past_the_delay(t: TestDb) {
        let m = Market::new(&t.db, Some(SETTINGS)).await;
        let (old, _) = m.pay(&t.db, m.provider, 10_000, 0).await; // fee 1,050
        tokio::time::sleep(StdDuration::from_millis(50)).await;
        let (new, _) = m.pay(&t.db, m.provider, 5_000, 0).await; // fee 550
        assert!(new.created_at > old.created_at + Duration::milliseconds(40));
        assert_eq!(m.balance(&t.db, m.provider).await, (0, 8_950 + 4_450));

        // Before either delay has passed: nothing.
        assert_eq!(m.release(&t.db, m.provider, Utc::now()).await, 0);
        // The first payment's delay has passed, the second's not yet.
        let now = old.created_at + Duration::days(2) + Duration::milliseconds(10);
        assert_eq!(m.release(&t.db, m.provider, now).await, 8_950);
        assert_eq!(m.balance(&t.db, m.provider).await, (8_950, 4_450));
        // Twice in a row moves nothing more.
        assert_eq!(m.release(&t.db, m.provider, now).await, 0);
        assert_eq!(m.balance(&t.db, m.provider).await, (8_950, 4_450));
        m.assert_consistent(&t.db, m.provider).await;
        // Later, the second one.
        assert_eq!(m.release(&t.db, m.provider, far_future()).await, 4_450);
        assert_eq!(m.release(&t.db, m.provider, far_future()).await, 0);
        assert_eq!(m.balance(&t.db, m.provider).await, (13_400, 0));
        m.assert_consistent(&t.db, m.provider).await;

        // Each release is a pair of adjustments linked to the appointment.
        let adjustments = provider_transaction::Entity::find()
            .filter(provider_transaction::Column::Kind.eq(TransactionKind::Adjustment))
            .all(t.conn())
            .await
            .unwrap();
        assert_eq!(adjustments.len(), 4);
        let of_old: Vec<_> = adjustments
            .iter()
            .filter(|e| e.appointment_id == old.appointment_id)
            .map(|e| (e.bucket, e.amount_cents))
            .collect();
        assert!(of_old.contains(&(BalanceBucket::Pending, -8_950)));
        assert!(of_old.contains(&(BalanceBucket::Available, 8_950)));

        // A provider with no ledger has nothing to release.
        let idle = m.another_provider(&t.db, "idle@example.com").await;
        assert_eq!(m.release(&t.db, idle, far_future()).await, 0);
    }

    async fn withdrawals_within_the_balance_and_refusals(t: TestDb) {
        let m = Market::new(&t.db, Some(FREE)).await;
        m.fund(&t.db, m.provider, 9_000).await;

        let w = m.withdraw(&t.db, m.provider, 3_000).await.unwrap();
        assert_eq!(w.status, WithdrawalStatus::Requested);
        assert_eq!((w.amount_cents, w.currency.as_str()), (3_000, "BRL"));
        assert_eq!(m.balance(&t.db, m.provider).await, (6_000, 0));
        let debit = provider_transaction::Entity::find()
            .filter(provider_transaction::Column::WithdrawalId.eq(w.id))
            .one(t.conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (debit.kind, debit.bucket, debit.amount_cents),
            (TransactionKind::Withdrawal, BalanceBucket::Available, -3_000)
        );

        // Refusals write nothing, even in a transaction that is then committed.
        let withdrawals = count(t.conn(), "payment_withdrawals").await;
        let entries = count(t.conn(), "provider_transactions").await;
        for amount in [6_001, 999, 0, -5] {
            let tx = t.begin().await.unwrap();
            let err = LedgerRepo::request_withdrawal(&tx, m.scope, m.provider, amount, PayoutMethod::Pix)
                .await
                .unwrap_err();
            assert!(is_amount_refusal(&err), "{amount}: {err:?}");
            tx.commit().await.unwrap();
            assert_eq!(count(t.conn(), "payment_withdrawals").await, withdrawals);
            assert_eq!(count(t.conn(), "provider_transactions").await, entries);
            assert_eq!(m.balance(&t.db, m.provider).await, (6_000, 0));
        }
        let message = m.withdraw(&t.db, m.provider, 6_001).await.unwrap_err().to_string();
        assert!(message.contains("exceeds the available balance (6000)"), "{message}");
        let message = m.withdraw(&t.db, m.provider, 999).await.unwrap_err().to_string();
        assert!(message.contains("below the minimum withdrawal (1000)"), "{message}");

        // Exactly the available balance is fine, and then nothing is left.
        m.withdraw(&t.db, m.provider, 6_000).await.unwrap();
        assert_eq!(m.balance(&t.db, m.provider).await, (0, 0));
        assert!(is_amount_refusal(&m.withdraw(&t.db, m.provider, 1_000).await.unwrap_err()));
        // Pending money cannot be withdrawn.
        m.pay(&t.db, m.provider, 5_000, 0).await;
        assert!(is_amount_refusal(&m.withdraw(&t.db, m.provider, 1_000).await.unwrap_err()));
        // Nor can a provider without any ledger withdraw.
        let idle = m.another_provider(&t.db, "idle@example.com").await;
        assert!(is_amount_refusal(&m.withdraw(&t.db, idle, 1_000).await.unwrap_err()));
        m.assert_consistent(&t.db, m.provider).await;
    }

    async fn concurrent_withdrawals_never_overdraw(t: TestDb) {
        let m = Arc::new(Market::new(&t.db, Some(FREE)).await);
        m.fund(&t.db, m.provider, 10_000).await;
        const TASKS: usize = 20;
        const AMOUNT: i64 = 1_500; // 20 × 1,500 = 30,000 > 10,000
        let pool = t
            .another_pool(|s| {
                s.pool_size = 0;
                s.max_overflow = TASKS as u32 + 2;
                s.pool_timeout = StdDuration::from_secs(30);
            })
            .await;
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let started = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..TASKS {
            let (pool, m, barrier) = (pool.clone(), m.clone(), barrier.clone());
            handles.push(tokio::spawn(async move {
                barrier.wait().await;
                let began = Instant::now();
                let tx = pool.begin().await?;
                let waited = began.elapsed();
                let w = LedgerRepo::request_withdrawal(&tx, m.scope, m.provider, AMOUNT, PayoutMethod::Pix).await?;
                tx.commit().await?;
                Ok::<_, StorageError>((w, waited))
            }));
        }
        let (mut ok, mut refused, mut other) = (Vec::new(), 0, Vec::new());
        let mut longest_wait = StdDuration::ZERO;
        for h in handles {
            match h.await.unwrap() {
                Ok((w, waited)) => {
                    longest_wait = longest_wait.max(waited);
                    ok.push(w);
                }
                Err(e) if is_amount_refusal(&e) => refused += 1,
                Err(e) => other.push(e.to_string()),
            }
        }
        eprintln!(
            "{:?}: {} withdrawals succeeded, {refused} refused, {} other errors {other:?}; \
             took {:?}, longest wait for BEGIN {:?}",
            t.engine(),
            ok.len(),
            other.len(),
            started.elapsed(),
            longest_wait,
        );
        assert!(other.is_empty(), "only clear refusals are allowed: {other:?}");
        let withdrawn: i64 = ok.iter().map(|w| w.amount_cents).sum();
        assert!(withdrawn <= 10_000);
        // Serialised writers each see the previous one's debit: exactly 6 fit.
        assert_eq!(ok.len(), 6);
        assert_eq!(refused, TASKS - 6);
        assert_eq!(m.balance(&t.db, m.provider).await, (10_000 - withdrawn, 0));
        m.assert_consistent(&t.db, m.provider).await;
        let rows = provider_balance::Entity::find().all(t.conn()).await.unwrap();
        assert!(rows.iter().all(|b| b.available_cents >= 0 && b.pending_cents >= 0));
        pool.close().await;
    }

    async fn a_failed_withdrawal_returns_the_money(t: TestDb) {
        let m = Market::new(&t.db, Some(FREE)).await;
        let admin = m.another_provider(&t.db, "admin@example.com").await;
        m.fund(&t.db, m.provider, 9_000).await;
        let w = m.withdraw(&t.db, m.provider, 4_000).await.unwrap();
        assert_eq!(m.balance(&t.db, m.provider).await, (5_000, 0));

        let tx = t.begin().await.unwrap();
        let failed = LedgerRepo::fail_withdrawal(&tx, m.scope, w.id, Some(admin), "bank rejected the account")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(failed.status, WithdrawalStatus::Failed);
        assert_eq!(failed.failure_reason.as_deref(), Some("bank rejected the account"));
        assert_eq!(failed.processed_by, Some(admin));
        assert!(failed.processed_at.is_some());
        assert_eq!(m.balance(&t.db, m.provider).await, (9_000, 0));
        let returned = provider_transaction::Entity::find()
            .filter(provider_transaction::Column::WithdrawalId.eq(w.id))
            .filter(provider_transaction::Column::AmountCents.gt(0))
            .one(t.conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((returned.kind, returned.amount_cents), (TransactionKind::Withdrawal, 4_000));

        // A failed withdrawal can be neither completed nor failed again.
        let tx = t.begin().await.unwrap();
        let err = LedgerRepo::complete_withdrawal(&tx, m.scope, w.id, Some(admin), None).await.unwrap_err();
        assert!(is_not_open(&err), "{err:?}");
        let err = LedgerRepo::fail_withdrawal(&tx, m.scope, w.id, None, "again").await.unwrap_err();
        assert!(is_not_open(&err), "{err:?}");
        drop(tx);
        assert_eq!(m.balance(&t.db, m.provider).await, (9_000, 0));

        // A paid one stays paid: its money has left.
        let w = m.withdraw(&t.db, m.provider, 2_000).await.unwrap();
        let tx = t.begin().await.unwrap();
        let paid = LedgerRepo::complete_withdrawal(&tx, m.scope, w.id, Some(admin), Some("pix-e2e-123".into()))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(paid.status, WithdrawalStatus::Paid);
        assert_eq!(paid.external_ref.as_deref(), Some("pix-e2e-123"));
        assert!(paid.processed_at.is_some());
        let tx = t.begin().await.unwrap();
        assert!(is_not_open(&LedgerRepo::fail_withdrawal(&tx, m.scope, w.id, None, "late").await.unwrap_err()));
        assert!(is_not_open(&LedgerRepo::complete_withdrawal(&tx, m.scope, w.id, None, None).await.unwrap_err()));
        drop(tx);
        assert_eq!(m.balance(&t.db, m.provider).await, (7_000, 0));
        m.assert_consistent(&t.db, m.provider).await;
    }

    async fn random_operations_keep_the_balance_equal_to_the_ledger(t: TestDb) {
        let seed = std::env::var("LEDGER_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| fastrand::u64(..));
        eprintln!("ledger random sequence seed: {seed} (LEDGER_SEED={seed} replays it)");
        let mut rng = fastrand::Rng::with_seed(seed);
        let m = Market::new(&t.db, Some(SETTINGS)).await;
        let rules = FeeRules { percentage_bp: 1_000, fixed_cents: 50, min_cents: 100, max_cents: Some(5_000) };
        let mut clock = Utc::now();
        let mut open: Vec<Uuid> = Vec::new();
        // What the provider is owed in total (both buckets), kept independently.
        let mut owed = 0i64;
        // payments, releases, withdrawal requests, failures, completions, refunds,
        // refunds larger than the whole balance (debts).
        let mut tally = [0usize; 7];
        // Each settled payment: (appointment, paid, fee, refunded so far).
        let mut payments: Vec<(Uuid, i64, i64, i64)> = Vec::new();
        for step in 0..80 {
            match rng.u8(0..12) {
                0..=2 => {
                    let price = rng.i64(100..20_000);
                    let discount = if rng.bool() { rng.i64(0..price) } else { 0 };
                    let (available, pending) = m.balance(&t.db, m.provider).await;
                    let (payment, commission) = m.pay(&t.db, m.provider, price, discount).await;
                    let fee = platform_fee(price - discount, &rules);
                    assert_eq!(commission.map_or(0, |c| -c.amount_cents), fee);
                    owed += price - discount - fee;
                    // Earnings pay a debt first.
                    let to_debt = (-available).clamp(0, price - discount - fee);
                    assert_eq!(m.balance(&t.db, m.provider).await, (available + to_debt, pending + price - discount - fee - to_debt));
                    payments.push((payment.appointment_id.unwrap(), price - discount, fee, 0));
                    tally[0] += 1;
                }
                10..=11 if !payments.is_empty() => {
                    let i = rng.usize(..payments.len());
                    let (appointment, paid, fee, refunded) = payments[i];
                    let left = paid - refunded;
                    // Sometimes more than is left, to see the refusal.
                    let amount = rng.i64(1..=left.max(1) * 12 / 10 + 1);
                    let (available, pending) = m.balance(&t.db, m.provider).await;
                    let tx = t.begin().await.unwrap();
                    let result = LedgerRepo::record_refund(&tx, m.scope, appointment, amount, &format!("re_{step}")).await;
                    // The commission's share of what is refunded, rounded half up.
                    let share = |part: i64| (2 * fee * part + paid).div_euclid(2 * paid);
                    let reversal = share(refunded + amount) - share(refunded);
                    match result {
                        Ok(outcome) => {
                            tx.commit().await.unwrap();
                            assert!(amount <= left, "{amount} > {left}");
                            assert_eq!(outcome.commission_reversed_cents, reversal);
                            owed -= amount - reversal;
                            payments[i].3 += amount;
                            let expected = if payments[i].3 == paid { PaymentStatus::Refunded } else { PaymentStatus::PartiallyRefunded };
                            assert_eq!(outcome.payment_status, expected);
                            let after = m.balance(&t.db, m.provider).await;
                            if amount - reversal > available.max(0) + pending {
                                // More than the whole balance: recorded, the rest is a debt.
                                assert_eq!(after, (available + pending - (amount - reversal), 0), "before: {available} + {pending}");
                                tally[6] += 1;
                            }
                            // The same refund id again writes nothing.
                            let tx = t.begin().await.unwrap();
                            let again = LedgerRepo::record_refund(&tx, m.scope, appointment, amount, &format!("re_{step}")).await.unwrap();
                            tx.commit().await.unwrap();
                            assert!(again.replayed);
                            assert_eq!(again.entries, outcome.entries);
                        }
                        Err(StorageError::InvalidState { code: "refund_exceeds_payment", .. }) => {
                            assert!(amount > left, "{amount} <= {left}");
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                    tally[5] += 1;
                }
                3..=4 => {
                    clock += Duration::hours(rng.i64(0..40));
                    m.release(&t.db, m.provider, clock).await;
                    tally[1] += 1;
                }
                5..=7 => {
                    let (available, _) = m.balance(&t.db, m.provider).await;
                    let amount = rng.i64(1..=available.max(1) * 13 / 10 + 1);
                    match m.withdraw(&t.db, m.provider, amount).await {
                        Ok(w) => {
                            owed -= amount;
                            open.push(w.id);
                        }
                        Err(StorageError::InvalidState { code: "balance_in_debt", .. }) => assert!(available < 0),
                        Err(e) => {
                            assert!(is_amount_refusal(&e), "{e:?}");
                            assert!(available >= 0 && (amount > available || amount < 1_000));
                        }
                    }
                    tally[2] += 1;
                }
                8 if !open.is_empty() => {
                    let w = open.swap_remove(rng.usize(..open.len()));
                    let tx = t.begin().await.unwrap();
                    let failed = LedgerRepo::fail_withdrawal(&tx, m.scope, w, None, "random failure").await.unwrap();
                    tx.commit().await.unwrap();
                    owed += failed.amount_cents;
                    tally[3] += 1;
                }
                _ if !open.is_empty() => {
                    let w = open.swap_remove(rng.usize(..open.len()));
                    let tx = t.begin().await.unwrap();
                    LedgerRepo::complete_withdrawal(&tx, m.scope, w, None, None).await.unwrap();
                    tx.commit().await.unwrap();
                    tally[4] += 1;
                }
                _ => {}
            }
            m.assert_consistent(&t.db, m.provider).await;
            let (available, pending) = m.balance(&t.db, m.provider).await;
            assert_eq!(available + pending, owed);
            assert!(pending >= 0, "pending never goes below zero");
        }
        // Every sequence ends with a debt: all money withdrawn, then a payment refunded
        // in full is more than the (empty) balance; the next payment pays it first.
        m.release(&t.db, m.provider, far_future()).await;
        let (available, _) = m.balance(&t.db, m.provider).await;
        if available >= 1_000 {
            m.withdraw(&t.db, m.provider, available).await.unwrap();
            owed -= available;
        }
        let (payment, commission) = m.pay(&t.db, m.provider, 10_000, 0).await;
        let fee = commission.map_or(0, |c| -c.amount_cents);
        m.release(&t.db, m.provider, far_future()).await;
        let (available, _) = m.balance(&t.db, m.provider).await;
        if available >= 1_000 {
            m.withdraw(&t.db, m.provider, available).await.unwrap();
            owed += 10_000 - fee - available;
        } else {
            owed += 10_000 - fee;
        }
        let tx = t.begin().await.unwrap();
        let outcome = LedgerRepo::record_refund(&tx, m.scope, payment.appointment_id.unwrap(), 10_000, "re_last").await.unwrap();
        tx.commit().await.unwrap();
        owed -= 10_000 - outcome.commission_reversed_cents;
        assert_eq!(outcome.payment_status, PaymentStatus::Refunded);
        let (available, pending) = m.balance(&t.db, m.provider).await;
        assert!(available < 0, "in debt: {available}");
        assert_eq!((available + pending, pending), (owed, 0));
        m.assert_consistent(&t.db, m.provider).await;
        tally[6] += 1;
        let err = m.withdraw(&t.db, m.provider, 1_000).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidState { code: "balance_in_debt", .. }), "{err:?}");
        let (_, commission) = m.pay(&t.db, m.provider, 20_000, 0).await;
        owed += 20_000 - commission.map_or(0, |c| -c.amount_cents);
        assert_eq!(m.balance(&t.db, m.provider).await, (0, owed), "the payment paid the debt first");
        m.assert_consistent(&t.db, m.provider).await;
        // Finally everything is released, and only available money remains.
        m.release(&t.db, m.provider, far_future()).await;
        m.assert_consistent(&t.db, m.provider).await;
        assert_eq!(m.balance(&t.db, m.provider).await, (owed, 0));
        eprintln!(
            "{:?}: {} payments, {} releases, {} withdrawal requests, {} failures, {} completions, {} refunds ({} larger than the balance); owed {owed}",
            t.engine(), tally[0], tally[1], tally[2], tally[3], tally[4], tally[5], tally[6]
        );
    }

    async fn another_tenants_ids_are_not_found(t: TestDb) {
        let a = Market::new(&t.db, Some(FREE)).await;
        let b = Market::new(&t.db, Some(FREE)).await;
        b.fund(&t.db, b.provider, 5_000).await;
        let theirs = b.withdraw(&t.db, b.provider, 2_000).await.unwrap();
        let their_appointment = b.completed(t.conn(), b.provider, 3_000, 0).await;

        let mine = a.another_provider(&t.db, "mine@example.com").await;
        a.fund(&t.db, mine, 3_000).await;
        let w = a.withdraw(&t.db, mine, 1_000).await.unwrap();

        let s = a.scope;
        let tx = t.begin().await.unwrap();
        let errors = [
            LedgerRepo::balance(&tx, s, b.provider).await.map(|_| ()),
            LedgerRepo::entries(&tx, s, b.provider, &EntriesQuery::default()).await.map(|_| ()),
            LedgerRepo::verify_balance(&tx, s, b.provider).await.map(|_| ()),
            LedgerRepo::release_due(&tx, s, b.provider, far_future()).await.map(|_| ()),
            LedgerRepo::request_withdrawal(&tx, s, b.provider, 1_000, PayoutMethod::Pix).await.map(|_| ()),
            LedgerRepo::withdrawal(&tx, s, theirs.id).await.map(|_| ()),
            LedgerRepo::complete_withdrawal(&tx, s, theirs.id, None, None).await.map(|_| ()),
            LedgerRepo::fail_withdrawal(&tx, s, theirs.id, None, "x").await.map(|_| ()),
            LedgerRepo::record_payment(&tx, s, &their_appointment, 3_000).await.map(|_| ()),
        ];
        for (i, result) in errors.into_iter().enumerate() {
            let err = result.unwrap_err();
            assert!(is_not_found(&err), "call {i}: {err:?}");
        }
        // Someone else's user cannot be recorded as the processor.
        let err = LedgerRepo::complete_withdrawal(&tx, s, w.id, Some(b.client), None).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidReference { .. }), "{err:?}");
        tx.commit().await.unwrap();
        // Nothing of theirs changed.
        assert_eq!(b.balance(&t.db, b.provider).await, (3_000, 0));
        assert_eq!(
            LedgerRepo::withdrawal(t.conn(), b.scope, theirs.id).await.unwrap().status,
            WithdrawalStatus::Requested
        );
        b.assert_consistent(&t.db, b.provider).await;
    }

    async fn entries_are_keyset_paginated(t: TestDb) {
        let m = Market::new(&t.db, Some(SETTINGS)).await;
        for price in [1_000, 2_000, 3_000, 4_000] {
            m.pay(&t.db, m.provider, price, 0).await; // two entries each
        }
        let mut seen = Vec::new();
        let mut query = EntriesQuery { limit: Some(3), ..Default::default() };
        loop {
            let page = LedgerRepo::entries(t.conn(), m.scope, m.provider, &query).await.unwrap();
            assert!(page.items.len() <= 3);
            seen.extend(page.items.iter().map(|e| e.id));
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 8);
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted, "creation order");
        let newest = LedgerRepo::entries(t.conn(), m.scope, m.provider, &EntriesQuery { limit: Some(1_000), newest_first: true, after: None })
            .await
            .unwrap();
        assert_eq!(newest.items.len(), 8, "capped page size still returns all 8");
        assert_eq!(newest.items.first().map(|e| e.id), seen.last().copied());
        let err = LedgerRepo::entries(t.conn(), m.scope, m.provider, &EntriesQuery { after: Some("nope".into()), ..Default::default() })
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Validation { field: "after", .. }));
    }

    async fn the_demo_seed_ledger_is_compatible(t: TestDb) {
        use agenda_storage::seed;
        seed::demo(&t.db, "$argon2id$v=19$m=19456,t=2,p=1$ZGVtbw$test-only").await.unwrap();
        let scope = TenantScope::new(seed::DEMO_ORGANIZATION_ID);
        let balances = provider_balance::Entity::find().all(t.conn()).await.unwrap();
        assert!(!balances.is_empty());
        for b in &balances {
            assert!(LedgerRepo::verify_balance(t.conn(), scope, b.provider_id).await.unwrap());
        }
        // Recording a seeded payment again writes nothing.
        let paid = appointment::Entity::find()
            .filter(appointment::Column::Status.eq(AppointmentStatus::Completed))
            .filter(appointment::Column::PaymentStatus.eq(PaymentStatus::Paid))
            .one(t.conn())
            .await
            .unwrap()
            .expect("the seed has paid appointments");
        let entries = count(t.conn(), "provider_transactions").await;
        let tx = t.begin().await.unwrap();
        let (payment, _) = LedgerRepo::record_payment(&tx, scope, &paid, paid.price_cents - paid.discount_cents)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(payment.appointment_id, Some(paid.id));
        assert_eq!(count(t.conn(), "provider_transactions").await, entries);
        // Releasing the seeded pending money keeps every balance equal to its ledger.
        let mut moved = 0;
        for b in &balances {
            let tx = t.begin().await.unwrap();
            moved += LedgerRepo::release_due(&tx, scope, b.provider_id, far_future()).await.unwrap();
            tx.commit().await.unwrap();
            assert!(LedgerRepo::verify_balance(t.conn(), scope, b.provider_id).await.unwrap());
            let after = LedgerRepo::balance(t.conn(), scope, b.provider_id).await.unwrap();
            assert_eq!(after.pending_cents, 0);
            assert_eq!(after.available_cents, b.available_cents + b.pending_cents);
        }
        let pending: i64 = balances.iter().map(|b| b.pending_cents).sum();
        assert_eq!(moved, pending);
    }
}
