//! A provider's public profile: what a client needs to read the provider's calendar
//! (the zone their slot dates are in) and to choose them (services, rating).
//!
//! | route | who |
//! |---|---|
//! | `GET /providers/{provider_id}/profile` | anyone signed in to the provider's organization |
//!
//! Only public fields: business name, bio, city, the effective time zone (the
//! provider's, else the organization's), the active services, and the rating of the
//! approved reviews. Not a provider of the organization (or deactivated): 404.

use agenda_entity::enums::UserRole;
use agenda_entity::{provider_settings, service};
use agenda_storage::cache::rows_where;
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::repo::users::UserRepo;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::ValidPath;
use crate::uow::UnitOfWork;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(profile))
}

/// One of the provider's active services.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProfileService {
    pub id: Uuid,
    pub name: String,
    pub duration_minutes: i32,
    pub price_cents: i64,
}

/// The rating of the approved reviews (`null` average without any).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rating {
    pub count: i32,
    /// Mean of the approved ratings (1 to 5), to two decimals.
    pub average: Option<f64>,
}

/// A provider as the organization's clients see them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"provider_id": "0190f5a2-6c1e-7b3a-9d4e-2f1a3b4c5d6e", "full_name": "Ana Souza", "business_name": "Studio Ana", "bio": null, "city": "São Paulo", "time_zone": "America/Sao_Paulo", "currency": "BRL", "accepting_bookings": true, "services": [{"id": "0190f5a2-6c1e-7b3a-9d4e-2f1a3b4c5d6f", "name": "Haircut", "duration_minutes": 60, "price_cents": 5000}], "rating": {"count": 2, "average": 4.5}}))]
pub struct ProviderProfile {
    pub provider_id: Uuid,
    pub full_name: String,
    pub business_name: Option<String>,
    pub bio: Option<String>,
    pub city: Option<String>,
    /// The zone the provider's slot dates are read in: their settings' `time_zone`,
    /// else the organization's.
    pub time_zone: String,
    pub currency: String,
    pub accepting_bookings: bool,
    pub services: Vec<ProfileService>,
    pub rating: Rating,
}

/// A provider's public profile: zone, services and rating.
#[utoipa::path(get, operation_id = "getProviderProfile", path = "/providers/{provider_id}/profile", tag = "appointments", security(("bearer" = [])),
    params(("provider_id" = Uuid, Path, description = "The provider")),
    responses(
        (status = 200, description = "The profile", body = ProviderProfile),
        (status = 404, description = "No such provider in your organization", body = ErrorResponse),
    ))]
async fn profile(
    State(state): State<AppState>,
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(provider_id): ValidPath<Uuid>,
) -> Result<Json<ProviderProfile>, ApiError> {
    let db = uow.read().await?;
    let user = UserRepo::get(db, auth.scope, provider_id).await?;
    if user.role != UserRole::Provider || !user.is_active {
        return Err(ApiError::not_found("provider"));
    }
    let cache = Some(&state.cache);
    let organization = OrganizationRepo::get(db, auth.scope.organization_id()).await?;
    let settings = rows_where::<provider_settings::Entity>(
        cache,
        db,
        auth.scope,
        provider_settings::Column::ProviderId,
        provider_id,
    )
    .await?
    .first()
    .cloned();
    let services = rows_where::<service::Entity>(
        cache,
        db,
        auth.scope,
        service::Column::ProviderId,
        provider_id,
    )
    .await?
    .iter()
    .filter(|s| s.is_active)
    .map(|s| ProfileService {
        id: s.id,
        name: s.name.clone(),
        duration_minutes: s.duration_minutes,
        price_cents: s.price_cents,
    })
    .collect();
    let (count, total) = settings
        .as_ref()
        .map_or((0, 0), |s| (s.rating_count, s.rating_total));
    Ok(Json(ProviderProfile {
        provider_id,
        full_name: user.full_name,
        time_zone: settings
            .as_ref()
            .and_then(|s| s.time_zone.clone())
            .unwrap_or(organization.time_zone),
        currency: organization.currency,
        accepting_bookings: settings.as_ref().is_none_or(|s| s.is_accepting_bookings),
        business_name: settings.as_ref().map(|s| s.business_name.clone()),
        bio: settings.as_ref().and_then(|s| s.bio.clone()),
        city: settings.as_ref().and_then(|s| s.city.clone()),
        services,
        rating: Rating {
            count,
            average: (count > 0).then(|| (total as f64 / f64::from(count) * 100.0).round() / 100.0),
        },
    }))
}
