//! Test-only helpers: a fresh, migrated database per test on SQLite and on a real
//! PostgreSQL, [`both_engines!`] to run one test body on both, and a TCP
//! [`proxy`] that can stall or black-hole the traffic between a server and its
//! database.
//!
//! ```ignore
//! agenda_testkit::both_engines! {
//!     async fn creates_an_organization(t: TestDb) {
//!         let org = OrganizationRepo::create(t.conn(), input).await.unwrap();
//!         assert_eq!(org.slug, "acme");
//!     }
//! }
//! ```
//!
//! expands to `creates_an_organization::sqlite` and `creates_an_organization::postgres`.
//! The PostgreSQL half needs a server (see [`postgres`]); when none can be started it
//! fails under `CI=true` and is skipped with a loud message elsewhere.

pub mod otlp;
pub mod pgbouncer;
pub mod postgres;
pub mod proxy;
pub mod smtp;
pub mod tools;

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use agenda_storage::db::{DatabaseUrl, Db, DbSettings, Engine};
use agenda_storage::ops::AppRoleSpec;
use migration::{Migrator, MigratorTrait};

pub use agenda_storage;

/// A migrated database of its own for one test, and a pool on it.
pub struct TestDb {
    pub db: Db,
    /// The settings the pool was built from (tests may open a second pool with them).
    pub settings: DbSettings,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteFile(PathBuf),
    /// A database on an external server, dropped when the test ends.
    ExternalPostgres {
        admin_url: String,
        name: String,
    },
    /// A database on this process's own server, removed with the server.
    LocalPostgres,
}

impl Deref for TestDb {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.db
    }
}

/// The application role tests run the server as on PostgreSQL (see
/// [`TestDb::app_role_settings`]). Test-only credentials of a throwaway cluster.
pub const APP_ROLE: &str = "agenda_test_app";
pub(crate) const APP_ROLE_PASSWORD: &str = "agenda-test-app-only";

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    )
}

/// Pool settings for tests: small, no idle connections kept, quick timeouts.
pub fn test_settings(url: DatabaseUrl) -> DbSettings {
    let mut s = DbSettings::new(url);
    s.pool_size = 0;
    s.max_overflow = 5;
    s.pool_timeout = Duration::from_secs(10);
    s.connect_retries = 1;
    s
}

impl TestDb {
    /// A fresh SQLite database file, copied from a migrated template.
    pub async fn sqlite() -> TestDb {
        Self::sqlite_with(|_| {}).await
    }

    /// Like [`TestDb::sqlite`], adjusting the pool settings first.
    pub async fn sqlite_with(adjust: impl FnOnce(&mut DbSettings)) -> TestDb {
        let template = sqlite_template();
        let path = std::env::temp_dir().join(format!("{}.db", unique_name("agenda_test")));
        std::fs::copy(template, &path).expect("copy the SQLite template");
        let url =
            DatabaseUrl::parse(&format!("sqlite://{}", path.display())).expect("valid sqlite URL");
        let mut settings = test_settings(url);
        adjust(&mut settings);
        let db = Db::connect(&settings)
            .await
            .expect("open the SQLite test database");
        TestDb {
            db,
            settings,
            cleanup: Cleanup::SqliteFile(path),
        }
    }

    /// A fresh PostgreSQL database cloned from the migrated template, or `None` when
    /// no PostgreSQL is available outside CI (a loud message says so).
    pub async fn postgres() -> Option<TestDb> {
        Self::postgres_with(|_| {}).await
    }

    /// Like [`TestDb::postgres`], adjusting the pool settings first.
    pub async fn postgres_with(adjust: impl FnOnce(&mut DbSettings)) -> Option<TestDb> {
        let server = match postgres::server() {
            Ok(server) => server,
            Err(reason) => {
                skip_or_fail(&reason);
                return None;
            }
        };
        let name = unique_name("agenda_test");
        postgres::create_database(server, &name)
            .await
            .unwrap_or_else(|e| panic!("create test database: {e}"));
        let url = DatabaseUrl::parse(&postgres::database_url(&server.admin_url, &name))
            .expect("valid URL");
        let mut settings = test_settings(url);
        adjust(&mut settings);
        let db = Db::connect(&settings)
            .await
            .expect("connect to the PostgreSQL test database");
        let cleanup = if server.local.is_some() {
            Cleanup::LocalPostgres
        } else {
            Cleanup::ExternalPostgres {
                admin_url: server.admin_url.clone(),
                name,
            }
        };
        Some(TestDb {
            db,
            settings,
            cleanup,
        })
    }

    /// A fresh, migrated database `name` on `cluster` (a server of the test's own,
    /// e.g. the primary of a standby), as its superuser.
    pub async fn postgres_on(cluster: &postgres::LocalCluster, name: &str) -> TestDb {
        cluster
            .exec("postgres", &format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
        let url = cluster.url(name);
        migrate_fresh(&url)
            .await
            .unwrap_or_else(|e| panic!("migrate {name}: {e}"));
        let settings = test_settings(DatabaseUrl::parse(&url).expect("valid URL"));
        let db = Db::connect(&settings)
            .await
            .expect("connect to the test database");
        TestDb {
            db,
            settings,
            cleanup: Cleanup::LocalPostgres,
        }
    }

    /// The database for `engine` (PostgreSQL may be `None`, see [`TestDb::postgres`]).
    pub async fn for_engine(engine: Engine) -> Option<TestDb> {
        match engine {
            Engine::Sqlite => Some(Self::sqlite().await),
            Engine::Postgres => Self::postgres().await,
        }
    }

    pub fn engine(&self) -> Engine {
        self.db.engine()
    }

    /// Settings for a pool that connects as the least-privilege application role
    /// ([`APP_ROLE`], made by `agenda_storage::ops::create_app_role` like `agenda db
    /// create-app-role`) on PostgreSQL, so that row-level security confines it the way
    /// it confines the production server. On SQLite, which has no roles, the settings
    /// of this database unchanged. The test's own pool ([`TestDb::db`]) stays the
    /// superuser, which row-level security does not restrict: set-up and checks see
    /// every tenant.
    pub async fn app_role_settings(&self) -> DbSettings {
        if self.engine() == Engine::Sqlite {
            return self.settings.clone();
        }
        // The role is cluster-wide: creating or updating it from concurrent tests
        // would race, so this process does it one test at a time.
        static ROLE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let guard = ROLE_LOCK.lock().await;
        let mut spec = AppRoleSpec::new(APP_ROLE, APP_ROLE_PASSWORD);
        spec.connection_limit = 500;
        agenda_storage::ops::create_app_role(&self.db, &spec)
            .await
            .unwrap_or_else(|e| panic!("create the application role: {e}"));
        drop(guard);
        let mut url = url::Url::parse(self.settings.url.expose()).expect("valid URL");
        url.set_username(APP_ROLE).expect("URL takes a user");
        url.set_password(Some(APP_ROLE_PASSWORD))
            .expect("URL takes a password");
        let mut settings = self.settings.clone();
        settings.url = DatabaseUrl::parse(url.as_str()).expect("valid URL");
        settings
    }

    /// [`TestDb::app_role_settings`] through `bouncer`, in PgBouncer transaction
    /// mode (`DB_PGBOUNCER=true`), as a production server behind PgBouncer runs.
    pub async fn app_role_settings_behind(&self, bouncer: &pgbouncer::PgBouncer) -> DbSettings {
        let mut settings = self.app_role_settings().await;
        settings.url =
            DatabaseUrl::parse(&bouncer.url_for(settings.url.expose())).expect("valid URL");
        settings.pgbouncer = true;
        settings
    }

    /// A pool as the application role ([`TestDb::app_role_settings`]); on SQLite the
    /// test's own pool.
    pub async fn app_role_pool(&self) -> Db {
        if self.engine() == Engine::Sqlite {
            return self.db.clone();
        }
        Db::connect(&self.app_role_settings().await)
            .await
            .expect("connect as the application role")
    }

    /// A second, independent pool on the same database (for concurrency tests).
    pub async fn another_pool(&self, adjust: impl FnOnce(&mut DbSettings)) -> Db {
        let mut settings = self.settings.clone();
        adjust(&mut settings);
        Db::connect(&settings).await.expect("open a second pool")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(p));
                }
            }
            Cleanup::ExternalPostgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop cannot await; a short-lived thread with its own runtime does it.
                let _ = std::thread::spawn(move || {
                    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        let _ = rt.block_on(postgres::drop_database(&admin_url, &name));
                    }
                })
                .join();
            }
            Cleanup::LocalPostgres => {}
        }
    }
}

/// Under `CI=true` a missing PostgreSQL is a failure; elsewhere the test is skipped
/// with a message nobody can miss.
fn skip_or_fail(reason: &str) {
    if in_ci() {
        panic!("PostgreSQL tests must run under CI=true, but the server is unavailable: {reason}");
    }
    eprintln!(
        "\n!!!!!!!!!! SKIPPING the PostgreSQL half of this test: {reason}\n\
         !!!!!!!!!! Install PostgreSQL or set TEST_DATABASE_URL to run it.\n"
    );
}

/// Whether this run is CI (`CI=true` or `CI=1`), where nothing may skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The migrated SQLite template of this process.
fn sqlite_template() -> &'static PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("{}.db", unique_name("agenda_template")));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let result = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(migrate_fresh(&url))
        })
        .join()
        .unwrap_or_else(|_| Err("SQLite template setup panicked".to_owned()));
        result.unwrap_or_else(|e| panic!("prepare the SQLite template: {e}"));
        register_sqlite_template_cleanup(path.clone());
        path
    })
}

static SQLITE_TEMPLATE_PATH: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_sqlite_template() {
    if let Some(path) = SQLITE_TEMPLATE_PATH.get() {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    }
}

fn register_sqlite_template_cleanup(path: PathBuf) {
    if SQLITE_TEMPLATE_PATH.set(path).is_ok() {
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(remove_sqlite_template);
        }
    }
}

/// Applies every migration to the (empty) database at `url`, then closes the pool so
/// the database can serve as a template.
pub async fn migrate_fresh(url: &str) -> Result<(), String> {
    let url = DatabaseUrl::parse(url).map_err(|e| e.to_string())?;
    let mut settings = test_settings(url);
    settings.max_overflow = 1;
    let db = Db::connect(&settings).await.map_err(|e| e.to_string())?;
    let result = Migrator::up(db.conn(), None)
        .await
        .map_err(|e| format!("migrate: {e}"));
    db.close().await;
    result
}

/// Runs one async test body on SQLite and on PostgreSQL.
///
/// The body receives a [`TestDb`] bound to the given name. Each engine becomes its own
/// test (`<name>::sqlite`, `<name>::postgres`) on a multi-threaded runtime.
#[macro_export]
macro_rules! both_engines {
    ($(
        $(#[$meta:meta])*
        async fn $name:ident($db:ident : TestDb) $body:block
    )*) => {$(
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                #[allow(unused_mut)]
                let mut $db = $crate::TestDb::sqlite().await;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                #[allow(unused_mut)]
                let Some(mut $db) = $crate::TestDb::postgres().await else { return };
                $body
            }
        }
    )*};
}
