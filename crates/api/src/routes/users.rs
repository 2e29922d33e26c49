//! Users: one's own profile and addresses; the organization's user list for staff.
//!
//! Who may do what (the tenant is always the signed-in user's organization):
//!
//! | route | client / provider | admin / support |
//! |---|---|---|
//! | `GET /users/me`, `PATCH /users/me` | themself | themself |
//! | `GET /users` | no (403) | yes, paginated |
//! | `GET /users/{id}` | themself only (others: 404) | any user of the organization |
//! | `GET/POST /users/me/addresses`, `PATCH/DELETE /users/me/addresses/{id}` | their own addresses | their own addresses |
//!
//! Another user's address answers 404, like one that does not exist. Making an
//! address the default clears the flag on the user's other addresses first (a user
//! has at most one default).

use agenda_entity::enums::UserRole;
use agenda_entity::user::{self, UpdateUser};
use agenda_entity::user_address::{self, CreateUserAddress, UpdateUserAddress};
use agenda_storage::repo::resource::{ListQuery, Repo};
use agenda_storage::repo::users::UserRepo;
use agenda_storage::{StorageError, TenantOwned, TenantScope};
use axum::Json;
use axum::http::StatusCode;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use validator::Validate;

use super::auth::UserView;
use super::resources::{Row, RowPage, row_json};
use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{ValidJson, ValidPath, ValidQuery};
use crate::uow::UnitOfWork;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me, update_me))
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(addresses, add_address))
        .routes(routes!(update_address, delete_address))
}

/// A page of users; pass `next` as `after` to get the following page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserPage {
    pub items: Vec<UserView>,
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    pub role: Option<UserRole>,
    /// Page size, at most 100 (default 20).
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

fn is_staff(auth: &Auth) -> bool {
    matches!(auth.role(), UserRole::Admin | UserRole::Support)
}

/// The signed-in user.
#[utoipa::path(get, operation_id = "getMyProfile", path = "/users/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "You", body = UserView),
    ))]
async fn me(auth: Auth) -> Json<UserView> {
    Json(auth.user.into())
}

/// Changes the signed-in user's profile (the fields present in the body).
#[utoipa::path(patch, operation_id = "updateMyProfile", path = "/users/me", tag = "users", security(("bearer" = [])),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The updated profile", body = UserView),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn update_me(
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    let updated = UserRepo::update(uow.tx().await?, auth.scope, auth.user.id, input).await?;
    Ok(Json(updated.into()))
}

/// The organization's users in creation order (admin, support).
#[utoipa::path(get, operation_id = "listUsers", path = "/users", tag = "users", security(("bearer" = [])),
    params(UserQuery),
    responses(
        (status = 200, description = "A page", body = UserPage),
        (status = 403, description = "Admin or support only", body = ErrorResponse),
        (status = 422, description = "Invalid page size", body = ErrorResponse),
    ))]
async fn list(
    uow: UnitOfWork,
    auth: Auth,
    ValidQuery(q): ValidQuery<UserQuery>,
) -> Result<Json<UserPage>, ApiError> {
    let db = uow.read().await?;
    auth.require(&[UserRole::Admin, UserRole::Support])?;
    let limit = q.limit.unwrap_or(20);
    let mut select = user::Entity::find_in(auth.scope);
    if let Some(role) = q.role {
        select = select.filter(user::Column::Role.eq(role));
    }
    if let Some(after) = q.after {
        let after = Uuid::parse_str(&after).map_err(|_| {
            ApiError::invalid_field("after", "invalid", "is not a cursor this list returned")
        })?;
        select = select.filter(user::Column::Id.gt(after));
    }
    let mut items = select
        .order_by_asc(user::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await
        .map_err(StorageError::from)?;
    let next = if items.len() as u64 > limit {
        items.truncate(limit as usize);
        items.last().map(|u| u.id.to_string())
    } else {
        None
    };
    Ok(Json(UserPage {
        items: items.into_iter().map(Into::into).collect(),
        next,
    }))
}

/// One user: staff see anyone of the organization, others only themselves.
#[utoipa::path(get, operation_id = "getUser", path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 404, description = "Not found (or not you)", body = ErrorResponse),
    ))]
async fn show(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<UserView>, ApiError> {
    let db = uow.read().await?;
    if id != auth.user.id && !is_staff(&auth) {
        return Err(ApiError::not_found("user"));
    }
    Ok(Json(UserRepo::get(db, auth.scope, id).await?.into()))
}

/// Clears the default flag on the user's addresses (except `keep`).
async fn clear_default(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<(), ApiError> {
    let mut update = user_address::Entity::update_in(scope)
        .filter(user_address::Column::UserId.eq(user_id))
        .filter(user_address::Column::IsDefault.eq(true))
        .col_expr(user_address::Column::IsDefault, Expr::value(false));
    if let Some(id) = keep {
        update = update.filter(user_address::Column::Id.ne(id));
    }
    update.exec(db).await.map_err(StorageError::from)?;
    Ok(())
}

/// The address if it is the caller's (404 otherwise).
async fn own_address(
    db: &impl ConnectionTrait,
    auth: &Auth,
    id: Uuid,
) -> Result<user_address::Model, ApiError> {
    let address = Repo::<user_address::Entity>::get(db, auth.scope, id).await?;
    if address.user_id == auth.user.id {
        Ok(address)
    } else {
        Err(ApiError::not_found("user address"))
    }
}

/// The signed-in user's addresses, oldest first (at most 100).
#[utoipa::path(get, operation_id = "listMyAddresses", path = "/users/me/addresses", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "Your addresses", body = RowPage),
    ))]
async fn addresses(uow: UnitOfWork, auth: Auth) -> Result<Json<RowPage>, ApiError> {
    let db = uow.read().await?;
    let query = ListQuery {
        filters: vec![("user_id".into(), auth.user.id.to_string())],
        limit: Some(100),
        ..ListQuery::default()
    };
    let page = Repo::<user_address::Entity>::list(db, auth.scope, &query).await?;
    Ok(Json(RowPage {
        items: page.items.iter().map(row_json).collect(),
        next: page.next,
    }))
}

/// Adds an address for the signed-in user.
#[utoipa::path(post, operation_id = "addMyAddress", path = "/users/me/addresses", tag = "users", security(("bearer" = [])),
    request_body = CreateUserAddress,
    responses(
        (status = 201, description = "Created", body = Row),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn add_address(
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<CreateUserAddress>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tx = uow.tx().await?;
    let me = auth.user.id;
    if input.is_default == Some(true) {
        clear_default(tx, auth.scope, me, None).await?;
    }
    let created = Repo::<user_address::Entity>::create(tx, auth.scope, input, |r| {
        r.user_id = sea_orm::Set(me);
    })
    .await?;
    Ok((StatusCode::CREATED, Json(row_json(&created))))
}

/// Changes one of the signed-in user's addresses (`null` clears an optional field).
#[utoipa::path(patch, operation_id = "updateMyAddress", path = "/users/me/addresses/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = UpdateUserAddress,
    responses(
        (status = 200, description = "The updated address", body = Row),
        (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn update_address(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(input): ValidJson<UpdateUserAddress>,
) -> Result<Json<Value>, ApiError> {
    let tx = uow.tx().await?;
    own_address(tx, &auth, id).await?;
    if input.is_default == Some(true) {
        clear_default(tx, auth.scope, auth.user.id, Some(id)).await?;
    }
    let updated = Repo::<user_address::Entity>::update(tx, auth.scope, id, input).await?;
    Ok(Json(row_json(&updated)))
}

/// Deletes one of the signed-in user's addresses.
#[utoipa::path(delete, operation_id = "deleteMyAddress", path = "/users/me/addresses/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
    ))]
async fn delete_address(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let tx = uow.tx().await?;
    own_address(tx, &auth, id).await?;
    Repo::<user_address::Entity>::delete(tx, auth.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
