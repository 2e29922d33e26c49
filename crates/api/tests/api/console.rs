//! The web console at `/console`, through the running server: cookie sessions for
//! admins only, CSRF on every form, the generic table browser confined to the
//! tenant, readable UUIDs and masked secrets.

use agenda_entity::enums::UserRole;
use agenda_storage::seed::{DEMO_ADMIN_EMAIL, DEMO_ORGANIZATION_ID, DEMO_PASSWORD, DEMO_SLUG};
use agenda_testkit::{TestDb, both_engines, tools};

use chrono::{Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::support::{
    PASSWORD, TestApp, api, assert_console_run, bookable_provider, member, organization,
};

/// A browser without a cookie jar or redirects: the test reads both itself.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` of the `Set-Cookie` header setting `name`, and the whole header.
pub(crate) fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| (v.split(';').next().unwrap().to_owned(), v.to_owned()))
}

/// The value of the hidden form field `name` in `html`.
pub(crate) fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Signs in to the console; the status and the session cookie (`name=value`).
pub(crate) async fn console_sign_in(
    app: &TestApp,
    org: &str,
    email: &str,
    password: &str,
) -> (u16, Option<String>) {
    let client = browser();
    let form = client.get(app.url("/console/login")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let (sign_in_cookie, _) =
        set_cookie(&form, "agenda_console_sign_in").expect("a sign-in cookie");
    let token = hidden(&form.text().await.unwrap(), "sign_in_token");
    let answer = client
        .post(app.url("/console/login"))
        .header("cookie", sign_in_cookie)
        .form(&[
            ("organization", org),
            ("email", email),
            ("password", password),
            ("sign_in_token", &token),
        ])
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (
        status,
        set_cookie(&answer, "agenda_console").map(|(cookie, _)| cookie),
    )
}

pub(crate) async fn get_page(app: &TestApp, path: &str, cookie: &str) -> (u16, String) {
    let answer = browser()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap())
}

both_engines! {
    /// An admin signs in with a cookie session, browses a table of their own
    /// organization only (UUIDs readable, password digests masked), filters it, and
    /// signs out with the form's CSRF token; a client cannot sign in, a form
    /// without the token is refused, and the revoked cookie no longer works.
    async fn an_admin_browses_their_tenant_in_the_console(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let acme = organization(&app, "acme").await;
        let other = organization(&app, "other").await;
        let admin = member(&app, acme, "acme", "boss@acme.example", UserRole::Admin).await;
        let client = member(&app, acme, "acme", "cli@acme.example", UserRole::Client).await;
        member(&app, other, "other", "boss@other.example", UserRole::Admin).await;

        // No session: the console sends the browser to the sign-in page.
        let answer = browser().get(app.url("/console")).send().await.unwrap();
        assert_eq!(answer.status(), 303);
        assert_eq!(answer.headers()["location"], "/console/login");

        // The sign-in form is protected by its double-submit token.
        let answer = browser()
            .post(app.url("/console/login"))
            .form(&[("organization", "acme"), ("email", "boss@acme.example"), ("password", PASSWORD), ("sign_in_token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 403);
        assert!(set_cookie(&answer, "agenda_console").is_none());

        // Wrong password, and a client: no console session.
        assert_eq!(console_sign_in(&app, "acme", "boss@acme.example", "wrong password").await, (401, None));
        assert_eq!(console_sign_in(&app, "acme", "cli@acme.example", PASSWORD).await, (403, None));
        // The client's refused console sign-in kept no session: only the API's.
        let sessions = agenda_entity::user_session::Entity::find()
            .filter(agenda_entity::user_session::Column::UserId.eq(client.id))
            .count(app.t.conn())
            .await
            .unwrap();
        assert_eq!(sessions, 1);

        // The admin signs in: an HttpOnly, SameSite=Strict cookie scoped to /console.
        let client = browser();
        let form = client.get(app.url("/console/login")).send().await.unwrap();
        let (sign_in_cookie, _) = set_cookie(&form, "agenda_console_sign_in").unwrap();
        let token = hidden(&form.text().await.unwrap(), "sign_in_token");
        let answer = client
            .post(app.url("/console/login"))
            .header("cookie", sign_in_cookie)
            .form(&[("organization", "acme"), ("email", "boss@acme.example"), ("password", PASSWORD), ("sign_in_token", &token)])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 303);
        let (cookie, header) = set_cookie(&answer, "agenda_console").expect("a session cookie");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(header.contains(attribute), "{header}");
        }
        assert!(!header.contains("Secure"), "plain HTTP: {header}");
        // Behind a TLS proxy the cookies are Secure.
        let form = browser().get(app.url("/console/login")).header("x-forwarded-proto", "https").send().await.unwrap();
        let (_, header) = set_cookie(&form, "agenda_console_sign_in").unwrap();
        assert!(header.contains("; Secure"), "{header}");

        // The users table: this organization's rows only, ids as UUID text, the
        // password digest masked.
        let (status, html) = get_page(&app, "/console/tables/users", &cookie).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("boss@acme.example") && html.contains("cli@acme.example"), "{html}");
        assert!(!html.contains("boss@other.example"), "another tenant's row is shown");
        assert!(html.contains(&admin.id.hyphenated().to_string()), "ids are not readable");
        assert!(!html.contains("$argon2"), "a password digest is shown");
        assert!(html.contains("<span id=\"total\">3</span>"), "{html}");

        // Filters: contains (any case), equals on a UUID column, and no filter on a secret.
        let (_, html) = get_page(&app, "/console/tables/users?column=email&match=contains&value=CLI@", &cookie).await;
        assert!(html.contains("<span id=\"total\">1</span>") && html.contains("cli@acme.example"), "{html}");
        let by_id = format!("/console/tables/users?column=id&match=equals&value={}", admin.id.simple().to_string().to_uppercase());
        let (_, html) = get_page(&app, &by_id, &cookie).await;
        assert!(html.contains("<span id=\"total\">1</span>") && html.contains("boss@acme.example"), "{html}");
        let (status, _) = get_page(&app, "/console/tables/users?column=password_hash&value=x", &cookie).await;
        assert_eq!(status, 422);
        let (status, _) = get_page(&app, "/console/tables/users?column=nope&value=x", &cookie).await;
        assert_eq!(status, 422);
        let (status, _) = get_page(&app, "/console/tables/users?page=0", &cookie).await;
        assert_eq!(status, 422);
        let (status, _) = get_page(&app, "/console/tables/seaql_migrations", &cookie).await;
        assert_eq!(status, 404);
        // Sessions are browsable, their token digests are not.
        let (status, html) = get_page(&app, "/console/tables/user_sessions", &cookie).await;
        assert_eq!(status, 200);
        assert!(html.contains("class=\"masked\""), "{html}");

        // Signing out needs the session's CSRF token.
        let (_, home) = get_page(&app, "/console", &cookie).await;
        let csrf = hidden(&home, "csrf");
        let answer = browser().post(app.url("/console/logout")).header("cookie", &cookie).form(&[("csrf", "forged")]).send().await.unwrap();
        assert_eq!(answer.status(), 403);
        let (status, _) = get_page(&app, "/console/tables/users", &cookie).await;
        assert_eq!(status, 200, "a refused form signed the admin out");
        let answer = browser().post(app.url("/console/logout")).header("cookie", &cookie).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(answer.status(), 303);
        let (status, _) = get_page(&app, "/console/tables/users", &cookie).await;
        assert_eq!(status, 303, "the revoked session still works");
        app.stop().await;
    }
}

both_engines! {
    /// The week grid shows a provider's booked appointment on its day, in the
    /// organization's time zone, and nothing for another provider.
    async fn the_week_grid_shows_a_providers_appointments(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let acme = organization(&app, "acme").await;
        member(&app, acme, "acme", "boss@acme.example", UserRole::Admin).await;
        let provider = member(&app, acme, "acme", "pro@acme.example", UserRole::Provider).await;
        let idle = member(&app, acme, "acme", "idle@acme.example", UserRole::Provider).await;
        let client = member(&app, acme, "acme", "cli@acme.example", UserRole::Client).await;
        let service = bookable_provider(&app, acme, provider.id, json!({"business_name": "Studio", "accepted_payment_methods": ["pix"], "slot_step_minutes": 60, "min_lead_minutes": 0})).await;
        let day = (Utc::now() + Duration::days(2)).date_naive();
        let start = format!("{day}T10:00:00Z");
        let (status, booked) = api(&app, "POST", "/appointments", &client.token, Some(json!({"service_id": service, "start_at": start}))).await;
        assert_eq!(status, 201, "{booked}");

        let (_, cookie) = console_sign_in(&app, "acme", "boss@acme.example", PASSWORD).await;
        let cookie = cookie.expect("signed in");
        let (status, html) = get_page(&app, &format!("/console/week?provider={}&week={day}", provider.id), &cookie).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("10:00–11:00") && html.contains(booked["id"].as_str().unwrap()), "{html}");
        assert!(html.contains(&day.format("%a %d %b").to_string()), "{html}");
        let (_, html) = get_page(&app, &format!("/console/week?provider={}&week={day}", idle.id), &cookie).await;
        assert!(!html.contains("10:00–11:00"), "another provider's grid shows the appointment");
        let (status, _) = get_page(&app, "/console/week?week=tomorrow", &cookie).await;
        assert_eq!(status, 422);
        app.stop().await;
    }
}

/// The console in a real headless Chromium (Debian's, driven by playwright-core from
/// `e2e/console.mjs`), on PostgreSQL as the application role (row-level security):
/// sign in, browse and filter a table, the week grid, sign out. Everything the pages
/// load comes from this server. The screenshots go to `target/console-screenshots`,
/// or to `docs/console/` (the ones docs/console.md shows) with
/// `AGENDA_WRITE_SCREENSHOTS=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_real_browser() {
    let Some(chromium) = tools::require(tools::chromium()) else {
        return;
    };
    let Some(e2e) = tools::require(tools::node_project()) else {
        return;
    };
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let app = TestApp::spawn(t).await;
    let acme = organization(&app, "acme").await;
    member(
        &app,
        acme,
        "acme",
        "ana.admin@acme.example",
        UserRole::Admin,
    )
    .await;
    let provider = member(
        &app,
        acme,
        "acme",
        "paula.provider@acme.example",
        UserRole::Provider,
    )
    .await;
    let client = member(
        &app,
        acme,
        "acme",
        "carlos.client@acme.example",
        UserRole::Client,
    )
    .await;
    let other = organization(&app, "other").await;
    member(&app, other, "other", "admin@other.example", UserRole::Admin).await;
    let service = bookable_provider(&app, acme, provider.id, json!({"business_name": "Studio", "accepted_payment_methods": ["pix"], "slot_step_minutes": 60, "min_lead_minutes": 0})).await;
    let day = (Utc::now() + Duration::days(2)).date_naive();
    for hour in ["09", "11"] {
        let (status, booked) = api(
            &app,
            "POST",
            "/appointments",
            &client.token,
            Some(json!({"service_id": service, "start_at": format!("{day}T{hour}:00:00Z")})),
        )
        .await;
        assert_eq!(status, 201, "{booked}");
    }

    let (base, shots) = crate::support::console_run_places(&app);
    let seen = crate::support::run_browser_script(
        &e2e,
        &chromium,
        "console.mjs",
        &base,
        &[
            shots.to_str().unwrap(),
            "acme",
            "ana.admin@acme.example",
            PASSWORD,
            &provider.id.to_string(),
            &day.to_string(),
        ],
    );
    assert_eq!(seen["signedInAs"], "ana.admin@acme.example");
    // The owner invited at sign-up, the admin, the provider and the client: this
    // organization's four users, and not the other's.
    assert_eq!(seen["usersTotal"], 4, "{seen}");
    let shown = seen["usersShown"].to_string();
    assert!(
        shown.contains("carlos.client@acme.example") && !shown.contains("other.example"),
        "{shown}"
    );
    assert!(
        shown.contains(&provider.id.hyphenated().to_string()),
        "{shown}"
    );
    assert!(!shown.contains("$argon2"), "{shown}");
    assert_eq!(seen["filteredTotal"], 1, "{seen}");
    let week = seen["weekEntries"].as_array().unwrap();
    assert_eq!(week.len(), 2, "{seen}");
    assert!(
        week[0].as_str().unwrap().starts_with("09:00–10:00"),
        "{seen}"
    );
    assert_eq!(seen["afterSignOut"], "/console/login");
    assert_console_run(
        &seen,
        &base,
        &shots,
        &[
            "console-sign-in.png",
            "console-table.png",
            "console-week.png",
        ],
    );
    app.stop().await;
}

/// `SELECT COUNT(*)` of the demo organization's rows of `table`, as the owner.
async fn demo_rows(app: &TestApp, table: &str) -> u64 {
    use sea_orm::{ConnectionTrait, Statement};
    let conn = app.t.conn();
    let key = if table == "organizations" {
        "id"
    } else {
        "organization_id"
    };
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            match conn.get_database_backend() {
                sea_orm::DbBackend::Postgres => {
                    format!("SELECT COUNT(*) FROM \"{table}\" WHERE {key} = $1")
                }
                _ => format!("SELECT COUNT(*) FROM \"{table}\" WHERE {key} = ?"),
            },
            [DEMO_ORGANIZATION_ID.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    u64::try_from(row.try_get_by_index::<i64>(0).unwrap()).unwrap()
}

fn total_of(html: &str) -> u64 {
    let start = html.find("<span id=\"total\">").expect("a total") + "<span id=\"total\">".len();
    html[start..].split('<').next().unwrap().parse().unwrap()
}

both_engines! {
    /// Every tenant table of the seeded demo organization opens in the console, with
    /// as many rows as the organization has there (on PostgreSQL through row-level
    /// security as the application role), and the pages of a long table follow on.
    async fn every_tenant_table_is_browsable(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let hash = agenda_api::password::hash(DEMO_PASSWORD).unwrap();
        agenda_storage::seed::demo(&app.t.db, &hash).await.unwrap();
        other_tenant_noise(&app).await;
        let (status, cookie) = console_sign_in(&app, DEMO_SLUG, DEMO_ADMIN_EMAIL, DEMO_PASSWORD).await;
        assert_eq!(status, 303);
        let cookie = cookie.unwrap();
        let mut nonempty = 0;
        for table in agenda_storage::browse::tenant_tables() {
            let (status, html) = get_page(&app, &format!("/console/tables/{}", table.name), &cookie).await;
            assert_eq!(status, 200, "{}: {html}", table.name);
            let expected = demo_rows(&app, table.name).await;
            assert_eq!(total_of(&html), expected, "{}", table.name);
            nonempty += usize::from(expected > 0);
        }
        assert!(nonempty >= 15, "the demo fills only {nonempty} tables");

        // A long table pages on: page 2 of the appointments starts after page 1.
        let (_, first) = get_page(&app, "/console/tables/appointments", &cookie).await;
        let (status, second) = get_page(&app, "/console/tables/appointments?page=2", &cookie).await;
        assert_eq!(status, 200);
        assert!(first.contains("page 1 of") && second.contains("page 2 of") && second.contains("rel=\"prev\""), "{second}");
        let first_id = |html: &str| html.split("<tbody>").nth(1).unwrap().split("<td>").nth(1).unwrap().split('<').next().unwrap().to_owned();
        assert_ne!(first_id(&first), first_id(&second));
        app.stop().await;
    }
}

/// Another organization with a user, so that confinement is not vacuous.
async fn other_tenant_noise(app: &TestApp) {
    let other = organization(app, "other").await;
    member(app, other, "other", "admin@other.example", UserRole::Admin).await;
}
