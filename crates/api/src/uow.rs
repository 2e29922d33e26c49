//! The per-request unit of work (what `get_db` is to the FastAPI services).
//!
//! Every handler that touches tenant data takes a [`UnitOfWork`]: its first
//! [`UnitOfWork::tx`] (to write) or [`UnitOfWork::read`] call opens a transaction on
//! the pool, shared by everything else in the request. When the handler returns, the
//! [`unit_of_work`] middleware commits if the response is a success (2xx/3xx) and
//! rolls back otherwise. A panic or a client disconnect drops the transaction, which
//! rolls it back before the connection is reused; a commit that fails turns the
//! response into the matching error.
//!
//! **Tenant.** The transaction acts for the request's organization: the [`Auth`]
//! extractor records it (and [`UnitOfWork::enter`] does for the few public routes
//! that know their organization another way, such as sign-up and login). On
//! PostgreSQL the transaction enters that tenant (`set_config('app.tenant', …, true)`)
//! and row-level security shows it that organization's rows only; a transaction of a
//! request without a tenant sees no tenant rows at all. On PostgreSQL the [`Auth`]
//! extractor authenticates inside the request's transaction and leaves it open, so
//! an authenticated request costs one `BEGIN`/`COMMIT` in all. A `GET` or `HEAD`
//! that wrote nothing does not even send its `COMMIT` there: its transaction is
//! dropped, and the queued `ROLLBACK` travels with the pool's release check (see
//! `docs/connections.md`, "An authenticated read, round trip by round trip").
//!
//! **Read or write.** On SQLite, [`UnitOfWork::tx`] takes the write lock at once
//! (`BEGIN IMMEDIATE`, on the writer lane) so that concurrent writers queue instead of
//! failing, while [`UnitOfWork::read`] opens a plain read transaction that never
//! blocks anyone. A handler that writes calls `tx()` first. On PostgreSQL both are
//! the same.
//!
//! **Honest deadlines.** `REQUEST_TIMEOUT` bounds the handler (and storing the
//! response of an `Idempotency-Key`), never the commit: when it fires the handler is
//! dropped, its transaction rolls back, and the answer is `503` with `Retry-After` —
//! nothing was saved. Once the handler has answered, the commit runs under its own
//! bound, `DB_COMMIT_TIMEOUT`. A commit the server refuses (a serialization failure,
//! a deferred constraint, a session it ended) rolled back and answers the matching
//! error; a commit whose outcome cannot be known — no answer in time, the connection
//! lost while it ran — answers `504 commit_outcome_unknown` without `Retry-After`:
//! the change may or may not be saved, so a blind retry could repeat it (a retry
//! with the same `Idempotency-Key` is safe).
//!
//! **Idempotency.** Every `POST` of a signed-in user may carry `Idempotency-Key`;
//! the claim, the replay and the stored response live here and in
//! [`crate::idempotency`], not in the handlers.
//!
//! [`Auth`]: crate::auth::Auth

use std::sync::{Arc, Mutex};

use agenda_storage::cache::{ReadCache, Written};
use agenda_storage::{Db, Engine, StorageError, TenantScope};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sea_orm::DatabaseTransaction;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::ApiError;
use crate::idempotency::{self, Claimed, Pending};

/// The request's transaction and tenant, installed by [`unit_of_work`].
#[derive(Clone, Default)]
pub(crate) struct Slot(Arc<Mutex<SlotState>>);

#[derive(Default)]
struct SlotState {
    tx: Option<Arc<DatabaseTransaction>>,
    tenant: Option<TenantScope>,
    /// The signed-in user, recorded by [`crate::auth::Auth`].
    user: Option<Uuid>,
    /// The request's `Idempotency-Key`, until the write transaction claims it.
    key: Option<Pending>,
    /// The claimed key's row, whose response is stored before the commit.
    claimed: Option<Uuid>,
    /// A completed request with the same key: the answer, instead of the handler's.
    replay: Option<Response>,
    /// Whether the request opened its transaction for writing.
    wrote: bool,
    /// With read replicas: the digest of the request's session token, which keys the
    /// session's read-your-writes fence (see [`Slot::set_fence_key`]).
    fence_key: Option<String>,
}

/// Marks the routes whose reads tolerate replica lag (see `docs/scaling.md`): their
/// `GET`s read from a read replica (`DATABASE_READ_URL`) when one is usable and has
/// replayed the session's last write.
#[derive(Clone, Copy)]
pub(crate) struct ToleratesLag;

/// Whether a request may read from a replica: a `GET` of a route marked
/// [`ToleratesLag`] with replicas configured. `Some` holds the session's fence key.
#[derive(Clone)]
pub(crate) struct ReplicaRead(Option<Option<String>>);

impl ReplicaRead {
    pub(crate) fn of(parts: &Parts, state: &AppState) -> ReplicaRead {
        let eligible = matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD
        ) && parts.extensions.get::<ToleratesLag>().is_some()
            && !state.db.settings().replicas.is_empty();
        ReplicaRead(
            eligible.then(|| Slot::of(parts).and_then(|slot| slot.state().fence_key.clone())),
        )
    }

    /// The pool the request's read transaction opens on: a replica when
    /// [`Db::replica_for`] offers one, else the primary `db`. The second value says
    /// whether it is a replica.
    pub(crate) async fn db(&self, db: &Db) -> (Db, bool) {
        if let Some(key) = &self.0
            && let Some(replica) = db.replica_for(key.as_deref()).await
        {
            return (replica, true);
        }
        (db.clone(), false)
    }
}

impl Slot {
    /// The slot of this request, when the middleware is installed.
    pub(crate) fn of(parts: &Parts) -> Option<Slot> {
        parts.extensions.get::<Slot>().cloned()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Option<Arc<DatabaseTransaction>> {
        self.state().tx.take()
    }

    /// Records the request's tenant; the transaction, when opened, enters it.
    pub(crate) fn set_tenant(&self, scope: TenantScope) {
        self.state().tenant = Some(scope);
    }

    /// Adopts `tx`, already in `scope`'s tenant, as the request's transaction.
    pub(crate) fn adopt(&self, tx: DatabaseTransaction, scope: TenantScope) {
        let mut state = self.state();
        state.tenant = Some(scope);
        state.tx = Some(Arc::new(tx));
    }

    /// Records the signed-in user (whose `Idempotency-Key`s the request may use).
    pub(crate) fn set_user(&self, user: Uuid) {
        self.state().user = Some(user);
    }

    /// Keys the session's read-your-writes fence: the digest of its token, set by
    /// [`Auth`](crate::auth::Auth) before it picks the pool its lookup reads from.
    pub(crate) fn set_fence_key(&self, digest: String) {
        self.state().fence_key = Some(digest);
    }
}

/// The request's unit of work. Extracting it costs nothing; the transaction is
/// opened by the first call to [`UnitOfWork::tx`] or [`UnitOfWork::read`], so a
/// request rejected by validation never touches the database.
pub struct UnitOfWork {
    slot: Slot,
    db: Db,
    /// Whether a read-only transaction may open on a replica.
    replica: ReplicaRead,
    tx: tokio::sync::OnceCell<Arc<DatabaseTransaction>>,
}

#[derive(Clone, Copy)]
enum Mode {
    Write,
    Read,
}

impl UnitOfWork {
    /// The request's transaction for writing, opened on first use and shared by every
    /// caller in the request. Pass it to repositories.
    pub async fn tx(&self) -> Result<&DatabaseTransaction, ApiError> {
        self.open(Mode::Write).await
    }

    /// The request's transaction for a handler that only reads (on SQLite it takes no
    /// write lock). If the request already has a transaction, that one.
    pub async fn read(&self) -> Result<&DatabaseTransaction, ApiError> {
        self.open(Mode::Read).await
    }

    /// For a route that deduplicates retries by a key of its own (the payment
    /// webhooks, by event id): an `Idempotency-Key` header is then not used.
    pub fn replays_by_own_key(&self) {
        self.slot.state().key = None;
    }

    /// Makes `scope` the request's tenant, for public routes that learn their
    /// organization without a session (sign-up, login, reset). Call it before the
    /// transaction opens; if one is already open it enters the tenant at once.
    pub async fn enter(&self, scope: TenantScope) -> Result<(), ApiError> {
        self.slot.set_tenant(scope);
        if let Some(tx) = self.tx.get() {
            agenda_storage::tenant::enter(tx, scope).await?;
        }
        Ok(())
    }

    async fn open(&self, mode: Mode) -> Result<&DatabaseTransaction, ApiError> {
        let tx = self
            .tx
            .get_or_try_init(|| async {
                let (existing, tenant) = {
                    let state = self.slot.state();
                    (state.tx.clone(), state.tenant)
                };
                if let Some(tx) = existing {
                    return Ok::<_, ApiError>(tx);
                }
                let opened = Arc::new(match (mode, tenant) {
                    (Mode::Write, Some(scope)) => self.db.begin_in(scope).await?,
                    (Mode::Write, None) => self.db.begin().await?,
                    (Mode::Read, Some(scope)) => {
                        self.replica.db(&self.db).await.0.read_in(scope).await?
                    }
                    (Mode::Read, None) => self.replica.db(&self.db).await.0.begin_read().await?,
                });
                self.slot.state().tx = Some(opened.clone());
                Ok(opened)
            })
            .await?;
        if let Mode::Write = mode {
            self.slot.state().wrote = true;
            self.claim_key(tx).await?;
        }
        Ok(tx)
    }

    /// Claims the request's `Idempotency-Key` (once) in its write transaction. A
    /// replay stops the handler here; the middleware answers the stored response.
    async fn claim_key(&self, tx: &DatabaseTransaction) -> Result<(), ApiError> {
        let (pending, user, tenant) = {
            let mut state = self.slot.state();
            let Some(pending) = state.key.take() else {
                return Ok(());
            };
            (pending, state.user, state.tenant)
        };
        let (Some(user), Some(scope)) = (user, tenant) else {
            return Err(idempotency::needs_sign_in());
        };
        match idempotency::claim(tx, scope, user, &pending).await? {
            Claimed::New(id) => {
                self.slot.state().claimed = Some(id);
                Ok(())
            }
            Claimed::Replay(response) => {
                self.slot.state().replay = Some(response);
                Err(ApiError::new(
                    StatusCode::OK,
                    "idempotent_replay",
                    "answered with the stored response",
                ))
            }
        }
    }
}

impl FromRequestParts<AppState> for UnitOfWork {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let slot = Slot::of(parts).ok_or_else(|| {
            ApiError::internal("the unit-of-work middleware is not installed on this route")
        })?;
        Ok(UnitOfWork {
            slot,
            db: state.db.clone(),
            replica: ReplicaRead::of(parts, state),
            tx: tokio::sync::OnceCell::new(),
        })
    }
}

/// Whether the [`Auth`](crate::auth::Auth) extractor should keep its transaction as
/// the request's: on PostgreSQL yes (it has entered the tenant already, and any
/// transaction may write); on SQLite no, because a read transaction that later
/// writes could fail to upgrade its lock, so writers must start with `BEGIN
/// IMMEDIATE`.
pub(crate) fn keeps_auth_transaction(db: &Db) -> bool {
    db.engine() == Engine::Postgres
}

/// Whether a `GET` or `HEAD` whose transaction wrote nothing ends it by dropping it
/// (see [`unit_of_work`]): on PostgreSQL, where the `ROLLBACK` this queues rides on
/// the pool's release check. SQLite commits: its connections are not pinged, and a
/// local commit of a read costs no round trip.
fn ends_reads_by_drop(db: &Db) -> bool {
    db.engine() == Engine::Postgres
}

/// Debug builds (the test suites) check what dropping a read relies on: a `GET` or
/// `HEAD` that reached the database through [`UnitOfWork::read`] changed nothing. A
/// write there would be rolled back without a word on PostgreSQL, so it panics (the
/// request answers 500) naming the rule; such a handler must use
/// [`UnitOfWork::tx`]. PostgreSQL assigns a transaction id at a transaction's first
/// write or row lock, and not before. Release builds skip the extra statement, and
/// debug builds do not count it ([`agenda_storage::DEBUG_CHECK`]).
#[cfg(debug_assertions)]
async fn assert_read_wrote_nothing(tx: &DatabaseTransaction) {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let wrote = tx
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "{}SELECT pg_current_xact_id_if_assigned() IS NOT NULL",
                agenda_storage::DEBUG_CHECK
            ),
        ))
        .await
        .ok()
        .flatten()
        .and_then(|row| row.try_get_by_index::<bool>(0).ok());
    assert_ne!(
        wrote,
        Some(true),
        "a GET wrote through UnitOfWork::read(); on PostgreSQL the write would be \
         rolled back silently: the handler must use UnitOfWork::tx()"
    );
}

/// Middleware: gives the request a transaction slot (and reads its
/// `Idempotency-Key`), runs the handler within `REQUEST_TIMEOUT`, and settles the
/// transaction: commits a success within `DB_COMMIT_TIMEOUT`, rolls back anything
/// else (see the module docs).
pub async fn unit_of_work(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let slot = Slot::default();
    let reads_only = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let (mut request, key) = match idempotency::read(request).await {
        Ok(read) => read,
        Err(e) => return e.into_response(),
    };
    slot.state().key = key;
    request.extensions_mut().insert(slot.clone());
    let limit = state.settings.http.request_timeout;
    // The cache tracks which cached tables the handler writes; their entries are
    // dropped only once the commit succeeded (a reader in between may see the old
    // rows, never cache them again: see `agenda_storage::cache`).
    let handled = tokio::time::timeout(limit, async {
        let (response, written) = state.cache.track(next.run(request)).await;
        let settle = before_commit(&slot, response).await;
        (
            tag_cache_writes(&state.cache, &written, settle).await,
            written,
        )
    })
    .await;
    let settings = state.db.settings();
    let commit_limit = std::time::Duration::from_millis(settings.commit_timeout_ms);
    let tenant = slot.state().tenant;
    let mut response = match handled {
        // The handler was dropped mid-way, so its transaction is dropped, which
        // rolls it back before the connection is reused.
        Err(_) => {
            drop(slot.take());
            ApiError::unavailable(
                "the request took too long and was cancelled; nothing was saved; retry shortly",
                std::time::Duration::from_secs(1),
            )
            .into_response()
        }
        Ok((Settle::Answer(response), _)) => response,
        Ok((Settle::RollBack(tx, response), _)) => {
            // Bounded like a commit: a connection lost to a partition must not hold
            // the answer (the transaction is dropped, and so rolled back, anyway).
            match tokio::time::timeout(commit_limit, tx.rollback()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "rollback failed; the connection will be discarded")
                }
                Err(_) => tracing::warn!(
                    "rollback did not finish in time; the connection will be discarded"
                ),
            }
            response
        }
        Ok((Settle::Commit(tx, response), written))
            if reads_only
                && written.is_empty()
                && !slot.state().wrote
                && ends_reads_by_drop(&state.db) =>
        {
            // A read that wrote nothing has nothing to commit: dropping the
            // transaction queues its `ROLLBACK`, which the pool sends together with
            // the liveness check it makes on every returning connection (bounded by
            // `DB_PING_TIMEOUT`), so the request saves the `COMMIT` round trip. The
            // transaction (and with it the tenant) still ends before the connection
            // serves anyone else.
            #[cfg(debug_assertions)]
            assert_read_wrote_nothing(&tx).await;
            drop(tx);
            response
        }
        Ok((Settle::Commit(tx, response), written)) => {
            let outcome = tokio::time::timeout(commit_limit, tx.commit()).await;
            if !matches!(outcome, Ok(Err(ref e)) if agenda_storage::error::refused_by_server(e)) {
                // Committed, or perhaps committed: either way the old entries must go.
                state.cache.invalidate_written(&written);
            }
            match outcome {
                Ok(Ok(())) => {
                    let (wrote, key) = {
                        let slot = slot.state();
                        (slot.wrote, slot.fence_key.clone())
                    };
                    if let (true, Some(key)) = (wrote, key) {
                        state.db.note_write(&key).await;
                    }
                    response
                }
                Ok(Err(e)) if agenda_storage::error::refused_by_server(&e) => {
                    ApiError::from(StorageError::from(e)).into_response()
                }
                Ok(Err(e)) => commit_outcome_unknown().with_source(e).into_response(),
                Err(_) => commit_outcome_unknown().into_response(),
            }
        }
    };
    // For the request line (`telemetry::observe_request`).
    if let Some(tenant) = tenant {
        response.extensions_mut().insert(tenant);
    }
    response
}

/// What to do once the handler has answered.
enum Settle {
    /// No transaction, or none we may settle: send this.
    Answer(Response),
    Commit(DatabaseTransaction, Response),
    RollBack(DatabaseTransaction, Response),
}

/// Takes the request's transaction back from the slot and decides: a replay answers
/// the stored response (rolling back); a success stores its response under its
/// `Idempotency-Key` and commits; anything else rolls back.
async fn before_commit(slot: &Slot, response: Response) -> Settle {
    let (replay, claimed, tenant) = {
        let mut state = slot.state();
        (state.replay.take(), state.claimed, state.tenant)
    };
    let response = replay.unwrap_or(response);
    let Some(shared) = slot.take() else {
        return Settle::Answer(response);
    };
    let tx = match Arc::try_unwrap(shared) {
        Ok(tx) => tx,
        // Something kept a handle past the handler (e.g. a spawned task): refuse to
        // commit work we cannot see finish. Dropping our handle leads to a rollback.
        Err(_) => {
            return Settle::Answer(
                ApiError::internal("a transaction outlived its request").into_response(),
            );
        }
    };
    let replayed = response.headers().contains_key(idempotency::REPLAY_HEADER);
    let status = response.status();
    if replayed || !(status.is_success() || status.is_redirection()) {
        return Settle::RollBack(tx, response);
    }
    match (claimed, tenant) {
        (Some(id), Some(scope)) if status.is_success() => {
            match idempotency::store(&tx, scope, id, response).await {
                Ok(response) => Settle::Commit(tx, response),
                Err(e) => Settle::RollBack(tx, e.into_response()),
            }
        }
        _ => Settle::Commit(tx, response),
    }
}

/// Before committing a request that wrote cached tables: tags the commit's cache
/// notifications as this server's own (it invalidates itself after the commit).
async fn tag_cache_writes(cache: &ReadCache, written: &Written, settle: Settle) -> Settle {
    match settle {
        Settle::Commit(tx, response) if !written.is_empty() => match cache.tag_commit(&tx).await {
            Ok(()) => Settle::Commit(tx, response),
            Err(e) => Settle::RollBack(tx, ApiError::from(e).into_response()),
        },
        other => other,
    }
}

/// 504: the commit was sent but its outcome is not known.
fn commit_outcome_unknown() -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "commit_outcome_unknown",
        "the database did not confirm the commit in time: the change may or may not have \
         been saved; check before repeating it, or repeat it with the same Idempotency-Key",
    )
}
