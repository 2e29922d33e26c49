//! Operator tooling for the database: what `agenda db …` shows and does.
//!
//! - [`status`]: engine, server version, migrations, the pool settings in force, pool
//!   figures and row counts per table (both engines);
//! - [`connections`] and [`kill_idle`]: the sessions of this database as
//!   `pg_stat_activity` reports them, and ending this application's idle ones
//!   (PostgreSQL only);
//! - [`create_app_role`]: the least-privilege login role the server runs as
//!   (PostgreSQL only), created or brought back in line idempotently.
//!
//! Row counts read across tenants by nature; they use explicit SQL over
//! `agenda_entity::catalog::tables()`, never the unscoped entity entry points. See
//! `docs/operations.md`.

use std::fmt;
use std::time::Duration;

use agenda_entity::catalog;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::{Db, Engine, PoolStatus, SettingsSummary};
use crate::error::StorageError;

/// The migration ledger sea-orm keeps (one row per applied migration).
pub const MIGRATION_TABLE: &str = "seaql_migrations";

/// Longest query text [`ConnectionInfo::query`] carries, in characters.
pub const QUERY_TEXT_LIMIT: usize = 200;

/// Default of [`AppRoleSpec::idle_in_transaction_timeout`]: long enough for any real
/// request, short enough that a transaction left open by a bug (or a forgotten
/// `psql` session) does not hold locks and bloat tables for hours.
pub const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(300);

/// Default of [`AppRoleSpec::connection_limit`].
pub const DEFAULT_CONNECTION_LIMIT: i32 = 50;

// ---------------------------------------------------------------------------------
// status

/// A snapshot of the database as an operator sees it. Safe to print: the URL in
/// [`SettingsSummary`] is redacted and nothing else carries a secret.
#[derive(Debug, Clone, Serialize)]
pub struct DbStatus {
    pub engine: Engine,
    /// `SELECT version()` on PostgreSQL, `sqlite_version()` on SQLite.
    pub server_version: String,
    pub migrations: MigrationState,
    /// The pool settings in force (no password).
    pub settings: SettingsSummary,
    /// This process's pool right now.
    pub pool: PoolStatus,
    /// Every application table, in the order the migrations create them.
    pub tables: Vec<TableRows>,
    /// Sum of the counts of the tables that exist.
    pub total_rows: i64,
    /// True when the connection's role is confined by row-level security (the
    /// application role on PostgreSQL): tenant tables then count as 0 because it has
    /// entered no tenant. Run as the schema owner for real counts.
    pub counts_hidden_by_rls: bool,
}

/// Which migrations the database has and which it still needs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MigrationState {
    pub applied: Vec<String>,
    pub pending: Vec<String>,
    /// Applied in the database but unknown to this build (a newer build migrated it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

/// The row count of one table; `None` when the table does not exist (yet).
#[derive(Debug, Clone, Serialize)]
pub struct TableRows {
    pub table: &'static str,
    pub rows: Option<i64>,
}

/// Reads the status of the database behind `db`.
///
/// `known_migrations` are the names of the migrations this build ships (the
/// `migration` crate's `Migrator::migrations()`), oldest first; the storage crate
/// cannot name them itself because the migration crate depends on it.
pub async fn status(db: &Db, known_migrations: &[&str]) -> Result<DbStatus, StorageError> {
    // One read transaction, not the bare pool: behind PgBouncer's transaction mode a
    // statement outside a transaction may not find its prepared statement.
    let tx = db.begin_read().await?;
    let conn = &tx;
    let engine = db.engine();
    let version_sql = match engine {
        Engine::Postgres => "SELECT version()",
        Engine::Sqlite => "SELECT 'SQLite ' || sqlite_version()",
    };
    let server_version: String = one(conn, version_sql, []).await?.try_get_by_index(0)?;

    let existing = existing_tables(conn).await?;
    let migrations = read_migrations(conn, &existing, known_migrations).await?;

    let mut tables = Vec::new();
    let mut total_rows = 0;
    for table in catalog::tables() {
        let rows = if existing.iter().any(|t| t == table.name) {
            let sql = format!("SELECT count(*) FROM {}", ident(table.name));
            let n: i64 = one(conn, &sql, []).await?.try_get_by_index(0)?;
            total_rows += n;
            Some(n)
        } else {
            None
        };
        tables.push(TableRows {
            table: table.name,
            rows,
        });
    }

    let counts_hidden_by_rls = !crate::tenant::sees_every_tenant(conn).await?;
    tx.commit().await?;
    Ok(DbStatus {
        engine,
        server_version,
        migrations,
        settings: db.settings().clone(),
        pool: db.pool_status(),
        tables,
        total_rows,
        counts_hidden_by_rls,
    })
}

/// The connection limit of the role this pool connects as, and the sessions other
/// processes hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RoleConnections {
    /// `CONNECTION LIMIT` of the role (`APP_DB_CONNECTION_LIMIT` when made by `agenda
    /// db create-app-role`).
    pub limit: i64,
    /// Sessions of the role that were open before `since` (so not this process's,
    /// when `since` is when it started) and still are.
    pub others: i64,
}

/// [`RoleConnections`] of the pool's role on PostgreSQL; `None` on SQLite and for a
/// role without a limit (`-1`) or with superuser rights (which the limit does not
/// bind).
pub async fn role_connections(
    db: &Db,
    since: DateTime<Utc>,
) -> Result<Option<RoleConnections>, StorageError> {
    if db.engine() != Engine::Postgres {
        return Ok(None);
    }
    let tx = db.begin_read().await?;
    let row = one(
        &tx,
        "SELECT r.rolconnlimit::int8, r.rolsuper, \
                (SELECT count(*) FROM pg_stat_activity a \
                  WHERE a.usename = current_user AND a.backend_start < $1) \
         FROM pg_roles r WHERE r.rolname = current_user",
        [since.into()],
    )
    .await?;
    tx.commit().await?;
    let (limit, superuser, others): (i64, bool, i64) = (
        row.try_get_by_index(0)?,
        row.try_get_by_index(1)?,
        row.try_get_by_index(2)?,
    );
    Ok((limit >= 0 && !superuser).then_some(RoleConnections { limit, others }))
}

/// Which of `known_migrations` the database has applied and which are pending, from
/// the migration ledger, read-only: it never creates the ledger (sea-orm's own
/// status check does, which the application role may not), and a migration applied
/// by a newer build is reported as [`MigrationState::unknown`] rather than an error
/// (servers of the previous build keep running during a rolling deploy).
pub async fn migration_state(
    db: &Db,
    known_migrations: &[&str],
) -> Result<MigrationState, StorageError> {
    let tx = db.begin_read().await?;
    let existing = existing_tables(&tx).await?;
    let state = read_migrations(&tx, &existing, known_migrations).await?;
    tx.commit().await?;
    Ok(state)
}

async fn read_migrations(
    conn: &impl ConnectionTrait,
    existing_tables: &[String],
    known_migrations: &[&str],
) -> Result<MigrationState, StorageError> {
    let mut migrations = MigrationState::default();
    if existing_tables.iter().any(|t| t == MIGRATION_TABLE) {
        let sql = format!(
            "SELECT version FROM {} ORDER BY version",
            ident(MIGRATION_TABLE)
        );
        for row in all(conn, &sql, []).await? {
            migrations.applied.push(row.try_get_by_index(0)?);
        }
    }
    migrations.pending = known_migrations
        .iter()
        .filter(|name| !migrations.applied.iter().any(|a| a == *name))
        .map(|name| (*name).to_owned())
        .collect();
    migrations.unknown = migrations
        .applied
        .iter()
        .filter(|a| !known_migrations.contains(&a.as_str()))
        .cloned()
        .collect();
    Ok(migrations)
}

/// The names of the tables in the database (current schema on PostgreSQL).
async fn existing_tables(conn: &impl ConnectionTrait) -> Result<Vec<String>, StorageError> {
    let sql = match conn.get_database_backend() {
        DbBackend::Postgres => {
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()"
        }
        _ => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    };
    all(conn, sql, [])
        .await?
        .iter()
        .map(|row| Ok(row.try_get_by_index(0)?))
        .collect()
}

// ---------------------------------------------------------------------------------
// connections

/// One session of this database, from `pg_stat_activity`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionInfo {
    pub pid: i32,
    /// The role the session logged in as.
    pub user: Option<String>,
    pub application_name: String,
    /// The client's IP address; `None` for a Unix-socket connection.
    pub client_addr: Option<String>,
    /// `active`, `idle`, `idle in transaction`, `idle in transaction (aborted)`, …
    pub state: Option<String>,
    pub backend_start: Option<DateTime<Utc>>,
    pub state_change: Option<DateTime<Utc>>,
    /// Seconds since the last state change, for idle states only.
    pub idle_seconds: Option<f64>,
    /// When the open transaction began; `None` outside a transaction.
    pub transaction_start: Option<DateTime<Utc>>,
    /// The current or last statement, cut to [`QUERY_TEXT_LIMIT`] characters.
    pub query: Option<String>,
    /// True for the session that ran this query.
    pub is_self: bool,
}

/// The columns every `pg_stat_activity` read selects, in [`ConnectionInfo`] order.
const ACTIVITY_COLUMNS: &str = "a.pid, a.usename::text, a.application_name, host(a.client_addr), \
     a.state, a.backend_start, a.state_change, \
     CASE WHEN a.state IN ('idle', 'idle in transaction', 'idle in transaction (aborted)') \
          THEN EXTRACT(EPOCH FROM clock_timestamp() - a.state_change)::float8 END, \
     a.xact_start, left(a.query, 200), a.pid = pg_backend_pid()";

/// Client sessions of the current database only (not other databases, not the
/// server's own background processes).
const ACTIVITY_SCOPE: &str = "a.datname = current_database() AND a.backend_type = 'client backend'";

/// Every client session of the current database, oldest first. PostgreSQL only.
pub async fn connections(db: &Db) -> Result<Vec<ConnectionInfo>, StorageError> {
    require_postgres(db, "connection monitoring")?;
    let sql = format!(
        "SELECT {ACTIVITY_COLUMNS} FROM pg_stat_activity a \
         WHERE {ACTIVITY_SCOPE} ORDER BY a.backend_start, a.pid"
    );
    all(db.conn(), &sql, [])
        .await?
        .iter()
        .map(connection_info)
        .collect()
}

/// Ends this application's sessions (`application_name` = the configured
/// `DB_APPLICATION_NAME`) that have been `idle` or `idle in transaction` (including
/// aborted) for longer than `older_than`, and returns them. The calling session is
/// never among them, nor are other applications' sessions. With `dry_run` nothing is
/// terminated: the list says what would be. Only sessions the caller may end are
/// considered — of roles it is a member of, or any non-superuser's with
/// `pg_signal_backend` — since PostgreSQL refuses the others and one refusal would
/// fail the whole statement. PostgreSQL only.
///
/// An idle pooled connection that is terminated is replaced by the pool (pre-ping
/// discards it); an idle transaction that is terminated is rolled back.
pub async fn kill_idle(
    db: &Db,
    older_than: Duration,
    dry_run: bool,
) -> Result<Vec<ConnectionInfo>, StorageError> {
    require_postgres(db, "ending idle connections")?;
    // pg_terminate_backend(pid, 5000) waits up to 5 s for the session to be gone,
    // so the list returned describes sessions that no longer exist.
    let sql = format!(
        "SELECT {ACTIVITY_COLUMNS}, \
                CASE WHEN $3 THEN false ELSE pg_terminate_backend(a.pid, 5000) END \
         FROM pg_stat_activity a \
         WHERE {ACTIVITY_SCOPE} \
           AND a.application_name = $1 \
           AND a.state IN ('idle', 'idle in transaction', 'idle in transaction (aborted)') \
           AND a.state_change < clock_timestamp() - make_interval(secs => $2) \
           AND a.pid <> pg_backend_pid() \
           AND (pg_has_role(a.usesysid, 'MEMBER') \
                OR (pg_has_role('pg_signal_backend', 'MEMBER') \
                    AND NOT EXISTS (SELECT 1 FROM pg_roles r \
                                    WHERE r.oid = a.usesysid AND r.rolsuper))) \
         ORDER BY a.state_change, a.pid"
    );
    let application_name = db
        .settings()
        .postgres
        .as_ref()
        .map(|p| p.application_name.clone())
        .unwrap_or_default();
    let values = [
        Value::from(application_name.clone()),
        Value::from(older_than.as_secs_f64()),
        Value::from(dry_run),
    ];
    let rows = all(db.conn(), &sql, values).await?;
    let killed: Vec<ConnectionInfo> = rows.iter().map(connection_info).collect::<Result<_, _>>()?;
    if !dry_run && !killed.is_empty() {
        // Some may have been this pool's own idle connections: ping them before use.
        db.suspect_idle_connections();
        tracing::warn!(
            count = killed.len(),
            application_name = %application_name,
            older_than_s = older_than.as_secs_f64(),
            pids = ?killed.iter().map(|c| c.pid).collect::<Vec<_>>(),
            "terminated idle database sessions"
        );
    }
    Ok(killed)
}

// ---------------------------------------------------------------------------------
// pg_stat_statements

/// One statement of `pg_stat_statements`, as the operator console lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementStats {
    pub calls: i64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub rows: i64,
    /// The normalised statement text (`$1` for constants), cut to
    /// [`QUERY_TEXT_LIMIT`] characters.
    pub query: String,
}

/// What [`slowest_statements`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", content = "statements", rename_all = "snake_case")]
pub enum SlowestStatements {
    /// `CREATE EXTENSION pg_stat_statements` was never run in this database.
    NotInstalled,
    /// The extension exists but the server was started without it in
    /// `shared_preload_libraries`, so it records nothing.
    NotLoaded,
    /// The statements of this database with the most execution time, slowest first.
    Statements(Vec<StatementStats>),
}

/// The `limit` statements of this database with the most total execution time, from
/// `pg_stat_statements` when it is installed and loaded: the calling role's own, or
/// every role's when it has `pg_read_all_stats` (PostgreSQL hides the text of other
/// roles' statements otherwise). PostgreSQL only.
pub async fn slowest_statements(db: &Db, limit: u32) -> Result<SlowestStatements, StorageError> {
    require_postgres(db, "pg_stat_statements")?;
    let installed: bool = one(
        db.conn(),
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')",
        [],
    )
    .await?
    .try_get_by_index(0)?;
    if !installed {
        return Ok(SlowestStatements::NotInstalled);
    }
    let sql = format!(
        "SELECT s.calls, s.total_exec_time, s.mean_exec_time, s.rows, \
                coalesce(left(s.query, {QUERY_TEXT_LIMIT}), '') \
         FROM pg_stat_statements s \
         WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND (s.userid = (SELECT oid FROM pg_roles WHERE rolname = current_user) \
                OR pg_has_role('pg_read_all_stats', 'MEMBER')) \
         ORDER BY s.total_exec_time DESC LIMIT $1"
    );
    // Whether the library is preloaded is a superuser-only setting, so the
    // application role learns it from the one error PostgreSQL gives without it.
    let backend = db.conn().get_database_backend();
    let rows = match db
        .conn()
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            &sql,
            [Value::from(i64::from(limit))],
        ))
        .await
    {
        Ok(rows) => rows,
        Err(e) if e.to_string().contains("shared_preload_libraries") => {
            return Ok(SlowestStatements::NotLoaded);
        }
        Err(e) => return Err(e.into()),
    };
    rows.iter()
        .map(|row| {
            Ok(StatementStats {
                calls: row.try_get_by_index(0)?,
                total_ms: row.try_get_by_index(1)?,
                mean_ms: row.try_get_by_index(2)?,
                rows: row.try_get_by_index(3)?,
                query: row.try_get_by_index(4)?,
            })
        })
        .collect::<Result<Vec<_>, StorageError>>()
        .map(SlowestStatements::Statements)
}

fn connection_info(row: &QueryResult) -> Result<ConnectionInfo, StorageError> {
    let query: Option<String> = row.try_get_by_index(9)?;
    Ok(ConnectionInfo {
        pid: row.try_get_by_index(0)?,
        user: row.try_get_by_index(1)?,
        application_name: row
            .try_get_by_index::<Option<String>>(2)?
            .unwrap_or_default(),
        client_addr: row.try_get_by_index(3)?,
        state: row.try_get_by_index(4)?,
        backend_start: row.try_get_by_index(5)?,
        state_change: row.try_get_by_index(6)?,
        idle_seconds: row.try_get_by_index(7)?,
        transaction_start: row.try_get_by_index(8)?,
        query: query.map(|q| q.chars().take(QUERY_TEXT_LIMIT).collect()),
        is_self: row.try_get_by_index(10)?,
    })
}

fn require_postgres(db: &Db, what: &str) -> Result<(), StorageError> {
    match db.engine() {
        Engine::Postgres => Ok(()),
        Engine::Sqlite => Err(not_on_sqlite(what)),
    }
}

fn not_on_sqlite(what: &str) -> StorageError {
    StorageError::InvalidState {
        code: "postgres_only",
        message: format!(
            "{what} is not available on SQLite: an embedded database has no server sessions \
             or roles; it needs PostgreSQL"
        ),
    }
}

// ---------------------------------------------------------------------------------
// the application role

/// What [`create_app_role`] makes. The password is never printed: `Debug` hides it
/// and it is not serialisable.
#[derive(Clone)]
pub struct AppRoleSpec {
    /// The role name: `^[a-z_][a-z0-9_]{0,62}$`, not `pg_…` (reserved).
    pub name: String,
    /// Printable ASCII, 8 to 1024 characters. Sent only as a SCRAM-SHA-256 verifier.
    pub password: String,
    /// `CONNECTION LIMIT`: the most sessions the role may hold at once.
    pub connection_limit: i32,
    /// Role default for `statement_timeout`; zero disables.
    pub statement_timeout: Duration,
    /// Role default for `lock_timeout`; zero disables.
    pub lock_timeout: Duration,
    /// Role default for `idle_in_transaction_session_timeout`; zero disables.
    pub idle_in_transaction_timeout: Duration,
}

impl AppRoleSpec {
    /// The defaults: 50 connections, 30 s statements, 10 s lock waits, 5 min idle in
    /// a transaction.
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> Self {
        AppRoleSpec {
            name: name.into(),
            password: password.into(),
            connection_limit: DEFAULT_CONNECTION_LIMIT,
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT,
        }
    }

    fn check(&self) -> Result<(), StorageError> {
        let invalid = |field, message: &str| {
            Err(StorageError::Validation {
                field,
                message: message.to_owned(),
            })
        };
        let name = self.name.as_bytes();
        let name_ok = matches!(name.first(), Some(b'a'..=b'z' | b'_'))
            && name.len() <= 63
            && name
                .iter()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'));
        if !name_ok {
            return invalid(
                "role name",
                "expected 1 to 63 characters: lowercase letters, digits and _, not starting with a digit",
            );
        }
        if self.name.starts_with("pg_")
            || [
                "public",
                "none",
                "current_user",
                "session_user",
                "current_role",
            ]
            .contains(&self.name.as_str())
        {
            return invalid("role name", "is reserved by PostgreSQL");
        }
        let len = self.password.len();
        if !(8..=1024).contains(&len) || !self.password.bytes().all(|b| (b' '..=b'~').contains(&b))
        {
            return invalid("password", "expected 8 to 1024 printable ASCII characters");
        }
        if !(1..=100_000).contains(&self.connection_limit) {
            return invalid("connection limit", "expected a number from 1 to 100000");
        }
        for (field, d) in [
            ("statement timeout", self.statement_timeout),
            ("lock timeout", self.lock_timeout),
            (
                "idle-in-transaction timeout",
                self.idle_in_transaction_timeout,
            ),
        ] {
            if d.as_millis() > i32::MAX as u128 {
                return invalid(field, "is longer than PostgreSQL accepts (about 24 days)");
            }
        }
        Ok(())
    }
}

impl fmt::Debug for AppRoleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppRoleSpec")
            .field("name", &self.name)
            .field("password", &"***")
            .field("connection_limit", &self.connection_limit)
            .field("statement_timeout", &self.statement_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field(
                "idle_in_transaction_timeout",
                &self.idle_in_transaction_timeout,
            )
            .finish()
    }
}

/// The `SECURITY DEFINER` functions the application role may call, by signature:
/// the lookups that resolve a token digest to its organization under row-level
/// security (`SessionRepo::authenticate`, migrations 11 and 19), and the outbox worker's
/// claim and the metrics' counts across tenants (`repo::outbox`, migration 12).
const GRANTED_FUNCTIONS: &[&str] = &[
    "agenda_session_tenant(text)",
    "agenda_reset_token_tenant(text)",
    "agenda_authenticate(text, timestamptz)",
    "agenda_outbox_claim(text, timestamptz, timestamptz, integer)",
    "agenda_outbox_counts()",
];

/// What [`create_app_role`] did. Holds no secret.
#[derive(Debug, Clone, Serialize)]
pub struct AppRoleReport {
    pub role: String,
    /// True when the role was created, false when an existing one was brought in line.
    pub created: bool,
    pub database: String,
    pub schema: String,
    /// The role that ran the grants and owns the tables (the schema owner).
    pub granted_by: String,
    pub connection_limit: i32,
    pub statement_timeout_ms: u64,
    pub lock_timeout_ms: u64,
    pub idle_in_transaction_timeout_ms: u64,
    /// Tables of the schema the role may now use (the ledger read-only).
    pub tables: i64,
    /// Things the command could not fix itself and an operator should look at.
    pub warnings: Vec<String>,
}

/// Creates the least-privilege login role the server runs as, or brings an existing
/// one back to exactly these rights. Runs on `owner_db`, a connection as the schema
/// owner (the migrator's `MIGRATION_DATABASE_URL`) with `CREATEROLE`; everything
/// happens in one transaction, so a failure changes nothing. PostgreSQL only.
///
/// The role can log in, read and write the rows of every table of the current schema
/// (the migration ledger read-only, so the server can check for pending
/// migrations), use its sequences, and the same on tables the owner creates later —
/// but only the rows row-level security lets it see: those of the tenant its
/// transaction entered. It may call the functions that find a token's tenant and
/// the outbox functions that claim and count due mail across tenants.
/// It owns nothing and cannot create, alter, drop or truncate tables, create roles
/// or databases, bypass row-level security or replicate. It is `NOINHERIT`: its
/// rights are exactly the grants made here, even if someone later makes it a member
/// of a more powerful role. Role-level defaults bound statements, lock waits and
/// idle transactions for every session, including ones not opened by the server's
/// pool (which sets its own values per connection).
///
/// The password reaches the server only as a SCRAM-SHA-256 verifier computed here,
/// so neither the server log nor `pg_stat_activity` ever sees it; statements run on
/// the driver directly, outside the SQL echo and slow-statement log.
pub async fn create_app_role(
    owner_db: &Db,
    spec: &AppRoleSpec,
) -> Result<AppRoleReport, StorageError> {
    let Some(pool) = owner_db.postgres_pool() else {
        return Err(not_on_sqlite("creating the application role"));
    };
    spec.check()?;
    // The verifier costs 4096 rounds of PBKDF2: compute it before the transaction
    // opens, so the transaction never sits idle while the CPU works (a busy machine
    // could otherwise exceed the server's idle-in-transaction timeout).
    let verifier = scram_sha256_verifier(&spec.password, &scram_salt(), SCRAM_ITERATIONS);
    let mut tx = pool.begin().await?;

    let (owner, database, schema): (String, String, String) = sqlx::query_as(
        "SELECT current_user::text, current_database()::text, current_schema()::text",
    )
    .fetch_one(&mut *tx)
    .await?;
    if owner == spec.name {
        return Err(StorageError::Validation {
            field: "role name",
            message: format!(
                "{:?} is the role running this command (the schema owner); the application \
                 role must be a different role",
                spec.name
            ),
        });
    }
    let ledger_exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1)",
    )
    .bind(MIGRATION_TABLE)
    .fetch_one(&mut *tx)
    .await?;
    if !ledger_exists {
        // Granting before the schema exists would let default privileges give the
        // role write access to the ledger when the migrator creates it.
        return Err(StorageError::InvalidState {
            code: "not_migrated",
            message: format!(
                "the schema {schema:?} of database {database:?} has no migration ledger; \
                 apply the migrations first (agenda migrate up), then create the role"
            ),
        });
    }

    let existing: Option<(bool, bool, bool, i64)> = sqlx::query_as(
        "SELECT r.rolsuper, r.rolreplication, r.rolbypassrls, \
                (SELECT count(*) FROM pg_class WHERE relowner = r.oid) \
              + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid) \
              + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid) \
              + (SELECT count(*) FROM pg_database WHERE datdba = r.oid) \
         FROM pg_roles r WHERE r.rolname = $1",
    )
    .bind(&spec.name)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((_, _, _, owned)) = existing
        && owned > 0
    {
        return Err(StorageError::InvalidState {
            code: "role_owns_objects",
            message: format!(
                "the role {:?} owns {owned} object(s) (tables, schemas, functions or databases); \
                 the application role must own nothing — choose another APP_DB_ROLE or reassign them",
                spec.name
            ),
        });
    }

    let role = ident(&spec.name);
    let common = format!(
        "LOGIN NOCREATEDB NOCREATEROLE NOINHERIT CONNECTION LIMIT {} PASSWORD {}",
        spec.connection_limit,
        literal(&verifier)
    );
    let created = match existing {
        None => {
            run(
                &mut tx,
                "create the role",
                format!("CREATE ROLE {role} WITH NOSUPERUSER NOREPLICATION NOBYPASSRLS {common}"),
            )
            .await?;
            true
        }
        Some((superuser, replication, bypassrls, _)) => {
            // Naming these attributes at all needs superuser rights, even to turn
            // them off, so they are only named when there is something to turn off.
            let mut fix = String::new();
            for (on, off) in [
                (superuser, "NOSUPERUSER"),
                (replication, "NOREPLICATION"),
                (bypassrls, "NOBYPASSRLS"),
            ] {
                if on {
                    fix.push_str(off);
                    fix.push(' ');
                }
            }
            run(
                &mut tx,
                "update the role",
                format!("ALTER ROLE {role} WITH {fix}{common}"),
            )
            .await?;
            false
        }
    };

    let mut warnings = Vec::new();
    let (db_ident, schema_ident) = (ident(&database), ident(&schema));
    // CONNECT and USAGE can only be granted by the database's and the schema's owner
    // (or a holder of the grant option). PUBLIC has both by default on `public`, so
    // when this role cannot grant them the role may still have them.
    let (can_grant_connect, can_grant_usage): (bool, bool) = sqlx::query_as(
        "SELECT has_database_privilege(current_database(), 'CONNECT WITH GRANT OPTION'), \
                has_schema_privilege(current_schema(), 'USAGE WITH GRANT OPTION')",
    )
    .fetch_one(&mut *tx)
    .await?;
    if can_grant_connect {
        run(
            &mut tx,
            "grant CONNECT",
            format!("GRANT CONNECT ON DATABASE {db_ident} TO {role}"),
        )
        .await?;
    }
    if can_grant_usage {
        run(
            &mut tx,
            "grant USAGE on the schema",
            format!("GRANT USAGE ON SCHEMA {schema_ident} TO {role}"),
        )
        .await?;
    }
    let ledger = format!("{schema_ident}.{}", ident(MIGRATION_TABLE));
    // Revoke first so that a second run converges to exactly these rights.
    for (step, sql) in [
        (
            "reset table privileges",
            format!("REVOKE ALL ON ALL TABLES IN SCHEMA {schema_ident} FROM {role}"),
        ),
        (
            "grant table privileges",
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema_ident} TO {role}"
            ),
        ),
        (
            "make the migration ledger read-only",
            format!("REVOKE INSERT, UPDATE, DELETE ON TABLE {ledger} FROM {role}"),
        ),
        (
            "reset sequence privileges",
            format!("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema_ident} FROM {role}"),
        ),
        (
            "grant sequence privileges",
            format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema_ident} TO {role}"),
        ),
        (
            "reset default privileges",
            format!(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema_ident} REVOKE ALL ON TABLES FROM {role}"
            ),
        ),
        (
            "set default table privileges",
            format!(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema_ident} \
                 GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}"
            ),
        ),
        (
            "reset default sequence privileges",
            format!(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema_ident} REVOKE ALL ON SEQUENCES FROM {role}"
            ),
        ),
        (
            "set default sequence privileges",
            format!(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema_ident} \
                 GRANT USAGE, SELECT ON SEQUENCES TO {role}"
            ),
        ),
        (
            "set the role's idle-in-transaction timeout",
            format!(
                "ALTER ROLE {role} SET idle_in_transaction_session_timeout = {}",
                spec.idle_in_transaction_timeout.as_millis()
            ),
        ),
        (
            "set the role's statement timeout",
            format!(
                "ALTER ROLE {role} SET statement_timeout = {}",
                spec.statement_timeout.as_millis()
            ),
        ),
        (
            "set the role's lock timeout",
            format!(
                "ALTER ROLE {role} SET lock_timeout = {}",
                spec.lock_timeout.as_millis()
            ),
        ),
    ] {
        run(&mut tx, step, sql).await?;
    }
    // Operator credentials (migration 18): the role reads them and updates only the
    // sign-in counters; `agenda operator create|revoke` run as the owner.
    let operators = format!("{schema_ident}.{}", ident("operators"));
    let has_operators: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&operators)
        .fetch_one(&mut *tx)
        .await?;
    if has_operators {
        for (step, sql) in [
            (
                "make operator credentials read-only",
                format!("REVOKE INSERT, UPDATE, DELETE ON TABLE {operators} FROM {role}"),
            ),
            (
                "let sign-in update the operators' counters",
                format!(
                    "GRANT UPDATE ({}) ON TABLE {operators} TO {role}",
                    agenda_entity::operator::COUNTER_COLUMNS
                ),
            ),
        ] {
            run(&mut tx, step, sql).await?;
        }
    }
    // Row-level security's cross-tenant functions (migrations 11 and 12): EXECUTE is
    // revoked from PUBLIC, so only roles granted here may call them.
    for function in GRANTED_FUNCTIONS {
        let signature = format!("{schema_ident}.{function}");
        let exists: bool = sqlx::query_scalar("SELECT to_regprocedure($1) IS NOT NULL")
            .bind(&signature)
            .fetch_one(&mut *tx)
            .await?;
        if exists {
            run(
                &mut tx,
                "grant EXECUTE on a cross-tenant function",
                format!("GRANT EXECUTE ON FUNCTION {signature} TO {role}"),
            )
            .await?;
        }
    }

    let (can_connect, can_use, can_create, tables): (bool, bool, bool, i64) = sqlx::query_as(
        "SELECT has_database_privilege($1, current_database(), 'CONNECT'), \
                has_schema_privilege($1, current_schema(), 'USAGE'), \
                has_schema_privilege($1, current_schema(), 'CREATE'), \
                (SELECT count(*) FROM pg_tables WHERE schemaname = current_schema())",
    )
    .bind(&spec.name)
    .fetch_one(&mut *tx)
    .await?;
    if !can_connect {
        return Err(permission_gap(&owner, "CONNECT on the database", &database));
    }
    if !can_use {
        return Err(permission_gap(&owner, "USAGE on the schema", &schema));
    }
    if can_create {
        warnings.push(format!(
            "every role (PUBLIC) may create objects in schema {schema:?}; run \
             `REVOKE CREATE ON SCHEMA {schema_ident} FROM PUBLIC` as its owner"
        ));
    }
    tx.commit().await?;

    tracing::info!(
        role = %spec.name,
        created,
        database = %database,
        schema = %schema,
        connection_limit = spec.connection_limit,
        "application role ready"
    );
    Ok(AppRoleReport {
        role: spec.name.clone(),
        created,
        database,
        schema,
        granted_by: owner,
        connection_limit: spec.connection_limit,
        statement_timeout_ms: spec.statement_timeout.as_millis() as u64,
        lock_timeout_ms: spec.lock_timeout.as_millis() as u64,
        idle_in_transaction_timeout_ms: spec.idle_in_transaction_timeout.as_millis() as u64,
        tables,
        warnings,
    })
}

fn permission_gap(owner: &str, what: &str, on: &str) -> StorageError {
    StorageError::Forbidden {
        code: "insufficient_privilege",
        message: format!(
            "the role {owner:?} cannot grant {what} {on:?}; run this command as the owner of \
             the database and schema (MIGRATION_DATABASE_URL)"
        ),
    }
}

/// Runs one DDL statement of the role setup. A refusal by the server (missing
/// `CREATEROLE`, not the owner…) becomes one readable line naming the step.
async fn run(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    step: &'static str,
    sql: String,
) -> Result<(), StorageError> {
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut **tx)
        .await
    {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.code().is_some_and(|c| c.starts_with("42")) => {
            Err(StorageError::Forbidden {
                code: "insufficient_privilege",
                message: format!(
                    "could not {step}: {} (SQLSTATE {})",
                    e.message(),
                    e.code().unwrap_or_default()
                ),
            })
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------
// SCRAM-SHA-256 verifier (RFC 5802 / RFC 7677), as PostgreSQL stores passwords

/// PostgreSQL's default `scram_iterations`.
pub const SCRAM_ITERATIONS: u32 = 4096;

/// The verifier PostgreSQL stores for `password`:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64). Given to
/// `CREATE/ALTER ROLE … PASSWORD`, the server stores it as is, so the password itself
/// never leaves this process. `password` must be printable ASCII, for which
/// PostgreSQL's SASLprep normalisation changes nothing.
pub fn scram_sha256_verifier(password: &str, salt: &[u8], iterations: u32) -> String {
    let salted = pbkdf2_hmac_sha256(password.as_bytes(), salt, iterations.max(1));
    let client_key = hmac_sha256(&salted, &[b"Client Key"]);
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac_sha256(&salted, &[b"Server Key"]);
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        base64(salt),
        base64(&stored_key),
        base64(&server_key)
    )
}

/// 16 bytes of salt. A salt must be unique, not secret.
fn scram_salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    salt[..8].copy_from_slice(&fastrand::u64(..).to_le_bytes());
    salt[8..].copy_from_slice(&uuid::Uuid::now_v7().as_bytes()[8..]);
    salt
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer.finalize());
    out
}

/// PBKDF2 with HMAC-SHA-256, one 32-byte block (all SCRAM-SHA-256 needs).
fn pbkdf2_hmac_sha256(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut u = hmac_sha256(password, &[salt, &1u32.to_be_bytes()]);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac_sha256(password, &[&u]);
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// SQL helpers

/// A double-quoted SQL identifier (PostgreSQL and SQLite).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL string literal, correct whatever `standard_conforming_strings` says.
fn literal(value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('\'', "''");
    if !value.contains('\\') {
        format!("'{escaped}'")
    } else {
        format!("E'{escaped}'")
    }
}

async fn all<const N: usize>(
    conn: &impl ConnectionTrait,
    sql: &str,
    values: [Value; N],
) -> Result<Vec<QueryResult>, StorageError> {
    let backend = conn.get_database_backend();
    Ok(conn
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?)
}

async fn one<const N: usize>(
    conn: &impl ConnectionTrait,
    sql: &str,
    values: [Value; N],
) -> Result<QueryResult, StorageError> {
    all(conn, sql, values)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StorageError::not_found("row"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn pbkdf2_matches_known_vectors() {
        assert_eq!(
            hex(&pbkdf2_hmac_sha256(b"password", b"salt", 1)),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
        );
        assert_eq!(
            hex(&pbkdf2_hmac_sha256(b"password", b"salt", 4096)),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"
        );
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn literals_and_identifiers_are_quoted() {
        assert_eq!(literal("abc"), "'abc'");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\b'c"), "E'a\\\\b''c'");
        assert_eq!(ident("my\"db"), "\"my\"\"db\"");
    }

    #[test]
    fn role_names_and_passwords_are_checked() {
        let ok = AppRoleSpec::new("agenda_app", "a long enough password");
        assert!(ok.check().is_ok());
        for bad in [
            "",
            "1app",
            "App",
            "agenda-app",
            "pg_app",
            "public",
            &"a".repeat(64),
        ] {
            let spec = AppRoleSpec::new(bad, "a long enough password");
            assert!(spec.check().is_err(), "{bad:?}");
        }
        for bad in ["short", "tab\there!", "sénha-longa-demais"] {
            assert!(
                AppRoleSpec::new("agenda_app", bad).check().is_err(),
                "{bad:?}"
            );
        }
        let shown = format!("{ok:?}");
        assert!(
            !shown.contains("long enough") && shown.contains("***"),
            "{shown}"
        );
    }
}
