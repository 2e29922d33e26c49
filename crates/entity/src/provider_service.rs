//! `provider_services`: A provider's customisation of a catalogue template: price, execution time, buffer after.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_services")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub provider_id: Uuid,
    pub template_id: Uuid,
    pub price_cents: i64,
    pub execution_minutes: i32,
    /// Minutes kept free after each appointment.
    pub buffer_after_minutes: i32,
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "provider_id", to = "id")]
    pub provider: BelongsTo<super::user::Entity>,
    #[sea_orm(belongs_to, from = "template_id", to = "id")]
    pub template: BelongsTo<super::service_template::Entity>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `provider_services`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"template_id": "0190f5a2-6c1e-7b3a-9d4e-2f1a3b4c5d6e", "price_cents": 7000, "execution_minutes": 50, "buffer_after_minutes": 10})))]
#[serde(deny_unknown_fields)]
pub struct CreateProviderService {
    pub template_id: Uuid,
    #[validate(range(min = 0))]
    pub price_cents: i64,
    #[validate(range(min = 1, max = 1440))]
    pub execution_minutes: i32,
    #[validate(range(min = 0, max = 240))]
    pub buffer_after_minutes: Option<i32>,
    pub is_active: Option<bool>,
}

impl CreateProviderService {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.template_id = Set(self.template_id);
        model.price_cents = Set(self.price_cents);
        model.execution_minutes = Set(self.execution_minutes);
        if let Some(value) = self.buffer_after_minutes {
            model.buffer_after_minutes = Set(value);
        }
        if let Some(value) = self.is_active {
            model.is_active = Set(value);
        }
        model
    }
}

/// Partial update of a row of `provider_services`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateProviderService {
    #[validate(range(min = 0))]
    pub price_cents: Option<i64>,
    #[validate(range(min = 1, max = 1440))]
    pub execution_minutes: Option<i32>,
    #[validate(range(min = 0, max = 240))]
    pub buffer_after_minutes: Option<i32>,
    pub is_active: Option<bool>,
}

impl UpdateProviderService {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.price_cents {
            model.price_cents = Set(value);
        }
        if let Some(value) = self.execution_minutes {
            model.execution_minutes = Set(value);
        }
        if let Some(value) = self.buffer_after_minutes {
            model.buffer_after_minutes = Set(value);
        }
        if let Some(value) = self.is_active {
            model.is_active = Set(value);
        }
    }
}
