//! `outbox_messages`: e-mails waiting to be sent, sent, or given up on — the
//! transactional outbox. A message is written in the same transaction as the event
//! that causes it (a reset request, a booking), already rendered, and delivered
//! later by the worker in `agenda-mail`. See `docs/email.md`.

use sea_orm::entity::prelude::*;

pub use crate::enums::{Locale, MessageKind, OutboxStatus};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    /// The user it is for, when it is for one of the organization's users.
    pub recipient_user_id: Option<Uuid>,
    pub kind: MessageKind,
    pub locale: Locale,
    /// The recipient's address.
    pub to_address: String,
    /// The recipient's name, for the `To:` header.
    pub to_name: Option<String>,
    pub subject: String,
    #[sea_orm(column_type = "Text")]
    pub body_text: String,
    #[sea_orm(column_type = "Text")]
    pub body_html: String,
    /// The `Message-ID` header (`<id@domain>`), fixed when the message is written:
    /// every attempt sends the same one, so a receiver can drop a duplicate.
    pub message_id: String,
    pub status: OutboxStatus,
    /// Delivery attempts started (a claim counts as one).
    pub attempts: i32,
    /// When the message is due (first attempt, or the next retry).
    pub next_attempt_at: DateTimeUtc,
    /// Why the last attempt failed: the SMTP server's reply or a short description,
    /// never a credential.
    #[sea_orm(column_type = "Text")]
    pub last_error: Option<String>,
    /// The worker holding the message while `sending`.
    pub claimed_by: Option<String>,
    /// Until when the claim holds; after it another worker may take the message over.
    pub claimed_until: Option<DateTimeUtc>,
    pub sent_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "recipient_user_id", to = "id")]
    pub recipient: BelongsTo<Option<super::user::Entity>>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}
