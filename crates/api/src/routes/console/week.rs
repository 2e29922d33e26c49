//! The week grid: one provider's appointments, Monday to Sunday, in the
//! organization's time zone.

use agenda_entity::enums::UserRole;
use agenda_storage::repo::appointments::{AppointmentQuery, AppointmentRepo};
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::repo::users::UserRepo;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
use minijinja::context;
use minijinja::value::Serde;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::session::ConsoleAdmin;
use super::{ConsoleError, page};
use crate::error::ApiError;
use crate::uow::UnitOfWork;

/// Providers listed in the picker; an organization with more picks by id.
const PROVIDER_LIMIT: u64 = 500;
/// Pages of appointments read for one week (100 each); a week beyond that says so.
const APPOINTMENT_PAGES: usize = 20;

#[derive(Deserialize)]
pub(super) struct WeekQuery {
    provider: Option<String>,
    /// Any day of the week shown (`YYYY-MM-DD`); today by default.
    week: Option<String>,
}

#[derive(Serialize)]
struct Provider {
    id: String,
    name: String,
}

#[derive(Serialize)]
struct Entry {
    id: String,
    time: String,
    status: String,
    client_id: String,
}

#[derive(Serialize)]
struct Day {
    label: String,
    entries: Vec<Entry>,
}

pub(super) async fn week(
    uow: UnitOfWork,
    admin: ConsoleAdmin,
    Query(query): Query<WeekQuery>,
) -> Result<Response, ConsoleError> {
    let scope = admin.auth.scope;
    let db = uow.read().await?;
    let organization = OrganizationRepo::get(db, scope.organization_id()).await?;
    let zone: chrono_tz::Tz = organization.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let providers: Vec<Provider> =
        UserRepo::with_role(db, scope, UserRole::Provider, PROVIDER_LIMIT)
            .await?
            .into_iter()
            .map(|u| Provider {
                id: u.id.to_string(),
                name: format!("{} ({})", u.full_name, u.email),
            })
            .collect();
    let provider = match query.provider.as_deref().filter(|p| !p.is_empty()) {
        Some(text) => Some(Uuid::parse_str(text.trim()).map_err(|_| {
            ApiError::invalid_field("provider", "invalid", "provider is a user id (a UUID)")
        })?),
        None => providers.first().and_then(|p| p.id.parse().ok()),
    };
    let today = Utc::now().with_timezone(&zone).date_naive();
    let day = match query.week.as_deref().filter(|w| !w.is_empty()) {
        Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            ApiError::invalid_field("week", "invalid", "week is a date (YYYY-MM-DD)")
        })?,
        None => today,
    };
    let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
    let start_of = |date: NaiveDate| {
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
        zone.from_local_datetime(&midnight)
            .earliest()
            // A day starting in a gap (a DST change at midnight) starts an hour later.
            .or_else(|| {
                zone.from_local_datetime(&(midnight + Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .expect("a day has a first hour")
    };
    let mut days: Vec<Day> = (0..7)
        .map(|i| {
            let date = monday + Duration::days(i);
            Day {
                label: date.format("%a %d %b").to_string(),
                entries: Vec::new(),
            }
        })
        .collect();
    let mut complete = true;
    if let Some(provider) = provider {
        let mut after = None;
        for round in 0.. {
            if round == APPOINTMENT_PAGES {
                complete = false;
                break;
            }
            let found = AppointmentRepo::list(
                db,
                scope,
                &AppointmentQuery {
                    provider_id: Some(provider),
                    from: Some(start_of(monday)),
                    to: Some(start_of(monday + Duration::days(7))),
                    limit: Some(100),
                    after,
                    ..AppointmentQuery::default()
                },
            )
            .await?;
            for a in found.items {
                let (start, end) = (
                    a.start_at.with_timezone(&zone),
                    a.end_at.with_timezone(&zone),
                );
                let index = (start.date_naive() - monday).num_days().clamp(0, 6) as usize;
                days[index].entries.push(Entry {
                    id: a.id.to_string(),
                    time: format!("{}–{}", start.format("%H:%M"), end.format("%H:%M")),
                    status: a.status.to_string(),
                    client_id: a.client_id.to_string(),
                });
            }
            match found.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    page(
        StatusCode::OK,
        "week.html",
        context! {
            user => admin.auth.user.email,
            csrf => admin.csrf,
            tables => super::navigation(),
            providers => Serde(providers),
            provider => provider.map(|p| p.to_string()),
            time_zone => zone.name(),
            week => monday.to_string(),
            previous => (monday - Duration::days(7)).to_string(),
            next => (monday + Duration::days(7)).to_string(),
            days => Serde(days),
            complete => complete,
        },
    )
}
