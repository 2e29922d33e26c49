//! The schema the migrations build: reversible migrations, no drift from the entities,
//! the naming convention, indexes, constraints and delete policies — on both engines
//! wherever the feature exists on both.

use agenda_entity::enums::{AppointmentStatus, PaymentStatus};
use agenda_entity::{appointment, appointment_status_history, catalog, service};
use agenda_storage::schema::{columns, drift};
use agenda_storage::{ConflictKind, Db, Engine, StorageError, TenantScope};
use agenda_testkit::{TestDb, both_engines};
use chrono::{DateTime, Duration, TimeZone, Utc};
use migration::{MigrationStatus, Migrator, MigratorTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ModelTrait, PaginatorTrait,
    QueryFilter, QueryResult, Set, Statement,
};
use uuid::Uuid;

use crate::connection::{create_user, seed_org};

async fn query(conn: &impl ConnectionTrait, sql: &str) -> Vec<QueryResult> {
    conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn strings(rows: &[QueryResult], columns: usize) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            (0..columns)
                .map(|i| {
                    r.try_get_by_index::<Option<String>>(i)
                        .unwrap()
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect()
}

/// Database objects other than the migration ledger: tables, indexes, triggers,
/// views, sequences, functions and types of the current schema.
async fn schema_objects(conn: &impl ConnectionTrait) -> Vec<String> {
    let sql = match Engine::of(conn.get_database_backend()) {
        Engine::Sqlite => {
            "SELECT type || ' ' || name FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%' AND tbl_name <> 'seaql_migrations' ORDER BY 1"
        }
        Engine::Postgres => {
            "SELECT 'relation ' || c.relname FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relname NOT LIKE 'seaql_migrations%' \
             UNION ALL \
             SELECT 'function ' || p.proname FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = current_schema() \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') \
             UNION ALL \
             SELECT 'type ' || t.typname FROM pg_type t \
             JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE n.nspname = current_schema() AND t.typtype IN ('e', 'd') \
             ORDER BY 1"
        }
    };
    strings(&query(conn, sql).await, 1)
        .into_iter()
        .map(|mut r| r.remove(0))
        .collect()
}

both_engines! {
    async fn migrations_go_down_to_zero_and_up_again(t: TestDb) {
        let conn = t.conn();
        let expected: Vec<String> = Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
        assert_eq!(expected.len(), 10, "a sensible sequence, not one giant file");

        let status = Migrator::get_migration_with_status(conn).await.unwrap();
        let listed: Vec<String> = status.iter().map(|m| m.name().to_owned()).collect();
        assert_eq!(listed, expected, "status lists every migration, in order");
        assert!(status.iter().all(|m| m.status() == MigrationStatus::Applied));

        let before = columns(conn).await.unwrap();
        let objects_before = schema_objects(conn).await;
        assert_eq!(before.len(), 36);
        assert!(objects_before.len() > 150, "tables, indexes and triggers were read");

        Migrator::down(conn, None).await.unwrap();
        assert_eq!(schema_objects(conn).await, Vec::<String>::new(), "down leaves nothing behind");
        assert_eq!(Migrator::get_pending_migrations(conn).await.unwrap().len(), expected.len());

        Migrator::up(conn, None).await.unwrap();
        assert_eq!(columns(conn).await.unwrap(), before, "up again builds the same tables");
        assert_eq!(schema_objects(conn).await, objects_before, "and the same indexes and triggers");
        assert!(Migrator::get_pending_migrations(conn).await.unwrap().is_empty());
    }

    async fn migrations_step_down_and_up_one_at_a_time(t: TestDb) {
        let conn = t.conn();
        let count = Migrator::migrations().len();
        for applied in (0..count).rev() {
            Migrator::down(conn, Some(1)).await.unwrap();
            assert_eq!(Migrator::get_applied_migrations(conn).await.unwrap().len(), applied);
        }
        for applied in 1..=count {
            Migrator::up(conn, Some(1)).await.unwrap();
            assert_eq!(Migrator::get_applied_migrations(conn).await.unwrap().len(), applied);
        }
        assert_eq!(drift(&catalog::tables(), &columns(conn).await.unwrap(), t.engine()), Vec::<String>::new());
    }

    async fn entities_match_the_migrated_schema(t: TestDb) {
        let live = columns(t.conn()).await.unwrap();
        let problems = drift(&catalog::tables(), &live, t.engine());
        assert!(problems.is_empty(), "entities and migrations disagree:\n{}", problems.join("\n"));
    }

    async fn every_foreign_key_column_leads_an_index(t: TestDb) {
        let keys = foreign_keys(t.conn()).await;
        assert!(keys.len() > 80, "found {} foreign keys", keys.len());
        let leading = index_columns(t.conn()).await;
        let unindexed: Vec<_> = keys
            .iter()
            .filter(|(table, column)| {
                !leading.iter().any(|(t, cols)| t == table && cols.first() == Some(column))
            })
            .collect();
        assert!(unindexed.is_empty(), "foreign keys without an index: {unindexed:?}");
    }

    async fn hot_queries_have_indexes(t: TestDb) {
        let indexes = index_columns(t.conn()).await;
        let hot: &[(&str, &[&str])] = &[
            ("appointments", &["provider_id", "start_at"]),
            ("appointments", &["client_id", "start_at"]),
            ("appointments", &["organization_id", "status", "start_at"]),
            ("provider_transactions", &["provider_id", "created_at"]),
            ("payment_withdrawals", &["provider_id", "status"]),
            ("notifications", &["user_id", "is_read", "created_at"]),
            ("availability", &["provider_id", "kind", "weekday"]),
            ("users", &["organization_id", "email"]),
        ];
        for (table, columns) in hot {
            assert!(
                indexes.iter().any(|(t, cols)| t == table && cols.starts_with(&columns.iter().map(|c| c.to_string()).collect::<Vec<_>>())),
                "{table} needs an index on {columns:?}"
            );
        }
        // Every tenant-owned table can be filtered by tenant through an index.
        for table in catalog::tables() {
            if table.columns.iter().any(|c| c.name == "organization_id") {
                assert!(
                    indexes.iter().any(|(t, cols)| t == table.name && cols[0] == "organization_id")
                        || table.name == "organizations",
                    "{} has no index leading with organization_id",
                    table.name
                );
            }
        }
    }

    async fn deleting_a_parent_follows_the_declared_policy(t: TestDb) {
        let w = World::new(&t.db).await;
        let start = at(10, 0);
        let booked = w.book(t.conn(), start, 60, AppointmentStatus::Confirmed).await.unwrap();
        let admin = create_user(t.conn(), w.scope, "admin@example.com").await.unwrap();
        let mut canceled: appointment::ActiveModel =
            w.book(t.conn(), at(12, 0), 60, AppointmentStatus::Canceled).await.unwrap().into();
        canceled.canceled_by = Set(Some(admin.id));
        canceled.canceled_at = Set(Some(start));
        let canceled = canceled.update(t.conn()).await.unwrap();
        appointment_status_history::ActiveModel {
            organization_id: Set(w.scope.organization_id()),
            appointment_id: Set(booked.id),
            from_status: Set(Some(AppointmentStatus::Pending)),
            to_status: Set(AppointmentStatus::Confirmed),
            ..Default::default()
        }
        .insert(t.conn())
        .await
        .unwrap();

        // NO ACTION: a provider with appointments cannot be deleted.
        let err = StorageError::from(
            agenda_entity::user::Entity::delete_by_id(w.provider).exec(t.conn()).await.unwrap_err(),
        );
        match (&err, t.engine()) {
            (StorageError::InvalidReference { constraint }, Engine::Postgres) => {
                assert_eq!(constraint.as_deref(), Some("fk_appointments_provider_id_users"))
            }
            (StorageError::InvalidReference { .. }, Engine::Sqlite) => {}
            _ => panic!("expected an invalid reference, got {err:?}"),
        }

        // NO ACTION on append-only history: a user who changed a status stays.
        let changer = create_user(t.conn(), w.scope, "changer@example.com").await.unwrap();
        appointment_status_history::ActiveModel {
            organization_id: Set(w.scope.organization_id()),
            appointment_id: Set(canceled.id),
            from_status: Set(Some(AppointmentStatus::Pending)),
            to_status: Set(AppointmentStatus::Canceled),
            changed_by: Set(Some(changer.id)),
            ..Default::default()
        }
        .insert(t.conn())
        .await
        .unwrap();
        let err = StorageError::from(changer.delete(t.conn()).await.unwrap_err());
        assert!(matches!(err, StorageError::InvalidReference { .. }), "{err:?}");

        // SET NULL: deleting the user who canceled keeps the appointment.
        admin.delete(t.conn()).await.unwrap();
        let reread = appointment::Entity::find_by_id(canceled.id).one(t.conn()).await.unwrap().unwrap();
        assert_eq!(reread.canceled_by, None);

        // CASCADE: the status history goes with its appointment.
        let history = || appointment_status_history::Entity::find()
            .filter(appointment_status_history::Column::AppointmentId.eq(booked.id));
        assert_eq!(history().count(t.conn()).await.unwrap(), 1);
        appointment::Entity::delete_by_id(booked.id).exec(t.conn()).await.unwrap();
        assert_eq!(history().count(t.conn()).await.unwrap(), 0);

        // CASCADE from the tenant: deleting an organization deletes everything it owns,
        // and nothing of another organization.
        let other = World::new(&t.db).await;
        other.book(t.conn(), start, 60, AppointmentStatus::Pending).await.unwrap();
        agenda_entity::organization::Entity::delete_by_id(w.scope.organization_id())
            .exec(t.conn())
            .await
            .unwrap();
        for table in catalog::tables() {
            if table.columns.iter().any(|c| c.name == "organization_id") {
                let rows = count_where(t.conn(), table.name, w.scope.organization_id()).await;
                assert_eq!(rows, 0, "{} rows left for the deleted organization", table.name);
            }
        }
        assert_eq!(count_where(t.conn(), "appointments", other.scope.organization_id()).await, 1);
        assert_eq!(count_where(t.conn(), "users", other.scope.organization_id()).await, 2);
    }

    async fn append_only_tables_refuse_updates(t: TestDb) {
        let w = World::new(&t.db).await;
        let booked = w.book(t.conn(), at(10, 0), 60, AppointmentStatus::Pending).await.unwrap();
        let entry = appointment_status_history::ActiveModel {
            organization_id: Set(w.scope.organization_id()),
            appointment_id: Set(booked.id),
            from_status: Set(None),
            to_status: Set(AppointmentStatus::Pending),
            ..Default::default()
        }
        .insert(t.conn())
        .await
        .unwrap();
        let mut changed: appointment_status_history::ActiveModel = entry.into();
        changed.to_status = Set(AppointmentStatus::Completed);
        let err = changed.update(t.conn()).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
}

/// Appointments of one provider on PostgreSQL: the exclusion constraint decides.
mod exclusion {
    use super::*;

    async fn world() -> Option<(TestDb, World)> {
        let t = TestDb::postgres().await?;
        let w = World::new(&t.db).await;
        Some((t, w))
    }

    fn is_overlap(err: &StorageError) -> bool {
        matches!(err, StorageError::Conflict { kind: ConflictKind::Exclusion, constraint: Some(c) }
            if c == "ex_appointments_provider_id_period")
    }

    #[tokio::test]
    async fn overlapping_active_appointments_are_refused() {
        let Some((t, w)) = world().await else { return };
        let first = w
            .book(t.conn(), at(10, 0), 60, AppointmentStatus::Confirmed)
            .await
            .unwrap();
        for (start, status) in [
            (at(10, 0), AppointmentStatus::Pending),
            (at(10, 30), AppointmentStatus::Confirmed),
            (at(9, 30), AppointmentStatus::InProgress),
            (at(10, 59), AppointmentStatus::Completed),
        ] {
            let err = w.book(t.conn(), start, 60, status).await.unwrap_err();
            assert!(is_overlap(&err), "{start} {status:?}: {err:?}");
        }
        // Back to back is fine: the period is half-open.
        w.book(t.conn(), at(11, 0), 30, AppointmentStatus::Pending)
            .await
            .unwrap();
        w.book(t.conn(), at(9, 0), 60, AppointmentStatus::Pending)
            .await
            .unwrap();
        // Another provider is not affected.
        let other = create_user(t.conn(), w.scope, "other@example.com")
            .await
            .unwrap();
        w.book_for(
            t.conn(),
            other.id,
            at(10, 0),
            60,
            AppointmentStatus::Confirmed,
        )
        .await
        .unwrap();
        // Moving an appointment onto another is refused too.
        let mut moved: appointment::ActiveModel = first.into();
        moved.start_at = Set(at(11, 15));
        moved.end_at = Set(at(12, 15));
        moved.occupied_until = Set(at(12, 15));
        assert!(is_overlap(&StorageError::from(
            moved.update(t.conn()).await.unwrap_err()
        )));
    }

    #[tokio::test]
    async fn canceled_and_no_show_appointments_may_overlap() {
        let Some((t, w)) = world().await else { return };
        w.book(t.conn(), at(10, 0), 60, AppointmentStatus::Confirmed)
            .await
            .unwrap();
        w.book(t.conn(), at(10, 0), 60, AppointmentStatus::Canceled)
            .await
            .unwrap();
        w.book(t.conn(), at(10, 15), 60, AppointmentStatus::NoShow)
            .await
            .unwrap();
        w.book(t.conn(), at(10, 15), 60, AppointmentStatus::Canceled)
            .await
            .unwrap();
        // Reviving a canceled one onto an active one is refused.
        let revived = w
            .book(t.conn(), at(10, 30), 30, AppointmentStatus::Canceled)
            .await
            .unwrap();
        let mut revived: appointment::ActiveModel = revived.into();
        revived.status = Set(AppointmentStatus::Pending);
        assert!(is_overlap(&StorageError::from(
            revived.update(t.conn()).await.unwrap_err()
        )));
    }

    #[tokio::test]
    async fn the_buffer_after_an_appointment_is_occupied_too() {
        let Some((t, w)) = world().await else { return };
        let start = at(10, 0);
        w.book_buffered(t.conn(), start, 60, 15, AppointmentStatus::Confirmed)
            .await
            .unwrap();
        let err = w
            .book(t.conn(), at(11, 0), 30, AppointmentStatus::Pending)
            .await
            .unwrap_err();
        assert!(is_overlap(&err), "{err:?}");
        w.book(t.conn(), at(11, 15), 30, AppointmentStatus::Pending)
            .await
            .unwrap();
    }
}

/// An organization with a provider, a client and one service of the provider.
struct World {
    scope: TenantScope,
    provider: Uuid,
    client: Uuid,
    service: Uuid,
}

impl World {
    async fn new(db: &Db) -> World {
        let scope = TenantScope::new(seed_org(db).await);
        let provider = create_user(db.conn(), scope, "provider@example.com")
            .await
            .unwrap()
            .id;
        let client = create_user(db.conn(), scope, "client@example.com")
            .await
            .unwrap()
            .id;
        let service = service::ActiveModel {
            organization_id: Set(scope.organization_id()),
            provider_id: Set(provider),
            category_id: Set(None),
            template_id: Set(None),
            name: Set("Haircut".into()),
            description: Set(None),
            duration_minutes: Set(60),
            price_cents: Set(5_000),
            is_active: Set(true),
            ..Default::default()
        }
        .insert(db.conn())
        .await
        .unwrap()
        .id;
        World {
            scope,
            provider,
            client,
            service,
        }
    }

    async fn book(
        &self,
        conn: &impl ConnectionTrait,
        start: DateTime<Utc>,
        minutes: i64,
        status: AppointmentStatus,
    ) -> Result<appointment::Model, StorageError> {
        self.insert(conn, self.provider, start, minutes, 0, status)
            .await
    }

    async fn book_for(
        &self,
        conn: &impl ConnectionTrait,
        provider: Uuid,
        start: DateTime<Utc>,
        minutes: i64,
        status: AppointmentStatus,
    ) -> Result<appointment::Model, StorageError> {
        self.insert(conn, provider, start, minutes, 0, status).await
    }

    async fn book_buffered(
        &self,
        conn: &impl ConnectionTrait,
        start: DateTime<Utc>,
        minutes: i64,
        buffer: i64,
        status: AppointmentStatus,
    ) -> Result<appointment::Model, StorageError> {
        self.insert(conn, self.provider, start, minutes, buffer, status)
            .await
    }

    async fn insert(
        &self,
        conn: &impl ConnectionTrait,
        provider: Uuid,
        start: DateTime<Utc>,
        minutes: i64,
        buffer: i64,
        status: AppointmentStatus,
    ) -> Result<appointment::Model, StorageError> {
        let end = start + Duration::minutes(minutes);
        Ok(appointment::ActiveModel {
            organization_id: Set(self.scope.organization_id()),
            client_id: Set(self.client),
            provider_id: Set(provider),
            service_id: Set(Some(self.service)),
            provider_service_id: Set(None),
            promotion_id: Set(None),
            address_id: Set(None),
            start_at: Set(start),
            end_at: Set(end),
            occupied_until: Set(end + Duration::minutes(buffer)),
            status: Set(status),
            price_cents: Set(5_000),
            discount_cents: Set(0),
            currency: Set("BRL".into()),
            payment_method: Set(None),
            payment_status: Set(PaymentStatus::Unpaid),
            notes: Set(None),
            provider_notes: Set(None),
            cancellation_reason: Set(None),
            canceled_at: Set(None),
            canceled_by: Set(None),
            ..Default::default()
        }
        .insert(conn)
        .await?)
    }
}

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, hour, minute, 0).unwrap()
}

async fn count_where(conn: &impl ConnectionTrait, table: &str, organization: Uuid) -> i64 {
    let stmt = Statement::from_sql_and_values(
        conn.get_database_backend(),
        match Engine::of(conn.get_database_backend()) {
            Engine::Sqlite => format!("SELECT count(*) FROM {table} WHERE organization_id = ?"),
            Engine::Postgres => format!("SELECT count(*) FROM {table} WHERE organization_id = $1"),
        },
        [organization.into()],
    );
    conn.query_one_raw(stmt)
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap()
}

/// `(table, column)` of every foreign key (all of Agenda's are single-column).
async fn foreign_keys(conn: &impl ConnectionTrait) -> Vec<(String, String)> {
    let sql = match Engine::of(conn.get_database_backend()) {
        Engine::Sqlite => {
            "SELECT m.name, f.\"from\" FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
             WHERE m.type = 'table' ORDER BY 1, 2"
        }
        Engine::Postgres => {
            "SELECT rel.relname::text, att.attname::text FROM pg_constraint con \
             JOIN pg_class rel ON rel.oid = con.conrelid \
             JOIN pg_namespace n ON n.oid = rel.relnamespace \
             JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = con.conkey[1] \
             WHERE con.contype = 'f' AND n.nspname = current_schema() ORDER BY 1, 2"
        }
    };
    strings(&query(conn, sql).await, 2)
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
}

/// `(table, columns in order)` of every index, primary keys included.
async fn index_columns(conn: &impl ConnectionTrait) -> Vec<(String, Vec<String>)> {
    let sql = match Engine::of(conn.get_database_backend()) {
        Engine::Sqlite => {
            "SELECT m.name, il.name, ii.name FROM sqlite_master m, pragma_index_list(m.name) il, \
             pragma_index_info(il.name) ii WHERE m.type = 'table' ORDER BY m.name, il.name, ii.seqno"
        }
        Engine::Postgres => {
            "SELECT t.relname::text, i.relname::text, a.attname::text FROM pg_index x \
             JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
             WHERE n.nspname = current_schema() ORDER BY 1, 2, k.ord"
        }
    };
    let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
    for r in strings(&query(conn, sql).await, 3) {
        match out.last_mut() {
            Some((table, index, cols)) if *table == r[0] && *index == r[1] => {
                cols.push(r[2].clone())
            }
            _ => out.push((r[0].clone(), r[1].clone(), vec![r[2].clone()])),
        }
    }
    out.into_iter()
        .map(|(table, _, cols)| (table, cols))
        .collect()
}

/// The naming convention of DESIGN.md, read back from the PostgreSQL catalog.
mod naming {
    use super::*;

    /// A constraint: name, kind (`pg_constraint.contype`), table, columns, referred table.
    pub struct Constraint {
        pub name: String,
        pub kind: String,
        pub table: String,
        pub columns: String,
        pub referred: String,
    }

    /// An index: name, table, columns, unique, backing a constraint.
    pub struct Index {
        pub name: String,
        pub table: String,
        pub columns: String,
        pub unique: bool,
    }

    /// Every name that breaks the convention, with the reason.
    pub fn violations(
        constraints: &[Constraint],
        indexes: &[Index],
        triggers: &[(String, String)],
    ) -> Vec<String> {
        let mut bad = Vec::new();
        for c in constraints {
            let t = &c.table;
            let ok = match c.kind.as_str() {
                "p" => c.name == format!("pk_{t}"),
                "f" => {
                    let column = c.columns.replace(',', "_");
                    let full = format!("fk_{t}_{column}_{}", c.referred);
                    c.name == full || (full.len() > 63 && c.name == format!("fk_{t}_{column}"))
                }
                "u" => c
                    .name
                    .starts_with(&format!("uq_{t}_{}", c.columns.replace(',', "_"))),
                "c" => c.name.starts_with(&format!("ck_{t}_")),
                "x" => c.name.starts_with(&format!("ex_{t}_")),
                _ => false,
            };
            if !ok {
                bad.push(format!(
                    "constraint {} ({}) on {t}({})",
                    c.name, c.kind, c.columns
                ));
            }
        }
        for i in indexes {
            let t = &i.table;
            let cols = i.columns.replace(',', "_");
            let ok = i.name == format!("pk_{t}")
                || (i.unique && i.name.starts_with(&format!("uq_{t}_{cols}")))
                || (!i.unique && i.name == format!("ix_{t}_{cols}"))
                || (!i.unique && i.name.starts_with(&format!("ex_{t}_")));
            if !ok {
                bad.push(format!(
                    "index {} on {t}({}), unique: {}",
                    i.name, i.columns, i.unique
                ));
            }
        }
        for (name, table) in triggers {
            if !name.starts_with(&format!("trg_{table}_")) {
                bad.push(format!("trigger {name} on {table}"));
            }
        }
        bad
    }

    #[tokio::test]
    async fn constraint_and_index_names_follow_the_convention() {
        let Some(t) = TestDb::postgres().await else {
            return;
        };
        let conn = t.conn();
        let constraints: Vec<Constraint> = strings(
            &query(
                conn,
                "SELECT con.conname::text, con.contype::text, rel.relname::text, \
                   (SELECT string_agg(a.attname, ',' ORDER BY k.ord) \
                      FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord) \
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum), \
                   ref.relname::text \
                 FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid \
                 JOIN pg_namespace n ON n.oid = rel.relnamespace \
                 LEFT JOIN pg_class ref ON ref.oid = con.confrelid \
                 WHERE n.nspname = current_schema() AND rel.relname <> 'seaql_migrations'",
            )
            .await,
            5,
        )
        .into_iter()
        .map(|r| Constraint {
            name: r[0].clone(),
            kind: r[1].clone(),
            table: r[2].clone(),
            columns: r[3].clone(),
            referred: r[4].clone(),
        })
        .collect();
        let indexes: Vec<Index> = strings(
            &query(
                conn,
                "SELECT i.relname::text, t.relname::text, \
                   (SELECT string_agg(a.attname, ',' ORDER BY k.ord) \
                      FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord) \
                      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum), \
                   CASE WHEN x.indisunique THEN 'true' ELSE 'false' END \
                 FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid \
                 JOIN pg_class i ON i.oid = x.indexrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 WHERE n.nspname = current_schema() AND t.relname <> 'seaql_migrations'",
            )
            .await,
            4,
        )
        .into_iter()
        .map(|r| Index {
            name: r[0].clone(),
            table: r[1].clone(),
            columns: r[2].clone(),
            unique: r[3] == "true",
        })
        .collect();
        let triggers: Vec<(String, String)> = strings(
            &query(
                conn,
                "SELECT tg.tgname::text, t.relname::text FROM pg_trigger tg \
                 JOIN pg_class t ON t.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
                 WHERE NOT tg.tgisinternal AND n.nspname = current_schema()",
            )
            .await,
            2,
        )
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();

        let count = |kind: &str| constraints.iter().filter(|c| c.kind == kind).count();
        assert_eq!(count("p"), 36, "one primary key per table");
        assert!(
            count("f") > 80 && count("c") > 60 && count("x") == 1,
            "the catalog was read"
        );
        assert!(indexes.len() > 100 && triggers.len() >= 3);
        let bad = violations(&constraints, &indexes, &triggers);
        assert!(
            bad.is_empty(),
            "names breaking the convention:\n{}",
            bad.join("\n")
        );
    }

    #[test]
    fn the_rules_catch_bad_names() {
        let c = |name: &str, kind: &str, columns: &str, referred: &str| Constraint {
            name: name.into(),
            kind: kind.into(),
            table: "appointments".into(),
            columns: columns.into(),
            referred: referred.into(),
        };
        let good = [
            c("pk_appointments", "p", "id", ""),
            c("fk_appointments_client_id_users", "f", "client_id", "users"),
            c("ck_appointments_time_order", "c", "start_at,end_at", ""),
            c("ex_appointments_provider_id_period", "x", "provider_id", ""),
            c(
                "fk_appointments_provider_service_id",
                "f",
                "provider_service_id",
                "a_table_with_a_very_long_name_indeed",
            ),
        ];
        assert!(violations(&good, &[], &[]).is_empty());
        let bad = [
            c("appointments_pkey", "p", "id", ""),
            c(
                "fk_appointments_client_id_clients",
                "f",
                "client_id",
                "users",
            ),
            c("appointments_status_check", "c", "status", ""),
            c("no_overlap", "x", "provider_id", ""),
            c("fk_appointments_client_id", "f", "client_id", "users"),
            c(
                "fk_appointments_provider_service_id_provider_services_truncated_",
                "f",
                "provider_service_id",
                "provider_services_x",
            ),
        ];
        assert_eq!(violations(&bad, &[], &[]).len(), 6);
        let i = |name: &str, columns: &str, unique: bool| Index {
            name: name.into(),
            table: "appointments".into(),
            columns: columns.into(),
            unique,
        };
        assert!(
            violations(
                &[],
                &[i(
                    "ix_appointments_provider_id_start_at",
                    "provider_id,start_at",
                    false
                )],
                &[]
            )
            .is_empty()
        );
        assert_eq!(
            violations(
                &[],
                &[
                    i("idx_appointments_provider", "provider_id", false),
                    i("ix_appointments_provider_id", "provider_id", true),
                    i("uq_appointments_client_id", "provider_id", true),
                ],
                &[("append_only".into(), "appointments".into())],
            )
            .len(),
            4
        );
    }
}
