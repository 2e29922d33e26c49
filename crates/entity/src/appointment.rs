//! `appointments`: Bookings. No two active appointments of one provider overlap (exclusion constraint on PostgreSQL, checked in the booking transaction on SQLite).

use crate::enums::{AppointmentStatus, PaymentMethod, PaymentStatus};
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "appointments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub client_id: Uuid,
    pub provider_id: Uuid,
    /// The provider's own service booked, or …
    pub service_id: Option<Uuid>,
    /// … the catalogue-based offering booked (exactly one of the two).
    pub provider_service_id: Option<Uuid>,
    pub promotion_id: Option<Uuid>,
    /// Where the service happens, for services at the client's address.
    pub address_id: Option<Uuid>,
    pub start_at: DateTimeUtc,
    pub end_at: DateTimeUtc,
    /// `end_at` plus the provider's buffer: the provider's time is taken until then.
    pub occupied_until: DateTimeUtc,
    pub status: AppointmentStatus,
    /// Price snapshot at booking time.
    pub price_cents: i64,
    pub discount_cents: i64,
    /// ISO 4217 code of the amounts (the organization's currency at booking time).
    pub currency: String,
    pub payment_method: Option<PaymentMethod>,
    pub payment_status: PaymentStatus,
    #[sea_orm(column_type = "Text")]
    pub notes: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub provider_notes: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub cancellation_reason: Option<String>,
    pub canceled_at: Option<DateTimeUtc>,
    pub canceled_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "client_id", to = "id")]
    pub client: BelongsTo<super::user::Entity>,
    #[sea_orm(
        belongs_to,
        relation_enum = "Provider",
        from = "provider_id",
        to = "id"
    )]
    pub provider: BelongsTo<super::user::Entity>,
    #[sea_orm(belongs_to, from = "service_id", to = "id")]
    pub service: BelongsTo<Option<super::service::Entity>>,
    #[sea_orm(belongs_to, from = "provider_service_id", to = "id")]
    pub provider_service: BelongsTo<Option<super::provider_service::Entity>>,
    #[sea_orm(belongs_to, from = "promotion_id", to = "id")]
    pub promotion: BelongsTo<Option<super::promotion::Entity>>,
    #[sea_orm(belongs_to, from = "address_id", to = "id")]
    pub address: BelongsTo<Option<super::user_address::Entity>>,
    #[sea_orm(
        belongs_to,
        relation_enum = "CanceledByUser",
        from = "canceled_by",
        to = "id"
    )]
    pub canceled_by_user: BelongsTo<Option<super::user::Entity>>,
    #[sea_orm(has_many)]
    pub status_history: HasMany<super::appointment_status_history::Entity>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}
