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
    /// argon2id PHC string, or [`NO_PASSWORD`] for an invited user who has not chosen
    /// one yet. Never serialised, never logged.
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

/// The `password_hash` of a user who has no password yet (invited, the invitation not
/// accepted): not a PHC string, so no password ever verifies against it.
pub const NO_PASSWORD: &str = "!no-password";

impl Model {
    /// Whether the user has chosen a password (an invited user has not, until they
    /// accept the invitation or reset it).
    pub fn has_password(&self) -> bool {
        self.password_hash != NO_PASSWORD
    }
}

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

/// What stands in for the password when a user is created without one (invited):
/// it satisfies the password rule so that one set of rules checks every profile,
/// and it is never hashed or stored (the user's hash is [`NO_PASSWORD`]).
const PLACEHOLDER_PASSWORD: &str = "not a password: invited";

impl CreateUser {
    /// A user who chooses their password later (an invitation). Validate it like any
    /// other; store it with [`NO_PASSWORD`] as the hash.
    pub fn without_password(
        email: String,
        full_name: String,
        phone: Option<String>,
        role: UserRole,
        tax_id: Option<String>,
    ) -> Self {
        CreateUser {
            email,
            password: PLACEHOLDER_PASSWORD.to_owned(),
            full_name,
            phone,
            role,
            tax_id,
        }
    }

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
