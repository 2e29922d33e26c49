//! Booking e-mails: when an appointment is confirmed (at booking, when the provider
//! confirms automatically, or later), canceled or rescheduled, the client and the
//! provider each get a message in the organization's locale, with the time in the
//! provider's time zone.
//!
//! [`notify`] is the one call the booking paths make, in the transaction of the
//! change itself.

use std::str::FromStr;

use agenda_entity::enums::AppointmentStatus;
use agenda_entity::{
    appointment, provider_service, provider_settings, service, service_template, user,
};
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::{StorageError, TenantOwned, TenantScope};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sea_orm::{ColumnTrait, ConnectionTrait, QueryFilter};

use crate::locale::format_instant;
use crate::outbox::{Outbox, Recipient};
use crate::templates::{Audience, BookingDetails, Email};

/// What happened to an appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookingEvent {
    /// It was booked, or changed status; only some statuses mail anyone
    /// (see [`BookingEvent::mails`]).
    Status(AppointmentStatus),
    /// It moved; `from` is the previous start.
    Rescheduled { from: DateTime<Utc> },
}

impl BookingEvent {
    /// Whether the event sends mail: confirmation, cancellation and rescheduling do;
    /// a pending booking, starting, completing and no-shows do not (yet).
    pub fn mails(&self) -> bool {
        matches!(
            self,
            BookingEvent::Status(AppointmentStatus::Confirmed | AppointmentStatus::Canceled)
                | BookingEvent::Rescheduled { .. }
        )
    }
}

/// Writes the event's messages to the client and to the provider of `appointment`
/// (as it is after the change) in the caller's transaction. Events that mail nobody
/// write nothing.
pub async fn notify(
    outbox: &Outbox,
    db: &impl ConnectionTrait,
    scope: TenantScope,
    appointment: &appointment::Model,
    event: BookingEvent,
) -> Result<(), StorageError> {
    if !event.mails() {
        return Ok(());
    }
    let organization = OrganizationRepo::get(db, scope.organization_id()).await?;
    let (client, provider) = participants(db, scope, appointment).await?;
    let service = service_name(db, scope, appointment).await?;
    let zone = provider_zone(db, scope, appointment, &organization.time_zone).await?;
    let locale = organization.locale;
    let when = format_instant(appointment.start_at, zone, locale);
    for (recipient, other, audience) in [
        (&client, &provider, Audience::Client),
        (&provider, &client, Audience::Provider),
    ] {
        let booking = BookingDetails {
            appointment_id: appointment.id,
            service: service.clone(),
            when: when.clone(),
            with: other.full_name.clone(),
            audience,
        };
        let email = match &event {
            BookingEvent::Status(AppointmentStatus::Canceled) => Email::BookingCanceled {
                booking,
                reason: appointment.cancellation_reason.clone(),
            },
            BookingEvent::Rescheduled { from } => Email::BookingRescheduled {
                booking,
                previously: format_instant(*from, zone, locale),
            },
            BookingEvent::Status(_) => Email::BookingConfirmed(booking),
        };
        outbox
            .enqueue(db, &organization, Recipient::user(recipient), email)
            .await?;
    }
    Ok(())
}

/// The client and the provider, in one query.
async fn participants(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    appointment: &appointment::Model,
) -> Result<(user::Model, user::Model), StorageError> {
    let people = user::Entity::find_in(scope)
        .filter(user::Column::Id.is_in([appointment.client_id, appointment.provider_id]))
        .all(db)
        .await?;
    let find = |id| {
        people
            .iter()
            .find(|u| u.id == id)
            .cloned()
            .ok_or(StorageError::not_found("user"))
    };
    Ok((find(appointment.client_id)?, find(appointment.provider_id)?))
}

/// The booked offering's name: the provider's own service, or the catalogue
/// template a provider service customises.
async fn service_name(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    appointment: &appointment::Model,
) -> Result<String, StorageError> {
    if let Some(id) = appointment.service_id {
        let found = service::Entity::find_in(scope)
            .filter(service::Column::Id.eq(id))
            .one(db)
            .await?;
        return Ok(found.map(|s| s.name).unwrap_or_default());
    }
    let Some(id) = appointment.provider_service_id else {
        return Ok(String::new());
    };
    let Some(offering) = provider_service::Entity::find_in(scope)
        .filter(provider_service::Column::Id.eq(id))
        .one(db)
        .await?
    else {
        return Ok(String::new());
    };
    Ok(service_template::Entity::find_in(scope)
        .filter(service_template::Column::Id.eq(offering.template_id))
        .one(db)
        .await?
        .map(|t| t.name)
        .unwrap_or_default())
}

/// The provider's time zone (their settings' override, else the organization's),
/// the zone the calendar itself uses.
async fn provider_zone(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    appointment: &appointment::Model,
    organization_zone: &str,
) -> Result<Tz, StorageError> {
    let own = provider_settings::Entity::find_in(scope)
        .filter(provider_settings::Column::ProviderId.eq(appointment.provider_id))
        .one(db)
        .await?
        .and_then(|s| s.time_zone);
    let name = own.as_deref().unwrap_or(organization_zone);
    Ok(Tz::from_str(name).unwrap_or(Tz::UTC))
}
