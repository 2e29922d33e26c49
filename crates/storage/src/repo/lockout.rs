//! The sign-in lockout rule, shared by the accounts that have one (users, operators):
//! a count of failures in a row and a `locked_until` instant on the account's row.
//! A failure is counted, and the lock set, by one `UPDATE` that skips locked rows, so
//! concurrent failures all count and none can slip past a lock another one set.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, SimpleExpr};
use sea_orm::{ColumnTrait, Condition};

/// The two lockout columns of one table.
#[derive(Clone, Copy)]
pub(crate) struct Lockout<C> {
    /// Failed sign-ins in a row.
    pub failures: C,
    /// Until when the account is locked (`NULL`: never locked).
    pub locked_until: C,
}

impl<C: ColumnTrait> Lockout<C> {
    /// No lock, or one that has run out by `now`.
    pub fn not_locked(self, now: DateTime<Utc>) -> Condition {
        Condition::any()
            .add(self.locked_until.is_null())
            .add(self.locked_until.lte(now))
    }

    /// The assignments of one counted failure: the `max_attempts`-th in a row locks
    /// the account until `now + lock_for` and starts the count again. Apply them with
    /// [`Self::not_locked`] as a filter, so failures while locked are not counted.
    pub fn failure(
        self,
        now: DateTime<Utc>,
        max_attempts: i32,
        lock_for: Duration,
    ) -> [(C, SimpleExpr); 2] {
        let reaches_limit = || Expr::col(self.failures).add(1).gte(max_attempts);
        [
            (
                self.failures,
                Expr::case(reaches_limit(), 0)
                    .finally(Expr::col(self.failures).add(1))
                    .into(),
            ),
            (
                self.locked_until,
                Expr::case(reaches_limit(), Expr::value(now + lock_for))
                    .finally(Expr::col(self.locked_until))
                    .into(),
            ),
        ]
    }
}
