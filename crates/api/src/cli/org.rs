//! `agenda org …`: the platform operator's commands for organizations (tenants).
//!
//! - `agenda org create --slug S --name N --time-zone TZ --currency C --admin-email E
//!   [--admin-name NAME] [--locale en|pt-BR] [--admin-password-stdin] [--json]`:
//!   the organization and its first admin in one transaction, as sign-up does
//!   (`crate::accounts::create_organization`). With `--admin-password-stdin` the
//!   password is read from standard input (never from the command line, where `ps`
//!   and shell history would show it) and the admin gets a verification e-mail;
//!   without it the admin is e-mailed an invitation to choose one;
//! - `agenda org list [--status active|suspended] [--json]`;
//! - `agenda org suspend SLUG [--reason TEXT]` and `agenda org activate SLUG
//!   [--reason TEXT]`: only the status changes; a suspended organization keeps all
//!   its data, and activating it restores sign-in, sessions and webhooks as they were.
//!
//! Each change writes an audit entry of the organization (`organization.create`,
//! `organization.suspend`, `organization.activate`, no actor: `"by": "operator"`),
//! in the same transaction, so the organization's admins see it in
//! `GET /admin/audit-log`.
//!
//! Every command acts for one organization at a time, so it runs as the server does:
//! `DATABASE_URL` (on PostgreSQL the least-privilege application role), entering the
//! organization's tenant before touching its rows (row-level security). The
//! `organizations` table itself is the tenant list and has no row-level security.
//! Mail is written to the outbox and delivered by a running server's worker (or
//! shown by `agenda mail list` when there is no `SMTP_URL`).

use std::io::Read as _;

use agenda_entity::enums::{Locale, OrganizationStatus, UserRole};
use agenda_entity::organization::{self, CreateOrganization};
use agenda_entity::user::CreateUser;
use agenda_storage::Db;
use agenda_storage::config::Env;
use agenda_storage::db::DbSettings;
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::{StorageError, TenantScope};
use clap::Subcommand;
use serde::Serialize;
use serde_json::json;
use validator::Validate;

use super::{Failure, command_pool, print_json, print_table, require_migrated};
use crate::accounts::{self, Creator};

#[derive(Debug, Subcommand)]
pub enum OrgAction {
    /// Create an organization and its first admin (invited by e-mail, unless
    /// --admin-password-stdin gives the password).
    Create(CreateArgs),
    /// List organizations by slug.
    List {
        /// Only organizations in this status: active or suspended.
        #[arg(long, value_parser = parse_status)]
        status: Option<OrganizationStatus>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Suspend an organization: no sign-in, no session, no webhook; data kept.
    Suspend {
        slug: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Activate a suspended organization again: everything works as before.
    Activate {
        slug: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// URL-safe handle: 3-63 lowercase letters, digits and dashes.
    #[arg(long)]
    slug: String,
    /// The organization's name.
    #[arg(long)]
    name: String,
    /// IANA time zone, e.g. America/Sao_Paulo.
    #[arg(long)]
    time_zone: String,
    /// ISO 4217 currency, e.g. BRL.
    #[arg(long)]
    currency: String,
    /// The language of the organization's e-mails.
    #[arg(long, value_parser = parse_locale, default_value = "en")]
    locale: Locale,
    /// The first admin's e-mail address.
    #[arg(long)]
    admin_email: String,
    /// The first admin's name (default: the part of the address before `@`).
    #[arg(long)]
    admin_name: Option<String>,
    /// Read the admin's password from standard input instead of inviting them.
    #[arg(long)]
    admin_password_stdin: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_locale(raw: &str) -> Result<Locale, String> {
    match raw {
        "en" => Ok(Locale::En),
        "pt-BR" => Ok(Locale::PtBr),
        _ => Err(format!("{raw:?} is not a locale; expected en or pt-BR")),
    }
}

fn parse_status(raw: &str) -> Result<OrganizationStatus, String> {
    match raw {
        "active" => Ok(OrganizationStatus::Active),
        "suspended" => Ok(OrganizationStatus::Suspended),
        _ => Err(format!(
            "{raw:?} is not a status; expected active or suspended"
        )),
    }
}

/// An organization as `list --json` and `create --json` print it.
#[derive(Serialize)]
struct Listed<'a> {
    id: uuid::Uuid,
    slug: &'a str,
    name: &'a str,
    status: &'a str,
    time_zone: &'a str,
    currency: &'a str,
    locale: &'a str,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl<'a> From<&'a organization::Model> for Listed<'a> {
    fn from(o: &'a organization::Model) -> Self {
        Listed {
            id: o.id,
            slug: &o.slug,
            name: &o.name,
            status: o.status.as_str(),
            time_zone: &o.time_zone,
            currency: &o.currency,
            locale: o.locale.as_str(),
            created_at: o.created_at,
        }
    }
}

pub async fn run(env: &Env, action: OrgAction) -> Result<(), Failure> {
    // Checked before connecting: a bad flag needs no database.
    let create = match &action {
        OrgAction::Create(args) => Some(creation(args)?),
        _ => None,
    };
    let mail = agenda_mail::MailSettings::from_env(env).map_err(Failure::config)?;
    let configured = DbSettings::from_env(env, "DATABASE_URL").map_err(Failure::config)?;
    let db = Db::connect(&command_pool(&configured))
        .await
        .map_err(Failure::runtime)?;
    let result = act(&db, action, create, agenda_mail::Outbox::new(mail)).await;
    db.close().await;
    result
}

/// The validated input of `org create`, with the admin's password hashed.
struct Creation {
    organization: CreateOrganization,
    admin: CreateUser,
    password_hash: Option<String>,
}

/// The flag a field of the inputs comes from, for error lines.
fn flag_of(field: &str) -> &'static str {
    match field {
        "slug" => "--slug",
        "name" => "--name",
        "time_zone" => "--time-zone",
        "currency" => "--currency",
        "email" => "--admin-email",
        "full_name" => "--admin-name",
        "password" => "the password on standard input",
        _ => "a value",
    }
}

fn creation(args: &CreateArgs) -> Result<Creation, Failure> {
    let CreateArgs {
        slug,
        name,
        time_zone,
        currency,
        locale,
        admin_email,
        admin_name,
        admin_password_stdin,
        ..
    } = args;
    let organization = CreateOrganization {
        slug: slug.clone(),
        name: name.clone(),
        time_zone: time_zone.clone(),
        currency: currency.clone(),
        locale: Some(*locale),
    };
    let admin_name = admin_name.clone().unwrap_or_else(|| {
        admin_email
            .split('@')
            .next()
            .unwrap_or(admin_email)
            .to_owned()
    });
    let mut admin =
        CreateUser::without_password(admin_email.clone(), admin_name, None, UserRole::Admin, None);
    let password = if *admin_password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::runtime(format!("reading the password from stdin: {e}")))?;
        let password = text.strip_suffix('\n').unwrap_or(&text);
        let password = password.strip_suffix('\r').unwrap_or(password).to_owned();
        admin.password = password.clone();
        Some(password)
    } else {
        None
    };
    let mut problems = Vec::new();
    for errors in [organization.validate().err(), admin.validate().err()]
        .into_iter()
        .flatten()
    {
        for e in crate::error::field_errors(&errors) {
            problems.push(format!("{}: {}", flag_of(&e.field), e.message));
        }
    }
    if !problems.is_empty() {
        return Err(Failure::config(format!(
            "invalid organization: {}",
            problems.join("; ")
        )));
    }
    // Hashed before the transaction: argon2 is slow on purpose.
    let password_hash = password
        .map(|p| crate::password::hash(&p).map_err(Failure::runtime))
        .transpose()?;
    Ok(Creation {
        organization,
        admin,
        password_hash,
    })
}

async fn act(
    db: &Db,
    action: OrgAction,
    create: Option<Creation>,
    mail: agenda_mail::Outbox,
) -> Result<(), Failure> {
    require_migrated(db, "").await?;
    match action {
        OrgAction::Create(CreateArgs { json, .. }) => {
            let creation = create.expect("validated before connecting");
            let slug = creation.organization.slug.clone();
            let tx = db.begin().await.map_err(Failure::runtime)?;
            let created = accounts::create_organization(
                &mail,
                &tx,
                creation.organization,
                creation.admin,
                creation.password_hash,
                Creator::Operator,
            )
            .await
            .map_err(|e| match e {
                StorageError::Conflict { .. } => Failure::runtime(format!(
                    "an organization with the slug {slug:?} exists already"
                )),
                e => Failure::runtime(format!("creating the organization failed: {e}")),
            })?;
            tx.commit()
                .await
                .map_err(|e| Failure::runtime(StorageError::from(e)))?;
            let o = &created.organization;
            if json {
                return print_json(&json!({
                    "organization": Listed::from(o),
                    "admin": {"id": created.admin.id, "email": created.admin.email},
                    "admin_invited": created.invited,
                }));
            }
            println!(
                "created organization {:?} ({}, id {}) with admin {}",
                o.slug, o.name, o.id, created.admin.email
            );
            let sent = if created.invited {
                "an invitation to choose a password"
            } else {
                "a link to verify the address"
            };
            let delivery = if mail.settings().smtp.is_some() {
                "the server's e-mail worker delivers it"
            } else {
                "no SMTP_URL is set, so it stays queued: `agenda mail list` shows it"
            };
            println!("the admin was e-mailed {sent}; {delivery}");
            Ok(())
        }
        OrgAction::List { status, json } => {
            let list = OrganizationRepo::list(db.conn(), status)
                .await
                .map_err(|e| Failure::runtime(format!("listing organizations failed: {e}")))?;
            if json {
                let listed: Vec<Listed> = list.iter().map(Listed::from).collect();
                return print_json(&listed);
            }
            print_list(&list);
            Ok(())
        }
        OrgAction::Suspend { slug, reason } => {
            set_status(db, &slug, OrganizationStatus::Suspended, reason).await
        }
        OrgAction::Activate { slug, reason } => {
            set_status(db, &slug, OrganizationStatus::Active, reason).await
        }
    }
}

/// Suspends or activates `slug`, with the audit entry in the same transaction.
async fn set_status(
    db: &Db,
    slug: &str,
    status: OrganizationStatus,
    reason: Option<String>,
) -> Result<(), Failure> {
    let failed = |e: StorageError| Failure::runtime(format!("changing the status failed: {e}"));
    let tx = db.begin().await.map_err(failed)?;
    let found = OrganizationRepo::find_by_slug(&tx, slug)
        .await
        .map_err(failed)?
        .ok_or_else(|| Failure::runtime(format!("no organization {slug:?}")))?;
    let (changed, organization) = OrganizationRepo::set_status(&tx, found.id, status)
        .await
        .map_err(failed)?;
    if !changed {
        println!("organization {slug:?} is {status} already; nothing changed");
        return Ok(());
    }
    let scope = TenantScope::new(organization.id);
    agenda_storage::tenant::enter(&tx, scope)
        .await
        .map_err(failed)?;
    let verb = match status {
        OrganizationStatus::Suspended => "suspend",
        OrganizationStatus::Active => "activate",
    };
    accounts::audit(
        &tx,
        scope,
        None,
        &format!("organization.{verb}"),
        "organization",
        organization.id,
        json!({"by": "operator", "from": found.status, "to": status, "reason": reason}),
    )
    .await
    .map_err(failed)?;
    tx.commit()
        .await
        .map_err(|e| failed(StorageError::from(e)))?;
    match status {
        OrganizationStatus::Suspended => println!(
            "suspended organization {slug:?}: sign-in, sessions and webhooks are refused \
             (403 organization_suspended); its data is kept. `agenda org activate {slug}` \
             restores it"
        ),
        OrganizationStatus::Active => {
            println!("activated organization {slug:?}: sign-in, sessions and webhooks work again")
        }
    }
    Ok(())
}

fn print_list(list: &[organization::Model]) {
    if list.is_empty() {
        println!("no organizations");
        return;
    }
    let rows: Vec<[String; 7]> = list
        .iter()
        .map(|o| {
            [
                o.slug.clone(),
                o.name.chars().take(40).collect(),
                o.status.to_string(),
                o.time_zone.clone(),
                o.currency.clone(),
                o.locale.to_string(),
                o.created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ]
        })
        .collect();
    print_table(
        [
            "SLUG",
            "NAME",
            "STATUS",
            "TIME ZONE",
            "CURRENCY",
            "LOCALE",
            "CREATED",
        ],
        &rows,
    );
    println!("{} organization(s)", list.len());
}
