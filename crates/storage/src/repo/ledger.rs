//! The marketplace ledger: what the platform owes each provider.
//!
//! `provider_transactions` is an append-only list of signed entries, each in one
//! bucket (`pending` or `available`); `provider_balances` holds, per provider, the
//! sum of each bucket, and is updated in the same transaction as the entries it sums.
//! `payment_withdrawals` are payout requests, debited from `available` when requested.
//! See `docs/ledger.md` for the whole model; in short:
//!
//! | operation | entries | balance |
//! |---|---|---|
//! | [`LedgerRepo::record_payment`] | `payment` +net, `commission` −fee (pending) | pending += net − fee |
//! | [`LedgerRepo::release_due`] | `adjustment` −x (pending), `adjustment` +x (available) | pending −= x, available += x |
//! | [`LedgerRepo::request_withdrawal`] | `withdrawal` −amount (available) | available −= amount |
//! | [`LedgerRepo::fail_withdrawal`] | `withdrawal` +amount (available) | available += amount |
//! | [`LedgerRepo::complete_withdrawal`] | none | none |
//! | [`LedgerRepo::record_refund`] | `refund` −amount, `adjustment` +commission share (the appointment's bucket), cover moves | that bucket −(amount − share) |
//!
//! **Transactions and locking.** Every function that writes takes the caller's
//! [`DatabaseTransaction`], which must come from [`crate::Db::begin`]. Each write
//! first locks the provider's balance row: `SELECT … FOR UPDATE` on PostgreSQL, so
//! writers of one provider queue on the row lock and each one reads the balance (and
//! the entries, read committed) as the previous one committed it; on SQLite `Db::begin`
//! is `BEGIN IMMEDIATE`, which takes the database write lock before the first
//! statement, so writers are serialised (they queue on the busy timeout). The check
//! ("is there enough available money?") and the write therefore happen under the
//! same lock: a withdrawal can never overdraw a balance, even concurrently. The one
//! way `available_cents` goes below zero is a refund larger than the whole balance
//! (the processor has already returned the money): that is the provider's debt,
//! withdrawals are refused while it lasts, and later earnings pay it first.
//! `pending_cents` never goes below zero (a CHECK constraint).
//!
//! **Idempotency.** A payment is recorded once per appointment: recording it again
//! returns the entries already written (`external_ref` = the appointment id, and the
//! unique `(provider_id, kind, external_ref)` index backs it). A release is recorded
//! once per payment entry (`external_ref` = `release:<payment entry id>:<bucket>`), so
//! running [`LedgerRepo::release_due`] again moves nothing more. A withdrawal is
//! debited once (`external_ref` = the withdrawal id) and returned at most once
//! (`<withdrawal id>:returned`, and only from an open status). A refund is recorded
//! once per refund id (`external_ref` = `refund:<id>`, and `refund:<id>:…` for its
//! other entries).

use std::collections::HashMap;

use agenda_entity::enums::{
    AppointmentStatus, BalanceBucket, PaymentStatus, PayoutMethod, TransactionKind,
    WithdrawalStatus,
};
use agenda_entity::{appointment, payment_withdrawal, provider_balance, provider_transaction};
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    DbBackend, EntityTrait, FromQueryResult, IntoActiveModel, Order, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use serde::Serialize;
use uuid::Uuid;

use crate::error::StorageError;
use crate::fees::{fee_rules, payout_rules, platform_fee};
use crate::repo::resource::{Page, exists_in_tenant, id_cursor, page_size};
use crate::tenant::{TenantOwned, TenantScope};

/// One ledger entry.
pub type Entry = provider_transaction::Model;

impl TenantOwned for provider_balance::Entity {
    fn tenant_column() -> provider_balance::Column {
        provider_balance::Column::OrganizationId
    }
}

impl TenantOwned for provider_transaction::Entity {
    fn tenant_column() -> provider_transaction::Column {
        provider_transaction::Column::OrganizationId
    }
}

impl TenantOwned for payment_withdrawal::Entity {
    fn tenant_column() -> payment_withdrawal::Column {
        payment_withdrawal::Column::OrganizationId
    }
}

/// A provider's balance. A provider who never had a ledger entry has a zero balance
/// and no currency yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Balance {
    pub provider_id: Uuid,
    /// Negative while the provider is in debt (see [`Balance::debt_cents`]).
    pub available_cents: i64,
    pub pending_cents: i64,
    pub currency: Option<String>,
}

impl Balance {
    /// What the provider owes the platform: a refund took more than the balance held
    /// (`available_cents` below zero). Later earnings pay it first.
    pub fn debt_cents(&self) -> i64 {
        (-self.available_cents).max(0)
    }
}

/// The sums of a provider's ledger, per bucket, computed by the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LedgerSums {
    pub available_cents: i64,
    pub pending_cents: i64,
}

/// A page request for [`LedgerRepo::entries`]: entries come in creation order (keys
/// are UUIDv7), oldest first unless `newest_first`.
#[derive(Debug, Clone, Default)]
pub struct EntriesQuery {
    pub limit: Option<u64>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    pub newest_first: bool,
}

/// What [`LedgerRepo::record_refund`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOutcome {
    pub appointment_id: Uuid,
    /// The processor's refund id, or `admin:<uuid>` for the admin route.
    pub refund_ref: String,
    /// This refund's amount (what the client gets back).
    pub amount_cents: i64,
    /// The platform commission given back to the provider on this refund.
    pub commission_reversed_cents: i64,
    /// The payment that was settled.
    pub paid_cents: i64,
    /// Every refund of this payment so far, this one included.
    pub refunded_cents: i64,
    /// The appointment's payment status after the refund.
    pub payment_status: PaymentStatus,
    /// Whether this refund id was already recorded (nothing was written now).
    pub replayed: bool,
    /// The entries this refund wrote.
    pub entries: Vec<Entry>,
}

/// Longest accepted refund id, in characters.
const MAX_REFUND_REF_CHARS: usize = 128;

/// Withdrawal statuses from which a withdrawal may still be paid or failed.
const OPEN_WITHDRAWAL: [WithdrawalStatus; 2] =
    [WithdrawalStatus::Requested, WithdrawalStatus::Processing];

pub struct LedgerRepo;

impl LedgerRepo {
    /// Records the payment of a completed, paid appointment: a `payment` entry of the
    /// net amount (price − discount) and a `commission` entry of minus the platform
    /// fee ([`crate::fees`]), both in the `pending` bucket, and adds net − fee to the
    /// provider's pending balance (creating the balance row if needed).
    ///
    /// The appointment's state is re-read inside the transaction (the model passed
    /// in only names it): it must belong to the scope, be `completed` and `paid`, and
    /// `paid_cents` must equal its net amount (`Validation` on `paid_cents`
    /// otherwise).
    ///
    /// Idempotent: when the appointment's payment is already in the ledger, the
    /// existing entries are returned and nothing is written. The commission is `None`
    /// when the fee is zero (a ledger entry is never zero).
    pub async fn record_payment(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        appointment: &appointment::Model,
        paid_cents: i64,
    ) -> Result<(Entry, Option<Entry>), StorageError> {
        let current = AppointmentMoney::load(tx, scope, appointment.id).await?;
        if current.status != AppointmentStatus::Completed {
            return Err(StorageError::InvalidState {
                code: "appointment_not_completed",
                message: format!(
                    "only a completed appointment can be paid out (this one is {})",
                    current.status
                ),
            });
        }
        if current.payment_status != PaymentStatus::Paid {
            return Err(StorageError::InvalidState {
                code: "appointment_not_paid",
                message: format!(
                    "the appointment's payment is {}, not paid",
                    current.payment_status
                ),
            });
        }
        let net = current.price_cents - current.discount_cents;
        if net <= 0 {
            return Err(StorageError::Validation {
                field: "paid_cents",
                message: "the appointment has nothing to pay (its discount covers the price)"
                    .into(),
            });
        }
        if paid_cents != net {
            return Err(StorageError::Validation {
                field: "paid_cents",
                message: format!(
                    "{paid_cents} does not match the appointment's price minus discount ({net})"
                ),
            });
        }
        let provider = current.provider_id;
        let balance = lock_or_create_balance(tx, scope, provider, &current.currency).await?;
        if balance.currency != current.currency {
            return Err(StorageError::Validation {
                field: "currency",
                message: format!(
                    "the appointment is in {} but the provider's balance is in {}",
                    current.currency, balance.currency
                ),
            });
        }
        // Under the balance lock: a concurrent recording of the same payment has
        // either committed (and is found here) or not started.
        if let Some(existing) = payment_of(tx, scope, provider, appointment.id).await? {
            return Ok(existing);
        }

        let rules = fee_rules(tx, scope, provider).await?;
        let fee = platform_fee(net, &rules);
        let reference = appointment.id.to_string();
        let new = |kind, amount, description: &str| NewEntry {
            provider_id: provider,
            kind,
            bucket: BalanceBucket::Pending,
            amount_cents: amount,
            currency: balance.currency.clone(),
            appointment_id: Some(appointment.id),
            withdrawal_id: None,
            external_ref: reference.clone(),
            description: description.to_owned(),
        };
        let payment = new(TransactionKind::Payment, net, "Appointment payment")
            .insert(tx, scope)
            .await?;
        let commission = if fee > 0 {
            Some(
                new(TransactionKind::Commission, -fee, "Platform fee")
                    .insert(tx, scope)
                    .await?,
            )
        } else {
            None
        };
        // Earnings pay a debt first (a refund larger than the balance, see
        // `record_refund`): as much of this payment as the debt needs moves to
        // `available` at once. The pending half carries the appointment, so a later
        // release of this payment moves only what is left of it.
        let earned = net - fee;
        let to_debt = (-balance.available_cents).clamp(0, earned);
        if to_debt > 0 {
            for (bucket, signed) in [
                (BalanceBucket::Pending, -to_debt),
                (BalanceBucket::Available, to_debt),
            ] {
                NewEntry {
                    kind: TransactionKind::Adjustment,
                    bucket,
                    amount_cents: signed,
                    external_ref: format!("debt:{reference}:{bucket}"),
                    ..new(
                        TransactionKind::Adjustment,
                        signed,
                        "Paid towards the provider's debt",
                    )
                }
                .insert(tx, scope)
                .await?;
            }
        }
        add_to_balance(tx, scope, &balance, to_debt, earned - to_debt).await?;
        Ok((payment, commission))
    }

    /// Moves to `available` the money of every pending payment whose payout delay
    /// (`payment_settings.payout_delay_days`, counted from the payment entry's
    /// `created_at`) has passed at `now`. Each payment moves its net amount (the
    /// payment plus its pending commission), as a pair of `adjustment` entries:
    /// −x in `pending`, +x in `available`. Returns the total moved.
    ///
    /// Idempotent: a payment is released once (its release entries carry
    /// `external_ref = release:<payment entry id>:<bucket>` and released payments are
    /// skipped). A payment whose net amount is zero has nothing to move and is
    /// skipped. A release never takes `pending` below zero: if less is pending than
    /// the payment's net (a pending debit such as a refund got there first), only what
    /// is pending moves.
    pub async fn release_due(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        provider_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<i64, StorageError> {
        let Some(balance) = lock_balance(tx, scope, provider_id).await? else {
            ensure_provider(tx, scope, provider_id).await?;
            return Ok(0);
        };
        let rules = payout_rules(tx, scope).await?;
        let cutoff = now - Duration::days(i64::from(rules.payout_delay_days));
        use provider_transaction::Column as C;
        let due = provider_transaction::Entity::find_in(scope)
            .filter(C::ProviderId.eq(provider_id))
            .filter(C::Kind.eq(TransactionKind::Payment))
            .filter(C::Bucket.eq(BalanceBucket::Pending))
            .filter(C::CreatedAt.lte(cutoff))
            .filter(not_released(tx.get_database_backend()))
            .order_by_asc(C::CreatedAt)
            .order_by_asc(C::Id)
            .all(tx)
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let appointments: Vec<Uuid> = due.iter().filter_map(|p| p.appointment_id).collect();
        let mut commissions: HashMap<Uuid, i64> = HashMap::new();
        if !appointments.is_empty() {
            // The commission and any refund (with its reversal and cover) of the
            // appointment: what is left of its payment in `pending`.
            let rows = provider_transaction::Entity::find_in(scope)
                .filter(C::ProviderId.eq(provider_id))
                .filter(C::Kind.ne(TransactionKind::Payment))
                .filter(C::ExternalRef.not_like("release:%"))
                .filter(C::Bucket.eq(BalanceBucket::Pending))
                .filter(C::AppointmentId.is_in(appointments))
                .all(tx)
                .await?;
            for row in rows {
                if let Some(id) = row.appointment_id {
                    *commissions.entry(id).or_default() += row.amount_cents;
                }
            }
        }

        let mut pending = balance.pending_cents;
        let mut moved = 0;
        for payment in due {
            // The rest belongs to the first payment of its appointment.
            let commission = payment
                .appointment_id
                .and_then(|id| commissions.remove(&id))
                .unwrap_or(0);
            let amount = (payment.amount_cents + commission).min(pending);
            if amount <= 0 {
                continue;
            }
            let id = payment.id.simple().to_string();
            for (bucket, signed) in [
                (BalanceBucket::Pending, -amount),
                (BalanceBucket::Available, amount),
            ] {
                NewEntry {
                    provider_id,
                    kind: TransactionKind::Adjustment,
                    bucket,
                    amount_cents: signed,
                    currency: balance.currency.clone(),
                    appointment_id: payment.appointment_id,
                    withdrawal_id: None,
                    external_ref: format!("release:{id}:{bucket}"),
                    description: "Released after the payout delay".into(),
                }
                .insert(tx, scope)
                .await?;
            }
            pending -= amount;
            moved += amount;
        }
        if moved > 0 {
            add_to_balance(tx, scope, &balance, moved, -moved).await?;
        }
        Ok(moved)
    }

    /// Records a refund of `amount_cents` of an appointment's settled payment, under
    /// the processor's (or the admin route's) refund id `refund_ref`, in the caller's
    /// transaction:
    ///
    /// - a `refund` entry of −amount, and an `adjustment` of +x giving back the
    ///   platform commission on the refunded part (x is the commission's share of the
    ///   refunded total, rounded half up, minus what earlier refunds gave back, so a
    ///   full refund reverses the whole commission exactly);
    /// - both in the bucket where the appointment's money is (`pending` until its
    ///   payment is released, `available` after); when that bucket cannot cover the
    ///   net debit (amount − x), the rest is moved from the other bucket with a pair
    ///   of `adjustment` entries;
    /// - `pending` never goes below zero: when the provider's whole balance cannot
    ///   cover the debit, the rest is a debt, a negative `available` balance
    ///   ([`Balance::debt_cents`]), since the money has already gone back;
    /// - `payment_status` becomes `partially_refunded`, or `refunded` once the whole
    ///   payment has gone back.
    ///
    /// Idempotent: a refund id already in the ledger returns what it wrote
    /// (`replayed = true`) and writes nothing, under the balance lock (the unique
    /// `(provider_id, kind, external_ref)` index backs it); the same id with another
    /// amount is refused (`InvalidState` `refund_id_reused`).
    ///
    /// Refused, with nothing written: a non-positive amount or an empty refund id
    /// (`Validation`); an appointment whose payment is not in the ledger yet
    /// (`InvalidState` `payment_not_settled`); more than is left to refund
    /// (`refund_exceeds_payment`). A debit larger than the balance is recorded, see
    /// above and `docs/ledger.md`.
    pub async fn record_refund(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        appointment_id: Uuid,
        amount_cents: i64,
        refund_ref: &str,
    ) -> Result<RefundOutcome, StorageError> {
        if amount_cents <= 0 {
            return Err(StorageError::Validation {
                field: "amount_cents",
                message: "must be positive".into(),
            });
        }
        let chars = refund_ref.chars().count();
        if chars == 0 || chars > MAX_REFUND_REF_CHARS {
            return Err(StorageError::Validation {
                field: "refund_id",
                message: format!("must have 1 to {MAX_REFUND_REF_CHARS} characters"),
            });
        }
        let current = AppointmentMoney::load(tx, scope, appointment_id).await?;
        let not_settled = || StorageError::InvalidState {
            code: "payment_not_settled",
            message: "the appointment's payment is not in the ledger yet (it is settled \
                      when the appointment is completed and paid); nothing to refund"
                .into(),
        };
        let provider_id = current.provider_id;
        let balance = lock_balance(tx, scope, provider_id)
            .await?
            .ok_or_else(not_settled)?;
        let (payment, commission) = payment_of(tx, scope, provider_id, appointment_id)
            .await?
            .ok_or_else(not_settled)?;
        let reference = format!("refund:{refund_ref}");
        let written = refund_entries(tx, scope, provider_id, appointment_id).await?;
        let refunded_before: i64 = written
            .iter()
            .filter(|e| e.kind == TransactionKind::Refund)
            .map(|e| -e.amount_cents)
            .sum();
        let paid = payment.amount_cents;
        let outcome = |entries: Vec<Entry>, replayed: bool, refunded_total: i64| {
            let amount = entries
                .iter()
                .filter(|e| e.kind == TransactionKind::Refund)
                .map(|e| -e.amount_cents)
                .sum();
            let commission_reversed = entries
                .iter()
                .filter(|e| e.external_ref.as_deref() == Some(&format!("{reference}:commission")))
                .map(|e| e.amount_cents)
                .sum();
            RefundOutcome {
                appointment_id,
                refund_ref: refund_ref.to_owned(),
                amount_cents: amount,
                commission_reversed_cents: commission_reversed,
                paid_cents: paid,
                refunded_cents: refunded_total,
                payment_status: refund_status(refunded_total, paid, current.payment_status),
                replayed,
                entries,
            }
        };
        let mine: Vec<Entry> = written
            .iter()
            .filter(|e| {
                e.external_ref
                    .as_deref()
                    .is_some_and(|r| r == reference || r.starts_with(&format!("{reference}:")))
            })
            .cloned()
            .collect();
        if !mine.is_empty() {
            let replay = outcome(mine, true, refunded_before);
            if replay.amount_cents != amount_cents {
                // The same refund with another amount is a processor-side conflict to
                // look into, not a replay to acknowledge.
                return Err(StorageError::InvalidState {
                    code: "refund_id_reused",
                    message: format!(
                        "refund {refund_ref} was recorded for {} cents; this one asks for {amount_cents}",
                        replay.amount_cents
                    ),
                });
            }
            return Ok(replay);
        }
        if !matches!(
            current.payment_status,
            PaymentStatus::Paid | PaymentStatus::PartiallyRefunded
        ) {
            return Err(StorageError::InvalidState {
                code: "refund_exceeds_payment",
                message: format!(
                    "the appointment's payment is {}; nothing is left to refund",
                    current.payment_status
                ),
            });
        }
        let left = paid - refunded_before;
        if amount_cents > left {
            return Err(StorageError::InvalidState {
                code: "refund_exceeds_payment",
                message: format!(
                    "{amount_cents} exceeds what is left to refund of this payment ({left} of {paid})"
                ),
            });
        }
        let fee = commission.map_or(0, |c| -c.amount_cents);
        let refunded_after = refunded_before + amount_cents;
        let reversal = (share(fee, refunded_after, paid) - share(fee, refunded_before, paid))
            .clamp(0, amount_cents);
        let debit = amount_cents - reversal;

        let released = is_released(tx, scope, provider_id, &payment).await?;
        let (primary, secondary) = if released {
            (BalanceBucket::Available, BalanceBucket::Pending)
        } else {
            (BalanceBucket::Pending, BalanceBucket::Available)
        };
        let in_bucket = |bucket| match bucket {
            BalanceBucket::Available => balance.available_cents,
            BalanceBucket::Pending => balance.pending_cents,
        };
        // What the appointment's bucket lacks is moved from the other one. `pending`
        // never goes below zero, so a pending shortfall is taken from `available` even
        // past zero: a negative `available` is the provider's debt (the processor has
        // already given the money back, so the refund is recorded, never refused).
        // `pending` covers an `available` shortfall only as far as it holds, and never
        // makes money withdrawable early (available ends at most at zero).
        let shortfall = (debit - in_bucket(primary)).max(0);
        let cover = match secondary {
            BalanceBucket::Available => shortfall,
            BalanceBucket::Pending => shortfall.min(in_bucket(secondary).max(0)),
        };
        let new = |kind, bucket, amount, external_ref: String, description: &str| NewEntry {
            provider_id,
            kind,
            bucket,
            amount_cents: amount,
            currency: balance.currency.clone(),
            appointment_id: Some(appointment_id),
            withdrawal_id: None,
            external_ref,
            description: description.to_owned(),
        };
        let mut planned = vec![new(
            TransactionKind::Refund,
            primary,
            -amount_cents,
            reference.clone(),
            "Refund to the client",
        )];
        if reversal > 0 {
            planned.push(new(
                TransactionKind::Adjustment,
                primary,
                reversal,
                format!("{reference}:commission"),
                "Platform fee returned on the refund",
            ));
        }
        if cover > 0 {
            planned.push(new(
                TransactionKind::Adjustment,
                secondary,
                -cover,
                format!("{reference}:cover:{secondary}"),
                "Moved to cover a refund",
            ));
            planned.push(new(
                TransactionKind::Adjustment,
                primary,
                cover,
                format!("{reference}:cover:{primary}"),
                "Moved to cover a refund",
            ));
        }
        let mut entries = Vec::with_capacity(planned.len());
        for entry in planned {
            entries.push(entry.insert(tx, scope).await?);
        }
        let (mut available_delta, mut pending_delta) = (0, 0);
        for e in &entries {
            match e.bucket {
                BalanceBucket::Available => available_delta += e.amount_cents,
                BalanceBucket::Pending => pending_delta += e.amount_cents,
            }
        }
        add_to_balance(tx, scope, &balance, available_delta, pending_delta).await?;
        set_payment_status(
            tx,
            scope,
            appointment_id,
            refund_status(refunded_after, paid, current.payment_status),
        )
        .await?;
        Ok(outcome(entries, false, refunded_after))
    }

    /// Requests a payout of `amount_cents` from the provider's available balance: a
    /// `requested` withdrawal, a `withdrawal` entry of −amount in `available`, and the
    /// balance debited, all under the balance lock.
    ///
    /// Refused with `StorageError::Validation { field: "amount_cents", .. }` when the
    /// amount is not positive, is below the organization's
    /// `minimum_withdrawal_cents`, or exceeds the available balance, and with
    /// `InvalidState` `balance_in_debt` while the provider is in debt; nothing is
    /// written then. Can never overdraw, even concurrently (see the module docs).
    pub async fn request_withdrawal(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        provider_id: Uuid,
        amount_cents: i64,
        payout_method: PayoutMethod,
    ) -> Result<payment_withdrawal::Model, StorageError> {
        let refuse = |message: String| StorageError::Validation {
            field: "amount_cents",
            message,
        };
        if amount_cents <= 0 {
            return Err(refuse("must be positive".into()));
        }
        let balance = lock_balance(tx, scope, provider_id).await?;
        let Some(balance) = balance else {
            ensure_provider(tx, scope, provider_id).await?;
            return Err(refuse(format!(
                "{amount_cents} exceeds the available balance (0)"
            )));
        };
        if balance.available_cents < 0 {
            return Err(StorageError::InvalidState {
                code: "balance_in_debt",
                message: format!(
                    "the provider owes {} cents (a refund exceeded the balance); \
                     withdrawals resume once earnings have paid it",
                    -balance.available_cents
                ),
            });
        }
        let rules = payout_rules(tx, scope).await?;
        if amount_cents < rules.minimum_withdrawal_cents {
            return Err(refuse(format!(
                "{amount_cents} is below the minimum withdrawal ({})",
                rules.minimum_withdrawal_cents
            )));
        }
        if amount_cents > balance.available_cents {
            return Err(refuse(format!(
                "{amount_cents} exceeds the available balance ({})",
                balance.available_cents
            )));
        }
        let withdrawal = payment_withdrawal::ActiveModel {
            organization_id: Set(scope.organization_id()),
            provider_id: Set(provider_id),
            amount_cents: Set(amount_cents),
            currency: Set(balance.currency.clone()),
            status: Set(WithdrawalStatus::Requested),
            payout_method: Set(payout_method),
            processed_at: Set(None),
            processed_by: Set(None),
            failure_reason: Set(None),
            external_ref: Set(None),
            ..Default::default()
        }
        .insert(tx)
        .await?;
        NewEntry {
            provider_id,
            kind: TransactionKind::Withdrawal,
            bucket: BalanceBucket::Available,
            amount_cents: -amount_cents,
            currency: balance.currency.clone(),
            appointment_id: None,
            withdrawal_id: Some(withdrawal.id),
            external_ref: withdrawal.id.to_string(),
            description: "Withdrawal requested".into(),
        }
        .insert(tx, scope)
        .await?;
        add_to_balance(tx, scope, &balance, -amount_cents, 0).await?;
        Ok(withdrawal)
    }

    /// Marks a `requested` or `processing` withdrawal as `paid` (the money already
    /// left the balance when it was requested). `processed_by` must be a user of the
    /// organization; `payout_ref` is the payout's id at the bank or processor.
    /// Any other status is refused with `StorageError::InvalidState`
    /// (`withdrawal_not_open`).
    pub async fn complete_withdrawal(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        withdrawal_id: Uuid,
        processed_by: Option<Uuid>,
        payout_ref: Option<String>,
    ) -> Result<payment_withdrawal::Model, StorageError> {
        check_processor(tx, scope, processed_by).await?;
        let withdrawal = open_withdrawal(tx, scope, withdrawal_id, "completed").await?;
        let mut row = withdrawal.into_active_model();
        row.status = Set(WithdrawalStatus::Paid);
        row.processed_at = Set(Some(agenda_entity::now()));
        row.processed_by = Set(processed_by);
        if payout_ref.is_some() {
            row.external_ref = Set(payout_ref);
        }
        Ok(row.update(tx).await?)
    }

    /// Marks a `requested` or `processing` withdrawal as `failed` with `reason`, and
    /// returns its amount to the available balance (a `withdrawal` entry of +amount).
    /// Any other status is refused with `StorageError::InvalidState`
    /// (`withdrawal_not_open`), so the money is returned at most once.
    pub async fn fail_withdrawal(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        withdrawal_id: Uuid,
        processed_by: Option<Uuid>,
        reason: &str,
    ) -> Result<payment_withdrawal::Model, StorageError> {
        check_processor(tx, scope, processed_by).await?;
        // Lock order everywhere: the balance, then the withdrawal.
        let provider_id = get_withdrawal(tx, scope, withdrawal_id).await?.provider_id;
        let balance = lock_balance(tx, scope, provider_id)
            .await?
            .ok_or(StorageError::not_found("provider balance"))?;
        let withdrawal = open_withdrawal(tx, scope, withdrawal_id, "failed").await?;
        let amount = withdrawal.amount_cents;
        let mut row = withdrawal.into_active_model();
        row.status = Set(WithdrawalStatus::Failed);
        row.processed_at = Set(Some(agenda_entity::now()));
        row.processed_by = Set(processed_by);
        row.failure_reason = Set(Some(reason.to_owned()));
        let failed = row.update(tx).await?;
        NewEntry {
            provider_id,
            kind: TransactionKind::Withdrawal,
            bucket: BalanceBucket::Available,
            amount_cents: amount,
            currency: failed.currency.clone(),
            appointment_id: None,
            withdrawal_id: Some(failed.id),
            external_ref: format!("{}:returned", failed.id),
            description: "Withdrawal failed: amount returned".into(),
        }
        .insert(tx, scope)
        .await?;
        add_to_balance(tx, scope, &balance, amount, 0).await?;
        Ok(failed)
    }

    /// The withdrawal `id` of this organization; another organization's is "not found".
    pub async fn withdrawal(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<payment_withdrawal::Model, StorageError> {
        get_withdrawal(db, scope, id).await
    }

    /// The provider's balance (zero when the provider has no ledger yet). A provider
    /// of another organization is "not found".
    pub async fn balance(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        provider_id: Uuid,
    ) -> Result<Balance, StorageError> {
        let row = provider_balance::Entity::find_in(scope)
            .filter(provider_balance::Column::ProviderId.eq(provider_id))
            .one(db)
            .await?;
        match row {
            Some(b) => Ok(Balance {
                provider_id,
                available_cents: b.available_cents,
                pending_cents: b.pending_cents,
                currency: Some(b.currency),
            }),
            None => {
                ensure_provider(db, scope, provider_id).await?;
                Ok(Balance {
                    provider_id,
                    available_cents: 0,
                    pending_cents: 0,
                    currency: None,
                })
            }
        }
    }

    /// The provider's ledger entries, one keyset page at a time (at most
    /// [`MAX_PAGE_SIZE`](super::resource::MAX_PAGE_SIZE) per page). A provider of
    /// another organization is "not found".
    pub async fn entries(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        provider_id: Uuid,
        query: &EntriesQuery,
    ) -> Result<Page<Entry>, StorageError> {
        ensure_provider(db, scope, provider_id).await?;
        use provider_transaction::Column as C;
        let limit = page_size(query.limit);
        let mut select =
            provider_transaction::Entity::find_in(scope).filter(C::ProviderId.eq(provider_id));
        if let Some(cursor) = &query.after {
            let after = id_cursor(cursor)?;
            select = select.filter(if query.newest_first {
                C::Id.lt(after)
            } else {
                C::Id.gt(after)
            });
        }
        let order = if query.newest_first {
            Order::Desc
        } else {
            Order::Asc
        };
        let items = select
            .order_by(C::Id, order)
            .limit(limit + 1)
            .all(db)
            .await?;
        Ok(Page::from_probe(items, limit, |e| e.id.to_string()))
    }

    /// The sums of the provider's ledger per bucket, computed by the database
    /// (`SUM(amount_cents) … GROUP BY bucket`).
    pub async fn ledger_sums(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        provider_id: Uuid,
    ) -> Result<LedgerSums, StorageError> {
        use provider_transaction::Column as C;
        let rows: Vec<(BalanceBucket, i64)> = provider_transaction::Entity::find_in(scope)
            .select_only()
            .column(C::Bucket)
            // PostgreSQL's SUM of a bigint is a numeric: cast it back.
            .column_as(
                Expr::cust("CAST(SUM(\"provider_transactions\".\"amount_cents\") AS BIGINT)"),
                "total",
            )
            .filter(C::ProviderId.eq(provider_id))
            .group_by(C::Bucket)
            .into_tuple()
            .all(db)
            .await?;
        let mut sums = LedgerSums::default();
        for (bucket, total) in rows {
            match bucket {
                BalanceBucket::Available => sums.available_cents = total,
                BalanceBucket::Pending => sums.pending_cents = total,
            }
        }
        Ok(sums)
    }

    /// Whether the provider's balance row equals the sums of its ledger (a provider
    /// without a balance row must have no entries). A provider of another
    /// organization is "not found".
    pub async fn verify_balance(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        provider_id: Uuid,
    ) -> Result<bool, StorageError> {
        let balance = Self::balance(db, scope, provider_id).await?;
        let sums = Self::ledger_sums(db, scope, provider_id).await?;
        Ok(sums.available_cents == balance.available_cents
            && sums.pending_cents == balance.pending_cents)
    }
}

/// A ledger entry about to be written.
struct NewEntry {
    provider_id: Uuid,
    kind: TransactionKind,
    bucket: BalanceBucket,
    amount_cents: i64,
    currency: String,
    appointment_id: Option<Uuid>,
    withdrawal_id: Option<Uuid>,
    external_ref: String,
    description: String,
}

impl NewEntry {
    async fn insert(
        self,
        tx: &DatabaseTransaction,
        scope: TenantScope,
    ) -> Result<Entry, StorageError> {
        Ok(provider_transaction::ActiveModel {
            organization_id: Set(scope.organization_id()),
            provider_id: Set(self.provider_id),
            kind: Set(self.kind),
            bucket: Set(self.bucket),
            amount_cents: Set(self.amount_cents),
            currency: Set(self.currency),
            appointment_id: Set(self.appointment_id),
            withdrawal_id: Set(self.withdrawal_id),
            external_ref: Set(Some(self.external_ref)),
            description: Set(Some(self.description)),
            ..Default::default()
        }
        .insert(tx)
        .await?)
    }
}

/// What the ledger needs of an appointment, read in the caller's transaction.
#[derive(Debug, FromQueryResult)]
struct AppointmentMoney {
    provider_id: Uuid,
    status: AppointmentStatus,
    payment_status: PaymentStatus,
    price_cents: i64,
    discount_cents: i64,
    currency: String,
}

impl AppointmentMoney {
    /// The appointment `id` of the scope's organization, or "not found". (A plain
    /// scoped statement: the appointments repository owns that entity's scope.)
    async fn load(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<AppointmentMoney, StorageError> {
        let backend = db.get_database_backend();
        let (a, b) = match backend {
            DbBackend::Postgres => ("$1", "$2"),
            _ => ("?", "?"),
        };
        let sql = format!(
            "SELECT provider_id, status, payment_status, price_cents, discount_cents, currency \
             FROM appointments WHERE id = {a} AND organization_id = {b}"
        );
        let stmt = Statement::from_sql_and_values(
            backend,
            sql,
            [id.into(), scope.organization_id().into()],
        );
        AppointmentMoney::find_by_statement(stmt)
            .one(db)
            .await?
            .ok_or(StorageError::not_found("appointment"))
    }
}

/// "Not found" unless `provider_id` is a user of the scope's organization.
async fn ensure_provider(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    provider_id: Uuid,
) -> Result<(), StorageError> {
    if exists_in_tenant(db, scope, "users", provider_id).await? {
        Ok(())
    } else {
        Err(StorageError::not_found("provider"))
    }
}

/// `processed_by`, when given, must be a user of the organization.
async fn check_processor(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    processed_by: Option<Uuid>,
) -> Result<(), StorageError> {
    match processed_by {
        Some(user) if !exists_in_tenant(db, scope, "users", user).await? => {
            Err(StorageError::InvalidReference {
                constraint: Some("fk_payment_withdrawals_processed_by_users".into()),
            })
        }
        _ => Ok(()),
    }
}

/// The provider's balance row, locked for the rest of the transaction
/// (`FOR UPDATE` on PostgreSQL; on SQLite the `BEGIN IMMEDIATE` transaction already
/// holds the write lock and sea-query omits the clause).
async fn lock_balance(
    tx: &DatabaseTransaction,
    scope: TenantScope,
    provider_id: Uuid,
) -> Result<Option<provider_balance::Model>, StorageError> {
    Ok(provider_balance::Entity::find_in(scope)
        .filter(provider_balance::Column::ProviderId.eq(provider_id))
        .lock_exclusive()
        .one(tx)
        .await?)
}

/// The provider's balance row, locked; created (empty, in `currency`) when missing.
/// Race-safe: two transactions creating it at once both insert with
/// `ON CONFLICT (provider_id) DO NOTHING` (the second waits for the first on the
/// unique index and then does nothing), then both lock the one row.
async fn lock_or_create_balance(
    tx: &DatabaseTransaction,
    scope: TenantScope,
    provider_id: Uuid,
    currency: &str,
) -> Result<provider_balance::Model, StorageError> {
    if let Some(balance) = lock_balance(tx, scope, provider_id).await? {
        return Ok(balance);
    }
    ensure_provider(tx, scope, provider_id).await?;
    let now = agenda_entity::now();
    provider_balance::Entity::insert(provider_balance::ActiveModel {
        id: Set(agenda_entity::new_id()),
        organization_id: Set(scope.organization_id()),
        provider_id: Set(provider_id),
        available_cents: Set(0),
        pending_cents: Set(0),
        currency: Set(currency.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict_do_nothing_on([provider_balance::Column::ProviderId])
    .exec_without_returning(tx)
    .await?;
    lock_balance(tx, scope, provider_id)
        .await?
        .ok_or(StorageError::not_found("provider balance"))
}

/// Adds the deltas to the (locked) balance row. The update is relative
/// (`available_cents = available_cents + Δ`), so even a caller that skipped the lock
/// could not lose an update; the CHECK constraints refuse a negative result.
async fn add_to_balance(
    tx: &DatabaseTransaction,
    scope: TenantScope,
    balance: &provider_balance::Model,
    available_delta: i64,
    pending_delta: i64,
) -> Result<(), StorageError> {
    use provider_balance::Column as C;
    use sea_orm::sea_query::ExprTrait as _;
    let result = provider_balance::Entity::update_in(scope)
        .col_expr(
            C::AvailableCents,
            Expr::col(C::AvailableCents).add(available_delta),
        )
        .col_expr(
            C::PendingCents,
            Expr::col(C::PendingCents).add(pending_delta),
        )
        .col_expr(C::UpdatedAt, Expr::value(agenda_entity::now()))
        .filter(C::Id.eq(balance.id))
        .exec(tx)
        .await?;
    if result.rows_affected != 1 {
        return Err(StorageError::not_found("provider balance"));
    }
    Ok(())
}

/// The payment (and commission) already recorded for `appointment_id`, if any.
async fn payment_of(
    tx: &DatabaseTransaction,
    scope: TenantScope,
    provider_id: Uuid,
    appointment_id: Uuid,
) -> Result<Option<(Entry, Option<Entry>)>, StorageError> {
    use provider_transaction::Column as C;
    let of_kind = |kind: TransactionKind| {
        provider_transaction::Entity::find_in(scope)
            .filter(C::ProviderId.eq(provider_id))
            .filter(C::AppointmentId.eq(appointment_id))
            .filter(C::Kind.eq(kind))
            .order_by_asc(C::Id)
    };
    let Some(payment) = of_kind(TransactionKind::Payment).one(tx).await? else {
        return Ok(None);
    };
    let commission = of_kind(TransactionKind::Commission).one(tx).await?;
    Ok(Some((payment, commission)))
}

/// `NOT EXISTS` a release of this payment entry. The release's `external_ref` holds
/// the entry id as 32 lower-case hex digits, which each engine derives from its own
/// UUID storage (PostgreSQL `uuid`, SQLite 16-byte blob).
fn not_released(backend: DbBackend) -> Expr {
    let id_hex = match backend {
        DbBackend::Postgres => "replace(CAST(\"provider_transactions\".\"id\" AS text), '-', '')",
        _ => "lower(hex(\"provider_transactions\".\"id\"))",
    };
    Expr::cust(format!(
        "NOT EXISTS (SELECT 1 FROM provider_transactions AS released \
         WHERE released.provider_id = \"provider_transactions\".\"provider_id\" \
         AND released.kind = 'adjustment' \
         AND released.external_ref = 'release:' || {id_hex} || ':pending')"
    ))
}

/// `fee`'s share of `part` of `whole`, rounded half up (`whole` > 0).
fn share(fee: i64, part: i64, whole: i64) -> i64 {
    let (fee, part, whole) = (i128::from(fee), i128::from(part), i128::from(whole));
    i64::try_from((2 * fee * part + whole) / (2 * whole)).unwrap_or(i64::MAX)
}

/// Every refund entry of the appointment, with the adjustments refunds wrote
/// (`external_ref` starting with `refund:`).
async fn refund_entries(
    tx: &DatabaseTransaction,
    scope: TenantScope,
    provider_id: Uuid,
    appointment_id: Uuid,
) -> Result<Vec<Entry>, StorageError> {
    use provider_transaction::Column as C;
    Ok(provider_transaction::Entity::find_in(scope)
        .filter(C::ProviderId.eq(provider_id))
        .filter(C::AppointmentId.eq(appointment_id))
        .filter(C::ExternalRef.starts_with("refund:"))
        .order_by_asc(C::Id)
        .all(tx)
        .await?)
}

/// Whether `payment` has been moved to `available` ([`LedgerRepo::release_due`]).
async fn is_released(
    tx: &DatabaseTransaction,
    scope: TenantScope,
    provider_id: Uuid,
    payment: &Entry,
) -> Result<bool, StorageError> {
    if payment.bucket == BalanceBucket::Available {
        return Ok(true);
    }
    use provider_transaction::Column as C;
    let reference = format!("release:{}:{}", payment.id.simple(), BalanceBucket::Pending);
    Ok(provider_transaction::Entity::find_in(scope)
        .filter(C::ProviderId.eq(provider_id))
        .filter(C::Kind.eq(TransactionKind::Adjustment))
        .filter(C::ExternalRef.eq(reference))
        .one(tx)
        .await?
        .is_some())
}

/// The payment status after `refunded` of `paid` went back: `refunded` when all of
/// it did, `partially_refunded` when part of it did, else unchanged.
fn refund_status(refunded: i64, paid: i64, before: PaymentStatus) -> PaymentStatus {
    if refunded >= paid {
        PaymentStatus::Refunded
    } else if refunded > 0 {
        PaymentStatus::PartiallyRefunded
    } else {
        before
    }
}

/// Sets the appointment's `payment_status` after a refund (the appointments
/// repository owns the rest of the row).
async fn set_payment_status(
    tx: &DatabaseTransaction,
    scope: TenantScope,
    id: Uuid,
    status: PaymentStatus,
) -> Result<(), StorageError> {
    let changes = appointment::ActiveModel {
        payment_status: Set(status),
        updated_at: Set(agenda_entity::now()),
        ..Default::default()
    };
    appointment::Entity::update_in(scope)
        .set(changes)
        .filter(appointment::Column::Id.eq(id))
        .exec(tx)
        .await?;
    Ok(())
}

async fn get_withdrawal(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    id: Uuid,
) -> Result<payment_withdrawal::Model, StorageError> {
    payment_withdrawal::Entity::find_in(scope)
        .filter(payment_withdrawal::Column::Id.eq(id))
        .one(db)
        .await?
        .ok_or(StorageError::not_found("withdrawal"))
}

/// The withdrawal, locked, if it may still be `to` (paid or failed).
async fn open_withdrawal(
    tx: &DatabaseTransaction,
    scope: TenantScope,
    id: Uuid,
    to: &str,
) -> Result<payment_withdrawal::Model, StorageError> {
    let withdrawal = payment_withdrawal::Entity::find_in(scope)
        .filter(payment_withdrawal::Column::Id.eq(id))
        .lock_exclusive()
        .one(tx)
        .await?
        .ok_or(StorageError::not_found("withdrawal"))?;
    if !OPEN_WITHDRAWAL.contains(&withdrawal.status) {
        return Err(StorageError::InvalidState {
            code: "withdrawal_not_open",
            message: format!(
                "the withdrawal is {}; only a requested or processing withdrawal can be {to}",
                withdrawal.status
            ),
        });
    }
    Ok(withdrawal)
}
