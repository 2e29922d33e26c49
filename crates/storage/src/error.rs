//! The storage error: one classification of database failures for both engines.
//!
//! Error policy (the whole project follows it):
//! - the data layer returns [`StorageError`], a narrow, engine-neutral description of
//!   what went wrong, with the constraint name when one was violated;
//! - it is mapped to HTTP exactly once, at the edge (`agenda-api`'s error module);
//! - "the database cannot serve us right now" (pool exhausted, server unreachable or
//!   restarting, SQLite busy) is [`StorageError::Unavailable`] and becomes 503 with
//!   `Retry-After`, never a 500;
//! - the underlying driver error is kept as the `source` for logs and never shown
//!   to API clients.

use std::time::Duration;

use sea_orm::{DbErr, RuntimeErr};
use sqlx::error::ErrorKind;

/// Why a write conflicted with data already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// A unique index or primary key (`uq_…`, `pk_…`).
    Unique,
    /// An exclusion constraint (PostgreSQL), e.g. two overlapping appointments.
    Exclusion,
    /// A serialization failure or deadlock: retrying the transaction may succeed.
    Serialization,
}

type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The row does not exist, or belongs to another tenant.
    #[error("{entity} not found")]
    NotFound { entity: &'static str },

    /// A uniqueness, exclusion or serialization conflict.
    #[error("conflict ({kind:?}) on {}", constraint.as_deref().unwrap_or("an unnamed constraint"))]
    Conflict {
        kind: ConflictKind,
        constraint: Option<String>,
    },

    /// A foreign key points at a row that does not exist (or is still referenced on delete).
    #[error("invalid reference ({})", constraint.as_deref().unwrap_or("foreign key"))]
    InvalidReference { constraint: Option<String> },

    /// A CHECK or NOT NULL constraint rejected the row.
    #[error("check constraint violated ({})", constraint.as_deref().unwrap_or("unnamed"))]
    CheckViolation { constraint: Option<String> },

    /// A rule enforced by the storage layer itself rather than by a constraint.
    #[error("invalid {field}: {message}")]
    Validation {
        field: &'static str,
        message: String,
    },

    /// The row is in a state that does not allow the change (an illegal status
    /// transition, rescheduling a completed appointment). `code` is machine-readable.
    #[error("{message}")]
    InvalidState { code: &'static str, message: String },

    /// The change exists, but the acting user may not make it.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },

    /// The database cannot serve the request now; the caller may retry later.
    #[error("database unavailable: {reason}")]
    Unavailable {
        reason: &'static str,
        retry_after: Duration,
        #[source]
        source: Option<Source>,
    },

    /// A statement or lock wait exceeded its limit.
    #[error("database statement timed out")]
    Timeout {
        #[source]
        source: Option<Source>,
    },

    /// Anything else: a bug or an unexpected state. Logged, shown as a generic 500.
    #[error("database error")]
    Other(#[source] Source),
}

impl StorageError {
    pub fn not_found(entity: &'static str) -> Self {
        StorageError::NotFound { entity }
    }

    pub fn unavailable(reason: &'static str, retry_after: Duration) -> Self {
        StorageError::Unavailable {
            reason,
            retry_after,
            source: None,
        }
    }

    /// The violated constraint, when the error names one.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            StorageError::Conflict { constraint, .. }
            | StorageError::InvalidReference { constraint }
            | StorageError::CheckViolation { constraint } => constraint.as_deref(),
            _ => None,
        }
    }

    /// True when retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StorageError::Unavailable { .. }
                | StorageError::Timeout { .. }
                | StorageError::Conflict {
                    kind: ConflictKind::Serialization,
                    ..
                }
        )
    }
}

/// The `reason` of [`StorageError::Unavailable`] when the pool had no free connection
/// within `DB_POOL_TIMEOUT`.
pub const POOL_TIMEOUT: &str = "no database connection became free in time";

/// How long clients are told to wait when the pool is exhausted or the server away.
const RETRY_SOON: Duration = Duration::from_secs(1);
const RETRY_LATER: Duration = Duration::from_secs(5);

impl From<agenda_entity::rules::RuleViolation> for StorageError {
    /// A row-level rule broken by a merged partial update.
    fn from(v: agenda_entity::rules::RuleViolation) -> Self {
        StorageError::Validation {
            field: v.field,
            message: v.message.to_string(),
        }
    }
}

impl From<DbErr> for StorageError {
    fn from(err: DbErr) -> Self {
        classify(err)
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        classify_sqlx(&err).unwrap_or_else(|| StorageError::Other(Box::new(err)))
    }
}

/// Whether the database server itself answered `err` (an error with a SQLSTATE or
/// SQLite code). For a failed COMMIT that means the transaction was rolled back; any
/// other failure — the connection lost or timed out while the COMMIT ran — leaves
/// its outcome unknown.
pub fn refused_by_server(err: &DbErr) -> bool {
    matches!(
        err,
        DbErr::Conn(RuntimeErr::SqlxError(e))
            | DbErr::Exec(RuntimeErr::SqlxError(e))
            | DbErr::Query(RuntimeErr::SqlxError(e))
            if matches!(e.as_ref(), sqlx::Error::Database(_))
    )
}

/// Whether a statement failed because its connection is gone — the socket closed or
/// failed, or the server ended the backend (`57P01`–`57P03`, `08…`) — as opposed to
/// the database refusing the statement. A connection the pool handed out without a
/// pre-ping fails its first statement this way when it died while idle; for a
/// `BEGIN`, nothing happened yet and another connection may be tried.
pub fn connection_lost(err: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return false;
    };
    match e.as_ref() {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(code.as_ref(), "57P01" | "57P02" | "57P03") || code.starts_with("08")
        }),
        _ => false,
    }
}

/// Classifies a sea-orm error (which wraps the driver's).
pub fn classify(err: DbErr) -> StorageError {
    match &err {
        DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout) => StorageError::Unavailable {
            reason: "no database connection became free in time",
            retry_after: RETRY_SOON,
            source: Some(Box::new(err)),
        },
        DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed) => {
            StorageError::Unavailable {
                reason: "the connection pool is closed",
                retry_after: RETRY_LATER,
                source: Some(Box::new(err)),
            }
        }
        DbErr::RecordNotFound(_) | DbErr::RecordNotUpdated => {
            StorageError::NotFound { entity: "record" }
        }
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => match classify_sqlx(e) {
            Some(StorageError::Unavailable {
                reason,
                retry_after,
                ..
            }) => StorageError::Unavailable {
                reason,
                retry_after,
                source: Some(Box::new(err)),
            },
            Some(StorageError::Timeout { .. }) => StorageError::Timeout {
                source: Some(Box::new(err)),
            },
            Some(other) => other,
            // Opening a connection failed in a way the driver does not name (a
            // server half up or going down answers the TLS or startup handshake
            // with garbage): the database cannot serve us now, which is a 503.
            None if matches!(err, DbErr::Conn(_)) => StorageError::Unavailable {
                reason: "a database connection could not be opened",
                retry_after: RETRY_SOON,
                source: Some(Box::new(err)),
            },
            None => StorageError::Other(Box::new(err)),
        },
        // sea-orm reports a connection lost inside a transaction as an internal
        // connection error; it is the same condition as an I/O failure.
        DbErr::Conn(RuntimeErr::Internal(_)) => StorageError::Unavailable {
            reason: "the database connection was lost",
            retry_after: RETRY_SOON,
            source: Some(Box::new(err)),
        },
        _ => StorageError::Other(Box::new(err)),
    }
}

/// Classifies a driver error; `None` means "other".
fn classify_sqlx(err: &sqlx::Error) -> Option<StorageError> {
    let unavailable = |reason| StorageError::Unavailable {
        reason,
        retry_after: RETRY_LATER,
        source: None,
    };
    match err {
        sqlx::Error::PoolTimedOut => Some(StorageError::Unavailable {
            reason: POOL_TIMEOUT,
            retry_after: RETRY_SOON,
            source: None,
        }),
        sqlx::Error::PoolClosed => Some(unavailable("the connection pool is closed")),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            Some(unavailable("the database server cannot be reached"))
        }
        sqlx::Error::RowNotFound => Some(StorageError::NotFound { entity: "record" }),
        sqlx::Error::Database(db) => classify_database(db.as_ref()),
        _ => None,
    }
}

fn classify_database(db: &dyn sqlx::error::DatabaseError) -> Option<StorageError> {
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let named = || db.constraint().map(str::to_owned);
    match db.kind() {
        ErrorKind::UniqueViolation => {
            return Some(StorageError::Conflict {
                kind: ConflictKind::Unique,
                constraint: named().or_else(|| sqlite_unique_name(db.message(), &code)),
            });
        }
        ErrorKind::ExclusionViolation => {
            return Some(StorageError::Conflict {
                kind: ConflictKind::Exclusion,
                constraint: named(),
            });
        }
        ErrorKind::ForeignKeyViolation => {
            return Some(StorageError::InvalidReference {
                constraint: named(),
            });
        }
        ErrorKind::CheckViolation => {
            return Some(StorageError::CheckViolation {
                constraint: named().or_else(|| sqlite_check_name(db.message())),
            });
        }
        ErrorKind::NotNullViolation => {
            return Some(StorageError::CheckViolation {
                constraint: named().or_else(|| Some(format!("not_null:{}", db.message()))),
            });
        }
        _ => {}
    }
    let transient = |reason| StorageError::Unavailable {
        reason,
        retry_after: RETRY_SOON,
        source: None,
    };
    match code.as_str() {
        // PostgreSQL: serialization_failure, deadlock_detected.
        "40001" | "40P01" => Some(StorageError::Conflict {
            kind: ConflictKind::Serialization,
            constraint: None,
        }),
        // insufficient_privilege raised by a row-level security policy: a write of a
        // row outside the transaction's tenant. The storage layer never issues one
        // (every write is scoped), so this is a refused cross-tenant write.
        "42501" if db.message().contains("row-level security") => Some(StorageError::Forbidden {
            code: "tenant_boundary",
            message: "the row belongs to another organization than this transaction's".into(),
        }),
        // query_canceled (statement_timeout), lock_not_available (lock_timeout).
        "57014" | "55P03" => Some(StorageError::Timeout { source: None }),
        // admin_shutdown, crash_shutdown, cannot_connect_now, idle-in-transaction
        // timeout, too_many_connections, out of resources; connection exceptions (08…).
        "57P01" | "57P02" | "57P03" | "25P03" | "53300" | "53000" | "53100" | "53200" => {
            Some(transient("the database server is restarting or overloaded"))
        }
        c if c.starts_with("08") => Some(transient("the database connection failed")),
        // SQLite: BUSY (and its extended codes) and LOCKED once busy_timeout has passed.
        "5" | "6" | "261" | "262" | "517" | "773" => Some(transient("the database is busy")),
        _ => None,
    }
}

/// SQLite does not name the unique index it reports ("UNIQUE constraint failed:
/// users.organization_id, users.email"), but the naming convention does:
/// `uq_users_organization_id_email`, or `pk_users` for the primary key.
fn sqlite_unique_name(message: &str, code: &str) -> Option<String> {
    let columns = message.strip_prefix("UNIQUE constraint failed: ")?;
    let mut table = None;
    let mut names = Vec::new();
    for qualified in columns.split(", ") {
        let (t, c) = qualified.split_once('.')?;
        table = Some(t);
        names.push(c);
    }
    let table = table?;
    if code == "1555" {
        return Some(format!("pk_{table}"));
    }
    Some(format!("uq_{table}_{}", names.join("_")))
}

/// SQLite names the failed CHECK when the constraint is named:
/// "CHECK constraint failed: ck_organizations_status".
fn sqlite_check_name(message: &str) -> Option<String> {
    message
        .strip_prefix("CHECK constraint failed: ")
        .map(|name| name.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_constraint_names_follow_the_convention() {
        assert_eq!(
            sqlite_unique_name(
                "UNIQUE constraint failed: users.organization_id, users.email",
                "2067"
            )
            .as_deref(),
            Some("uq_users_organization_id_email")
        );
        assert_eq!(
            sqlite_unique_name("UNIQUE constraint failed: users.id", "1555").as_deref(),
            Some("pk_users")
        );
        assert_eq!(
            sqlite_check_name("CHECK constraint failed: ck_organizations_status").as_deref(),
            Some("ck_organizations_status")
        );
    }

    /// Seen while PostgreSQL restarted: a connect whose TLS negotiation got a stray
    /// byte. It used to be a 500.
    #[test]
    fn a_garbled_connect_is_unavailable() {
        let protocol = sqlx::Error::Protocol(
            "encountered unexpected or invalid data: unexpected response from SSLRequest: 0x00"
                .into(),
        );
        let err = classify(DbErr::Conn(RuntimeErr::SqlxError(protocol.into())));
        assert!(matches!(err, StorageError::Unavailable { .. }), "{err:?}");
        // The same driver error on a statement stays unexplained (a bug, not an outage).
        let protocol = sqlx::Error::Protocol("unexpected message".into());
        let err = classify(DbErr::Query(RuntimeErr::SqlxError(protocol.into())));
        assert!(matches!(err, StorageError::Other(_)), "{err:?}");
    }

    #[test]
    fn pool_timeout_is_unavailable_with_retry_after() {
        let err = classify(DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout));
        assert!(
            matches!(err, StorageError::Unavailable { retry_after, .. } if retry_after == RETRY_SOON)
        );
        assert!(err.is_transient());
    }
}
