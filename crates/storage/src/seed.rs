//! The demo data set behind `agenda seed demo`: one organization with people, a
//! catalogue, working hours, a few weeks of appointments and the money they moved, so
//! the API, the README quickstart and the benchmarks have something real to work on.
//!
//! # What it writes
//!
//! - the organization `demo` ([`DEMO_ORGANIZATION_ID`], time zone `America/Sao_Paulo`,
//!   currency BRL) and its payment settings;
//! - an admin ([`DEMO_ADMIN_EMAIL`]), a support agent (`support@demo.example.com`),
//!   four providers (`ana.souza@`, `bruno.lima@`, `carla.mendes@`, `diego.rocha@`
//!   `demo.example.com`), each with a staff member, provider settings and services,
//!   and twelve clients (`beatriz.alves@demo.example.com`, …). Every demo user has
//!   the password [`DEMO_PASSWORD`];
//! - two niches, four categories (one nested), ten service templates, the providers'
//!   offerings of them and one own service each;
//! - weekly hours Monday to Friday 09:00–18:00 (Saturday 09:00–13:00 for two
//!   providers), a weekly lunch break, a one-off and a weekly block, and a day off;
//! - appointments from three weeks before the seed date to two weeks after it: past
//!   days completed, canceled or no-show, future days pending, confirmed or canceled,
//!   one in progress on the seed date (on Saturday when seeded on a Sunday), with
//!   their status history; reviews of some completed ones;
//! - the ledger of the completed (paid) appointments, two withdrawals and balances
//!   equal to the ledger sums; a support ticket, notifications, onboarding progress.
//!
//! # Determinism and idempotency
//!
//! Every primary key comes from [`demo_id`]: a UUIDv7 whose timestamp is the fixed
//! instant 2026-01-01T00:00:00Z and whose random bits are a hash of a stable name
//! (`"user/client/03"`, `"appointment/ana/w-2/d3/s1"`). The same names give the same
//! ids on every run and on every engine. Appointment dates are anchored to the seed
//! day (the current date in the organization's time zone), not to the clock, so two
//! runs on the same day write the same rows.
//!
//! Everything is written in one transaction. When the demo organization already
//! exists, nothing is written and the report says so, with the rows found.

use std::collections::HashMap;

use agenda_entity::enums::{
    AddressKind, AppointmentStatus, AvailabilityKind, BalanceBucket, BlockSource, DiscountType,
    Locale, ModerationStatus, NotificationKind, OnboardingStatus, OrganizationStatus,
    PaymentMethod, PaymentMethods, PaymentStatus, PayoutMethod, PayoutSchedule, PromotionScope,
    RecurrenceKind, TicketPriority, TicketStatus, TransactionKind, UserRole, WithdrawalStatus,
};
use agenda_entity::rules::{self, PromotionTerms, Recurrence};
use agenda_entity::{
    appointment, appointment_status_history, audit_log, availability, blocked_time_slot, category,
    client_payment_preference, niche, notification, onboarding_step, organization,
    payment_settings, payment_withdrawal, promotion, provider_balance, provider_break,
    provider_payment_preference, provider_service, provider_service_fee, provider_settings,
    provider_transaction, review, service, service_template, staff_member, support_message,
    support_ticket, system_setting, user, user_address, user_onboarding_progress,
    user_payment_method,
};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde::Serialize;
use uuid::Uuid;

use crate::db::Db;
use crate::error::{ConflictKind, StorageError};

/// The password of every demo user. Public on purpose: the data set is for local
/// evaluation and benchmarks, never for a database that matters.
pub const DEMO_PASSWORD: &str = "agenda-demo";

/// The demo organization's slug.
pub const DEMO_SLUG: &str = "demo";

/// The demo admin's login.
pub const DEMO_ADMIN_EMAIL: &str = "admin@demo.example.com";

/// The demo organization's time zone and currency.
pub const DEMO_TIME_ZONE: &str = "America/Sao_Paulo";
pub const DEMO_CURRENCY: &str = "BRL";

/// The demo organization's id, `019b76da-a800-74af-baf6-2796117b613c`: fixed, so tools
/// and documentation can point at it, and the mark that the demo data is present.
pub const DEMO_ORGANIZATION_ID: Uuid = demo_id("organization/demo");

/// 2026-01-01T00:00:00Z: the timestamp part of every demo id.
pub const DEMO_ID_EPOCH_MS: u64 = 1_767_225_600_000;

/// The demo id named `name`: a UUIDv7 with the timestamp [`DEMO_ID_EPOCH_MS`] and the
/// remaining bits taken from two hashes of the name (FNV-1a, then a finaliser so that
/// similar names give unrelated ids). Pure and stable across runs, platforms and Rust
/// versions (unlike `std`'s hasher, whose output may change).
pub const fn demo_id(name: &str) -> Uuid {
    let high = mix(fnv1a(name.as_bytes(), 0xcbf2_9ce4_8422_2325)).to_be_bytes();
    let low = mix(fnv1a(name.as_bytes(), 0x6c62_272e_07bb_0142)).to_be_bytes();
    let bytes = [
        high[0], high[1], high[2], high[3], high[4], high[5], high[6], high[7], low[0], low[1],
    ];
    uuid::Builder::from_unix_timestamp_millis(DEMO_ID_EPOCH_MS, &bytes).into_uuid()
}

/// FNV-1a (64 bit) with a chosen offset basis.
const fn fnv1a(bytes: &[u8], basis: u64) -> u64 {
    let mut hash = basis;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The 64-bit finaliser of MurmurHash3: every input bit affects every output bit,
/// which FNV alone does not do for names differing in their last characters.
const fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A stable pseudo-random number for a name, for choices that must not change
/// between runs (which service, how many appointments, which rating).
fn pick(name: &str) -> u64 {
    mix(fnv1a(name.as_bytes(), 0x8422_2325_cbf2_9ce4))
}

/// What the seed did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeedReport {
    /// True when this run wrote the data; false when it was already present.
    pub created: bool,
    pub organization_id: Uuid,
    pub slug: &'static str,
    /// Rows of the demo organization per table, in insertion order.
    pub tables: Vec<(&'static str, u64)>,
}

impl SeedReport {
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }

    /// The row count of `table`, if the seed writes that table.
    pub fn rows(&self, table: &str) -> Option<u64> {
        self.tables
            .iter()
            .find(|(name, _)| *name == table)
            .map(|(_, n)| *n)
    }
}

/// Seeds the demo data anchored to today's date in the demo time zone; see the
/// module documentation. `password_hash` is stored for every demo user.
pub async fn demo(db: &Db, password_hash: &str) -> Result<SeedReport, StorageError> {
    demo_on(db, password_hash, today_in_demo_zone()).await
}

/// Like [`demo`], with appointments anchored to `today` instead of the current date
/// (tests pin the date; the weekday decides where the in-progress appointment goes).
pub async fn demo_on(
    db: &Db,
    password_hash: &str,
    today: NaiveDate,
) -> Result<SeedReport, StorageError> {
    // Everything the seed writes belongs to the demo organization: entering it lets
    // the seed run as the application role under row-level security, too.
    let txn = db
        .begin_in(crate::TenantScope::new(DEMO_ORGANIZATION_ID))
        .await?;
    if let Some(report) = already_present(&txn).await? {
        return Ok(report);
    }
    let data = build(today, password_hash)?;
    match data.write(&txn).await {
        Ok(()) => {}
        // Another seed committed the organization first (PostgreSQL waits on the
        // primary key, then reports the duplicate): its data is what we would write.
        Err(StorageError::Conflict {
            kind: ConflictKind::Unique,
            constraint,
        }) if constraint.as_deref() == Some("pk_organizations") => {
            drop(txn);
            let txn = db
                .read_in(crate::TenantScope::new(DEMO_ORGANIZATION_ID))
                .await?;
            return already_present(&txn).await?.ok_or(StorageError::Conflict {
                kind: ConflictKind::Unique,
                constraint,
            });
        }
        Err(e) => return Err(e),
    }
    let tables = counts(&txn).await?;
    txn.commit().await?;
    let report = SeedReport {
        created: true,
        organization_id: DEMO_ORGANIZATION_ID,
        slug: DEMO_SLUG,
        tables,
    };
    tracing::info!(
        organization_id = %DEMO_ORGANIZATION_ID,
        rows = report.total_rows(),
        %today,
        "demo data created"
    );
    Ok(report)
}

/// The report of the data already there, or `None` when the demo organization is
/// absent. An unrelated organization holding the slug is an error: the demo cannot
/// be written, and nothing may be written over someone's data.
#[allow(clippy::disallowed_methods)] // organizations are the tenants themselves
async fn already_present(db: &impl ConnectionTrait) -> Result<Option<SeedReport>, StorageError> {
    use sea_orm::sea_query::ExprTrait as _;
    if organization::Entity::find_by_id(DEMO_ORGANIZATION_ID)
        .one(db)
        .await?
        .is_some()
    {
        return Ok(Some(SeedReport {
            created: false,
            organization_id: DEMO_ORGANIZATION_ID,
            slug: DEMO_SLUG,
            tables: counts(db).await?,
        }));
    }
    let squatter = organization::Entity::find()
        .filter(Expr::col("slug").eq(DEMO_SLUG))
        .one(db)
        .await?;
    if let Some(other) = squatter {
        return Err(StorageError::Validation {
            field: "slug",
            message: format!(
                "an organization {} already uses the slug {DEMO_SLUG:?}; the demo data needs it",
                other.id
            ),
        });
    }
    Ok(None)
}

/// Rows of the demo organization in `E`'s table.
#[allow(clippy::disallowed_methods)] // filtered by the demo organization below
async fn count_of<E>(db: &impl ConnectionTrait) -> Result<(&'static str, u64), StorageError>
where
    E: EntityTrait + Default,
    E::Model: Send + Sync,
{
    use sea_orm::sea_query::ExprTrait as _;
    let entity = E::default();
    let column = if entity.table_name() == "organizations" {
        "id"
    } else {
        "organization_id"
    };
    let rows = E::find()
        .filter(Expr::col(column).eq(DEMO_ORGANIZATION_ID))
        .count(db)
        .await?;
    Ok((entity.table_name(), rows))
}

/// Row counts of every table the seed writes, in insertion order.
async fn counts(db: &impl ConnectionTrait) -> Result<Vec<(&'static str, u64)>, StorageError> {
    Ok(vec![
        count_of::<organization::Entity>(db).await?,
        count_of::<user::Entity>(db).await?,
        count_of::<staff_member::Entity>(db).await?,
        count_of::<user_address::Entity>(db).await?,
        count_of::<niche::Entity>(db).await?,
        count_of::<category::Entity>(db).await?,
        count_of::<service_template::Entity>(db).await?,
        count_of::<service::Entity>(db).await?,
        count_of::<provider_service::Entity>(db).await?,
        count_of::<provider_settings::Entity>(db).await?,
        count_of::<provider_payment_preference::Entity>(db).await?,
        count_of::<payment_settings::Entity>(db).await?,
        count_of::<user_payment_method::Entity>(db).await?,
        count_of::<client_payment_preference::Entity>(db).await?,
        count_of::<promotion::Entity>(db).await?,
        count_of::<provider_service_fee::Entity>(db).await?,
        count_of::<availability::Entity>(db).await?,
        count_of::<provider_break::Entity>(db).await?,
        count_of::<blocked_time_slot::Entity>(db).await?,
        count_of::<appointment::Entity>(db).await?,
        count_of::<appointment_status_history::Entity>(db).await?,
        count_of::<review::Entity>(db).await?,
        count_of::<payment_withdrawal::Entity>(db).await?,
        count_of::<provider_transaction::Entity>(db).await?,
        count_of::<provider_balance::Entity>(db).await?,
        count_of::<support_ticket::Entity>(db).await?,
        count_of::<support_message::Entity>(db).await?,
        count_of::<onboarding_step::Entity>(db).await?,
        count_of::<user_onboarding_progress::Entity>(db).await?,
        count_of::<notification::Entity>(db).await?,
        count_of::<system_setting::Entity>(db).await?,
        count_of::<audit_log::Entity>(db).await?,
    ])
}

/// Today's date in the demo organization's time zone.
pub fn today_in_demo_zone() -> NaiveDate {
    Utc::now().with_timezone(&demo_zone()).date_naive()
}

fn demo_zone() -> chrono_tz::Tz {
    DEMO_TIME_ZONE.parse().expect("a valid IANA zone")
}

/// The instant of `minute` minutes after local midnight of `date` in the demo zone
/// (for a wall time in a daylight-saving gap, the instant after the gap).
fn local(date: NaiveDate, minute: i64) -> DateTime<Utc> {
    let wall = date.and_time(NaiveTime::MIN) + Duration::minutes(minute);
    let zone = demo_zone();
    let resolved = zone
        .from_local_datetime(&wall)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(wall + Duration::hours(1)))
                .earliest()
        })
        .expect("a wall time one hour after a gap exists");
    resolved.with_timezone(&Utc)
}

fn hm(hour: u32, minute: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).expect("a valid time of day")
}

const fn minutes(hour: i64, minute: i64) -> i64 {
    hour * 60 + minute
}

// ---------------------------------------------------------------------------------
// The fixed content.

struct ProviderDef {
    key: &'static str,
    name: &'static str,
    email: &'static str,
    title: &'static str,
    business: &'static str,
    bio: &'static str,
    color: &'static str,
    /// Works Saturday mornings.
    saturday: bool,
    slot_step: i32,
    buffer: i32,
    latitude: f64,
    longitude: f64,
    accepts: &'static [PaymentMethod],
}

const ANA: usize = 0;
const BRUNO: usize = 1;
const CARLA: usize = 2;
const DIEGO: usize = 3;

const PROVIDERS: [ProviderDef; 4] = [
    ProviderDef {
        key: "ana",
        name: "Ana Souza",
        email: "ana.souza@demo.example.com",
        title: "Hair stylist",
        business: "Ana Souza Hair Studio",
        bio: "Cuts, colour and bridal hair; fifteen years behind the chair.",
        color: "#e4572e",
        saturday: true,
        slot_step: 15,
        buffer: 10,
        latitude: -23.5614,
        longitude: -46.6559,
        accepts: &[
            PaymentMethod::Pix,
            PaymentMethod::Card,
            PaymentMethod::Online,
        ],
    },
    ProviderDef {
        key: "bruno",
        name: "Bruno Lima",
        email: "bruno.lima@demo.example.com",
        title: "Barber",
        business: "Barbearia do Bruno",
        bio: "Classic cuts, fades and hot-towel shaves.",
        color: "#17bebb",
        saturday: true,
        slot_step: 15,
        buffer: 0,
        latitude: -23.5505,
        longitude: -46.6333,
        accepts: &[PaymentMethod::Pix, PaymentMethod::Card, PaymentMethod::Cash],
    },
    ProviderDef {
        key: "carla",
        name: "Carla Mendes",
        email: "carla.mendes@demo.example.com",
        title: "Physiotherapist",
        business: "Carla Mendes Fisioterapia",
        bio: "Orthopaedic and postural physiotherapy, at the clinic or at home.",
        color: "#4c6ef5",
        saturday: false,
        slot_step: 30,
        buffer: 10,
        latitude: -23.5874,
        longitude: -46.6576,
        accepts: &[
            PaymentMethod::Pix,
            PaymentMethod::Card,
            PaymentMethod::BankTransfer,
        ],
    },
    ProviderDef {
        key: "diego",
        name: "Diego Rocha",
        email: "diego.rocha@demo.example.com",
        title: "Massage therapist",
        business: "Diego Rocha Massoterapia",
        bio: "Relaxing, sports and hot-stone massage.",
        color: "#76b041",
        saturday: false,
        slot_step: 30,
        buffer: 15,
        latitude: -23.5329,
        longitude: -46.6395,
        accepts: &[
            PaymentMethod::Pix,
            PaymentMethod::Card,
            PaymentMethod::Online,
        ],
    },
];

const CLIENTS: [(&str, &str); 12] = [
    ("beatriz.alves", "Beatriz Alves"),
    ("caio.ferreira", "Caio Ferreira"),
    ("daniela.costa", "Daniela Costa"),
    ("eduardo.gomes", "Eduardo Gomes"),
    ("fernanda.ribeiro", "Fernanda Ribeiro"),
    ("gabriel.martins", "Gabriel Martins"),
    ("helena.carvalho", "Helena Carvalho"),
    ("igor.almeida", "Igor Almeida"),
    ("juliana.pereira", "Juliana Pereira"),
    ("lucas.barbosa", "Lucas Barbosa"),
    ("mariana.teixeira", "Mariana Teixeira"),
    ("rafael.nunes", "Rafael Nunes"),
];

/// (slug, name, description, icon)
const NICHES: [(&str, &str, &str, &str); 2] = [
    (
        "beauty",
        "Beauty",
        "Hair, barbering and grooming.",
        "scissors",
    ),
    (
        "health-wellness",
        "Health & Wellness",
        "Physiotherapy and massage.",
        "heart-pulse",
    ),
];

/// (slug, niche slug, parent slug, name)
const CATEGORIES: [(&str, &str, Option<&str>, &str); 4] = [
    ("hair", "beauty", None, "Hair"),
    ("barbering", "beauty", Some("hair"), "Barbering"),
    ("physiotherapy", "health-wellness", None, "Physiotherapy"),
    ("massage", "health-wellness", None, "Massage"),
];

/// (key, category slug, name, default minutes, default price in cents)
const TEMPLATES: [(&str, &str, &str, i32, i64); 10] = [
    ("womens-haircut", "hair", "Women's haircut", 60, 12_000),
    ("hair-colouring", "hair", "Hair colouring", 120, 28_000),
    ("blow-dry", "hair", "Blow-dry", 45, 8_000),
    ("mens-haircut", "barbering", "Men's haircut", 30, 6_000),
    ("beard-trim", "barbering", "Beard trim", 30, 4_000),
    (
        "haircut-and-beard",
        "barbering",
        "Haircut and beard",
        60,
        9_000,
    ),
    (
        "physio-session",
        "physiotherapy",
        "Physiotherapy session",
        50,
        15_000,
    ),
    (
        "postural-assessment",
        "physiotherapy",
        "Postural assessment",
        60,
        18_000,
    ),
    (
        "relaxing-massage",
        "massage",
        "Relaxing massage",
        60,
        14_000,
    ),
    ("sports-massage", "massage", "Sports massage", 60, 16_000),
];

/// (provider, template key, price in cents, execution minutes, buffer after)
const PROVIDER_SERVICES: [(usize, &str, i64, i32, i32); 10] = [
    (ANA, "womens-haircut", 13_000, 60, 10),
    (ANA, "hair-colouring", 29_000, 120, 15),
    (ANA, "blow-dry", 8_500, 45, 5),
    (BRUNO, "mens-haircut", 6_000, 30, 0),
    (BRUNO, "beard-trim", 4_000, 20, 0),
    (BRUNO, "haircut-and-beard", 9_000, 50, 0),
    (CARLA, "physio-session", 15_000, 50, 10),
    (CARLA, "postural-assessment", 18_000, 60, 10),
    (DIEGO, "relaxing-massage", 14_000, 60, 15),
    (DIEGO, "sports-massage", 16_500, 60, 15),
];

/// A provider's own service, outside the catalogue:
/// (provider, key, category slug, name, minutes, price in cents, at the client's home)
const OWN_SERVICES: [(usize, &str, &str, &str, i32, i64, bool); 4] = [
    (
        ANA,
        "bridal-trial",
        "hair",
        "Bridal hair trial",
        90,
        25_000,
        false,
    ),
    (
        BRUNO,
        "hot-towel-shave",
        "barbering",
        "Hot-towel shave",
        40,
        5_500,
        false,
    ),
    (
        CARLA,
        "home-physio",
        "physiotherapy",
        "Home-visit physiotherapy",
        75,
        22_000,
        true,
    ),
    (
        DIEGO,
        "hot-stone-massage",
        "massage",
        "Hot-stone massage",
        90,
        20_000,
        false,
    ),
];

/// (key, role, title, description)
const ONBOARDING_STEPS: [(&str, UserRole, &str, &str); 6] = [
    (
        "provider.profile",
        UserRole::Provider,
        "Complete your business profile",
        "Name, bio, address and the payment methods you accept.",
    ),
    (
        "provider.availability",
        UserRole::Provider,
        "Set your working hours",
        "Weekly hours, breaks and days off.",
    ),
    (
        "provider.services",
        UserRole::Provider,
        "Add your services",
        "Prices and durations clients can book.",
    ),
    (
        "provider.payouts",
        UserRole::Provider,
        "Add payout details",
        "Where your earnings are paid out.",
    ),
    (
        "client.profile",
        UserRole::Client,
        "Complete your profile",
        "Your name, phone and address.",
    ),
    (
        "client.first-booking",
        UserRole::Client,
        "Book your first appointment",
        "Find a provider and pick a time.",
    ),
];

/// The platform fee of the organization; Carla has a reduced rate (see
/// `provider_service_fees`).
const FEE_PERCENTAGE_BP: i32 = 1000;
const FEE_MIN_CENTS: i64 = 100;
const FEE_MAX_CENTS: i64 = 5_000;
const CARLA_FEE_PERCENTAGE_BP: i32 = 800;
const PAYOUT_DELAY_DAYS: i64 = 2;
const MINIMUM_WITHDRAWAL_CENTS: i64 = 1_000;
const PROMOTION_BP: i64 = 1000;

/// The fee the ledger would charge: the same rule as `crate::fees`, from the demo's
/// settings and Carla's override.
fn platform_fee(provider: usize, amount: i64) -> i64 {
    let percentage_bp = if provider == CARLA {
        CARLA_FEE_PERCENTAGE_BP
    } else {
        FEE_PERCENTAGE_BP
    };
    crate::fees::platform_fee(
        amount,
        &crate::fees::FeeRules {
            percentage_bp,
            fixed_cents: 0,
            min_cents: FEE_MIN_CENTS,
            max_cents: Some(FEE_MAX_CENTS),
        },
    )
}

// ---------------------------------------------------------------------------------
// Building the rows.

/// Every row of the demo, ready to insert.
#[derive(Default)]
struct DemoData {
    organizations: Vec<organization::ActiveModel>,
    users: Vec<user::ActiveModel>,
    staff_members: Vec<staff_member::ActiveModel>,
    user_addresses: Vec<user_address::ActiveModel>,
    niches: Vec<niche::ActiveModel>,
    root_categories: Vec<category::ActiveModel>,
    child_categories: Vec<category::ActiveModel>,
    service_templates: Vec<service_template::ActiveModel>,
    services: Vec<service::ActiveModel>,
    provider_services: Vec<provider_service::ActiveModel>,
    provider_settings: Vec<provider_settings::ActiveModel>,
    provider_payment_preferences: Vec<provider_payment_preference::ActiveModel>,
    payment_settings: Vec<payment_settings::ActiveModel>,
    user_payment_methods: Vec<user_payment_method::ActiveModel>,
    client_payment_preferences: Vec<client_payment_preference::ActiveModel>,
    promotions: Vec<promotion::ActiveModel>,
    provider_service_fees: Vec<provider_service_fee::ActiveModel>,
    availability: Vec<availability::ActiveModel>,
    provider_breaks: Vec<provider_break::ActiveModel>,
    blocked_time_slots: Vec<blocked_time_slot::ActiveModel>,
    appointments: Vec<appointment::ActiveModel>,
    status_history: Vec<appointment_status_history::ActiveModel>,
    reviews: Vec<review::ActiveModel>,
    withdrawals: Vec<payment_withdrawal::ActiveModel>,
    transactions: Vec<provider_transaction::ActiveModel>,
    balances: Vec<provider_balance::ActiveModel>,
    support_tickets: Vec<support_ticket::ActiveModel>,
    support_messages: Vec<support_message::ActiveModel>,
    onboarding_steps: Vec<onboarding_step::ActiveModel>,
    onboarding_progress: Vec<user_onboarding_progress::ActiveModel>,
    notifications: Vec<notification::ActiveModel>,
    system_settings: Vec<system_setting::ActiveModel>,
    audit_log: Vec<audit_log::ActiveModel>,
}

/// Rows per multi-row INSERT: well under SQLite's 32766 bound parameters for the
/// widest table (appointments, 27 columns).
const CHUNK: usize = 500;

async fn insert_all<A>(db: &impl ConnectionTrait, mut rows: Vec<A>) -> Result<(), StorageError>
where
    A: ActiveModelTrait + Send,
{
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(CHUNK));
        <A::Entity as EntityTrait>::insert_many(rows)
            .exec_without_returning(db)
            .await?;
        rows = rest;
    }
    Ok(())
}

impl DemoData {
    /// Inserts everything, parents before children.
    async fn write(self, db: &impl ConnectionTrait) -> Result<(), StorageError> {
        insert_all(db, self.organizations).await?;
        insert_all(db, self.users).await?;
        insert_all(db, self.staff_members).await?;
        insert_all(db, self.user_addresses).await?;
        insert_all(db, self.niches).await?;
        insert_all(db, self.root_categories).await?;
        insert_all(db, self.child_categories).await?;
        insert_all(db, self.service_templates).await?;
        insert_all(db, self.services).await?;
        insert_all(db, self.provider_services).await?;
        insert_all(db, self.provider_settings).await?;
        insert_all(db, self.provider_payment_preferences).await?;
        insert_all(db, self.payment_settings).await?;
        insert_all(db, self.user_payment_methods).await?;
        insert_all(db, self.client_payment_preferences).await?;
        insert_all(db, self.promotions).await?;
        insert_all(db, self.provider_service_fees).await?;
        insert_all(db, self.availability).await?;
        insert_all(db, self.provider_breaks).await?;
        insert_all(db, self.blocked_time_slots).await?;
        insert_all(db, self.appointments).await?;
        insert_all(db, self.status_history).await?;
        insert_all(db, self.reviews).await?;
        insert_all(db, self.withdrawals).await?;
        insert_all(db, self.transactions).await?;
        insert_all(db, self.balances).await?;
        insert_all(db, self.support_tickets).await?;
        insert_all(db, self.support_messages).await?;
        insert_all(db, self.onboarding_steps).await?;
        insert_all(db, self.onboarding_progress).await?;
        insert_all(db, self.notifications).await?;
        insert_all(db, self.system_settings).await?;
        insert_all(db, self.audit_log).await?;
        Ok(())
    }
}

/// What a client can book from a provider.
#[derive(Clone, Copy)]
struct Offering {
    service_id: Option<Uuid>,
    provider_service_id: Option<Uuid>,
    minutes: i64,
    buffer: i64,
    price_cents: i64,
    at_home: bool,
}

/// One generated appointment before it becomes rows.
struct Appt {
    id: Uuid,
    name: String,
    provider: usize,
    client: usize,
    date: NaiveDate,
    slot: usize,
    offering: Offering,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    status: AppointmentStatus,
}

/// The people, by role, with their ids.
struct People {
    admin: Uuid,
    support: Uuid,
    providers: [Uuid; 4],
    clients: Vec<Uuid>,
}

fn org() -> sea_orm::ActiveValue<Uuid> {
    Set(DEMO_ORGANIZATION_ID)
}

fn build(today: NaiveDate, password_hash: &str) -> Result<DemoData, StorageError> {
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    // The demo's "setup day": four weeks before the first appointments' week ends.
    let setup_at = local(monday - Duration::days(28), minutes(8, 0));
    // Bookkeeping of future appointments happened before the seed day began.
    let day_start = local(today, 0);
    let mut d = DemoData::default();

    // Tenant and people.
    d.organizations.push(organization::ActiveModel {
        id: Set(DEMO_ORGANIZATION_ID),
        slug: Set(DEMO_SLUG.to_owned()),
        name: Set("Agenda Demo Studio".to_owned()),
        time_zone: Set(DEMO_TIME_ZONE.to_owned()),
        currency: Set(DEMO_CURRENCY.to_owned()),
        locale: Set(Locale::En),
        status: Set(OrganizationStatus::Active),
        created_at: Set(setup_at),
        updated_at: Set(setup_at),
    });
    let new_user = |key: &str, email: &str, name: &str, role: UserRole, phone: String| {
        let id = demo_id(&format!("user/{key}"));
        let model = user::ActiveModel {
            id: Set(id),
            organization_id: org(),
            email: Set(email.to_owned()),
            password_hash: Set(password_hash.to_owned()),
            full_name: Set(name.to_owned()),
            phone: Set(Some(phone)),
            role: Set(role),
            tax_id: Set(None),
            is_active: Set(true),
            is_verified: Set(true),
            last_login_at: Set(None),
            failed_login_attempts: Set(0),
            locked_until: Set(None),
            created_at: Set(setup_at),
            updated_at: Set(setup_at),
        };
        (id, model)
    };
    let (admin, row) = new_user(
        "admin",
        DEMO_ADMIN_EMAIL,
        "Alice Admin",
        UserRole::Admin,
        "+55 11 90000-0001".into(),
    );
    d.users.push(row);
    let (support, row) = new_user(
        "support",
        "support@demo.example.com",
        "Sam Support",
        UserRole::Support,
        "+55 11 90000-0002".into(),
    );
    d.users.push(row);
    let mut providers = [Uuid::nil(); 4];
    for (i, p) in PROVIDERS.iter().enumerate() {
        let (id, row) = new_user(
            &format!("provider/{}", p.key),
            p.email,
            p.name,
            UserRole::Provider,
            format!("+55 11 91000-00{i:02}"),
        );
        providers[i] = id;
        d.users.push(row);
    }
    let mut clients = Vec::new();
    for (i, (login, name)) in CLIENTS.iter().enumerate() {
        let (id, row) = new_user(
            &format!("client/{i:02}"),
            &format!("{login}@demo.example.com"),
            name,
            UserRole::Client,
            format!("+55 11 92000-00{i:02}"),
        );
        clients.push(id);
        d.users.push(row);
    }
    let people = People {
        admin,
        support,
        providers,
        clients,
    };

    let staff = [
        (people.admin, "Alice Admin", "Studio manager", None, false),
        (
            people.support,
            "Sam Support",
            "Customer support",
            None,
            false,
        ),
    ]
    .into_iter()
    .chain(PROVIDERS.iter().enumerate().map(|(i, p)| {
        (
            people.providers[i],
            p.name,
            p.title,
            Some((p.bio, p.color)),
            true,
        )
    }));
    for (sort, (user_id, name, title, bio_color, bookable)) in staff.enumerate() {
        d.staff_members.push(staff_member::ActiveModel {
            id: Set(demo_id(&format!("staff/{user_id}"))),
            organization_id: org(),
            user_id: Set(Some(user_id)),
            display_name: Set(name.to_owned()),
            title: Set(Some(title.to_owned())),
            bio: Set(bio_color.map(|(bio, _)| bio.to_owned())),
            is_bookable: Set(bookable),
            color: Set(bio_color.map(|(_, color)| color.to_owned())),
            sort_order: Set(sort as i32),
            is_active: Set(true),
            created_at: Set(setup_at),
            updated_at: Set(setup_at),
        });
    }

    let mut addresses = Vec::new();
    const DISTRICTS: [&str; 4] = ["Pinheiros", "Vila Mariana", "Moema", "Perdizes"];
    for (i, client) in people.clients.iter().enumerate() {
        let id = demo_id(&format!("address/client/{i:02}"));
        addresses.push(id);
        d.user_addresses.push(user_address::ActiveModel {
            id: Set(id),
            organization_id: org(),
            user_id: Set(*client),
            kind: Set(AddressKind::Home),
            label: Set(Some("Home".to_owned())),
            street: Set("Rua Augusta".to_owned()),
            number: Set(Some(format!("{}", 100 + 37 * i))),
            complement: Set(i.is_multiple_of(3).then(|| format!("Apto {}", 11 + i))),
            district: Set(Some(DISTRICTS[i % DISTRICTS.len()].to_owned())),
            city: Set("São Paulo".to_owned()),
            state: Set("SP".to_owned()),
            postal_code: Set(format!("01{:03}-000", 300 + i)),
            country: Set("BR".to_owned()),
            latitude: Set(Some(-23.55 - 0.004 * i as f64)),
            longitude: Set(Some(-46.65 + 0.003 * i as f64)),
            is_default: Set(true),
            created_at: Set(setup_at),
            updated_at: Set(setup_at),
        });
    }

    // Catalogue.
    let mut niche_ids = HashMap::new();
    for (sort, (slug, name, description, icon)) in NICHES.iter().enumerate() {
        let id = demo_id(&format!("niche/{slug}"));
        niche_ids.insert(*slug, id);
        d.niches.push(niche::ActiveModel {
            id: Set(id),
            organization_id: org(),
            name: Set((*name).to_owned()),
            slug: Set((*slug).to_owned()),
            description: Set(Some((*description).to_owned())),
            icon: Set(Some((*icon).to_owned())),
            sort_order: Set(sort as i32),
            is_active: Set(true),
            created_at: Set(setup_at),
            updated_at: Set(setup_at),
        });
    }
    let category_id = |slug: &str| demo_id(&format!("category/{slug}"));
    for (sort, (slug, niche_slug, parent, name)) in CATEGORIES.iter().enumerate() {
        let row = category::ActiveModel {
            id: Set(category_id(slug)),
            organization_id: org(),
            niche_id: Set(niche_ids[niche_slug]),
            parent_id: Set(parent.map(category_id)),
            name: Set((*name).to_owned()),
            slug: Set((*slug).to_owned()),
            description: Set(None),
            sort_order: Set(sort as i32),
            is_active: Set(true),
            created_at: Set(setup_at),
            updated_at: Set(setup_at),
        };
        if parent.is_some() {
            d.child_categories.push(row);
        } else {
            d.root_categories.push(row);
        }
    }
    let template_id = |key: &str| demo_id(&format!("service-template/{key}"));
    for (key, category, name, minutes, price) in TEMPLATES {
        d.service_templates.push(service_template::ActiveModel {
            id: Set(template_id(key)),
            organization_id: org(),
            category_id: Set(category_id(category)),
            name: Set(name.to_owned()),
            description: Set(None),
            default_duration_minutes: Set(minutes),
            default_price_cents: Set(Some(price)),
            is_active: Set(true),
            created_at: Set(setup_at),
            updated_at: Set(setup_at),
        });
    }
    let mut offerings: [Vec<Offering>; 4] = Default::default();
    for (provider, template, price, minutes, buffer) in PROVIDER_SERVICES {
        let id = demo_id(&format!(
            "provider-service/{}/{template}",
            PROVIDERS[provider].key
        ));
        d.provider_services.push(provider_service::ActiveModel {
            id: Set(id),
            organization_id: org(),
            provider_id: Set(people.providers[provider]),
            template_id: Set(template_id(template)),
            price_cents: Set(price),
            execution_minutes: Set(minutes),
            buffer_after_minutes: Set(buffer),
            is_active: Set(true),
            created_at: Set(setup_at),
            updated_at: Set(setup_at),
        });
        offerings[provider].push(Offering {
            service_id: None,
            provider_service_id: Some(id),
            minutes: i64::from(minutes),
            buffer: i64::from(buffer),
            price_cents: price,
            at_home: false,
        });
    }
    for (provider, key, category, name, minutes, price, at_home) in OWN_SERVICES {
        let id = demo_id(&format!("service/{}/{key}", PROVIDERS[provider].key));
        d.services.push(service::ActiveModel {
            id: Set(id),
            organization_id: org(),
            provider_id: Set(people.providers[provider]),
            category_id: Set(Some(category_id(category))),
            template_id: Set(None),
            name: Set(name.to_owned()),
            description: Set(None),
            duration_minutes: Set(minutes),
            price_cents: Set(price),
            is_active: Set(true),
            created_at: Set(setup_at),
            updated_at: Set(setup_at),
        });
        offerings[provider].push(Offering {
            service_id: Some(id),
            provider_service_id: None,
            minutes: i64::from(minutes),
            buffer: i64::from(PROVIDERS[provider].buffer),
            price_cents: price,
            at_home,
        });
    }

    // Provider and payment configuration.
    for (i, p) in PROVIDERS.iter().enumerate() {
        d.provider_settings.push(provider_settings::ActiveModel {
            id: Set(demo_id(&format!("provider-settings/{}", p.key))),
            organization_id: org(),
            provider_id: Set(people.providers[i]),
            business_name: Set(p.business.to_owned()),
            bio: Set(Some(p.bio.to_owned())),
            phone: Set(Some(format!("+55 11 3000-00{i:02}"))),
            time_zone: Set(None),
            city: Set(Some("São Paulo".to_owned())),
            state: Set(Some("SP".to_owned())),
            country: Set(Some("BR".to_owned())),
            latitude: Set(Some(p.latitude)),
            longitude: Set(Some(p.longitude)),
            accepted_payment_methods: Set(PaymentMethods(p.accepts.to_vec())),
            // Filled in from the approved reviews below.
            rating_count: Set(0),
            rating_total: Set(0),
            default_duration_minutes: Set(60),
            buffer_minutes: Set(p.buffer),
            slot_step_minutes: Set(p.slot_step),
            min_lead_minutes: Set(120),
            max_horizon_days: Set(60),
            auto_confirm: Set(false),
            is_accepting_bookings: Set(true),
            created_at: Set(setup_at),
            updated_at: Set(setup_at),
        });
    }
    // Diego has not added payout details yet (his onboarding step is pending).
    let payouts: [(usize, PayoutMethod); 3] = [
        (ANA, PayoutMethod::Pix),
        (BRUNO, PayoutMethod::BankTransfer),
        (CARLA, PayoutMethod::Pix),
    ];
    for (provider, method) in payouts {
        let p = &PROVIDERS[provider];
        let (pix, bank) = match method {
            PayoutMethod::Pix => (Some(p.email.to_owned()), None),
            PayoutMethod::BankTransfer => (None, Some(("341", "0001", "12345-6"))),
        };
        rules::payout_details(
            method,
            pix.as_deref(),
            bank.map(|b| b.0),
            bank.map(|b| b.1),
            bank.map(|b| b.2),
        )?;
        d.provider_payment_preferences
            .push(provider_payment_preference::ActiveModel {
                id: Set(demo_id(&format!("payout-preference/{}", p.key))),
                organization_id: org(),
                provider_id: Set(people.providers[provider]),
                payout_method: Set(method),
                pix_key: Set(pix),
                bank_code: Set(bank.map(|b| b.0.to_owned())),
                bank_branch: Set(bank.map(|b| b.1.to_owned())),
                bank_account: Set(bank.map(|b| b.2.to_owned())),
                account_holder_name: Set(Some(p.name.to_owned())),
                account_holder_tax_id: Set(None),
                minimum_payout_cents: Set(MINIMUM_WITHDRAWAL_CENTS),
                created_at: Set(setup_at),
                updated_at: Set(setup_at),
            });
    }
    rules::fee_bounds(Some(FEE_MIN_CENTS), Some(FEE_MAX_CENTS))?;
    d.payment_settings.push(payment_settings::ActiveModel {
        id: Set(demo_id("payment-settings")),
        organization_id: org(),
        fee_percentage_bp: Set(FEE_PERCENTAGE_BP),
        fee_fixed_cents: Set(0),
        fee_min_cents: Set(FEE_MIN_CENTS),
        fee_max_cents: Set(Some(FEE_MAX_CENTS)),
        payout_schedule: Set(PayoutSchedule::Weekly),
        payout_delay_days: Set(PAYOUT_DELAY_DAYS as i32),
        minimum_withdrawal_cents: Set(MINIMUM_WITHDRAWAL_CENTS),
        created_at: Set(setup_at),
        updated_at: Set(setup_at),
    });
    d.provider_service_fees
        .push(provider_service_fee::ActiveModel {
            id: Set(demo_id("provider-service-fee/carla")),
            organization_id: org(),
            provider_id: Set(people.providers[CARLA]),
            fee_percentage_bp: Set(Some(CARLA_FEE_PERCENTAGE_BP)),
            fee_fixed_cents: Set(None),
            fee_min_cents: Set(None),
            fee_max_cents: Set(None),
            reason: Set(Some("Launch partner rate".to_owned())),
            created_at: Set(setup_at),
            updated_at: Set(setup_at),
        });
    // Four clients keep a card on file; six say how they like to pay.
    for i in 0..6 {
        let card = (i < 4).then(|| demo_id(&format!("payment-method/client/{i:02}")));
        if let Some(id) = card {
            d.user_payment_methods
                .push(user_payment_method::ActiveModel {
                    id: Set(id),
                    organization_id: org(),
                    user_id: Set(people.clients[i]),
                    processor: Set("demo".to_owned()),
                    processor_token: Set(format!("tok_demo_{i:02}")),
                    brand: Set(Some(
                        if i % 2 == 0 { "visa" } else { "mastercard" }.to_owned(),
                    )),
                    last4: Set(Some(format!("42{:02}", 40 + i))),
                    exp_month: Set(Some(1 + i as i32)),
                    exp_year: Set(Some(2030)),
                    is_default: Set(true),
                    created_at: Set(setup_at),
                    updated_at: Set(setup_at),
                });
        }
        d.client_payment_preferences
            .push(client_payment_preference::ActiveModel {
                id: Set(demo_id(&format!("client-payment-preference/{i:02}"))),
                organization_id: org(),
                client_id: Set(people.clients[i]),
                preferred_method: Set(Some(if card.is_some() {
                    PaymentMethod::Card
                } else {
                    PaymentMethod::Pix
                })),
                default_payment_method_id: Set(card),
                save_payment_methods: Set(card.is_some()),
                send_receipts: Set(true),
                created_at: Set(setup_at),
                updated_at: Set(setup_at),
            });
    }
    let promotion_id = demo_id("promotion/welcome10");
    let valid_from = setup_at;
    let valid_until = local(today + Duration::days(90), 0);
    rules::promotion(&PromotionTerms {
        discount_type: DiscountType::Percentage,
        discount_value: PROMOTION_BP,
        scope: PromotionScope::All,
        service: false,
        provider: false,
        category: false,
        niche: false,
        valid_from,
        valid_until: Some(valid_until),
    })?;

    // Scheduling rules.
    let weekly_window = |provider: usize, weekday: i32, start: NaiveTime, end: NaiveTime| {
        rules::availability(
            AvailabilityKind::Weekly,
            Some(weekday),
            None,
            Some(start),
            Some(end),
            true,
        )
        .map(|()| availability::ActiveModel {
            id: Set(demo_id(&format!(
                "availability/{}/weekday-{weekday}",
                PROVIDERS[provider].key
            ))),
            organization_id: org(),
            provider_id: Set(people.providers[provider]),
            kind: Set(AvailabilityKind::Weekly),
            weekday: Set(Some(weekday)),
            date: Set(None),
            start_time: Set(Some(start)),
            end_time: Set(Some(end)),
            is_available: Set(true),
            slot_step_minutes: Set(None),
            created_at: Set(setup_at),
            updated_at: Set(setup_at),
        })
    };
    let weekly_rule = |weekday: i32, start: NaiveTime, end: NaiveTime| Recurrence {
        kind: RecurrenceKind::Weekly,
        weekday: Some(weekday),
        start_time: Some(start),
        end_time: Some(end),
        starts_on: None,
        ends_on: None,
        start_at: None,
        end_at: None,
    };
    for (i, p) in PROVIDERS.iter().enumerate() {
        for weekday in 1..=5 {
            d.availability
                .push(weekly_window(i, weekday, hm(9, 0), hm(18, 0))?);
            rules::recurrence(&weekly_rule(weekday, hm(12, 0), hm(13, 0)))?;
            d.provider_breaks.push(provider_break::ActiveModel {
                id: Set(demo_id(&format!("break/{}/lunch-{weekday}", p.key))),
                organization_id: org(),
                provider_id: Set(people.providers[i]),
                kind: Set(RecurrenceKind::Weekly),
                weekday: Set(Some(weekday)),
                start_time: Set(Some(hm(12, 0))),
                end_time: Set(Some(hm(13, 0))),
                starts_on: Set(None),
                ends_on: Set(None),
                start_at: Set(None),
                end_at: Set(None),
                label: Set(Some("Lunch".to_owned())),
                created_at: Set(setup_at),
                updated_at: Set(setup_at),
            });
        }
        if p.saturday {
            d.availability
                .push(weekly_window(i, 6, hm(9, 0), hm(13, 0))?);
        }
    }
    // Bruno takes next week's Thursday off.
    let bruno_day_off = monday + Duration::days(7 + 3);
    rules::availability(
        AvailabilityKind::DateOverride,
        None,
        Some(bruno_day_off),
        None,
        None,
        false,
    )?;
    d.availability.push(availability::ActiveModel {
        id: Set(demo_id("availability/bruno/day-off")),
        organization_id: org(),
        provider_id: Set(people.providers[BRUNO]),
        kind: Set(AvailabilityKind::DateOverride),
        weekday: Set(None),
        date: Set(Some(bruno_day_off)),
        start_time: Set(None),
        end_time: Set(None),
        is_available: Set(false),
        slot_step_minutes: Set(None),
        created_at: Set(setup_at),
        updated_at: Set(setup_at),
    });
    // Carla attends a course next Wednesday afternoon (one-off); Diego has a team
    // meeting every Friday at 16:00 (weekly).
    let carla_course_day = monday + Duration::days(7 + 2);
    let carla_course = (minutes(14, 0), minutes(16, 0));
    let carla_block = Recurrence {
        kind: RecurrenceKind::OneOff,
        weekday: None,
        start_time: None,
        end_time: None,
        starts_on: None,
        ends_on: None,
        start_at: Some(local(carla_course_day, carla_course.0)),
        end_at: Some(local(carla_course_day, carla_course.1)),
    };
    let diego_meeting = (minutes(16, 0), minutes(18, 0));
    let diego_block = Recurrence {
        starts_on: Some(setup_at.date_naive()),
        ..weekly_rule(5, hm(16, 0), hm(18, 0))
    };
    for (key, provider, rule, reason) in [
        (
            "carla/course",
            CARLA,
            carla_block,
            "Continuing-education course",
        ),
        ("diego/team-meeting", DIEGO, diego_block, "Team meeting"),
    ] {
        rules::recurrence(&rule)?;
        d.blocked_time_slots.push(blocked_time_slot::ActiveModel {
            id: Set(demo_id(&format!("block/{key}"))),
            organization_id: org(),
            provider_id: Set(people.providers[provider]),
            kind: Set(rule.kind),
            weekday: Set(rule.weekday),
            start_time: Set(rule.start_time),
            end_time: Set(rule.end_time),
            starts_on: Set(rule.starts_on),
            ends_on: Set(rule.ends_on),
            start_at: Set(rule.start_at),
            end_at: Set(rule.end_at),
            source: Set(BlockSource::Manual),
            reason: Set(Some(reason.to_owned())),
            created_by: Set(Some(people.providers[provider])),
            created_at: Set(setup_at),
            updated_at: Set(setup_at),
        });
    }

    // Appointments: three weeks back to two weeks ahead of the seed day.
    let mut appts: Vec<Appt> = Vec::new();
    for week in -3i64..=2 {
        for weekday in 1..=6i64 {
            let date = monday + Duration::days(week * 7 + weekday - 1);
            for (provider, p) in PROVIDERS.iter().enumerate() {
                if (weekday == 6 && !p.saturday) || (provider == BRUNO && date == bruno_day_off) {
                    continue;
                }
                let (open, close) = if weekday == 6 {
                    (minutes(9, 0), minutes(13, 0))
                } else {
                    (minutes(9, 0), minutes(18, 0))
                };
                let mut busy = Vec::new();
                if weekday <= 5 {
                    busy.push((minutes(12, 0), minutes(13, 0)));
                }
                if provider == CARLA && date == carla_course_day {
                    busy.push(carla_course);
                }
                if provider == DIEGO && weekday == 5 {
                    busy.push(diego_meeting);
                }
                let day = format!("{}/w{week:+}/d{weekday}", p.key);
                let h = pick(&day);
                let wanted = 2 + (h % 3) as usize;
                let mut cursor = open + 30 * ((h >> 8) % 2) as i64;
                for slot in 0..wanted {
                    let name = format!("{day}/s{slot}");
                    let hs = pick(&name);
                    let offering =
                        offerings[provider][(hs % offerings[provider].len() as u64) as usize];
                    let mut start = cursor;
                    while let Some(&(_, until)) = busy
                        .iter()
                        .find(|(from, until)| start < *until && start + offering.minutes > *from)
                    {
                        start = until;
                    }
                    if start + offering.minutes > close {
                        break;
                    }
                    let occupied = start + offering.minutes + offering.buffer;
                    let step = i64::from(p.slot_step);
                    cursor = (occupied + step - 1) / step * step + 30 * ((hs >> 16) % 3) as i64;
                    appts.push(Appt {
                        id: demo_id(&format!("appointment/{name}")),
                        client: ((hs >> 24) % CLIENTS.len() as u64) as usize,
                        name,
                        provider,
                        date,
                        slot,
                        offering,
                        start: local(date, start),
                        end: local(date, start + offering.minutes),
                        status: AppointmentStatus::Pending,
                    });
                }
            }
        }
    }
    // Statuses follow the day: before the seed day the appointment happened (or not),
    // after it it is still ahead. Counters rather than hashes guarantee every status.
    let in_progress_day = if today.weekday() == Weekday::Sun {
        today - Duration::days(1)
    } else {
        today
    };
    let (mut past, mut present, mut future) = (0u32, 0u32, 0u32);
    for a in &mut appts {
        a.status = if a.provider == ANA && a.date == in_progress_day && a.slot == 0 {
            AppointmentStatus::InProgress
        } else if a.date < today {
            past += 1;
            match past % 12 {
                3 => AppointmentStatus::Canceled,
                8 => AppointmentStatus::NoShow,
                _ => AppointmentStatus::Completed,
            }
        } else if a.date == today {
            present += 1;
            if present % 3 == 2 {
                AppointmentStatus::Pending
            } else {
                AppointmentStatus::Confirmed
            }
        } else {
            future += 1;
            match future % 10 {
                4 => AppointmentStatus::Canceled,
                1 | 6 | 9 => AppointmentStatus::Pending,
                _ => AppointmentStatus::Confirmed,
            }
        };
    }

    let mut redemptions = 0;
    let mut ledger: Vec<LedgerEntry> = Vec::new();
    let mut completed = 0u32;
    let mut ratings = [(0i32, 0i64); 4];
    for a in &appts {
        let provider_id = people.providers[a.provider];
        let client_id = people.clients[a.client];
        let h = pick(&a.name);
        let booked_at = (a.start - Duration::days(2 + (h % 5) as i64))
            .min(day_start - Duration::hours(1 + ((h >> 4) % 48) as i64));
        let confirmed_at = booked_at + Duration::minutes(30);
        let discount = if h.is_multiple_of(9) && a.status != AppointmentStatus::Canceled {
            redemptions += 1;
            a.offering.price_cents * PROMOTION_BP / 10_000
        } else {
            0
        };
        let paid_with = [
            PaymentMethod::Pix,
            PaymentMethod::Card,
            PaymentMethod::Online,
        ][((h >> 12) % 3) as usize];
        let (payment_method, payment_status) = match a.status {
            AppointmentStatus::Completed => (Some(paid_with), PaymentStatus::Paid),
            AppointmentStatus::InProgress => (Some(PaymentMethod::Card), PaymentStatus::Pending),
            AppointmentStatus::Confirmed => (Some(paid_with), PaymentStatus::Unpaid),
            _ => (None, PaymentStatus::Unpaid),
        };

        // The history, one row per transition.
        let step = |from, to, by, at, reason| Transition {
            from,
            to,
            by,
            at,
            reason,
        };
        let mut steps = vec![step(
            None,
            AppointmentStatus::Pending,
            client_id,
            booked_at,
            None,
        )];
        let confirm = step(
            Some(AppointmentStatus::Pending),
            AppointmentStatus::Confirmed,
            provider_id,
            confirmed_at,
            None,
        );
        let mut canceled = None;
        match a.status {
            AppointmentStatus::Pending => {}
            AppointmentStatus::Confirmed => steps.push(confirm),
            AppointmentStatus::InProgress | AppointmentStatus::Completed => {
                steps.push(confirm);
                steps.push(step(
                    Some(AppointmentStatus::Confirmed),
                    AppointmentStatus::InProgress,
                    provider_id,
                    a.start,
                    None,
                ));
                if a.status == AppointmentStatus::Completed {
                    steps.push(step(
                        Some(AppointmentStatus::InProgress),
                        AppointmentStatus::Completed,
                        provider_id,
                        a.end,
                        None,
                    ));
                }
            }
            AppointmentStatus::NoShow => {
                steps.push(confirm);
                steps.push(step(
                    Some(AppointmentStatus::Confirmed),
                    AppointmentStatus::NoShow,
                    provider_id,
                    a.start + Duration::minutes(15),
                    Some("The client did not come"),
                ));
            }
            AppointmentStatus::Canceled => {
                steps.push(confirm);
                let (by, reason) = if h.is_multiple_of(2) {
                    (client_id, "Schedule conflict")
                } else {
                    (provider_id, "Provider unavailable")
                };
                let at = confirmed_at + Duration::minutes(15);
                canceled = Some((by, at, reason));
                steps.push(step(
                    Some(AppointmentStatus::Confirmed),
                    AppointmentStatus::Canceled,
                    by,
                    at,
                    Some(reason),
                ));
            }
        }
        let last_change = steps.last().map_or(booked_at, |s| s.at);
        for (n, t) in steps.into_iter().enumerate() {
            d.status_history
                .push(appointment_status_history::ActiveModel {
                    id: Set(demo_id(&format!("appointment-history/{}/{n}", a.name))),
                    organization_id: org(),
                    appointment_id: Set(a.id),
                    from_status: Set(t.from),
                    to_status: Set(t.to),
                    changed_by: Set(Some(t.by)),
                    reason: Set(t.reason.map(str::to_owned)),
                    created_at: Set(t.at),
                });
        }

        d.appointments.push(appointment::ActiveModel {
            id: Set(a.id),
            organization_id: org(),
            client_id: Set(client_id),
            provider_id: Set(provider_id),
            service_id: Set(a.offering.service_id),
            provider_service_id: Set(a.offering.provider_service_id),
            promotion_id: Set((discount > 0).then_some(promotion_id)),
            address_id: Set(a.offering.at_home.then(|| addresses[a.client])),
            start_at: Set(a.start),
            end_at: Set(a.end),
            occupied_until: Set(a.end + Duration::minutes(a.offering.buffer)),
            status: Set(a.status),
            price_cents: Set(a.offering.price_cents),
            discount_cents: Set(discount),
            currency: Set(DEMO_CURRENCY.to_owned()),
            payment_method: Set(payment_method),
            payment_status: Set(payment_status),
            notes: Set(h.is_multiple_of(7).then(|| "First visit".to_owned())),
            provider_notes: Set(None),
            cancellation_reason: Set(canceled.map(|c| c.2.to_owned())),
            canceled_at: Set(canceled.map(|c| c.1)),
            canceled_by: Set(canceled.map(|c| c.0)),
            created_at: Set(booked_at),
            updated_at: Set(last_change),
        });

        if a.status != AppointmentStatus::Completed {
            continue;
        }
        // The platform collected the payment: credit it and debit the commission,
        // pending until the payout delay has passed.
        let amount = a.offering.price_cents - discount;
        let bucket = if a.date >= today - Duration::days(PAYOUT_DELAY_DAYS) {
            BalanceBucket::Pending
        } else {
            BalanceBucket::Available
        };
        ledger.push(LedgerEntry {
            provider: a.provider,
            kind: TransactionKind::Payment,
            bucket,
            amount,
            appointment: Some(a.id),
            withdrawal: None,
            at: a.end,
            description: "Appointment payment",
        });
        ledger.push(LedgerEntry {
            provider: a.provider,
            kind: TransactionKind::Commission,
            bucket,
            amount: -platform_fee(a.provider, amount),
            appointment: Some(a.id),
            withdrawal: None,
            at: a.end,
            description: "Platform fee",
        });

        // Every third completed appointment was reviewed.
        completed += 1;
        if completed % 3 != 1 {
            continue;
        }
        const RATINGS: [i32; 11] = [5, 4, 5, 3, 5, 4, 2, 5, 4, 1, 5];
        let rating = RATINGS[(completed / 3) as usize % RATINGS.len()];
        let moderation = match completed % 7 {
            3 => ModerationStatus::Pending,
            _ if rating == 1 => ModerationStatus::Rejected,
            _ => ModerationStatus::Approved,
        };
        let reviewed_at = (a.end + Duration::hours(3)).min(day_start);
        let moderated = (moderation != ModerationStatus::Pending)
            .then(|| (people.support, reviewed_at + Duration::hours(1)));
        let responded = (rating <= 3 && moderation == ModerationStatus::Approved)
            .then(|| reviewed_at + Duration::hours(5));
        if moderation == ModerationStatus::Approved {
            ratings[a.provider].0 += 1;
            ratings[a.provider].1 += i64::from(rating);
        }
        d.reviews.push(review::ActiveModel {
            id: Set(demo_id(&format!("review/{}", a.name))),
            organization_id: org(),
            appointment_id: Set(a.id),
            client_id: Set(client_id),
            provider_id: Set(provider_id),
            rating: Set(rating),
            comment: Set(Some(
                match rating {
                    5 => "Excellent, highly recommended!",
                    4 => "Very good service.",
                    3 => "Fine, but it started late.",
                    2 => "Not what I expected.",
                    _ => "Worst service ever!!! Better prices at my shop, call me.",
                }
                .to_owned(),
            )),
            provider_response: Set(
                responded.map(|_| "Thank you for the feedback; we are working on it.".to_owned())
            ),
            responded_at: Set(responded),
            moderation_status: Set(moderation),
            moderated_by: Set(moderated.map(|m| m.0)),
            moderated_at: Set(moderated.map(|m| m.1)),
            created_at: Set(reviewed_at),
            updated_at: Set(responded.or(moderated.map(|m| m.1)).unwrap_or(reviewed_at)),
        });
    }
    for (i, row) in d.provider_settings.iter_mut().enumerate() {
        row.rating_count = Set(ratings[i].0);
        row.rating_total = Set(ratings[i].1);
    }
    d.promotions.push(promotion::ActiveModel {
        id: Set(promotion_id),
        organization_id: org(),
        code: Set(Some("WELCOME10".to_owned())),
        name: Set("Welcome discount".to_owned()),
        description: Set(Some("10% off any service.".to_owned())),
        discount_type: Set(DiscountType::Percentage),
        discount_value: Set(PROMOTION_BP),
        scope: Set(PromotionScope::All),
        service_id: Set(None),
        provider_id: Set(None),
        category_id: Set(None),
        niche_id: Set(None),
        valid_from: Set(valid_from),
        valid_until: Set(Some(valid_until)),
        max_redemptions: Set(Some(1000)),
        max_redemptions_per_client: Set(None),
        redemptions_count: Set(redemptions),
        min_order_cents: Set(None),
        is_active: Set(true),
        created_at: Set(setup_at),
        updated_at: Set(setup_at),
    });

    // Withdrawals: Ana's was paid out two days ago, Bruno's waits. Each debits the
    // available money when requested and never more than there was.
    let withdrawals = [
        (
            ANA,
            day_start - Duration::days(2),
            WithdrawalStatus::Paid,
            PayoutMethod::Pix,
        ),
        (
            BRUNO,
            day_start - Duration::hours(6),
            WithdrawalStatus::Requested,
            PayoutMethod::BankTransfer,
        ),
    ];
    for (provider, requested_at, status, method) in withdrawals {
        let available: i64 = ledger
            .iter()
            .filter(|e| {
                e.provider == provider
                    && e.bucket == BalanceBucket::Available
                    && e.at < requested_at
            })
            .map(|e| e.amount)
            .sum();
        let amount = available * 4 / 10 / 100 * 100;
        if amount < MINIMUM_WITHDRAWAL_CENTS {
            continue;
        }
        let id = demo_id(&format!("withdrawal/{}", PROVIDERS[provider].key));
        let processed = (status == WithdrawalStatus::Paid)
            .then(|| (people.admin, requested_at + Duration::hours(4)));
        d.withdrawals.push(payment_withdrawal::ActiveModel {
            id: Set(id),
            organization_id: org(),
            provider_id: Set(people.providers[provider]),
            amount_cents: Set(amount),
            currency: Set(DEMO_CURRENCY.to_owned()),
            status: Set(status),
            payout_method: Set(method),
            processed_at: Set(processed.map(|p| p.1)),
            processed_by: Set(processed.map(|p| p.0)),
            failure_reason: Set(None),
            external_ref: Set(processed.map(|_| format!("demo-payout-{}", PROVIDERS[provider].key))),
            created_at: Set(requested_at),
            updated_at: Set(processed.map(|p| p.1).unwrap_or(requested_at)),
        });
        ledger.push(LedgerEntry {
            provider,
            kind: TransactionKind::Withdrawal,
            bucket: BalanceBucket::Available,
            amount: -amount,
            appointment: None,
            withdrawal: Some(id),
            at: requested_at,
            description: "Withdrawal",
        });
    }
    let mut balances = [(0i64, 0i64); 4];
    for (n, e) in ledger.iter().enumerate() {
        match e.bucket {
            BalanceBucket::Available => balances[e.provider].0 += e.amount,
            BalanceBucket::Pending => balances[e.provider].1 += e.amount,
        }
        // One entry per kind and event: the appointment or withdrawal it belongs to.
        let event = e.appointment.or(e.withdrawal).unwrap_or_default();
        d.transactions.push(provider_transaction::ActiveModel {
            id: Set(demo_id(&format!("ledger/{n}/{event}/{}", e.kind))),
            organization_id: org(),
            provider_id: Set(people.providers[e.provider]),
            kind: Set(e.kind),
            bucket: Set(e.bucket),
            amount_cents: Set(e.amount),
            currency: Set(DEMO_CURRENCY.to_owned()),
            appointment_id: Set(e.appointment),
            withdrawal_id: Set(e.withdrawal),
            external_ref: Set(Some(format!("demo:{event}"))),
            description: Set(Some(e.description.to_owned())),
            created_at: Set(e.at),
        });
    }
    for (i, p) in PROVIDERS.iter().enumerate() {
        let (available, pending) = balances[i];
        if available < 0 || pending < 0 {
            return Err(StorageError::Validation {
                field: "provider_balances",
                message: format!("the demo ledger of {} went negative", p.key),
            });
        }
        d.balances.push(provider_balance::ActiveModel {
            id: Set(demo_id(&format!("balance/{}", p.key))),
            organization_id: org(),
            provider_id: Set(people.providers[i]),
            available_cents: Set(available),
            pending_cents: Set(pending),
            currency: Set(DEMO_CURRENCY.to_owned()),
            created_at: Set(setup_at),
            updated_at: Set(day_start),
        });
    }

    // Support, onboarding, notifications, platform.
    let disputed = appts
        .iter()
        .find(|a| a.status == AppointmentStatus::Canceled && a.date < today)
        .expect("the past weeks hold canceled appointments");
    let ticket_id = demo_id("support-ticket/refund-question");
    let opened_at = day_start - Duration::days(1);
    d.support_tickets.push(support_ticket::ActiveModel {
        id: Set(ticket_id),
        organization_id: org(),
        requester_id: Set(people.clients[disputed.client]),
        assignee_id: Set(Some(people.support)),
        appointment_id: Set(Some(disputed.id)),
        subject: Set("Was I charged for a canceled appointment?".to_owned()),
        status: Set(TicketStatus::Pending),
        priority: Set(TicketPriority::Normal),
        category: Set(Some("billing".to_owned())),
        closed_at: Set(None),
        created_at: Set(opened_at),
        updated_at: Set(opened_at + Duration::hours(3)),
    });
    let messages = [
        (
            people.clients[disputed.client],
            "My appointment was canceled but I think my card was charged. Can you check?",
            false,
        ),
        (
            people.support,
            "Checked the payment: nothing was captured for this appointment.",
            true,
        ),
        (
            people.support,
            "Hello! No charge was made for the canceled appointment; a pending authorisation may show for a few days.",
            false,
        ),
    ];
    for (n, (author, body, internal)) in messages.into_iter().enumerate() {
        let at = opened_at + Duration::hours(n as i64 + 1);
        d.support_messages.push(support_message::ActiveModel {
            id: Set(demo_id(&format!("support-message/refund-question/{n}"))),
            organization_id: org(),
            ticket_id: Set(ticket_id),
            author_id: Set(Some(author)),
            body: Set(body.to_owned()),
            is_internal: Set(internal),
            created_at: Set(at),
            updated_at: Set(at),
        });
    }

    let step_id = |key: &str| demo_id(&format!("onboarding-step/{key}"));
    for (sort, (key, role, title, description)) in ONBOARDING_STEPS.iter().enumerate() {
        d.onboarding_steps.push(onboarding_step::ActiveModel {
            id: Set(step_id(key)),
            organization_id: org(),
            key: Set((*key).to_owned()),
            title: Set((*title).to_owned()),
            description: Set(Some((*description).to_owned())),
            role: Set(*role),
            sort_order: Set(sort as i32),
            is_required: Set(true),
            is_active: Set(true),
            created_at: Set(setup_at),
            updated_at: Set(setup_at),
        });
    }
    let mut progress = |user_id: Uuid, key: &str, status: OnboardingStatus| {
        let done = (status == OnboardingStatus::Completed).then(|| setup_at + Duration::days(1));
        d.onboarding_progress
            .push(user_onboarding_progress::ActiveModel {
                id: Set(demo_id(&format!("onboarding/{user_id}/{key}"))),
                organization_id: org(),
                user_id: Set(user_id),
                step_id: Set(step_id(key)),
                status: Set(status),
                completed_at: Set(done),
                created_at: Set(setup_at),
                updated_at: Set(done.unwrap_or(setup_at)),
            });
    };
    for (i, provider_id) in people.providers.iter().enumerate() {
        for (key, role, _, _) in ONBOARDING_STEPS {
            if role != UserRole::Provider {
                continue;
            }
            let status = if i == DIEGO && key == "provider.payouts" {
                OnboardingStatus::Pending
            } else {
                OnboardingStatus::Completed
            };
            progress(*provider_id, key, status);
        }
    }
    for (i, client_id) in people.clients.iter().take(6).enumerate() {
        let profile = if i == 5 {
            OnboardingStatus::Skipped
        } else {
            OnboardingStatus::Completed
        };
        progress(*client_id, "client.profile", profile);
        let booked = if appts.iter().any(|a| a.client == i) {
            OnboardingStatus::Completed
        } else {
            OnboardingStatus::Pending
        };
        progress(*client_id, "client.first-booking", booked);
    }

    let upcoming = appts
        .iter()
        .find(|a| a.status == AppointmentStatus::Confirmed && a.date > today);
    let reviewed = appts
        .iter()
        .find(|a| has_review(&d.reviews, a.id))
        .map(|a| (a.provider, a.id));
    let paid = appts
        .iter()
        .rev()
        .find(|a| a.status == AppointmentStatus::Completed)
        .map(|a| (a.provider, a.id));
    // (recipient, kind, title, body, appointment, read)
    let mut notes: Vec<Note> = vec![(
        people.admin,
        NotificationKind::System,
        "Welcome to the Agenda demo",
        format!("Every demo user signs in with the password {DEMO_PASSWORD:?}."),
        None,
        false,
    )];
    if let Some(a) = upcoming {
        notes.push((
            people.clients[a.client],
            NotificationKind::AppointmentConfirmed,
            "Appointment confirmed",
            format!("{} confirmed your appointment.", PROVIDERS[a.provider].name),
            Some(a.id),
            true,
        ));
        notes.push((
            people.clients[a.client],
            NotificationKind::AppointmentReminder,
            "Appointment coming up",
            format!("You see {} soon.", PROVIDERS[a.provider].name),
            Some(a.id),
            false,
        ));
    }
    notes.push((
        people.clients[disputed.client],
        NotificationKind::AppointmentCanceled,
        "Appointment canceled",
        "Your appointment was canceled.".to_owned(),
        Some(disputed.id),
        true,
    ));
    notes.push((
        people.clients[disputed.client],
        NotificationKind::SupportReply,
        "Support replied",
        "Support answered your ticket.".to_owned(),
        None,
        false,
    ));
    if let Some((provider, id)) = reviewed {
        notes.push((
            people.providers[provider],
            NotificationKind::ReviewReceived,
            "New review",
            "A client reviewed an appointment.".to_owned(),
            Some(id),
            true,
        ));
    }
    if let Some((provider, id)) = paid {
        notes.push((
            people.providers[provider],
            NotificationKind::PaymentReceived,
            "Payment received",
            "A payment was credited to your balance.".to_owned(),
            Some(id),
            false,
        ));
    }
    for (n, (user_id, kind, title, body, appointment_id, read)) in notes.into_iter().enumerate() {
        let at = day_start - Duration::hours(12 - n as i64);
        let read_at = read.then(|| at + Duration::minutes(20));
        d.notifications.push(notification::ActiveModel {
            id: Set(demo_id(&format!("notification/{n}"))),
            organization_id: org(),
            user_id: Set(user_id),
            kind: Set(kind),
            title: Set(title.to_owned()),
            body: Set(body),
            appointment_id: Set(appointment_id),
            is_read: Set(read),
            read_at: Set(read_at),
            created_at: Set(at),
            updated_at: Set(read_at.unwrap_or(at)),
        });
    }

    for (key, value, description) in [
        (
            "booking.cancellation_notice_hours",
            serde_json::json!(24),
            "Cancellations later than this are charged.",
        ),
        (
            "notifications.reminder_hours_before",
            serde_json::json!(24),
            "When appointment reminders are sent.",
        ),
    ] {
        d.system_settings.push(system_setting::ActiveModel {
            id: Set(demo_id(&format!("system-setting/{key}"))),
            organization_id: org(),
            key: Set(key.to_owned()),
            value: Set(value),
            description: Set(Some(description.to_owned())),
            updated_by: Set(Some(people.admin)),
            created_at: Set(setup_at),
            updated_at: Set(setup_at),
        });
    }
    d.audit_log.push(audit_log::ActiveModel {
        id: Set(demo_id("audit/seed")),
        organization_id: Set(Some(DEMO_ORGANIZATION_ID)),
        actor_id: Set(None),
        action: Set("seed.demo".to_owned()),
        entity_type: Set("organizations".to_owned()),
        entity_id: Set(Some(DEMO_ORGANIZATION_ID)),
        details: Set(serde_json::json!({ "anchor_date": today.to_string() })),
        ip_address: Set(None),
        request_id: Set(None),
        created_at: Set(setup_at),
    });
    Ok(d)
}

fn has_review(reviews: &[review::ActiveModel], appointment: Uuid) -> bool {
    reviews
        .iter()
        .any(|r| matches!(&r.appointment_id, sea_orm::ActiveValue::Set(id) if *id == appointment))
}

/// One status change of an appointment before it becomes a history row.
struct Transition {
    from: Option<AppointmentStatus>,
    to: AppointmentStatus,
    by: Uuid,
    at: DateTime<Utc>,
    reason: Option<&'static str>,
}

/// A notification: recipient, kind, title, body, appointment, read.
type Note = (
    Uuid,
    NotificationKind,
    &'static str,
    String,
    Option<Uuid>,
    bool,
);

/// A ledger line before it becomes a row.
struct LedgerEntry {
    provider: usize,
    kind: TransactionKind,
    bucket: BalanceBucket,
    amount: i64,
    appointment: Option<Uuid>,
    withdrawal: Option<Uuid>,
    at: DateTime<Utc>,
    description: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_uuidv7_values() {
        assert_eq!(
            DEMO_ORGANIZATION_ID.to_string(),
            "019b76da-a800-74af-baf6-2796117b613c",
            "the documented id"
        );
        let id = demo_id("user/admin");
        assert_eq!(id, demo_id("user/admin"));
        assert_ne!(id, demo_id("user/support"));
        assert_eq!(id.get_version_num(), 7);
        let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
        assert_eq!(secs * 1000 + u64::from(nanos) / 1_000_000, DEMO_ID_EPOCH_MS);
    }

    #[test]
    fn local_times_are_sao_paulo_times() {
        let date = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        assert_eq!(
            local(date, minutes(9, 0)).to_rfc3339(),
            "2026-03-02T12:00:00+00:00"
        );
    }

    #[test]
    fn every_status_on_every_day_of_the_week() {
        use sea_orm::Iterable;
        let monday = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        for offset in 0..7 {
            let data = build(monday + Duration::days(offset), "$argon2id$test").unwrap();
            let statuses: std::collections::HashSet<_> = data
                .appointments
                .iter()
                .map(|a| a.status.clone().unwrap())
                .collect();
            for status in AppointmentStatus::iter() {
                assert!(
                    statuses.contains(&status),
                    "{status} missing, offset {offset}"
                );
            }
        }
    }
}
