//! Dashboards and the provider search.
//!
//! | route | client | provider | admin | support |
//! |---|---|---|---|---|
//! | `GET /analytics/provider` | no | their own | any provider (`?provider_id=` required) | any provider (`?provider_id=` required) |
//! | `GET /analytics/organization` | no | no | yes | yes |
//! | `GET /providers` (search) | yes | yes | yes | yes |
//!
//! Periods are local dates (`YYYY-MM-DD`, both inclusive) in the provider's or the
//! organization's time zone; see docs/analytics-and-search.md for every figure.

use agenda_entity::edge::CalendarDate;
use agenda_entity::enums::UserRole;
use agenda_storage::repo::analytics::{
    AnalyticsRepo, DateRange, OrganizationSummary, ProviderDashboard, Rating,
};
use agenda_storage::repo::search::{ProviderHit, ProviderQuery, ProviderSearch};
use agenda_storage::repo::users::UserRepo;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use validator::Validate;

use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::ValidQuery;
use crate::uow::UnitOfWork;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(provider_dashboard))
        .routes(routes!(organization_summary))
        .routes(routes!(search))
}

/// A provider's figures for the period: `period`, `by_status` (counts per status and
/// `total`), `revenue_cents`, `revenue_by_month`, `top_services`, `busy_hours`,
/// `busy_weekdays`, `trend`, `rating`, with `time_zone` and `currency`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(value_type = Object)]
pub struct ProviderDashboardView(pub ProviderDashboard);

/// The organization's figures for the period: `period`, `by_status`,
/// `revenue_cents`, `revenue_by_month`, `active_providers`, `active_clients`,
/// `new_clients`, `clients_with_appointments`, `providers_with_appointments`,
/// `top_providers`, `trend`, `rating`, with `time_zone` and `currency`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(value_type = Object)]
pub struct OrganizationSummaryView(pub OrganizationSummary);

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RatingView {
    /// Average of approved reviews (1 to 5), `null` when unrated.
    pub average: Option<f64>,
    pub count: i64,
    pub total: i64,
}

impl From<Rating> for RatingView {
    fn from(r: Rating) -> Self {
        RatingView {
            average: r.average,
            count: r.count,
            total: r.total,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceMatchView {
    pub name: String,
    /// The lowest price of the matching offerings of that name (organization currency).
    pub min_price_cents: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderHitView {
    pub provider_id: Uuid,
    pub business_name: String,
    pub city: Option<String>,
    pub rating: RatingView,
    pub services: Vec<ServiceMatchView>,
}

impl From<ProviderHit> for ProviderHitView {
    fn from(h: ProviderHit) -> Self {
        ProviderHitView {
            provider_id: h.provider_id,
            business_name: h.business_name,
            city: h.city,
            rating: h.rating.into(),
            services: h
                .services
                .into_iter()
                .map(|s| ServiceMatchView {
                    name: s.name,
                    min_price_cents: s.min_price_cents,
                })
                .collect(),
        }
    }
}

/// A page of providers, best rated first; pass `next` as `after` for the next page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderHitPage {
    pub items: Vec<ProviderHitView>,
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProviderPeriodQuery {
    /// First local date, `YYYY-MM-DD`.
    pub from: CalendarDate,
    /// Last local date, inclusive.
    pub to: CalendarDate,
    /// Required for admin and support; a provider may leave it out (or name themself).
    pub provider_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// First local date, `YYYY-MM-DD`.
    pub from: CalendarDate,
    /// Last local date, inclusive.
    pub to: CalendarDate,
}

#[derive(Debug, Deserialize, Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub niche_id: Option<Uuid>,
    /// This category or a direct subcategory of it.
    pub category_id: Option<Uuid>,
    /// Part of an offering's or the business's name (2 to 100 characters).
    #[validate(length(max = 100))]
    pub text: Option<String>,
    /// Exact city, case-insensitive.
    #[validate(length(max = 100))]
    pub city: Option<String>,
    /// Minimum average rating, 1 to 5.
    #[validate(range(min = 1, max = 5))]
    pub min_rating: Option<u8>,
    /// Page size, at most 100 (default 20).
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

/// A provider's dashboard (provider: their own; admin, support: `?provider_id=`).
#[utoipa::path(get, operation_id = "getProviderDashboard", path = "/analytics/provider", tag = "analytics", security(("bearer" = [])),
    params(ProviderPeriodQuery),
    responses(
        (status = 200, description = "The figures", body = ProviderDashboardView),
        (status = 403, description = "Clients have no dashboard", body = ErrorResponse),
        (status = 404, description = "No such provider (or not yours)", body = ErrorResponse),
        (status = 422, description = "Invalid period, or staff did not name the provider", body = ErrorResponse),
    ))]
async fn provider_dashboard(
    uow: UnitOfWork,
    auth: Auth,
    ValidQuery(q): ValidQuery<ProviderPeriodQuery>,
) -> Result<Json<ProviderDashboardView>, ApiError> {
    auth.require(&[UserRole::Provider, UserRole::Admin, UserRole::Support])?;
    let db = uow.read().await?;
    let provider = match (auth.role(), q.provider_id) {
        (UserRole::Provider, None) => auth.user.id,
        (UserRole::Provider, Some(id)) if id == auth.user.id => id,
        (UserRole::Provider, Some(_)) => return Err(ApiError::not_found("provider")),
        (_, None) => {
            return Err(ApiError::invalid_field(
                "provider_id",
                "required",
                "staff must name the provider",
            ));
        }
        (_, Some(id)) => {
            if UserRepo::get(db, auth.scope, id).await?.role != UserRole::Provider {
                return Err(ApiError::not_found("provider"));
            }
            id
        }
    };
    let period = DateRange::new(q.from.get(), q.to.get());
    let figures =
        AnalyticsRepo::provider_dashboard(db, auth.scope, provider, period, Utc::now()).await?;
    Ok(Json(ProviderDashboardView(figures)))
}

/// The organization's figures (admin, support).
#[utoipa::path(get, operation_id = "getOrganizationSummary", path = "/analytics/organization", tag = "analytics", security(("bearer" = [])),
    params(PeriodQuery),
    responses(
        (status = 200, description = "The figures", body = OrganizationSummaryView),
        (status = 403, description = "Admins and support only", body = ErrorResponse),
        (status = 422, description = "Invalid period", body = ErrorResponse),
    ))]
async fn organization_summary(
    uow: UnitOfWork,
    auth: Auth,
    ValidQuery(q): ValidQuery<PeriodQuery>,
) -> Result<Json<OrganizationSummaryView>, ApiError> {
    let db = uow.read().await?;
    auth.require(&[UserRole::Admin, UserRole::Support])?;
    let period = DateRange::new(q.from.get(), q.to.get());
    let figures = AnalyticsRepo::organization_summary(db, auth.scope, period, Utc::now()).await?;
    Ok(Json(OrganizationSummaryView(figures)))
}

/// Finds providers that accept bookings and offer a matching service (any
/// signed-in user).
#[utoipa::path(get, operation_id = "searchProviders", path = "/providers", tag = "analytics", security(("bearer" = [])),
    params(SearchQuery),
    responses(
        (status = 200, description = "A page of providers", body = ProviderHitPage),
        (status = 422, description = "Text too short or long, bad rating, page size or cursor", body = ErrorResponse),
    ))]
async fn search(
    uow: UnitOfWork,
    auth: Auth,
    ValidQuery(q): ValidQuery<SearchQuery>,
) -> Result<Json<ProviderHitPage>, ApiError> {
    let db = uow.read().await?;
    let query = ProviderQuery {
        niche_id: q.niche_id,
        category_id: q.category_id,
        text: q.text,
        city: q.city,
        min_rating: q.min_rating,
        limit: q.limit,
        after: q.after,
    };
    let page = ProviderSearch::search(db, auth.scope, &query).await?;
    Ok(Json(ProviderHitPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}
