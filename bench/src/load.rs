//! The load driver: `connections` workers, each with one request in flight, for a
//! fixed duration (closed loop), or paced to a target rate (open loop, latency
//! measured from the scheduled instant so that a stall is not hidden).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::seed::{Candidate, Fixtures};
use crate::stats::Samples;

/// The scenarios of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// (a) `GET /api/v1/appointments/{id}` by its provider.
    GetAppointment,
    /// (b) `GET /api/v1/appointments?status=…&from=…&to=…&limit=20`, following `next`.
    ListAppointments,
    /// (c) `POST /api/v1/appointments`, clients spread over all providers.
    BookSpread,
    /// (c) `POST /api/v1/appointments`, every client after the hot provider's next slot.
    BookHot,
    /// (d) `GET /api/v1/providers/{id}/slots` over 7 days.
    FreeSlots,
    /// (e) `GET /health/ready`.
    HealthReady,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::GetAppointment,
        Scenario::ListAppointments,
        Scenario::BookSpread,
        Scenario::BookHot,
        Scenario::FreeSlots,
        Scenario::HealthReady,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Scenario::GetAppointment => "a_get_appointment",
            Scenario::ListAppointments => "b_list_appointments",
            Scenario::BookSpread => "c_book_low_contention",
            Scenario::BookHot => "c_book_hot_provider",
            Scenario::FreeSlots => "d_free_slots_7_days",
            Scenario::HealthReady => "e_health_ready",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Scenario::GetAppointment => "(a) get one appointment",
            Scenario::ListAppointments => "(b) list a provider's appointments",
            Scenario::BookSpread => "(c) book, low contention",
            Scenario::BookHot => "(c) book, one hot provider",
            Scenario::FreeSlots => "(d) free slots, 7 days",
            Scenario::HealthReady => "(e) GET /health/ready",
        }
    }

    /// The matched route, as `/metrics` labels it.
    pub fn route(self) -> &'static str {
        match self {
            Scenario::GetAppointment => "/api/v1/appointments/{id}",
            Scenario::ListAppointments | Scenario::BookSpread | Scenario::BookHot => {
                "/api/v1/appointments"
            }
            Scenario::FreeSlots => "/api/v1/providers/{provider_id}/slots",
            Scenario::HealthReady => "/health/ready",
        }
    }

    pub fn from_key(key: &str) -> Option<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|s| s.key() == key || s.key().starts_with(&format!("{key}_")))
    }
}

/// Shared, read-mostly state of one scenario run.
pub struct Workload {
    pub scenario: Scenario,
    pub base_url: String,
    pub fixtures: Arc<Fixtures>,
    /// Booking candidates (spread: each tried once; hot: in order).
    pub candidates: Vec<Candidate>,
    pub next_candidate: AtomicUsize,
}

/// One request to send.
struct Request {
    method: reqwest::Method,
    url: String,
    token: Option<String>,
    body: Option<String>,
    /// For the hot provider: which candidate this request tries.
    candidate: Option<usize>,
}

impl Workload {
    pub fn new(
        scenario: Scenario,
        base_url: &str,
        fixtures: Arc<Fixtures>,
        candidates: Vec<Candidate>,
    ) -> Arc<Workload> {
        Arc::new(Workload {
            scenario,
            base_url: base_url.to_owned(),
            fixtures,
            candidates,
            next_candidate: AtomicUsize::new(0),
        })
    }

    fn client_of(&self, org_no: i32) -> &crate::seed::Member {
        let f = &self.fixtures;
        let list = &f.clients_by_org[&org_no];
        &f.clients[list[fastrand::usize(..list.len())]]
    }

    fn request(&self, cursor: &mut Option<(usize, String)>) -> Request {
        let f = &self.fixtures;
        let base = &self.base_url;
        let get = |url: String, token: &str| Request {
            method: reqwest::Method::GET,
            url,
            token: Some(token.to_owned()),
            body: None,
            candidate: None,
        };
        match self.scenario {
            Scenario::GetAppointment => loop {
                let p = fastrand::usize(..f.providers.len());
                let ids = &f.appointments[p];
                if !ids.is_empty() {
                    let id = &ids[fastrand::usize(..ids.len())];
                    break get(
                        format!("{base}/api/v1/appointments/{id}"),
                        &f.providers[p].token,
                    );
                }
            },
            Scenario::ListAppointments => {
                // Half of the time, the next page of the previous list.
                if let Some((p, url)) = cursor.take().filter(|_| fastrand::bool()) {
                    return get(url, &f.providers[p].token);
                }
                let p = fastrand::usize(..f.providers.len());
                let (status, back) = if fastrand::u8(..4) == 0 {
                    ("confirmed", 0)
                } else {
                    ("completed", 7 * i64::from(fastrand::u8(1..20)))
                };
                let to = chrono_free::days_from_now(28 - back);
                let from = chrono_free::days_from_now(-back);
                get(
                    format!(
                        "{base}/api/v1/appointments?status={status}&from={from}&to={to}&limit=20"
                    ),
                    &f.providers[p].token,
                )
            }
            Scenario::BookSpread | Scenario::BookHot => {
                let hot = self.scenario == Scenario::BookHot;
                let i = if hot {
                    self.next_candidate.load(Ordering::Acquire)
                } else {
                    self.next_candidate.fetch_add(1, Ordering::AcqRel)
                };
                let c = &self.candidates[i % self.candidates.len()];
                let provider = &f.providers[c.provider];
                let service = if hot {
                    &f.hot_service
                } else {
                    &f.service[c.provider]
                };
                Request {
                    method: reqwest::Method::POST,
                    url: format!("{base}/api/v1/appointments"),
                    token: Some(self.client_of(provider.org_no).token.clone()),
                    body: Some(format!(
                        r#"{{"service_id":"{service}","start_at":"{}"}}"#,
                        c.start_at
                    )),
                    candidate: hot.then_some(i),
                }
            }
            Scenario::FreeSlots => {
                let p = loop {
                    let p = fastrand::usize(..f.providers.len());
                    if p != f.hot {
                        break p;
                    }
                };
                let start = i64::from(fastrand::u8(0..7));
                let client = self.client_of(f.providers[p].org_no);
                get(
                    format!(
                        "{base}/api/v1/providers/{}/slots?service_id={}&from={}&to={}",
                        f.providers[p].id,
                        f.service[p],
                        chrono_free::date_from_now(start),
                        chrono_free::date_from_now(start + 6)
                    ),
                    &client.token,
                )
            }
            Scenario::HealthReady => Request {
                method: reqwest::Method::GET,
                url: format!("{base}/health/ready"),
                token: None,
                body: None,
                candidate: None,
            },
        }
    }

    /// After a hot booking: the slot is taken (by us or by a competitor), or not
    /// bookable; either way everyone moves to the next one.
    fn settle(&self, request: &Request, status: Option<u16>) {
        if let (Some(i), Some(201 | 409 | 422)) = (request.candidate, status) {
            let _ =
                self.next_candidate
                    .compare_exchange(i, i + 1, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

/// Sends one request; returns the status (None: no answer) and the body when asked.
async fn send(
    http: &reqwest::Client,
    r: &Request,
    want_body: bool,
) -> (Option<u16>, Option<String>) {
    let mut builder = http.request(r.method.clone(), &r.url);
    if let Some(token) = &r.token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = &r.body {
        builder = builder
            .header("content-type", "application/json")
            .body(body.clone());
    }
    match builder.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            // The body is always read to its end (the connection is reused), but
            // only a list's is kept, and nothing is decoded that is not used: the
            // load generator shares the cores with the server and PostgreSQL.
            let body = response.bytes().await.ok();
            let body = body
                .filter(|_| want_body)
                .and_then(|b| String::from_utf8(b.to_vec()).ok());
            (Some(status), body)
        }
        Err(_) => (None, None),
    }
}

/// The `next` cursor of a list page, as the URL of the following page. Only the
/// `next` member's value is parsed, not the page: inside a JSON string every `"` is
/// escaped, so the unescaped bytes `"next"` followed by a `:` can only be that member's
/// name (a string value `"next"` is followed by `,`, `]` or `}`), and no appointment
/// has a member of that name.
fn next_page(url: &str, body: &str) -> Option<String> {
    let value = body.rmatch_indices("\"next\"").find_map(|(at, name)| {
        body[at + name.len()..]
            .trim_start()
            .strip_prefix(':')
            .map(str::trim_start)
    })?;
    let next: Option<String> = serde_json::Deserializer::from_str(value)
        .into_iter()
        .next()?
        .ok()?;
    let base = url.split("&after=").next()?;
    Some(format!("{base}&after={}", percent_encode(&next?)))
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// How to drive the load.
#[derive(Debug, Clone, Copy)]
pub struct Drive {
    pub connections: usize,
    pub duration: Duration,
    /// Requests per second for all workers together (open loop); None: closed loop.
    pub rate: Option<f64>,
}

/// Runs the workload; returns what was recorded and the measured wall time.
pub async fn run(http: &reqwest::Client, work: &Arc<Workload>, drive: Drive) -> (Samples, f64) {
    let started = Instant::now();
    let deadline = started + drive.duration;
    let mut tasks = Vec::new();
    for w in 0..drive.connections {
        let http = http.clone();
        let work = work.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut cursor: Option<(usize, String)> = None;
            let interval = drive
                .rate
                .map(|r| Duration::from_secs_f64(drive.connections as f64 / r.max(0.001)));
            // Stagger paced workers over one interval.
            let mut scheduled = started
                + interval.map_or(Duration::ZERO, |i| {
                    i.mul_f64(w as f64 / drive.connections as f64)
                });
            loop {
                if interval.is_some() {
                    tokio::time::sleep_until(scheduled.into()).await;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let request = work.request(&mut cursor);
                let list = work.scenario == Scenario::ListAppointments;
                let sent = if interval.is_some() { scheduled } else { now };
                let (status, body) = send(&http, &request, list).await;
                let micros = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                samples.record(status, micros);
                work.settle(&request, status);
                if let (true, Some(body)) = (list, body) {
                    cursor =
                        next_page(&request.url, &body).map(|u| (provider_of(&work, &request), u));
                }
                if let Some(i) = interval {
                    scheduled += i;
                }
            }
            samples
        }));
    }
    let mut all = Samples::default();
    for t in tasks {
        if let Ok(s) = t.await {
            all.merge(s);
        }
    }
    (all, started.elapsed().as_secs_f64())
}

/// The provider whose token sent a list request (its next page goes with the same).
fn provider_of(work: &Workload, request: &Request) -> usize {
    let token = request.token.as_deref().unwrap_or_default();
    work.fixtures
        .providers
        .iter()
        .position(|p| p.token == token)
        .unwrap_or(0)
}

/// Sends `n` requests one after another (used to capture the SQL of one request at a
/// time); calls `after` after each answer with its status.
pub async fn one_by_one<F, Fut>(
    http: &reqwest::Client,
    work: &Arc<Workload>,
    n: usize,
    mut after: F,
) -> Vec<Option<u16>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut statuses = Vec::new();
    let mut cursor = None;
    for _ in 0..n {
        let request = work.request(&mut cursor);
        let (status, _) = send(http, &request, false).await;
        work.settle(&request, status);
        statuses.push(status);
        after().await;
    }
    statuses
}

pub use chrono_free::{civil_date, days_from_now};

/// Calendar arithmetic without a date crate: UTC dates and instants relative to now.
mod chrono_free {
    use std::time::{SystemTime, UNIX_EPOCH};

    fn today_days() -> i64 {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        secs.div_euclid(86_400)
    }

    /// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    pub fn civil(days: i64) -> (i64, u32, u32) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        (yoe + era * 400 + i64::from(m <= 2), m, d)
    }

    /// `YYYY-MM-DD` of a day count since 1970-01-01.
    pub fn civil_date(days: i64) -> String {
        let (y, m, d) = civil(days);
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// `YYYY-MM-DD`, `offset` days from today (UTC).
    pub fn date_from_now(offset: i64) -> String {
        civil_date(today_days() + offset)
    }

    /// Midnight UTC `offset` days from today, RFC 3339 (URL-safe form with `Z`).
    pub fn days_from_now(offset: i64) -> String {
        format!("{}T00:00:00Z", date_from_now(offset))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn civil_dates() {
            assert_eq!(super::civil(0), (1970, 1, 1));
            assert_eq!(super::civil(19_782), (2024, 2, 29));
            assert_eq!(super::civil(20_819), (2027, 1, 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_page_carries_the_encoded_cursor() {
        let url = "http://x/api/v1/appointments?status=completed&limit=20";
        let body = r#"{"items":[],"next":"2026-01-01T10:00:00+00:00/0195"}"#;
        assert_eq!(
            next_page(url, body).unwrap(),
            "http://x/api/v1/appointments?status=completed&limit=20&after=2026-01-01T10%3A00%3A00%2B00%3A00%2F0195"
        );
        let again = format!("{url}&after=abc");
        assert!(next_page(&again, body).unwrap().matches("&after=").count() == 1);
        assert_eq!(next_page(url, r#"{"items":[],"next":null}"#), None);
        // Neither a string quoting `"next":` nor a value "next" is taken for the member.
        let tricky = r#"{"items":[{"notes":"say \"next\": \"x\"","kind":"next"}], "next" : "c1"}"#;
        assert!(next_page(url, tricky).unwrap().ends_with("&after=c1"));
        let tricky = r#"{"next":"c2","items":[{"notes":"\"next\":\"x\"","kind":"next"}]}"#;
        assert!(next_page(url, tricky).unwrap().ends_with("&after=c2"));
    }

    #[test]
    fn scenario_keys_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::from_key(s.key()), Some(s));
        }
        assert_eq!(Scenario::from_key("a"), Some(Scenario::GetAppointment));
    }
}
