//! `agenda mail …`: the e-mail outbox as an operator (or a developer without an
//! SMTP server) sees it.
//!
//! - `agenda mail list [--status S] [--organization SLUG] [--limit N] [--json]`:
//!   newest first, every tenant;
//! - `agenda mail show ID [--html]`: one message's headers and text (or HTML) part,
//!   so a developer can open a reset link with no SMTP server at all;
//! - `agenda mail retry ID`: queue a `dead` message again;
//! - `agenda mail purge --older-than 30d`: delete finished (`sent`, `dead`) messages
//!   created before then — the retention of mail that may hold links with tokens.
//!
//! These read across tenants, so on PostgreSQL they connect as the schema owner
//! (`MIGRATION_DATABASE_URL`, else `DATABASE_URL`), like backups: the application
//! role sees one tenant per transaction. An id may be given in full or as a prefix
//! of at least 8 characters that matches one message.

use agenda_entity::enums::OutboxStatus;
use agenda_entity::outbox_message;
use agenda_storage::Db;
use agenda_storage::config::Env;
use agenda_storage::db::DbSettings;
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::repo::outbox::{ListFilter, OutboxRepo};
use clap::Subcommand;
use serde::Serialize;

use super::{Failure, print_json, require_migrated};

#[derive(Debug, Subcommand)]
pub enum MailAction {
    /// List outbox messages, newest first (every organization).
    List {
        /// Only messages in this status: queued, sending, sent or dead.
        #[arg(long, value_parser = parse_status)]
        status: Option<OutboxStatus>,
        /// Only this organization's messages (its slug).
        #[arg(long, value_name = "SLUG")]
        organization: Option<String>,
        /// How many to list.
        #[arg(long, default_value_t = 50)]
        limit: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one message: its headers and its text part (or the HTML part).
    Show {
        /// The message id, or its first 8 or more characters.
        id: String,
        /// Print the HTML part instead of the text part.
        #[arg(long)]
        html: bool,
    },
    /// Queue a dead message again for a new round of attempts.
    Retry {
        /// The message id, or its first 8 or more characters.
        id: String,
    },
    /// Delete sent and dead messages created more than DURATION ago (queued ones are
    /// kept).
    Purge {
        /// How old a finished message must be, e.g. 30d or 12h.
        #[arg(long, value_name = "DURATION", value_parser = parse_age)]
        older_than: std::time::Duration,
    },
}

/// `--older-than`: a positive duration such as `30d`.
fn parse_age(raw: &str) -> Result<std::time::Duration, String> {
    match agenda_storage::config::parse_duration(raw) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{raw:?} is not a positive duration; expected e.g. 30d, 12h or 90m"
        )),
    }
}

fn parse_status(raw: &str) -> Result<OutboxStatus, String> {
    match raw {
        "queued" => Ok(OutboxStatus::Queued),
        "sending" => Ok(OutboxStatus::Sending),
        "sent" => Ok(OutboxStatus::Sent),
        "dead" => Ok(OutboxStatus::Dead),
        _ => Err(format!(
            "{raw:?} is not a status; expected queued, sending, sent or dead"
        )),
    }
}

/// One message as `list --json` prints it (no bodies).
#[derive(Serialize)]
struct Listed<'a> {
    id: uuid::Uuid,
    organization_id: uuid::Uuid,
    kind: &'a str,
    locale: &'a str,
    to: &'a str,
    subject: &'a str,
    status: &'a str,
    attempts: i32,
    next_attempt_at: chrono::DateTime<chrono::Utc>,
    last_error: Option<&'a str>,
    created_at: chrono::DateTime<chrono::Utc>,
    sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl<'a> From<&'a outbox_message::Model> for Listed<'a> {
    fn from(m: &'a outbox_message::Model) -> Self {
        Listed {
            id: m.id,
            organization_id: m.organization_id,
            kind: m.kind.as_str(),
            locale: m.locale.as_str(),
            to: &m.to_address,
            subject: &m.subject,
            status: m.status.as_str(),
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
            last_error: m.last_error.as_deref(),
            created_at: m.created_at,
            sent_at: m.sent_at,
        }
    }
}

pub async fn run(env: &Env, action: MailAction) -> Result<(), Failure> {
    let settings = DbSettings::migrator_from_env(env).map_err(Failure::config)?;
    let db = Db::connect(&settings).await.map_err(Failure::runtime)?;
    let result = act(&db, action).await;
    db.close().await;
    result
}

async fn act(db: &Db, action: MailAction) -> Result<(), Failure> {
    let failed = |e: agenda_storage::StorageError| Failure::runtime(e.to_string());
    require_migrated(db, "").await?;
    let conn = db.conn();
    if !agenda_storage::tenant::sees_every_tenant(conn)
        .await
        .map_err(failed)?
    {
        return Err(Failure::config(
            "this database role is confined to one organization by row-level security; \
             set MIGRATION_DATABASE_URL to the schema owner's URL",
        ));
    }
    match action {
        MailAction::List {
            status,
            organization,
            limit,
            json,
        } => {
            let organization_id = match organization {
                None => None,
                Some(slug) => Some(
                    OrganizationRepo::find_by_slug(conn, &slug)
                        .await
                        .map_err(failed)?
                        .ok_or_else(|| Failure::config(format!("no organization {slug:?}")))?
                        .id,
                ),
            };
            let filter = ListFilter {
                status,
                organization_id,
                limit,
            };
            let messages = OutboxRepo::list_all(conn, &filter).await.map_err(failed)?;
            if json {
                let listed: Vec<Listed> = messages.iter().map(Listed::from).collect();
                return print_json(&listed);
            }
            print_list(&messages);
            Ok(())
        }
        MailAction::Show { id, html } => {
            let m = OutboxRepo::find_any(conn, &id).await.map_err(failed)?;
            println!("Message-ID: {}", m.message_id);
            println!("To: {}", mailbox(&m));
            println!("Subject: {}", m.subject);
            println!("Kind: {} ({})", m.kind, m.locale);
            println!(
                "Status: {} after {} attempt(s){}",
                m.status,
                m.attempts,
                m.last_error
                    .as_deref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            );
            println!("Created: {}", m.created_at.to_rfc3339());
            println!();
            print!("{}", if html { &m.body_html } else { &m.body_text });
            Ok(())
        }
        MailAction::Retry { id } => {
            let m = OutboxRepo::find_any(conn, &id).await.map_err(failed)?;
            OutboxRepo::requeue(conn, m.id, agenda_entity::now())
                .await
                .map_err(failed)?;
            println!("queued {} again ({} to {})", m.id, m.kind, m.to_address);
            Ok(())
        }
        MailAction::Purge { older_than } => {
            let age = chrono::Duration::from_std(older_than)
                .map_err(|_| Failure::config("--older-than is too long"))?;
            let deleted = OutboxRepo::purge_finished(conn, agenda_entity::now() - age)
                .await
                .map_err(failed)?;
            println!(
                "deleted {deleted} sent or dead message(s) older than {}",
                agenda_storage::config::format_duration(older_than)
            );
            Ok(())
        }
    }
}

fn mailbox(m: &outbox_message::Model) -> String {
    match &m.to_name {
        Some(name) => format!("{name} <{}>", m.to_address),
        None => m.to_address.clone(),
    }
}

fn print_list(messages: &[outbox_message::Model]) {
    if messages.is_empty() {
        println!("no messages");
        return;
    }
    println!(
        "{:<36}  {:<20}  {:<7}  {:<8}  {:>3}  {:<28}  SUBJECT",
        "ID", "CREATED", "STATUS", "KIND", "TRY", "TO"
    );
    for m in messages {
        let subject: String = m.subject.chars().take(60).collect();
        let to: String = m.to_address.chars().take(28).collect();
        println!(
            "{:<36}  {:<20}  {:<7}  {:<8}  {:>3}  {:<28}  {subject}",
            m.id,
            m.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            m.status.as_str(),
            short_kind(m),
            m.attempts,
            to,
        );
    }
    println!(
        "{} message(s); `agenda mail show ID` prints one (its link included)",
        messages.len()
    );
}

fn short_kind(m: &outbox_message::Model) -> &'static str {
    use agenda_entity::enums::MessageKind as K;
    match m.kind {
        K::PasswordReset => "reset",
        K::EmailVerification => "verify",
        K::Invitation => "invite",
        K::BookingConfirmed => "booked",
        K::BookingCanceled => "canceled",
        K::BookingRescheduled => "moved",
    }
}
