//! `user_addresses`: Typed postal addresses of a user; at most one default per user.

use crate::enums::AddressKind;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "user_addresses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub user_id: Uuid,
    pub kind: AddressKind,
    pub label: Option<String>,
    pub street: String,
    pub number: Option<String>,
    pub complement: Option<String>,
    pub district: Option<String>,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 code, upper case.
    pub country: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub is_default: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "user_id", to = "id")]
    pub user: BelongsTo<super::user::Entity>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `user_addresses`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"kind": "home", "street": "Rua Augusta", "number": "100", "city": "Sao Paulo", "state": "SP", "postal_code": "01304-000", "country": "BR", "is_default": true})))]
#[serde(deny_unknown_fields)]
pub struct CreateUserAddress {
    pub kind: AddressKind,
    #[validate(length(max = 60))]
    pub label: Option<String>,
    #[validate(length(min = 1, max = 200))]
    pub street: String,
    #[validate(length(max = 20))]
    pub number: Option<String>,
    #[validate(length(max = 100))]
    pub complement: Option<String>,
    #[validate(length(max = 100))]
    pub district: Option<String>,
    #[validate(length(min = 1, max = 100))]
    pub city: String,
    #[validate(length(min = 1, max = 100))]
    pub state: String,
    #[validate(length(min = 1, max = 20))]
    pub postal_code: String,
    #[validate(custom(function = "crate::validate::country"))]
    pub country: String,
    #[validate(range(min = -90.0, max = 90.0))]
    pub latitude: Option<f64>,
    #[validate(range(min = -180.0, max = 180.0))]
    pub longitude: Option<f64>,
    pub is_default: Option<bool>,
}

impl CreateUserAddress {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.kind = Set(self.kind);
        model.label = Set(self.label);
        model.street = Set(self.street);
        model.number = Set(self.number);
        model.complement = Set(self.complement);
        model.district = Set(self.district);
        model.city = Set(self.city);
        model.state = Set(self.state);
        model.postal_code = Set(self.postal_code);
        model.country = Set(self.country);
        model.latitude = Set(self.latitude);
        model.longitude = Set(self.longitude);
        if let Some(value) = self.is_default {
            model.is_default = Set(value);
        }
        model
    }
}

/// Partial update of a row of `user_addresses`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateUserAddress {
    pub kind: Option<AddressKind>,
    #[validate(length(max = 60))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub label: Option<Option<String>>,
    #[validate(length(min = 1, max = 200))]
    pub street: Option<String>,
    #[validate(length(max = 20))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub number: Option<Option<String>>,
    #[validate(length(max = 100))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub complement: Option<Option<String>>,
    #[validate(length(max = 100))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub district: Option<Option<String>>,
    #[validate(length(min = 1, max = 100))]
    pub city: Option<String>,
    #[validate(length(min = 1, max = 100))]
    pub state: Option<String>,
    #[validate(length(min = 1, max = 20))]
    pub postal_code: Option<String>,
    #[validate(custom(function = "crate::validate::country"))]
    pub country: Option<String>,
    #[validate(range(min = -90.0, max = 90.0))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub latitude: Option<Option<f64>>,
    #[validate(range(min = -180.0, max = 180.0))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub longitude: Option<Option<f64>>,
    pub is_default: Option<bool>,
}

impl UpdateUserAddress {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.kind {
            model.kind = Set(value);
        }
        if let Some(value) = self.label {
            model.label = Set(value);
        }
        if let Some(value) = self.street {
            model.street = Set(value);
        }
        if let Some(value) = self.number {
            model.number = Set(value);
        }
        if let Some(value) = self.complement {
            model.complement = Set(value);
        }
        if let Some(value) = self.district {
            model.district = Set(value);
        }
        if let Some(value) = self.city {
            model.city = Set(value);
        }
        if let Some(value) = self.state {
            model.state = Set(value);
        }
        if let Some(value) = self.postal_code {
            model.postal_code = Set(value);
        }
        if let Some(value) = self.country {
            model.country = Set(value);
        }
        if let Some(value) = self.latitude {
            model.latitude = Set(value);
        }
        if let Some(value) = self.longitude {
            model.longitude = Set(value);
        }
        if let Some(value) = self.is_default {
            model.is_default = Set(value);
        }
    }
}
