//! A user's saved payment methods (`user_payment_methods`): the payment processor's
//! token for a card or account, with the brand, last four digits and expiry for
//! display. Never card data (a token that looks like a card number is refused by the
//! input's rules), and the token is never returned by the API.
//!
//! Every function takes the owner: another user's method, like another
//! organization's, is "not found". A user has at most one default method
//! (`uq_user_payment_methods_user_id_default`): making one the default clears the
//! flag on the others in the same transaction, and the first method saved is the
//! default.

use agenda_entity::user_payment_method::{
    self, CreateUserPaymentMethod, Entity as PaymentMethods, UpdateUserPaymentMethod,
};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::error::StorageError;
use crate::repo::resource::{MAX_PAGE_SIZE, Repo};
use crate::tenant::{TenantOwned, TenantScope};

use user_payment_method::Column as C;

pub struct PaymentMethodRepo;

impl PaymentMethodRepo {
    /// The user's methods, the default first, then oldest first (at most
    /// [`MAX_PAGE_SIZE`]).
    pub async fn list(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        user_id: Uuid,
    ) -> Result<Vec<user_payment_method::Model>, StorageError> {
        Ok(PaymentMethods::find_in(scope)
            .filter(C::UserId.eq(user_id))
            .order_by_desc(C::IsDefault)
            .order_by_asc(C::Id)
            .limit(MAX_PAGE_SIZE)
            .all(db)
            .await?)
    }

    /// The user's method `id`; another user's is "not found".
    pub async fn get(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        user_id: Uuid,
        id: Uuid,
    ) -> Result<user_payment_method::Model, StorageError> {
        PaymentMethods::find_in(scope)
            .filter(C::UserId.eq(user_id))
            .filter(C::Id.eq(id))
            .one(db)
            .await?
            .ok_or(StorageError::not_found("payment method"))
    }

    /// Saves a method for the user. The same token twice is a conflict on
    /// `uq_user_payment_methods_user_id_processor_processor_token`.
    pub async fn add(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        user_id: Uuid,
        input: CreateUserPaymentMethod,
    ) -> Result<user_payment_method::Model, StorageError> {
        let first = Self::list(tx, scope, user_id).await?.is_empty();
        let default = first || input.is_default == Some(true);
        if default {
            Self::clear_default(tx, scope, user_id, None).await?;
        }
        Repo::<PaymentMethods>::create(tx, scope, input, |row| {
            row.user_id = Set(user_id);
            row.is_default = Set(default);
        })
        .await
    }

    /// Changes the user's method `id` (display fields, the default flag).
    pub async fn update(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        user_id: Uuid,
        id: Uuid,
        input: UpdateUserPaymentMethod,
    ) -> Result<user_payment_method::Model, StorageError> {
        Self::get(tx, scope, user_id, id).await?;
        if input.is_default == Some(true) {
            Self::clear_default(tx, scope, user_id, Some(id)).await?;
        }
        Repo::<PaymentMethods>::update(tx, scope, id, input).await
    }

    /// Deletes the user's method `id` (a payment preference pointing at it loses its
    /// default method: `ON DELETE SET NULL`).
    pub async fn remove(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        user_id: Uuid,
        id: Uuid,
    ) -> Result<(), StorageError> {
        Self::get(tx, scope, user_id, id).await?;
        Repo::<PaymentMethods>::delete(tx, scope, id).await
    }

    async fn clear_default(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        user_id: Uuid,
        keep: Option<Uuid>,
    ) -> Result<(), StorageError> {
        Repo::<PaymentMethods>::clear_flag(tx, scope, C::UserId, user_id, C::IsDefault, keep).await
    }
}
