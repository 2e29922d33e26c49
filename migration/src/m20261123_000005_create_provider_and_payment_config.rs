//! Provider and payment configuration, payment methods, promotions, fee overrides.

use agenda_entity::enums::{
    DiscountType, PaymentMethod, PayoutMethod, PayoutSchedule, PromotionScope,
};
use sea_orm_migration::prelude::*;

use crate::ddl::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Created in this order, dropped in the reverse order.
const TABLES: &[&str] = &[
    "provider_settings",
    "provider_payment_preferences",
    "payment_settings",
    "integrations_settings",
    "user_payment_methods",
    "client_payment_preferences",
    "promotions",
    "provider_service_fees",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();

        // provider_settings: A provider's business profile and booking rules.
        NewTable::new("provider_settings")
            .tenant()
            .reference("provider_id", "users", ForeignKeyAction::Cascade, false)
            .col(string("business_name"))
            .col(nullable(text("bio")))
            .col(nullable(string("phone")))
            .col(nullable(string("time_zone")))
            .col(nullable(string("city")))
            .col(nullable(string("state")))
            .col(nullable(string("country")))
            .col(nullable(double("latitude")))
            .col(nullable(double("longitude")))
            .col(json("accepted_payment_methods"))
            .col(integer("rating_count").default(0).to_owned())
            .col(big_integer("rating_total").default(0).to_owned())
            .col(integer("default_duration_minutes").default(60).to_owned())
            .col(integer("buffer_minutes").default(0).to_owned())
            .col(integer("slot_step_minutes").default(15).to_owned())
            .col(integer("min_lead_minutes").default(60).to_owned())
            .col(integer("max_horizon_days").default(60).to_owned())
            .col(boolean("auto_confirm").default(false).to_owned())
            .col(boolean("is_accepting_bookings").default(true).to_owned())
            .timestamps(backend)
            .check(
                "latitude_range",
                Expr::cust("latitude IS NULL OR latitude BETWEEN -90 AND 90"),
            )
            .check(
                "longitude_range",
                Expr::cust("longitude IS NULL OR longitude BETWEEN -180 AND 180"),
            )
            .check(
                "rating_consistent",
                Expr::cust(
                    "rating_count >= 0 AND rating_total BETWEEN rating_count AND 5 * rating_count",
                ),
            )
            .check(
                "duration_range",
                Expr::cust("default_duration_minutes BETWEEN 1 AND 1440"),
            )
            .check(
                "buffer_range",
                Expr::cust("buffer_minutes BETWEEN 0 AND 240"),
            )
            .check(
                "slot_step_range",
                Expr::cust("slot_step_minutes BETWEEN 5 AND 240"),
            )
            .check(
                "lead_range",
                Expr::cust("min_lead_minutes BETWEEN 0 AND 43200"),
            )
            .check(
                "horizon_range",
                Expr::cust("max_horizon_days BETWEEN 1 AND 730"),
            )
            .unique(&["provider_id"])
            .create(manager)
            .await?;

        // provider_payment_preferences: Where a provider receives payouts.
        NewTable::new("provider_payment_preferences")
            .tenant()
            .reference("provider_id", "users", ForeignKeyAction::Cascade, false)
            .col(string("payout_method"))
            .col(nullable(string("pix_key")))
            .col(nullable(string("bank_code")))
            .col(nullable(string("bank_branch")))
            .col(nullable(string("bank_account")))
            .col(nullable(string("account_holder_name")))
            .col(nullable(string("account_holder_tax_id")))
            .col(big_integer("minimum_payout_cents").default(0).to_owned())
            .timestamps(backend)
            .vocabulary::<PayoutMethod>("payout_method")
            .check("payout_details", Expr::cust("(payout_method = 'pix' AND pix_key IS NOT NULL) OR (payout_method = 'bank_transfer' AND bank_code IS NOT NULL AND bank_branch IS NOT NULL AND bank_account IS NOT NULL)"))
            .check("minimum_non_negative", Expr::cust("minimum_payout_cents >= 0"))
            .unique(&["provider_id"])
            .create(manager)
            .await?;

        // payment_settings: Per organization: platform fee rules and payout schedule.
        NewTable::new("payment_settings")
            .tenant()
            .col(integer("fee_percentage_bp").default(1000).to_owned())
            .col(big_integer("fee_fixed_cents").default(0).to_owned())
            .col(big_integer("fee_min_cents").default(0).to_owned())
            .col(nullable(big_integer("fee_max_cents")))
            .col(string("payout_schedule").default("weekly").to_owned())
            .col(integer("payout_delay_days").default(2).to_owned())
            .col(big_integer("minimum_withdrawal_cents").default(1000).to_owned())
            .timestamps(backend)
            .vocabulary::<PayoutSchedule>("payout_schedule")
            .check("fee_percentage_range", Expr::cust("fee_percentage_bp BETWEEN 0 AND 10000"))
            .check("fees_non_negative", Expr::cust("fee_fixed_cents >= 0 AND fee_min_cents >= 0 AND (fee_max_cents IS NULL OR fee_max_cents >= fee_min_cents)"))
            .check("payout_delay_range", Expr::cust("payout_delay_days BETWEEN 0 AND 90"))
            .check("minimum_withdrawal_non_negative", Expr::cust("minimum_withdrawal_cents >= 0"))
            .unique(&["organization_id"])
            .create(manager)
            .await?;

        // integrations_settings: Per organization: which integrations are enabled. Secrets are referenced (`env:NAME`), never stored.
        NewTable::new("integrations_settings")
            .tenant()
            .col(string("integration"))
            .col(boolean("is_enabled").default(false).to_owned())
            .col(json("config"))
            .col(nullable(string("secret_ref")))
            .timestamps(backend)
            .check(
                "secret_ref_format",
                Expr::cust("secret_ref IS NULL OR secret_ref LIKE 'env:%'"),
            )
            .unique(&["organization_id", "integration"])
            .create(manager)
            .await?;

        // user_payment_methods: Tokenised payment-method references from a payment processor (no card data).
        NewTable::new("user_payment_methods")
            .tenant()
            .reference("user_id", "users", ForeignKeyAction::Cascade, false)
            .col(string("processor"))
            .col(string("processor_token"))
            .col(nullable(string("brand")))
            .col(nullable(string("last4")))
            .col(nullable(integer("exp_month")))
            .col(nullable(integer("exp_year")))
            .col(boolean("is_default").default(false).to_owned())
            .timestamps(backend)
            .check(
                "last4_format",
                Expr::cust("last4 IS NULL OR length(last4) = 4"),
            )
            .check(
                "exp_month_range",
                Expr::cust("exp_month IS NULL OR exp_month BETWEEN 1 AND 12"),
            )
            .check(
                "exp_year_range",
                Expr::cust("exp_year IS NULL OR exp_year BETWEEN 2000 AND 2100"),
            )
            .unique(&["user_id", "processor", "processor_token"])
            .unique_named(
                "user_id_default",
                &["user_id"],
                Some(Expr::cust("is_default")),
            )
            .create(manager)
            .await?;

        // client_payment_preferences: A client's payment preferences.
        NewTable::new("client_payment_preferences")
            .tenant()
            .reference("client_id", "users", ForeignKeyAction::Cascade, false)
            .col(nullable(string("preferred_method")))
            .reference(
                "default_payment_method_id",
                "user_payment_methods",
                ForeignKeyAction::SetNull,
                true,
            )
            .col(boolean("save_payment_methods").default(false).to_owned())
            .col(boolean("send_receipts").default(true).to_owned())
            .timestamps(backend)
            .vocabulary::<PaymentMethod>("preferred_method")
            .unique(&["client_id"])
            .create(manager)
            .await?;

        // promotions: Discounts: a percentage (basis points) or a fixed amount, scoped and time-boxed, optionally behind a coupon code.
        NewTable::new("promotions")
            .tenant()
            .col(nullable(string("code")))
            .col(string("name"))
            .col(nullable(text("description")))
            .col(string("discount_type"))
            .col(big_integer("discount_value"))
            .col(string("scope").default("all").to_owned())
            .reference("service_id", "services", ForeignKeyAction::Cascade, true)
            .reference("provider_id", "users", ForeignKeyAction::Cascade, true)
            .reference("category_id", "categories", ForeignKeyAction::Cascade, true)
            .reference("niche_id", "niches", ForeignKeyAction::Cascade, true)
            .col(timestamp("valid_from"))
            .col(nullable(timestamp("valid_until")))
            .col(nullable(integer("max_redemptions")))
            .col(integer("redemptions_count").default(0).to_owned())
            .col(nullable(big_integer("min_order_cents")))
            .col(boolean("is_active").default(true).to_owned())
            .timestamps(backend)
            .vocabulary::<DiscountType>("discount_type")
            .vocabulary::<PromotionScope>("scope")
            .check("discount_value_range", Expr::cust("(discount_type = 'percentage' AND discount_value BETWEEN 1 AND 10000) OR (discount_type = 'fixed' AND discount_value > 0)"))
            .check("validity_order", Expr::cust("valid_until IS NULL OR valid_until > valid_from"))
            .check("redemptions_range", Expr::cust("redemptions_count >= 0 AND (max_redemptions IS NULL OR redemptions_count <= max_redemptions)"))
            .check("code_format", Expr::cust("code IS NULL OR (code = upper(code) AND length(code) BETWEEN 3 AND 40)"))
            .check("min_order_non_negative", Expr::cust("min_order_cents IS NULL OR min_order_cents >= 0"))
            .check("scope_target", Expr::cust("(scope = 'all' AND service_id IS NULL AND provider_id IS NULL AND category_id IS NULL AND niche_id IS NULL) OR (scope = 'service' AND service_id IS NOT NULL AND provider_id IS NULL AND category_id IS NULL AND niche_id IS NULL) OR (scope = 'provider' AND provider_id IS NOT NULL AND service_id IS NULL AND category_id IS NULL AND niche_id IS NULL) OR (scope = 'category' AND category_id IS NOT NULL AND service_id IS NULL AND provider_id IS NULL AND niche_id IS NULL) OR (scope = 'niche' AND niche_id IS NOT NULL AND service_id IS NULL AND provider_id IS NULL AND category_id IS NULL)"))
            .unique(&["organization_id", "code"])
            .index(&["organization_id", "is_active", "valid_from"])
            .create(manager)
            .await?;

        // provider_service_fees: Per-provider overrides of the organization's platform fee; unset fields inherit.
        NewTable::new("provider_service_fees")
            .tenant()
            .reference("provider_id", "users", ForeignKeyAction::Cascade, false)
            .col(nullable(integer("fee_percentage_bp")))
            .col(nullable(big_integer("fee_fixed_cents")))
            .col(nullable(big_integer("fee_min_cents")))
            .col(nullable(big_integer("fee_max_cents")))
            .col(nullable(text("reason")))
            .timestamps(backend)
            .check("fee_percentage_range", Expr::cust("fee_percentage_bp IS NULL OR fee_percentage_bp BETWEEN 0 AND 10000"))
            .check("fees_non_negative", Expr::cust("(fee_fixed_cents IS NULL OR fee_fixed_cents >= 0) AND (fee_min_cents IS NULL OR fee_min_cents >= 0) AND (fee_max_cents IS NULL OR fee_max_cents >= 0)"))
            .check("fee_bounds", Expr::cust("fee_min_cents IS NULL OR fee_max_cents IS NULL OR fee_max_cents >= fee_min_cents"))
            .unique(&["provider_id"])
            .create(manager)
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            drop_table(manager, table).await?;
        }
        Ok(())
    }
}
