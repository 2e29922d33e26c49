//! Agenda's e-mail (see `docs/email.md`).
//!
//! - [`settings`]: `SMTP_URL`, `MAIL_FROM`, `PUBLIC_BASE_URL` and the delivery knobs;
//! - [`templates`]: what each message kind says, in each locale (text and HTML);
//! - [`outbox`]: [`Outbox::enqueue`], which renders a message and writes it in the
//!   caller's transaction — the one call any event makes to send mail;
//! - [`booking`]: the booking confirmed / canceled / rescheduled messages, to the
//!   client and to the provider;
//! - [`worker`]: the delivery worker the server runs, over [`smtp`];
//! - [`metrics`]: what the worker counts, for `GET /metrics`.

pub mod booking;
pub mod locale;
pub mod metrics;
pub mod outbox;
pub mod settings;
pub mod smtp;
pub mod templates;
pub mod worker;

pub use outbox::{Outbox, Recipient};
pub use settings::MailSettings;
pub use templates::{Audience, BookingDetails, Email};
