//! Accounts: an organization's life and its people's, in the steps the HTTP routes
//! and the operator commands share, so both write the same rows, e-mails and audit
//! entries (docs/accounts.md):
//!
//! - [`create_organization`]: the organization and its first admin, in the caller's
//!   transaction: sign-up (`POST /api/v1/organizations`) and `agenda org create`;
//! - [`mail_token`]: a single-use token (password reset, e-mail verification,
//!   invitation) and the e-mail carrying it, in the event's transaction;
//! - [`start_session`]: a bearer session (sign-in, sign-up, accepting an invitation);
//! - [`audit`]: an audit-log entry of the organization.
//!
//! A user created without a password (invited) has [`user::NO_PASSWORD`] as hash:
//! nothing signs in as them until they accept the invitation (or reset the
//! password), which proves they read mail at the address.

use agenda_entity::enums::{TokenPurpose, UserRole};
use agenda_entity::organization::{self, CreateOrganization};
use agenda_entity::user::{self, CreateUser};
use agenda_mail::{Email, Outbox, Recipient};
use agenda_storage::repo::audit::{AuditEntry, AuditRepo};
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::repo::sessions::{OneTimeTokenRepo, SessionRepo};
use agenda_storage::repo::users::UserRepo;
use agenda_storage::{StorageError, TenantScope};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::{new_token, token_digest};

/// How long a password-reset token is valid.
pub const RESET_MINUTES: i64 = 30;
/// How long an e-mail verification link is valid.
pub const VERIFY_HOURS: i64 = 48;
/// How long an invitation is valid (an admin can send a new one).
pub const INVITATION_HOURS: i64 = 7 * 24;

/// The token an e-mail carries, and what it lets its reader do.
#[derive(Debug, Clone, Copy)]
pub enum Mailed<'a> {
    PasswordReset,
    EmailVerification,
    /// Join the organization and choose a password; `invited_by` names the admin
    /// (none when the platform's operator or the sign-up itself invites).
    Invitation {
        invited_by: Option<&'a str>,
    },
}

impl Mailed<'_> {
    pub fn purpose(self) -> TokenPurpose {
        match self {
            Mailed::PasswordReset => TokenPurpose::PasswordReset,
            Mailed::EmailVerification => TokenPurpose::EmailVerification,
            Mailed::Invitation { .. } => TokenPurpose::Invitation,
        }
    }
}

/// Issues a single-use token to `user` and e-mails it, in `tx` (the event's
/// transaction): the token and its message commit together or not at all. A new
/// invitation uses up the user's earlier ones, so only the latest link works.
pub async fn mail_token(
    mail: &Outbox,
    tx: &DatabaseTransaction,
    organization: &organization::Model,
    user: &user::Model,
    what: Mailed<'_>,
) -> Result<(), StorageError> {
    let scope = TenantScope::new(organization.id);
    let token = new_token();
    let (valid_for, email) = match what {
        Mailed::PasswordReset => (
            Duration::minutes(RESET_MINUTES),
            Email::PasswordReset {
                token: token.clone(),
                valid_minutes: RESET_MINUTES,
            },
        ),
        Mailed::EmailVerification => (
            Duration::hours(VERIFY_HOURS),
            Email::EmailVerification {
                token: token.clone(),
                valid_hours: VERIFY_HOURS,
            },
        ),
        Mailed::Invitation { invited_by } => (
            Duration::hours(INVITATION_HOURS),
            Email::Invitation {
                token: token.clone(),
                valid_hours: INVITATION_HOURS,
                role: user.role,
                invited_by: invited_by.map(str::to_owned),
            },
        ),
    };
    let now = Utc::now();
    if let Mailed::Invitation { .. } = what {
        OneTimeTokenRepo::use_up_all(tx, scope, user.id, TokenPurpose::Invitation, now).await?;
    }
    OneTimeTokenRepo::issue(
        tx,
        scope,
        user.id,
        what.purpose(),
        &token_digest(&token),
        now + valid_for,
    )
    .await?;
    mail.enqueue(tx, organization, Recipient::user(user), email)
        .await?;
    Ok(())
}

/// Who creates an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creator {
    /// Self-service sign-up; the first admin is the actor of the audit entry.
    SignUp,
    /// A platform operator with `agenda org create` (no actor).
    Operator,
}

impl Creator {
    fn as_str(self) -> &'static str {
        match self {
            Creator::SignUp => "sign_up",
            Creator::Operator => "operator",
        }
    }
}

/// An organization and its first admin, just created.
#[derive(Debug, Clone)]
pub struct CreatedOrganization {
    pub organization: organization::Model,
    pub admin: user::Model,
    /// The admin was created without a password and invited by e-mail.
    pub invited: bool,
}

/// Creates the organization and its first admin in `tx`, and e-mails the admin:
/// with a password (already hashed, outside the transaction) a verification link,
/// without one an invitation to choose it. Enters the new tenant for the rest of the
/// transaction (row-level security) and writes the `organization.create` audit
/// entry. A taken slug is a conflict on `uq_organizations_slug`; nothing is written.
pub async fn create_organization(
    mail: &Outbox,
    tx: &DatabaseTransaction,
    input: CreateOrganization,
    admin: CreateUser,
    password_hash: Option<String>,
    creator: Creator,
) -> Result<CreatedOrganization, StorageError> {
    let organization = OrganizationRepo::create(tx, input).await?;
    let scope = TenantScope::new(organization.id);
    agenda_storage::tenant::enter(tx, scope).await?;
    let admin = CreateUser {
        role: UserRole::Admin,
        ..admin
    };
    let invited = password_hash.is_none();
    let hash = password_hash.unwrap_or_else(|| user::NO_PASSWORD.to_owned());
    let admin = UserRepo::create(tx, scope, admin, hash).await?;
    let what = if invited {
        Mailed::Invitation { invited_by: None }
    } else {
        Mailed::EmailVerification
    };
    mail_token(mail, tx, &organization, &admin, what).await?;
    let actor = (creator == Creator::SignUp).then_some(admin.id);
    audit(
        tx,
        scope,
        actor,
        "organization.create",
        "organization",
        organization.id,
        json!({
            "slug": organization.slug,
            "via": creator.as_str(),
            "admin_id": admin.id,
            "admin_email": admin.email,
            "admin_invited": invited,
        }),
    )
    .await?;
    Ok(CreatedOrganization {
        organization,
        admin,
        invited,
    })
}

/// Starts a session for `user_id` (a user of `scope`) and returns its bearer token
/// (only its digest is stored) and expiry.
pub async fn start_session(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    user_id: Uuid,
    ttl: std::time::Duration,
    user_agent: Option<&str>,
) -> Result<(String, DateTime<Utc>), StorageError> {
    let token = new_token();
    let expires_at = Utc::now() + Duration::from_std(ttl).unwrap_or(Duration::days(7));
    SessionRepo::create(
        db,
        scope,
        user_id,
        &token_digest(&token),
        expires_at,
        None,
        user_agent,
    )
    .await?;
    Ok((token, expires_at))
}

/// Appends an audit entry of the organization: `actor` (a user of it, or `None` for
/// the system or an operator) did `action` to the `entity_type` row `entity_id`.
/// `details` never holds a secret.
pub async fn audit(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    actor: Option<Uuid>,
    action: &str,
    entity_type: &str,
    entity_id: Uuid,
    details: Value,
) -> Result<(), StorageError> {
    AuditRepo::record(
        db,
        scope,
        AuditEntry::new(actor, action, entity_type, Some(entity_id), details),
    )
    .await?;
    Ok(())
}
