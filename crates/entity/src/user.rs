//! `users`: the people of one organization (clients, providers, admins, support).

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

pub use crate::enums::UserRole;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    /// Stored lower-cased; unique per organization (`uq_users_organization_id_email`).
    pub email: String,
    /// argon2id PHC string. Never serialised, never logged.
    pub password_hash: String,
    pub full_name: String,
    pub phone: Option<String>,
    pub role: UserRole,
    /// CPF or CNPJ, digits only.
    pub tax_id: Option<String>,
    pub is_active: bool,
    pub is_verified: bool,
    pub last_login_at: Option<DateTimeUtc>,
    /// Consecutive failed logins; reset on success. Drives the login slow-down.
    pub failed_login_attempts: i32,
    /// No login is accepted before this instant (set after repeated failures).
    pub locked_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a user. The organization comes from the caller's scope, never
/// from the body; the password is hashed by the caller before [`Self::into_active_model`].
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[validate(email, length(max = 254))]
    pub email: String,
    #[validate(length(min = 10, max = 128))]
    pub password: String,
    #[validate(
        length(min = 1, max = 200),
        custom(function = "crate::validate::not_blank")
    )]
    pub full_name: String,
    #[validate(length(min = 5, max = 32))]
    pub phone: Option<String>,
    pub role: UserRole,
    #[validate(custom(function = "crate::validate::tax_id"))]
    pub tax_id: Option<String>,
}

impl CreateUser {
    /// The active model to insert for `organization_id`, with an already computed hash.
    pub fn into_active_model(self, organization_id: Uuid, password_hash: String) -> ActiveModel {
        ActiveModel {
            id: NotSet,
            organization_id: Set(organization_id),
            email: Set(normalize_email(&self.email)),
            password_hash: Set(password_hash),
            full_name: Set(self.full_name.trim().to_owned()),
            phone: Set(self.phone),
            role: Set(self.role),
            tax_id: Set(self
                .tax_id
                .as_deref()
                .map(crate::validate::normalize_tax_id)),
            is_active: Set(true),
            is_verified: Set(false),
            last_login_at: Set(None),
            failed_login_attempts: Set(0),
            locked_until: Set(None),
            created_at: NotSet,
            updated_at: NotSet,
        }
    }
}

/// Partial update of a user's profile.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"full_name": "Ana Souza", "phone": "+55 11 91234-5678"})))]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[validate(
        length(min = 1, max = 200),
        custom(function = "crate::validate::not_blank")
    )]
    pub full_name: Option<String>,
    #[validate(length(min = 5, max = 32))]
    pub phone: Option<String>,
    #[validate(custom(function = "crate::validate::tax_id"))]
    pub tax_id: Option<String>,
}

impl UpdateUser {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(name) = self.full_name {
            model.full_name = Set(name.trim().to_owned());
        }
        if let Some(phone) = self.phone {
            model.phone = Set(Some(phone));
        }
        if let Some(tax_id) = self.tax_id {
            model.tax_id = Set(Some(crate::validate::normalize_tax_id(&tax_id)));
        }
    }
}

/// Emails are compared case-insensitively; they are stored trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}
