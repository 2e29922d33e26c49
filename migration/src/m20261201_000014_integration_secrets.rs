//! Integration secrets encrypted at rest.
//!
//! Until now an integration's secret could only be *referenced*
//! (`integrations_settings.secret_ref = 'env:NAME'`: the server reads the variable),
//! which needs an operator to set a variable and restart for every organization. An
//! admin may now also send the secret itself over the API; it is stored sealed with
//! XChaCha20-Poly1305 under the server's `SECRETS_KEY` (`agenda_storage::secrets`):
//!
//! - `secret_ciphertext`: base64 of nonce and ciphertext; never the secret in clear;
//! - `secret_key_id`: which key sealed it, so keys can be rotated (an old key stays
//!   configured for reading until every secret it sealed was written again);
//! - `secret_hint`: the secret's last four characters, to tell secrets apart in a
//!   view (`****abcd`), or nothing for short secrets.
//!
//! `ck_integrations_settings_secret_sealed_with_key`: a ciphertext always has its key
//! id and the other way round. `ck_integrations_settings_one_secret_source`: a row
//! holds a sealed secret or a reference, never both.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use crate::ddl::identifier;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "integrations_settings";

/// A named CHECK: `(name suffix, condition)`.
type Check = (&'static str, &'static str);

/// `(column, type, CHECKs attached to it)`, in the order they are added. SQLite takes
/// a CHECK only inside the column definition, so each CHECK is attached to the last
/// of the columns it reads.
const COLUMNS: &[(&str, &str, &[Check])] = &[
    ("secret_key_id", "varchar", &[]),
    ("secret_hint", "varchar", &[]),
    (
        "secret_ciphertext",
        "text",
        &[
            (
                "secret_sealed_with_key",
                "(secret_ciphertext IS NULL) = (secret_key_id IS NULL)",
            ),
            (
                "one_secret_source",
                "secret_ciphertext IS NULL OR secret_ref IS NULL",
            ),
        ],
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        for (column, kind, checks) in COLUMNS {
            let checks: Vec<String> = checks
                .iter()
                .map(|(name, expr)| {
                    let name = identifier(format!("ck_{TABLE}_{name}"));
                    if postgres {
                        format!(", ADD CONSTRAINT \"{name}\" CHECK ({expr})")
                    } else {
                        format!(" CONSTRAINT \"{name}\" CHECK ({expr})")
                    }
                })
                .collect();
            conn.execute_unprepared(&format!(
                "ALTER TABLE {TABLE} ADD COLUMN {column} {kind} NULL{}",
                checks.concat()
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The reverse order: a column's CHECKs go with it, and the columns they read
        // are dropped after it.
        for (column, _, _) in COLUMNS.iter().rev() {
            manager
                .get_connection()
                .execute_unprepared(&format!("ALTER TABLE {TABLE} DROP COLUMN {column}"))
                .await?;
        }
        Ok(())
    }
}
