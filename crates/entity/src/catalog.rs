//! The list of every table the entities define, with their columns: what tests
//! compare against the migrated database (drift) and what tools iterate over
//! (row counts, backups). Adding an entity means adding it here too; a test fails
//! otherwise, because the migrated schema would have a table no entity describes.

use sea_orm::sea_query::ColumnType;
use sea_orm::{ColumnTrait, EntityTrait, Iterable};

/// One table as the entity declares it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub name: &'static str,
    pub columns: Vec<ColumnInfo>,
}

/// One column as the entity declares it.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    pub column_type: ColumnType,
    pub nullable: bool,
}

fn info<E: EntityTrait + Default>() -> TableInfo {
    TableInfo {
        name: E::default().table_name(),
        columns: E::Column::iter()
            .map(|column| {
                let def = column.def();
                ColumnInfo {
                    name: sea_orm::IdenStatic::as_str(&column).to_owned(),
                    column_type: def.get_column_type().clone(),
                    nullable: def.is_null(),
                }
            })
            .collect(),
    }
}

/// Every table, parents before children (the order the migrations create them).
pub fn tables() -> Vec<TableInfo> {
    vec![
        info::<crate::organization::Entity>(),
        info::<crate::user::Entity>(),
        info::<crate::staff_member::Entity>(),
        info::<crate::user_session::Entity>(),
        info::<crate::password_reset_token::Entity>(),
        info::<crate::user_address::Entity>(),
        info::<crate::niche::Entity>(),
        info::<crate::category::Entity>(),
        info::<crate::service_template::Entity>(),
        info::<crate::service::Entity>(),
        info::<crate::provider_service::Entity>(),
        info::<crate::provider_settings::Entity>(),
        info::<crate::provider_payment_preference::Entity>(),
        info::<crate::payment_settings::Entity>(),
        info::<crate::integration_setting::Entity>(),
        info::<crate::user_payment_method::Entity>(),
        info::<crate::client_payment_preference::Entity>(),
        info::<crate::promotion::Entity>(),
        info::<crate::provider_service_fee::Entity>(),
        info::<crate::availability::Entity>(),
        info::<crate::provider_break::Entity>(),
        info::<crate::blocked_time_slot::Entity>(),
        info::<crate::appointment::Entity>(),
        info::<crate::appointment_status_history::Entity>(),
        info::<crate::review::Entity>(),
        info::<crate::provider_balance::Entity>(),
        info::<crate::payment_withdrawal::Entity>(),
        info::<crate::provider_transaction::Entity>(),
        info::<crate::support_ticket::Entity>(),
        info::<crate::support_message::Entity>(),
        info::<crate::onboarding_step::Entity>(),
        info::<crate::user_onboarding_progress::Entity>(),
        info::<crate::notification::Entity>(),
        info::<crate::system_setting::Entity>(),
        info::<crate::audit_log::Entity>(),
        info::<crate::idempotency_key::Entity>(),
        info::<crate::outbox_message::Entity>(),
    ]
}

/// The platform tables outside every organization's data: the operator console's
/// credentials and sessions. They have no `organization_id` and no row-level
/// security, and backups, restores, row counts and the organization view of the
/// console leave them out; the schema checks compare them like any other table.
pub fn platform_tables() -> Vec<TableInfo> {
    vec![
        info::<crate::operator::Entity>(),
        info::<crate::operator_session::Entity>(),
    ]
}

/// [`tables`] and [`platform_tables`]: every table the migrations create.
pub fn all_tables() -> Vec<TableInfo> {
    let mut all = tables();
    all.extend(platform_tables());
    all
}

#[cfg(test)]
mod tests {
    #[test]
    fn thirty_seven_distinct_tables() {
        let tables = super::tables();
        let mut names: Vec<_> = tables.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 37);
        for table in &tables {
            assert_eq!(table.columns[0].name, "id", "{}", table.name);
        }
        let platform: Vec<_> = super::platform_tables().iter().map(|t| t.name).collect();
        assert_eq!(platform, ["operators", "operator_sessions"]);
        assert!(platform.iter().all(|p| !names.contains(p)));
        assert_eq!(super::all_tables().len(), 39);
    }
}
