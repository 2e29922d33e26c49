//! The enqueue API: render an [`Email`] in the organization's locale and write it to
//! the outbox in the caller's transaction.
//!
//! ```ignore
//! let tx = uow.tx().await?;
//! // … the event's own writes …
//! state.mail.enqueue(tx, &organization, Recipient::user(&user), Email::PasswordReset { … }).await?;
//! // committed together, or not at all
//! ```
//!
//! The message is stored rendered (subject, text, HTML), not as template data: what
//! the outbox holds is exactly what will be sent and what `agenda mail show` prints,
//! a template change never alters mail already written, and the worker needs no
//! access to the tenant's other tables (under row-level security it would have to
//! enter each tenant to re-read them).

use std::sync::Arc;

use agenda_entity::{organization, outbox_message, user};
use agenda_storage::repo::outbox::{NewMessage, OutboxRepo};
use agenda_storage::{StorageError, TenantScope};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::metrics::DeliveryMetrics;
use crate::settings::MailSettings;
use crate::templates::{Email, Templates};

/// Who a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub user_id: Option<Uuid>,
    pub address: String,
    pub name: String,
}

impl Recipient {
    /// One of the organization's users, at their address.
    pub fn user(user: &user::Model) -> Self {
        Recipient {
            user_id: Some(user.id),
            address: user.email.clone(),
            name: user.full_name.clone(),
        }
    }
}

/// Renders and enqueues messages; shared by the whole process (cheap to clone).
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    settings: MailSettings,
    templates: Templates,
    metrics: DeliveryMetrics,
}

impl Outbox {
    pub fn new(settings: MailSettings) -> Self {
        Outbox {
            inner: Arc::new(Inner {
                settings,
                templates: Templates::new(),
                metrics: DeliveryMetrics::default(),
            }),
        }
    }

    pub fn settings(&self) -> &MailSettings {
        &self.inner.settings
    }

    /// This process's delivery counts.
    pub fn metrics(&self) -> &DeliveryMetrics {
        &self.inner.metrics
    }

    /// Renders `email` for `to` in `organization`'s locale and writes it to the
    /// outbox on `db` — the transaction of the event that causes it, so the message
    /// exists exactly when the event committed. It is delivered by the worker (or
    /// stays queued when no `SMTP_URL` is set).
    pub async fn enqueue(
        &self,
        db: &impl ConnectionTrait,
        organization: &organization::Model,
        to: Recipient,
        email: Email,
    ) -> Result<outbox_message::Model, StorageError> {
        let settings = &self.inner.settings;
        let locale = organization.locale;
        let rendered = self
            .inner
            .templates
            .render(&email, locale, &organization.name, &to.name, settings)
            .map_err(|e| StorageError::Other(Box::new(e)))?;
        let id = agenda_entity::new_id();
        let message = NewMessage {
            id,
            recipient_user_id: to.user_id,
            kind: email.kind(),
            locale,
            to_address: to.address,
            to_name: Some(to.name).filter(|n| !n.trim().is_empty()),
            subject: rendered.subject,
            body_text: rendered.text,
            body_html: rendered.html,
            message_id: format!("<{id}@{}>", settings.message_id_domain()),
        };
        let scope = TenantScope::new(organization.id);
        OutboxRepo::enqueue(db, scope, message, agenda_entity::now()).await
    }
}
