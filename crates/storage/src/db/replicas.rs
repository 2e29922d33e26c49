//! Streaming read replicas (`DATABASE_READ_URL`): their pools, their observed state,
//! and which one a read may use.
//!
//! Each replica has a pool of its own (the primary's settings, its own URL), opened
//! lazily so that a replica that is down never stops the server. A monitor checks
//! every replica once per [`CHECK_INTERVAL`] (bounded by `DB_PING_TIMEOUT`): whether
//! it answers, whether it is still a standby, how far its replay is behind
//! (`now() - pg_last_xact_replay_timestamp()` while WAL it has received is not yet
//! replayed, else 0) and the WAL position it has replayed. A replica that is down,
//! promoted, or more than `DB_REPLICA_MAX_LAG` behind is skipped.
//!
//! **Read-your-writes.** After a write transaction of a session commits, the
//! primary's WAL insert position (`pg_current_wal_insert_lsn()`, at or past the end
//! of the commit record) is kept as that session's *fence*. A later read of the session
//! uses a replica only once its replayed position (`pg_last_wal_replay_lsn()`) has
//! reached the fence, waiting for that at most `DB_REPLICA_WAIT`; otherwise it reads
//! from the primary. A fence is forgotten once every replica has passed it, or after
//! [`FENCE_TTL`]. Fences live in the process that served the write: see
//! `docs/scaling.md` for what that means with several processes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::Row as _;

use super::Db;

/// How often the monitor checks every replica.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The longest a session's fence is kept (far past any lag a usable replica has).
const FENCE_TTL: Duration = Duration::from_secs(300);

/// A WAL position (`pg_lsn`), as the 64-bit number its `X/Y` text form spells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lsn(pub u64);

impl Lsn {
    pub fn parse(text: &str) -> Option<Lsn> {
        let (high, low) = text.trim().split_once('/')?;
        let high = u64::from_str_radix(high, 16).ok()?;
        let low = u64::from_str_radix(low, 16).ok()?;
        Some(Lsn((high << 32) | low))
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// What readiness, `db status` and `/metrics` show of one replica.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    /// The replica's URL without its password.
    pub url: String,
    /// `up` (in use), `lagging` (behind by more than `DB_REPLICA_MAX_LAG`), `down`
    /// (not answering, or no longer a standby), or `unknown` (not checked yet).
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_lsn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Reads this replica has served since the process started.
    pub reads: u64,
}

pub(super) struct Replicas {
    members: Vec<Member>,
    max_lag: Duration,
    wait: Duration,
    ping_timeout: Duration,
    next: AtomicUsize,
    fences: Mutex<HashMap<String, (Lsn, Instant)>>,
}

struct Member {
    db: Db,
    url: String,
    observed: Mutex<Observed>,
    reads: AtomicU64,
}

#[derive(Clone, Default)]
struct Observed {
    checked: bool,
    answering: bool,
    lag: Option<Duration>,
    replay: Option<Lsn>,
    error: Option<String>,
}

impl Observed {
    fn usable(&self, max_lag: Duration) -> bool {
        self.answering && self.lag.is_some_and(|lag| lag <= max_lag)
    }
}

impl Replicas {
    pub(super) fn new(members: Vec<(Db, String)>, settings: &super::DbSettings) -> Replicas {
        Replicas {
            members: members
                .into_iter()
                .map(|(db, url)| Member {
                    db,
                    url,
                    observed: Mutex::default(),
                    reads: AtomicU64::new(0),
                })
                .collect(),
            max_lag: settings.replica_max_lag,
            wait: settings.replica_wait,
            ping_timeout: settings.ping_timeout,
            next: AtomicUsize::new(0),
            fences: Mutex::default(),
        }
    }

    /// One round of the monitor: every replica checked, each within `DB_PING_TIMEOUT`.
    pub(super) async fn check_all(&self) {
        for member in &self.members {
            let observed = match tokio::time::timeout(self.ping_timeout, observe(&member.db)).await
            {
                Ok(Ok(observed)) => observed,
                Ok(Err(error)) => Observed {
                    checked: true,
                    error: Some(error),
                    ..Observed::default()
                },
                Err(_) => Observed {
                    checked: true,
                    error: Some(format!(
                        "no answer within DB_PING_TIMEOUT ({} ms)",
                        self.ping_timeout.as_millis()
                    )),
                    ..Observed::default()
                },
            };
            let was_usable = member.state().usable(self.max_lag);
            let usable = observed.usable(self.max_lag);
            if was_usable != usable {
                tracing::warn!(
                    replica = %member.url,
                    usable,
                    lag_ms = observed.lag.map(|l| l.as_millis() as u64),
                    error = observed.error.as_deref().unwrap_or(""),
                    "read replica {}",
                    if usable { "back in use" } else { "skipped" }
                );
            }
            *member.observed.lock().unwrap_or_else(|p| p.into_inner()) = observed;
        }
    }

    /// A replica for a read of the session `fence_key` (its bearer token's digest),
    /// or `None` when the read must go to the primary: no replica is usable, or none
    /// replays the session's last write within `DB_REPLICA_WAIT`.
    pub(super) async fn choose(&self, fence_key: Option<&str>) -> Option<Db> {
        let fence = fence_key.and_then(|key| self.fence(key));
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let usable: Vec<&Member> = (0..n)
            .map(|i| &self.members[(start + i) % n])
            .filter(|m| m.state().usable(self.max_lag))
            .collect();
        let Some(fence) = fence else {
            return usable.first().map(|m| m.serve());
        };
        if let Some(member) = usable
            .iter()
            .find(|m| m.state().replay.is_some_and(|r| r >= fence))
        {
            return Some(member.serve());
        }
        // Wait (bounded) for the first usable replica to replay the session's write.
        let member = usable.first()?;
        let deadline = Instant::now() + self.wait;
        loop {
            if let Ok(Ok(replayed)) =
                tokio::time::timeout(self.ping_timeout, replay_lsn(&member.db)).await
                && replayed >= fence
            {
                return Some(member.serve());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            tokio::time::sleep(left.min(Duration::from_millis(5))).await;
        }
    }

    /// Keeps `lsn` as the fence of session `key`.
    pub(super) fn fence_at(&self, key: &str, lsn: Lsn) {
        let mut fences = self.fences.lock().unwrap_or_else(|p| p.into_inner());
        if fences.len() > 10_000 {
            fences.retain(|_, (_, at)| at.elapsed() < FENCE_TTL);
        }
        fences.insert(key.to_owned(), (lsn, Instant::now()));
    }

    fn fence(&self, key: &str) -> Option<Lsn> {
        let mut fences = self.fences.lock().unwrap_or_else(|p| p.into_inner());
        let (lsn, at) = *fences.get(key)?;
        let everyone_passed = self
            .members
            .iter()
            .all(|m| m.state().replay.is_some_and(|r| r >= lsn));
        if everyone_passed || at.elapsed() >= FENCE_TTL {
            fences.remove(key);
            return None;
        }
        Some(lsn)
    }

    pub(super) fn status(&self) -> Vec<ReplicaStatus> {
        self.members
            .iter()
            .map(|m| {
                let o = m.state();
                let state = if !o.checked {
                    "unknown"
                } else if !o.answering {
                    "down"
                } else if o.usable(self.max_lag) {
                    "up"
                } else {
                    "lagging"
                };
                ReplicaStatus {
                    url: m.url.clone(),
                    state,
                    lag_ms: o.lag.map(|l| l.as_millis() as u64),
                    replay_lsn: o.replay.map(|l| l.to_string()),
                    error: o.error.clone(),
                    reads: m.reads.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    pub(super) fn dbs(&self) -> impl Iterator<Item = &Db> {
        self.members.iter().map(|m| &m.db)
    }
}

impl Member {
    fn state(&self) -> Observed {
        self.observed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn serve(&self) -> Db {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.db.clone()
    }
}

/// One check of a replica. Simple queries only (they prepare nothing, so they are
/// safe behind PgBouncer's transaction mode too).
async fn observe(db: &Db) -> Result<Observed, String> {
    let pool = db.postgres_pool().ok_or("not PostgreSQL")?;
    let row = sqlx::raw_sql(
        "SELECT pg_is_in_recovery()::text, coalesce(pg_last_wal_replay_lsn()::text, ''), \
                (CASE WHEN pg_last_wal_receive_lsn() IS NULL \
                        OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0 \
                      ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) \
                 END * 1000)::int8::text",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| super::redact(&e.to_string()))?;
    let text = |i: usize| row.try_get::<String, _>(i).map_err(|e| e.to_string());
    if text(0)? != "true" {
        return Ok(Observed {
            checked: true,
            error: Some("not a standby (promoted?)".to_owned()),
            ..Observed::default()
        });
    }
    let lag_ms: u64 = text(2)?.parse().map_err(|_| "unreadable lag".to_owned())?;
    Ok(Observed {
        checked: true,
        answering: true,
        lag: Some(Duration::from_millis(lag_ms)),
        replay: Lsn::parse(&text(1)?),
        error: None,
    })
}

async fn replay_lsn(db: &Db) -> Result<Lsn, String> {
    lsn_of(db, "SELECT coalesce(pg_last_wal_replay_lsn()::text, '0/0')").await
}

/// The primary's WAL insert position now: after a commit, at or past its record.
pub(super) async fn primary_lsn(db: &Db) -> Result<Lsn, String> {
    lsn_of(db, "SELECT pg_current_wal_insert_lsn()::text").await
}

/// The one `pg_lsn` (as text) that `sql`, a simple query, returns.
async fn lsn_of(db: &Db, sql: &'static str) -> Result<Lsn, String> {
    let pool = db.postgres_pool().ok_or("not PostgreSQL")?;
    let row = sqlx::raw_sql(sql)
        .fetch_one(pool)
        .await
        .map_err(|e| super::redact(&e.to_string()))?;
    let text: String = row.try_get(0).map_err(|e| e.to_string())?;
    Lsn::parse(&text).ok_or_else(|| format!("unreadable LSN {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_parse_compare_and_print() {
        let a = Lsn::parse("0/16B3748").unwrap();
        let b = Lsn::parse("1/0").unwrap();
        assert!(a < b);
        assert_eq!(b.0, 1 << 32);
        assert_eq!(a.to_string(), "0/16B3748");
        assert_eq!(Lsn::parse("nonsense"), None);
    }
}
