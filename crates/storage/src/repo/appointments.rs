//! Appointments: free slots, booking, status changes, rescheduling and lists.
//!
//! The calendar arithmetic lives in the pure `agenda-scheduling` crate; this module
//! loads its inputs and writes the outcome. Loading a provider's calendar takes a
//! fixed number of queries whatever the date range (organization, settings, windows,
//! breaks, blocks, appointments in range: six), never one per day or per slot.
//!
//! **Money.** Completing a paid appointment (or recording the payment of a completed
//! one, [`AppointmentRepo::mark_paid`]) writes the payment and the platform commission
//! to the ledger and updates the provider's balance in the same transaction
//! (`crate::repo::ledger`).
//!
//! **Double booking.** A booking runs in one transaction that re-checks the slot
//! against the appointments it can see, then inserts. On SQLite the transaction
//! holds the write lock from its first statement (`BEGIN IMMEDIATE`), so bookings are
//! serialised and the re-check is decisive. On PostgreSQL two transactions may both
//! see the slot free; the exclusion constraint `ex_appointments_provider_id_period`
//! lets exactly one insert win and the other gets [`StorageError::Conflict`] with
//! `ConflictKind::Exclusion` — the same error a re-check failure produces.

use agenda_entity::enums::{AppointmentStatus, PaymentMethod, PaymentStatus, UserRole};
use agenda_entity::{
    appointment, appointment_status_history, availability, blocked_time_slot, organization,
    provider_break, provider_service, provider_settings, service, user,
};
use agenda_scheduling::slots::{
    AvailabilityRule, Busy, BusyPeriod, ProviderRules, Slot, SlotRequest, TimeOff, free_slots,
    slot_at,
};
use agenda_scheduling::status::{self, Actor};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction,
    IntoActiveModel, Order, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::cache::{ReadCache, rows_where};
use crate::error::{ConflictKind, StorageError};
use crate::repo::organizations::OrganizationRepo;
use crate::repo::promotions::PromotionRepo;
use crate::repo::resource::{Page, page_size, time_id_cursor};
use crate::tenant::{TenantOwned, TenantScope};

impl TenantOwned for appointment::Entity {
    fn tenant_column() -> appointment::Column {
        appointment::Column::OrganizationId
    }
}

impl TenantOwned for appointment_status_history::Entity {
    fn tenant_column() -> appointment_status_history::Column {
        appointment_status_history::Column::OrganizationId
    }
}

/// The exclusion constraint that decides double bookings on PostgreSQL; the SQLite
/// re-check reports the same name.
pub const OVERLAP_CONSTRAINT: &str = "ex_appointments_provider_id_period";

/// Calendar defaults for a provider without a `provider_settings` row (the same as
/// the column defaults).
const DEFAULT_STEP_MINUTES: u32 = 15;
const DEFAULT_LEAD_MINUTES: u32 = 60;
const DEFAULT_HORIZON_DAYS: u32 = 60;

/// What is booked: a provider's own service, or their offering of a catalogue template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offering {
    Service(Uuid),
    ProviderService(Uuid),
}

/// The terms of an offering at booking time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferingTerms {
    pub offering: Offering,
    pub provider_id: Uuid,
    pub duration_minutes: u32,
    pub buffer_after_minutes: u32,
    pub price_cents: i64,
}

/// A booking request. `booked_by` is the signed-in user (the client, or staff booking
/// for them); it is recorded in the status history.
#[derive(Debug, Clone)]
pub struct Booking {
    pub client_id: Uuid,
    pub offering: Offering,
    pub start_at: DateTime<Utc>,
    pub notes: Option<String>,
    pub payment_method: Option<PaymentMethod>,
    pub address_id: Option<Uuid>,
    pub booked_by: Uuid,
    /// A coupon to apply; without one, the best automatic promotion in scope applies
    /// ([`crate::repo::promotions`]).
    pub coupon_code: Option<String>,
}

/// Free slots and the zone their local dates were read in (the provider's, else the
/// organization's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeSlots {
    pub time_zone: chrono_tz::Tz,
    pub slots: Vec<Slot>,
}

/// Who acts on an appointment: the signed-in user and their role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActingUser {
    pub id: Uuid,
    pub role: UserRole,
}

/// A list of appointments: any combination of provider, client, status and a time
/// range (`start_at` in `[from, to)`), in start order, keyset-paginated.
#[derive(Debug, Clone, Default)]
pub struct AppointmentQuery {
    pub provider_id: Option<Uuid>,
    pub client_id: Option<Uuid>,
    pub status: Option<AppointmentStatus>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<u64>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

pub struct AppointmentRepo;

impl AppointmentRepo {
    /// The terms of an active offering of this organization.
    pub async fn offering(
        db: &impl ConnectionTrait,
        cache: Option<&ReadCache>,
        scope: TenantScope,
        offering: Offering,
    ) -> Result<OfferingTerms, StorageError> {
        let inactive = || StorageError::Validation {
            field: "offering",
            message: "is not offered at the moment".into(),
        };
        match offering {
            Offering::Service(id) => {
                let found =
                    rows_where::<service::Entity>(cache, db, scope, service::Column::Id, id)
                        .await?;
                let s = found.first().ok_or(StorageError::not_found("service"))?;
                if !s.is_active {
                    return Err(inactive());
                }
                let buffer = rows_where::<provider_settings::Entity>(
                    cache,
                    db,
                    scope,
                    provider_settings::Column::ProviderId,
                    s.provider_id,
                )
                .await?
                .first()
                .map_or(0, |p| p.buffer_minutes);
                Ok(OfferingTerms {
                    offering,
                    provider_id: s.provider_id,
                    duration_minutes: minutes(s.duration_minutes),
                    buffer_after_minutes: minutes(buffer),
                    price_cents: s.price_cents,
                })
            }
            Offering::ProviderService(id) => {
                let p = provider_service::Entity::find_in(scope)
                    .filter(provider_service::Column::Id.eq(id))
                    .one(db)
                    .await?
                    .ok_or(StorageError::not_found("provider service"))?;
                if !p.is_active {
                    return Err(inactive());
                }
                Ok(OfferingTerms {
                    offering,
                    provider_id: p.provider_id,
                    duration_minutes: minutes(p.execution_minutes),
                    buffer_after_minutes: minutes(p.buffer_after_minutes),
                    price_cents: p.price_cents,
                })
            }
        }
    }

    /// A provider's calendar rules: four queries (organization, settings, windows,
    /// breaks and blocks count as one each: five). `organization`, when the caller
    /// has read it already in this transaction (the signed-in session's, see
    /// `SessionRepo::authenticate`), saves the first; it must be `scope`'s.
    pub async fn rules(
        db: &impl ConnectionTrait,
        cache: Option<&ReadCache>,
        scope: TenantScope,
        organization: Option<&organization::Model>,
        provider_id: Uuid,
    ) -> Result<(ProviderRules, bool), StorageError> {
        let organization = match organization {
            Some(known) if known.id == scope.organization_id() => known.clone(),
            _ => OrganizationRepo::get(db, scope.organization_id()).await?,
        };
        let settings = rows_where::<provider_settings::Entity>(
            cache,
            db,
            scope,
            provider_settings::Column::ProviderId,
            provider_id,
        )
        .await?
        .first()
        .cloned();
        let zone_name = settings
            .as_ref()
            .and_then(|s| s.time_zone.clone())
            .unwrap_or(organization.time_zone);
        let time_zone = zone_name.parse().map_err(|_| {
            StorageError::Other(
                format!("stored time zone {zone_name:?} is not an IANA zone").into(),
            )
        })?;
        let mut rules = ProviderRules {
            time_zone,
            weekly: Vec::new(),
            overrides: Vec::new(),
            breaks: Vec::new(),
            blocks: Vec::new(),
            slot_step_minutes: settings
                .as_ref()
                .map_or(DEFAULT_STEP_MINUTES, |s| minutes(s.slot_step_minutes)),
            min_lead_minutes: settings
                .as_ref()
                .map_or(DEFAULT_LEAD_MINUTES, |s| minutes(s.min_lead_minutes)),
            max_horizon_days: settings
                .as_ref()
                .map_or(DEFAULT_HORIZON_DAYS, |s| minutes(s.max_horizon_days)),
        };
        let accepting = settings.as_ref().is_none_or(|s| s.is_accepting_bookings);
        let auto_confirm = settings.as_ref().is_some_and(|s| s.auto_confirm);
        if !accepting {
            return Ok((rules, auto_confirm));
        }
        for row in rows_where::<availability::Entity>(
            cache,
            db,
            scope,
            availability::Column::ProviderId,
            provider_id,
        )
        .await?
        .iter()
        {
            if let Some(rule) = AvailabilityRule::from_fields(
                row.kind,
                row.weekday,
                row.date,
                row.start_time,
                row.end_time,
                row.is_available,
                row.slot_step_minutes,
            ) {
                rules.add(rule);
            }
        }
        for row in rows_where::<provider_break::Entity>(
            cache,
            db,
            scope,
            provider_break::Column::ProviderId,
            provider_id,
        )
        .await?
        .iter()
        {
            rules.breaks.extend(TimeOff::from_recurrence(
                &agenda_entity::recurrence_fields!(row),
            ));
        }
        for row in rows_where::<blocked_time_slot::Entity>(
            cache,
            db,
            scope,
            blocked_time_slot::Column::ProviderId,
            provider_id,
        )
        .await?
        .iter()
        {
            rules.blocks.extend(TimeOff::from_recurrence(
                &agenda_entity::recurrence_fields!(row),
            ));
        }
        Ok((rules, auto_confirm))
    }

    /// The provider's active appointments overlapping `[from, to)` (one query, served
    /// by `ix_appointments_provider_id_occupied_until`),
    /// leaving out `except` (the appointment being rescheduled).
    pub async fn busy(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        provider_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        except: Option<Uuid>,
    ) -> Result<Busy, StorageError> {
        let mut query = appointment::Entity::find_in(scope)
            .filter(appointment::Column::ProviderId.eq(provider_id))
            .filter(appointment::Column::Status.is_not_in(AppointmentStatus::INACTIVE))
            .filter(appointment::Column::StartAt.lt(to))
            .filter(appointment::Column::OccupiedUntil.gt(from));
        if let Some(id) = except {
            query = query.filter(appointment::Column::Id.ne(id));
        }
        // Only the two instants: decoding whole rows was most of this lookup's cost.
        Ok(query
            .select_only()
            .columns([
                appointment::Column::StartAt,
                appointment::Column::OccupiedUntil,
            ])
            .into_tuple::<(DateTime<Utc>, DateTime<Utc>)>()
            .all(db)
            .await?
            .into_iter()
            .map(|(start_at, occupied_until)| BusyPeriod {
                start_at,
                occupied_until,
            })
            .collect())
    }

    /// Free slots of an offering on the local dates `from..=to` (provider's zone).
    /// `organization`: `scope`'s organization when the caller has it already (see
    /// [`AppointmentRepo::rules`]).
    #[allow(clippy::too_many_arguments)] // the query's own terms; a struct would only rename them
    pub async fn free_slots(
        db: &impl ConnectionTrait,
        cache: Option<&ReadCache>,
        scope: TenantScope,
        organization: Option<&organization::Model>,
        offering: Offering,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<FreeSlots, StorageError> {
        if to < from || (to - from).num_days() > 92 {
            return Err(StorageError::Validation {
                field: "to",
                message: "must be on or after from, at most 92 days later".into(),
            });
        }
        let terms = Self::offering(db, cache, scope, offering).await?;
        let (rules, _) = Self::rules(db, cache, scope, organization, terms.provider_id).await?;
        // A day of margin on both sides covers any zone's offset and overnight windows.
        let start = from.and_hms_opt(0, 0, 0).expect("midnight").and_utc() - Duration::days(2);
        let end = to.and_hms_opt(0, 0, 0).expect("midnight").and_utc() + Duration::days(3);
        let busy = Self::busy(db, scope, terms.provider_id, start, end, None).await?;
        let slots = free_slots(
            &rules,
            &busy,
            &SlotRequest {
                from,
                to,
                now,
                duration_minutes: terms.duration_minutes,
                buffer_after_minutes: terms.buffer_after_minutes,
            },
        );
        Ok(FreeSlots {
            time_zone: rules.time_zone,
            slots,
        })
    }

    /// Books a free slot. Run it in a write transaction (`Db::begin`); see the module
    /// docs for how double booking is prevented on each engine.
    pub async fn book(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        booking: Booking,
        now: DateTime<Utc>,
    ) -> Result<appointment::Model, StorageError> {
        let terms = Self::offering(tx, None, scope, booking.offering).await?;
        let client = Self::bookable_client(tx, scope, booking.client_id).await?;
        if let Some(address) = booking.address_id {
            Self::client_address(tx, scope, client.id, address).await?;
        }
        let (rules, auto_confirm) = Self::rules(tx, None, scope, None, terms.provider_id).await?;
        let slot = Self::check_slot(tx, scope, &rules, &terms, booking.start_at, now, None).await?;
        let target =
            PromotionRepo::offering_target(tx, scope, booking.offering, terms.provider_id).await?;
        let granted = PromotionRepo::grant(
            tx,
            scope,
            booking.coupon_code.as_deref(),
            &target,
            terms.price_cents,
            client.id,
            now,
        )
        .await?;
        let organization = OrganizationRepo::get(tx, scope.organization_id()).await?;
        let status = status::initial_status(auto_confirm);
        let (service_id, provider_service_id) = match booking.offering {
            Offering::Service(id) => (Some(id), None),
            Offering::ProviderService(id) => (None, Some(id)),
        };
        let created = appointment::ActiveModel {
            organization_id: Set(scope.organization_id()),
            client_id: Set(client.id),
            provider_id: Set(terms.provider_id),
            service_id: Set(service_id),
            provider_service_id: Set(provider_service_id),
            promotion_id: Set(granted.map(|g| g.promotion_id)),
            address_id: Set(booking.address_id),
            start_at: Set(slot.start),
            end_at: Set(slot.end),
            occupied_until: Set(slot.end + Duration::minutes(terms.buffer_after_minutes.into())),
            status: Set(status),
            price_cents: Set(terms.price_cents),
            discount_cents: Set(granted.map_or(0, |g| g.discount_cents)),
            currency: Set(organization.currency),
            payment_method: Set(booking.payment_method),
            payment_status: Set(PaymentStatus::Unpaid),
            notes: Set(booking.notes),
            provider_notes: Set(None),
            cancellation_reason: Set(None),
            canceled_at: Set(None),
            canceled_by: Set(None),
            ..Default::default()
        }
        .insert(tx)
        .await?;
        record(
            tx,
            scope,
            created.id,
            None,
            status,
            Some(booking.booked_by),
            None,
        )
        .await?;
        Ok(created)
    }

    /// The client an appointment is booked for: an active user of this organization
    /// with the client role. Anything else (no such user, another organization's, a
    /// provider or staff member, a deactivated account) is a validation error on
    /// `client_id`: the id is part of the request body, not of the path.
    async fn bookable_client(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        client_id: Uuid,
    ) -> Result<user::Model, StorageError> {
        user::Entity::find_in(scope)
            .filter(user::Column::Id.eq(client_id))
            .filter(user::Column::Role.eq(UserRole::Client))
            .filter(user::Column::IsActive.eq(true))
            .one(tx)
            .await?
            .ok_or_else(|| StorageError::Validation {
                field: "client_id",
                message: "is not an active client of this organization".into(),
            })
    }

    /// Checks that `address_id` is one of the client's own addresses (in this
    /// organization); otherwise a validation error on `address_id`.
    async fn client_address(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        client_id: Uuid,
        address_id: Uuid,
    ) -> Result<(), StorageError> {
        use agenda_entity::user_address;
        let owned = user_address::Entity::find_in(scope)
            .select_only()
            .column(user_address::Column::Id)
            .filter(user_address::Column::Id.eq(address_id))
            .filter(user_address::Column::UserId.eq(client_id))
            .into_tuple::<Uuid>()
            .one(tx)
            .await?;
        match owned {
            Some(_) => Ok(()),
            None => Err(StorageError::Validation {
                field: "address_id",
                message: "is not one of the client's addresses".into(),
            }),
        }
    }

    /// Changes the status, if the state machine allows it for this user; records the
    /// change in the history. Run it in a write transaction.
    pub async fn transition(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        id: Uuid,
        to: AppointmentStatus,
        by: ActingUser,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<appointment::Model, StorageError> {
        let current = Self::locked(tx, scope, id).await?;
        let actor = Actor::of(&by.id, by.role, &current.client_id, &current.provider_id);
        status::transition(current.status, to, actor).map_err(|e| match e {
            status::TransitionError::Illegal { .. } => StorageError::InvalidState {
                code: e.code(),
                message: e.to_string(),
            },
            status::TransitionError::Forbidden { .. } => StorageError::Forbidden {
                code: e.code(),
                message: e.to_string(),
            },
        })?;
        let from = current.status;
        if to == AppointmentStatus::Canceled
            && let Some(promotion_id) = current.promotion_id
        {
            // Canceling gives the promotion's use back.
            PromotionRepo::release(tx, scope, promotion_id).await?;
        }
        let mut row = current.into_active_model();
        row.status = Set(to);
        if to == AppointmentStatus::Canceled {
            row.canceled_at = Set(Some(now));
            row.canceled_by = Set(Some(by.id));
            row.cancellation_reason = Set(reason.clone());
        }
        let updated = row.update(tx).await?;
        record(tx, scope, id, Some(from), to, Some(by.id), reason).await?;
        if to == AppointmentStatus::Completed {
            Self::settle(tx, scope, &updated).await?;
        }
        Ok(updated)
    }

    /// Records that the client paid (`payment_status = paid`), by the provider, an
    /// admin or support. A completed appointment is settled in the ledger at once;
    /// otherwise when it completes. Idempotent. A payment refunded in part or in full
    /// stays as it is (a replayed or late success must not hide money that went
    /// back): the row is returned unchanged.
    pub async fn mark_paid(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        id: Uuid,
        method: PaymentMethod,
        by: ActingUser,
    ) -> Result<appointment::Model, StorageError> {
        let current = Self::locked(tx, scope, id).await?;
        let actor = Actor::of(&by.id, by.role, &current.client_id, &current.provider_id);
        if !matches!(actor, Actor::Provider | Actor::Admin | Actor::Support) {
            return Err(StorageError::Forbidden {
                code: "forbidden_payment",
                message: format!("a {actor} cannot record a payment"),
            });
        }
        if matches!(
            current.payment_status,
            PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded
        ) {
            return Ok(current);
        }
        if !current.status.is_active() {
            return Err(StorageError::InvalidState {
                code: "appointment_not_active",
                message: format!("a {} appointment cannot be paid", current.status),
            });
        }
        let mut row = current.into_active_model();
        row.payment_status = Set(PaymentStatus::Paid);
        row.payment_method = Set(Some(method));
        let updated = row.update(tx).await?;
        if updated.status == AppointmentStatus::Completed {
            Self::settle(tx, scope, &updated).await?;
        }
        Ok(updated)
    }

    /// Writes the payment and the platform commission of a completed, paid
    /// appointment to the ledger (in the caller's transaction).
    async fn settle(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        appointment: &appointment::Model,
    ) -> Result<(), StorageError> {
        let net = appointment.price_cents - appointment.discount_cents;
        if appointment.payment_status == PaymentStatus::Paid && net > 0 {
            crate::repo::ledger::LedgerRepo::record_payment(tx, scope, appointment, net).await?;
        }
        Ok(())
    }

    /// Moves a pending or confirmed appointment to another free slot. One UPDATE of
    /// the row: the old time is freed only if the new one is taken.
    pub async fn reschedule(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        id: Uuid,
        new_start: DateTime<Utc>,
        by: ActingUser,
        now: DateTime<Utc>,
    ) -> Result<appointment::Model, StorageError> {
        let current = Self::locked(tx, scope, id).await?;
        let actor = Actor::of(&by.id, by.role, &current.client_id, &current.provider_id);
        status::reschedule(current.status, actor).map_err(|e| match e {
            status::RescheduleError::NotReschedulable { .. } => StorageError::InvalidState {
                code: e.code(),
                message: e.to_string(),
            },
            status::RescheduleError::Forbidden { .. } => StorageError::Forbidden {
                code: e.code(),
                message: e.to_string(),
            },
        })?;
        let offering = match (current.service_id, current.provider_service_id) {
            (Some(id), _) => Offering::Service(id),
            (None, Some(id)) => Offering::ProviderService(id),
            (None, None) => unreachable!("ck_appointments_one_offering"),
        };
        let terms = Self::offering(tx, None, scope, offering).await?;
        let (rules, _) = Self::rules(tx, None, scope, None, current.provider_id).await?;
        let slot = Self::check_slot(tx, scope, &rules, &terms, new_start, now, Some(id)).await?;
        let old_start = current.start_at;
        let status = current.status;
        let mut row = current.into_active_model();
        row.start_at = Set(slot.start);
        row.end_at = Set(slot.end);
        row.occupied_until = Set(slot.end + Duration::minutes(terms.buffer_after_minutes.into()));
        let updated = row.update(tx).await?;
        let note = format!(
            "rescheduled from {}",
            agenda_entity::edge::instant(&old_start)
        );
        record(tx, scope, id, Some(status), status, Some(by.id), Some(note)).await?;
        Ok(updated)
    }

    pub async fn get(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<appointment::Model, StorageError> {
        appointment::Entity::find_in(scope)
            .filter(appointment::Column::Id.eq(id))
            .one(db)
            .await?
            .ok_or(StorageError::not_found("appointment"))
    }

    /// The status history of an appointment, oldest first.
    pub async fn history(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<Vec<appointment_status_history::Model>, StorageError> {
        Self::get(db, scope, id).await?;
        Ok(appointment_status_history::Entity::find_in(scope)
            .filter(appointment_status_history::Column::AppointmentId.eq(id))
            .order_by_asc(appointment_status_history::Column::Id)
            .all(db)
            .await?)
    }

    /// Appointments in start order; the cursor is `<start_at>/<id>` of the last row.
    pub async fn list(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        query: &AppointmentQuery,
    ) -> Result<Page<appointment::Model>, StorageError> {
        use appointment::Column as C;
        let limit = page_size(query.limit);
        let mut select = appointment::Entity::find_in(scope);
        if let Some(p) = query.provider_id {
            select = select.filter(C::ProviderId.eq(p));
        }
        if let Some(c) = query.client_id {
            select = select.filter(C::ClientId.eq(c));
        }
        if let Some(s) = query.status {
            select = select.filter(C::Status.eq(s));
        }
        if let Some(from) = query.from {
            select = select.filter(C::StartAt.gte(from));
        }
        if let Some(to) = query.to {
            select = select.filter(C::StartAt.lt(to));
        }
        if let Some(cursor) = &query.after {
            let (start, id) = time_id_cursor(cursor)?;
            select = select.filter(
                Condition::any()
                    .add(C::StartAt.gt(start))
                    .add(Condition::all().add(C::StartAt.eq(start)).add(C::Id.gt(id))),
            );
        }
        let items = select
            .order_by(C::StartAt, Order::Asc)
            .order_by(C::Id, Order::Asc)
            .limit(limit + 1)
            .all(db)
            .await?;
        Ok(Page::from_probe(items, limit, |a| {
            format!("{}/{}", a.start_at.to_rfc3339(), a.id)
        }))
    }

    /// The appointment, locked for the rest of the transaction on PostgreSQL
    /// (`FOR UPDATE`); SQLite's write transaction is exclusive already.
    async fn locked(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<appointment::Model, StorageError> {
        let mut select = appointment::Entity::find_in(scope).filter(appointment::Column::Id.eq(id));
        if tx.get_database_backend() == sea_orm::DbBackend::Postgres {
            select = select.lock_exclusive();
        }
        select
            .one(tx)
            .await?
            .ok_or(StorageError::not_found("appointment"))
    }

    /// The free slot starting at `start`, re-checked against the appointments this
    /// transaction sees. A start that would be free without the other bookings is a
    /// conflict (someone took it); any other miss is a validation error.
    async fn check_slot(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        rules: &ProviderRules,
        terms: &OfferingTerms,
        start: DateTime<Utc>,
        now: DateTime<Utc>,
        except: Option<Uuid>,
    ) -> Result<Slot, StorageError> {
        let busy = Self::busy(
            tx,
            scope,
            terms.provider_id,
            start - Duration::days(1),
            start + Duration::days(2),
            except,
        )
        .await?;
        let (duration, buffer) = (terms.duration_minutes, terms.buffer_after_minutes);
        if let Some(slot) = slot_at(rules, &busy, duration, buffer, now, start) {
            return Ok(slot);
        }
        if slot_at(rules, &Busy::default(), duration, buffer, now, start).is_some() {
            return Err(StorageError::Conflict {
                kind: ConflictKind::Exclusion,
                constraint: Some(OVERLAP_CONSTRAINT.to_owned()),
            });
        }
        Err(StorageError::Validation {
            field: "start_at",
            message: "is not a bookable time for this service (working hours, breaks, step, lead time or horizon)".into(),
        })
    }
}

async fn record(
    tx: &DatabaseTransaction,
    scope: TenantScope,
    appointment_id: Uuid,
    from: Option<AppointmentStatus>,
    to: AppointmentStatus,
    changed_by: Option<Uuid>,
    reason: Option<String>,
) -> Result<(), StorageError> {
    appointment_status_history::ActiveModel {
        organization_id: Set(scope.organization_id()),
        appointment_id: Set(appointment_id),
        from_status: Set(from),
        to_status: Set(to),
        changed_by: Set(changed_by),
        reason: Set(reason),
        ..Default::default()
    }
    .insert(tx)
    .await?;
    Ok(())
}

/// Stored minutes are checked non-negative by the schema.
fn minutes(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}
