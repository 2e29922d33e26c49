//! The benchmark data set, written in bulk SQL (`INSERT … SELECT generate_series`) by
//! the superuser on one connection: a few organizations, hundreds of providers,
//! thousands of clients, weeks of non-overlapping appointments with their status
//! history, the ledger of the paid ones and a bearer session for every user.
//!
//! The rows respect every CHECK, foreign key and the exclusion constraint: each
//! provider gets at most one appointment per working hour (08:00–18:00 local, no
//! lunch hour), and every service plus the provider's buffer fits in an hour.
//!
//! One provider, the *hot* one, takes bookings around the clock in 10-minute slots;
//! the contention scenario sends every client to it.
//!
//! Tokens are derived from the user id (`sha256("agenda-bench:" || id)` in hex), and
//! the session stores the digest of the token as the server does, so no password
//! hashing is needed to sign in.

use serde::Serialize;
use sqlx::{Connection, PgConnection, Row};

/// How big the data set is.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SeedSize {
    pub organizations: u32,
    pub providers_per_organization: u32,
    pub clients_per_organization: u32,
    /// At least this many appointments are written (a few percent more, at random).
    pub appointments: u32,
}

/// Days ahead where the benchmark books (the seed leaves them empty).
pub const BOOKING_FIRST_DAY: i32 = 15;
pub const BOOKING_LAST_DAY: i32 = 75;

/// What the seed wrote, by table.
#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    pub seconds: f64,
    pub weeks_of_history: u32,
    pub rows: Vec<(String, i64)>,
}

const TIME_ZONES: [(&str, &str); 5] = [
    ("America/Sao_Paulo", "BRL"),
    ("Europe/Lisbon", "EUR"),
    ("America/New_York", "USD"),
    ("Asia/Tokyo", "JPY"),
    ("UTC", "GBP"),
];

/// Working hours with an appointment candidate (local), lunch at 12 left out.
const HOURS: &str = "(VALUES (8),(9),(10),(11),(13),(14),(15),(16),(17)) hh(h)";

async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), String> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| format!("seed: {e}\n{sql}"))
}

/// Writes the data set into an empty, migrated database at `url` (superuser).
pub async fn seed(url: &str, size: SeedSize) -> Result<SeedReport, String> {
    let started = std::time::Instant::now();
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let providers = size.organizations * size.providers_per_organization;
    // Keep about 60% of the candidate hours; enough weeks back to reach the target.
    let per_provider = f64::from(size.appointments) / f64::from(providers.max(1));
    let weeks = ((per_provider / (9.0 * 5.0 * 0.6)).ceil() as u32).max(1);
    let candidates = f64::from(providers) * 9.0 * 5.0 * f64::from(weeks + 2);
    let keep = (f64::from(size.appointments) * 1.03 / candidates).min(0.97);
    let zones = TIME_ZONES
        .iter()
        .map(|(z, c)| format!("('{z}','{c}')"))
        .collect::<Vec<_>>()
        .join(",");
    let (o, p, c) = (
        size.organizations,
        size.providers_per_organization,
        size.clients_per_organization,
    );
    let script = format!(
        r#"
SELECT setseed(0.42);
CREATE FUNCTION pg_temp.uuid7(ts timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $f$
  SELECT (lpad(to_hex(floor(extract(epoch FROM ts) * 1000)::bigint), 12, '0')
          || '7' || substr(md5(random()::text), 1, 3)
          || to_hex(8 + floor(random() * 4)::int) || substr(md5(random()::text), 1, 15))::uuid
$f$;
CREATE TEMP TABLE b_org AS
  SELECT n AS org_no, pg_temp.uuid7(now()) AS id, z.tz, z.currency
  FROM generate_series(1, {o}) n
  JOIN (SELECT row_number() OVER () - 1 AS k, tz, currency FROM (VALUES {zones}) v(tz, currency)) z
    ON z.k = (n - 1) % {nz};
INSERT INTO organizations (id, slug, name, time_zone, currency, status)
  SELECT id, 'bench-' || org_no, 'Bench clinic ' || org_no, tz, currency, 'active' FROM b_org;
INSERT INTO payment_settings (id, organization_id) SELECT pg_temp.uuid7(now()), id FROM b_org;

CREATE TEMP TABLE b_user AS
  SELECT o.org_no, o.id AS org_id, r.role, i AS idx, pg_temp.uuid7(now()) AS id
  FROM b_org o
  CROSS JOIN (VALUES ('admin', 1), ('provider', {p}), ('client', {c})) r(role, n)
  CROSS JOIN LATERAL generate_series(1, r.n) i;
CREATE INDEX ON b_user (org_no, role, idx);
INSERT INTO users (id, organization_id, email, password_hash, full_name, role, is_active, is_verified)
  SELECT id, org_id, role || idx || '@org' || org_no || '.bench.example.com',
         '$argon2id$v=19$m=19456,t=2,p=1$YmVuY2hzYWx0$bm90LWEtcmVhbC1oYXNoLWZvci1sb2dpbg',
         initcap(role) || ' ' || idx || ' of clinic ' || org_no, role, true, true
  FROM b_user;
-- The hot provider: provider 1 of organization 1.
CREATE TEMP TABLE b_provider AS
  SELECT u.*, (u.org_no = 1 AND u.idx = 1) AS hot FROM b_user u WHERE role = 'provider';
INSERT INTO provider_settings (id, organization_id, provider_id, business_name,
    accepted_payment_methods, buffer_minutes, slot_step_minutes, min_lead_minutes,
    max_horizon_days, auto_confirm)
  SELECT pg_temp.uuid7(now()), org_id, id, 'Studio ' || org_no || '-' || idx, '["pix","card"]'::jsonb,
         CASE WHEN hot THEN 0 ELSE 10 END, CASE WHEN hot THEN 10 ELSE 15 END, 60,
         CASE WHEN hot THEN 730 ELSE 180 END, false
  FROM b_provider;
CREATE TEMP TABLE b_service AS
  SELECT p.id AS provider_id, p.org_id, s.k, pg_temp.uuid7(now()) AS id, s.minutes, s.price
  FROM b_provider p
  CROSS JOIN (VALUES (1, 30, 4000), (2, 45, 6500), (3, 50, 9000), (4, 10, 1500)) s(k, minutes, price)
  WHERE s.k < 4 OR p.hot;
CREATE INDEX ON b_service (provider_id, k);
INSERT INTO services (id, organization_id, provider_id, name, duration_minutes, price_cents, is_active)
  SELECT id, org_id, provider_id, 'Service ' || k || ' (' || minutes || ' min)', minutes, price, true
  FROM b_service;
INSERT INTO availability (id, organization_id, provider_id, kind, weekday, start_time, end_time, is_available)
  SELECT pg_temp.uuid7(now()), org_id, id, 'weekly', d,
         CASE WHEN hot THEN '00:00'::time ELSE '08:00'::time END,
         CASE WHEN hot THEN '23:50'::time ELSE '18:00'::time END, true
  FROM b_provider CROSS JOIN generate_series(1, 7) d
  WHERE hot OR d <= 5;
INSERT INTO provider_breaks (id, organization_id, provider_id, kind, weekday, start_time, end_time, label)
  SELECT pg_temp.uuid7(now()), org_id, id, 'weekly', d, '12:00', '13:00', 'lunch'
  FROM b_provider CROSS JOIN generate_series(1, 5) d
  WHERE NOT hot;

-- Appointments: working hours of past weeks and the next two weeks.
CREATE TEMP TABLE b_appt AS
  SELECT pg_temp.uuid7(now()) AS id, p.id AS provider_id, p.org_id, p.org_no, o.tz, o.currency,
         (d::date + make_interval(hours => h)) AT TIME ZONE o.tz AS start_at,
         1 + floor(random() * 3)::int AS service_k,
         1 + floor(random() * {c})::int AS client_idx,
         random() AS r
  FROM b_provider p JOIN b_org o USING (org_no)
  CROSS JOIN generate_series(current_date - {days_back}, current_date + 13, interval '1 day') d
  CROSS JOIN {hours}
  WHERE extract(isodow FROM d) <= 5 AND random() < {keep};
INSERT INTO appointments (id, organization_id, client_id, provider_id, service_id, start_at, end_at,
    occupied_until, status, price_cents, discount_cents, currency, payment_method, payment_status,
    cancellation_reason, canceled_at, canceled_by, created_at, updated_at)
  SELECT a.id, a.org_id, c.id, a.provider_id, s.id, a.start_at,
         a.start_at + make_interval(mins => s.minutes),
         a.start_at + make_interval(mins => s.minutes + 10),
         x.status, s.price, 0, a.currency,
         CASE WHEN x.status = 'completed' THEN (CASE WHEN a.r < 0.4 THEN 'pix' ELSE 'card' END) END,
         CASE WHEN x.status = 'completed' THEN 'paid' ELSE 'unpaid' END,
         CASE WHEN x.status = 'canceled' THEN 'schedule change' END,
         CASE WHEN x.status = 'canceled' THEN a.start_at - interval '1 day' END,
         CASE WHEN x.status = 'canceled' THEN c.id END,
         a.start_at - interval '5 days', a.start_at - interval '5 days'
  FROM b_appt a
  JOIN b_service s ON s.provider_id = a.provider_id AND s.k = a.service_k
  JOIN b_user c ON c.org_no = a.org_no AND c.role = 'client' AND c.idx = a.client_idx
  CROSS JOIN LATERAL (SELECT CASE
      WHEN a.start_at < now() THEN
        CASE WHEN a.r < 0.75 THEN 'completed' WHEN a.r < 0.92 THEN 'canceled' ELSE 'no_show' END
      ELSE
        CASE WHEN a.r < 0.5 THEN 'confirmed' WHEN a.r < 0.88 THEN 'pending' ELSE 'canceled' END
    END AS status) x;
INSERT INTO appointment_status_history (id, organization_id, appointment_id, from_status, to_status, changed_by, created_at)
  SELECT pg_temp.uuid7(created_at), organization_id, id, NULL, 'pending', client_id, created_at
  FROM appointments WHERE organization_id IN (SELECT id FROM b_org);
INSERT INTO appointment_status_history (id, organization_id, appointment_id, from_status, to_status, changed_by, created_at)
  SELECT pg_temp.uuid7(start_at), organization_id, id, 'pending', status, provider_id, start_at - interval '1 day'
  FROM appointments WHERE organization_id IN (SELECT id FROM b_org) AND status <> 'pending';

-- The ledger of the paid appointments: the payment and a 10% commission.
INSERT INTO provider_transactions (id, organization_id, provider_id, kind, bucket, amount_cents, currency,
    appointment_id, external_ref, description, created_at)
  SELECT pg_temp.uuid7(end_at), organization_id, provider_id, k.kind, 'available',
         CASE WHEN k.kind = 'payment' THEN price_cents ELSE -(price_cents / 10) END,
         currency, id, id::text, k.kind || ' of appointment', end_at
  FROM appointments CROSS JOIN (VALUES ('payment'), ('commission')) k(kind)
  WHERE organization_id IN (SELECT id FROM b_org) AND payment_status = 'paid';
INSERT INTO provider_balances (id, organization_id, provider_id, available_cents, pending_cents, currency)
  SELECT pg_temp.uuid7(now()), p.org_id, p.id, coalesce(sum(t.amount_cents), 0), 0, o.currency
  FROM b_provider p JOIN b_org o USING (org_no)
  LEFT JOIN provider_transactions t ON t.provider_id = p.id
  GROUP BY p.org_id, p.id, o.currency;

-- A bearer session for every user; the token is derived from the id.
INSERT INTO user_sessions (id, organization_id, user_id, token_hash, expires_at, user_agent)
  SELECT pg_temp.uuid7(now()), org_id, id,
         encode(sha256(encode(sha256(('agenda-bench:' || id)::bytea), 'hex')::bytea), 'hex'),
         now() + interval '30 days', 'agenda-bench'
  FROM b_user;
"#,
        nz = TIME_ZONES.len(),
        days_back = weeks * 7,
        hours = HOURS,
    );
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    exec(&mut tx, &script).await?;
    tx.commit().await.map_err(|e| e.to_string())?;
    exec(&mut conn, "VACUUM (ANALYZE)").await?;

    let mut rows = Vec::new();
    for table in [
        "organizations",
        "users",
        "services",
        "availability",
        "appointments",
        "appointment_status_history",
        "provider_transactions",
        "provider_balances",
        "user_sessions",
    ] {
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        rows.push((table.to_owned(), n));
    }
    conn.close().await.ok();
    Ok(SeedReport {
        seconds: started.elapsed().as_secs_f64(),
        weeks_of_history: weeks,
        rows,
    })
}

/// A signed-in user of the data set.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub org_no: i32,
    pub token: String,
}

/// What the load scenarios need to know about the data set.
#[derive(Debug, Clone, Default)]
pub struct Fixtures {
    pub providers: Vec<Member>,
    pub clients: Vec<Member>,
    /// Index into `providers` of the hot provider.
    pub hot: usize,
    /// A sample of appointment ids per provider (same order as `providers`).
    pub appointments: Vec<Vec<String>>,
    /// The 30-minute service of each provider (same order as `providers`).
    pub service: Vec<String>,
    /// The hot provider's 10-minute service.
    pub hot_service: String,
    /// Clients by organization number (index into `clients`).
    pub clients_by_org: std::collections::BTreeMap<i32, Vec<usize>>,
}

const TOKEN_SQL: &str = "encode(sha256(('agenda-bench:' || u.id)::bytea), 'hex')";

/// Reads tokens, services and a sample of appointments back from the database.
pub async fn fixtures(url: &str) -> Result<Fixtures, String> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let e = |e: sqlx::Error| e.to_string();
    let mut f = Fixtures::default();
    let users = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT u.id::text, substr(o.slug, 7)::int, u.role, {TOKEN_SQL}, \
                (SELECT s.id::text FROM services s WHERE s.provider_id = u.id AND s.duration_minutes = 30), \
                (SELECT s.id::text FROM services s WHERE s.provider_id = u.id AND s.duration_minutes = 10) \
         FROM users u JOIN organizations o ON o.id = u.organization_id \
         WHERE o.slug LIKE 'bench-%' AND u.role IN ('provider', 'client') ORDER BY u.email"
    )))
    .fetch_all(&mut conn)
    .await
    .map_err(e)?;
    for row in users {
        let member = Member {
            id: row.get(0),
            org_no: row.get(1),
            token: row.get(3),
        };
        let role: String = row.get(2);
        if role == "provider" {
            if let Some(hot) = row.get::<Option<String>, _>(5) {
                f.hot = f.providers.len();
                f.hot_service = hot;
            }
            f.service.push(row.get(4));
            f.providers.push(member);
        } else {
            f.clients_by_org
                .entry(member.org_no)
                .or_default()
                .push(f.clients.len());
            f.clients.push(member);
        }
    }
    let index: std::collections::HashMap<String, usize> = f
        .providers
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.clone(), i))
        .collect();
    f.appointments = vec![Vec::new(); f.providers.len()];
    let sample = sqlx::query(
        "SELECT provider_id::text, id::text FROM (SELECT provider_id, id, \
           row_number() OVER (PARTITION BY provider_id ORDER BY md5(id::text)) AS n FROM appointments) t \
         WHERE n <= 50",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(e)?;
    for row in sample {
        if let Some(&i) = index.get(&row.get::<String, _>(0)) {
            f.appointments[i].push(row.get(1));
        }
    }
    conn.close().await.ok();
    if f.providers.is_empty() || f.clients.is_empty() || f.hot_service.is_empty() {
        return Err("the database holds no benchmark data set".into());
    }
    Ok(f)
}

/// A slot to book: provider index and start instant (RFC 3339).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub provider: usize,
    pub start_at: String,
}

/// Free hourly starts of every provider but the hot one, on the booking days, in a
/// random order (low contention: each is tried once).
pub async fn spread_candidates(url: &str, f: &Fixtures) -> Result<Vec<Candidate>, String> {
    let sql = format!(
        "SELECT u.id::text, to_char(s.start_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
         FROM users u JOIN organizations o ON o.id = u.organization_id \
         CROSS JOIN generate_series(current_date + {BOOKING_FIRST_DAY}, current_date + {BOOKING_LAST_DAY}, interval '1 day') d \
         CROSS JOIN {HOURS} \
         CROSS JOIN LATERAL (SELECT (d::date + make_interval(hours => h)) AT TIME ZONE o.time_zone AS start_at) s \
         WHERE o.slug LIKE 'bench-%' AND u.role = 'provider' AND extract(isodow FROM d) <= 5 \
           AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.provider_id = u.id \
                 AND a.status NOT IN ('canceled', 'no_show') \
                 AND a.start_at < s.start_at + interval '1 hour' AND a.occupied_until > s.start_at)"
    );
    let mut all = candidates(url, &sql, f).await?;
    all.retain(|c| c.provider != f.hot);
    fastrand::shuffle(&mut all);
    Ok(all)
}

/// The hot provider's free 10-minute starts after its last booking, in order.
pub async fn hot_candidates(url: &str, f: &Fixtures) -> Result<Vec<Candidate>, String> {
    let hot = &f.providers[f.hot].id;
    let sql = format!(
        "WITH hot AS (SELECT o.time_zone AS tz FROM users u \
             JOIN organizations o ON o.id = u.organization_id WHERE u.id = '{hot}'), \
         first AS (SELECT greatest( \
             (SELECT max(occupied_until) FROM appointments WHERE provider_id = '{hot}' \
                AND status NOT IN ('canceled', 'no_show')), \
             date_trunc('day', now()) + interval '{BOOKING_FIRST_DAY} days') AS t) \
         SELECT '{hot}', to_char(s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
         FROM hot, first, generate_series(date_trunc('hour', first.t) + interval '1 hour', \
                                     date_trunc('hour', first.t) + interval '120 days', interval '10 minutes') s \
         WHERE (s AT TIME ZONE hot.tz)::time < '23:40' ORDER BY s"
    );
    candidates(url, &sql, f).await
}

async fn candidates(url: &str, sql: &str, f: &Fixtures) -> Result<Vec<Candidate>, String> {
    let index: std::collections::HashMap<&str, usize> = f
        .providers
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    conn.close().await.ok();
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let provider = *index.get(row.get::<String, _>(0).as_str())?;
            Some(Candidate {
                provider,
                start_at: row.get(1),
            })
        })
        .collect())
}
