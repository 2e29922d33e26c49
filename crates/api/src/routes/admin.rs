//! Database monitoring for admins.
//!
//! - `GET /admin/db/pool` → this process's pool now (size, idle, in use, min, max)
//!   and the settings in force (never the password).
//! - `GET /admin/db/connections` → PostgreSQL sessions of this database grouped by
//!   state and user, with counts and the longest idle time; no query text (409
//!   `postgres_only` on SQLite).
//!
//! Both are admin only (403 for other roles, 401 without a session).

use std::collections::BTreeMap;

use agenda_entity::enums::UserRole;
use agenda_storage::ops;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pool))
        .routes(routes!(connections))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PoolView {
    pub engine: String,
    #[schema(value_type = Object)]
    pub pool: agenda_storage::db::PoolStatus,
    /// The settings in force (the URL with its password hidden).
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionGroup {
    pub state: String,
    pub user: String,
    pub count: u64,
    /// The longest time a session of this group has been idle, in seconds.
    pub max_idle_seconds: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionsView {
    pub total: u64,
    pub groups: Vec<ConnectionGroup>,
}

/// The connection pool of this process.
#[utoipa::path(get, operation_id = "getDatabasePool", path = "/admin/db/pool", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "Pool figures and settings", body = PoolView),
        (status = 403, description = "Admins only", body = ErrorResponse),
    ))]
async fn pool(State(state): State<AppState>, auth: Auth) -> Result<Json<PoolView>, ApiError> {
    auth.require(&[UserRole::Admin])?;
    Ok(Json(PoolView {
        engine: state.db.engine().as_str().to_owned(),
        pool: state.db.pool_status(),
        settings: serde_json::to_value(state.db.settings()).map_err(ApiError::internal)?,
    }))
}

/// Database sessions by state and user (PostgreSQL).
#[utoipa::path(get, operation_id = "listDatabaseConnections", path = "/admin/db/connections", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "Sessions grouped by state and user", body = ConnectionsView),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 409, description = "Not available on SQLite", body = ErrorResponse),
    ))]
async fn connections(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<ConnectionsView>, ApiError> {
    auth.require(&[UserRole::Admin])?;
    let sessions = ops::connections(&state.db).await?;
    let mut groups: BTreeMap<(String, String), ConnectionGroup> = BTreeMap::new();
    for s in &sessions {
        let state = s.state.clone().unwrap_or_else(|| "unknown".into());
        let user = s.user.clone().unwrap_or_else(|| "unknown".into());
        let group = groups
            .entry((state.clone(), user.clone()))
            .or_insert(ConnectionGroup {
                state,
                user,
                count: 0,
                max_idle_seconds: None,
            });
        group.count += 1;
        if let Some(idle) = s.idle_seconds {
            group.max_idle_seconds =
                Some(group.max_idle_seconds.map_or(idle, |m: f64| m.max(idle)));
        }
    }
    Ok(Json(ConnectionsView {
        total: sessions.len() as u64,
        groups: groups.into_values().collect(),
    }))
}
