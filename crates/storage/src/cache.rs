//! An in-process cache for reads that are frequent and change rarely: the catalogue
//! (niches, categories, service templates) and provider settings.
//!
//! - **What is cached**: all rows of one cached table for one organization, as one
//!   entry (`(organization, table)` → `Arc<Vec<Model>>`). These tables are small per
//!   tenant, and "the whole catalogue of this organization" is what the screens read.
//! - **Per tenant**: the key starts with the organization; one tenant's entry is never
//!   served to another, and a write invalidates only its own tenant's entry.
//! - **TTL and size**: entries live at most [`CacheConfig::ttl`] (default 60 s) and
//!   the cache holds at most [`CacheConfig::max_entries`] entries (least recently used
//!   evicted first). A TTL of zero turns caching off.
//! - **Invalidation**: every write through the generic repository
//!   ([`crate::repo::resource::Repo`]) to a cached table drops that tenant's entry, so
//!   the next read goes to the database. Code that writes these tables another way
//!   must call [`invalidate`].
//! - **The race, and its bound**: the entry is dropped when the write statement runs,
//!   not when its transaction commits. A read in that window (another connection,
//!   before the commit) can cache the old rows again; they are then served until the
//!   next write or for at most the TTL. Within one request (one transaction) a write is
//!   always visible to the next read.
//! - **Observable**: [`stats`] returns hit, miss and invalidation counts and the
//!   current number of entries.
//!
//! The cache is one per process, like the pool.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use agenda_entity::{category, niche, provider_settings, service_template};
use moka::sync::Cache;
use sea_orm::{DatabaseConnection, QueryOrder};
use serde::Serialize;
use uuid::Uuid;

use crate::error::StorageError;
use crate::tenant::{TenantOwned, TenantScope};

/// Cache settings, from the environment (`CACHE_TTL_SECONDS`, `CACHE_MAX_ENTRIES`).
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

/// Hit and miss counts since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub invalidations: u64,
    pub entries: u64,
}

type Key = (Uuid, &'static str);
type Entry = Arc<dyn Any + Send + Sync>;

struct ReadCache {
    entries: Option<Cache<Key, Entry>>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
}

static CONFIG: RwLock<Option<CacheConfig>> = RwLock::new(None);
static CACHE: OnceLock<ReadCache> = OnceLock::new();

/// Sets the cache settings. Call once at startup, before the first cached read;
/// later calls have no effect on an already built cache.
pub fn configure(config: CacheConfig) {
    if let Ok(mut slot) = CONFIG.write() {
        *slot = Some(config);
    }
}

fn cache() -> &'static ReadCache {
    CACHE.get_or_init(|| {
        let config = CONFIG.read().ok().and_then(|c| *c).unwrap_or_default();
        let entries = (!config.ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(config.max_entries)
                .time_to_live(config.ttl)
                .build()
        });
        ReadCache {
            entries,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    })
}

/// Counts so far.
pub fn stats() -> CacheStats {
    let c = cache();
    CacheStats {
        hits: c.hits.load(Ordering::Relaxed),
        misses: c.misses.load(Ordering::Relaxed),
        invalidations: c.invalidations.load(Ordering::Relaxed),
        entries: c.entries.as_ref().map_or(0, |e| {
            e.run_pending_tasks();
            e.entry_count()
        }),
    }
}

/// Drops the tenant's entry for `table` (a no-op for tables that are not cached).
pub fn invalidate(scope: TenantScope, table: &'static str) {
    let c = cache();
    if let Some(entries) = &c.entries
        && CACHED_TABLES.contains(&table)
    {
        entries.invalidate(&(scope.organization_id(), table));
        c.invalidations.fetch_add(1, Ordering::Relaxed);
    }
}

/// The tables whose rows are cached.
pub const CACHED_TABLES: &[&str] = &[
    "niches",
    "categories",
    "service_templates",
    "provider_settings",
];

/// A table served through the cache.
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
    provider_settings => Id,
}

/// All rows of `E` in the scope's organization, from the cache when fresh.
///
/// It takes the pool, not a transaction: only committed rows are cached. Inside a
/// transaction, read the table directly (the transaction sees its own writes).
pub async fn all<E>(
    db: &DatabaseConnection,
    scope: TenantScope,
) -> Result<Arc<Vec<E::Model>>, StorageError>
where
    E: Cached,
    E::Model: Send + Sync + 'static,
{
    let c = cache();
    let table = E::default().table_name();
    let key = (scope.organization_id(), table);
    if let Some(entries) = &c.entries
        && let Some(hit) = entries.get(&key)
        && let Ok(rows) = hit.downcast::<Vec<E::Model>>()
    {
        c.hits.fetch_add(1, Ordering::Relaxed);
        return Ok(rows);
    }
    c.misses.fetch_add(1, Ordering::Relaxed);
    let rows = Arc::new(E::find_in(scope).order_by_asc(E::order()).all(db).await?);
    if let Some(entries) = &c.entries {
        entries.insert(key, rows.clone() as Entry);
    }
    Ok(rows)
}

/// One provider's settings, through the cache.
pub async fn provider_settings(
    db: &DatabaseConnection,
    scope: TenantScope,
    provider_id: Uuid,
) -> Result<Option<provider_settings::Model>, StorageError> {
    Ok(all::<provider_settings::Entity>(db, scope)
        .await?
        .iter()
        .find(|s| s.provider_id == provider_id)
        .cloned())
}
