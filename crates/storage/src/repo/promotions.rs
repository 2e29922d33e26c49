//! Promotions at booking: which promotion applies to an offering, how much it takes
//! off (one rule, [`discount`], shared with coupon validation), and the usage limits.
//!
//! - **A coupon** (`coupon_code` on the booking) must apply, or the booking fails and
//!   says why: `422` on `coupon_code` for a code that is unknown, inactive, not started,
//!   expired, below its minimum or out of scope; `409 coupon_exhausted` when its total
//!   uses are gone, `409 coupon_limit_reached` when this client holds as many bookings
//!   with it as it allows. The client is never charged silently without the discount
//!   they asked for.
//! - **Automatic promotions** (those without a code) apply by scope (all, service,
//!   provider, category, niche): the one giving the largest discount wins (the oldest on
//!   a tie); one used up meanwhile is skipped for the next.
//! - **Limits hold under concurrency**: a use is claimed with one conditional
//!   `UPDATE promotions SET redemptions_count = redemptions_count + 1 WHERE … AND
//!   redemptions_count < max_redemptions`. On PostgreSQL that statement row-locks the
//!   promotion until commit and re-checks the condition on the newest row, so
//!   concurrent bookings queue on it and exactly `max_redemptions` succeed; on SQLite
//!   writers are serialized anyway. The per-client count is taken after the claim,
//!   while the lock is held, so it sees every committed booking of that client.
//! - **Canceling returns the use** ([`PromotionRepo::release`]), in the cancel's
//!   transaction; the appointment keeps its `promotion_id` and `discount_cents` as the
//!   record of what was granted.

use agenda_entity::enums::{AppointmentStatus, DiscountType, PromotionScope};
use agenda_entity::{appointment, category, promotion, service};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, PaginatorTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::error::StorageError;
use crate::repo::appointments::Offering;
use crate::tenant::{TenantOwned, TenantScope};

/// What a promotion is being applied to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromotionTarget {
    pub service_id: Option<Uuid>,
    pub provider_id: Option<Uuid>,
    pub category_id: Option<Uuid>,
    pub niche_id: Option<Uuid>,
}

/// The promotion granted to a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    pub promotion_id: Uuid,
    pub discount_cents: i64,
}

/// One basis point is 1/10 000.
const BASIS_POINTS: i128 = 10_000;

/// The discount `promo` gives on `amount_cents` for `target` at `now`, or why it does
/// not apply. In order: the promotion must be active, started (`valid_from ≤ now`),
/// not expired (`now < valid_until`), under `max_redemptions`, the amount at least
/// `min_order_cents`, and the scope must match (`all`; `service`: the service;
/// `provider`: the provider, or the service's provider; `category`: the service's
/// category; `niche`: the niche of the service's category). A percentage (basis
/// points) is rounded half up on the exact fraction, like the platform fee; a fixed
/// discount is capped at the amount.
pub fn discount(
    promo: &promotion::Model,
    amount_cents: i64,
    target: &PromotionTarget,
    now: DateTime<Utc>,
) -> Result<i64, &'static str> {
    if !promo.is_active {
        return Err("inactive");
    }
    if now < promo.valid_from {
        return Err("not_started");
    }
    if promo.valid_until.is_some_and(|until| now >= until) {
        return Err("expired");
    }
    if promo
        .max_redemptions
        .is_some_and(|max| promo.redemptions_count >= max)
    {
        return Err("exhausted");
    }
    if promo.min_order_cents.is_some_and(|min| amount_cents < min) {
        return Err("below_minimum");
    }
    let in_scope = match promo.scope {
        PromotionScope::All => true,
        PromotionScope::Service => {
            promo.service_id.is_some() && promo.service_id == target.service_id
        }
        PromotionScope::Provider => {
            promo.provider_id.is_some() && promo.provider_id == target.provider_id
        }
        PromotionScope::Category => {
            promo.category_id.is_some() && promo.category_id == target.category_id
        }
        PromotionScope::Niche => promo.niche_id.is_some() && promo.niche_id == target.niche_id,
    };
    if !in_scope {
        return Err("out_of_scope");
    }
    let amount = Ord::max(amount_cents, 0);
    let discount = match promo.discount_type {
        DiscountType::Percentage => {
            let exact = i128::from(amount) * i128::from(promo.discount_value);
            let rounded = (exact + BASIS_POINTS / 2) / BASIS_POINTS;
            i64::try_from(rounded).unwrap_or(i64::MAX)
        }
        DiscountType::Fixed => promo.discount_value,
    };
    Ok(discount.clamp(0, amount))
}

pub struct PromotionRepo;

impl PromotionRepo {
    /// The target of a service of this organization: its provider, category and the
    /// category's niche.
    pub async fn service_target(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        service_id: Uuid,
    ) -> Result<PromotionTarget, StorageError> {
        let found = service::Entity::find_in(scope)
            .filter(service::Column::Id.eq(service_id))
            .one(db)
            .await?
            .ok_or(StorageError::not_found("service"))?;
        let niche_id = match found.category_id {
            Some(category_id) => category::Entity::find_in(scope)
                .filter(category::Column::Id.eq(category_id))
                .one(db)
                .await?
                .map(|c| c.niche_id),
            None => None,
        };
        Ok(PromotionTarget {
            service_id: Some(service_id),
            provider_id: Some(found.provider_id),
            category_id: found.category_id,
            niche_id,
        })
    }

    /// The target of a booked offering: a service's, or only the provider for a
    /// provider's offering of a catalogue template.
    pub async fn offering_target(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        offering: Offering,
        provider_id: Uuid,
    ) -> Result<PromotionTarget, StorageError> {
        match offering {
            Offering::Service(id) => Self::service_target(db, scope, id).await,
            Offering::ProviderService(_) => Ok(PromotionTarget {
                provider_id: Some(provider_id),
                ..PromotionTarget::default()
            }),
        }
    }

    /// The promotion with this coupon code (codes are stored upper-case).
    pub async fn by_code(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        code: &str,
    ) -> Result<Option<promotion::Model>, StorageError> {
        Ok(promotion::Entity::find_in(scope)
            .filter(promotion::Column::Code.eq(code.trim().to_ascii_uppercase()))
            .one(db)
            .await?)
    }

    /// Grants the promotion of a new booking of `amount_cents` for `client_id`: the
    /// coupon when one is given (or the booking fails, see the module docs), else the
    /// best automatic promotion in scope, else none. Claims the use in `tx`.
    pub async fn grant(
        tx: &impl ConnectionTrait,
        scope: TenantScope,
        coupon_code: Option<&str>,
        target: &PromotionTarget,
        amount_cents: i64,
        client_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Granted>, StorageError> {
        if let Some(code) = coupon_code {
            let promo = Self::by_code(tx, scope, code)
                .await?
                .ok_or_else(|| coupon_refused("not_found"))?;
            let discount_cents =
                discount(&promo, amount_cents, target, now).map_err(coupon_refused)?;
            return match Self::claim(tx, scope, &promo, client_id).await? {
                Ok(()) => Ok(Some(Granted {
                    promotion_id: promo.id,
                    discount_cents,
                })),
                Err(refusal) => Err(coupon_refused(refusal)),
            };
        }
        let mut candidates: Vec<(i64, promotion::Model)> = promotion::Entity::find_in(scope)
            .filter(promotion::Column::Code.is_null())
            .filter(promotion::Column::IsActive.eq(true))
            .order_by_asc(promotion::Column::CreatedAt)
            .all(tx)
            .await?
            .into_iter()
            .filter_map(|p| {
                discount(&p, amount_cents, target, now)
                    .ok()
                    .filter(|d| *d > 0)
                    .map(|d| (d, p))
            })
            .collect();
        // Largest discount first; the sort is stable, so the oldest wins a tie.
        candidates.sort_by_key(|(d, _)| std::cmp::Reverse(*d));
        for (discount_cents, promo) in candidates {
            if Self::claim(tx, scope, &promo, client_id).await?.is_ok() {
                return Ok(Some(Granted {
                    promotion_id: promo.id,
                    discount_cents,
                }));
            }
        }
        Ok(None)
    }

    /// Claims one use of `promo` for `client_id`: the total limit by a conditional
    /// update (see the module docs), then the per-client limit. A refused claim of an
    /// automatic promotion must not leave its use taken, so the per-client refusal
    /// gives it back before answering.
    async fn claim(
        tx: &impl ConnectionTrait,
        scope: TenantScope,
        promo: &promotion::Model,
        client_id: Uuid,
    ) -> Result<Result<(), &'static str>, StorageError> {
        let claimed = promotion::Entity::update_in(scope)
            .col_expr(
                promotion::Column::RedemptionsCount,
                Expr::col(promotion::Column::RedemptionsCount).add(1),
            )
            .filter(promotion::Column::Id.eq(promo.id))
            .filter(
                promotion::Column::MaxRedemptions
                    .is_null()
                    .or(Expr::col(promotion::Column::RedemptionsCount)
                        .lt(Expr::col(promotion::Column::MaxRedemptions))),
            )
            .exec(tx)
            .await?;
        if claimed.rows_affected == 0 {
            return Ok(Err("exhausted"));
        }
        if let Some(limit) = promo.max_redemptions_per_client {
            let held = appointment::Entity::find_in(scope)
                .filter(appointment::Column::PromotionId.eq(promo.id))
                .filter(appointment::Column::ClientId.eq(client_id))
                .filter(appointment::Column::Status.ne(AppointmentStatus::Canceled))
                .count(tx)
                .await?;
            if held >= u64::try_from(limit).unwrap_or(0) {
                Self::release(tx, scope, promo.id).await?;
                return Ok(Err("client_limit"));
            }
        }
        Ok(Ok(()))
    }

    /// Gives one use of a promotion back (a booking that held it was canceled).
    pub async fn release(
        tx: &impl ConnectionTrait,
        scope: TenantScope,
        promotion_id: Uuid,
    ) -> Result<(), StorageError> {
        promotion::Entity::update_in(scope)
            .col_expr(
                promotion::Column::RedemptionsCount,
                Expr::col(promotion::Column::RedemptionsCount).sub(1),
            )
            .filter(promotion::Column::Id.eq(promotion_id))
            .filter(promotion::Column::RedemptionsCount.gt(0))
            .exec(tx)
            .await?;
        Ok(())
    }
}

/// Why a coupon given with a booking was refused, as the error the client sees.
fn coupon_refused(reason: &'static str) -> StorageError {
    match reason {
        "exhausted" => StorageError::InvalidState {
            code: "coupon_exhausted",
            message: "this coupon has been used up".into(),
        },
        "client_limit" => StorageError::InvalidState {
            code: "coupon_limit_reached",
            message: "you already hold as many bookings with this coupon as it allows".into(),
        },
        reason => StorageError::Validation {
            field: "coupon_code",
            message: match reason {
                "not_found" => "no such coupon".into(),
                "inactive" => "this coupon is not active".into(),
                "not_started" => "this coupon is not valid yet".into(),
                "expired" => "this coupon has expired".into(),
                "below_minimum" => "the price is below this coupon's minimum order".into(),
                _ => "this coupon does not apply to this service".into(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agenda_entity::enums::{DiscountType, PromotionScope};
    use chrono::Duration;

    fn promo(kind: DiscountType, value: i64) -> promotion::Model {
        let now = Utc::now();
        promotion::Model {
            id: Uuid::now_v7(),
            organization_id: Uuid::now_v7(),
            code: Some("SAVE".into()),
            name: "Save".into(),
            description: None,
            discount_type: kind,
            discount_value: value,
            scope: PromotionScope::All,
            service_id: None,
            provider_id: None,
            category_id: None,
            niche_id: None,
            valid_from: now - Duration::days(1),
            valid_until: Some(now + Duration::days(1)),
            max_redemptions: None,
            max_redemptions_per_client: None,
            redemptions_count: 0,
            min_order_cents: None,
            is_active: true,
            created_at: now,
            updated_at: now,
        }
    }

    /// Sets a promotion's scope target.
    type SetTarget = fn(&mut promotion::Model, Uuid);

    fn apply(
        p: &promotion::Model,
        amount: i64,
        target: PromotionTarget,
    ) -> Result<i64, &'static str> {
        discount(p, amount, &target, Utc::now())
    }

    #[test]
    fn percentages_round_half_up_and_fixed_is_capped() {
        let ten = promo(DiscountType::Percentage, 1_000);
        assert_eq!(apply(&ten, 1_005, PromotionTarget::default()), Ok(101));
        assert_eq!(apply(&ten, 1_004, PromotionTarget::default()), Ok(100));
        assert_eq!(apply(&ten, 0, PromotionTarget::default()), Ok(0));
        let all = promo(DiscountType::Percentage, 10_000);
        assert_eq!(apply(&all, 999, PromotionTarget::default()), Ok(999));
        let fixed = promo(DiscountType::Fixed, 2_000);
        assert_eq!(apply(&fixed, 5_000, PromotionTarget::default()), Ok(2_000));
        assert_eq!(apply(&fixed, 1_500, PromotionTarget::default()), Ok(1_500));
        let huge = promo(DiscountType::Percentage, 10_000);
        assert_eq!(
            apply(&huge, i64::MAX, PromotionTarget::default()),
            Ok(i64::MAX)
        );
    }

    #[test]
    fn conditions_give_reasons() {
        let base = promo(DiscountType::Fixed, 100);
        let t = PromotionTarget::default();
        let mut p = base.clone();
        p.is_active = false;
        assert_eq!(apply(&p, 1_000, t), Err("inactive"));
        let mut p = base.clone();
        p.valid_from = Utc::now() + Duration::hours(1);
        assert_eq!(apply(&p, 1_000, t), Err("not_started"));
        let mut p = base.clone();
        p.valid_until = Some(Utc::now() - Duration::hours(1));
        assert_eq!(apply(&p, 1_000, t), Err("expired"));
        let mut p = base.clone();
        p.max_redemptions = Some(3);
        p.redemptions_count = 3;
        assert_eq!(apply(&p, 1_000, t), Err("exhausted"));
        p.redemptions_count = 2;
        assert_eq!(apply(&p, 1_000, t), Ok(100));
        let mut p = base.clone();
        p.min_order_cents = Some(1_000);
        assert_eq!(apply(&p, 999, t), Err("below_minimum"));
        assert_eq!(apply(&p, 1_000, t), Ok(100));
        let mut p = base;
        p.valid_until = None;
        assert_eq!(apply(&p, 1_000, t), Ok(100));
    }

    #[test]
    fn scopes_match_their_target() {
        let (service, provider, category, niche) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let full = PromotionTarget {
            service_id: Some(service),
            provider_id: Some(provider),
            category_id: Some(category),
            niche_id: Some(niche),
        };
        let other = PromotionTarget {
            service_id: Some(Uuid::now_v7()),
            provider_id: Some(Uuid::now_v7()),
            category_id: Some(Uuid::now_v7()),
            niche_id: Some(Uuid::now_v7()),
        };
        let base = promo(DiscountType::Fixed, 100);
        let cases: [(PromotionScope, SetTarget, Uuid); 4] = [
            (
                PromotionScope::Service,
                |p, id| p.service_id = Some(id),
                service,
            ),
            (
                PromotionScope::Provider,
                |p, id| p.provider_id = Some(id),
                provider,
            ),
            (
                PromotionScope::Category,
                |p, id| p.category_id = Some(id),
                category,
            ),
            (PromotionScope::Niche, |p, id| p.niche_id = Some(id), niche),
        ];
        for (scope, set, id) in cases {
            let mut p = base.clone();
            p.scope = scope;
            set(&mut p, id);
            assert_eq!(apply(&p, 1_000, full), Ok(100), "{scope}");
            assert_eq!(apply(&p, 1_000, other), Err("out_of_scope"), "{scope}");
            assert_eq!(
                apply(&p, 1_000, PromotionTarget::default()),
                Err("out_of_scope"),
                "{scope}"
            );
        }
        assert_eq!(apply(&base, 1_000, PromotionTarget::default()), Ok(100));
    }
}
