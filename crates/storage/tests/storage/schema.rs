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
        assert_eq!(expected.len(), 18, "a sensible sequence, not one giant file");

        let status = Migrator::get_migration_with_status(conn).await.unwrap();
        let listed: Vec<String> = status.iter().map(|m| m.name().to_owned()).collect();
        assert_eq!(listed, expected, "status lists every migration, in order");
        assert!(status.iter().all(|m| m.status() == MigrationStatus::Applied));

        let before = columns(conn).await.unwrap();
        let objects_before = schema_objects(conn).await;
        assert_eq!(before.len(), 39, "37 application tables and the 2 operator tables");
        assert!(objects_before.len() > 140, "tables, indexes and triggers were read");

        Migrator::down(conn, None).await.unwrap();
        assert_eq!(schema_objects(conn).await, Vec::<String>::new(), "down leaves nothing behind");
        assert_eq!(Migrator::get_pending_migrations(conn).await.unwrap().len(), expected.len());

        Migrator::up(conn, None).await.unwrap();
        assert_eq!(columns(conn).await.unwrap(), before, "up again builds the same tables");
        assert_eq!(schema_objects(conn).await, objects_before, "and the same indexes and triggers");
        assert!(Migrator::get_pending_migrations(conn).await.unwrap().is_empty());
    }

    /// Migration 17 rebuilds `appointments` and `provider_balances` on SQLite: every
    /// row (of those tables and of their children, which a careless rebuild deletes
    /// by cascade), index and trigger survives going down and up, foreign keys stay
    /// enforced, and `down` refuses while a provider is in debt.
    async fn the_refund_status_migration_keeps_rows_indexes_and_foreign_keys(t: TestDb) {
        agenda_storage::seed::demo_on(&t.db, "$argon2id$test", chrono::NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()).await.unwrap();
        let conn = t.conn();
        // The migrations after 17 (the operator tables of 18) go down first, so the
        // `down` below is 17's; 17 alone comes back up at the end.
        let names: Vec<String> = Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
        let position = names.iter().position(|n| n == "m20261201_000017_refund_status").unwrap();
        let after = names.len() - 1 - position;
        Migrator::down(conn, Some(after as u32)).await.unwrap();
        let tables = ["appointments", "appointment_status_history", "reviews", "provider_transactions", "provider_balances", "notifications"];
        async fn counts(conn: &impl ConnectionTrait, tables: &[&str]) -> Vec<i64> {
            let mut out = Vec::new();
            for table in tables {
                let rows = query(conn, &format!("SELECT COUNT(*) AS n FROM {table}")).await;
                out.push(rows[0].try_get::<i64>("", "n").unwrap());
            }
            out
        }
        let before = counts(conn, &tables).await;
        assert!(before[..4].iter().all(|n| *n > 0), "the seed fills the tables: {before:?}");
        let objects = schema_objects(conn).await;
        let paid: Uuid = appointment::Entity::find()
            .filter(appointment::Column::PaymentStatus.eq(PaymentStatus::Paid))
            .one(conn).await.unwrap().expect("a paid appointment").id;
        async fn set_status(conn: &impl ConnectionTrait, id: Uuid, status: PaymentStatus) -> Result<(), sea_orm::DbErr> {
            appointment::Entity::update_many()
                .col_expr(appointment::Column::PaymentStatus, sea_orm::sea_query::Expr::value(status.as_str()))
                .filter(appointment::Column::Id.eq(id))
                .exec(conn).await.map(|r| assert_eq!(r.rows_affected, 1))
        }
        async fn add_available(conn: &impl ConnectionTrait, provider: Uuid, delta: i64) -> Result<(), sea_orm::DbErr> {
            use agenda_entity::provider_balance::{Column as B, Entity};
            Entity::update_many()
                .col_expr(B::AvailableCents, sea_orm::sea_query::ExprTrait::add(sea_orm::sea_query::Expr::col(B::AvailableCents), delta))
                .filter(B::ProviderId.eq(provider))
                .exec(conn).await.map(|r| assert_eq!(r.rows_affected, 1))
        }
        set_status(conn, paid, PaymentStatus::PartiallyRefunded).await.unwrap();
        let balance = agenda_entity::provider_balance::Entity::find().one(conn).await.unwrap().expect("a seeded balance");
        let (debtor, owed) = (balance.provider_id, balance.available_cents + 1);
        add_available(conn, debtor, -owed).await.unwrap();

        // In debt: down refuses and changes nothing.
        let err = Migrator::down(conn, Some(1)).await.unwrap_err().to_string();
        assert!(err.contains("in debt"), "{err}");
        assert_eq!(Migrator::get_pending_migrations(conn).await.unwrap().len(), after);
        assert_eq!(counts(conn, &tables).await, before);
        add_available(conn, debtor, owed).await.unwrap();

        Migrator::down(conn, Some(1)).await.unwrap();
        assert_eq!(counts(conn, &tables).await, before, "no row lost going down");
        assert_eq!(schema_objects(conn).await, objects, "the same tables, indexes and triggers");
        let status = appointment::Entity::find_by_id(paid).one(conn).await.unwrap().unwrap().payment_status;
        assert_eq!(status, PaymentStatus::Paid, "partially_refunded is paid before migration 17");
        let refused = set_status(conn, paid, PaymentStatus::PartiallyRefunded).await.unwrap_err().to_string();
        assert!(refused.contains("ck_appointments_payment_status"), "{refused}");
        let refused = add_available(conn, debtor, -owed).await.unwrap_err().to_string();
        assert!(refused.contains("ck_provider_balances_available_non_negative"), "{refused}");

        Migrator::up(conn, Some(1)).await.unwrap();
        assert_eq!(counts(conn, &tables).await, before, "no row lost going up");
        assert_eq!(schema_objects(conn).await, objects);
        assert_eq!(drift(&catalog::tables(), &columns(conn).await.unwrap(), t.engine()), Vec::<String>::new());
        set_status(conn, paid, PaymentStatus::PartiallyRefunded).await.unwrap();
        add_available(conn, debtor, -owed).await.unwrap();
        add_available(conn, debtor, owed).await.unwrap();
        // Foreign keys are still enforced on every pooled connection, and on the table
        // that was rebuilt: an appointment of a missing organization is refused.
        for _ in 0..4 {
            if t.engine() == Engine::Sqlite {
                let on = query(conn, "PRAGMA foreign_keys").await[0].try_get_by_index::<i64>(0).unwrap();
                assert_eq!(on, 1);
            }
        }
        let orphan = appointment::Entity::update_many()
            .col_expr(appointment::Column::OrganizationId, sea_orm::sea_query::Expr::value(Uuid::nil()))
            .filter(appointment::Column::Id.eq(paid))
            .exec(conn)
            .await;
        assert!(orphan.is_err(), "the rebuilt table keeps its foreign keys");
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
        assert_eq!(drift(&catalog::all_tables(), &columns(conn).await.unwrap(), t.engine()), Vec::<String>::new());
    }

    async fn entities_match_the_migrated_schema(t: TestDb) {
        let live = columns(t.conn()).await.unwrap();
        let problems = drift(&catalog::all_tables(), &live, t.engine());
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
            // The appointments overlapping a range (free slots, booking): migration 20.
            ("appointments", &["provider_id", "occupied_until"]),
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

/// `(table, key columns in order)` of every index, primary keys included (columns an
/// index only carries, PostgreSQL's `INCLUDE`, are not part of its key or its name).
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
             WHERE n.nspname = current_schema() AND k.ord <= x.indnkeyatts ORDER BY 1, 2, k.ord"
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
                // A deferred constraint trigger (the cache's NOTIFY) is named like
                // any trigger.
                "t" => c.name.starts_with(&format!("trg_{t}_")),
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
                      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
                      WHERE k.ord <= x.indnkeyatts), \
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
        assert_eq!(
            count("p"),
            39,
            "one primary key per table (37 and the 2 operator tables)"
        );
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

/// Every CHECK constraint rejects a bad row, on both engines.
///
/// The test inserts one valid row into every table, then for each constraint copies a
/// row with `INSERT … SELECT`, overriding a few columns with values that break exactly
/// that rule, and expects the database to name the constraint. Copying (rather than
/// updating) works for append-only tables too; CHECK constraints are evaluated before
/// unique indexes and foreign keys on both engines, so the copy's other properties do
/// not get in the way.
mod checks {
    use std::collections::BTreeMap;

    use chrono::{NaiveDate, NaiveTime};
    use sea_orm::Value;
    use sea_orm::sea_query::{Alias, Query};
    use serde_json::json;

    use super::*;

    /// A rule to break: the constraint, its table, and `column = SQL expression`
    /// overrides evaluated against the copied row. `also` lists constraints implied by
    /// this one (breaking it necessarily breaks them), any of which may be reported.
    struct Case {
        constraint: &'static str,
        set: &'static [(&'static str, &'static str)],
        also: &'static [&'static str],
    }

    const fn case(constraint: &'static str, set: &'static [(&'static str, &'static str)]) -> Case {
        Case {
            constraint,
            set,
            also: &[],
        }
    }

    /// Checks other than vocabularies (those are generated: `'bogus'` in the column).
    const CASES: &[Case] = &[
        case("ck_organizations_currency_format", &[("currency", "'brl'")]),
        case("ck_organizations_slug_format", &[("slug", "'ab'")]),
        case(
            "ck_users_email_lowercase",
            &[("email", "'Someone@Example.com'")],
        ),
        case(
            "ck_users_failed_logins_non_negative",
            &[("failed_login_attempts", "-1")],
        ),
        case("ck_users_tax_id_digits", &[("tax_id", "'123'")]),
        case("ck_staff_members_color_format", &[("color", "'#fff'")]),
        case("ck_staff_members_sort_order_range", &[("sort_order", "-1")]),
        case(
            "ck_user_sessions_expiry_after_creation",
            &[("expires_at", "created_at")],
        ),
        case(
            "ck_password_reset_tokens_expiry_after_creation",
            &[("expires_at", "created_at")],
        ),
        case("ck_user_addresses_country_format", &[("country", "'br'")]),
        case("ck_user_addresses_latitude_range", &[("latitude", "90.5")]),
        case(
            "ck_user_addresses_longitude_range",
            &[("longitude", "-180.5")],
        ),
        case("ck_niches_sort_order_range", &[("sort_order", "-1")]),
        case("ck_categories_sort_order_range", &[("sort_order", "-1")]),
        case(
            "ck_categories_not_own_parent",
            &[("id", "niche_id"), ("parent_id", "niche_id")],
        ),
        case(
            "ck_service_templates_duration_range",
            &[("default_duration_minutes", "0")],
        ),
        case(
            "ck_service_templates_price_non_negative",
            &[("default_price_cents", "-1")],
        ),
        case(
            "ck_services_duration_range",
            &[("duration_minutes", "1441")],
        ),
        case("ck_services_price_non_negative", &[("price_cents", "-1")]),
        case(
            "ck_provider_services_buffer_range",
            &[("buffer_after_minutes", "241")],
        ),
        case(
            "ck_provider_services_execution_range",
            &[("execution_minutes", "0")],
        ),
        case(
            "ck_provider_services_price_non_negative",
            &[("price_cents", "-1")],
        ),
        case(
            "ck_provider_settings_buffer_range",
            &[("buffer_minutes", "-1")],
        ),
        case(
            "ck_provider_settings_duration_range",
            &[("default_duration_minutes", "0")],
        ),
        case(
            "ck_provider_settings_horizon_range",
            &[("max_horizon_days", "731")],
        ),
        case(
            "ck_provider_settings_latitude_range",
            &[("latitude", "-91")],
        ),
        case(
            "ck_provider_settings_longitude_range",
            &[("longitude", "181")],
        ),
        case(
            "ck_provider_settings_lead_range",
            &[("min_lead_minutes", "43201")],
        ),
        case(
            "ck_provider_settings_rating_consistent",
            &[("rating_count", "1"), ("rating_total", "6")],
        ),
        case(
            "ck_provider_settings_slot_step_range",
            &[("slot_step_minutes", "4")],
        ),
        case(
            "ck_provider_payment_preferences_minimum_non_negative",
            &[("minimum_payout_cents", "-1")],
        ),
        case(
            "ck_provider_payment_preferences_payout_details",
            &[("pix_key", "NULL")],
        ),
        Case {
            constraint: "ck_provider_payment_preferences_payout_method",
            set: &[("payout_method", "'bogus'")],
            // An unknown method has no valid payout details either.
            also: &["ck_provider_payment_preferences_payout_details"],
        },
        case(
            "ck_payment_settings_fee_percentage_range",
            &[("fee_percentage_bp", "10001")],
        ),
        case(
            "ck_payment_settings_fees_non_negative",
            &[("fee_fixed_cents", "-1")],
        ),
        case(
            "ck_payment_settings_minimum_withdrawal_non_negative",
            &[("minimum_withdrawal_cents", "-1")],
        ),
        case(
            "ck_payment_settings_payout_delay_range",
            &[("payout_delay_days", "91")],
        ),
        case(
            "ck_integrations_settings_secret_ref_format",
            &[("secret_ref", "'sk_live_123'")],
        ),
        case(
            "ck_integrations_settings_one_secret_source",
            &[
                ("secret_ciphertext", "'c2VhbGVk'"),
                ("secret_key_id", "'k1'"),
            ],
        ),
        case(
            "ck_integrations_settings_secret_sealed_with_key",
            &[("secret_ciphertext", "'c2VhbGVk'"), ("secret_ref", "NULL")],
        ),
        case(
            "ck_user_payment_methods_exp_month_range",
            &[("exp_month", "13")],
        ),
        case(
            "ck_user_payment_methods_exp_year_range",
            &[("exp_year", "1999")],
        ),
        case(
            "ck_user_payment_methods_last4_format",
            &[("last4", "'123'")],
        ),
        case("ck_promotions_code_format", &[("code", "'welcome10'")]),
        case(
            "ck_promotions_discount_value_range",
            &[("discount_value", "10001")],
        ),
        case(
            "ck_promotions_min_order_non_negative",
            &[("min_order_cents", "-1")],
        ),
        case(
            "ck_promotions_max_redemptions_per_client_positive",
            &[("max_redemptions_per_client", "0")],
        ),
        case(
            "ck_promotions_redemptions_range",
            &[("max_redemptions", "1"), ("redemptions_count", "2")],
        ),
        case(
            "ck_promotions_scope_target",
            &[("niche_id", "organization_id")],
        ),
        case(
            "ck_promotions_validity_order",
            &[("valid_from", "valid_until"), ("valid_until", "valid_from")],
        ),
        case(
            "ck_provider_service_fees_fee_bounds",
            &[("fee_min_cents", "200"), ("fee_max_cents", "100")],
        ),
        case(
            "ck_provider_service_fees_fee_percentage_range",
            &[("fee_percentage_bp", "10001")],
        ),
        case(
            "ck_provider_service_fees_fees_non_negative",
            &[("fee_fixed_cents", "-1")],
        ),
        case("ck_availability_kind_fields", &[("weekday", "NULL")]),
        case(
            "ck_availability_slot_step_range",
            &[("slot_step_minutes", "241")],
        ),
        case("ck_availability_time_range", &[("end_time", "start_time")]),
        case("ck_availability_weekday_range", &[("weekday", "8")]),
        case(
            "ck_provider_breaks_date_order",
            &[("starts_on", "ends_on"), ("ends_on", "starts_on")],
        ),
        case("ck_provider_breaks_instant_order", &ONE_OFF_EMPTY),
        case("ck_provider_breaks_kind_fields", &[("weekday", "NULL")]),
        case(
            "ck_provider_breaks_time_order",
            &[("start_time", "end_time"), ("end_time", "start_time")],
        ),
        case("ck_provider_breaks_weekday_range", &[("weekday", "0")]),
        case(
            "ck_blocked_time_slots_date_order",
            &[("starts_on", "ends_on"), ("ends_on", "starts_on")],
        ),
        case("ck_blocked_time_slots_instant_order", &ONE_OFF_EMPTY),
        case(
            "ck_blocked_time_slots_kind_fields",
            &[("start_at", "created_at")],
        ),
        case(
            "ck_blocked_time_slots_time_order",
            &[("start_time", "end_time"), ("end_time", "start_time")],
        ),
        case("ck_blocked_time_slots_weekday_range", &[("weekday", "9")]),
        case("ck_appointments_currency_format", &[("currency", "'BR'")]),
        case(
            "ck_appointments_discount_range",
            &[("discount_cents", "-1")],
        ),
        case(
            "ck_appointments_occupied_after_end",
            &[("occupied_until", "start_at")],
        ),
        case("ck_appointments_one_offering", &[("service_id", "NULL")]),
        Case {
            constraint: "ck_appointments_price_non_negative",
            set: &[("price_cents", "-1"), ("discount_cents", "0")],
            // 0 <= discount <= price already implies price >= 0.
            also: &["ck_appointments_discount_range"],
        },
        case(
            "ck_appointments_time_order",
            &[
                ("start_at", "end_at"),
                ("end_at", "start_at"),
                ("occupied_until", "start_at"),
            ],
        ),
        case("ck_reviews_rating_range", &[("rating", "0")]),
        case(
            "ck_provider_balances_pending_non_negative",
            &[("pending_cents", "-1")],
        ),
        case(
            "ck_provider_balances_currency_format",
            &[("currency", "'brl'")],
        ),
        case(
            "ck_payment_withdrawals_amount_positive",
            &[("amount_cents", "0")],
        ),
        case(
            "ck_payment_withdrawals_currency_format",
            &[("currency", "'BRLX'")],
        ),
        Case {
            constraint: "ck_provider_transactions_amount_non_zero",
            set: &[("amount_cents", "0")],
            // A payment must be positive, so a zero payment breaks both.
            also: &["ck_provider_transactions_sign_by_kind"],
        },
        case(
            "ck_provider_transactions_currency_format",
            &[("currency", "'brl'")],
        ),
        case(
            "ck_provider_transactions_sign_by_kind",
            &[("amount_cents", "-100")],
        ),
        case(
            "ck_notifications_read_at_when_read",
            &[("is_read", "TRUE"), ("read_at", "NULL")],
        ),
        case(
            "ck_onboarding_steps_sort_order_range",
            &[("sort_order", "-1")],
        ),
        case(
            "ck_user_onboarding_progress_completed_at_when_completed",
            &[("status", "'completed'"), ("completed_at", "NULL")],
        ),
        case(
            "ck_idempotency_keys_expiry_after_creation",
            &[("expires_at", "created_at")],
        ),
        case(
            "ck_idempotency_keys_response_status_range",
            &[("response_status", "600")],
        ),
        case(
            "ck_outbox_messages_attempts_non_negative",
            &[("attempts", "-1")],
        ),
        case(
            "ck_outbox_messages_claimed_while_sending",
            &[("status", "'sending'")],
        ),
        case(
            "ck_outbox_messages_sent_at_when_sent",
            &[("status", "'sent'")],
        ),
    ];

    /// A one-off entry whose end is not after its start.
    const ONE_OFF_EMPTY: [(&str, &str); 6] = [
        ("kind", "'one_off'"),
        ("weekday", "NULL"),
        ("start_time", "NULL"),
        ("end_time", "NULL"),
        ("start_at", "created_at"),
        ("end_at", "created_at"),
    ];

    fn date(d: u32) -> Value {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap().into()
    }

    fn time(h: u32) -> Value {
        NaiveTime::from_hms_opt(h, 0, 0).unwrap().into()
    }

    fn s(v: &str) -> Value {
        v.to_owned().into()
    }

    /// One valid row in every table; returns each table's row id.
    async fn one_row_everywhere(conn: &impl ConnectionTrait) -> BTreeMap<&'static str, Uuid> {
        let mut ids: BTreeMap<&'static str, Uuid> = BTreeMap::new();
        let org = Uuid::now_v7();
        insert(
            conn,
            "organizations",
            org,
            vec![
                ("slug", s(&format!("org-{org}"))),
                ("name", s("Checks")),
                ("time_zone", s("UTC")),
                ("currency", s("BRL")),
                ("status", s("active")),
            ],
        )
        .await;
        ids.insert("organizations", org);
        // (table, columns); `organization_id` is added, and `{table}` references the
        // row inserted earlier into that table.
        let rows: Vec<(&'static str, Vec<(&'static str, Value)>)> = vec![
            (
                "users",
                vec![
                    ("email", s("provider@example.com")),
                    ("password_hash", s("x")),
                    ("full_name", s("P")),
                    ("role", s("provider")),
                    ("tax_id", s("12345678901")),
                ],
            ),
            (
                "staff_members",
                vec![("display_name", s("P")), ("color", s("#aabbcc"))],
            ),
            (
                "user_sessions",
                vec![
                    ("user_id", s("{users}")),
                    ("token_hash", s("h1")),
                    ("expires_at", (Utc::now() + Duration::days(1)).into()),
                ],
            ),
            (
                "password_reset_tokens",
                vec![
                    ("user_id", s("{users}")),
                    ("token_hash", s("h2")),
                    ("expires_at", (Utc::now() + Duration::days(1)).into()),
                ],
            ),
            (
                "user_addresses",
                vec![
                    ("user_id", s("{users}")),
                    ("kind", s("home")),
                    ("street", s("Rua A")),
                    ("city", s("Recife")),
                    ("state", s("PE")),
                    ("postal_code", s("50000-000")),
                    ("country", s("BR")),
                    ("latitude", (-8.05f64).into()),
                    ("longitude", (-34.9f64).into()),
                ],
            ),
            ("niches", vec![("name", s("Beauty")), ("slug", s("beauty"))]),
            (
                "categories",
                vec![
                    ("niche_id", s("{niches}")),
                    ("name", s("Hair")),
                    ("slug", s("hair")),
                ],
            ),
            (
                "service_templates",
                vec![
                    ("category_id", s("{categories}")),
                    ("name", s("Cut")),
                    ("default_duration_minutes", 30i32.into()),
                    ("default_price_cents", 3000i64.into()),
                ],
            ),
            (
                "services",
                vec![
                    ("provider_id", s("{users}")),
                    ("name", s("Cut")),
                    ("duration_minutes", 30i32.into()),
                    ("price_cents", 3000i64.into()),
                ],
            ),
            (
                "provider_services",
                vec![
                    ("provider_id", s("{users}")),
                    ("template_id", s("{service_templates}")),
                    ("price_cents", 3500i64.into()),
                    ("execution_minutes", 30i32.into()),
                ],
            ),
            (
                "provider_settings",
                vec![
                    ("provider_id", s("{users}")),
                    ("business_name", s("P")),
                    ("accepted_payment_methods", json!(["pix"]).into()),
                ],
            ),
            (
                "provider_payment_preferences",
                vec![
                    ("provider_id", s("{users}")),
                    ("payout_method", s("pix")),
                    ("pix_key", s("p@example.com")),
                ],
            ),
            ("payment_settings", vec![]),
            (
                "integrations_settings",
                vec![
                    ("integration", s("stripe")),
                    ("config", json!({}).into()),
                    ("secret_ref", s("env:STRIPE_KEY")),
                ],
            ),
            (
                "user_payment_methods",
                vec![
                    ("user_id", s("{users}")),
                    ("processor", s("stripe")),
                    ("processor_token", s("tok_1")),
                    ("last4", s("4242")),
                    ("exp_month", 12i32.into()),
                    ("exp_year", 2030i32.into()),
                ],
            ),
            (
                "client_payment_preferences",
                vec![("client_id", s("{users}"))],
            ),
            (
                "promotions",
                vec![
                    ("code", s("WELCOME10")),
                    ("name", s("Welcome")),
                    ("discount_type", s("percentage")),
                    ("discount_value", 1000i64.into()),
                    ("valid_from", Utc::now().into()),
                    ("valid_until", (Utc::now() + Duration::days(30)).into()),
                ],
            ),
            (
                "provider_service_fees",
                vec![
                    ("provider_id", s("{users}")),
                    ("fee_percentage_bp", 500i32.into()),
                ],
            ),
            (
                "availability",
                vec![
                    ("provider_id", s("{users}")),
                    ("kind", s("weekly")),
                    ("weekday", 1i32.into()),
                    ("start_time", time(9)),
                    ("end_time", time(18)),
                ],
            ),
            (
                "provider_breaks",
                vec![
                    ("provider_id", s("{users}")),
                    ("kind", s("weekly")),
                    ("weekday", 1i32.into()),
                    ("start_time", time(12)),
                    ("end_time", time(13)),
                    ("starts_on", date(1)),
                    ("ends_on", date(31)),
                ],
            ),
            (
                "blocked_time_slots",
                vec![
                    ("provider_id", s("{users}")),
                    ("kind", s("weekly")),
                    ("weekday", 2i32.into()),
                    ("start_time", time(14)),
                    ("end_time", time(15)),
                    ("starts_on", date(1)),
                    ("ends_on", date(31)),
                ],
            ),
            (
                "appointments",
                vec![
                    ("client_id", s("{users}")),
                    ("provider_id", s("{users}")),
                    ("service_id", s("{services}")),
                    ("start_at", at(10, 0).into()),
                    ("end_at", at(11, 0).into()),
                    ("occupied_until", at(11, 15).into()),
                    ("status", s("completed")),
                    ("price_cents", 3000i64.into()),
                    ("discount_cents", 300i64.into()),
                    ("currency", s("BRL")),
                ],
            ),
            (
                "appointment_status_history",
                vec![
                    ("appointment_id", s("{appointments}")),
                    ("to_status", s("completed")),
                ],
            ),
            (
                "reviews",
                vec![
                    ("appointment_id", s("{appointments}")),
                    ("client_id", s("{users}")),
                    ("provider_id", s("{users}")),
                    ("rating", 5i32.into()),
                ],
            ),
            (
                "provider_balances",
                vec![("provider_id", s("{users}")), ("currency", s("BRL"))],
            ),
            (
                "payment_withdrawals",
                vec![
                    ("provider_id", s("{users}")),
                    ("amount_cents", 1000i64.into()),
                    ("currency", s("BRL")),
                    ("payout_method", s("pix")),
                ],
            ),
            (
                "provider_transactions",
                vec![
                    ("provider_id", s("{users}")),
                    ("kind", s("payment")),
                    ("bucket", s("pending")),
                    ("amount_cents", 2700i64.into()),
                    ("currency", s("BRL")),
                    ("appointment_id", s("{appointments}")),
                ],
            ),
            (
                "support_tickets",
                vec![("requester_id", s("{users}")), ("subject", s("Help"))],
            ),
            (
                "support_messages",
                vec![("ticket_id", s("{support_tickets}")), ("body", s("Hello"))],
            ),
            (
                "onboarding_steps",
                vec![
                    ("key", s("profile")),
                    ("title", s("Profile")),
                    ("role", s("provider")),
                ],
            ),
            (
                "user_onboarding_progress",
                vec![
                    ("user_id", s("{users}")),
                    ("step_id", s("{onboarding_steps}")),
                ],
            ),
            (
                "notifications",
                vec![
                    ("user_id", s("{users}")),
                    ("kind", s("appointment_confirmed")),
                    ("title", s("T")),
                    ("body", s("B")),
                ],
            ),
            (
                "system_settings",
                vec![
                    ("key", s("booking.policy")),
                    ("value", json!({"hours": 24}).into()),
                ],
            ),
            (
                "audit_log",
                vec![
                    ("action", s("test")),
                    ("entity_type", s("organization")),
                    ("details", json!({}).into()),
                ],
            ),
            (
                "idempotency_keys",
                vec![
                    ("user_id", s("{users}")),
                    ("key", s("k1")),
                    ("method", s("POST")),
                    ("path", s("/api/v1/x")),
                    ("request_hash", s("h")),
                    ("expires_at", (Utc::now() + Duration::days(1)).into()),
                ],
            ),
            (
                "outbox_messages",
                vec![
                    ("recipient_user_id", s("{users}")),
                    ("kind", s("password_reset")),
                    ("locale", s("pt-BR")),
                    ("to_address", s("provider@example.com")),
                    ("subject", s("S")),
                    ("body_text", s("T")),
                    ("body_html", s("<p>H</p>")),
                    ("message_id", s("<m1@agenda.localhost>")),
                    ("status", s("queued")),
                    ("next_attempt_at", Utc::now().into()),
                ],
            ),
        ];
        for (table, mut columns) in rows {
            for (_, value) in columns.iter_mut() {
                if let Value::String(Some(text)) = value
                    && let Some(name) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}'))
                {
                    *value = ids[name].into();
                }
            }
            columns.push(("organization_id", org.into()));
            let id = Uuid::now_v7();
            insert(conn, table, id, columns).await;
            ids.insert(table, id);
        }
        ids
    }

    async fn insert(
        conn: &impl ConnectionTrait,
        table: &str,
        id: Uuid,
        mut columns: Vec<(&str, Value)>,
    ) {
        columns.insert(0, ("id", id.into()));
        let mut stmt = Query::insert();
        stmt.into_table(Alias::new(table))
            .columns(columns.iter().map(|(c, _)| Alias::new(*c)))
            .values_panic(columns.into_iter().map(|(_, v)| v.into()));
        conn.execute(&stmt)
            .await
            .unwrap_or_else(|e| panic!("valid {table} row: {e}"));
    }

    /// Copies row `id` of `table` with `overrides`, returning the error.
    async fn copy_with(
        conn: &impl ConnectionTrait,
        table: &str,
        id: Uuid,
        overrides: &[(&str, &str)],
    ) -> Result<(), StorageError> {
        let backend = conn.get_database_backend();
        let columns: Vec<String> = catalog::tables()
            .into_iter()
            .find(|t| t.name == table)
            .unwrap_or_else(|| panic!("unknown table {table}"))
            .columns
            .into_iter()
            .map(|c| c.name)
            .collect();
        let new_id = match Engine::of(backend) {
            Engine::Sqlite => "randomblob(16)",
            Engine::Postgres => "gen_random_uuid()",
        };
        let select: Vec<String> = columns
            .iter()
            .map(|c| match overrides.iter().find(|(o, _)| o == c) {
                Some((_, expr)) => (*expr).to_owned(),
                None if c == "id" => new_id.to_owned(),
                None => c.clone(),
            })
            .collect();
        let placeholder = match Engine::of(backend) {
            Engine::Sqlite => "?",
            Engine::Postgres => "$1",
        };
        let sql = format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {table} WHERE id = {placeholder}",
            columns.join(", "),
            select.join(", ")
        );
        conn.execute_raw(Statement::from_sql_and_values(backend, sql, [id.into()]))
            .await?;
        Ok(())
    }

    fn table_of(constraint: &str) -> &'static str {
        let tables = catalog::tables();
        tables
            .iter()
            .filter(|t| constraint.starts_with(&format!("ck_{}_", t.name)))
            .max_by_key(|t| t.name.len())
            .map(|t| t.name)
            .unwrap_or_else(|| panic!("no table for {constraint}"))
    }

    /// `ck_<table>_<column>` constraints over a vocabulary column of the table.
    fn vocabulary_cases() -> Vec<(String, &'static str, String)> {
        let mut out = Vec::new();
        for table in catalog::tables() {
            for column in &table.columns {
                let name = format!("ck_{}_{}", table.name, column.name);
                if !CASES.iter().any(|c| c.constraint == name) {
                    out.push((name, table.name, column.name.clone()));
                }
            }
        }
        out
    }

    both_engines! {
        async fn every_check_rejects_a_bad_row(t: TestDb) {
            let conn = t.conn();
            let ids = one_row_everywhere(conn).await;
            assert_eq!(ids.len(), 37, "a valid row in every table");

            let mut tested = Vec::new();
            let mut failures = Vec::new();
            for case in CASES {
                let table = table_of(case.constraint);
                match copy_with(conn, table, ids[table], case.set).await {
                    Err(StorageError::CheckViolation { constraint: Some(name) })
                        if name == case.constraint || case.also.contains(&name.as_str()) => {}
                    other => failures.push(format!("{}: {other:?}", case.constraint)),
                }
                tested.push(case.constraint.to_owned());
            }
            // Vocabularies: only for constraints that exist (a column named like a
            // vocabulary constraint but without one must accept the value).
            let existing = check_names(conn).await;
            for (name, table, column) in vocabulary_cases() {
                let Some(existing) = &existing else { break };
                if !existing.contains(&name) {
                    continue;
                }
                let set = [(column.as_str(), "'bogus'")];
                match copy_with(conn, table, ids[table], &set).await {
                    Err(StorageError::CheckViolation { constraint: Some(found) }) if found == name => {}
                    other => failures.push(format!("{name}: {other:?}")),
                }
                tested.push(name);
            }
            assert!(failures.is_empty(), "checks that did not reject as expected:\n{}", failures.join("\n"));

            if let Some(existing) = existing {
                let untested: Vec<_> = existing.iter().filter(|n| !tested.contains(n)).collect();
                assert!(untested.is_empty(), "CHECK constraints without a case: {untested:?}");
                assert_eq!(tested.len(), existing.len());
            }
        }
    }

    /// Every `ck_` constraint name on PostgreSQL (SQLite keeps them only in the DDL text).
    async fn check_names(conn: &impl ConnectionTrait) -> Option<Vec<String>> {
        match Engine::of(conn.get_database_backend()) {
            Engine::Postgres => Some(
                strings(
                    &query(
                        conn,
                        "SELECT con.conname::text FROM pg_constraint con \
                         JOIN pg_namespace n ON n.oid = con.connamespace \
                         WHERE con.contype = 'c' AND n.nspname = current_schema() ORDER BY 1",
                    )
                    .await,
                    1,
                )
                .into_iter()
                .map(|mut r| r.remove(0))
                .collect(),
            ),
            Engine::Sqlite => {
                let ddl: Vec<String> = strings(
                    &query(
                        conn,
                        "SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL",
                    )
                    .await,
                    1,
                )
                .into_iter()
                .map(|mut r| r.remove(0))
                .collect();
                let mut names: Vec<String> = ddl
                    .iter()
                    .flat_map(|sql| sql.split("CONSTRAINT \"").skip(1))
                    .filter_map(|rest| rest.split('"').next())
                    .filter(|n| n.starts_with("ck_"))
                    .map(str::to_owned)
                    .collect();
                names.sort();
                Some(names)
            }
        }
    }
}

/// The Citus-readiness report (issue 16, `docs/scaling.md`): to distribute tenant
/// tables by `organization_id`, Citus needs that column in every primary key, unique
/// constraint, unique index and exclusion constraint of a distributed table, and in every foreign key
/// between two distributed tables. This prints every one that lacks it, from the
/// live catalog, and holds the count to the figure `docs/scaling.md` documents, so a
/// new table or constraint that widens the migration path fails here until the
/// document says so.
#[tokio::test]
async fn citus_readiness_report() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let rows = t
        .conn()
        .query_all_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "WITH tenant AS ( \
                 SELECT c.oid, c.relname::text AS name, a.attnum AS org \
                 FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'organization_id' \
                                    AND NOT a.attisdropped \
                 WHERE c.relkind = 'r') \
             SELECT t.name, 'primary key' AS kind, con.conname::text \
               FROM tenant t JOIN pg_constraint con ON con.conrelid = t.oid AND con.contype = 'p' \
              WHERE NOT t.org = ANY (con.conkey) \
             UNION ALL \
             SELECT t.name, 'exclusion constraint', con.conname::text \
               FROM tenant t JOIN pg_constraint con ON con.conrelid = t.oid AND con.contype = 'x' \
              WHERE NOT t.org = ANY (con.conkey) \
             UNION ALL \
             SELECT t.name, 'unique', i.indexrelid::regclass::text \
               FROM tenant t JOIN pg_index i ON i.indrelid = t.oid AND i.indisunique AND NOT i.indisprimary \
              WHERE NOT t.org = ANY (i.indkey::int2[]) \
             UNION ALL \
             SELECT t.name, 'foreign key to ' || r.name, con.conname::text \
               FROM tenant t JOIN pg_constraint con ON con.conrelid = t.oid AND con.contype = 'f' \
               JOIN tenant r ON r.oid = con.confrelid \
              WHERE NOT (t.org = ANY (con.conkey) AND r.org = ANY (con.confkey)) \
             ORDER BY 1, 2, 3",
        ))
        .await
        .unwrap();
    let findings: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get_by_index(0).unwrap(),
                r.try_get_by_index(1).unwrap(),
                r.try_get_by_index(2).unwrap(),
            )
        })
        .collect();
    let tables: std::collections::BTreeSet<&str> =
        findings.iter().map(|(t, _, _)| t.as_str()).collect();
    let count = |kind: &str| {
        findings
            .iter()
            .filter(|(_, k, _)| k.starts_with(kind))
            .count()
    };
    println!("Citus-readiness report: what lacks organization_id");
    for (table, kind, name) in &findings {
        println!("  {table:<34} {kind:<40} {name}");
    }
    let summary = format!(
        "{} findings on {} tenant tables: {} primary keys, {} unique constraints or indexes, {} exclusion constraints, {} foreign keys",
        findings.len(),
        tables.len(),
        count("primary key"),
        count("unique"),
        count("exclusion"),
        count("foreign key")
    );
    println!("{summary}");
    let documented = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/scaling.md"),
    )
    .unwrap();
    assert!(
        documented.contains(&summary),
        "docs/scaling.md must state the report's figure: \"{summary}\""
    );
}
