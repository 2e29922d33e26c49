//! Reviews and the provider's rating counters (`provider_settings.rating_count`,
//! `rating_total`), kept here and nowhere else: every function that creates,
//! moderates or deletes a review adjusts the counters in the same transaction, so
//! they always equal the count and sum of the provider's **approved** reviews.
//!
//! - Moderation is a compare-and-set on the old status: two moderators racing cannot
//!   both count the same rating (the loser gets `InvalidState { code: "conflict" }`).
//! - A provider without a `provider_settings` row gets none created: the counters
//!   are not kept for them (the public profile then shows no rating).
//! - [`ReviewRepo::rating_aggregate`] computes the same figures from the reviews, for
//!   checks.

use agenda_entity::enums::ModerationStatus;
use agenda_entity::{provider_settings, review};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, QueryFilter};
use uuid::Uuid;

use crate::error::StorageError;
use crate::repo::resource::Repo;
use crate::tenant::{TenantOwned, TenantScope};

pub struct ReviewRepo;

impl ReviewRepo {
    /// Creates a review of `provider_id` by `client_id` (pending unless `status` says
    /// otherwise, as the seed does); an approved one counts at once.
    pub async fn create(
        tx: &impl ConnectionTrait,
        scope: TenantScope,
        input: review::CreateReview,
        client_id: Uuid,
        provider_id: Uuid,
        status: ModerationStatus,
    ) -> Result<review::Model, StorageError> {
        let created = Repo::<review::Entity>::create(tx, scope, input, |r| {
            r.client_id = Set(client_id);
            r.provider_id = Set(provider_id);
            r.moderation_status = Set(status);
        })
        .await?;
        if status == ModerationStatus::Approved {
            adjust(
                tx,
                scope,
                provider_id,
                1,
                i64::from(created.rating),
                created.created_at,
            )
            .await?;
        }
        Ok(created)
    }

    /// Moves a review to `to` (by `moderator` at `now`) and the counters with it:
    /// into approved adds the rating, out of approved takes it away.
    pub async fn moderate(
        tx: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
        to: ModerationStatus,
        moderator: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(review::Model, review::Model), StorageError> {
        let before = Repo::<review::Entity>::get(tx, scope, id).await?;
        let changed = review::Entity::update_in(scope)
            .filter(review::Column::Id.eq(id))
            .filter(review::Column::ModerationStatus.eq(before.moderation_status))
            .col_expr(review::Column::ModerationStatus, Expr::value(to.as_str()))
            .col_expr(review::Column::ModeratedBy, Expr::value(moderator))
            .col_expr(review::Column::ModeratedAt, Expr::value(now))
            .col_expr(review::Column::UpdatedAt, Expr::value(now))
            .exec(tx)
            .await?;
        if changed.rows_affected == 0 {
            return Err(StorageError::InvalidState {
                code: "conflict",
                message: "the review was moderated concurrently; retry".into(),
            });
        }
        let was = before.moderation_status == ModerationStatus::Approved;
        let is = to == ModerationStatus::Approved;
        let rating = i64::from(before.rating);
        match (was, is) {
            (false, true) => adjust(tx, scope, before.provider_id, 1, rating, now).await?,
            (true, false) => adjust(tx, scope, before.provider_id, -1, -rating, now).await?,
            _ => {}
        }
        let after = Repo::<review::Entity>::get(tx, scope, id).await?;
        Ok((before, after))
    }

    /// Deletes a review; an approved one leaves the counters.
    pub async fn delete(
        tx: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<review::Model, StorageError> {
        let found = Repo::<review::Entity>::get(tx, scope, id).await?;
        Repo::<review::Entity>::delete(tx, scope, id).await?;
        if found.moderation_status == ModerationStatus::Approved {
            adjust(
                tx,
                scope,
                found.provider_id,
                -1,
                -i64::from(found.rating),
                now,
            )
            .await?;
        }
        Ok(found)
    }

    /// `(count, total)` of the provider's approved reviews, from the reviews.
    pub async fn rating_aggregate(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        provider_id: Uuid,
    ) -> Result<(i64, i64), StorageError> {
        let approved = review::Entity::find_in(scope)
            .filter(review::Column::ProviderId.eq(provider_id))
            .filter(review::Column::ModerationStatus.eq(ModerationStatus::Approved))
            .all(db)
            .await?;
        Ok((
            approved.len() as i64,
            approved.iter().map(|r| i64::from(r.rating)).sum(),
        ))
    }
}

/// Adds `count` and `total` to the provider's counters (relative updates, so
/// concurrent adjustments never lose one another).
async fn adjust(
    tx: &impl ConnectionTrait,
    scope: TenantScope,
    provider_id: Uuid,
    count: i32,
    total: i64,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    crate::cache::wrote(scope, "provider_settings");
    provider_settings::Entity::update_in(scope)
        .filter(provider_settings::Column::ProviderId.eq(provider_id))
        .col_expr(
            provider_settings::Column::RatingCount,
            Expr::col(provider_settings::Column::RatingCount).add(count),
        )
        .col_expr(
            provider_settings::Column::RatingTotal,
            Expr::col(provider_settings::Column::RatingTotal).add(total),
        )
        .col_expr(provider_settings::Column::UpdatedAt, Expr::value(now))
        .exec(tx)
        .await?;
    Ok(())
}
