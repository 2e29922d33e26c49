//! Catalogue and scheduling-rule resources over the generic repository: one set of
//! handlers serves every table whose create / read / update / delete logic is the same.
//!
//! | resource | read | write |
//! |---|---|---|
//! | `niches`, `categories`, `service-templates` | any signed-in user (cached) | admin |
//! | `services`, `provider-services`, `availability`, `breaks`, `blocked-slots` | any signed-in user | the provider who owns the row, or an admin |
//!
//! A provider creates rows for themself (`provider_id` is theirs, never taken from the
//! body) and can update or delete only their own; another provider's row answers 404.
//! Lists accept `limit` (≤ 100), `after` (the `next` of the previous page), `order`
//! (`oldest`, the default, or `newest`) and equality filters on allow-listed fields
//! (for example `?provider_id=…&is_active=true`); an unknown filter is 422.
//!
//! Rows are returned with every column: ids and instants as strings (RFC 3339), local
//! times as `HH:MM`, dates as `YYYY-MM-DD`.

use std::collections::HashMap;

use agenda_entity::enums::UserRole;
use agenda_entity::rules::Rules;
use agenda_storage::cache::ReadCache;
use agenda_storage::repo::resource::{ListQuery, Repo, Resource};
use axum::Json;
use axum::http::StatusCode;
use sea_orm::{
    ActiveModelBehavior, EntityTrait, IntoActiveModel, Iterable, ModelTrait, TryIntoModel, Value,
};
use serde::Serialize;
use serde_json::Value as Json_;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiError;

/// Who may write a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Admins only (the organization's catalogue).
    AdminWrites,
    /// The provider in `provider_id`, or an admin.
    ProviderOwns,
}

/// A row as the generic routes return it: every column of its table by name, ids and
/// instants as strings (RFC 3339), local times as `HH:MM`, dates as `YYYY-MM-DD`.
/// Every row has `id` and `organization_id`.
pub struct Row;

impl utoipa::PartialSchema for Row {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        let uuid = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        };
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Every column of the row by name: ids and instants as strings (RFC 3339), local times as HH:MM, dates as YYYY-MM-DD",
            ))
            .property("id", uuid())
            .property("organization_id", uuid())
            .required("id")
            .required("organization_id")
            .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(true)))
            .into()
    }
}

impl utoipa::ToSchema for Row {}

/// A page of rows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RowPage {
    #[schema(value_type = Vec<Row>)]
    pub items: Vec<Json_>,
    pub next: Option<String>,
}

/// The paging parameters of every generic list (parsed by [`list`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// Page size, 1 to 100 (default 20); outside that range is 422 on `limit`.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u64>,
    /// The `next` of the previous page; anything else is 422 on `after`.
    after: Option<String>,
    /// `oldest` (the default) or `newest` first.
    #[param(inline)]
    order: Option<ListOrder>,
}

/// The direction of a generic list (rows come in creation order).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
pub enum ListOrder {
    Oldest,
    Newest,
}

/// The equality filters of a generic list, from the table's allow-list
/// ([`Resource::filterable`]), so the document names exactly what [`list`] accepts.
pub struct Filters<E>(std::marker::PhantomData<E>);

impl<E> utoipa::IntoParams for Filters<E>
where
    E: Resource,
    E::Model: Rules + IntoActiveModel<E::ActiveModel> + Send + Sync,
    E::ActiveModel: ActiveModelBehavior + TryIntoModel<E::Model> + Send,
{
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use sea_orm::ColumnTrait;
        use sea_orm::sea_query::ColumnType;
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        use utoipa::openapi::{Object, Required};
        E::filterable()
            .into_iter()
            .map(|column| {
                let name = sea_orm::IdenStatic::as_str(&column);
                let schema: Object = match column.def().get_column_type() {
                    ColumnType::Uuid => ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                        .build(),
                    ColumnType::Boolean => ObjectBuilder::new().schema_type(Type::Boolean).build(),
                    ColumnType::Integer | ColumnType::SmallInteger => ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                        .build(),
                    ColumnType::BigInteger => ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                        .build(),
                    ColumnType::Date => ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
                        .build(),
                    _ => ObjectBuilder::new().schema_type(Type::String).build(),
                };
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(format!("Only rows whose `{name}` equals this value")))
                    .schema(Some(schema))
                    .build()
            })
            .collect()
    }
}

/// An instant as every response writes it (see [`agenda_entity::edge::instant`]).
pub use agenda_entity::edge::instant;

/// Every column of a row as JSON.
pub fn row_json<M: ModelTrait>(model: &M) -> Json_ {
    let mut map = serde_json::Map::new();
    for column in <<M as ModelTrait>::Entity as EntityTrait>::Column::iter() {
        let name = sea_orm::IdenStatic::as_str(&column).to_owned();
        map.insert(name, value_json(model.get(column)));
    }
    Json_::Object(map)
}

fn value_json(value: Value) -> Json_ {
    match value {
        Value::Uuid(Some(v)) => Json_::String(v.to_string()),
        Value::ChronoDateTimeUtc(Some(v)) => Json_::String(instant(&v)),
        Value::ChronoDate(Some(v)) => Json_::String(v.format("%Y-%m-%d").to_string()),
        Value::ChronoTime(Some(v)) => Json_::String(v.format("%H:%M").to_string()),
        other => sea_orm::sea_query::value::sea_value_to_json_value(&other),
    }
}

/// The provider who owns a row (for [`Policy::ProviderOwns`]).
fn owner<M: ModelTrait>(model: &M) -> Option<Uuid> {
    let column = <<M as ModelTrait>::Entity as EntityTrait>::Column::iter()
        .find(|c| sea_orm::IdenStatic::as_str(c) == "provider_id")?;
    match model.get(column) {
        Value::Uuid(Some(id)) => Some(id),
        _ => None,
    }
}

/// Providers create their own rows (the row's `provider_id` is the signed-in
/// provider); admins may change and delete any.
fn may_create(auth: &Auth, policy: Policy) -> Result<(), ApiError> {
    match policy {
        Policy::AdminWrites => auth.require(&[UserRole::Admin]),
        Policy::ProviderOwns => auth.require(&[UserRole::Provider]),
    }
}

fn may_write(auth: &Auth, policy: Policy) -> Result<(), ApiError> {
    match policy {
        Policy::AdminWrites => auth.require(&[UserRole::Admin]),
        Policy::ProviderOwns => auth.require(&[UserRole::Provider, UserRole::Admin]),
    }
}

/// For a provider, the row must be theirs (otherwise it "does not exist").
fn check_owner<M: ModelTrait>(auth: &Auth, policy: Policy, model: &M) -> Result<(), ApiError> {
    if policy == Policy::ProviderOwns
        && auth.role() == UserRole::Provider
        && owner(model) != Some(auth.user.id)
    {
        return Err(ApiError::not_found("record"));
    }
    Ok(())
}

/// A page of rows; the catalogue's pages come through the read cache, keyed by the
/// query (a page depends on the organization and the query only, not on who asks).
pub async fn list<E>(
    db: &sea_orm::DatabaseTransaction,
    cache: &ReadCache,
    auth: &Auth,
    params: HashMap<String, String>,
) -> Result<Json<RowPage>, ApiError>
where
    E: Resource,
    E::Model: Rules + IntoActiveModel<E::ActiveModel> + Send + Sync,
    E::ActiveModel: ActiveModelBehavior + TryIntoModel<E::Model> + Send,
{
    let mut pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    let page = cache
        .get_or_load(
            auth.scope,
            E::default().table_name(),
            &pairs.join("&"),
            || list_page::<E>(db, auth, params),
        )
        .await?;
    Ok(Json(RowPage::clone(&page)))
}

/// A page of rows, read from the database.
pub async fn list_page<E>(
    db: &sea_orm::DatabaseTransaction,
    auth: &Auth,
    params: HashMap<String, String>,
) -> Result<RowPage, ApiError>
where
    E: Resource,
    E::Model: Rules + IntoActiveModel<E::ActiveModel> + Send + Sync,
    E::ActiveModel: ActiveModelBehavior + TryIntoModel<E::Model> + Send,
{
    let mut query = ListQuery::default();
    for (key, value) in params {
        match key.as_str() {
            "limit" => {
                let limit: u64 = value.parse().map_err(|_| {
                    crate::extract::invalid_param(
                        "invalid_query",
                        key.clone(),
                        "must be a whole number".to_owned(),
                    )
                })?;
                if !(1..=100).contains(&limit) {
                    return Err(ApiError::invalid_field(
                        "limit",
                        "range",
                        "must be 1 to 100",
                    ));
                }
                query.limit = Some(limit);
            }
            "after" => query.after = Some(value),
            "order" => match value.as_str() {
                "oldest" => query.newest_first = false,
                "newest" => query.newest_first = true,
                _ => {
                    return Err(ApiError::invalid_field(
                        "order",
                        "invalid",
                        "oldest or newest",
                    ));
                }
            },
            _ => query.filters.push((key, value)),
        }
    }
    let page = Repo::<E>::list(db, auth.scope, &query).await?;
    Ok(RowPage {
        items: page.items.iter().map(row_json).collect(),
        next: page.next,
    })
}

pub async fn show<E>(
    db: &sea_orm::DatabaseTransaction,
    auth: &Auth,
    id: Uuid,
) -> Result<Json<Json_>, ApiError>
where
    E: Resource,
    E::Model: Rules + IntoActiveModel<E::ActiveModel> + Send + Sync,
    E::ActiveModel: ActiveModelBehavior + TryIntoModel<E::Model> + Send,
{
    Ok(Json(row_json(&Repo::<E>::get(db, auth.scope, id).await?)))
}

pub async fn create<E>(
    tx: &sea_orm::DatabaseTransaction,
    auth: &Auth,
    policy: Policy,
    input: E::Create,
) -> Result<(StatusCode, Json<Json_>), ApiError>
where
    E: Resource,
    E::Model: Rules + IntoActiveModel<E::ActiveModel> + Send + Sync,
    E::ActiveModel: ActiveModelBehavior + TryIntoModel<E::Model> + Send,
{
    may_create(auth, policy)?;
    let provider = auth.user.id;
    let created = Repo::<E>::create(tx, auth.scope, input, |row| {
        if policy == Policy::ProviderOwns {
            set_provider(row, provider);
        }
    })
    .await?;
    Ok((StatusCode::CREATED, Json(row_json(&created))))
}

pub async fn update<E>(
    tx: &sea_orm::DatabaseTransaction,
    auth: &Auth,
    policy: Policy,
    id: Uuid,
    input: E::Update,
) -> Result<Json<Json_>, ApiError>
where
    E: Resource,
    E::Model: Rules + IntoActiveModel<E::ActiveModel> + Send + Sync,
    E::ActiveModel: ActiveModelBehavior + TryIntoModel<E::Model> + Send,
{
    may_write(auth, policy)?;
    check_owner(auth, policy, &Repo::<E>::get(tx, auth.scope, id).await?)?;
    Ok(Json(row_json(
        &Repo::<E>::update(tx, auth.scope, id, input).await?,
    )))
}

pub async fn delete<E>(
    tx: &sea_orm::DatabaseTransaction,
    auth: &Auth,
    policy: Policy,
    id: Uuid,
) -> Result<StatusCode, ApiError>
where
    E: Resource,
    E::Model: Rules + IntoActiveModel<E::ActiveModel> + Send + Sync,
    E::ActiveModel: ActiveModelBehavior + TryIntoModel<E::Model> + Send,
{
    may_write(auth, policy)?;
    check_owner(auth, policy, &Repo::<E>::get(tx, auth.scope, id).await?)?;
    Repo::<E>::delete(tx, auth.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets `provider_id` on an active model that has the column.
fn set_provider<A: sea_orm::ActiveModelTrait>(row: &mut A, provider: Uuid) {
    if let Some(column) = <A::Entity as EntityTrait>::Column::iter()
        .find(|c| sea_orm::IdenStatic::as_str(c) == "provider_id")
    {
        row.set(column, provider.into());
    }
}
