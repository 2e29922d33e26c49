//! Users: one's own profile and addresses; the organization's staff accounts.
//!
//! Who may do what (the tenant is always the signed-in user's organization; a user of
//! another organization answers 404, like one that does not exist):
//!
//! | route | client | provider | support | admin |
//! |---|---|---|---|---|
//! | `GET /users/me`, `PATCH /users/me` | themself | themself | themself | themself |
//! | `GET /users` | no (403) | no (403) | yes, paginated | yes, paginated |
//! | `GET /users/{id}` | themself only (others: 404) | themself only | anyone | anyone |
//! | `GET/POST /users/me/addresses`, `PATCH/DELETE /users/me/addresses/{id}` | their own | their own | their own | their own |
//! | `POST /users` (invite a user of any role) | no | no | no | yes |
//! | `POST /users/{id}/invitation` (send a new invitation) | no | no | no | yes |
//! | `POST /users/{id}/role` | no | no | no | yes |
//! | `POST /users/{id}/deactivate`, `POST /users/{id}/reactivate` | no | no | no | yes |
//!
//! **Staff accounts.** An admin creates a user of any role with `POST /users`; the
//! user gets no password but an e-mailed invitation (a single-use link valid
//! [`INVITATION_HOURS`](crate::accounts::INVITATION_HOURS) hours) to choose one (`POST /auth/invitations/accept`). A new
//! invitation replaces the previous one. Deactivating a user revokes all their
//! sessions in the same transaction; they cannot sign in (401, like a wrong password)
//! until reactivated. **The last active admin** of an organization can be neither
//! demoted nor deactivated (`409 last_admin`), also when two admins try it on each
//! other at the same moment (`UserRepo::change_role`). Every change is written to the
//! audit log (`user.invite`, `user.invitation_resend`, `user.role_change`,
//! `user.deactivate`, `user.reactivate`) with the admin as actor.
//!
//! Another user's address answers 404, like one that does not exist. Making an
//! address the default clears the flag on the user's other addresses first (a user
//! has at most one default).

use agenda_entity::enums::UserRole;
use agenda_entity::user::{self, CreateUser, UpdateUser};
use agenda_entity::user_address::{self, CreateUserAddress, UpdateUserAddress};
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::repo::resource::{ListQuery, Repo};
use agenda_storage::repo::sessions::SessionRepo;
use agenda_storage::repo::users::{UserChange, UserRepo};
use agenda_storage::{StorageError, TenantOwned, TenantScope};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sea_orm::{ColumnTrait, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use validator::{Validate, ValidationErrors};

use super::auth::UserView;
use super::resources::{Row, RowPage, row_json};
use crate::accounts::{self, Mailed};
use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{ValidJson, ValidPath, ValidQuery};
use crate::uow::UnitOfWork;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me, update_me))
        .routes(routes!(list, invite))
        .routes(routes!(show))
        .routes(routes!(resend_invitation))
        .routes(routes!(change_role))
        .routes(routes!(deactivate))
        .routes(routes!(reactivate))
        .routes(routes!(addresses, add_address))
        .routes(routes!(update_address, delete_address))
}

/// A user an admin invites: they choose their own password from the e-mailed link.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "joao@acme.example", "full_name": "João Lima", "role": "provider"}))]
pub struct Invite {
    /// An e-mail address, at most 254 characters; unique in the organization.
    pub email: String,
    /// 1 to 200 characters, not blank.
    pub full_name: String,
    /// Any role: `client`, `provider`, `support` or `admin`.
    pub role: UserRole,
    /// 5 to 32 characters.
    pub phone: Option<String>,
    /// A Brazilian CPF or CNPJ with valid check digits.
    pub tax_id: Option<String>,
}

impl Invite {
    fn account(&self) -> CreateUser {
        CreateUser::without_password(
            self.email.clone(),
            self.full_name.clone(),
            self.phone.clone(),
            self.role,
            self.tax_id.clone(),
        )
    }
}

impl Validate for Invite {
    fn validate(&self) -> Result<(), ValidationErrors> {
        self.account().validate()
    }
}

/// A new role for a user.
#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "support"}))]
pub struct RoleChange {
    pub role: UserRole,
}

fn require_admin(auth: &Auth) -> Result<(), ApiError> {
    auth.require(&[UserRole::Admin])
}

/// Writes the audit entry of an admin's change to a user.
async fn audit_user(
    db: &impl ConnectionTrait,
    auth: &Auth,
    action: &str,
    user: &user::Model,
    details: Value,
) -> Result<(), ApiError> {
    accounts::audit(
        db,
        auth.scope,
        Some(auth.user.id),
        action,
        "user",
        user.id,
        details,
    )
    .await?;
    Ok(())
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

/// Creates a user of any role and e-mails them an invitation to choose a password
/// (admin).
#[utoipa::path(post, operation_id = "inviteUser", path = "/users", tag = "users", security(("bearer" = [])),
    request_body = Invite,
    responses(
        (status = 201, description = "The invited user (`invitation_pending: true`)", body = UserView),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 409, description = "The e-mail is taken in this organization", body = ErrorResponse),
    ))]
async fn invite(
    State(state): State<AppState>,
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<Invite>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    require_admin(&auth)?;
    let tx = uow.tx().await?;
    let created =
        UserRepo::create(tx, auth.scope, input.account(), user::NO_PASSWORD.into()).await?;
    send_invitation(&state, tx, &auth, &created).await?;
    audit_user(
        tx,
        &auth,
        "user.invite",
        &created,
        json!({"email": created.email, "role": created.role}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

async fn send_invitation(
    state: &AppState,
    tx: &sea_orm::DatabaseTransaction,
    auth: &Auth,
    to: &user::Model,
) -> Result<(), ApiError> {
    let organization = OrganizationRepo::get(tx, auth.scope.organization_id()).await?;
    let invited_by = Some(auth.user.full_name.as_str());
    accounts::mail_token(
        &state.mail,
        tx,
        &organization,
        to,
        Mailed::Invitation { invited_by },
    )
    .await?;
    Ok(())
}

/// E-mails a new invitation to a user who has not accepted theirs; the earlier link
/// stops working (admin).
#[utoipa::path(post, operation_id = "resendInvitation", path = "/users/{id}/invitation", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 202, description = "A new invitation is on its way"),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "No such user in this organization", body = ErrorResponse),
        (status = 409, description = "The user has a password already (`invitation_accepted`) or is deactivated (`user_inactive`)", body = ErrorResponse),
    ))]
async fn resend_invitation(
    State(state): State<AppState>,
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    require_admin(&auth)?;
    let tx = uow.tx().await?;
    let invited = UserRepo::get(tx, auth.scope, id).await?;
    if invited.has_password() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invitation_accepted",
            "this user has chosen a password already; they can reset it if they forgot it",
        ));
    }
    if !invited.is_active {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "user_inactive",
            "this user is deactivated; reactivate them first",
        ));
    }
    send_invitation(&state, tx, &auth, &invited).await?;
    audit_user(tx, &auth, "user.invitation_resend", &invited, json!({})).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Gives a user another role (admin). The organization's last active admin cannot be
/// demoted.
#[utoipa::path(post, operation_id = "changeUserRole", path = "/users/{id}/role", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = RoleChange,
    responses(
        (status = 200, description = "The user with the new role", body = UserView),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "No such user in this organization", body = ErrorResponse),
        (status = 409, description = "The user is the organization's last active admin (`last_admin`)", body = ErrorResponse),
    ))]
async fn change_role(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(input): ValidJson<RoleChange>,
) -> Result<Json<UserView>, ApiError> {
    require_admin(&auth)?;
    let tx = uow.tx().await?;
    let change = UserRepo::change_role(tx, auth.scope, id, input.role).await?;
    if change.changed() {
        let details = json!({"from": change.before.role, "to": change.after.role});
        audit_user(tx, &auth, "user.role_change", &change.after, details).await?;
    }
    Ok(Json(change.after.into()))
}

/// Deactivates a user and revokes all their sessions (admin). The organization's last
/// active admin cannot be deactivated.
#[utoipa::path(post, operation_id = "deactivateUser", path = "/users/{id}/deactivate", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The deactivated user", body = UserView),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "No such user in this organization", body = ErrorResponse),
        (status = 409, description = "The user is the organization's last active admin (`last_admin`)", body = ErrorResponse),
    ))]
async fn deactivate(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<UserView>, ApiError> {
    set_active(uow, auth, id, false).await
}

/// Reactivates a deactivated user (admin); they sign in again with their password.
#[utoipa::path(post, operation_id = "reactivateUser", path = "/users/{id}/reactivate", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The reactivated user", body = UserView),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "No such user in this organization", body = ErrorResponse),
    ))]
async fn reactivate(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<UserView>, ApiError> {
    set_active(uow, auth, id, true).await
}

async fn set_active(
    uow: UnitOfWork,
    auth: Auth,
    id: Uuid,
    active: bool,
) -> Result<Json<UserView>, ApiError> {
    require_admin(&auth)?;
    let tx = uow.tx().await?;
    let change: UserChange = UserRepo::set_active(tx, auth.scope, id, active).await?;
    if active {
        if change.changed() {
            audit_user(tx, &auth, "user.reactivate", &change.after, json!({})).await?;
        }
    } else {
        // Also when the user was inactive already: no session of theirs may survive.
        let revoked =
            SessionRepo::revoke_all_for_user(tx, auth.scope, id, chrono::Utc::now()).await?;
        if change.changed() || revoked > 0 {
            let details = json!({"sessions_revoked": revoked});
            audit_user(tx, &auth, "user.deactivate", &change.after, details).await?;
        }
    }
    Ok(Json(change.after.into()))
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
    use user_address::Column as C;
    Repo::<user_address::Entity>::clear_flag(db, scope, C::UserId, user_id, C::IsDefault, keep)
        .await?;
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
