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
//! an authenticated request costs one `BEGIN`/`COMMIT` in all.
//!
//! **Read or write.** On SQLite, [`UnitOfWork::tx`] takes the write lock at once
//! (`BEGIN IMMEDIATE`) so that concurrent writers queue instead of failing, while
//! [`UnitOfWork::read`] opens a plain read transaction that never blocks anyone. A
//! handler that writes calls `tx()` first. On PostgreSQL both are the same.
//!
//! [`Auth`]: crate::auth::Auth

use std::sync::{Arc, Mutex};

use agenda_storage::{Db, Engine, TenantScope};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sea_orm::DatabaseTransaction;

use crate::app::AppState;
use crate::error::ApiError;

/// The request's transaction and tenant, installed by [`unit_of_work`].
#[derive(Clone, Default)]
pub(crate) struct Slot(Arc<Mutex<SlotState>>);

#[derive(Default)]
struct SlotState {
    tx: Option<Arc<DatabaseTransaction>>,
    tenant: Option<TenantScope>,
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
}

/// The request's unit of work. Extracting it costs nothing; the transaction is
/// opened by the first call to [`UnitOfWork::tx`] or [`UnitOfWork::read`], so a
/// request rejected by validation never touches the database.
pub struct UnitOfWork {
    slot: Slot,
    db: Db,
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
                    (Mode::Read, Some(scope)) => self.db.read_in(scope).await?,
                    (Mode::Read, None) => self.db.begin_read().await?,
                });
                self.slot.state().tx = Some(opened.clone());
                Ok(opened)
            })
            .await?;
        Ok(tx)
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

/// Middleware: gives the request a transaction slot and settles the transaction
/// after the handler has produced its response.
pub async fn unit_of_work(mut req: Request, next: Next) -> Response {
    let slot = Slot::default();
    req.extensions_mut().insert(slot.clone());
    let response = next.run(req).await;
    let Some(shared) = slot.take() else {
        return response;
    };
    let tx = match Arc::try_unwrap(shared) {
        Ok(tx) => tx,
        // Something kept a handle past the handler (e.g. a spawned task): refuse to
        // commit work we cannot see finish. Dropping our handle leads to a rollback.
        Err(_) => return ApiError::internal("a transaction outlived its request").into_response(),
    };
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        match tx.commit().await {
            Ok(()) => response,
            Err(e) => ApiError::from(agenda_storage::StorageError::from(e)).into_response(),
        }
    } else {
        if let Err(e) = tx.rollback().await {
            tracing::warn!(error = %e, "rollback failed; the connection will be discarded");
        }
        response
    }
}
