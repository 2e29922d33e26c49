//! Analytics and provider search. Every figure is checked against exact numbers
//! worked out by hand for a small data set (with daylight-saving edge cases), and
//! against an independent computation in Rust over the loaded rows of the demo seed.
//! Statements are counted through a wrapper around the connection.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use agenda_entity::enums::{AppointmentStatus, ModerationStatus, PaymentStatus, UserRole};
use agenda_entity::{
    appointment, category, niche, provider_service, provider_settings, review, service,
    service_template, user,
};
use agenda_storage::repo::analytics::{AnalyticsRepo, DateRange, ProviderDashboard};
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::repo::resource::{MAX_PAGE_SIZE, Repo};
use agenda_storage::repo::search::{ProviderQuery, ProviderSearch};
use agenda_storage::repo::users::UserRepo;
use agenda_storage::{StorageError, TenantScope, seed};
use agenda_testkit::both_engines;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, ExecResult, QueryFilter, QueryResult, Set, Statement,
};
use serde_json::json;
use uuid::Uuid;

// ---------------------------------------------------------------------------------
// Counting statements

/// A connection that counts the statements sent through it.
struct Counting<'a> {
    inner: &'a DatabaseConnection,
    statements: AtomicUsize,
}

impl<'a> Counting<'a> {
    fn new(inner: &'a DatabaseConnection) -> Self {
        Counting {
            inner,
            statements: AtomicUsize::new(0),
        }
    }

    fn take(&self) -> usize {
        self.statements.swap(0, Ordering::SeqCst)
    }

    fn bump(&self) {
        self.statements.fetch_add(1, Ordering::SeqCst);
    }
}

#[sea_orm::prelude::async_trait::async_trait]
impl ConnectionTrait for Counting<'_> {
    fn get_database_backend(&self) -> DbBackend {
        self.inner.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.bump();
        self.inner.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.bump();
        self.inner.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.bump();
        self.inner.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.bump();
        self.inner.query_all_raw(stmt).await
    }
}

// ---------------------------------------------------------------------------------
// Building data

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// The instant of a local wall time (unambiguous ones only).
fn at(zone: &str, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    let zone: Tz = zone.parse().unwrap();
    zone.with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

async fn organization(db: &impl ConnectionTrait, zone: &str, currency: &str) -> TenantScope {
    use agenda_entity::organization::CreateOrganization;
    let org = OrganizationRepo::create(
        db,
        CreateOrganization {
            slug: format!("org-{}", fastrand::u32(..)),
            name: "Analytics Org".into(),
            time_zone: zone.into(),
            currency: currency.into(),
            locale: None,
        },
    )
    .await
    .unwrap();
    TenantScope::new(org.id)
}

async fn person(db: &impl ConnectionTrait, scope: TenantScope, name: &str, role: UserRole) -> Uuid {
    use agenda_entity::user::CreateUser;
    UserRepo::create(
        db,
        scope,
        CreateUser {
            email: format!("{name}-{}@example.com", fastrand::u32(..)),
            password: "correct horse battery".into(),
            full_name: name.into(),
            phone: None,
            role,
            tax_id: None,
        },
        "$argon2id$test".into(),
    )
    .await
    .unwrap()
    .id
}

async fn set_created_at(db: &impl ConnectionTrait, id: Uuid, when: DateTime<Utc>) {
    user::Entity::update_many()
        .col_expr(user::Column::CreatedAt, Expr::value(when))
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await
        .unwrap();
}

/// A provider user with settings. `rating` is `(count, total)` of approved reviews.
async fn provider(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    business: &str,
    settings: serde_json::Value,
    rating: (i32, i64),
) -> Uuid {
    let id = person(db, scope, business, UserRole::Provider).await;
    let mut input = json!({"business_name": business, "accepted_payment_methods": ["pix"]});
    for (k, v) in settings.as_object().unwrap() {
        input[k] = v.clone();
    }
    Repo::<provider_settings::Entity>::create(
        db,
        scope,
        serde_json::from_value(input).unwrap(),
        |row| {
            row.provider_id = Set(id);
            row.rating_count = Set(rating.0);
            row.rating_total = Set(rating.1);
        },
    )
    .await
    .unwrap();
    id
}

async fn niche(db: &impl ConnectionTrait, scope: TenantScope, slug: &str) -> Uuid {
    Repo::<niche::Entity>::create(
        db,
        scope,
        serde_json::from_value(json!({"name": slug, "slug": slug})).unwrap(),
        |_| {},
    )
    .await
    .unwrap()
    .id
}

async fn category(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    niche: Uuid,
    parent: Option<Uuid>,
    slug: &str,
) -> Uuid {
    Repo::<category::Entity>::create(
        db,
        scope,
        serde_json::from_value(
            json!({"niche_id": niche, "parent_id": parent, "name": slug, "slug": slug}),
        )
        .unwrap(),
        |_| {},
    )
    .await
    .unwrap()
    .id
}

async fn template(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    category: Uuid,
    name: &str,
) -> Uuid {
    Repo::<service_template::Entity>::create(
        db,
        scope,
        serde_json::from_value(
            json!({"category_id": category, "name": name, "default_duration_minutes": 30}),
        )
        .unwrap(),
        |_| {},
    )
    .await
    .unwrap()
    .id
}

async fn own_service(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    provider: Uuid,
    name: &str,
    price: i64,
    category: Option<Uuid>,
    active: bool,
) -> Uuid {
    Repo::<service::Entity>::create(
        db,
        scope,
        serde_json::from_value(json!({
            "name": name, "duration_minutes": 30, "price_cents": price,
            "category_id": category, "is_active": active
        }))
        .unwrap(),
        |row| row.provider_id = Set(provider),
    )
    .await
    .unwrap()
    .id
}

async fn offering(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    provider: Uuid,
    template: Uuid,
    price: i64,
    active: bool,
) -> Uuid {
    Repo::<provider_service::Entity>::create(
        db,
        scope,
        serde_json::from_value(json!({
            "template_id": template, "price_cents": price, "execution_minutes": 30,
            "is_active": active
        }))
        .unwrap(),
        |row| row.provider_id = Set(provider),
    )
    .await
    .unwrap()
    .id
}

#[derive(Clone, Copy)]
enum What {
    Service(Uuid),
    ProviderService(Uuid),
}

#[allow(clippy::too_many_arguments)]
async fn book(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    provider: Uuid,
    client: Uuid,
    what: What,
    start: DateTime<Utc>,
    status: AppointmentStatus,
    (price, discount, currency): (i64, i64, &str),
) -> Uuid {
    let (service_id, provider_service_id) = match what {
        What::Service(id) => (Some(id), None),
        What::ProviderService(id) => (None, Some(id)),
    };
    appointment::ActiveModel {
        organization_id: Set(scope.organization_id()),
        client_id: Set(client),
        provider_id: Set(provider),
        service_id: Set(service_id),
        provider_service_id: Set(provider_service_id),
        promotion_id: Set(None),
        address_id: Set(None),
        start_at: Set(start),
        end_at: Set(start + Duration::minutes(30)),
        occupied_until: Set(start + Duration::minutes(30)),
        status: Set(status),
        price_cents: Set(price),
        discount_cents: Set(discount),
        currency: Set(currency.into()),
        payment_method: Set(None),
        payment_status: Set(PaymentStatus::Unpaid),
        notes: Set(None),
        provider_notes: Set(None),
        cancellation_reason: Set(None),
        canceled_at: Set(None),
        canceled_by: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
    .id
}

// ---------------------------------------------------------------------------------
// The hand-checked data set

const NY: &str = "America/New_York";
const BERLIN: &str = "Europe/Berlin";

/// An organization in America/New_York (USD) with provider `p` (no zone of its own)
/// and provider `q` (Europe/Berlin), and a second organization with look-alike data
/// at the same instants that must never be counted.
struct Clinic {
    scope: TenantScope,
    other: TenantScope,
    p: Uuid,
    q: Uuid,
    other_provider: Uuid,
    cut: Uuid,
    color: Uuid,
}

use AppointmentStatus::{Canceled, Completed, Confirmed, NoShow, Pending};

impl Clinic {
    async fn new(db: &impl ConnectionTrait) -> Clinic {
        let scope = organization(db, NY, "USD").await;
        let other = organization(db, NY, "USD").await;
        let p = provider(db, scope, "Studio P", json!({}), (2, 9)).await;
        let q = provider(db, scope, "Studio Q", json!({"time_zone": BERLIN}), (1, 3)).await;
        let inactive_provider = provider(db, scope, "Gone", json!({}), (0, 0)).await;
        user::Entity::update_many()
            .col_expr(user::Column::IsActive, Expr::value(false))
            .filter(user::Column::Id.eq(inactive_provider))
            .exec(db)
            .await
            .unwrap();

        let beauty = niche(db, scope, "beauty").await;
        let hair = category(db, scope, beauty, None, "hair").await;
        let color_template = template(db, scope, hair, "Color").await;
        let cut = own_service(db, scope, p, "Cut", 5000, Some(hair), true).await;
        let color = offering(db, scope, p, color_template, 8000, true).await;
        let shave = own_service(db, scope, q, "Shave", 3000, Some(hair), true).await;

        // Clients: c1 created on the last local evening of March (new in the period),
        // c2 on the last evening of January (before it), c3 on the last local minute
        // of the period, c4 just after it, c5 inactive (and older).
        let c1 = person(db, scope, "c1", UserRole::Client).await;
        let c2 = person(db, scope, "c2", UserRole::Client).await;
        let c3 = person(db, scope, "c3", UserRole::Client).await;
        let c4 = person(db, scope, "c4", UserRole::Client).await;
        let c5 = person(db, scope, "c5", UserRole::Client).await;
        set_created_at(db, c1, at(NY, 2026, 3, 31, 23, 30)).await;
        set_created_at(db, c2, at(NY, 2026, 1, 31, 23, 30)).await;
        set_created_at(db, c3, at(NY, 2026, 4, 15, 23, 59)).await;
        set_created_at(db, c4, at(NY, 2026, 4, 16, 0, 1)).await;
        set_created_at(db, c5, at(NY, 2025, 12, 1, 12, 0)).await;
        user::Entity::update_many()
            .col_expr(user::Column::IsActive, Expr::value(false))
            .filter(user::Column::Id.eq(c5))
            .exec(db)
            .await
            .unwrap();

        let usd = |price, discount| (price, discount, "USD");
        let s = What::Service(cut);
        let v = What::ProviderService(color);
        for (client, what, start, status, money) in [
            // 23:30 EDT on 31 March is 03:30 UTC on 1 April: March.
            (
                c1,
                s,
                at(NY, 2026, 3, 31, 23, 30),
                Completed,
                usd(5000, 500),
            ),
            (c1, v, at(NY, 2026, 4, 1, 0, 30), Completed, usd(8000, 0)),
            // 23:00 EST on 28 February is 04:00 UTC on 1 March: February.
            (c2, s, at(NY, 2026, 2, 28, 23, 0), Completed, usd(5000, 0)),
            // 8 March 2026: clocks jump from 02:00 EST to 03:00 EDT.
            (c2, v, at(NY, 2026, 3, 8, 1, 30), Completed, usd(8000, 0)),
            (c1, s, at(NY, 2026, 3, 8, 3, 30), Confirmed, usd(5000, 0)),
            (c1, s, at(NY, 2026, 3, 15, 10, 0), Canceled, usd(5000, 0)),
            (c2, s, at(NY, 2026, 3, 16, 10, 0), NoShow, usd(5000, 0)),
            (c2, v, at(NY, 2026, 4, 2, 9, 0), Pending, usd(8000, 0)),
            // Completed, but priced in another currency: counted, no revenue.
            (
                c1,
                s,
                at(NY, 2026, 3, 20, 14, 0),
                Completed,
                (5000, 0, "EUR"),
            ),
            // Outside the period (1 February .. 15 April), inside April for the trend.
            (c1, s, at(NY, 2026, 1, 31, 23, 30), Completed, usd(5000, 0)),
            (c2, s, at(NY, 2026, 4, 16, 0, 30), Completed, usd(5000, 0)),
        ] {
            book(db, scope, p, client, what, start, status, money).await;
        }
        let shave = What::Service(shave);
        // 22:30 UTC on 31 March: 18:30 in New York (March), 00:30 on 1 April in Berlin.
        let q_late = Utc.with_ymd_and_hms(2026, 3, 31, 22, 30, 0).unwrap();
        book(db, scope, q, c2, shave, q_late, Completed, usd(3000, 0)).await;
        book(
            db,
            scope,
            q,
            c1,
            shave,
            at(BERLIN, 2026, 3, 10, 12, 0),
            Completed,
            usd(3000, 0),
        )
        .await;

        // The other organization: the same instants, bigger amounts.
        let other_provider = provider(db, other, "Studio P", json!({}), (4, 20)).await;
        let other_client = person(db, other, "x", UserRole::Client).await;
        set_created_at(db, other_client, at(NY, 2026, 3, 2, 12, 0)).await;
        let other_cut = own_service(db, other, other_provider, "Cut", 90000, None, true).await;
        for start in [
            at(NY, 2026, 3, 31, 23, 30),
            at(NY, 2026, 3, 8, 1, 30),
            at(NY, 2026, 4, 2, 9, 0),
        ] {
            book(
                db,
                other,
                other_provider,
                other_client,
                What::Service(other_cut),
                start,
                Completed,
                usd(90000, 0),
            )
            .await;
        }
        Clinic {
            scope,
            other,
            p,
            q,
            other_provider,
            cut,
            color,
        }
    }
}

fn period() -> DateRange {
    DateRange::new(date(2026, 2, 1), date(2026, 4, 15))
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 10, 12, 0, 0).unwrap()
}

fn months(d: &ProviderDashboard) -> Vec<(&str, i64, i64)> {
    d.revenue_by_month
        .iter()
        .map(|m| (m.month.as_str(), m.completed, m.revenue_cents))
        .collect()
}

fn nonzero_hours(hours: &[agenda_storage::repo::analytics::BusyHour]) -> Vec<(u32, i64)> {
    hours
        .iter()
        .filter(|h| h.appointments > 0)
        .map(|h| (h.hour, h.appointments))
        .collect()
}

both_engines! {
    async fn provider_dashboard_in_a_daylight_saving_zone(t: TestDb) {
        let c = Clinic::new(t.conn()).await;
        let counting = Counting::new(t.conn());
        let d = AnalyticsRepo::provider_dashboard(&counting, c.scope, c.p, period(), now())
            .await
            .unwrap();
        assert_eq!(counting.take(), 5, "five statements per dashboard");

        assert_eq!(d.time_zone, NY);
        assert_eq!(d.currency, "USD");
        assert_eq!(d.period.start_at, Utc.with_ymd_and_hms(2026, 2, 1, 5, 0, 0).unwrap());
        assert_eq!(d.period.end_at, Utc.with_ymd_and_hms(2026, 4, 16, 4, 0, 0).unwrap(), "EDT by then");
        let s = &d.by_status;
        assert_eq!(
            (s.pending, s.confirmed, s.in_progress, s.completed, s.canceled, s.no_show, s.total),
            (1, 1, 0, 5, 1, 1, 9)
        );
        // The 23:30 appointment on 31 March counts for March, the 23:00 one on
        // 28 February for February; the EUR one is completed but earns no USD.
        assert_eq!(months(&d), vec![("2026-02", 1, 5000), ("2026-03", 3, 12500), ("2026-04", 1, 8000)]);
        assert_eq!(d.revenue_by_month[2].from, date(2026, 4, 1));
        assert_eq!(d.revenue_by_month[2].to, date(2026, 4, 15), "clipped to the period");
        assert_eq!(d.revenue_cents, 25500);

        // Active appointments by local hour and weekday, across the March change.
        assert_eq!(nonzero_hours(&d.busy_hours), vec![(0, 1), (1, 1), (3, 1), (9, 1), (14, 1), (23, 2)]);
        assert_eq!(d.busy_hours.len(), 24);
        let weekdays: Vec<i64> = d.busy_weekdays.iter().map(|w| w.appointments).collect();
        // Tue 31 Mar, Wed 1 Apr, Thu 2 Apr, Fri 20 Mar, Sat 28 Feb, Sun 8 Mar (×2).
        assert_eq!(weekdays, vec![0, 1, 1, 1, 1, 1, 2]);

        // Cut: 3 completed (4500 + 5000 USD + one in EUR); Color: 2 completed (16000).
        let top: Vec<_> = d.top_services.iter()
            .map(|s| (s.service_id, s.provider_service_id, s.name.as_str(), s.completed, s.revenue_cents))
            .collect();
        assert_eq!(top, vec![
            (Some(c.cut), None, "Cut", 3, 9500),
            (None, Some(c.color), "Color", 2, 16000),
        ]);

        // April (whole month: 1 Apr 00:30, 2 Apr pending, 16 Apr) against March
        // (31 Mar 23:30, 8 Mar ×2, 20 Mar; canceled and no-show left out).
        assert_eq!((d.trend.current.month.as_str(), d.trend.previous.month.as_str()), ("2026-04", "2026-03"));
        assert_eq!((d.trend.current.appointments, d.trend.current.completed, d.trend.current.revenue_cents), (3, 2, 13000));
        assert_eq!((d.trend.previous.appointments, d.trend.previous.completed, d.trend.previous.revenue_cents), (4, 3, 12500));
        assert_eq!(d.trend.appointments_change_bp, Some(-2500));
        assert_eq!(d.trend.revenue_change_bp, Some(400));

        assert_eq!((d.rating.count, d.rating.total, d.rating.average), (2, 9, Some(4.5)));
        serde_json::to_value(&d).unwrap();

        // Provider q has its own zone: 22:30 UTC on 31 March is April in Berlin.
        let dq = AnalyticsRepo::provider_dashboard(t.conn(), c.scope, c.q, period(), now()).await.unwrap();
        assert_eq!(dq.time_zone, BERLIN);
        assert_eq!(months(&dq), vec![("2026-02", 0, 0), ("2026-03", 1, 3000), ("2026-04", 1, 3000)]);
        assert_eq!(nonzero_hours(&dq.busy_hours), vec![(0, 1), (12, 1)]);

        // Another organization's provider is not found; its own figures are its own.
        let err = AnalyticsRepo::provider_dashboard(t.conn(), c.other, c.p, period(), now()).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");
        let o = AnalyticsRepo::provider_dashboard(t.conn(), c.other, c.other_provider, period(), now()).await.unwrap();
        assert_eq!((o.by_status.total, o.revenue_cents), (3, 270000));

        // Bad periods are refused before any statement.
        let backwards = DateRange::new(date(2026, 4, 1), date(2026, 3, 1));
        let err = AnalyticsRepo::provider_dashboard(&counting, c.scope, c.p, backwards, now()).await.unwrap_err();
        assert!(matches!(err, StorageError::Validation { field: "period", .. }));
        assert_eq!(counting.take(), 0);
    }

    async fn organization_summary_counts_only_the_tenant(t: TestDb) {
        let c = Clinic::new(t.conn()).await;
        let counting = Counting::new(t.conn());
        let s = AnalyticsRepo::organization_summary(&counting, c.scope, period(), now()).await.unwrap();
        assert_eq!(counting.take(), 5, "five statements per summary");

        assert_eq!((s.time_zone.as_str(), s.currency.as_str()), (NY, "USD"));
        // p's nine plus q's two (both inside the period in New York time).
        assert_eq!((s.by_status.completed, s.by_status.total), (7, 11));
        assert_eq!(s.revenue_cents, 25500 + 6000);
        let m: Vec<_> = s.revenue_by_month.iter().map(|m| (m.month.as_str(), m.revenue_cents)).collect();
        assert_eq!(m, vec![("2026-02", 5000), ("2026-03", 12500 + 6000), ("2026-04", 8000)]);
        assert_eq!((s.active_providers, s.active_clients), (2, 4), "inactive users left out");
        assert_eq!(s.new_clients, 2, "c1 (31 Mar 23:30) and c3 (15 Apr 23:59), local time");
        assert_eq!((s.clients_with_appointments, s.providers_with_appointments), (2, 2));
        let top: Vec<_> = s.top_providers.iter().map(|p| (p.provider_id, p.name.as_str(), p.completed, p.revenue_cents)).collect();
        assert_eq!(top, vec![(c.p, "Studio P", 5, 25500), (c.q, "Studio Q", 2, 6000)]);
        // April: p's three plus nothing of q (q's 31 Mar 22:30 UTC is March in New York).
        assert_eq!((s.trend.current.appointments, s.trend.previous.appointments), (3, 6));
        assert_eq!(s.trend.appointments_change_bp, Some(-5000));
        assert_eq!((s.trend.current.revenue_cents, s.trend.previous.revenue_cents), (13000, 18500));
        assert_eq!(s.trend.revenue_change_bp, Some((13000 - 18500) * 10000 / 18500));
        assert_eq!((s.rating.count, s.rating.total, s.rating.average), (3, 12, Some(4.0)));

        let o = AnalyticsRepo::organization_summary(t.conn(), c.other, period(), now()).await.unwrap();
        assert_eq!((o.by_status.total, o.revenue_cents, o.new_clients, o.active_providers), (3, 270000, 1, 1));
        assert_eq!(o.top_providers.len(), 1);
    }

    async fn figures_of_the_demo_seed_match_a_computation_over_its_rows(t: TestDb) {
        let today = date(2026, 3, 8);
        seed::demo_on(&t.db, "$argon2id$test", today).await.unwrap();
        // Noise in another tenant of the same database.
        Clinic::new(t.conn()).await;
        let scope = TenantScope::new(seed::DEMO_ORGANIZATION_ID);
        let zone: Tz = seed::DEMO_TIME_ZONE.parse().unwrap();
        let rows = Rows::load(t.conn(), seed::DEMO_ORGANIZATION_ID).await;
        let period = DateRange::new(date(2026, 2, 1), date(2026, 3, 31));
        let now = Utc.with_ymd_and_hms(2026, 3, 8, 15, 0, 0).unwrap();
        let counting = Counting::new(t.conn());

        let providers: BTreeSet<Uuid> = rows.appointments.iter().map(|a| a.provider_id).collect();
        assert_eq!(providers.len(), 4);
        for provider in providers {
            let d = AnalyticsRepo::provider_dashboard(&counting, scope, provider, period, now).await.unwrap();
            assert_eq!(counting.take(), 5);
            let want = rows.expected(zone, Some(provider), period, now);
            assert_eq!(d.time_zone, seed::DEMO_TIME_ZONE);
            assert_eq!(d.currency, seed::DEMO_CURRENCY);
            want.check(&d.by_status, d.revenue_cents, &d.revenue_by_month, &d.trend);
            let hours: Vec<i64> = d.busy_hours.iter().map(|h| h.appointments).collect();
            let weekdays: Vec<i64> = d.busy_weekdays.iter().map(|w| w.appointments).collect();
            assert_eq!(hours, want.hours);
            assert_eq!(weekdays, want.weekdays);
            let top: Vec<_> = d.top_services.iter()
                .map(|s| (s.service_id.or(s.provider_service_id).unwrap(), s.name.clone(), s.completed, s.revenue_cents))
                .collect();
            assert_eq!(top, want.top_services);
            assert!(!top.is_empty());
            // The provider's rating aggregate is the approved reviews' average.
            let approved: Vec<i64> = rows.reviews.iter()
                .filter(|r| r.provider_id == provider && r.moderation_status == ModerationStatus::Approved)
                .map(|r| i64::from(r.rating))
                .collect();
            assert_eq!((d.rating.count, d.rating.total), (approved.len() as i64, approved.iter().sum()));
        }

        let s = AnalyticsRepo::organization_summary(&counting, scope, period, now).await.unwrap();
        assert_eq!(counting.take(), 5);
        let want = rows.expected(zone, None, period, now);
        want.check(&s.by_status, s.revenue_cents, &s.revenue_by_month, &s.trend);
        let top: Vec<_> = s.top_providers.iter().map(|p| (p.provider_id, p.name.clone(), p.completed, p.revenue_cents)).collect();
        assert_eq!(top, want.top_providers);
        assert_eq!(s.top_providers.len(), 4);
        assert_eq!(s.new_clients, want.new_clients);
        assert_eq!((s.active_providers, s.active_clients), (4, 12));
        assert_eq!(s.clients_with_appointments, want.clients_with_appointments);
        let approved: Vec<i64> = rows.reviews.iter()
            .filter(|r| r.moderation_status == ModerationStatus::Approved)
            .map(|r| i64::from(r.rating))
            .collect();
        assert!(!approved.is_empty());
        assert_eq!((s.rating.count, s.rating.total), (approved.len() as i64, approved.iter().sum()));
    }
}

// ---------------------------------------------------------------------------------
// The independent computation over loaded rows (fine in a test, never in the code)

struct Rows {
    appointments: Vec<appointment::Model>,
    reviews: Vec<review::Model>,
    users: Vec<user::Model>,
    names: HashMap<Uuid, String>,
    businesses: HashMap<Uuid, String>,
}

struct Expected {
    by_status: BTreeMap<&'static str, i64>,
    months: Vec<(String, i64, i64)>,
    revenue: i64,
    hours: Vec<i64>,
    weekdays: Vec<i64>,
    top_services: Vec<(Uuid, String, i64, i64)>,
    top_providers: Vec<(Uuid, String, i64, i64)>,
    trend: [(String, i64, i64, i64); 2],
    new_clients: i64,
    clients_with_appointments: i64,
}

impl Rows {
    async fn load(db: &impl ConnectionTrait, org: Uuid) -> Rows {
        let appointments = appointment::Entity::find()
            .filter(appointment::Column::OrganizationId.eq(org))
            .all(db)
            .await
            .unwrap();
        let reviews = review::Entity::find()
            .filter(review::Column::OrganizationId.eq(org))
            .all(db)
            .await
            .unwrap();
        let users = user::Entity::find()
            .filter(user::Column::OrganizationId.eq(org))
            .all(db)
            .await
            .unwrap();
        let mut names = HashMap::new();
        let templates: HashMap<Uuid, String> = service_template::Entity::find()
            .filter(service_template::Column::OrganizationId.eq(org))
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect();
        for s in service::Entity::find()
            .filter(service::Column::OrganizationId.eq(org))
            .all(db)
            .await
            .unwrap()
        {
            names.insert(s.id, s.name);
        }
        for p in provider_service::Entity::find()
            .filter(provider_service::Column::OrganizationId.eq(org))
            .all(db)
            .await
            .unwrap()
        {
            names.insert(p.id, templates[&p.template_id].clone());
        }
        let businesses = provider_settings::Entity::find()
            .filter(provider_settings::Column::OrganizationId.eq(org))
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|p| (p.provider_id, p.business_name))
            .collect();
        Rows {
            appointments,
            reviews,
            users,
            names,
            businesses,
        }
    }

    /// Every figure by looking at each row's local date and time in `zone`.
    fn expected(
        &self,
        zone: Tz,
        provider: Option<Uuid>,
        period: DateRange,
        now: DateTime<Utc>,
    ) -> Expected {
        let currency = seed::DEMO_CURRENCY;
        let local = |t: DateTime<Utc>| t.with_timezone(&zone).naive_local();
        let ours: Vec<&appointment::Model> = self
            .appointments
            .iter()
            .filter(|a| provider.is_none_or(|p| a.provider_id == p))
            .collect();
        let in_period: Vec<&appointment::Model> = ours
            .iter()
            .copied()
            .filter(|a| (period.from..=period.to).contains(&local(a.start_at).date()))
            .collect();
        let revenue_of = |a: &appointment::Model| {
            if a.status == Completed && a.currency == currency {
                a.price_cents - a.discount_cents
            } else {
                0
            }
        };
        let mut by_status = BTreeMap::new();
        let mut months: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut m = period.from.with_day(1).unwrap();
        while m <= period.to {
            months.insert(m.format("%Y-%m").to_string(), (0, 0));
            m = m.checked_add_months(chrono::Months::new(1)).unwrap();
        }
        let (mut hours, mut weekdays) = (vec![0; 24], vec![0; 7]);
        let mut services: BTreeMap<Uuid, (i64, i64)> = BTreeMap::new();
        let mut providers: BTreeMap<Uuid, (i64, i64)> = BTreeMap::new();
        let mut clients = BTreeSet::new();
        for a in &in_period {
            *by_status.entry(a.status.as_str()).or_insert(0) += 1;
            let month = months
                .get_mut(&local(a.start_at).format("%Y-%m").to_string())
                .unwrap();
            if a.status == Completed {
                month.0 += 1;
                month.1 += revenue_of(a);
                let s = services
                    .entry(a.service_id.or(a.provider_service_id).unwrap())
                    .or_default();
                s.0 += 1;
                s.1 += revenue_of(a);
                let p = providers.entry(a.provider_id).or_default();
                p.0 += 1;
                p.1 += revenue_of(a);
            }
            if a.status.is_active() {
                hours[local(a.start_at).hour() as usize] += 1;
                weekdays[local(a.start_at).weekday().number_from_monday() as usize - 1] += 1;
                clients.insert(a.client_id);
            }
        }
        let mut top_services: Vec<_> = services
            .into_iter()
            .map(|(id, (n, r))| (id, self.names[&id].clone(), n, r))
            .collect();
        top_services.sort_by_key(|(id, _, n, r)| (-n, -r, *id));
        top_services.truncate(5);
        let mut top_providers: Vec<_> = providers
            .into_iter()
            .map(|(id, (n, r))| (id, self.businesses[&id].clone(), n, r))
            .collect();
        top_providers.sort_by_key(|(id, _, n, r)| (-r, -n, *id));
        top_providers.truncate(5);

        let this_month = local(now).date().with_day(1).unwrap();
        let previous = this_month - chrono::Months::new(1);
        let trend = [previous, this_month].map(|month| {
            let label = month.format("%Y-%m").to_string();
            let rows: Vec<_> = ours
                .iter()
                .filter(|a| local(a.start_at).format("%Y-%m").to_string() == label)
                .collect();
            (
                label,
                rows.iter().filter(|a| a.status.is_active()).count() as i64,
                rows.iter().filter(|a| a.status == Completed).count() as i64,
                rows.iter().map(|a| revenue_of(a)).sum(),
            )
        });
        let new_clients = self
            .users
            .iter()
            .filter(|u| u.role == UserRole::Client)
            .filter(|u| (period.from..=period.to).contains(&local(u.created_at).date()))
            .count() as i64;
        Expected {
            revenue: in_period.iter().map(|a| revenue_of(a)).sum(),
            by_status,
            months: months.into_iter().map(|(k, (n, r))| (k, n, r)).collect(),
            hours,
            weekdays,
            top_services,
            top_providers,
            trend,
            new_clients,
            clients_with_appointments: clients.len() as i64,
        }
    }
}

impl Expected {
    fn check(
        &self,
        by_status: &agenda_storage::repo::analytics::StatusCounts,
        revenue: i64,
        months: &[agenda_storage::repo::analytics::MonthRevenue],
        trend: &agenda_storage::repo::analytics::Trend,
    ) {
        let count = |s: AppointmentStatus| self.by_status.get(s.as_str()).copied().unwrap_or(0);
        assert_eq!(
            (
                by_status.pending,
                by_status.confirmed,
                by_status.in_progress,
                by_status.completed,
                by_status.canceled,
                by_status.no_show
            ),
            (
                count(Pending),
                count(Confirmed),
                count(AppointmentStatus::InProgress),
                count(Completed),
                count(Canceled),
                count(NoShow)
            )
        );
        assert_eq!(by_status.total, self.by_status.values().sum::<i64>());
        assert!(by_status.total > 0);
        assert_eq!(revenue, self.revenue);
        let got: Vec<_> = months
            .iter()
            .map(|m| (m.month.clone(), m.completed, m.revenue_cents))
            .collect();
        assert_eq!(got, self.months);
        let figures = |f: &agenda_storage::repo::analytics::MonthFigures| {
            (
                f.month.clone(),
                f.appointments,
                f.completed,
                f.revenue_cents,
            )
        };
        assert_eq!(
            [figures(&trend.previous), figures(&trend.current)],
            self.trend
        );
        let bp = |prev: i64, cur: i64| (prev != 0).then(|| (cur - prev) * 10_000 / prev);
        assert_eq!(
            trend.appointments_change_bp,
            bp(self.trend[0].1, self.trend[1].1)
        );
        assert_eq!(
            trend.revenue_change_bp,
            bp(self.trend[0].3, self.trend[1].3)
        );
    }
}

// ---------------------------------------------------------------------------------
// Search

/// Providers built to tell every filter apart.
struct Market {
    scope: TenantScope,
    beauty: Uuid,
    wellness: Uuid,
    hair: Uuid,
    beard: Uuid,
    massage: Uuid,
    alpha: Uuid,
    bravo: Uuid,
    echo: Uuid,
    hair_co: Uuid,
    golf: Uuid,
    garden: Uuid,
    barber: Uuid,
    fillers: Vec<Uuid>,
}

impl Market {
    async fn new(db: &impl ConnectionTrait) -> Market {
        let scope = organization(db, "America/Sao_Paulo", "BRL").await;
        let beauty = niche(db, scope, "beauty").await;
        let wellness = niche(db, scope, "wellness").await;
        let hair = category(db, scope, beauty, None, "hair").await;
        let beard = category(db, scope, beauty, Some(hair), "beard").await;
        let massage = category(db, scope, wellness, None, "massage").await;
        let yoga = category(db, scope, wellness, None, "yoga").await;
        let beard_trim = template(db, scope, beard, "Beard Trim").await;
        let haircut_template = template(db, scope, hair, "Haircut").await;
        let retired = template(db, scope, hair, "Retired Style").await;
        Repo::<service_template::Entity>::update(
            db,
            scope,
            retired,
            serde_json::from_value(json!({"is_active": false})).unwrap(),
        )
        .await
        .unwrap();

        let city = |c: &str| json!({"city": c});
        let alpha = provider(db, scope, "Studio Alpha", city("Springfield"), (2, 9)).await;
        own_service(db, scope, alpha, "Haircut", 5000, Some(hair), true).await;
        offering(db, scope, alpha, beard_trim, 3000, true).await;
        own_service(db, scope, alpha, "Old Perm", 100, Some(hair), false).await;

        let bravo = provider(db, scope, "Bravo 100% Natural", city("Shelbyville"), (1, 3)).await;
        own_service(db, scope, bravo, "Massage_Deep", 8000, Some(massage), true).await;

        let charlie = provider(
            db,
            scope,
            "Charlie Haircuts",
            json!({"city": "Springfield", "is_accepting_bookings": false}),
            (1, 5),
        )
        .await;
        own_service(db, scope, charlie, "Haircut", 1000, Some(hair), true).await;

        let delta = provider(db, scope, "Delta Haircuts", city("Springfield"), (1, 5)).await;
        own_service(db, scope, delta, "Haircut", 1000, Some(hair), false).await;
        offering(db, scope, delta, retired, 1000, true).await;

        let echo = provider(db, scope, "Echo", city("springfield"), (0, 0)).await;
        own_service(db, scope, echo, "Haircut", 4500, Some(hair), true).await;
        offering(db, scope, echo, haircut_template, 4000, true).await;

        let hair_co = provider(db, scope, "Hair & Co", city("Ogdenville"), (4, 16)).await;
        own_service(db, scope, hair_co, "Coloring", 7000, None, true).await;

        let golf = provider(db, scope, "Golf 1000 Club", city("Ogdenville"), (1, 2)).await;
        own_service(db, scope, golf, "Putting Lesson", 2000, Some(yoga), true).await;

        let garden = provider(db, scope, "Garden", city("Ogdenville"), (1, 1)).await;
        own_service(db, scope, garden, "Weed Removal", 2500, Some(yoga), true).await;

        let barber = provider(db, scope, "Barber Only", city("Capital City"), (3, 14)).await;
        offering(db, scope, barber, beard_trim, 2500, true).await;

        // Fillers with tied and distinct ratings, for pagination.
        let mut fillers = Vec::new();
        for i in 0..23 {
            let rating = match i % 4 {
                0 => (0, 0),
                1 => (2, 8),
                2 => (3, 11),
                _ => (1, 4),
            };
            let f = provider(
                db,
                scope,
                &format!("Yoga Place {i:02}"),
                city("Shelbyville"),
                rating,
            )
            .await;
            own_service(db, scope, f, "Yoga Class", 1500 + i, Some(yoga), true).await;
            fillers.push(f);
        }

        // Another organization with a perfect look-alike.
        let other = organization(db, "America/Sao_Paulo", "BRL").await;
        let other_niche = niche(db, other, "beauty").await;
        let other_hair = category(db, other, other_niche, None, "hair").await;
        let twin = provider(db, other, "Studio Alpha", city("Springfield"), (5, 25)).await;
        own_service(db, other, twin, "Haircut", 10, Some(other_hair), true).await;

        Market {
            scope,
            beauty,
            wellness,
            hair,
            beard,
            massage,
            alpha,
            bravo,
            echo,
            hair_co,
            golf,
            garden,
            barber,
            fillers,
        }
    }

    async fn ids(&self, db: &impl ConnectionTrait, query: ProviderQuery) -> BTreeSet<Uuid> {
        let page = ProviderSearch::search(
            db,
            self.scope,
            &ProviderQuery {
                limit: Some(MAX_PAGE_SIZE),
                ..query
            },
        )
        .await
        .unwrap();
        assert!(page.next.is_none());
        page.items.iter().map(|h| h.provider_id).collect()
    }
}

fn set(ids: &[Uuid]) -> BTreeSet<Uuid> {
    ids.iter().copied().collect()
}

fn text(t: &str) -> ProviderQuery {
    ProviderQuery {
        text: Some(t.into()),
        ..Default::default()
    }
}

both_engines! {
    async fn search_filters_each_narrow_the_providers(t: TestDb) {
        let m = Market::new(t.conn()).await;
        let db = t.conn();
        let everyone: BTreeSet<Uuid> = [m.alpha, m.bravo, m.echo, m.hair_co, m.golf, m.garden, m.barber]
            .into_iter().chain(m.fillers.iter().copied()).collect();
        assert_eq!(m.ids(db, ProviderQuery::default()).await, everyone,
            "not accepting bookings, only inactive offerings, other tenants: never listed");

        let q = |f: fn(&Market) -> ProviderQuery| f(&m);
        assert_eq!(m.ids(db, q(|m| ProviderQuery { niche_id: Some(m.beauty), ..Default::default() })).await,
            set(&[m.alpha, m.echo, m.barber]), "Hair & Co's service has no category");
        assert_eq!(m.ids(db, q(|m| ProviderQuery { niche_id: Some(m.wellness), ..Default::default() })).await.len(), 3 + 23);
        assert_eq!(m.ids(db, q(|m| ProviderQuery { category_id: Some(m.hair), ..Default::default() })).await,
            set(&[m.alpha, m.echo, m.barber]), "a subcategory counts for its parent");
        assert_eq!(m.ids(db, q(|m| ProviderQuery { category_id: Some(m.beard), ..Default::default() })).await,
            set(&[m.alpha, m.barber]));
        assert_eq!(m.ids(db, q(|m| ProviderQuery { category_id: Some(m.massage), ..Default::default() })).await,
            set(&[m.bravo]));
        assert_eq!(m.ids(db, q(|m| ProviderQuery { category_id: Some(m.massage), niche_id: Some(m.beauty), ..Default::default() })).await,
            set(&[]));

        // Text: offering names (template names for provider services) and business names.
        assert_eq!(m.ids(db, text("  haIR ")).await, set(&[m.alpha, m.echo, m.hair_co]));
        assert_eq!(m.ids(db, text("beard")).await, set(&[m.alpha, m.barber]));
        // `%` and `_` match literally: "100%" is not "100<anything>", "e_d" not "e<any>d".
        assert_eq!(m.ids(db, text("100%")).await, set(&[m.bravo]));
        assert_eq!(m.ids(db, text("100")).await, set(&[m.bravo, m.golf]));
        assert_eq!(m.ids(db, text("e_d")).await, set(&[m.bravo]));
        assert_eq!(m.ids(db, text("eed")).await, set(&[m.garden]));
        assert_eq!(m.ids(db, text("a\\b")).await, set(&[]));

        // City: trimmed, case-insensitive, exact.
        let city = |c: &str| ProviderQuery { city: Some(c.into()), ..Default::default() };
        assert_eq!(m.ids(db, city(" SPRINGFIELD ")).await, set(&[m.alpha, m.echo]));
        assert_eq!(m.ids(db, city("Springfiel")).await, set(&[]));

        // Minimum rating: alpha 4.5, barber 4.67, hair & co 4.0, fillers 4.0 or 3.67.
        let min = |r| ProviderQuery { min_rating: Some(r), ..Default::default() };
        let fours: Vec<Uuid> = m.fillers.iter().enumerate().filter(|(i, _)| i % 4 == 1 || i % 4 == 3).map(|(_, f)| *f).collect();
        let mut want = set(&[m.alpha, m.barber, m.hair_co]);
        want.extend(fours);
        assert_eq!(m.ids(db, min(4)).await, want);
        assert_eq!(m.ids(db, min(5)).await, set(&[]));
        assert_eq!(m.ids(db, min(1)).await.len(), everyone.len() - 7, "unrated providers fail any minimum");

        // Everything at once.
        let all = ProviderQuery {
            niche_id: Some(m.beauty), category_id: Some(m.hair), text: Some("cut".into()),
            city: Some("springfield".into()), min_rating: Some(4), ..Default::default()
        };
        assert_eq!(m.ids(db, all).await, set(&[m.alpha]));

        // The services listed are the matching ones, grouped by name at the lowest price.
        let page = ProviderSearch::search(db, m.scope, &text("haircut")).await.unwrap();
        let echo = page.items.iter().find(|h| h.provider_id == m.echo).unwrap();
        assert_eq!(echo.services.len(), 1);
        assert_eq!((echo.services[0].name.as_str(), echo.services[0].min_price_cents), ("Haircut", 4000));
        assert_eq!((echo.rating.count, echo.rating.average), (0, None));
        let alpha = page.items.iter().find(|h| h.provider_id == m.alpha).unwrap();
        let names: Vec<_> = alpha.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["Haircut"], "Beard Trim does not match the text");
        assert_eq!((alpha.business_name.as_str(), alpha.city.as_deref(), alpha.rating.average), ("Studio Alpha", Some("Springfield"), Some(4.5)));
        let page = ProviderSearch::search(db, m.scope, &text("studio")).await.unwrap();
        let names: Vec<_> = page.items[0].services.iter().map(|s| (s.name.as_str(), s.min_price_cents)).collect();
        assert_eq!(names, vec![("Beard Trim", 3000), ("Haircut", 5000)], "a business-name match lists every active offering");

        // Bad input.
        for bad in [text(" a "), ProviderQuery { min_rating: Some(6), ..Default::default() },
                    ProviderQuery { min_rating: Some(0), ..Default::default() },
                    ProviderQuery { after: Some("nope".into()), ..Default::default() }] {
            let err = ProviderSearch::search(db, m.scope, &bad).await.unwrap_err();
            assert!(matches!(err, StorageError::Validation { .. }), "{err:?}");
        }
    }

    async fn search_pages_without_repeats_in_two_statements(t: TestDb) {
        let m = Market::new(t.conn()).await;
        let counting = Counting::new(t.conn());
        // The expected order: by average rating (unrated last), then id.
        let settings = provider_settings::Entity::find()
            .filter(provider_settings::Column::OrganizationId.eq(m.scope.organization_id()))
            .all(t.conn())
            .await
            .unwrap();
        let listed = m.ids(t.conn(), ProviderQuery::default()).await;
        let mut want: Vec<(i64, Uuid)> = settings.iter()
            .filter(|s| listed.contains(&s.provider_id))
            .map(|s| (if s.rating_count > 0 { s.rating_total * 10000 / i64::from(s.rating_count) } else { -1 }, s.provider_id))
            .collect();
        want.sort_by_key(|(score, id)| (-score, *id));
        let want: Vec<Uuid> = want.into_iter().map(|(_, id)| id).collect();

        let mut got = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = ProviderSearch::search(&counting, m.scope, &ProviderQuery { limit: Some(7), after: after.clone(), ..Default::default() })
                .await
                .unwrap();
            assert_eq!(counting.take(), 2, "one statement for the page, one for its services");
            assert!(page.items.len() <= 7);
            assert!(page.items.iter().all(|h| !h.services.is_empty()));
            got.extend(page.items.iter().map(|h| h.provider_id));
            pages += 1;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, want.len().div_ceil(7));
        assert_eq!(got, want, "every provider once, in rating order");
        assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), got.len());

        // An empty result takes one statement; the page size is capped.
        let none = ProviderSearch::search(&counting, m.scope, &text("no such thing")).await.unwrap();
        assert!(none.items.is_empty() && none.next.is_none());
        assert_eq!(counting.take(), 1);
        let big = ProviderSearch::search(t.conn(), m.scope, &ProviderQuery { limit: Some(10_000), ..Default::default() }).await.unwrap();
        assert_eq!(big.items.len(), want.len().min(MAX_PAGE_SIZE as usize));
        let one = ProviderSearch::search(t.conn(), m.scope, &ProviderQuery { limit: Some(0), ..Default::default() }).await.unwrap();
        assert_eq!(one.items.len(), 1);
        assert_eq!(one.items[0].provider_id, want[0]);
        assert_eq!(want[0], m.barber, "4.67 is the best average");
    }
}
