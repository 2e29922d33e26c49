//! What each e-mail says: one [`Email`] per message kind, rendered from templates
//! in `crates/mail/templates/` into a subject, a plain-text part and an HTML part,
//! in the organization's [`Locale`].
//!
//! Each kind has, per locale, `<kind>.<locale>.txt` (blocks `subject` and `body`)
//! and `<kind>.<locale>.html` (extending `layout.html`). Templates are compiled
//! into the binary and parsed once. HTML templates escape every value (by file
//! extension); text templates do not need to. An undefined variable is an error,
//! not an empty string, and a test renders every kind in every locale.
//!
//! Adding a kind: a [`MessageKind`] variant (and a migration for its CHECK), an
//! [`Email`] variant with its values in [`Email::context`], and its four templates.

use agenda_entity::enums::{Locale, MessageKind, UserRole};
use std::fmt::Write as _;

use minijinja::{Environment, UndefinedBehavior, Value, context};
use uuid::Uuid;

use crate::settings::MailSettings;

/// The templates, by name, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    (
        "password_reset.en.txt",
        include_str!("../templates/password_reset.en.txt"),
    ),
    (
        "password_reset.en.html",
        include_str!("../templates/password_reset.en.html"),
    ),
    (
        "password_reset.pt-BR.txt",
        include_str!("../templates/password_reset.pt-BR.txt"),
    ),
    (
        "password_reset.pt-BR.html",
        include_str!("../templates/password_reset.pt-BR.html"),
    ),
    (
        "email_verification.en.txt",
        include_str!("../templates/email_verification.en.txt"),
    ),
    (
        "email_verification.en.html",
        include_str!("../templates/email_verification.en.html"),
    ),
    (
        "email_verification.pt-BR.txt",
        include_str!("../templates/email_verification.pt-BR.txt"),
    ),
    (
        "email_verification.pt-BR.html",
        include_str!("../templates/email_verification.pt-BR.html"),
    ),
    (
        "invitation.en.txt",
        include_str!("../templates/invitation.en.txt"),
    ),
    (
        "invitation.en.html",
        include_str!("../templates/invitation.en.html"),
    ),
    (
        "invitation.pt-BR.txt",
        include_str!("../templates/invitation.pt-BR.txt"),
    ),
    (
        "invitation.pt-BR.html",
        include_str!("../templates/invitation.pt-BR.html"),
    ),
    (
        "booking_confirmed.en.txt",
        include_str!("../templates/booking_confirmed.en.txt"),
    ),
    (
        "booking_confirmed.en.html",
        include_str!("../templates/booking_confirmed.en.html"),
    ),
    (
        "booking_confirmed.pt-BR.txt",
        include_str!("../templates/booking_confirmed.pt-BR.txt"),
    ),
    (
        "booking_confirmed.pt-BR.html",
        include_str!("../templates/booking_confirmed.pt-BR.html"),
    ),
    (
        "booking_canceled.en.txt",
        include_str!("../templates/booking_canceled.en.txt"),
    ),
    (
        "booking_canceled.en.html",
        include_str!("../templates/booking_canceled.en.html"),
    ),
    (
        "booking_canceled.pt-BR.txt",
        include_str!("../templates/booking_canceled.pt-BR.txt"),
    ),
    (
        "booking_canceled.pt-BR.html",
        include_str!("../templates/booking_canceled.pt-BR.html"),
    ),
    (
        "booking_rescheduled.en.txt",
        include_str!("../templates/booking_rescheduled.en.txt"),
    ),
    (
        "booking_rescheduled.en.html",
        include_str!("../templates/booking_rescheduled.en.html"),
    ),
    (
        "booking_rescheduled.pt-BR.txt",
        include_str!("../templates/booking_rescheduled.pt-BR.txt"),
    ),
    (
        "booking_rescheduled.pt-BR.html",
        include_str!("../templates/booking_rescheduled.pt-BR.html"),
    ),
];

/// Which side of a booking a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Client,
    Provider,
}

impl Audience {
    /// The name templates compare with (`audience == "client"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Client => "client",
            Audience::Provider => "provider",
        }
    }
}

/// A booking as its e-mails describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingDetails {
    pub appointment_id: Uuid,
    /// The service's name.
    pub service: String,
    /// The start, formatted for the locale in the provider's time zone.
    pub when: String,
    /// The other party's name: the provider for the client, the client for the provider.
    pub with: String,
    pub audience: Audience,
}

/// An e-mail to write: its kind and the values its templates show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Email {
    /// A link to choose a new password (`/reset-password?token=…`).
    PasswordReset {
        token: String,
        valid_minutes: i64,
    },
    /// A link proving the address is the user's (`/verify-email?token=…`).
    EmailVerification {
        token: String,
        valid_hours: i64,
    },
    /// A link to accept an invitation to the organization and set a password
    /// (`/accept-invitation?token=…`).
    Invitation {
        token: String,
        valid_hours: i64,
        role: UserRole,
        /// Who invited them, when a person did.
        invited_by: Option<String>,
    },
    BookingConfirmed(BookingDetails),
    BookingCanceled {
        booking: BookingDetails,
        reason: Option<String>,
    },
    BookingRescheduled {
        booking: BookingDetails,
        /// The previous start, formatted like `when`.
        previously: String,
    },
}

impl Email {
    pub fn kind(&self) -> MessageKind {
        match self {
            Email::PasswordReset { .. } => MessageKind::PasswordReset,
            Email::EmailVerification { .. } => MessageKind::EmailVerification,
            Email::Invitation { .. } => MessageKind::Invitation,
            Email::BookingConfirmed(_) => MessageKind::BookingConfirmed,
            Email::BookingCanceled { .. } => MessageKind::BookingCanceled,
            Email::BookingRescheduled { .. } => MessageKind::BookingRescheduled,
        }
    }

    /// The values the kind's templates use (besides `organization` and `name`).
    fn context(&self, settings: &MailSettings) -> Value {
        let token_link = |path: &str, token: &str| settings.link(&format!("{path}?token={token}"));
        match self {
            Email::PasswordReset {
                token,
                valid_minutes,
            } => context! { link => token_link("/reset-password", token), valid_minutes },
            Email::EmailVerification { token, valid_hours } => {
                context! { link => token_link("/verify-email", token), valid_hours }
            }
            Email::Invitation {
                token,
                valid_hours,
                role,
                invited_by,
            } => context! {
                link => token_link("/accept-invitation", token),
                valid_hours,
                role => role.as_str(),
                invited_by,
            },
            Email::BookingConfirmed(booking) => booking_context(booking, settings, context! {}),
            Email::BookingCanceled { booking, reason } => {
                booking_context(booking, settings, context! { reason })
            }
            Email::BookingRescheduled {
                booking,
                previously,
            } => booking_context(booking, settings, context! { previously }),
        }
    }
}

fn booking_context(booking: &BookingDetails, settings: &MailSettings, extra: Value) -> Value {
    context! {
        service => booking.service.as_str(),
        when => booking.when.as_str(),
        with => booking.with.as_str(),
        audience => booking.audience.as_str(),
        link => settings.link(&format!("/appointments/{}", booking.appointment_id)),
        ..extra
    }
}

/// A rendered e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Why a message could not be rendered: a bug in a template, caught by the test that
/// renders them all.
#[derive(Debug, thiserror::Error)]
#[error("rendering the {kind} e-mail ({locale}) failed: {source}")]
pub struct RenderError {
    pub kind: MessageKind,
    pub locale: Locale,
    #[source]
    pub source: minijinja::Error,
}

/// Writes a value into a template's output. In HTML templates strings are escaped
/// for text and attribute values (`& < > " '`); unlike MiniJinja's default, `/` is
/// left alone, so links stay readable in the source some mail clients show. Anything
/// else goes to the default formatter.
fn format_value(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    let html = matches!(state.auto_escape(), minijinja::AutoEscape::Html);
    match value.as_str() {
        Some(text) if html && !value.is_safe() => {
            for c in text.chars() {
                let written = match c {
                    '&' => out.write_str("&amp;"),
                    '<' => out.write_str("&lt;"),
                    '>' => out.write_str("&gt;"),
                    '"' => out.write_str("&quot;"),
                    '\'' => out.write_str("&#39;"),
                    c => out.write_char(c),
                };
                written.map_err(|_| {
                    minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "output failed")
                })?;
            }
            Ok(())
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// The parsed templates.
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    /// Parses every template. The templates are part of the binary, so a syntax error
    /// is a build defect; the template test catches it.
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .keep_trailing_newline(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        env.set_formatter(format_value);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name} does not parse: {e}"));
        }
        Templates { env }
    }

    /// Renders `email` for `name` (the recipient) of `organization`, in `locale`.
    pub fn render(
        &self,
        email: &Email,
        locale: Locale,
        organization: &str,
        name: &str,
        settings: &MailSettings,
    ) -> Result<Rendered, RenderError> {
        let kind = email.kind();
        let fail = |source| RenderError {
            kind,
            locale,
            source,
        };
        let base = context! {
            organization,
            name,
            lang => locale.as_str(),
            ..email.context(settings)
        };
        let text_template = self
            .env
            .get_template(&format!("{kind}.{locale}.txt"))
            .map_err(fail)?;
        let mut captured = text_template.render_captured(&base).map_err(fail)?;
        let (subject, text) = captured
            .with_state_mut(|state| {
                Ok::<_, minijinja::Error>((
                    state.render_block("subject")?,
                    state.render_block("body")?,
                ))
            })
            .map_err(fail)?;
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let html = self
            .env
            .get_template(&format!("{kind}.{locale}.html"))
            .map_err(fail)?
            .render(context! { subject => subject.clone(), ..base })
            .map_err(fail)?;
        Ok(Rendered {
            subject,
            text: text.trim().to_owned() + "\n",
            html,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::Iterable;

    fn booking() -> BookingDetails {
        BookingDetails {
            appointment_id: Uuid::nil(),
            service: "Corte & <Barba>".into(),
            when: "Wednesday, December 2, 2026 at 10:00 (America/Sao_Paulo)".into(),
            with: "Ana Souza".into(),
            audience: Audience::Client,
        }
    }

    fn every_email() -> Vec<Email> {
        vec![
            Email::PasswordReset {
                token: "abc123".into(),
                valid_minutes: 30,
            },
            Email::EmailVerification {
                token: "abc123".into(),
                valid_hours: 48,
            },
            Email::Invitation {
                token: "abc123".into(),
                valid_hours: 72,
                role: UserRole::Provider,
                invited_by: Some("Maria".into()),
            },
            Email::BookingConfirmed(booking()),
            Email::BookingCanceled {
                booking: booking(),
                reason: Some("sick".into()),
            },
            Email::BookingRescheduled {
                booking: booking(),
                previously: "Tuesday, December 1, 2026 at 09:00 (America/Sao_Paulo)".into(),
            },
        ]
    }

    #[test]
    fn every_kind_renders_in_every_locale() {
        let templates = Templates::new();
        let settings = MailSettings::default();
        let emails = every_email();
        assert_eq!(
            emails.len(),
            MessageKind::iter().count(),
            "one case per kind"
        );
        for email in &emails {
            for locale in Locale::iter() {
                let r = templates
                    .render(email, locale, "Acme <Clinic>", "Bia", &settings)
                    .unwrap_or_else(|e| panic!("{e}"));
                let what = format!("{} {locale}", email.kind());
                assert!(!r.subject.is_empty() && !r.subject.contains('\n'), "{what}");
                assert!(r.subject.contains("Acme <Clinic>"), "{what}: {}", r.subject);
                assert!(r.text.contains("Bia"), "{what}");
                assert!(r.html.contains(&format!("lang=\"{locale}\"")), "{what}");
                // HTML escapes what it shows; text shows it as it is.
                assert!(r.html.contains("Acme &lt;Clinic&gt;"), "{what}");
                assert!(!r.html.contains("Corte & <Barba>"), "{what}");
                assert!(!r.html.contains("<Clinic>"), "{what}");
                assert!(r.text.contains("http://127.0.0.1:8080/"), "{what}");
                assert!(!r.text.contains("{{") && !r.html.contains("{{"), "{what}");
            }
        }
    }

    #[test]
    fn the_locale_decides_the_language() {
        let templates = Templates::new();
        let settings = MailSettings::default();
        let email = &every_email()[0];
        let en = templates
            .render(email, Locale::En, "Acme", "Bia", &settings)
            .unwrap();
        let pt = templates
            .render(email, Locale::PtBr, "Acme", "Bia", &settings)
            .unwrap();
        assert!(en.subject.contains("Reset your password"), "{}", en.subject);
        assert!(pt.subject.contains("Redefina sua senha"), "{}", pt.subject);
        assert!(
            en.text
                .contains("http://127.0.0.1:8080/reset-password?token=abc123")
        );
        // HTML escapes `/` too (`&#x2f;`), which browsers read back as `/`.
        assert!(
            pt.html.contains("reset-password?token=abc123"),
            "{}",
            pt.html
        );
    }
}
