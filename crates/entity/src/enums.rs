//! Status vocabularies: the one source of truth for every enumerated column.
//!
//! Each enum is stored as a short lowercase string. The migrations build the
//! column's CHECK constraint from the same enum (`ddl::NewTable::vocabulary`), and the
//! API (de)serialises it in the same snake_case form, so a value cannot exist in one
//! place and not in the others.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* #[sea_orm(string_value = $value)] $variant),+
        }

        impl $name {
            /// The stored (and serialised) form.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $value),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// Whether an organization may be used.
    OrganizationStatus { Active = "active", Suspended = "suspended" }
}

vocabulary! {
    /// What a user is to the organization; decides which routes they may call.
    UserRole { Client = "client", Provider = "provider", Admin = "admin", Support = "support" }
}

vocabulary! {
    /// The use of an address.
    AddressKind { Home = "home", Work = "work", Billing = "billing", Other = "other" }
}

vocabulary! {
    /// A weekly working window, or a rule for one calendar date.
    AvailabilityKind { Weekly = "weekly", DateOverride = "date_override" }
}

vocabulary! {
    /// Whether a break or block happens once (instants) or every week (local times).
    RecurrenceKind { OneOff = "one_off", Weekly = "weekly" }
}

vocabulary! {
    /// Who created a blocked slot.
    BlockSource { Manual = "manual", System = "system" }
}

vocabulary! {
    /// The life of an appointment. Canceled and no-show appointments free their time.
    AppointmentStatus {
        Pending = "pending",
        Confirmed = "confirmed",
        InProgress = "in_progress",
        Completed = "completed",
        Canceled = "canceled",
        NoShow = "no_show",
    }
}

impl AppointmentStatus {
    /// Whether an appointment in this status occupies the provider's time.
    pub fn is_active(self) -> bool {
        !matches!(
            self,
            AppointmentStatus::Canceled | AppointmentStatus::NoShow
        )
    }

    /// Statuses that free the provider's time (excluded from the overlap rule).
    pub const INACTIVE: [AppointmentStatus; 2] =
        [AppointmentStatus::Canceled, AppointmentStatus::NoShow];
}

vocabulary! {
    /// How a client pays.
    PaymentMethod { Cash = "cash", Card = "card", Pix = "pix", BankTransfer = "bank_transfer", Online = "online" }
}

vocabulary! {
    /// Where an appointment's payment stands. `partially_refunded`: paid, and part of
    /// the payment went back to the client (`refunded` once all of it did).
    PaymentStatus { Unpaid = "unpaid", Pending = "pending", Paid = "paid", PartiallyRefunded = "partially_refunded", Refunded = "refunded", Failed = "failed" }
}

vocabulary! {
    /// Review moderation.
    ModerationStatus { Pending = "pending", Approved = "approved", Rejected = "rejected" }
}

vocabulary! {
    /// How a provider receives payouts.
    PayoutMethod { Pix = "pix", BankTransfer = "bank_transfer" }
}

vocabulary! {
    /// How often an organization pays providers out.
    PayoutSchedule { Daily = "daily", Weekly = "weekly", Monthly = "monthly", Manual = "manual" }
}

vocabulary! {
    /// A promotion takes a percentage (in basis points) or a fixed amount off.
    DiscountType { Percentage = "percentage", Fixed = "fixed" }
}

vocabulary! {
    /// What a promotion applies to.
    PromotionScope { All = "all", Service = "service", Provider = "provider", Category = "category", Niche = "niche" }
}

vocabulary! {
    /// Ledger entry kinds. Payments credit; commissions and refunds debit; withdrawals
    /// debit (and credit back when a withdrawal fails); adjustments go either way.
    TransactionKind {
        Payment = "payment",
        Commission = "commission",
        Refund = "refund",
        Withdrawal = "withdrawal",
        Adjustment = "adjustment",
    }
}

vocabulary! {
    /// Which part of a provider's balance a ledger entry moves.
    BalanceBucket { Available = "available", Pending = "pending" }
}

vocabulary! {
    /// The life of a withdrawal request.
    WithdrawalStatus {
        Requested = "requested",
        Processing = "processing",
        Paid = "paid",
        Failed = "failed",
        Canceled = "canceled",
    }
}

vocabulary! {
    /// The life of a support ticket.
    TicketStatus { Open = "open", Pending = "pending", Resolved = "resolved", Closed = "closed" }
}

vocabulary! {
    /// Support ticket urgency.
    TicketPriority { Low = "low", Normal = "normal", High = "high", Urgent = "urgent" }
}

vocabulary! {
    /// A user's progress on one onboarding step.
    OnboardingStatus { Pending = "pending", Completed = "completed", Skipped = "skipped" }
}

vocabulary! {
    /// What a notification is about.
    NotificationKind {
        AppointmentBooked = "appointment_booked",
        AppointmentConfirmed = "appointment_confirmed",
        AppointmentCanceled = "appointment_canceled",
        AppointmentRescheduled = "appointment_rescheduled",
        AppointmentReminder = "appointment_reminder",
        AppointmentCompleted = "appointment_completed",
        ReviewReceived = "review_received",
        PaymentReceived = "payment_received",
        WithdrawalUpdated = "withdrawal_updated",
        SupportReply = "support_reply",
        System = "system",
    }
}

vocabulary! {
    /// The language of what Agenda writes to people (e-mail templates): an
    /// organization's locale. Stored and serialised as the BCP 47 tag.
    Locale {
        #[serde(rename = "en")]
        En = "en",
        #[serde(rename = "pt-BR")]
        PtBr = "pt-BR",
    }
}

vocabulary! {
    /// What a single-use token mailed to a user is for (`password_reset_tokens.purpose`).
    TokenPurpose {
        PasswordReset = "password_reset",
        EmailVerification = "email_verification",
        Invitation = "invitation",
    }
}

vocabulary! {
    /// Which e-mail an outbox message is: each kind has its templates (text and HTML,
    /// every [`Locale`]) in `agenda-mail`.
    MessageKind {
        PasswordReset = "password_reset",
        EmailVerification = "email_verification",
        Invitation = "invitation",
        BookingConfirmed = "booking_confirmed",
        BookingCanceled = "booking_canceled",
        BookingRescheduled = "booking_rescheduled",
    }
}

vocabulary! {
    /// Where an outbox message stands. `queued` waits for its next attempt;
    /// `sending` is claimed by a worker (until its lease ends); `sent` was accepted
    /// by the SMTP server; `dead` failed permanently or too many times.
    OutboxStatus { Queued = "queued", Sending = "sending", Sent = "sent", Dead = "dead" }
}

/// The payment methods a provider accepts, stored as a JSON array.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, FromJsonQueryResult)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaymentMethods(pub Vec<PaymentMethod>);

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveEnum, Iterable};

    #[test]
    fn stored_and_serialised_forms_agree() {
        for status in AppointmentStatus::iter() {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, serde_json::Value::String(status.to_value()));
            assert_eq!(status.as_str(), status.to_value());
        }
        assert!(!AppointmentStatus::NoShow.is_active());
        assert!(AppointmentStatus::InProgress.is_active());
    }
}
