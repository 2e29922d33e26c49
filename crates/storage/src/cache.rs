//! The read cache: reads that are frequent and change rarely — the catalogue (niches,
//! categories, service templates, services) and the provider settings and rules
//! behind free slots (settings, availability, breaks, blocks).
//!
//! - **Owned, not global**: a [`ReadCache`] is built from [`CacheConfig`] by whoever
//!   runs the server (one per process, in the application state) and passed to the
//!   reads that use it. Two servers in one process (tests) have two caches.
//! - **Keys are per tenant and table**: an entry is `(organization, table, what)`,
//!   where `what` names the read (`""` for "every row of the table", a list's query
//!   string for a page). One tenant's entry is never served to another.
//! - **Read in the caller's transaction**: a miss loads with the connection the
//!   caller passes — in the server, the request's tenant transaction, so on
//!   PostgreSQL row-level security applies to what is cached like to any read.
//! - **Invalidated after commit**: writers call [`wrote`] (the generic repository
//!   does it for every write); inside a request run through [`ReadCache::track`]
//!   that records the table, and the unit of work calls [`ReadCache::invalidate`]
//!   only once its commit has succeeded. A request never caches, nor is served, a
//!   table it wrote itself (it reads its own uncommitted rows from the database).
//! - **No stale refill**: a miss stores what it loaded only if no invalidation
//!   happened since the request began (its snapshot could predate the write), so a
//!   slow reader cannot put rows back that a commit has just replaced.
//! - **Across processes** (PostgreSQL): a trigger on each cached table sends
//!   `NOTIFY agenda_cache, '<organization>:<table>:<origin>'`, which PostgreSQL
//!   delivers only when the writing transaction commits; [`listen`] invalidates on
//!   each one, and clears everything after it (re)connects (notifications may have
//!   been missed). A server tags its own commits with its cache's [`ReadCache::origin`]
//!   ([`ReadCache::tag_commit`]) and skips those notifications: it invalidated
//!   already.
//!   Without a listener (SQLite in several processes, `CACHE_LISTEN_URL=off`) an
//!   entry is at most [`CacheConfig::ttl`] old: that is the staleness bound.
//! - **Size**: at most [`CacheConfig::max_entries`] entries, least recently used
//!   evicted first; a TTL of zero turns caching off.
//! - **Observable**: [`ReadCache::stats`] gives hits, misses, invalidations, entries.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agenda_entity::{
    availability, blocked_time_slot, category, niche, provider_break, provider_settings, service,
    service_template,
};
use moka::sync::Cache;
use sea_orm::{ColumnTrait, ConnectionTrait, IdenStatic, QueryFilter, QueryOrder};
use serde::Serialize;
use uuid::Uuid;

use crate::error::StorageError;
use crate::tenant::{TenantOwned, TenantScope};

/// Cache settings, from the environment (`CACHE_TTL`, `CACHE_MAX_ENTRIES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    pub ttl: Duration,
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(60),
            max_entries: 10_000,
        }
    }
}

/// Hit and miss counts since the cache was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub invalidations: u64,
    pub entries: u64,
    /// Whether invalidations from other processes arrive (PostgreSQL listener up).
    pub listening: bool,
}

/// The tables whose reads are cached. Migration 15 puts the `NOTIFY` trigger on each
/// (a migration keeps its own frozen list; a test checks every table here has one).
pub const CACHED_TABLES: &[&str] = &[
    "niches",
    "categories",
    "service_templates",
    "services",
    "provider_settings",
    "availability",
    "provider_breaks",
    "blocked_time_slots",
];

/// The channel the cached tables' trigger notifies on.
pub const CHANNEL: &str = "agenda_cache";

/// `(organization, table, generation, what)`: bumping a table's generation makes all
/// its older entries unreachable at once (they age out by TTL or size).
type Key = (Uuid, &'static str, u64, String);
type Entry = Arc<dyn Any + Send + Sync>;

/// The read cache of one server process; cheap to clone (clones share entries).
#[derive(Clone)]
pub struct ReadCache {
    inner: Arc<Inner>,
}

struct Inner {
    /// Tags this cache's own commits in the `NOTIFY` payload.
    origin: Uuid,
    /// Whether [`listen`] holds a listening connection right now.
    listening: std::sync::atomic::AtomicBool,
    entries: Option<Cache<Key, Entry>>,
    generations: Mutex<HashMap<(Uuid, &'static str), u64>>,
    /// Bumped by every invalidation; a miss stores only if it did not move.
    epoch: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
}

/// The tables a request wrote and the cache epoch when it began.
struct RequestState {
    epoch: u64,
    written: RefCell<Vec<(Uuid, &'static str)>>,
}

tokio::task_local! {
    static REQUEST: RequestState;
}

/// Tables written by one request, to invalidate after its commit.
#[derive(Debug, Default)]
pub struct Written(Vec<(Uuid, &'static str)>);

impl Written {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Records that the current request wrote `table` in `scope`'s organization (a
/// no-op outside a request tracked by [`ReadCache::track`], or for a table that is
/// not cached).
pub fn wrote(scope: TenantScope, table: &str) {
    let Some(table) = cached_table(table) else {
        return;
    };
    let _ = REQUEST.try_with(|r| {
        let mut written = r.written.borrow_mut();
        let key = (scope.organization_id(), table);
        if !written.contains(&key) {
            written.push(key);
        }
    });
}

/// The `&'static` name of a cached table, `None` for any other table.
pub fn cached_table(name: &str) -> Option<&'static str> {
    CACHED_TABLES.iter().copied().find(|t| *t == name)
}

fn written_by_this_request(organization: Uuid, table: &'static str) -> bool {
    REQUEST
        .try_with(|r| r.written.borrow().contains(&(organization, table)))
        .unwrap_or(false)
}

impl ReadCache {
    pub fn new(config: CacheConfig) -> Self {
        let entries = (!config.ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(config.max_entries)
                .time_to_live(config.ttl)
                .build()
        });
        ReadCache {
            inner: Arc::new(Inner {
                origin: Uuid::new_v4(),
                listening: std::sync::atomic::AtomicBool::new(false),
                entries,
                generations: Mutex::default(),
                epoch: AtomicU64::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                invalidations: AtomicU64::new(0),
            }),
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            entries: c.entries.as_ref().map_or(0, |e| {
                e.run_pending_tasks();
                e.entry_count()
            }),
            listening: c.listening.load(Ordering::Acquire),
        }
    }

    /// The id this cache tags its own server's commits with.
    pub fn origin(&self) -> Uuid {
        self.inner.origin
    }

    /// On PostgreSQL, marks the transaction's `NOTIFY`s (sent at commit by the cached
    /// tables' trigger) as this cache's own, so its listener skips them. Call it
    /// just before committing a request that wrote cached tables.
    pub async fn tag_commit(&self, tx: &impl ConnectionTrait) -> Result<(), StorageError> {
        if tx.get_database_backend() == sea_orm::DbBackend::Postgres {
            tx.execute_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT set_config('app.cache_origin', $1, true)",
                [self.inner.origin.to_string().into()],
            ))
            .await?;
        }
        Ok(())
    }

    /// Runs one request's work, recording the cached tables it writes ([`wrote`]).
    /// Invalidate what it returns once the request's commit has succeeded.
    pub async fn track<F: Future>(&self, work: F) -> (F::Output, Written) {
        let state = RequestState {
            epoch: self.inner.epoch.load(Ordering::Acquire),
            written: RefCell::default(),
        };
        REQUEST
            .scope(state, async {
                let output = work.await;
                let written = REQUEST.with(|r| r.written.take());
                (output, Written(written))
            })
            .await
    }

    /// Drops the entries of the tables a committed request wrote.
    pub fn invalidate_written(&self, written: &Written) {
        for (organization, table) in &written.0 {
            self.invalidate(*organization, table);
        }
    }

    /// Drops every entry of `table` in `organization` (a no-op for a table that is
    /// not cached).
    pub fn invalidate(&self, organization: Uuid, table: &str) {
        let Some(table) = cached_table(table) else {
            return;
        };
        let c = &self.inner;
        if let Ok(mut generations) = c.generations.lock() {
            *generations.entry((organization, table)).or_default() += 1;
        }
        c.epoch.fetch_add(1, Ordering::AcqRel);
        c.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops everything (after the listener lost notifications).
    pub fn clear(&self) {
        let c = &self.inner;
        c.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(entries) = &c.entries {
            entries.invalidate_all();
        }
        c.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    fn generation(&self, organization: Uuid, table: &'static str) -> u64 {
        self.inner
            .generations
            .lock()
            .map(|g| g.get(&(organization, table)).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The value of the read `what` of `table` in `scope`, from the cache when fresh,
    /// else from `load` (run on the caller's connection).
    /// A table that is not cached is always loaded.
    pub async fn get_or_load<T, E, Fut>(
        &self,
        scope: TenantScope,
        table: &str,
        what: &str,
        load: impl FnOnce() -> Fut,
    ) -> Result<Arc<T>, E>
    where
        T: Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>>,
    {
        let c = &self.inner;
        let organization = scope.organization_id();
        let (Some(entries), Some(table)) = (&c.entries, cached_table(table)) else {
            return load().await.map(Arc::new);
        };
        if written_by_this_request(organization, table) {
            // Its own uncommitted rows: read them, never cache them.
            c.misses.fetch_add(1, Ordering::Relaxed);
            return load().await.map(Arc::new);
        }
        let key = (
            organization,
            table,
            self.generation(organization, table),
            what.to_owned(),
        );
        if let Some(hit) = entries.get(&key)
            && let Ok(value) = hit.downcast::<T>()
        {
            c.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(value);
        }
        c.misses.fetch_add(1, Ordering::Relaxed);
        let began = REQUEST
            .try_with(|r| r.epoch)
            .unwrap_or_else(|_| c.epoch.load(Ordering::Acquire));
        let value = Arc::new(load().await?);
        if c.epoch.load(Ordering::Acquire) == began {
            entries.insert(key, value.clone() as Entry);
        }
        Ok(value)
    }

    /// All rows of `E` in the scope's organization.
    pub async fn rows<E>(
        &self,
        db: &impl ConnectionTrait,
        scope: TenantScope,
    ) -> Result<Arc<Vec<E::Model>>, StorageError>
    where
        E: Cached,
        E::Model: Send + Sync + 'static,
    {
        self.get_or_load(scope, E::default().table_name(), "", || async {
            Ok(E::find_in(scope).order_by_asc(E::order()).all(db).await?)
        })
        .await
    }
}

/// The rows of `E` in the scope's organization whose `column` is `id` (a provider's
/// rules, a service by id), through `cache` when given — a booking passes `None`: it
/// checks its slot against the database itself.
pub async fn rows_where<E>(
    cache: Option<&ReadCache>,
    db: &impl ConnectionTrait,
    scope: TenantScope,
    column: E::Column,
    id: Uuid,
) -> Result<Arc<Vec<E::Model>>, StorageError>
where
    E: Cached,
    E::Model: Send + Sync + 'static,
{
    let load = || async {
        Ok(E::find_in(scope)
            .filter(column.eq(id))
            .order_by_asc(E::order())
            .all(db)
            .await?)
    };
    match cache {
        Some(cache) => {
            let what = format!("{}={id}", column.as_str());
            cache
                .get_or_load(scope, E::default().table_name(), &what, load)
                .await
        }
        None => load().await.map(Arc::new),
    }
}

/// A table whose rows are served through [`ReadCache::rows`].
pub trait Cached: TenantOwned + Default
where
    Self::Model: Send + Sync + 'static,
{
    /// The order rows are returned in.
    fn order() -> Self::Column;
}

macro_rules! cached {
    ($($module:ident => $order:ident),* $(,)?) => {$(
        impl Cached for $module::Entity {
            fn order() -> Self::Column {
                $module::Column::$order
            }
        }
    )*};
}

cached! {
    niche => SortOrder,
    category => SortOrder,
    service_template => Name,
    service => Id,
    provider_settings => Id,
    availability => Id,
    provider_break => Id,
    blocked_time_slot => Id,
}

/// Invalidates `cache` on every `NOTIFY agenda_cache` from PostgreSQL at `url` (a
/// direct connection: `LISTEN` does not work through a transaction-mode pooler),
/// until the process ends. It reconnects with backoff (1 s doubling to 30 s) and
/// clears the whole cache whenever the connection was lost, since notifications
/// sent meanwhile are gone; while it is down, the TTL bounds staleness.
pub fn listen(cache: ReadCache, url: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            let (listened, e) = listen_once(&cache, &url).await;
            if listened {
                backoff = Duration::from_secs(1);
            }
            cache.clear();
            tracing::warn!(error = %e, retry_s = backoff.as_secs(), "cache listener: no connection; entries expire by TTL meanwhile");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    })
}

/// One listening connection, until it fails: whether it got to listen, and why it
/// stopped.
async fn listen_once(cache: &ReadCache, url: &str) -> (bool, sqlx::Error) {
    let mut listener = match sqlx::postgres::PgListener::connect(url).await {
        Ok(listener) => listener,
        Err(e) => return (false, e),
    };
    if let Err(e) = listener.listen(CHANNEL).await {
        return (false, e);
    }
    // Anything committed while we were not listening may not have reached us.
    cache.clear();
    cache.inner.listening.store(true, Ordering::Release);
    tracing::info!("cache listener: listening for invalidations");
    let own = cache.origin().to_string();
    let error = loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                let mut parts = notification.payload().splitn(3, ':');
                let (Some(organization), Some(table), origin) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                if origin == Some(own.as_str()) {
                    continue;
                }
                if let Ok(organization) = organization.parse::<Uuid>() {
                    cache.invalidate(organization, table);
                }
            }
            // The connection was lost and sqlx connected again: whatever was sent
            // in between is gone.
            Ok(None) => {
                cache.clear();
                tracing::warn!("cache listener: connection lost and re-established; cache cleared");
            }
            Err(e) => break e,
        }
    };
    cache.inner.listening.store(false, Ordering::Release);
    (true, error)
}
