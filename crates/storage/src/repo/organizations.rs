//! Organizations: the tenants themselves, so these functions take no tenant scope.

// The workspace forbids unscoped queries (clippy.toml); this table has no tenant column.
#![allow(clippy::disallowed_methods)]

use agenda_entity::organization::{
    self, CreateOrganization, Entity as Organizations, UpdateOrganization,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
};
use uuid::Uuid;

use crate::error::StorageError;

pub struct OrganizationRepo;

impl OrganizationRepo {
    /// Inserts a new organization. A taken slug is reported by the unique constraint
    /// (`uq_organizations_slug`) as a conflict; there is no check-then-insert race.
    pub async fn create(
        db: &impl ConnectionTrait,
        input: CreateOrganization,
    ) -> Result<organization::Model, StorageError> {
        Ok(input.into_active_model().insert(db).await?)
    }

    pub async fn get(
        db: &impl ConnectionTrait,
        id: Uuid,
    ) -> Result<organization::Model, StorageError> {
        Organizations::find_by_id(id)
            .one(db)
            .await?
            .ok_or(StorageError::not_found("organization"))
    }

    pub async fn find_by_slug(
        db: &impl ConnectionTrait,
        slug: &str,
    ) -> Result<Option<organization::Model>, StorageError> {
        Ok(Organizations::find()
            .filter(organization::Column::Slug.eq(slug))
            .one(db)
            .await?)
    }

    pub async fn update(
        db: &impl ConnectionTrait,
        id: Uuid,
        input: UpdateOrganization,
    ) -> Result<organization::Model, StorageError> {
        let mut model = Self::get(db, id).await?.into_active_model();
        input.apply(&mut model);
        Ok(model.update(db).await?)
    }
}
