//! An organization's integrations (`integrations_settings`, one row per integration
//! key such as `stripe`), and where each one's secret comes from.
//!
//! A secret has one of two sources ([`SecretSource`]):
//!
//! - **a reference**, `env:NAME`: the secret is the server's environment variable
//!   `NAME`, read each time it is needed. The database never holds it; setting or
//!   rotating it is an operator's job (a variable and a restart);
//! - **sealed**: an admin sent the secret itself; it is stored encrypted with the
//!   server's key ([`crate::secrets`]), bound to this organization and integration,
//!   with the id of the key and the secret's last four characters (for a hint).
//!
//! Neither is ever returned: [`IntegrationRepo::secret`] opens it for the code that
//! uses it (a webhook's signature check) and nothing else.

use agenda_entity::integration_setting::{self, Entity as Integrations};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value as Json;

use crate::error::StorageError;
use crate::repo::resource::MAX_PAGE_SIZE;
use crate::secrets::{Sealed, Secret, SecretKeys, SecretsError};
use crate::tenant::{TenantOwned, TenantScope};

/// Where an integration's secret comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// `secret_ref = env:NAME`.
    Environment,
    /// `secret_ciphertext`, sealed with the server's key.
    Sealed,
}

impl SecretSource {
    /// The source of `row`'s secret, if it has one.
    pub fn of(row: &integration_setting::Model) -> Option<Self> {
        if row.secret_ciphertext.is_some() {
            Some(SecretSource::Sealed)
        } else if row.secret_ref.is_some() {
            Some(SecretSource::Environment)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SecretSource::Environment => "env",
            SecretSource::Sealed => "encrypted",
        }
    }
}

/// What a write does to the secret.
pub enum SecretChange {
    /// Leave it as it is.
    Keep,
    /// Remove it (the integration then has no secret).
    Clear,
    /// Reference a variable of the server's environment (`env:NAME`, validated).
    Reference(String),
    /// Seal and store this secret (its text; never stored as it is).
    Store(String),
}

/// A write to one integration: fields left `None` keep their value (or their
/// default, for a new row: disabled, `{}`).
pub struct IntegrationChange {
    pub is_enabled: Option<bool>,
    pub config: Option<Json>,
    pub secret: SecretChange,
}

/// Why an integration's secret is not available.
#[derive(Debug, thiserror::Error)]
pub enum SecretUnavailable {
    #[error("the integration has no secret")]
    None,
    /// The variable a reference names is unset or empty (its name is configuration,
    /// not a secret).
    #[error("the environment variable {0} is not set")]
    UnsetVariable(String),
    #[error(transparent)]
    Sealed(#[from] SecretsError),
}

/// Secrets shorter than this get no hint: four characters of a short secret would
/// give too much of it away.
const MIN_CHARS_FOR_HINT: usize = 16;

/// What binds a sealed secret to its row: another organization's or integration's
/// row cannot open it.
fn context(scope: TenantScope, integration: &str) -> String {
    format!(
        "integrations_settings/{}/{integration}",
        scope.organization_id()
    )
}

/// The last four characters of a long enough secret.
fn hint(secret: &str) -> Option<String> {
    let chars: Vec<char> = secret.chars().collect();
    (chars.len() >= MIN_CHARS_FOR_HINT).then(|| chars[chars.len() - 4..].iter().collect())
}

pub struct IntegrationRepo;

impl IntegrationRepo {
    /// The organization's integration `integration`, if configured.
    pub async fn find(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        integration: &str,
    ) -> Result<Option<integration_setting::Model>, StorageError> {
        Ok(Integrations::find_in(scope)
            .filter(integration_setting::Column::Integration.eq(integration))
            .one(db)
            .await?)
    }

    /// The organization's integrations by key (an organization has a handful; at
    /// most [`MAX_PAGE_SIZE`] are returned).
    pub async fn list(
        db: &impl ConnectionTrait,
        scope: TenantScope,
    ) -> Result<Vec<integration_setting::Model>, StorageError> {
        Ok(Integrations::find_in(scope)
            .order_by_asc(integration_setting::Column::Integration)
            .limit(MAX_PAGE_SIZE)
            .all(db)
            .await?)
    }

    /// Creates or changes the integration `integration` (a validated key); returns
    /// the row and whether it was created. A secret to store is sealed with `keys`
    /// first, and refused ([`SecretsError::NoKey`], a validation error on `secret`)
    /// when the server has no key: it is never written in clear. Two concurrent
    /// creations of one integration: one wins, the other is a conflict on
    /// `uq_integrations_settings_organization_id_integration`.
    pub async fn put(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        keys: &SecretKeys,
        integration: &str,
        change: IntegrationChange,
    ) -> Result<(integration_setting::Model, bool), StorageError> {
        let existing = Self::find(tx, scope, integration).await?;
        let created = existing.is_none();
        let mut row = match existing {
            Some(row) => row.into_active_model(),
            None => integration_setting::ActiveModel {
                organization_id: Set(scope.organization_id()),
                integration: Set(integration.to_owned()),
                is_enabled: Set(false),
                config: Set(Json::Object(Default::default())),
                secret_ref: Set(None),
                secret_ciphertext: Set(None),
                secret_key_id: Set(None),
                secret_hint: Set(None),
                ..Default::default()
            },
        };
        if let Some(enabled) = change.is_enabled {
            row.is_enabled = Set(enabled);
        }
        if let Some(config) = change.config {
            row.config = Set(config);
        }
        let (reference, sealed, hint) = match change.secret {
            SecretChange::Keep => return Self::save(tx, row, created).await,
            SecretChange::Clear => (None, None, None),
            SecretChange::Reference(name) => (Some(name), None, None),
            SecretChange::Store(secret) => {
                let sealed = keys
                    .seal(secret.as_bytes(), &context(scope, integration))
                    .map_err(|e| StorageError::Validation {
                        field: "secret",
                        message: match e {
                            SecretsError::NoKey => "cannot be stored: this server has no \
                                SECRETS_KEY to encrypt it with; ask the operator to set one, \
                                or send a secret_ref (env:NAME) instead"
                                .into(),
                            other => other.to_string(),
                        },
                    })?;
                (None, Some(sealed), hint(&secret))
            }
        };
        row.secret_ref = Set(reference);
        row.secret_key_id = Set(sealed.as_ref().map(|s| s.key_id.clone()));
        row.secret_ciphertext = Set(sealed.map(|s| s.ciphertext));
        row.secret_hint = Set(hint);
        Self::save(tx, row, created).await
    }

    async fn save(
        tx: &DatabaseTransaction,
        row: integration_setting::ActiveModel,
        created: bool,
    ) -> Result<(integration_setting::Model, bool), StorageError> {
        let saved = if created {
            row.insert(tx).await?
        } else {
            row.update(tx).await?
        };
        Ok((saved, created))
    }

    /// Deletes the integration `integration`; "not found" when there is none.
    pub async fn delete(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        integration: &str,
    ) -> Result<(), StorageError> {
        let result = Integrations::delete_in(scope)
            .filter(integration_setting::Column::Integration.eq(integration))
            .exec(db)
            .await?;
        if result.rows_affected == 0 {
            return Err(StorageError::not_found("integration"));
        }
        Ok(())
    }

    /// The secret of `row` (an integration of `scope`), for the code that uses it:
    /// the referenced environment variable, or the sealed secret opened with `keys`.
    pub fn secret(
        keys: &SecretKeys,
        scope: TenantScope,
        row: &integration_setting::Model,
    ) -> Result<Secret, SecretUnavailable> {
        match (&row.secret_ciphertext, &row.secret_key_id, &row.secret_ref) {
            (Some(ciphertext), Some(key_id), _) => {
                let sealed = Sealed {
                    key_id: key_id.clone(),
                    ciphertext: ciphertext.clone(),
                };
                Ok(keys.open(&sealed, &context(scope, &row.integration))?)
            }
            (_, _, Some(reference)) => {
                let name = reference.strip_prefix("env:").unwrap_or(reference);
                match std::env::var(name) {
                    Ok(value) if !value.is_empty() => Ok(Secret::new(value.into_bytes())),
                    _ => Err(SecretUnavailable::UnsetVariable(name.to_owned())),
                }
            }
            _ => Err(SecretUnavailable::None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_only_for_long_secrets() {
        assert_eq!(hint("whsec_0123456789abcd").as_deref(), Some("abcd"));
        assert_eq!(hint("short-secret"), None);
    }
}
