//! The catalogue and a provider's scheduling rules, served by the generic handlers in
//! [`super::resources`] (see there for the read and write rules of each resource).

use agenda_entity::{
    availability, blocked_time_slot, category, niche, provider_break, provider_service, service,
    service_template,
};
use axum::Json;
use axum::http::StatusCode;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::resources::{self, Policy, Row, RowPage};
use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{QueryMap, ValidJson, ValidPath};
use crate::uow::UnitOfWork;

macro_rules! resource {
    ($name:ident, $entity:ty, $create:ty, $update:ty, $policy:expr, $tag:literal, $list:literal, $item:literal, $plural:literal, $singular:literal) => {
        pub mod $name {
            use super::*;

            pub fn router() -> OpenApiRouter<AppState> {
                OpenApiRouter::new()
                    .routes(routes!(list, create))
                    .routes(routes!(show, update, delete))
            }

            /// A page of rows of this organization; filter with allow-listed fields.
            #[utoipa::path(get, operation_id = concat!("list", $plural), path = $list, tag = $tag, security(("bearer" = [])),
                params(resources::PageParams, resources::Filters<$entity>),
                responses(
                    (status = 200, description = "A page", body = RowPage),
                    (status = 422, description = "Unknown filter or bad value", body = ErrorResponse),
                ))]
            async fn list(
                axum::extract::State(state): axum::extract::State<AppState>,
                uow: UnitOfWork,
                auth: Auth,
                QueryMap(params): QueryMap,
            ) -> Result<Json<RowPage>, ApiError> {
                resources::list::<$entity>(uow.read().await?, &state.cache, &auth, params).await
            }

            /// Creates a row.
            #[utoipa::path(post, operation_id = concat!("create", $singular), path = $list, tag = $tag, security(("bearer" = [])),
                request_body = $create,
                responses(
                    (status = 201, description = "Created", body = Row),
                    (status = 403, description = "Your role may not write this", body = ErrorResponse),
                    (status = 409, description = "Conflicts with an existing row or a missing reference", body = ErrorResponse),
                    (status = 422, description = "Invalid fields", body = ErrorResponse),
                ))]
            async fn create(
                uow: UnitOfWork,
                auth: Auth,
                ValidJson(input): ValidJson<$create>,
            ) -> Result<(StatusCode, Json<Value>), ApiError> {
                resources::create::<$entity>(uow.tx().await?, &auth, $policy, input).await
            }

            /// One row.
            #[utoipa::path(get, operation_id = concat!("get", $singular), path = $item, tag = $tag, security(("bearer" = [])),
                params(("id" = Uuid, Path)),
                responses(
                    (status = 200, description = "The row", body = Row),
                    (status = 404, description = "Not found", body = ErrorResponse),
                ))]
            async fn show(
                uow: UnitOfWork,
                auth: Auth,
                ValidPath(id): ValidPath<Uuid>,
            ) -> Result<Json<Value>, ApiError> {
                resources::show::<$entity>(uow.read().await?, &auth, id).await
            }

            /// Changes the fields present in the body (`null` clears an optional one).
            #[utoipa::path(patch, operation_id = concat!("update", $singular), path = $item, tag = $tag, security(("bearer" = [])),
                params(("id" = Uuid, Path)), request_body = $update,
                responses(
                    (status = 200, description = "The updated row", body = Row),
                    (status = 403, description = "Your role may not write this", body = ErrorResponse),
                    (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
                    (status = 409, description = "Conflicts with an existing row or a missing reference", body = ErrorResponse),
                    (status = 422, description = "Invalid fields", body = ErrorResponse),
                ))]
            async fn update(
                uow: UnitOfWork,
                auth: Auth,
                ValidPath(id): ValidPath<Uuid>,
                ValidJson(input): ValidJson<$update>,
            ) -> Result<Json<Value>, ApiError> {
                resources::update::<$entity>(uow.tx().await?, &auth, $policy, id, input).await
            }

            /// Deletes a row.
            #[utoipa::path(delete, operation_id = concat!("delete", $singular), path = $item, tag = $tag, security(("bearer" = [])),
                params(("id" = Uuid, Path)),
                responses(
                    (status = 204, description = "Deleted"),
                    (status = 403, description = "Your role may not write this", body = ErrorResponse),
                    (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
                    (status = 409, description = "Still referenced", body = ErrorResponse),
                ))]
            async fn delete(
                uow: UnitOfWork,
                auth: Auth,
                ValidPath(id): ValidPath<Uuid>,
            ) -> Result<StatusCode, ApiError> {
                resources::delete::<$entity>(uow.tx().await?, &auth, $policy, id).await
            }
        }
    };
}
pub(crate) use resource;

resource!(
    niches,
    niche::Entity,
    niche::CreateNiche,
    niche::UpdateNiche,
    Policy::AdminWrites,
    "catalogue",
    "/niches",
    "/niches/{id}",
    "Niches",
    "Niche"
);
resource!(
    categories,
    category::Entity,
    category::CreateCategory,
    category::UpdateCategory,
    Policy::AdminWrites,
    "catalogue",
    "/categories",
    "/categories/{id}",
    "Categories",
    "Category"
);
resource!(
    service_templates,
    service_template::Entity,
    service_template::CreateServiceTemplate,
    service_template::UpdateServiceTemplate,
    Policy::AdminWrites,
    "catalogue",
    "/service-templates",
    "/service-templates/{id}",
    "ServiceTemplates",
    "ServiceTemplate"
);
resource!(
    services,
    service::Entity,
    service::CreateService,
    service::UpdateService,
    Policy::ProviderOwns,
    "catalogue",
    "/services",
    "/services/{id}",
    "Services",
    "Service"
);
resource!(
    provider_services,
    provider_service::Entity,
    provider_service::CreateProviderService,
    provider_service::UpdateProviderService,
    Policy::ProviderOwns,
    "catalogue",
    "/provider-services",
    "/provider-services/{id}",
    "ProviderServices",
    "ProviderService"
);
resource!(
    availability_rules,
    availability::Entity,
    availability::CreateAvailability,
    availability::UpdateAvailability,
    Policy::ProviderOwns,
    "scheduling rules",
    "/availability",
    "/availability/{id}",
    "AvailabilityRules",
    "AvailabilityRule"
);
resource!(
    breaks,
    provider_break::Entity,
    provider_break::CreateProviderBreak,
    provider_break::UpdateProviderBreak,
    Policy::ProviderOwns,
    "scheduling rules",
    "/breaks",
    "/breaks/{id}",
    "Breaks",
    "Break"
);
resource!(
    blocked_slots,
    blocked_time_slot::Entity,
    blocked_time_slot::CreateBlockedTimeSlot,
    blocked_time_slot::UpdateBlockedTimeSlot,
    Policy::ProviderOwns,
    "scheduling rules",
    "/blocked-slots",
    "/blocked-slots/{id}",
    "BlockedSlots",
    "BlockedSlot"
);

/// Every resource router.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(niches::router())
        .merge(categories::router())
        .merge(service_templates::router())
        .merge(services::router())
        .merge(provider_services::router())
        .merge(availability_rules::router())
        .merge(breaks::router())
        .merge(blocked_slots::router())
}
