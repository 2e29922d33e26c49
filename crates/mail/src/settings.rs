//! E-mail settings from the environment (see `docs/email.md` and
//! `docs/configuration.md`).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SMTP_URL` | unset: nothing is sent, messages stay queued | `smtp://host:port`, `smtps://user:pass@host`, `smtp://user:pass@host:587?tls=required` (STARTTLS; `tls=starttls` means the same) |
//! | `MAIL_FROM` | `Agenda <no-reply@agenda.localhost>` | the `From:` mailbox; its domain ends every `Message-ID` |
//! | `PUBLIC_BASE_URL` | `http://127.0.0.1:8080` | where links in e-mails point (`/reset-password?token=…`) |
//! | `MAIL_MAX_ATTEMPTS` | `8` | attempts before a message is `dead` |
//! | `MAIL_RETRY_BASE` | `30s` | delay after the first failed attempt; doubles each time |
//! | `MAIL_RETRY_MAX` | `1h` | the longest delay between attempts |
//! | `MAIL_POLL_INTERVAL` | `2s` | how often an idle worker looks for due mail |
//! | `MAIL_BATCH_SIZE` | `20` | messages claimed at once |
//! | `MAIL_SEND_TIMEOUT` | `30s` | one SMTP delivery, connection included |
//! | `MAIL_LEASE` | `5m` | how long a claim holds; a message whose worker died is taken over after it |

use std::fmt;
use std::time::Duration;

use agenda_storage::config::{ConfigError, Env};
use lettre::AsyncSmtpTransport;
use lettre::Tokio1Executor;
use lettre::message::Mailbox;

/// `SMTP_URL`: a secret (it may hold a password). `Debug` and `Display` redact it.
#[derive(Clone)]
pub struct SmtpUrl(String);

impl SmtpUrl {
    /// The URL if lettre understands it (the transport is built to check).
    /// `?tls=starttls` is accepted as another name for lettre's `?tls=required`.
    pub fn parse(raw: &str) -> Option<SmtpUrl> {
        let raw = raw.trim().replace("tls=starttls", "tls=required");
        let scheme_ok = raw.starts_with("smtp://") || raw.starts_with("smtps://");
        (scheme_ok && AsyncSmtpTransport::<Tokio1Executor>::from_url(&raw).is_ok())
            .then_some(SmtpUrl(raw))
    }

    /// The URL with its password, for building the transport only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        agenda_storage::db::redact(&self.0)
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SmtpUrl({})", self.redacted())
    }
}

impl fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// How delivery is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `MAIL_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `MAIL_RETRY_BASE`.
    pub base: Duration,
    /// `MAIL_RETRY_MAX`.
    pub max: Duration,
}

impl RetryPolicy {
    /// The delay before the next attempt after `attempts` failed ones: `base ×
    /// 2^(attempts-1)`, at most `max`, then "equal jitter" (a random point in its
    /// upper half), so that messages failing together do not retry together.
    pub fn delay(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        let full = self
            .base
            .saturating_mul(1u32 << exponent)
            .min(self.max)
            .max(Duration::from_millis(1));
        let half = full / 2;
        half + full.mul_f64(fastrand::f64() * 0.5)
    }
}

/// Everything e-mail needs.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `SMTP_URL`; `None` sends nothing (messages stay queued for `agenda mail list`).
    pub smtp: Option<SmtpUrl>,
    /// `MAIL_FROM`.
    pub from: Mailbox,
    /// `PUBLIC_BASE_URL`, without a trailing slash.
    pub public_base_url: String,
    pub retry: RetryPolicy,
    /// `MAIL_POLL_INTERVAL`.
    pub poll_interval: Duration,
    /// `MAIL_BATCH_SIZE`.
    pub batch_size: u32,
    /// `MAIL_SEND_TIMEOUT`.
    pub send_timeout: Duration,
    /// `MAIL_LEASE`.
    pub lease: Duration,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings::from_env(&Env::default()).expect("the defaults are valid")
    }
}

impl MailSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let smtp = match env.get("SMTP_URL") {
            None => None,
            Some(raw) => Some(SmtpUrl::parse(raw).ok_or_else(|| {
                ConfigError::new(
                    "SMTP_URL",
                    format!(
                        "is \"{}\"; expected smtp://host:port, smtps://user:password@host \
                         or smtp://user:password@host:587?tls=required",
                        agenda_storage::db::redact(raw.trim())
                    ),
                )
            })?),
        };
        let from = env.parsed(
            "MAIL_FROM",
            "Agenda <no-reply@agenda.localhost>"
                .parse::<Mailbox>()
                .expect("valid default"),
            "a mailbox such as no-reply@example.com or \"Agenda <no-reply@example.com>\"",
            |raw| raw.parse::<Mailbox>().ok(),
        )?;
        let public_base_url = env.parsed(
            "PUBLIC_BASE_URL",
            "http://127.0.0.1:8080".to_owned(),
            "an http(s) URL such as https://app.example.com",
            |raw| {
                let url = url::Url::parse(raw).ok()?;
                let ok = matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.query().is_none()
                    && url.fragment().is_none();
                // The parsed form: characters that need it are percent-encoded.
                ok.then(|| url.as_str().trim_end_matches('/').to_owned())
            },
        )?;
        let retry = RetryPolicy {
            max_attempts: env.number("MAIL_MAX_ATTEMPTS", 8, 1..=100)?,
            base: env.duration("MAIL_RETRY_BASE", Duration::from_secs(30))?,
            max: env.duration("MAIL_RETRY_MAX", Duration::from_secs(3600))?,
        };
        let send_timeout = env.duration("MAIL_SEND_TIMEOUT", Duration::from_secs(30))?;
        let lease = env.duration("MAIL_LEASE", Duration::from_secs(300))?;
        if lease <= send_timeout {
            return Err(ConfigError::new(
                "MAIL_LEASE",
                "must be longer than MAIL_SEND_TIMEOUT, or a slow delivery could be taken \
                 over and sent twice",
            ));
        }
        if retry.base.is_zero() || retry.max < retry.base {
            return Err(ConfigError::new(
                "MAIL_RETRY_MAX",
                "must be at least MAIL_RETRY_BASE, and MAIL_RETRY_BASE more than zero",
            ));
        }
        let poll_interval = env.duration("MAIL_POLL_INTERVAL", Duration::from_secs(2))?;
        if poll_interval.is_zero() {
            return Err(ConfigError::new(
                "MAIL_POLL_INTERVAL",
                "must be more than zero",
            ));
        }
        Ok(MailSettings {
            smtp,
            from,
            public_base_url,
            retry,
            poll_interval,
            batch_size: env.number("MAIL_BATCH_SIZE", 20, 1..=1000)?,
            send_timeout,
            lease,
        })
    }

    /// The domain that ends every `Message-ID`: `MAIL_FROM`'s.
    pub fn message_id_domain(&self) -> &str {
        self.from.email.domain()
    }

    /// `PUBLIC_BASE_URL` + `path` (which starts with `/`).
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.public_base_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_send_nothing() {
        let s = MailSettings::default();
        assert!(s.smtp.is_none());
        assert_eq!(s.from.email.to_string(), "no-reply@agenda.localhost");
        assert_eq!(s.link("/x"), "http://127.0.0.1:8080/x");
        assert_eq!(s.retry.max_attempts, 8);
    }

    #[test]
    fn the_smtp_password_is_never_shown() {
        let env = Env::from_pairs([("SMTP_URL", "smtps://mailer:s3cret@smtp.example.com")]);
        let s = MailSettings::from_env(&env).unwrap();
        let url = s.smtp.unwrap();
        assert_eq!(url.redacted(), "smtps://mailer:***@smtp.example.com");
        assert!(!format!("{url:?} {url}").contains("s3cret"));

        let env = Env::from_pairs([("SMTP_URL", "smtp://m:p@smtp.example.com:587?tls=starttls")]);
        let url = MailSettings::from_env(&env).unwrap().smtp.unwrap();
        assert_eq!(
            url.redacted(),
            "smtp://m:***@smtp.example.com:587?tls=required"
        );

        let env = Env::from_pairs([("SMTP_URL", "http://mailer:s3cret@smtp.example.com")]);
        let err = MailSettings::from_env(&env).unwrap_err().to_string();
        assert!(
            err.contains("SMTP_URL is \"http://mailer:***@smtp"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("MAIL_FROM", "not a mailbox"),
            ("PUBLIC_BASE_URL", "ftp://example.com"),
            ("MAIL_MAX_ATTEMPTS", "0"),
            ("MAIL_LEASE", "1s"),
        ] {
            let err = MailSettings::from_env(&Env::from_pairs([(var, value)])).unwrap_err();
            assert_eq!(err.var, var, "{err}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        for _ in 0..100 {
            let first = policy.delay(1);
            assert!(first >= Duration::from_secs(5) && first <= Duration::from_secs(10));
            let third = policy.delay(3);
            assert!(third >= Duration::from_secs(20) && third <= Duration::from_secs(40));
            let late = policy.delay(30);
            assert!(late >= Duration::from_secs(30) && late <= Duration::from_secs(60));
        }
    }
}
