//! `provider_transactions`: The append-only marketplace ledger: payments, commissions, refunds, withdrawals, adjustments.

use crate::enums::{BalanceBucket, TransactionKind};
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_transactions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub provider_id: Uuid,
    pub kind: TransactionKind,
    pub bucket: BalanceBucket,
    /// Signed: credits are positive, debits negative.
    pub amount_cents: i64,
    pub currency: String,
    pub appointment_id: Option<Uuid>,
    pub withdrawal_id: Option<Uuid>,
    /// Id of the processor event that caused the entry; one entry per kind and event.
    pub external_ref: Option<String>,
    pub description: Option<String>,
    pub created_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "provider_id", to = "id")]
    pub provider: BelongsTo<super::user::Entity>,
    #[sea_orm(belongs_to, from = "appointment_id", to = "id")]
    pub appointment: BelongsTo<Option<super::appointment::Entity>>,
    #[sea_orm(belongs_to, from = "withdrawal_id", to = "id")]
    pub withdrawal: BelongsTo<Option<super::payment_withdrawal::Entity>>,
}

crate::created_active_model!();

impl crate::rules::Rules for Model {}
