//! Analytics: a provider's dashboard and an organization's summary.
//!
//! Every figure is aggregated by the database (`COUNT`, `SUM`, `GROUP BY`); no
//! appointment row is ever loaded into memory. Each call runs a fixed number of
//! statements, whatever the period or the amount of data: **five** for
//! [`AnalyticsRepo::provider_dashboard`] and **five** for
//! [`AnalyticsRepo::organization_summary`] (see each function).
//!
//! # Local time on both engines
//!
//! Months, hours and weekdays are those of the provider's time zone (its
//! `provider_settings.time_zone`, else the organization's). SQLite has no time zone
//! database, so the zone rules are applied in Rust and passed to SQL as parameters:
//!
//! - **Months**: the UTC instants of the local month starts inside the period are
//!   computed with `chrono-tz` and the query buckets rows with
//!   `CASE WHEN start_at < $t1 THEN 0 WHEN start_at < $t2 THEN 1 … END`.
//! - **Hours and weekdays**: the UTC offset of the zone is constant between two
//!   daylight-saving transitions. The transitions inside the period are found in Rust
//!   (hourly scan, then bisection to the second), and SQL computes the local wall
//!   clock of each row as `epoch(start_at) + CASE WHEN start_at < $s1 THEN $o0 …
//!   END`, from which the local hour (`/ 3600 % 24`) and weekday
//!   (`(/ 86400 + 3) % 7 + 1`, 1 = Monday) follow by integer arithmetic. This is exact
//!   for any offset, including half- and quarter-hour zones, and the result has at
//!   most 168 groups.
//!
//! Limits: periods are at most [`MAX_PERIOD_DAYS`] days; the zone rules are those of
//! the `chrono-tz` build the server runs, not of the database server.
//!
//! # Statement text
//!
//! The statements are parameterised SQL written here (every value is a bind
//! parameter, numbered `$n` on PostgreSQL and `?n` on SQLite) and always filter on
//! `organization_id = <scope>`. The only text spliced into them are constants of this
//! module and the stored spelling of status values.

use agenda_entity::enums::AppointmentStatus;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
use serde::Serialize;
use uuid::Uuid;

use crate::error::StorageError;
use crate::tenant::TenantScope;

/// The longest period a dashboard or summary covers (two years and a day).
pub const MAX_PERIOD_DAYS: i64 = 731;

/// How many services or providers the "top" lists hold.
pub const TOP_LIMIT: i64 = 5;

/// A range of local calendar dates, both ends included (`from..=to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DateRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DateRange {
    pub fn new(from: NaiveDate, to: NaiveDate) -> Self {
        DateRange { from, to }
    }

    fn check(&self) -> Result<(), StorageError> {
        if self.to < self.from || (self.to - self.from).num_days() >= MAX_PERIOD_DAYS {
            return Err(StorageError::Validation {
                field: "period",
                message: format!(
                    "`to` must be on or after `from`, and the period at most {MAX_PERIOD_DAYS} days"
                ),
            });
        }
        Ok(())
    }
}

/// The period as it was applied: local dates and the UTC instants `[start_at, end_at)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
}

/// Appointments starting in the period, by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    pub pending: i64,
    pub confirmed: i64,
    pub in_progress: i64,
    pub completed: i64,
    pub canceled: i64,
    pub no_show: i64,
    pub total: i64,
}

impl StatusCounts {
    fn add(&mut self, status: &str, n: i64) {
        let slot = match status {
            s if s == AppointmentStatus::Pending.as_str() => &mut self.pending,
            s if s == AppointmentStatus::Confirmed.as_str() => &mut self.confirmed,
            s if s == AppointmentStatus::InProgress.as_str() => &mut self.in_progress,
            s if s == AppointmentStatus::Completed.as_str() => &mut self.completed,
            s if s == AppointmentStatus::Canceled.as_str() => &mut self.canceled,
            s if s == AppointmentStatus::NoShow.as_str() => &mut self.no_show,
            _ => return, // the CHECK constraint allows nothing else
        };
        *slot += n;
        self.total += n;
    }

    /// Appointments that occupy (or occupied) the provider's time: all but canceled
    /// and no-show.
    pub fn active(&self) -> i64 {
        self.total - self.canceled - self.no_show
    }
}

/// Completed revenue of one local calendar month, clipped to the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthRevenue {
    /// `YYYY-MM`.
    pub month: String,
    /// The local dates of the month inside the period.
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub completed: i64,
    pub revenue_cents: i64,
}

/// A service ranked by completed appointments, then revenue, then id, in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopService {
    /// Set for a provider's own service.
    pub service_id: Option<Uuid>,
    /// Set for a provider's offering of a catalogue template.
    pub provider_service_id: Option<Uuid>,
    /// The service's name, or the template's for a provider service.
    pub name: String,
    pub completed: i64,
    pub revenue_cents: i64,
}

/// A provider ranked by completed revenue, then completed appointments, in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopProvider {
    pub provider_id: Uuid,
    /// The business name, or the user's full name without provider settings.
    pub name: String,
    pub completed: i64,
    pub revenue_cents: i64,
}

/// Active appointments starting at a local hour (0..=23).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BusyHour {
    pub hour: u32,
    pub appointments: i64,
}

/// Active appointments starting on a local weekday (1 = Monday … 7 = Sunday).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BusyWeekday {
    pub weekday: u32,
    pub appointments: i64,
}

/// The figures of one whole local calendar month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthFigures {
    /// `YYYY-MM`.
    pub month: String,
    /// Active appointments (all but canceled and no-show) starting in the month.
    pub appointments: i64,
    pub completed: i64,
    pub revenue_cents: i64,
}

/// This month (the local month containing `now`) against the previous one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trend {
    pub current: MonthFigures,
    pub previous: MonthFigures,
    /// `(current − previous) × 10 000 / previous` in basis points (10 000 = +100 %),
    /// truncated toward zero; `None` when the previous month had none.
    pub appointments_change_bp: Option<i64>,
    pub revenue_change_bp: Option<i64>,
}

/// The average of approved reviews: `total / count` (1.0..=5.0), `None` without any.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rating {
    pub average: Option<f64>,
    pub count: i64,
    pub total: i64,
}

impl Rating {
    pub fn new(count: i64, total: i64) -> Rating {
        Rating {
            average: (count > 0).then(|| total as f64 / count as f64),
            count,
            total,
        }
    }
}

/// A provider's dashboard; see `docs/analytics-and-search.md` for every definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderDashboard {
    pub provider_id: Uuid,
    /// The IANA zone of every local date, month, hour and weekday below.
    pub time_zone: String,
    /// The currency of every amount below (the organization's).
    pub currency: String,
    pub period: Period,
    pub by_status: StatusCounts,
    pub revenue_cents: i64,
    pub revenue_by_month: Vec<MonthRevenue>,
    pub top_services: Vec<TopService>,
    pub busy_hours: Vec<BusyHour>,
    pub busy_weekdays: Vec<BusyWeekday>,
    pub trend: Trend,
    pub rating: Rating,
}

/// An organization's summary; see `docs/analytics-and-search.md`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrganizationSummary {
    pub time_zone: String,
    pub currency: String,
    pub period: Period,
    pub by_status: StatusCounts,
    pub revenue_cents: i64,
    pub revenue_by_month: Vec<MonthRevenue>,
    /// Users with role `provider` / `client` and `is_active`, now.
    pub active_providers: i64,
    pub active_clients: i64,
    /// Client accounts created in the period.
    pub new_clients: i64,
    /// Distinct clients and providers with an active appointment in the period.
    pub clients_with_appointments: i64,
    pub providers_with_appointments: i64,
    pub top_providers: Vec<TopProvider>,
    pub trend: Trend,
    pub rating: Rating,
}

pub struct AnalyticsRepo;

impl AnalyticsRepo {
    /// A provider's figures for the local dates of `period`, in the provider's zone.
    ///
    /// Five statements: the context (organization, provider, settings and rating), the
    /// period by month and status, the busy hours and weekdays, the top services, and
    /// the two months of the trend. A provider of another organization is "not found".
    pub async fn provider_dashboard(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        provider_id: Uuid,
        period: DateRange,
        now: DateTime<Utc>,
    ) -> Result<ProviderDashboard, StorageError> {
        period.check()?;
        let backend = db.get_database_backend();
        let mut p = Params::new(backend);
        let org = p.bind(scope.organization_id());
        let provider = p.bind(provider_id);
        let sql = format!(
            "SELECT o.time_zone, o.currency, ps.time_zone, \
                    CAST(COALESCE(ps.rating_count, 0) AS BIGINT), \
                    CAST(COALESCE(ps.rating_total, 0) AS BIGINT) \
             FROM organizations o \
             JOIN users u ON u.organization_id = o.id AND u.id = {provider} \
             LEFT JOIN provider_settings ps \
                    ON ps.organization_id = o.id AND ps.provider_id = u.id \
             WHERE o.id = {org}"
        );
        let row = db
            .query_one_raw(p.statement(sql))
            .await?
            .ok_or(StorageError::not_found("provider"))?;
        let org_zone: String = get(&row, 0)?;
        let currency: String = get(&row, 1)?;
        let provider_zone: Option<String> = get(&row, 2)?;
        let rating = Rating::new(get(&row, 3)?, get(&row, 4)?);
        let time_zone = provider_zone.unwrap_or(org_zone);
        let zone = parse_zone(&time_zone)?;

        let filter = Filter {
            scope,
            provider_id: Some(provider_id),
            currency: &currency,
        };
        let months = MonthBuckets::of_period(zone, period);
        let figures = filter.by_bucket_and_status(db, &months.bounds).await?;
        let (by_status, revenue_cents, revenue_by_month) = months.summarise(&figures);
        let (busy_hours, busy_weekdays) = filter.busy(db, zone, &months.period()).await?;
        let top_services = filter.top_services(db, &months.period()).await?;
        let trend = filter.trend(db, zone, now).await?;

        Ok(ProviderDashboard {
            provider_id,
            time_zone,
            currency: currency.clone(),
            period: months.period(),
            by_status,
            revenue_cents,
            revenue_by_month,
            top_services,
            busy_hours,
            busy_weekdays,
            trend,
            rating,
        })
    }

    /// The organization's figures for the local dates of `period`, in its zone.
    ///
    /// Five statements: the context (organization, active users, rating), the period
    /// by month and status, the people of the period, the top providers, and the two
    /// months of the trend.
    pub async fn organization_summary(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        period: DateRange,
        now: DateTime<Utc>,
    ) -> Result<OrganizationSummary, StorageError> {
        period.check()?;
        let backend = db.get_database_backend();
        let mut p = Params::new(backend);
        let org = p.bind(scope.organization_id());
        let (provider, client) = (
            p.bind(agenda_entity::enums::UserRole::Provider.as_str()),
            p.bind(agenda_entity::enums::UserRole::Client.as_str()),
        );
        let sql = format!(
            "SELECT o.time_zone, o.currency, \
               (SELECT CAST(COUNT(*) AS BIGINT) FROM users u \
                 WHERE u.organization_id = o.id AND u.role = {provider} AND u.is_active = TRUE), \
               (SELECT CAST(COUNT(*) AS BIGINT) FROM users u \
                 WHERE u.organization_id = o.id AND u.role = {client} AND u.is_active = TRUE), \
               (SELECT CAST(COALESCE(SUM(ps.rating_count), 0) AS BIGINT) \
                  FROM provider_settings ps WHERE ps.organization_id = o.id), \
               (SELECT CAST(COALESCE(SUM(ps.rating_total), 0) AS BIGINT) \
                  FROM provider_settings ps WHERE ps.organization_id = o.id) \
             FROM organizations o WHERE o.id = {org}"
        );
        let row = db
            .query_one_raw(p.statement(sql))
            .await?
            .ok_or(StorageError::not_found("organization"))?;
        let time_zone: String = get(&row, 0)?;
        let currency: String = get(&row, 1)?;
        let active_providers: i64 = get(&row, 2)?;
        let active_clients: i64 = get(&row, 3)?;
        let rating = Rating::new(get(&row, 4)?, get(&row, 5)?);
        let zone = parse_zone(&time_zone)?;

        let filter = Filter {
            scope,
            provider_id: None,
            currency: &currency,
        };
        let months = MonthBuckets::of_period(zone, period);
        let figures = filter.by_bucket_and_status(db, &months.bounds).await?;
        let (by_status, revenue_cents, revenue_by_month) = months.summarise(&figures);
        let people = filter.people(db, &months.period()).await?;
        let top_providers = filter.top_providers(db, &months.period()).await?;
        let trend = filter.trend(db, zone, now).await?;

        Ok(OrganizationSummary {
            time_zone,
            currency: currency.clone(),
            period: months.period(),
            by_status,
            revenue_cents,
            revenue_by_month,
            active_providers,
            active_clients,
            new_clients: people.new_clients,
            clients_with_appointments: people.clients,
            providers_with_appointments: people.providers,
            top_providers,
            trend,
            rating,
        })
    }
}

// ---------------------------------------------------------------------------------
// Statements

/// Bind parameters of one statement, numbered so a value can be used anywhere in the
/// text, in any order, any number of times.
pub(crate) struct Params {
    backend: DbBackend,
    values: Vec<Value>,
}

impl Params {
    pub(crate) fn new(backend: DbBackend) -> Self {
        Params {
            backend,
            values: Vec::new(),
        }
    }

    /// Adds a value; returns its placeholder (`$n` on PostgreSQL, `?n` on SQLite).
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => format!("?{}", self.values.len()),
        }
    }

    pub(crate) fn backend(&self) -> DbBackend {
        self.backend
    }

    pub(crate) fn statement(self, sql: String) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, self.values)
    }
}

/// Column `index` of a result row.
pub(crate) fn get<T: sea_orm::TryGetable>(
    row: &QueryResult,
    index: usize,
) -> Result<T, StorageError> {
    Ok(row.try_get_by_index(index)?)
}

fn parse_zone(name: &str) -> Result<Tz, StorageError> {
    name.parse().map_err(|_| {
        StorageError::Other(format!("stored time zone {name:?} is not an IANA zone").into())
    })
}

/// The stored spelling of the statuses that free the provider's time, as SQL literals
/// (`'canceled', 'no_show'`): constants, never input.
fn inactive_list() -> String {
    AppointmentStatus::INACTIVE
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which appointments a figure covers: the tenant, optionally one provider.
struct Filter<'a> {
    scope: TenantScope,
    provider_id: Option<Uuid>,
    /// Revenue sums only appointments priced in this currency (the organization's).
    currency: &'a str,
}

/// Figures of one (bucket, status) group.
struct Group {
    bucket: usize,
    status: String,
    count: i64,
    revenue_cents: i64,
}

/// The people figures of a period.
struct People {
    new_clients: i64,
    clients: i64,
    providers: i64,
}

impl Filter<'_> {
    /// `a.organization_id = … [AND a.provider_id = …]`.
    fn condition(&self, p: &mut Params) -> String {
        let mut sql = format!(
            "a.organization_id = {}",
            p.bind(self.scope.organization_id())
        );
        if let Some(provider) = self.provider_id {
            sql.push_str(&format!(" AND a.provider_id = {}", p.bind(provider)));
        }
        sql
    }

    /// `a.start_at` in `[start, end)`.
    fn in_period(p: &mut Params, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
        format!(
            "a.start_at >= {} AND a.start_at < {}",
            p.bind(start),
            p.bind(end)
        )
    }

    /// The revenue of completed rows in the organization's currency.
    fn revenue_sum(&self, p: &mut Params) -> String {
        format!(
            "CAST(COALESCE(SUM(CASE WHEN a.status = '{}' AND a.currency = {} \
                 THEN a.price_cents - a.discount_cents ELSE 0 END), 0) AS BIGINT)",
            AppointmentStatus::Completed.as_str(),
            p.bind(self.currency.to_owned())
        )
    }

    /// Count and completed revenue per (bucket, status), where `bounds` are the
    /// ascending UTC boundaries `t0 < t1 < … < tn` of the buckets `[t(i), t(i+1))`.
    /// One statement.
    async fn by_bucket_and_status(
        &self,
        db: &impl ConnectionTrait,
        bounds: &[DateTime<Utc>],
    ) -> Result<Vec<Group>, StorageError> {
        let mut p = Params::new(db.get_database_backend());
        let condition = self.condition(&mut p);
        let period = Self::in_period(&mut p, bounds[0], bounds[bounds.len() - 1]);
        let bucket = bucket_case(&mut p, "a.start_at", &bounds[1..bounds.len() - 1]);
        let revenue = self.revenue_sum(&mut p);
        let sql = format!(
            "SELECT CAST({bucket} AS BIGINT), a.status, CAST(COUNT(*) AS BIGINT), {revenue} \
             FROM appointments a \
             WHERE {condition} AND {period} \
             GROUP BY 1, a.status"
        );
        db.query_all_raw(p.statement(sql))
            .await?
            .iter()
            .map(|row| {
                Ok(Group {
                    bucket: usize::try_from(get::<i64>(row, 0)?).unwrap_or(0),
                    status: get(row, 1)?,
                    count: get(row, 2)?,
                    revenue_cents: get(row, 3)?,
                })
            })
            .collect()
    }

    /// Active appointments by local hour and local weekday. One statement, at most
    /// 7 × 24 groups.
    async fn busy(
        &self,
        db: &impl ConnectionTrait,
        zone: Tz,
        period: &Period,
    ) -> Result<(Vec<BusyHour>, Vec<BusyWeekday>), StorageError> {
        let mut p = Params::new(db.get_database_backend());
        let condition = self.condition(&mut p);
        let in_period = Self::in_period(&mut p, period.start_at, period.end_at);
        let local = local_seconds(&mut p, zone, "a.start_at", period.start_at, period.end_at);
        let sql = format!(
            "SELECT CAST((({local}) / 86400 + 3) % 7 + 1 AS BIGINT), \
                    CAST((({local}) / 3600) % 24 AS BIGINT), \
                    CAST(COUNT(*) AS BIGINT) \
             FROM appointments a \
             WHERE {condition} AND {in_period} AND a.status NOT IN ({inactive}) \
             GROUP BY 1, 2",
            inactive = inactive_list()
        );
        let mut hours: Vec<BusyHour> = (0..24)
            .map(|hour| BusyHour {
                hour,
                appointments: 0,
            })
            .collect();
        let mut weekdays: Vec<BusyWeekday> = (1..=7)
            .map(|weekday| BusyWeekday {
                weekday,
                appointments: 0,
            })
            .collect();
        for row in db.query_all_raw(p.statement(sql)).await? {
            let (weekday, hour, n): (i64, i64, i64) = (get(&row, 0)?, get(&row, 1)?, get(&row, 2)?);
            if let (Some(w), Some(h)) = (
                weekdays.get_mut((weekday - 1) as usize),
                hours.get_mut(hour as usize),
            ) {
                w.appointments += n;
                h.appointments += n;
            }
        }
        Ok((hours, weekdays))
    }

    /// The top services of completed appointments: by count, then revenue, then id
    /// (not name: collations differ between engines). One statement.
    async fn top_services(
        &self,
        db: &impl ConnectionTrait,
        period: &Period,
    ) -> Result<Vec<TopService>, StorageError> {
        let mut p = Params::new(db.get_database_backend());
        let condition = self.condition(&mut p);
        let in_period = Self::in_period(&mut p, period.start_at, period.end_at);
        let revenue = self.revenue_sum(&mut p);
        let sql = format!(
            "SELECT a.service_id, a.provider_service_id, COALESCE(s.name, st.name, ''), \
                    CAST(COUNT(*) AS BIGINT) AS completed, {revenue} AS revenue \
             FROM appointments a \
             LEFT JOIN services s \
                    ON s.id = a.service_id AND s.organization_id = a.organization_id \
             LEFT JOIN provider_services pv \
                    ON pv.id = a.provider_service_id AND pv.organization_id = a.organization_id \
             LEFT JOIN service_templates st \
                    ON st.id = pv.template_id AND st.organization_id = a.organization_id \
             WHERE {condition} AND {in_period} AND a.status = '{completed}' \
             GROUP BY a.service_id, a.provider_service_id, s.name, st.name \
             ORDER BY completed DESC, revenue DESC, \
                      COALESCE(a.service_id, a.provider_service_id) \
             LIMIT {TOP_LIMIT}",
            completed = AppointmentStatus::Completed.as_str()
        );
        db.query_all_raw(p.statement(sql))
            .await?
            .iter()
            .map(|row| {
                Ok(TopService {
                    service_id: get(row, 0)?,
                    provider_service_id: get(row, 1)?,
                    name: get(row, 2)?,
                    completed: get(row, 3)?,
                    revenue_cents: get(row, 4)?,
                })
            })
            .collect()
    }

    /// The top providers of completed appointments: by revenue, then count. One
    /// statement.
    async fn top_providers(
        &self,
        db: &impl ConnectionTrait,
        period: &Period,
    ) -> Result<Vec<TopProvider>, StorageError> {
        let mut p = Params::new(db.get_database_backend());
        let condition = self.condition(&mut p);
        let in_period = Self::in_period(&mut p, period.start_at, period.end_at);
        let revenue = self.revenue_sum(&mut p);
        let sql = format!(
            "SELECT a.provider_id, COALESCE(ps.business_name, u.full_name), \
                    CAST(COUNT(*) AS BIGINT) AS completed, {revenue} AS revenue \
             FROM appointments a \
             JOIN users u ON u.id = a.provider_id AND u.organization_id = a.organization_id \
             LEFT JOIN provider_settings ps \
                    ON ps.provider_id = a.provider_id AND ps.organization_id = a.organization_id \
             WHERE {condition} AND {in_period} AND a.status = '{completed}' \
             GROUP BY a.provider_id, ps.business_name, u.full_name \
             ORDER BY revenue DESC, completed DESC, a.provider_id \
             LIMIT {TOP_LIMIT}",
            completed = AppointmentStatus::Completed.as_str()
        );
        db.query_all_raw(p.statement(sql))
            .await?
            .iter()
            .map(|row| {
                Ok(TopProvider {
                    provider_id: get(row, 0)?,
                    name: get(row, 1)?,
                    completed: get(row, 2)?,
                    revenue_cents: get(row, 3)?,
                })
            })
            .collect()
    }

    /// New client accounts, and distinct clients and providers with an active
    /// appointment, in the period. One statement.
    async fn people(
        &self,
        db: &impl ConnectionTrait,
        period: &Period,
    ) -> Result<People, StorageError> {
        let mut p = Params::new(db.get_database_backend());
        let condition = self.condition(&mut p);
        let in_period = Self::in_period(&mut p, period.start_at, period.end_at);
        let org = p.bind(self.scope.organization_id());
        let client = p.bind(agenda_entity::enums::UserRole::Client.as_str());
        let (start, end) = (p.bind(period.start_at), p.bind(period.end_at));
        let sql = format!(
            "SELECT \
               (SELECT CAST(COUNT(*) AS BIGINT) FROM users u \
                 WHERE u.organization_id = {org} AND u.role = {client} \
                   AND u.created_at >= {start} AND u.created_at < {end}), \
               CAST(COUNT(DISTINCT a.client_id) AS BIGINT), \
               CAST(COUNT(DISTINCT a.provider_id) AS BIGINT) \
             FROM appointments a \
             WHERE {condition} AND {in_period} AND a.status NOT IN ({inactive})",
            inactive = inactive_list()
        );
        let row = db
            .query_one_raw(p.statement(sql))
            .await?
            .ok_or_else(|| StorageError::Other("an aggregate returned no row".into()))?;
        Ok(People {
            new_clients: get(&row, 0)?,
            clients: get(&row, 1)?,
            providers: get(&row, 2)?,
        })
    }

    /// The local month containing `now` against the one before it. One statement
    /// (the same as the period's, over two month buckets).
    async fn trend(
        &self,
        db: &impl ConnectionTrait,
        zone: Tz,
        now: DateTime<Utc>,
    ) -> Result<Trend, StorageError> {
        let this_month = month_start(now.with_timezone(&zone).date_naive());
        let previous_month = add_months(this_month, -1);
        let next_month = add_months(this_month, 1);
        let bounds = [
            local_midnight(zone, previous_month),
            local_midnight(zone, this_month),
            local_midnight(zone, next_month),
        ];
        let groups = self.by_bucket_and_status(db, &bounds).await?;
        let figures = |bucket: usize, month: NaiveDate| {
            let mut counts = StatusCounts::default();
            let mut revenue_cents = 0;
            for g in groups.iter().filter(|g| g.bucket == bucket) {
                counts.add(&g.status, g.count);
                revenue_cents += g.revenue_cents;
            }
            MonthFigures {
                month: month.format("%Y-%m").to_string(),
                appointments: counts.active(),
                completed: counts.completed,
                revenue_cents,
            }
        };
        let (previous, current) = (figures(0, previous_month), figures(1, this_month));
        Ok(Trend {
            appointments_change_bp: change_bp(previous.appointments, current.appointments),
            revenue_change_bp: change_bp(previous.revenue_cents, current.revenue_cents),
            current,
            previous,
        })
    }
}

/// `CASE WHEN col < s1 THEN 0 WHEN col < s2 THEN 1 … ELSE n END` for the inner
/// boundaries `s1 < s2 < …` (the bucket index of a row already inside the range).
fn bucket_case(p: &mut Params, column: &str, inner: &[DateTime<Utc>]) -> String {
    if inner.is_empty() {
        return "0".to_owned();
    }
    let mut sql = String::from("CASE");
    for (i, boundary) in inner.iter().enumerate() {
        sql.push_str(&format!(" WHEN {column} < {} THEN {i}", p.bind(*boundary)));
    }
    sql.push_str(&format!(" ELSE {} END", inner.len()));
    sql
}

/// The local wall clock of `column` as seconds since 1970-01-01T00:00 local:
/// `epoch(column) + offset`, the offset chosen by a `CASE` over the zone's offset
/// changes in `[start, end)`.
fn local_seconds(
    p: &mut Params,
    zone: Tz,
    column: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> String {
    let epoch = match p.backend() {
        DbBackend::Postgres => format!("CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"),
        _ => format!("CAST(strftime('%s', {column}) AS INTEGER)"),
    };
    let segments = offset_segments(zone, start, end);
    let offset = if segments.len() == 1 {
        p.bind(segments[0].1)
    } else {
        let mut sql = String::from("CASE");
        for pair in segments.windows(2) {
            let (until, offset) = (pair[1].0, pair[0].1);
            sql.push_str(&format!(
                " WHEN {column} < {} THEN {}",
                p.bind(until),
                p.bind(offset)
            ));
        }
        let last = segments[segments.len() - 1].1;
        sql.push_str(&format!(" ELSE {} END", p.bind(last)));
        sql
    };
    format!("({epoch} + {offset})")
}

// ---------------------------------------------------------------------------------
// Calendar arithmetic

/// The UTC offset (seconds east) of `zone` at `at`.
fn offset_at(zone: Tz, at: DateTime<Utc>) -> i64 {
    i64::from(
        zone.offset_from_utc_datetime(&at.naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

/// `(from, offset)` pairs: the zone's offset is `offset` from `from` until the next
/// pair's `from`. The first pair starts at `start`; changes are searched hour by hour
/// and located to the second by bisection.
pub(crate) fn offset_segments(
    zone: Tz,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, i64)> {
    let mut segments = vec![(start, offset_at(zone, start))];
    let mut at = start;
    while at < end {
        let next = (at + Duration::hours(1)).min(end);
        let (before, after) = (offset_at(zone, at), offset_at(zone, next));
        if before != after {
            // The first second with the new offset lies in (at, next].
            let (mut lo, mut hi) = (at, next);
            while hi - lo > Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset_at(zone, mid) == before {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            segments.push((hi, after));
        }
        at = next;
    }
    segments
}

/// The first instant of the local date `date` (after the gap when a daylight-saving
/// change skips midnight).
pub(crate) fn local_midnight(zone: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    let mut wall = midnight;
    // Gaps are at most a few hours and whole minutes long.
    while wall < midnight + Duration::hours(25) {
        if let Some(at) = zone.from_local_datetime(&wall).earliest() {
            return at.with_timezone(&Utc);
        }
        wall += Duration::minutes(1);
    }
    // Unreachable for real zones; fall back to the offset of the day before.
    let before = Utc.from_utc_datetime(&(midnight - Duration::days(1)));
    Utc.from_utc_datetime(&midnight) - Duration::seconds(offset_at(zone, before))
}

fn month_start(date: NaiveDate) -> NaiveDate {
    date.with_day(1).expect("every month has a first day")
}

/// The first day of the month `months` after (or before) the month starting `first`.
fn add_months(first: NaiveDate, months: i32) -> NaiveDate {
    let index = first.year() * 12 + first.month0() as i32 + months;
    NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1)
        .expect("a valid first day of a month")
}

/// `(current − previous) × 10 000 / previous`, truncated toward zero.
fn change_bp(previous: i64, current: i64) -> Option<i64> {
    (previous != 0).then(|| {
        let bp = (i128::from(current) - i128::from(previous)) * 10_000 / i128::from(previous);
        i64::try_from(bp).unwrap_or(if bp > 0 { i64::MAX } else { i64::MIN })
    })
}

/// The local months of a period and the UTC boundaries of their parts inside it.
struct MonthBuckets {
    period: DateRange,
    /// `t0 = start of the period`, then each month start inside it, then the end.
    bounds: Vec<DateTime<Utc>>,
    /// The local dates of each bucket: `(first, last)`.
    dates: Vec<(NaiveDate, NaiveDate)>,
}

impl MonthBuckets {
    fn of_period(zone: Tz, period: DateRange) -> Self {
        let mut bounds = vec![local_midnight(zone, period.from)];
        let mut dates = Vec::new();
        let mut first = period.from;
        loop {
            let next_month = add_months(month_start(first), 1);
            if next_month > period.to {
                dates.push((first, period.to));
                break;
            }
            dates.push((first, next_month.pred_opt().expect("a day before")));
            bounds.push(local_midnight(zone, next_month));
            first = next_month;
        }
        let end = period.to.succ_opt().expect("a day after the period");
        bounds.push(local_midnight(zone, end));
        MonthBuckets {
            period,
            bounds,
            dates,
        }
    }

    fn period(&self) -> Period {
        Period {
            from: self.period.from,
            to: self.period.to,
            start_at: self.bounds[0],
            end_at: self.bounds[self.bounds.len() - 1],
        }
    }

    /// Status totals, completed revenue, and the revenue of each month.
    fn summarise(&self, groups: &[Group]) -> (StatusCounts, i64, Vec<MonthRevenue>) {
        let mut counts = StatusCounts::default();
        let mut months: Vec<MonthRevenue> = self
            .dates
            .iter()
            .map(|(from, to)| MonthRevenue {
                month: from.format("%Y-%m").to_string(),
                from: *from,
                to: *to,
                completed: 0,
                revenue_cents: 0,
            })
            .collect();
        let mut revenue = 0;
        for g in groups {
            counts.add(&g.status, g.count);
            revenue += g.revenue_cents;
            if let Some(month) = months.get_mut(g.bucket) {
                month.revenue_cents += g.revenue_cents;
                if g.status == AppointmentStatus::Completed.as_str() {
                    month.completed += g.count;
                }
            }
        }
        (counts, revenue, months)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn offset_changes_are_found_to_the_second() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let segments = offset_segments(
            berlin,
            utc("2026-03-01T00:00:00Z"),
            utc("2026-11-01T00:00:00Z"),
        );
        assert_eq!(
            segments,
            vec![
                (utc("2026-03-01T00:00:00Z"), 3600),
                (utc("2026-03-29T01:00:00Z"), 7200),
                (utc("2026-10-25T01:00:00Z"), 3600),
            ]
        );
        let kathmandu: Tz = "Asia/Kathmandu".parse().unwrap();
        assert_eq!(
            offset_segments(
                kathmandu,
                utc("2026-01-01T00:00:00Z"),
                utc("2027-01-01T00:00:00Z")
            ),
            vec![(utc("2026-01-01T00:00:00Z"), 5 * 3600 + 45 * 60)]
        );
    }

    #[test]
    fn local_midnight_skips_a_gap() {
        // Brazil moved clocks from 00:00 to 01:00 on 2018-11-04 (São Paulo).
        let sao_paulo: Tz = "America/Sao_Paulo".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2018, 11, 4).unwrap();
        assert_eq!(local_midnight(sao_paulo, d), utc("2018-11-04T03:00:00Z"));
        let ny: Tz = "America/New_York".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        assert_eq!(local_midnight(ny, d), utc("2026-07-01T04:00:00Z"));
    }

    #[test]
    fn months_split_the_period() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let period = DateRange::new(
            NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
            NaiveDate::from_ymd_opt(2026, 3, 10).unwrap(),
        );
        let m = MonthBuckets::of_period(ny, period);
        assert_eq!(
            m.bounds,
            vec![
                utc("2026-01-15T05:00:00Z"),
                utc("2026-02-01T05:00:00Z"),
                utc("2026-03-01T05:00:00Z"),
                utc("2026-03-11T04:00:00Z"), // after the March change to EDT
            ]
        );
        assert_eq!(m.dates.len(), 3);
        assert_eq!(m.dates[1].1, NaiveDate::from_ymd_opt(2026, 2, 28).unwrap());
    }

    #[test]
    fn change_in_basis_points() {
        assert_eq!(change_bp(0, 5), None);
        assert_eq!(change_bp(4, 5), Some(2_500));
        assert_eq!(change_bp(3, 2), Some(-3_333));
        assert_eq!(change_bp(2, 0), Some(-10_000));
        assert_eq!(
            add_months(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(), -1),
            NaiveDate::from_ymd_opt(2025, 12, 1).unwrap()
        );
    }
}
