//! The marketplace ledger: balances, withdrawals, transactions.

use agenda_entity::enums::{BalanceBucket, PayoutMethod, TransactionKind, WithdrawalStatus};
use sea_orm_migration::prelude::*;

use crate::ddl::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Created in this order, dropped in the reverse order.
const TABLES: &[&str] = &[
    "provider_balances",
    "payment_withdrawals",
    "provider_transactions",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();

        // provider_balances: One per provider: available and pending money, always equal to the sums of the ledger.
        NewTable::new("provider_balances")
            .tenant()
            .reference("provider_id", "users", ForeignKeyAction::NoAction, false)
            .col(big_integer("available_cents").default(0).to_owned())
            .col(big_integer("pending_cents").default(0).to_owned())
            .col(string("currency"))
            .timestamps(backend)
            .check("available_non_negative", Expr::cust("available_cents >= 0"))
            .check("pending_non_negative", Expr::cust("pending_cents >= 0"))
            .check(
                "currency_format",
                Expr::cust("length(currency) = 3 AND upper(currency) = currency"),
            )
            .unique(&["provider_id"])
            .create(manager)
            .await?;

        // payment_withdrawals: Withdrawal requests of providers; the amount is debited from the ledger when requested.
        NewTable::new("payment_withdrawals")
            .tenant()
            .reference("provider_id", "users", ForeignKeyAction::NoAction, false)
            .col(big_integer("amount_cents"))
            .col(string("currency"))
            .col(string("status").default("requested").to_owned())
            .col(string("payout_method"))
            .col(nullable(timestamp("processed_at")))
            .reference("processed_by", "users", ForeignKeyAction::SetNull, true)
            .col(nullable(text("failure_reason")))
            .col(nullable(string("external_ref")))
            .timestamps(backend)
            .vocabulary::<WithdrawalStatus>("status")
            .vocabulary::<PayoutMethod>("payout_method")
            .check("amount_positive", Expr::cust("amount_cents > 0"))
            .check(
                "currency_format",
                Expr::cust("length(currency) = 3 AND upper(currency) = currency"),
            )
            .index(&["provider_id", "status"])
            .index(&["organization_id", "status"])
            .create(manager)
            .await?;

        // provider_transactions: The append-only marketplace ledger: payments, commissions, refunds, withdrawals, adjustments.
        NewTable::new("provider_transactions")
            .tenant()
            .reference("provider_id", "users", ForeignKeyAction::NoAction, false)
            .col(string("kind"))
            .col(string("bucket"))
            .col(big_integer("amount_cents"))
            .col(string("currency"))
            .reference("appointment_id", "appointments", ForeignKeyAction::NoAction, true)
            .reference("withdrawal_id", "payment_withdrawals", ForeignKeyAction::NoAction, true)
            .col(nullable(string("external_ref")))
            .col(nullable(string("description")))
            .col(timestamp_now("created_at", backend))
            .vocabulary::<TransactionKind>("kind")
            .vocabulary::<BalanceBucket>("bucket")
            .check("amount_non_zero", Expr::cust("amount_cents <> 0"))
            .check("sign_by_kind", Expr::cust("(kind = 'payment' AND amount_cents > 0) OR (kind IN ('commission', 'refund') AND amount_cents < 0) OR kind IN ('withdrawal', 'adjustment')"))
            .check("currency_format", Expr::cust("length(currency) = 3 AND upper(currency) = currency"))
            .unique(&["provider_id", "kind", "external_ref"])
            .index(&["provider_id", "created_at"])
            .create(manager)
            .await?;
        append_only(manager, "provider_transactions").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            drop_table(manager, table).await?;
        }
        Ok(())
    }
}
