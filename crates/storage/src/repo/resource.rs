//! One generic repository for every tenant-owned table whose create/read/update/delete
//! logic is the same: [`Repo<E>`]. Per-table code exists only where behaviour
//! differs (users and their passwords, appointments and booking, the ledger).
//!
//! What every call guarantees:
//!
//! - **Tenant scope**: each function takes a [`TenantScope`]; rows of another
//!   organization are "not found", whatever their id.
//! - **References stay inside the tenant**: a foreign key only proves that the row
//!   exists somewhere. Before a write, every reference column being set is checked
//!   to point at a row of the *same* organization, and otherwise fails exactly like
//!   a reference to a row that does not exist ([`StorageError::InvalidReference`]).
//! - **Row rules after a partial update**: the update input is merged into the row,
//!   then the entity's [`Rules`] are checked on the result (a validation error names
//!   the field) before anything is written.
//! - **Cached tables stay fresh**: writes to a table served by [`crate::cache`] are
//!   recorded ([`crate::cache::wrote`]) so the request drops the tenant's entries
//!   after its commit.
//! - **Lists are keyset-paginated**, filtered and sorted through allow-listed fields
//!   only, with a hard maximum page size ([`MAX_PAGE_SIZE`]).

use std::marker::PhantomData;

use agenda_entity::rules::Rules;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::ColumnType;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ActiveValue, ColumnTrait, Condition, ConnectionTrait,
    IntoActiveModel, Iterable, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement, TryIntoModel, Value,
};
use uuid::Uuid;

use crate::error::StorageError;
use crate::tenant::{TenantOwned, TenantScope};

/// The largest page any list returns, whatever the caller asks for.
pub const MAX_PAGE_SIZE: u64 = 100;
/// The page size when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u64 = 20;

/// A tenant-owned table served by [`Repo`].
pub trait Resource: TenantOwned + Default
where
    Self::Model: Rules + IntoActiveModel<Self::ActiveModel> + Send + Sync,
    Self::ActiveModel: ActiveModelBehavior + TryIntoModel<Self::Model> + Send,
{
    /// The noun used in "not found" errors (`"service"`).
    const NOUN: &'static str;
    /// The validated create input (`agenda_entity::<table>::Create…`).
    type Create: Send;
    /// The validated partial update (`agenda_entity::<table>::Update…`).
    type Update: Send;

    fn id_column() -> Self::Column;
    /// The row to insert for `input` in organization `organization_id`.
    fn new_row(input: Self::Create, organization_id: Uuid) -> Self::ActiveModel;
    /// Merges `input` into `row`.
    fn apply(input: Self::Update, row: &mut Self::ActiveModel);
    /// `(column name, referred table, value)` of every reference to a tenant-owned row
    /// that `row` sets (new or changed values only).
    fn references(row: &Self::ActiveModel) -> Vec<(&'static str, &'static str, Uuid)>;
    /// Columns lists may be filtered by (equality), by name.
    fn filterable() -> Vec<Self::Column>;
}

/// The value of a reference column if it is being written.
pub fn written<T: Into<Option<Uuid>> + Clone + Into<Value>>(
    value: &ActiveValue<T>,
) -> Option<Uuid> {
    match value {
        ActiveValue::Set(v) => v.clone().into(),
        _ => None,
    }
}

/// Declares `Resource` for entity modules whose inputs follow the common shape:
/// `resources! { module: "noun", Create, Update, [ref_column => "referred_table", ...]; ... }`.
macro_rules! resources {
    ($( $module:ident : $noun:literal, $create:ident, $update:ident,
        [$($column:ident => $referred:literal),*], filter [$($filter:ident),*]; )*) => {$(
        impl Resource for agenda_entity::$module::Entity {
            const NOUN: &'static str = $noun;
            type Create = agenda_entity::$module::$create;
            type Update = agenda_entity::$module::$update;

            fn id_column() -> Self::Column {
                agenda_entity::$module::Column::Id
            }

            fn new_row(input: Self::Create, organization_id: Uuid) -> Self::ActiveModel {
                input.into_active_model(organization_id)
            }

            fn apply(input: Self::Update, row: &mut Self::ActiveModel) {
                input.apply(row)
            }

            #[allow(unused_variables, unused_mut)]
            fn references(row: &Self::ActiveModel) -> Vec<(&'static str, &'static str, Uuid)> {
                let mut out = Vec::new();
                $(
                    if let Some(id) = written(&row.$column) {
                        out.push((stringify!($column), $referred, id));
                    }
                )*
                out
            }

            fn filterable() -> Vec<Self::Column> {
                use agenda_entity::$module::Column;
                #[allow(unused_mut)]
                let mut columns: Vec<Column> = Column::iter()
                    .filter(|c| matches!(c.def().get_column_type(), ColumnType::Boolean))
                    .collect();
                $( columns.push(Column::from_name(stringify!($column))); )*
                $( columns.push(Column::from_name(stringify!($filter))); )*
                columns
            }
        }

        impl TenantOwned for agenda_entity::$module::Entity {
            fn tenant_column() -> Self::Column {
                agenda_entity::$module::Column::OrganizationId
            }
        }
    )*};
}

/// `Column::from_str` for the column names the macro knows exist.
trait FromName: Sized {
    fn from_name(name: &str) -> Self;
}

impl<C: std::str::FromStr> FromName for C {
    fn from_name(name: &str) -> Self {
        C::from_str(name).unwrap_or_else(|_| panic!("no column {name}"))
    }
}

resources! {
    availability: "availability", CreateAvailability, UpdateAvailability, [provider_id => "users"], filter [kind, weekday, date];
    blocked_time_slot: "blocked time slot", CreateBlockedTimeSlot, UpdateBlockedTimeSlot, [provider_id => "users"], filter [kind];
    category: "category", CreateCategory, UpdateCategory, [niche_id => "niches", parent_id => "categories"], filter [slug];
    client_payment_preference: "client payment preference", CreateClientPaymentPreference, UpdateClientPaymentPreference, [client_id => "users", default_payment_method_id => "user_payment_methods"], filter [];
    integration_setting: "integration setting", CreateIntegrationSetting, UpdateIntegrationSetting, [], filter [integration];
    niche: "niche", CreateNiche, UpdateNiche, [], filter [slug];
    onboarding_step: "onboarding step", CreateOnboardingStep, UpdateOnboardingStep, [], filter [role, key];
    payment_settings: "payment settings", CreatePaymentSettings, UpdatePaymentSettings, [], filter [];
    promotion: "promotion", CreatePromotion, UpdatePromotion, [provider_id => "users", niche_id => "niches", category_id => "categories", service_id => "services"], filter [code, scope];
    provider_break: "provider break", CreateProviderBreak, UpdateProviderBreak, [provider_id => "users"], filter [kind];
    provider_payment_preference: "provider payment preference", CreateProviderPaymentPreference, UpdateProviderPaymentPreference, [provider_id => "users"], filter [];
    provider_service: "provider service", CreateProviderService, UpdateProviderService, [provider_id => "users", template_id => "service_templates"], filter [];
    provider_service_fee: "provider service fee", CreateProviderServiceFee, UpdateProviderServiceFee, [provider_id => "users"], filter [];
    provider_settings: "provider settings", CreateProviderSettings, UpdateProviderSettings, [provider_id => "users"], filter [city];
    review: "review", CreateReview, UpdateReview, [appointment_id => "appointments", client_id => "users", provider_id => "users", moderated_by => "users"], filter [rating, moderation_status];
    service: "service", CreateService, UpdateService, [provider_id => "users", category_id => "categories", template_id => "service_templates"], filter [];
    service_template: "service template", CreateServiceTemplate, UpdateServiceTemplate, [category_id => "categories"], filter [];
    staff_member: "staff member", CreateStaffMember, UpdateStaffMember, [user_id => "users"], filter [];
    support_message: "support message", CreateSupportMessage, UpdateSupportMessage, [ticket_id => "support_tickets", author_id => "users"], filter [];
    support_ticket: "support ticket", CreateSupportTicket, UpdateSupportTicket, [requester_id => "users", assignee_id => "users", appointment_id => "appointments"], filter [status, priority];
    system_setting: "system setting", CreateSystemSetting, UpdateSystemSetting, [updated_by => "users"], filter [key];
    user_address: "user address", CreateUserAddress, UpdateUserAddress, [user_id => "users"], filter [kind];
    user_onboarding_progress: "user onboarding progress", CreateUserOnboardingProgress, UpdateUserOnboardingProgress, [user_id => "users", step_id => "onboarding_steps"], filter [status];
    user_payment_method: "user payment method", CreateUserPaymentMethod, UpdateUserPaymentMethod, [user_id => "users"], filter [processor];
}

/// What a list asks for: equality filters by column name (raw strings, parsed by
/// column type), a page size, the cursor of the previous page, and the direction
/// (rows come in creation order: keys are UUIDv7).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub filters: Vec<(String, String)>,
    pub limit: Option<u64>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    pub newest_first: bool,
}

/// One page of a list. `next` is the cursor of the following page, absent on the last.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// The page from `items` fetched with `LIMIT size + 1`: at most `size` rows, and
    /// `next` = the cursor of the last one when the extra row shows there are more.
    pub(crate) fn from_probe(mut items: Vec<T>, size: u64, cursor: impl Fn(&T) -> String) -> Self {
        let next = if items.len() as u64 > size {
            items.truncate(size as usize);
            items.last().map(cursor)
        } else {
            None
        };
        Page { items, next }
    }
}

/// The rows per page for a requested `limit`: [`DEFAULT_PAGE_SIZE`] when absent,
/// always within `1..=MAX_PAGE_SIZE`.
pub(crate) fn page_size(limit: Option<u64>) -> u64 {
    limit.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE)
}

fn bad_cursor() -> StorageError {
    StorageError::Validation {
        field: "after",
        message: "is not a cursor this list returned".into(),
    }
}

/// An `after` cursor that is a row id (lists in id order).
pub(crate) fn id_cursor(cursor: &str) -> Result<Uuid, StorageError> {
    Uuid::parse_str(cursor).map_err(|_| bad_cursor())
}

/// An `after` cursor `<RFC 3339 instant>/<id>` (lists in time, then id order).
pub(crate) fn time_id_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), StorageError> {
    let (at, id) = cursor.rsplit_once('/').ok_or_else(bad_cursor)?;
    let at = DateTime::parse_from_rfc3339(at)
        .map_err(|_| bad_cursor())?
        .with_timezone(&Utc);
    Ok((at, id_cursor(id)?))
}

/// The generic repository of a [`Resource`].
pub struct Repo<E>(PhantomData<E>);

impl<E> Repo<E>
where
    E: Resource,
    E::Model: Rules + IntoActiveModel<E::ActiveModel> + Send + Sync,
    E::ActiveModel: ActiveModelBehavior + TryIntoModel<E::Model> + Send,
{
    /// Inserts a row into the scope's organization. `adjust` sets what the server
    /// decides rather than the input (the owner taken from the signed-in user, ...).
    pub async fn create(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        input: E::Create,
        adjust: impl FnOnce(&mut E::ActiveModel) + Send,
    ) -> Result<E::Model, StorageError> {
        let mut row = E::new_row(input, scope.organization_id());
        adjust(&mut row);
        Self::check(db, scope, row.clone()).await?;
        crate::cache::wrote(scope, E::default().table_name());
        Ok(row.insert(db).await?)
    }

    /// The row `id` of this organization; another organization's row is "not found".
    pub async fn get(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<E::Model, StorageError> {
        E::find_in(scope)
            .filter(E::id_column().eq(id))
            .one(db)
            .await?
            .ok_or(StorageError::not_found(E::NOUN))
    }

    /// Applies a partial update; the merged row must satisfy the entity's rules.
    pub async fn update(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
        input: E::Update,
    ) -> Result<E::Model, StorageError> {
        let mut row = Self::get(db, scope, id).await?.into_active_model();
        E::apply(input, &mut row);
        Self::check(db, scope, row.clone()).await?;
        crate::cache::wrote(scope, E::default().table_name());
        Ok(row.update(db).await?)
    }

    /// Deletes the row `id` of this organization.
    pub async fn delete(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<(), StorageError> {
        crate::cache::wrote(scope, E::default().table_name());
        let result = E::delete_in(scope)
            .filter(E::id_column().eq(id))
            .exec(db)
            .await?;
        if result.rows_affected == 0 {
            return Err(StorageError::not_found(E::NOUN));
        }
        Ok(())
    }

    /// Rows of this organization matching `query.filters`, one page at a time.
    pub async fn list(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        query: &ListQuery,
    ) -> Result<Page<E::Model>, StorageError> {
        let limit = page_size(query.limit);
        let mut select = E::find_in(scope).filter(filter_condition::<E>(&query.filters)?);
        let id = E::id_column();
        if let Some(cursor) = &query.after {
            let after = id_cursor(cursor)?;
            select = select.filter(if query.newest_first {
                id.lt(after)
            } else {
                id.gt(after)
            });
        }
        let order = if query.newest_first {
            Order::Desc
        } else {
            Order::Asc
        };
        let items = select.order_by(id, order).limit(limit + 1).all(db).await?;
        Ok(Page::from_probe(items, limit, cursor_of::<E>))
    }

    /// How many rows of this organization match `filters`.
    pub async fn count(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        filters: &[(String, String)],
    ) -> Result<u64, StorageError> {
        Ok(E::find_in(scope)
            .filter(filter_condition::<E>(filters)?)
            .count(db)
            .await?)
    }

    /// Clears the flag `flag` (a boolean column) on every row of this organization
    /// whose `owner_column` is `owner`, except the row `keep`: the first half of a
    /// "one default per owner" rule (a user's addresses, payment methods), done before
    /// the flag is set on one row, in the same transaction.
    pub async fn clear_flag(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        owner_column: E::Column,
        owner: Uuid,
        flag: E::Column,
        keep: Option<Uuid>,
    ) -> Result<(), StorageError> {
        let mut update = E::update_in(scope)
            .filter(owner_column.eq(owner))
            .filter(flag.eq(true))
            .col_expr(flag, sea_orm::sea_query::Expr::value(false));
        if let Some(id) = keep {
            update = update.filter(E::id_column().ne(id));
        }
        crate::cache::wrote(scope, E::default().table_name());
        update.exec(db).await?;
        Ok(())
    }

    /// Row rules on the merged row, then references inside the tenant.
    async fn check(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        row: E::ActiveModel,
    ) -> Result<(), StorageError> {
        let references = E::references(&row);
        if let Ok(model) = row.try_into_model() {
            model.check_rules()?;
        }
        let table = E::default().table_name();
        for (column, referred, id) in references {
            if !exists_in_tenant(db, scope, referred, id).await? {
                return Err(StorageError::InvalidReference {
                    constraint: Some(format!("fk_{table}_{column}_{referred}")),
                });
            }
        }
        Ok(())
    }
}

/// Whether `table` has a row `id` in the scope's organization. `table` comes from the
/// `resources!` declarations, never from input.
pub async fn exists_in_tenant(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    table: &'static str,
    id: Uuid,
) -> Result<bool, StorageError> {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            format!("SELECT 1 FROM {table} WHERE id = $1 AND organization_id = $2")
        }
        _ => format!("SELECT 1 FROM {table} WHERE id = ? AND organization_id = ?"),
    };
    let stmt =
        Statement::from_sql_and_values(backend, sql, [id.into(), scope.organization_id().into()]);
    Ok(db.query_one_raw(stmt).await?.is_some())
}

fn cursor_of<E: Resource>(row: &E::Model) -> String
where
    E::Model: Rules + IntoActiveModel<E::ActiveModel> + Send + Sync,
    E::ActiveModel: ActiveModelBehavior + TryIntoModel<E::Model> + Send,
{
    use sea_orm::ModelTrait;
    match row.get(E::id_column()) {
        Value::Uuid(Some(id)) => id.to_string(),
        other => unreachable!("keys are UUIDs, got {other:?}"),
    }
}

/// `AND` of `column = value` for allow-listed columns; values parsed by column type.
fn filter_condition<E>(filters: &[(String, String)]) -> Result<Condition, StorageError>
where
    E: Resource,
    E::Model: Rules + IntoActiveModel<E::ActiveModel> + Send + Sync,
    E::ActiveModel: ActiveModelBehavior + TryIntoModel<E::Model> + Send,
{
    let allowed = E::filterable();
    let mut condition = Condition::all();
    for (name, raw) in filters {
        let Some(column) = allowed
            .iter()
            .find(|c| sea_orm::IdenStatic::as_str(*c) == name.as_str())
        else {
            return Err(StorageError::Validation {
                field: "filter",
                message: format!("cannot filter by {name}"),
            });
        };
        let value = parse_value(column.def().get_column_type(), raw).ok_or_else(|| {
            StorageError::Validation {
                field: "filter",
                message: format!("{name}: {raw:?} is not a valid value"),
            }
        })?;
        condition = condition.add(column.eq(value));
    }
    Ok(condition)
}

fn parse_value(column_type: &ColumnType, raw: &str) -> Option<Value> {
    Some(match column_type {
        ColumnType::Uuid => Uuid::parse_str(raw).ok()?.into(),
        ColumnType::Boolean => match raw {
            "true" => true.into(),
            "false" => false.into(),
            _ => return None,
        },
        ColumnType::Integer | ColumnType::SmallInteger => raw.parse::<i32>().ok()?.into(),
        ColumnType::BigInteger => raw.parse::<i64>().ok()?.into(),
        ColumnType::Date => chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()?
            .into(),
        ColumnType::String(_) | ColumnType::Text => raw.to_owned().into(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use agenda_entity::service;

    #[test]
    fn filters_are_allow_listed_and_typed() {
        let ok = filter_condition::<service::Entity>(&[
            ("provider_id".into(), Uuid::now_v7().to_string()),
            ("is_active".into(), "true".into()),
        ]);
        assert!(ok.is_ok());
        for (name, raw) in [
            ("name", "x"),
            ("price_cents", "1"),
            ("is_active", "yes"),
            ("provider_id", "1"),
        ] {
            let err =
                filter_condition::<service::Entity>(&[(name.into(), raw.into())]).unwrap_err();
            assert!(
                matches!(
                    err,
                    StorageError::Validation {
                        field: "filter",
                        ..
                    }
                ),
                "{name}={raw}"
            );
        }
    }
}
