//! Backup and restore: the same data gives byte-identical table files from either
//! engine, a restore into an empty database of either engine reproduces the data
//! exactly, and a damaged, mismatched or misplaced restore writes nothing.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use agenda_entity::organization::CreateOrganization;
use agenda_entity::user::CreateUser;
use agenda_entity::{audit_log, catalog, category, niche};
use agenda_storage::backup::{
    self, BackupError, BackupScope, Manifest, READ_BATCH_ROWS, create_file, restore, verify,
};
use agenda_storage::repo::audit::{AuditEntry, AuditRepo};
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::repo::users::UserRepo;
use agenda_storage::seed::{self, DEMO_ORGANIZATION_ID};
use agenda_storage::{Db, TenantScope};
use agenda_testkit::{TestDb, both_engines};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Statement};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZGVtbw$test-only-not-a-real-hash";

/// Audit rows added to the second organization: more than two read batches, so the
/// keyset pagination crosses batch boundaries.
const BULK_AUDIT_ROWS: u64 = 2 * READ_BATCH_ROWS + 345;

/// Categories added to the second organization besides the parent and child below.
const BULK_CATEGORIES: u64 = 1000;

/// A child category whose parent has a greater key: restore must insert it before
/// its parent exists (the self-reference is set once the table is loaded).
const CHILD_CATEGORY: Uuid = Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0001);
const PARENT_CATEGORY: Uuid = Uuid::from_u128(0xffff_ffff_ffff_7fff_bfff_ffff_ffff_fffe);

fn seed_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()
}

/// A scratch directory removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "agenda_backup_test_{}_{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Rows per table, counted by the database.
async fn counts(conn: &impl ConnectionTrait) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for table in catalog::tables() {
        let row = conn
            .query_one_raw(Statement::from_string(
                conn.get_database_backend(),
                format!("SELECT COUNT(*) FROM {}", table.name),
            ))
            .await
            .unwrap()
            .unwrap();
        out.insert(table.name, row.try_get_by_index::<i64>(0).unwrap() as u64);
    }
    out
}

async fn total(conn: &impl ConnectionTrait) -> u64 {
    counts(conn).await.values().sum()
}

/// Every entry of an archive, by name.
fn entries(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

/// The table files of an archive (everything but the manifest).
fn data_files(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut all = entries(path);
    all.remove("manifest.json").expect("a manifest");
    all
}

/// Writes a new archive with `edit` applied to the entries (manifest first, then the
/// data files in manifest order, like the real writer). With `fix_manifest`, the
/// manifest's counts and checksums are recomputed after the edit.
fn rewrite(from: &Path, to: &Path, fix_manifest: bool, edit: impl Fn(&str, &mut Vec<u8>)) {
    let mut all = entries(from);
    for (name, data) in all.iter_mut() {
        edit(name, data);
    }
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&all.remove("manifest.json").unwrap()).unwrap();
    if fix_manifest {
        for table in manifest["tables"].as_array_mut().unwrap() {
            let data = &all[table["file"].as_str().unwrap()];
            table["rows"] = (data.iter().filter(|b| **b == b'\n').count() as u64).into();
            table["bytes"] = (data.len() as u64).into();
            table["sha256"] = agenda_hex(&Sha256::digest(data)).into();
        }
    }
    let order: Vec<String> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["file"].as_str().unwrap().to_owned())
        .collect();
    let file = std::fs::File::create(to).unwrap();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    let mut add = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, name, data).unwrap();
    };
    add(
        "manifest.json",
        &serde_json::to_vec_pretty(&manifest).unwrap(),
    );
    for name in order {
        add(&name, &all[&name]);
    }
    builder
        .into_inner()
        .unwrap()
        .finish()
        .unwrap()
        .flush()
        .unwrap();
}

fn agenda_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn take_backup(db: &Db, scope: BackupScope, path: &Path) -> Manifest {
    create_file(db, scope, path).await.unwrap()
}

/// Manifests of the same data agree on everything but when and where they were made.
fn assert_same_manifest(a: &Manifest, b: &Manifest) {
    let mut b = b.clone();
    b.created_at = a.created_at;
    b.engine = a.engine.clone();
    assert_eq!(a, &b);
}

/// Data the demo seed lacks: a second organization with a user, a nested category
/// whose parent has the greater key, text that needs escaping, JSON written with
/// unsorted keys, an instant with nanoseconds, a platform-wide audit entry, and
/// enough audit rows to span several read batches. Returns the organization's id.
async fn second_organization(conn: &impl ConnectionTrait) -> Uuid {
    let org = OrganizationRepo::create(
        conn,
        CreateOrganization {
            slug: "second-org".into(),
            name: "Second Org".into(),
            time_zone: "Europe/Lisbon".into(),
            currency: "EUR".into(),
            locale: None,
        },
    )
    .await
    .unwrap();
    let scope = TenantScope::new(org.id);
    let user = UserRepo::create(
        conn,
        scope,
        CreateUser {
            email: "owner@second.example.com".into(),
            password: "correct horse battery".into(),
            full_name: "Zoë \"Quoted\" O'Neil".into(),
            phone: None,
            role: agenda_entity::enums::UserRole::Admin,
            tax_id: None,
        },
        HASH.into(),
    )
    .await
    .unwrap();
    let niche = niche::ActiveModel {
        organization_id: Set(org.id),
        name: Set("Well-being".into()),
        slug: Set("well-being".into()),
        description: Set(Some("Line one\nline \"two\"\t— ünïcödé ✓ \\ end".into())),
        icon: Set(None),
        sort_order: Set(1),
        is_active: Set(true),
        ..<niche::ActiveModel as ActiveModelTrait>::default()
    }
    .insert(conn)
    .await
    .unwrap();
    for (id, parent, slug) in [
        (PARENT_CATEGORY, None, "parent"),
        (CHILD_CATEGORY, Some(PARENT_CATEGORY), "child"),
    ] {
        category::ActiveModel {
            id: Set(id),
            organization_id: Set(org.id),
            niche_id: Set(niche.id),
            parent_id: Set(parent),
            name: Set(slug.to_uppercase()),
            slug: Set(slug.into()),
            description: Set(None),
            sort_order: Set(0),
            is_active: Set(true),
            ..<category::ActiveModel as ActiveModelTrait>::default()
        }
        .insert(conn)
        .await
        .unwrap();
    }
    // Enough categories that the child and its parent land in different INSERT
    // statements of the restore (rows per statement = 8000 / 11 columns).
    let stamp = Utc.with_ymd_and_hms(2026, 4, 1, 8, 30, 0).unwrap();
    let bulk: Vec<category::ActiveModel> = (0..BULK_CATEGORIES)
        .map(|i| category::ActiveModel {
            id: Set(Uuid::now_v7()),
            organization_id: Set(org.id),
            niche_id: Set(niche.id),
            parent_id: Set(None),
            name: Set(format!("Bulk {i}")),
            slug: Set(format!("bulk-{i}")),
            description: Set(None),
            sort_order: Set(i as i32),
            is_active: Set(i % 2 == 0),
            created_at: Set(stamp),
            updated_at: Set(stamp),
        })
        .collect();
    for chunk in bulk.chunks(500) {
        category::Entity::insert_many(chunk.to_vec())
            .exec(conn)
            .await
            .unwrap();
    }
    let details: serde_json::Value = serde_json::from_str(
        r#"{"zeta": 1, "alpha": {"b": [1.5, -0.25, "x"], "a": null}, "mid": true}"#,
    )
    .unwrap();
    AuditRepo::record(
        conn,
        scope,
        AuditEntry {
            actor_id: Some(user.id),
            action: "organization.update".into(),
            entity_type: "organizations".into(),
            entity_id: Some(org.id),
            details: details.clone(),
            ip_address: Some("203.0.113.7".into()),
            request_id: None,
        },
    )
    .await
    .unwrap();
    AuditRepo::record_platform(
        conn,
        AuditEntry {
            actor_id: None,
            action: "tenant.create".into(),
            entity_type: "organizations".into(),
            entity_id: Some(org.id),
            details,
            ip_address: None,
            request_id: None,
        },
    )
    .await
    .unwrap();
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
    let rows: Vec<audit_log::ActiveModel> = (0..BULK_AUDIT_ROWS)
        .map(|i| audit_log::ActiveModel {
            id: Set(Uuid::now_v7()),
            organization_id: Set(Some(org.id)),
            actor_id: Set(None),
            action: Set("appointment.view".into()),
            entity_type: Set("appointments".into()),
            entity_id: Set(None),
            details: Set(serde_json::json!({ "n": i, "ratio": i as f64 / 7.0 })),
            ip_address: Set(None),
            request_id: Set(Some(format!("req-{i}"))),
            // Nanoseconds: PostgreSQL keeps microseconds; the archive always does.
            created_at: Set(start + chrono::Duration::nanoseconds(i as i64 * 1_000_123_457)),
        })
        .collect();
    for chunk in rows.chunks(500) {
        audit_log::Entity::insert_many(chunk.to_vec())
            .exec(conn)
            .await
            .unwrap();
    }
    org.id
}

/// The migrations this build ships, oldest first.
fn migration_names() -> Vec<String> {
    Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

/// Seed `source`, back it up, restore into the empty `target`, back that up: the
/// table files are byte-identical and the manifests agree.
async fn round_trip(source: &TestDb, target: &TestDb) {
    seed::demo_on(&source.db, HASH, seed_date()).await.unwrap();
    second_organization(source.conn()).await;
    let dir = Scratch::new();
    let first_path = dir.path("first.tar.gz");

    let started = Instant::now();
    let first = take_backup(&source.db, BackupScope::Database, &first_path).await;
    let backup_time = started.elapsed();
    assert_eq!(first.engine, source.engine().to_string());
    assert_eq!(first.scope, BackupScope::Database);
    let shipped = migration_names();
    assert_eq!(
        Some(&first.schema_version),
        shipped.last(),
        "the newest migration"
    );
    assert_eq!(first.migrations, shipped);
    let source_counts = counts(source.conn()).await;
    for table in &first.tables {
        assert_eq!(
            table.rows,
            source_counts[table.name.as_str()],
            "{}",
            table.name
        );
    }
    let report = verify(&first_path).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);

    let started = Instant::now();
    let restored = restore(&target.db, &first_path).await.unwrap();
    let restore_time = started.elapsed();
    assert_eq!(restored.rows, first.total_rows());
    assert_eq!(counts(target.conn()).await, source_counts);

    let second_path = dir.path("second.tar.gz");
    let second = take_backup(&target.db, BackupScope::Database, &second_path).await;
    assert_eq!(second.engine, target.engine().to_string());
    let (a, b) = (data_files(&first_path), data_files(&second_path));
    assert_eq!(a.len(), 37);
    for (name, data) in &a {
        if data != &b[name] {
            let (x, y) = (
                String::from_utf8_lossy(data),
                String::from_utf8_lossy(&b[name]),
            );
            let (x, y) = x
                .lines()
                .zip(y.lines())
                .find(|(x, y)| x != y)
                .unwrap_or_default();
            panic!(
                "{name} differs after {} -> {}:\n{x}\n{y}",
                source.engine(),
                target.engine()
            );
        }
    }
    assert_same_manifest(&first, &second);

    // Canonical forms, whatever the engine.
    let audit = String::from_utf8(a["data/audit_log.jsonl"].clone()).unwrap();
    assert!(
        audit.contains(r#""details":{"alpha":{"a":null,"b":[1.5,-0.25,"x"]},"mid":true,"zeta":1}"#)
    );
    assert!(
        audit.contains(r#""created_at":"2026-05-01T12:00:01.000123Z""#),
        "nanoseconds cut to microseconds"
    );
    let categories = String::from_utf8(a["data/categories.jsonl"].clone()).unwrap();
    assert!(categories.starts_with(&format!(r#"{{"id":"{CHILD_CATEGORY}","#)));
    assert!(categories.contains(&format!(r#""parent_id":"{PARENT_CATEGORY}""#)));
    let niches = String::from_utf8(a["data/niches.jsonl"].clone()).unwrap();
    assert!(niches.contains(r#""description":"Line one\nline \"two\"\t— ünïcödé ✓ \\ end""#));

    let listed = backup::list(&dir.0).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|l| l.file_name.as_str())
            .collect::<Vec<_>>(),
        ["first.tar.gz", "second.tar.gz"]
    );
    assert!(
        listed
            .iter()
            .all(|l| l.manifest.is_some() && l.error.is_none())
    );

    eprintln!(
        "backup {} -> {}: {} rows, archive {} bytes ({} bytes of table files), \
         backup {:?}, restore {:?}",
        source.engine(),
        target.engine(),
        first.total_rows(),
        report.archive_bytes,
        first.tables.iter().map(|t| t.bytes).sum::<u64>(),
        backup_time,
        restore_time,
    );
}

both_engines! {
    /// Progress is reported after every table of a backup and every batch of a
    /// restore, ending at every table and every row.
    async fn backup_and_restore_report_their_progress(t: TestDb) {
        seed::demo_on(&t.db, HASH, seed_date()).await.unwrap();
        let dir = Scratch::new();
        let path = dir.path("progress.tar.gz");
        let seen = std::sync::Mutex::new(Vec::new());
        let record = |p: backup::Progress<'_>| {
            seen.lock().unwrap().push((p.table.to_owned(), p.tables_done, p.tables_total, p.rows_done, p.rows_total));
        };
        let manifest = backup::create_file_with_progress(&t.db, BackupScope::Database, &path, &record).await.unwrap();
        let calls = std::mem::take(&mut *seen.lock().unwrap());
        assert_eq!(calls.len(), catalog::tables().len(), "one call per table");
        assert_eq!(calls.last().unwrap().1, calls.last().unwrap().2);
        assert_eq!(calls.last().unwrap().3, manifest.total_rows());
        assert!(calls.windows(2).all(|w| w[0].1 < w[1].1 && w[0].3 <= w[1].3), "monotonic");
        assert!(calls.iter().all(|c| c.4.is_none()));

        let target = TestDb::for_engine(t.engine()).await.unwrap();
        backup::restore_with_progress(&target.db, &path, &record).await.unwrap();
        let calls = std::mem::take(&mut *seen.lock().unwrap());
        assert!(calls.len() > 1, "{}", calls.len());
        let last = calls.last().unwrap();
        assert_eq!((last.3, last.4), (manifest.total_rows(), Some(manifest.total_rows())));
        assert!(calls.windows(2).all(|w| w[0].3 <= w[1].3), "monotonic");
    }

    async fn backup_restore_backup_is_identical_on_one_engine(t: TestDb) {
        let target = TestDb::for_engine(t.engine()).await.unwrap();
        round_trip(&t, &target).await;
    }

    async fn damaged_or_mismatched_archives_write_nothing(t: TestDb) {
        seed::demo_on(&t.db, HASH, seed_date()).await.unwrap();
        let dir = Scratch::new();
        let good = dir.path("good.tar.gz");
        take_backup(&t.db, BackupScope::Database, &good).await;
        let bytes = std::fs::read(&good).unwrap();
        let target = TestDb::for_engine(t.engine()).await.unwrap();

        // Truncated.
        let truncated = dir.path("truncated.tar.gz");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let err = restore(&target.db, &truncated).await.unwrap_err();
        assert!(matches!(err, BackupError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(!verify(&truncated).unwrap().is_ok());

        // One byte of a table file changed (the JSON stays valid): the checksum catches it.
        let flipped = dir.path("flipped.tar.gz");
        rewrite(&good, &flipped, false, |name, data| {
            if name == "data/users.jsonl" {
                let at = data.windows(5).position(|w| w == b"@demo").unwrap();
                data[at + 1] = b'D';
            }
        });
        let err = restore(&target.db, &flipped).await.unwrap_err();
        assert!(err.to_string().contains("data/users.jsonl: SHA-256"), "{err}");
        let report = verify(&flipped).unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);

        // One byte of the compressed file changed.
        let mut raw = bytes.clone();
        let middle = raw.len() / 2;
        raw[middle] ^= 0x5a;
        let corrupt = dir.path("corrupt.tar.gz");
        std::fs::write(&corrupt, &raw).unwrap();
        let err = restore(&target.db, &corrupt).await.unwrap_err();
        assert!(matches!(err, BackupError::Invalid { .. }), "{err}");

        // A format this build does not know.
        let future = dir.path("future.tar.gz");
        rewrite(&good, &future, false, |name, data| {
            if name == "manifest.json" {
                let text = String::from_utf8(data.clone()).unwrap();
                *data = text.replace("\"format_version\": 1", "\"format_version\": 2").into_bytes();
            }
        });
        let err = restore(&target.db, &future).await.unwrap_err();
        assert!(err.to_string().contains("format version 2 is not supported"), "{err}");

        // Internally consistent but the rows break a foreign key: the insert fails
        // part-way and the transaction leaves nothing behind.
        let orphans = dir.path("orphans.tar.gz");
        rewrite(&good, &orphans, true, |name, data| {
            if name == "data/organizations.jsonl" {
                data.clear();
            }
        });
        assert!(verify(&orphans).unwrap().is_ok());
        let err = restore(&target.db, &orphans).await.unwrap_err();
        assert!(matches!(err, BackupError::Database { .. }), "{err}");
        assert!(err.to_string().contains("inserting into users"), "{err}");

        assert_eq!(total(target.conn()).await, 0, "nothing was written");

        // Schema version mismatch: the target is one migration behind.
        let behind = TestDb::for_engine(t.engine()).await.unwrap();
        Migrator::down(behind.conn(), Some(1)).await.unwrap();
        let err = restore(&behind.db, &good).await.unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, BackupError::Refused(_)), "{message}");
        assert!(message.contains("schema version mismatch"), "{message}");
        let shipped = migration_names();
        let (newest, previous) = (&shipped[shipped.len() - 1], &shipped[shipped.len() - 2]);
        assert!(message.contains(newest.as_str()), "{message}");
        assert!(message.contains(previous.as_str()), "{message}");
        let orgs = behind
            .conn()
            .query_one_raw(Statement::from_string(behind.conn().get_database_backend(), "SELECT COUNT(*) FROM organizations"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(orgs.try_get_by_index::<i64>(0).unwrap(), 0);

        // A database with rows is refused.
        let busy = TestDb::for_engine(t.engine()).await.unwrap();
        OrganizationRepo::create(
            busy.conn(),
            CreateOrganization {
                slug: "already-here".into(),
                name: "Already here".into(),
                time_zone: "UTC".into(),
                currency: "USD".into(),
                locale: None,
            },
        )
        .await
        .unwrap();
        let err = restore(&busy.db, &good).await.unwrap_err();
        assert!(err.to_string().contains("the target database is not empty (rows in organizations)"), "{err}");
        assert_eq!(total(busy.conn()).await, 1);

        // And the good archive still restores.
        restore(&target.db, &good).await.unwrap();
        assert_eq!(counts(target.conn()).await, counts(t.conn()).await);
    }

    async fn one_organization_backup_holds_only_its_rows(t: TestDb) {
        seed::demo_on(&t.db, HASH, seed_date()).await.unwrap();
        let second = second_organization(t.conn()).await;
        let dir = Scratch::new();

        let path = dir.path("second.tar.gz");
        let manifest = take_backup(&t.db, BackupScope::Organization(second), &path).await;
        assert_eq!(manifest.scope, BackupScope::Organization(second));
        let rows = |table: &str| manifest.table(table).unwrap().rows;
        assert_eq!(rows("organizations"), 1);
        assert_eq!(rows("users"), 1);
        assert_eq!(rows("categories"), 2 + BULK_CATEGORIES);
        assert_eq!(rows("audit_log"), BULK_AUDIT_ROWS + 1, "platform-wide entries stay out");
        assert_eq!(rows("appointments"), 0, "the demo organization's rows stay out");
        let id = second.to_string();
        for (name, data) in data_files(&path) {
            for line in String::from_utf8(data).unwrap().lines() {
                let row: serde_json::Value = serde_json::from_str(line).unwrap();
                let owner = if name == "data/organizations.jsonl" { &row["id"] } else { &row["organization_id"] };
                assert_eq!(owner.as_str(), Some(id.as_str()), "{name}: {line}");
            }
        }
        let target = TestDb::for_engine(t.engine()).await.unwrap();
        let report = restore(&target.db, &path).await.unwrap();
        assert_eq!(report.rows, manifest.total_rows());
        assert_eq!(total(target.conn()).await, manifest.total_rows());

        // The demo organization alone (rows in most tables) restores into an empty
        // database, and a whole-database backup of that holds exactly the same files.
        let demo_path = dir.path("demo.tar.gz");
        let demo = take_backup(&t.db, BackupScope::Organization(DEMO_ORGANIZATION_ID), &demo_path).await;
        let demo_target = TestDb::for_engine(t.engine()).await.unwrap();
        restore(&demo_target.db, &demo_path).await.unwrap();
        let again_path = dir.path("demo-again.tar.gz");
        let again = take_backup(&demo_target.db, BackupScope::Database, &again_path).await;
        let differing: Vec<_> = again.tables.iter().zip(&demo.tables).filter(|(a, b)| a != b).map(|(a, _)| a.name.as_str()).collect();
        assert!(differing.is_empty(), "differ: {differing:?}");
        assert_eq!(data_files(&again_path), data_files(&demo_path));

        let unknown = Uuid::now_v7();
        let err = create_file(&t.db, BackupScope::Organization(unknown), &dir.path("none.tar.gz"))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), format!("organization {unknown} does not exist"));
        assert!(!dir.path("none.tar.gz").exists());
        assert!(!dir.path("none.tar.gz.partial").exists(), "no partial file is left behind");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_to_postgres_is_identical() {
    let sqlite = TestDb::sqlite().await;
    let Some(postgres) = TestDb::postgres().await else {
        return;
    };
    round_trip(&sqlite, &postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_to_sqlite_is_identical() {
    let Some(postgres) = TestDb::postgres().await else {
        return;
    };
    let sqlite = TestDb::sqlite().await;
    round_trip(&postgres, &sqlite).await;
}

/// Memory does not grow with the data: rows are read `READ_BATCH_ROWS` per statement
/// (keyset on the key), written to a spool file at once, and restored in bounded
/// batches through a channel of a few batches. This checks the read side's bound
/// by counting statements: a table of n rows takes n / READ_BATCH_ROWS + 1 reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_are_batched() {
    let t = TestDb::sqlite().await;
    second_organization(t.conn()).await;
    let dir = Scratch::new();
    let before = t.db.statements_executed();
    take_backup(&t.db, BackupScope::Database, &dir.path("b.tar.gz")).await;
    let statements = t.db.statements_executed() - before;
    // One read per table, one more per full batch (audit_log: 2346 rows, 3 reads;
    // categories: 1002 rows, 2 reads); plus begin, the migration ledger (2), commit.
    let reads =
        37 + (BULK_AUDIT_ROWS + 1) / READ_BATCH_ROWS + (BULK_CATEGORIES + 2) / READ_BATCH_ROWS;
    assert!(
        statements <= reads + 6,
        "{statements} statements for {reads} batch reads"
    );
    assert!(
        statements >= reads,
        "{statements} statements for {reads} batch reads"
    );
}
