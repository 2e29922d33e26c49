//! Organizations: the tenants themselves, so these functions take no tenant scope.

// The workspace forbids unscoped queries (clippy.toml); this table has no tenant column.
#![allow(clippy::disallowed_methods)]

use agenda_entity::organization::{
    self, CreateOrganization, Entity as Organizations, OrganizationStatus, UpdateOrganization,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder,
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

    /// Every organization by slug, optionally only those in `status` (operators).
    pub async fn list(
        db: &impl ConnectionTrait,
        status: Option<OrganizationStatus>,
    ) -> Result<Vec<organization::Model>, StorageError> {
        let mut select = Organizations::find().order_by_asc(organization::Column::Slug);
        if let Some(status) = status {
            select = select.filter(organization::Column::Status.eq(status));
        }
        Ok(select.all(db).await?)
    }

    /// Sets the organization's status (suspend, activate) and returns it, with whether
    /// it changed: one conditional `UPDATE`, so of two concurrent identical changes
    /// exactly one reports a change. Only this row changes: a suspended organization
    /// keeps all its data, and activating it restores everything as it was.
    pub async fn set_status(
        db: &impl ConnectionTrait,
        id: Uuid,
        status: OrganizationStatus,
    ) -> Result<(bool, organization::Model), StorageError> {
        use sea_orm::sea_query::Expr;
        let result = Organizations::update_many()
            .col_expr(organization::Column::Status, Expr::value(status))
            .col_expr(
                organization::Column::UpdatedAt,
                Expr::value(agenda_entity::now()),
            )
            .filter(organization::Column::Id.eq(id))
            .filter(organization::Column::Status.ne(status))
            .exec(db)
            .await?;
        Ok((result.rows_affected == 1, Self::get(db, id).await?))
    }
}
