//! `organizations`: the tenant. Every tenant-owned row points here.

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

pub use crate::enums::{Locale, OrganizationStatus};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// URL-safe unique handle (`uq_organizations_slug`).
    pub slug: String,
    pub name: String,
    /// IANA time zone: the default for providers' calendar rules.
    pub time_zone: String,
    /// ISO 4217 code; every `*_cents` amount of the organization is in this currency.
    pub currency: String,
    /// The language of the e-mails sent for the organization (`en` or `pt-BR`).
    pub locale: Locale,
    pub status: OrganizationStatus,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(has_many)]
    pub users: HasMany<super::user::Entity>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating an organization.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"slug": "acme-clinic", "name": "Acme Clinic", "time_zone": "America/Sao_Paulo", "currency": "BRL"})))]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    #[validate(custom(function = "crate::validate::slug"))]
    pub slug: String,
    #[validate(
        length(min = 1, max = 200),
        custom(function = "crate::validate::not_blank")
    )]
    pub name: String,
    #[validate(custom(function = "crate::validate::time_zone"))]
    pub time_zone: String,
    #[validate(custom(function = "crate::validate::currency"))]
    pub currency: String,
    /// `en` (the default) or `pt-BR`: the language of the organization's e-mails.
    #[serde(default)]
    pub locale: Option<Locale>,
}

impl CreateOrganization {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self) -> ActiveModel {
        ActiveModel {
            id: NotSet,
            slug: Set(self.slug),
            name: Set(self.name.trim().to_owned()),
            time_zone: Set(self.time_zone),
            currency: Set(self.currency),
            locale: Set(self.locale.unwrap_or(Locale::En)),
            status: Set(OrganizationStatus::Active),
            created_at: NotSet,
            updated_at: NotSet,
        }
    }
}

/// Partial update of an organization: absent fields are left as they are. The slug
/// and currency are fixed once created (links and amounts depend on them).
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganization {
    #[validate(
        length(min = 1, max = 200),
        custom(function = "crate::validate::not_blank")
    )]
    pub name: Option<String>,
    #[validate(custom(function = "crate::validate::time_zone"))]
    pub time_zone: Option<String>,
    pub locale: Option<Locale>,
    pub status: Option<OrganizationStatus>,
}

impl UpdateOrganization {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(name) = self.name {
            model.name = Set(name.trim().to_owned());
        }
        if let Some(tz) = self.time_zone {
            model.time_zone = Set(tz);
        }
        if let Some(locale) = self.locale {
            model.locale = Set(locale);
        }
        if let Some(status) = self.status {
            model.status = Set(status);
        }
    }
}
