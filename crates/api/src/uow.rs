//! The per-request unit of work (what `get_db` is to the FastAPI services).
//!
//! A handler that writes takes a [`UnitOfWork`]; its first `tx()` call opens a
//! transaction on the pool, shared by everything else in the request. When the
//! handler returns, the [`unit_of_work`] middleware commits if the response is a
//! success (2xx/3xx) and rolls back otherwise. A panic or a client disconnect drops
//! the transaction, which rolls it back before the connection is reused; a commit
//! that fails turns the response into the matching error.
//!
//! Handlers that only read take `State<AppState>` and use the pool directly.

use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sea_orm::DatabaseTransaction;

use crate::app::AppState;
use crate::error::ApiError;

/// The request's transaction slot, installed by [`unit_of_work`].
#[derive(Clone, Default)]
struct Slot(Arc<Mutex<Option<Arc<DatabaseTransaction>>>>);

impl Slot {
    fn take(&self) -> Option<Arc<DatabaseTransaction>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The request's unit of work. Extracting it costs nothing; the transaction is
/// opened by the first call to [`UnitOfWork::tx`], so a request rejected by
/// validation never touches the database.
pub struct UnitOfWork {
    slot: Slot,
    db: agenda_storage::Db,
    tx: tokio::sync::OnceCell<Arc<DatabaseTransaction>>,
}

impl UnitOfWork {
    /// The request's transaction, opened on first use and shared by every caller in
    /// the request. Pass it to repositories.
    pub async fn tx(&self) -> Result<&DatabaseTransaction, ApiError> {
        let tx = self
            .tx
            .get_or_try_init(|| async {
                let mut slot = self
                    .slot
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if slot.is_none() {
                    let opened = Arc::new(self.db.begin().await?);
                    *self.slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(opened.clone());
                    slot = Some(opened);
                }
                Ok::<_, ApiError>(slot.expect("set above"))
            })
            .await?;
        Ok(tx)
    }
}

impl FromRequestParts<AppState> for UnitOfWork {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let slot = parts.extensions.get::<Slot>().cloned().ok_or_else(|| {
            ApiError::internal("the unit-of-work middleware is not installed on this route")
        })?;
        Ok(UnitOfWork {
            slot,
            db: state.db.clone(),
            tx: tokio::sync::OnceCell::new(),
        })
    }
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
