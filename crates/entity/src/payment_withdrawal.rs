//! `payment_withdrawals`: Withdrawal requests of providers; the amount is debited from the ledger when requested.

use crate::enums::{PayoutMethod, WithdrawalStatus};
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_withdrawals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub provider_id: Uuid,
    pub amount_cents: i64,
    pub currency: String,
    pub status: WithdrawalStatus,
    pub payout_method: PayoutMethod,
    pub processed_at: Option<DateTimeUtc>,
    pub processed_by: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub failure_reason: Option<String>,
    /// The payout's id at the bank or processor.
    pub external_ref: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "provider_id", to = "id")]
    pub provider: BelongsTo<super::user::Entity>,
    #[sea_orm(
        belongs_to,
        relation_enum = "ProcessedByUser",
        from = "processed_by",
        to = "id"
    )]
    pub processed_by_user: BelongsTo<Option<super::user::Entity>>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}
