//! The e-mail outbox (`outbox_messages`): writing messages in the caller's
//! transaction, and the delivery worker's claim / outcome statements.
//!
//! **Writing.** [`OutboxRepo::enqueue`] inserts an already rendered message in the
//! transaction of the event that causes it, so the message exists exactly when the
//! event committed: a rolled-back booking never mails anyone.
//!
//! **Claiming.** A worker takes due messages with [`OutboxRepo::claim`]: it sets
//! them `sending` with a lease (`claimed_by`, `claimed_until`) and counts the
//! attempt, in one statement that commits at once. A message is due when it is
//! `queued` and its `next_attempt_at` has come, or `sending` with a lease that ended
//! (its worker died mid-send).
//!
//! - PostgreSQL: the `SECURITY DEFINER` function `agenda_outbox_claim` (migration 12)
//!   picks the rows with `FOR UPDATE SKIP LOCKED`, so concurrent workers in any number
//!   of processes skip each other's rows instead of waiting or claiming them twice.
//!   It runs as the schema owner, because under row-level security the application
//!   role sees one tenant per transaction and the worker serves them all; it returns
//!   only ids and tenants, and everything else is read and written inside each
//!   message's own tenant ([`OutboxRepo::get`], [`OutboxRepo::record`]).
//! - SQLite: the same `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING` in a
//!   `BEGIN IMMEDIATE` transaction; the database's single writer makes it atomic
//!   across processes sharing the file.
//!
//! **Outcome.** [`OutboxRepo::record`] writes what happened (sent, retry at, dead)
//! only while the worker still holds the claim (`claimed_by` = it, `status =
//! sending`), so a worker whose lease ran out cannot overwrite the outcome of the
//! worker that took the message over.
//!
//! The operator commands ([`OutboxRepo::list_all`], [`OutboxRepo::find_any`],
//! [`OutboxRepo::requeue`], [`OutboxRepo::purge_finished`]) work across tenants by nature; it needs a role that
//! sees every tenant (the schema owner on PostgreSQL), like backups.

use agenda_entity::enums::{Locale, MessageKind, OutboxStatus};
use agenda_entity::outbox_message;
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DeriveIntoActiveModel, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde::Serialize;
use uuid::Uuid;

use crate::db::{Db, Engine};
use crate::error::StorageError;
use crate::tenant::{TenantOwned, TenantScope};

impl TenantOwned for outbox_message::Entity {
    fn tenant_column() -> outbox_message::Column {
        outbox_message::Column::OrganizationId
    }
}

/// Longest `last_error` kept, in characters: enough for an SMTP reply.
pub const MAX_ERROR_CHARS: usize = 500;

/// A rendered message to write to the outbox. [`OutboxRepo::enqueue`] adds the
/// tenant and the due time; it starts `queued` with no attempt.
#[derive(Debug, Clone, PartialEq, Eq, DeriveIntoActiveModel)]
#[sea_orm(
    active_model = "outbox_message::ActiveModel",
    set(status = "OutboxStatus::Queued", attempts = "0")
)]
pub struct NewMessage {
    /// The row's id (a UUIDv7, [`agenda_entity::new_id`]); the `Message-ID` is
    /// usually built from it.
    pub id: Uuid,
    /// The organization's user it is for, if any (kept for the record; the address
    /// below is what is used).
    pub recipient_user_id: Option<Uuid>,
    pub kind: MessageKind,
    pub locale: Locale,
    pub to_address: String,
    pub to_name: Option<String>,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    /// The `Message-ID` header value, `<unique@domain>`.
    pub message_id: String,
}

/// A message a worker has claimed: where to find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub id: Uuid,
    pub scope: TenantScope,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The SMTP server accepted the message.
    Sent,
    /// It failed for now; try again at this instant.
    RetryAt { at: DateTime<Utc>, error: String },
    /// It failed for good (a permanent refusal, or the last allowed attempt).
    Dead { error: String },
    /// Not tried after all (the worker is stopping): back to the queue as it was,
    /// the claim's attempt not counted.
    Released,
}

/// How many messages are in a status, and since when the oldest waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusCount {
    pub status: OutboxStatus,
    pub messages: i64,
    /// `created_at` of the oldest message in this status.
    pub oldest: Option<DateTime<Utc>>,
}

/// The operator listing's filter: newest first.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<OutboxStatus>,
    pub organization_id: Option<Uuid>,
    pub limit: u64,
}

pub struct OutboxRepo;

impl OutboxRepo {
    /// Writes a message for delivery as soon as possible, in the caller's
    /// transaction (or on any executor: the message exists when that commits).
    pub async fn enqueue(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        message: NewMessage,
        now: DateTime<Utc>,
    ) -> Result<outbox_message::Model, StorageError> {
        let mut row = message.into_active_model();
        row.organization_id = Set(scope.organization_id());
        row.next_attempt_at = Set(now);
        Ok(row.insert(db).await?)
    }

    /// Claims up to `batch` due messages of every tenant for `worker` until
    /// `lease_until`, counting one attempt each, and commits the claim. See the
    /// module documentation for how each engine keeps two workers off one message.
    pub async fn claim(
        db: &Db,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        batch: u32,
    ) -> Result<Vec<Claimed>, StorageError> {
        let batch = i32::try_from(Ord::max(batch, 1)).unwrap_or(i32::MAX);
        let rows = match db.engine() {
            Engine::Postgres => {
                // A transaction of its own, not the bare pool: behind PgBouncer's
                // transaction mode a prepared statement needs one.
                let tx = db.begin().await?;
                let rows = tx
                    .query_all_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT id, organization_id FROM agenda_outbox_claim($1, $2, $3, $4)",
                        [worker.into(), now.into(), lease_until.into(), batch.into()],
                    ))
                    .await?;
                tx.commit().await?;
                rows
            }
            Engine::Sqlite => {
                let tx = db.begin().await?;
                let rows = tx
                    .query_all_raw(Statement::from_sql_and_values(
                        DbBackend::Sqlite,
                        "UPDATE outbox_messages \
                            SET status = 'sending', claimed_by = ?1, claimed_until = ?3, \
                                attempts = attempts + 1, updated_at = ?2 \
                          WHERE id IN ( \
                            SELECT id FROM outbox_messages \
                             WHERE (status = 'queued' AND next_attempt_at <= ?2) \
                                OR (status = 'sending' AND claimed_until <= ?2) \
                             ORDER BY next_attempt_at, id \
                             LIMIT ?4) \
                          RETURNING id, organization_id",
                        [worker.into(), now.into(), lease_until.into(), batch.into()],
                    ))
                    .await?;
                tx.commit().await?;
                rows
            }
        };
        rows.iter()
            .map(|row| {
                Ok(Claimed {
                    id: row.try_get("", "id")?,
                    scope: TenantScope::new(row.try_get("", "organization_id")?),
                })
            })
            .collect()
    }

    /// One message of this organization.
    pub async fn get(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<outbox_message::Model, StorageError> {
        outbox_message::Entity::find_in(scope)
            .filter(outbox_message::Column::Id.eq(id))
            .one(db)
            .await?
            .ok_or(StorageError::not_found("outbox message"))
    }

    /// Records the outcome of `worker`'s attempt and releases the claim. Returns
    /// false, changing nothing, when the worker no longer holds the message (its
    /// lease ended and another worker took it over).
    pub async fn record(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
        worker: &str,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        use outbox_message::Column as C;
        let none: Option<DateTime<Utc>> = None;
        let mut update = outbox_message::Entity::update_in(scope)
            .col_expr(C::ClaimedBy, Expr::value(Option::<String>::None))
            .col_expr(C::ClaimedUntil, Expr::value(none))
            .col_expr(C::UpdatedAt, Expr::value(now));
        update = match outcome {
            Outcome::Sent => update
                .col_expr(C::Status, Expr::value(OutboxStatus::Sent.as_str()))
                .col_expr(C::SentAt, Expr::value(Some(now)))
                .col_expr(C::LastError, Expr::value(Option::<String>::None)),
            Outcome::RetryAt { at, error } => update
                .col_expr(C::Status, Expr::value(OutboxStatus::Queued.as_str()))
                .col_expr(C::NextAttemptAt, Expr::value(at))
                .col_expr(C::LastError, Expr::value(Some(safe_error(&error)))),
            Outcome::Dead { error } => update
                .col_expr(C::Status, Expr::value(OutboxStatus::Dead.as_str()))
                .col_expr(C::LastError, Expr::value(Some(safe_error(&error)))),
            Outcome::Released => update
                .col_expr(C::Status, Expr::value(OutboxStatus::Queued.as_str()))
                .col_expr(C::Attempts, Expr::col(C::Attempts).sub(1)),
        };
        let result = update
            .filter(C::Id.eq(id))
            .filter(C::Status.eq(OutboxStatus::Sending))
            .filter(C::ClaimedBy.eq(worker))
            .exec(db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Messages per unfinished status (`queued`, `sending`) and `dead`, across
    /// tenants, for metrics: the PostgreSQL function `agenda_outbox_counts` gives the
    /// application role these numbers (and nothing else) despite row-level security.
    /// `sent` is not counted: that set only grows, and the worker counts what it sends.
    pub async fn counts(db: &impl ConnectionTrait) -> Result<Vec<StatusCount>, StorageError> {
        let sql = match db.get_database_backend() {
            DbBackend::Postgres => {
                "SELECT status, messages, oldest FROM agenda_outbox_counts() ORDER BY status"
            }
            _ => {
                "SELECT status, count(*) AS messages, min(created_at) AS oldest \
                 FROM outbox_messages WHERE status IN ('queued', 'sending', 'dead') \
                 GROUP BY status ORDER BY status"
            }
        };
        let rows = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await?;
        let mut counts = Vec::new();
        for row in rows {
            let status: String = row.try_get("", "status")?;
            let status = match status.as_str() {
                "queued" => OutboxStatus::Queued,
                "sending" => OutboxStatus::Sending,
                _ => OutboxStatus::Dead,
            };
            counts.push(StatusCount {
                status,
                messages: row.try_get("", "messages")?,
                oldest: row.try_get("", "oldest")?,
            });
        }
        Ok(counts)
    }

    /// Operator listing across tenants, newest first.
    #[allow(clippy::disallowed_methods)] // operator tooling over every tenant; see the module docs
    pub async fn list_all(
        db: &impl ConnectionTrait,
        filter: &ListFilter,
    ) -> Result<Vec<outbox_message::Model>, StorageError> {
        use outbox_message::Column as C;
        let mut query = outbox_message::Entity::find();
        if let Some(status) = filter.status {
            query = query.filter(C::Status.eq(status));
        }
        if let Some(organization) = filter.organization_id {
            query = query.filter(C::OrganizationId.eq(organization));
        }
        Ok(query
            .order_by_desc(C::CreatedAt)
            .order_by_desc(C::Id)
            .limit(Ord::max(filter.limit, 1))
            .all(db)
            .await?)
    }

    /// Operator lookup of one message by id (or a unique prefix of its id's text
    /// form, as `agenda mail list` prints it), across tenants.
    #[allow(clippy::disallowed_methods)] // operator tooling over every tenant; see the module docs
    pub async fn find_any(
        db: &impl ConnectionTrait,
        id_or_prefix: &str,
    ) -> Result<outbox_message::Model, StorageError> {
        let needle = id_or_prefix.trim().to_ascii_lowercase();
        if let Ok(id) = Uuid::parse_str(&needle) {
            return outbox_message::Entity::find_by_id(id)
                .one(db)
                .await?
                .ok_or(StorageError::not_found("outbox message"));
        }
        if needle.len() < 8 || !needle.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(StorageError::Validation {
                field: "id",
                message: "expected a message id, or at least its first 8 characters".into(),
            });
        }
        // UUIDv7 ids sort by time, so the prefix's rows are a contiguous key range.
        let low = Uuid::parse_str(&pad(&needle, '0')).ok();
        let high = Uuid::parse_str(&pad(&needle, 'f')).ok();
        let (Some(low), Some(high)) = (low, high) else {
            return Err(StorageError::not_found("outbox message"));
        };
        let found = outbox_message::Entity::find()
            .filter(outbox_message::Column::Id.between(low, high))
            .limit(2)
            .all(db)
            .await?;
        match <[outbox_message::Model; 1]>::try_from(found) {
            Ok([one]) => Ok(one),
            Err(found) if found.is_empty() => Err(StorageError::not_found("outbox message")),
            Err(_) => Err(StorageError::Validation {
                field: "id",
                message: format!("{id_or_prefix:?} matches several messages; give more of the id"),
            }),
        }
    }

    /// Puts a `dead` message back in the queue for one more round of attempts
    /// (operator, after fixing the cause). Other statuses are left alone.
    #[allow(clippy::disallowed_methods)] // operator tooling over every tenant; see the module docs
    pub async fn requeue(
        db: &impl ConnectionTrait,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        use outbox_message::Column as C;
        let result = outbox_message::Entity::update_many()
            .col_expr(C::Status, Expr::value(OutboxStatus::Queued.as_str()))
            .col_expr(C::Attempts, Expr::value(0))
            .col_expr(C::NextAttemptAt, Expr::value(now))
            .col_expr(C::UpdatedAt, Expr::value(now))
            .filter(C::Id.eq(id))
            .filter(C::Status.eq(OutboxStatus::Dead))
            .exec(db)
            .await?;
        if result.rows_affected == 0 {
            return Err(StorageError::InvalidState {
                code: "not_dead",
                message: "only a dead message can be queued again".into(),
            });
        }
        Ok(())
    }
}

impl OutboxRepo {
    /// Operator housekeeping: deletes the finished (`sent` and `dead`) messages of
    /// every tenant created before `before`, and returns how many. Queued and
    /// sending messages are never touched.
    #[allow(clippy::disallowed_methods)] // operator tooling over every tenant; see the module docs
    pub async fn purge_finished(
        db: &impl ConnectionTrait,
        before: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        use outbox_message::Column as C;
        let result = outbox_message::Entity::delete_many()
            .filter(C::Status.is_in([OutboxStatus::Sent, OutboxStatus::Dead]))
            .filter(C::CreatedAt.lt(before))
            .exec(db)
            .await?;
        Ok(result.rows_affected)
    }
}

/// `last_error` as stored: one line, cut to [`MAX_ERROR_CHARS`].
fn safe_error(error: &str) -> String {
    let line: String = error.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(MAX_ERROR_CHARS).collect()
}

/// A UUID's text form from a prefix, filled up with `fill` (dashes kept in place).
fn pad(prefix: &str, fill: char) -> String {
    let digits: String = prefix.chars().filter(|c| *c != '-').collect();
    let mut hex: String = digits
        .chars()
        .chain(std::iter::repeat(fill))
        .take(32)
        .collect();
    for at in [8, 13, 18, 23] {
        hex.insert(at, '-');
    }
    hex
}
