//! The driver pools' upkeep: bounded liveness checks and the maintenance task.
//!
//! sqlx's pool alone does not survive a network partition: its release check pings
//! with no time limit (a connection dropped mid-query into a black hole stays "in
//! use" until the kernel gives up, about 15 minutes later), its background refill
//! waits up to 300 s for a connect, and its reaper runs only every
//! `min(DB_IDLE_TIMEOUT, DB_POOL_RECYCLE)`. So the pool is configured to do none of
//! that itself, and this module does it with bounds:
//!
//! - **Before a connection is handed out** (with `DB_POOL_PRE_PING`, when it has
//!   been idle for [`PRE_PING_AFTER_IDLE`] or more) and **when it comes back**, a
//!   ping answered within `DB_PING_TIMEOUT`; a connection that fails
//!   or does not answer is closed at once (the socket is dropped) and replaced. Only
//!   on PostgreSQL: a SQLite connection is local and needs no liveness check.
//! - **Maintenance**, every [`DbSettings::maintenance_interval`] (30 s, or the
//!   shortest of the idle timeout and the recycle age when shorter) and whenever a
//!   connection has been discarded: it visits every idle connection (pinging it —
//!   which also keeps it from looking idle to a firewall or proxy), closes those
//!   idle longer than `DB_IDLE_TIMEOUT` while the pool is above its minimum and those
//!   older than `DB_POOL_RECYCLE`, then opens connections up to the minimum, each
//!   bounded by `DB_POOL_TIMEOUT`.
//! - **At startup** [`open_minimum`] opens the minimum before the server listens, so
//!   readiness never answers 200 on a pool that has not proven it can hold it.
//!
//! [`DbSettings::maintenance_interval`]: super::DbSettings::maintenance_interval

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sqlx::pool::{Pool, PoolConnection, PoolConnectionMetadata, PoolOptions};
use sqlx::{Connection, Database};
use tokio::sync::Notify;

use super::DbSettings;

tokio::task_local! {
    /// Set while maintenance visits idle connections: the acquire hook reports the
    /// age and the idle time of the connection it is about to hand out.
    static VISIT: Cell<Option<(Duration, Duration)>>;
}

/// With `DB_POOL_PRE_PING`, how long a connection must have sat idle before it is
/// pinged on its way out. One that came back less than this ago answered a
/// statement and its release check just then; pinging it again would cost every
/// request of a busy server a round trip. If it died in between (its backend
/// terminated, the server restarted), the transaction's `BEGIN` fails at once and is
/// retried on another connection ([`super::Db`]'s `open`); if the network
/// swallowed it, the request's own deadline (`REQUEST_TIMEOUT`) bounds the wait and
/// its release check discards it.
pub(super) const PRE_PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The last moment this process learned that its idle connections may be dead: it
/// ended sessions of its own pool ([`crate::ops::kill_idle`]), or a `BEGIN` found its
/// connection gone (a restarted server takes every idle connection with it). Until
/// each of them has been handed out once, a connection idle since before that moment
/// is pinged whatever [`PRE_PING_AFTER_IDLE`] says, so that one dead connection is
/// replaced instead of failing a statement run outside a transaction (which has no
/// `BEGIN` to retry). Connections used since are not affected. Lock-free: it is read
/// on every acquire.
#[derive(Debug)]
pub(super) struct Suspicion {
    base: Instant,
    /// Nanoseconds after `base`, plus one; zero while nothing was suspected.
    at: AtomicU64,
}

impl Suspicion {
    pub fn new() -> Self {
        Suspicion {
            base: Instant::now(),
            at: AtomicU64::new(0),
        }
    }

    /// Marks every connection idle at this moment as suspect.
    pub fn raise(&self) {
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.at.store(now + 1, Ordering::Relaxed);
    }

    /// Whether a connection idle for `idle_for` has been idle since the last
    /// suspicion.
    fn covers(&self, idle_for: Duration) -> bool {
        match self.at.load(Ordering::Relaxed) {
            0 => false,
            at => {
                let since = self
                    .base
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(at - 1));
                idle_for >= since
            }
        }
    }
}

/// How one pool is kept: its size limits and the bounds of its checks.
#[derive(Debug, Clone, Copy)]
pub(super) struct Policy {
    pub min: u32,
    pub max: u32,
    pub acquire_timeout: Duration,
    pub ping_timeout: Duration,
    /// Zero: idle connections are never closed for being idle.
    pub idle_timeout: Duration,
    /// Zero: connections are never closed for their age.
    pub recycle: Duration,
    pub pre_ping: bool,
    /// Whether connections cross a network (PostgreSQL) and so are pinged: a SQLite
    /// connection is a thread of this process on a local file, which no partition
    /// can cut, and pinging it would only lengthen the writer lane's turns.
    pub networked: bool,
}

impl Policy {
    pub fn new(s: &DbSettings, min: u32, max: u32) -> Self {
        Policy {
            min,
            max,
            acquire_timeout: s.pool_timeout,
            ping_timeout: s.ping_timeout,
            idle_timeout: s.idle_timeout,
            recycle: s.pool_recycle,
            pre_ping: s.pre_ping,
            networked: s.engine() == super::Engine::Postgres,
        }
    }

    /// Whether maintenance closes a visited connection of this age and idle time,
    /// in a pool of `size` connections.
    fn retires(&self, age: Duration, idle_for: Duration, size: u32) -> bool {
        let too_old = !self.recycle.is_zero() && age > self.recycle;
        let idle_above_minimum =
            !self.idle_timeout.is_zero() && idle_for > self.idle_timeout && size > self.min;
        too_old || idle_above_minimum
    }
}

/// The sqlx pool options for `policy`. `discarded` is notified whenever a returning
/// connection is thrown away, so that maintenance refills the pool at once; `suspicion`
/// makes connections idle since a suspected loss be pinged before they are handed out.
pub(super) fn options<DB: Database>(
    policy: Policy,
    discarded: Arc<Notify>,
    suspicion: Arc<Suspicion>,
) -> PoolOptions<DB> {
    let ping_timeout = policy.ping_timeout;
    let options = PoolOptions::<DB>::new()
        // The minimum is kept by `maintain`, with bounded connects; sqlx's own
        // refill waits up to 300 s for a connect that a black hole never answers.
        .min_connections(0)
        .max_connections(policy.max)
        .acquire_timeout(policy.acquire_timeout)
        // Checked by sqlx when a connection comes back; maintenance checks idle ones.
        .max_lifetime(nonzero(policy.recycle))
        .idle_timeout(None)
        // The pre-ping is the bounded one below, not sqlx's unbounded one.
        .test_before_acquire(false)
        .before_acquire(move |conn, meta: PoolConnectionMetadata| {
            let visiting = VISIT
                .try_with(|seen| seen.set(Some((meta.age, meta.idle_for))))
                .is_ok();
            let stale = (policy.pre_ping && meta.idle_for >= PRE_PING_AFTER_IDLE)
                || suspicion.covers(meta.idle_for);
            Box::pin(async move {
                if policy.networked && (stale || visiting) {
                    ping_within(conn, ping_timeout).await?;
                }
                Ok(true)
            })
        });
    if !policy.networked {
        return options;
    }
    // sqlx pings a returning connection with no time limit after this hook: the
    // bounded ping first means that one only ever runs on a connection that has just
    // answered. A failure here closes the connection.
    options.after_release(move |conn, _meta| {
        let discarded = discarded.clone();
        Box::pin(async move {
            let alive = ping_within(conn, ping_timeout).await;
            if alive.is_err() {
                discarded.notify_one();
            }
            alive.map(|()| true)
        })
    })
}

/// A ping answered within `limit`, else an error (the caller discards the connection).
async fn ping_within<C: Connection>(conn: &mut C, limit: Duration) -> Result<(), sqlx::Error> {
    match tokio::time::timeout(limit, conn.ping()).await {
        Ok(answer) => answer,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the connection did not answer a ping within DB_PING_TIMEOUT ({} ms)",
                limit.as_millis()
            ),
        ))),
    }
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Opens connections until the pool holds `policy.min`, each within
/// `DB_POOL_TIMEOUT`; the connections opened are held together (so each acquire
/// opens a new one) and then returned to the pool idle.
pub(super) async fn open_minimum<DB: Database>(
    pool: &Pool<DB>,
    policy: &Policy,
    mut held: Vec<PoolConnection<DB>>,
) -> Result<(), sqlx::Error> {
    while pool.size() < policy.min && (held.len() as u32) < policy.max {
        held.push(pool.acquire().await?);
    }
    Ok(())
}

/// One round of maintenance (see the module docs).
pub(super) async fn maintain<DB: Database>(pool: &Pool<DB>, policy: &Policy) {
    let mut held = Vec::new();
    let idle = pool.num_idle();
    for _ in 0..idle {
        // Another caller may have taken the rest: never open a connection to visit.
        if pool.num_idle() == 0 || pool.is_closed() {
            break;
        }
        let (acquired, seen) = VISIT
            .scope(Cell::new(None), async {
                let acquired = pool.acquire().await;
                (acquired, VISIT.with(Cell::get))
            })
            .await;
        let Ok(conn) = acquired else { break };
        match seen {
            Some((age, idle_for)) if policy.retires(age, idle_for, pool.size()) => {
                let _ = conn.close().await;
            }
            _ => held.push(conn),
        }
    }
    if !pool.is_closed()
        && let Err(error) = open_minimum(pool, policy, held).await
    {
        tracing::warn!(%error, min = policy.min, "could not open the pool's minimum connections");
    }
}

/// Runs `round` on `interval` and whenever `discarded` is notified, until `owner`
/// (the handle that owns the pools) is gone or `round` says the pools are closed.
pub(super) fn spawn_maintenance<T, F, Fut>(
    owner: Weak<T>,
    interval: Duration,
    discarded: Arc<Notify>,
    round: F,
) where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        loop {
            let Some(owner) = owner.upgrade() else { return };
            if !round(owner).await {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = discarded.notified() => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_connections_above_the_minimum_and_old_ones_are_retired() {
        let policy = Policy {
            min: 2,
            max: 5,
            acquire_timeout: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(240),
            recycle: Duration::from_secs(1800),
            pre_ping: true,
            networked: true,
        };
        let s = Duration::from_secs;
        assert!(!policy.retires(s(10), s(10), 5));
        assert!(policy.retires(s(10), s(241), 3), "idle, above the minimum");
        assert!(!policy.retires(s(10), s(241), 2), "idle, at the minimum");
        assert!(
            policy.retires(s(1801), s(0), 2),
            "too old, even at the minimum"
        );
        let forever = Policy {
            idle_timeout: Duration::ZERO,
            recycle: Duration::ZERO,
            ..policy
        };
        assert!(!forever.retires(s(100_000), s(100_000), 5));
    }

    #[test]
    fn a_suspicion_covers_only_connections_idle_since_before_it() {
        let suspicion = Suspicion::new();
        assert!(!suspicion.covers(Duration::MAX), "nothing suspected yet");
        suspicion.raise();
        assert!(
            suspicion.covers(Duration::from_secs(3600)),
            "idle since before"
        );
        std::thread::sleep(Duration::from_millis(2));
        assert!(!suspicion.covers(Duration::ZERO), "used since");
    }
}
