//! Staff members, promotions and coupon validation, payment preferences, fee
//! overrides and onboarding over HTTP: one allowed and one refused caller for every
//! route, other users' and other tenants' rows answering 404, the coupon rules, and
//! the onboarding checklist.

use agenda_entity::enums::UserRole;
use agenda_entity::promotion;
use agenda_storage::TenantScope;
use agenda_storage::repo::resource::Repo;
use agenda_testkit::both_engines;
use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Member as Who, TestApp, code, member as user, organization, read, request};

struct World {
    acme: TenantScope,
    admin: Who,
    support: Who,
    provider: Who,
    other_provider: Who,
    client: Who,
    other_client: Who,
    foreign_admin: Who,
    foreign_client: Who,
}

async fn world(app: &TestApp) -> World {
    let acme = organization(app, "acme").await;
    let beta = organization(app, "beta").await;
    World {
        acme,
        admin: user(app, acme, "acme", "admin@example.com", UserRole::Admin).await,
        support: user(app, acme, "acme", "support@example.com", UserRole::Support).await,
        provider: user(app, acme, "acme", "p1@example.com", UserRole::Provider).await,
        other_provider: user(app, acme, "acme", "p2@example.com", UserRole::Provider).await,
        client: user(app, acme, "acme", "c1@example.com", UserRole::Client).await,
        other_client: user(app, acme, "acme", "c2@example.com", UserRole::Client).await,
        foreign_admin: user(app, beta, "beta", "admin@example.com", UserRole::Admin).await,
        foreign_client: user(app, beta, "beta", "client@example.com", UserRole::Client).await,
    }
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    who: &Who,
    body: Option<Value>,
) -> (u16, Value) {
    let path = format!("/api/v1{path}");
    request(app, method, &path, Some(&who.token), body, None).await
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
}

fn id_of(row: &Value) -> String {
    row["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {row}"))
        .to_owned()
}

/// `status` for `method path` as `who`, with the body in the failure message.
async fn expect(
    app: &TestApp,
    status: u16,
    method: &str,
    path: &str,
    who: &Who,
    body: Option<Value>,
) -> Value {
    let (got, answer) = call(app, method, path, who, body).await;
    assert_eq!(got, status, "{method} {path}: {answer}");
    answer
}

fn since(days: i64) -> String {
    (Utc::now() + Duration::days(days)).to_rfc3339()
}

both_engines! {
    async fn staff_promotions_and_fee_overrides_by_role(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let w = world(&app).await;

        // Staff members: anyone reads, admins write, another tenant's row is 404.
        let staff = json!({"display_name": "Ana", "title": "Stylist", "color": "#aabbcc"});
        expect(&app, 403, "POST", "/staff", &w.client, Some(staff.clone())).await;
        let row = expect(&app, 201, "POST", "/staff", &w.admin, Some(staff)).await;
        let item = format!("/staff/{}", id_of(&row));
        let page = expect(&app, 200, "GET", "/staff", &w.client, None).await;
        assert_eq!(items(&page).len(), 1);
        expect(&app, 200, "GET", &item, &w.provider, None).await;
        expect(&app, 403, "PATCH", &item, &w.provider, Some(json!({"title": "X"}))).await;
        let row = expect(&app, 200, "PATCH", &item, &w.admin, Some(json!({"title": "Lead"}))).await;
        assert_eq!(row["title"], "Lead");
        expect(&app, 404, "GET", &item, &w.foreign_admin, None).await;
        expect(&app, 404, "PATCH", &item, &w.foreign_admin, Some(json!({"title": "X"}))).await;
        expect(&app, 403, "DELETE", &item, &w.support, None).await;
        expect(&app, 204, "DELETE", &item, &w.admin, None).await;
        expect(&app, 404, "GET", &item, &w.client, None).await;

        // Promotions: admins write; admins and support see all, others active ones.
        let active = json!({"code": "SAVE10", "name": "Ten", "discount_type": "percentage", "discount_value": 1000, "valid_from": since(-1)});
        let inactive = json!({"code": "LATER", "name": "Later", "discount_type": "fixed", "discount_value": 500, "valid_from": since(-1), "is_active": false});
        expect(&app, 403, "POST", "/promotions", &w.provider, Some(active.clone())).await;
        let on = expect(&app, 201, "POST", "/promotions", &w.admin, Some(active.clone())).await;
        let off = expect(&app, 201, "POST", "/promotions", &w.admin, Some(inactive)).await;
        let body = expect(&app, 409, "POST", "/promotions", &w.admin, Some(active)).await;
        assert_eq!(code(&body), "conflict", "codes are unique per organization");
        let (on, off) = (format!("/promotions/{}", id_of(&on)), format!("/promotions/{}", id_of(&off)));
        let page = expect(&app, 200, "GET", "/promotions", &w.client, None).await;
        assert_eq!(items(&page).len(), 1, "clients see active promotions only");
        let page = expect(&app, 200, "GET", "/promotions?is_active=false", &w.client, None).await;
        assert!(items(&page).iter().all(|p| p["is_active"] == true), "a filter does not reveal inactive ones: {page}");
        let page = expect(&app, 200, "GET", "/promotions", &w.support, None).await;
        assert_eq!(items(&page).len(), 2);
        expect(&app, 200, "GET", &on, &w.client, None).await;
        expect(&app, 404, "GET", &off, &w.client, None).await;
        expect(&app, 200, "GET", &off, &w.support, None).await;
        expect(&app, 404, "GET", &on, &w.foreign_admin, None).await;
        expect(&app, 403, "PATCH", &on, &w.support, Some(json!({"name": "X"}))).await;
        expect(&app, 200, "PATCH", &on, &w.admin, Some(json!({"name": "Ten percent"}))).await;
        expect(&app, 404, "PATCH", &on, &w.foreign_admin, Some(json!({"name": "X"}))).await;
        expect(&app, 403, "DELETE", &off, &w.client, None).await;
        expect(&app, 404, "DELETE", &off, &w.foreign_admin, None).await;
        expect(&app, 204, "DELETE", &off, &w.admin, None).await;
        let check = json!({"code": "SAVE10", "amount_cents": 1000});
        let (status, _) = read(app.client.post(app.url("/api/v1/promotions/validate")).json(&check).send().await.unwrap()).await;
        assert_eq!(status, 401, "validation needs a signed-in user");
        let verdict = expect(&app, 200, "POST", "/promotions/validate", &w.client, Some(check)).await;
        assert_eq!(verdict, json!({"valid": true, "discount_cents": 100}));

        // Fee overrides: admins only; the provider must be a provider of the tenant.
        let fee = json!({"provider_id": w.provider.id, "fee_percentage_bp": 500});
        expect(&app, 403, "POST", "/admin/fee-overrides", &w.provider, Some(fee.clone())).await;
        expect(&app, 404, "POST", "/admin/fee-overrides", &w.admin, Some(json!({"provider_id": w.client.id}))).await;
        expect(&app, 404, "POST", "/admin/fee-overrides", &w.foreign_admin, Some(fee.clone())).await;
        let row = expect(&app, 201, "POST", "/admin/fee-overrides", &w.admin, Some(fee.clone())).await;
        assert_eq!(row["fee_percentage_bp"], 500);
        expect(&app, 409, "POST", "/admin/fee-overrides", &w.admin, Some(fee)).await;
        let item = format!("/admin/fee-overrides/{}", id_of(&row));
        expect(&app, 403, "GET", "/admin/fee-overrides", &w.support, None).await;
        let page = expect(&app, 200, "GET", "/admin/fee-overrides", &w.admin, None).await;
        assert_eq!(items(&page).len(), 1);
        let page = expect(&app, 200, "GET", "/admin/fee-overrides", &w.foreign_admin, None).await;
        assert_eq!(items(&page).len(), 0);
        expect(&app, 403, "GET", &item, &w.provider, None).await;
        expect(&app, 200, "GET", &item, &w.admin, None).await;
        expect(&app, 404, "GET", &item, &w.foreign_admin, None).await;
        expect(&app, 403, "PATCH", &item, &w.provider, Some(json!({"fee_percentage_bp": 0}))).await;
        let row = expect(&app, 200, "PATCH", &item, &w.admin, Some(json!({"fee_percentage_bp": null, "fee_fixed_cents": 100}))).await;
        assert_eq!((row["fee_percentage_bp"].clone(), row["fee_fixed_cents"].clone()), (Value::Null, json!(100)));
        expect(&app, 422, "PATCH", &item, &w.admin, Some(json!({"fee_min_cents": 500, "fee_max_cents": 100}))).await;
        expect(&app, 403, "DELETE", &item, &w.provider, None).await;
        expect(&app, 404, "DELETE", &item, &w.foreign_admin, None).await;
        expect(&app, 204, "DELETE", &item, &w.admin, None).await;

        // Onboarding steps: anyone reads, admins write.
        let step = json!({"key": "profile", "title": "Fill in your profile", "role": "client"});
        expect(&app, 403, "POST", "/onboarding/steps", &w.client, Some(step.clone())).await;
        let row = expect(&app, 201, "POST", "/onboarding/steps", &w.admin, Some(step)).await;
        let item = format!("/onboarding/steps/{}", id_of(&row));
        let page = expect(&app, 200, "GET", "/onboarding/steps", &w.client, None).await;
        assert_eq!(items(&page).len(), 1);
        expect(&app, 200, "GET", &item, &w.provider, None).await;
        expect(&app, 404, "GET", &item, &w.foreign_admin, None).await;
        expect(&app, 403, "PATCH", &item, &w.provider, Some(json!({"sort_order": 3}))).await;
        expect(&app, 200, "PATCH", &item, &w.admin, Some(json!({"sort_order": 3}))).await;
        expect(&app, 403, "DELETE", &item, &w.support, None).await;
        expect(&app, 204, "DELETE", &item, &w.admin, None).await;
        app.stop().await;
    }

    async fn payment_preferences_are_the_callers_own(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let w = world(&app).await;

        // Providers: their payout preferences, created then replaced.
        let path = "/providers/me/payment-preferences";
        expect(&app, 403, "GET", path, &w.client, None).await;
        expect(&app, 404, "GET", path, &w.provider, None).await;
        expect(&app, 403, "PUT", path, &w.client, Some(json!({"payout_method": "pix", "pix_key": "a@b.co"}))).await;
        expect(&app, 422, "PUT", path, &w.provider, Some(json!({"payout_method": "pix"}))).await;
        let row = expect(&app, 201, "PUT", path, &w.provider, Some(json!({"payout_method": "pix", "pix_key": "a@b.co", "account_holder_name": "Ana", "minimum_payout_cents": 5000}))).await;
        assert_eq!(row["provider_id"], w.provider.id.to_string());
        let row = expect(&app, 200, "PUT", path, &w.provider, Some(json!({"payout_method": "pix", "pix_key": "other@b.co"}))).await;
        assert_eq!((row["pix_key"].clone(), row["account_holder_name"].clone(), row["minimum_payout_cents"].clone()), (json!("other@b.co"), Value::Null, json!(5000)));
        let row = expect(&app, 200, "GET", path, &w.provider, None).await;
        assert_eq!(row["pix_key"], "other@b.co");
        expect(&app, 404, "GET", path, &w.other_provider, None).await;

        // Clients: their payment preferences.
        let path = "/clients/me/payment-preferences";
        expect(&app, 403, "GET", path, &w.provider, None).await;
        expect(&app, 403, "PUT", path, &w.provider, Some(json!({"preferred_method": "pix"}))).await;
        expect(&app, 404, "GET", path, &w.client, None).await;
        expect(&app, 404, "PUT", path, &w.client, Some(json!({"default_payment_method_id": Uuid::now_v7()}))).await;
        let row = expect(&app, 201, "PUT", path, &w.client, Some(json!({"preferred_method": "pix", "send_receipts": false}))).await;
        assert_eq!(row["client_id"], w.client.id.to_string());
        let row = expect(&app, 200, "PUT", path, &w.client, Some(json!({"save_payment_methods": true}))).await;
        assert_eq!((row["preferred_method"].clone(), row["send_receipts"].clone()), (Value::Null, json!(false)));
        expect(&app, 200, "GET", path, &w.client, None).await;
        expect(&app, 404, "GET", path, &w.other_client, None).await;
        expect(&app, 404, "GET", path, &w.foreign_client, None).await;
        app.stop().await;
    }

    async fn coupon_validation(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let w = world(&app).await;
        let niche = expect(&app, 201, "POST", "/niches", &w.admin, Some(json!({"name": "Beauty", "slug": "beauty"}))).await;
        let category = expect(&app, 201, "POST", "/categories", &w.admin, Some(json!({"name": "Hair", "slug": "hair", "niche_id": id_of(&niche)}))).await;
        let cut = expect(&app, 201, "POST", "/services", &w.provider, Some(json!({"name": "Cut", "duration_minutes": 60, "price_cents": 5000, "category_id": id_of(&category)}))).await;
        let loose = expect(&app, 201, "POST", "/services", &w.other_provider, Some(json!({"name": "Loose", "duration_minutes": 30, "price_cents": 1000}))).await;
        let (cut, loose) = (id_of(&cut), id_of(&loose));
        let promotions = [
            json!({"code": "TEN", "name": "10%", "discount_type": "percentage", "discount_value": 1000, "valid_from": since(-2)}),
            json!({"code": "OLD", "name": "Old", "discount_type": "fixed", "discount_value": 100, "valid_from": since(-10), "valid_until": since(-1)}),
            json!({"code": "SOON", "name": "Soon", "discount_type": "fixed", "discount_value": 100, "valid_from": since(1)}),
            json!({"code": "CUT", "name": "Cut", "discount_type": "percentage", "discount_value": 2500, "valid_from": since(-1), "scope": "service", "service_id": cut}),
            json!({"code": "ANA", "name": "Ana", "discount_type": "fixed", "discount_value": 700, "valid_from": since(-1), "scope": "provider", "provider_id": w.provider.id}),
            json!({"code": "HAIR", "name": "Hair", "discount_type": "fixed", "discount_value": 300, "valid_from": since(-1), "scope": "category", "category_id": id_of(&category)}),
            json!({"code": "BEAUTY", "name": "Beauty", "discount_type": "fixed", "discount_value": 200, "valid_from": since(-1), "scope": "niche", "niche_id": id_of(&niche)}),
            json!({"code": "BIG", "name": "Big", "discount_type": "fixed", "discount_value": 1000, "valid_from": since(-1), "min_order_cents": 5000}),
            json!({"code": "ONCE", "name": "Once", "discount_type": "fixed", "discount_value": 100, "valid_from": since(-1), "max_redemptions": 1}),
            json!({"code": "FIX", "name": "Fixed", "discount_type": "fixed", "discount_value": 3000, "valid_from": since(-1)}),
            json!({"code": "OFF", "name": "Off", "discount_type": "fixed", "discount_value": 100, "valid_from": since(-1), "is_active": false}),
        ];
        let mut once = String::new();
        for p in promotions {
            let row = expect(&app, 201, "POST", "/promotions", &w.admin, Some(p.clone())).await;
            if p["code"] == "ONCE" {
                once = id_of(&row);
            }
        }
        // One redemption used up the only one.
        let used = Repo::<promotion::Entity>::get(app.t.conn(), w.acme, once.parse().unwrap()).await.unwrap();
        let mut used = used.into_active_model();
        used.redemptions_count = Set(1);
        used.update(app.t.conn()).await.unwrap();

        let check = |code: &str, amount: i64, extra: Value| {
            let mut body = json!({"code": code, "amount_cents": amount});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            body
        };
        let cases = [
            (check("TEN", 1_005, json!({})), json!({"valid": true, "discount_cents": 101})),
            (check("ten", 1_004, json!({})), json!({"valid": true, "discount_cents": 100})),
            (check("OLD", 1_000, json!({})), json!({"valid": false, "discount_cents": 0, "reason": "expired"})),
            (check("SOON", 1_000, json!({})), json!({"valid": false, "discount_cents": 0, "reason": "not_started"})),
            (check("CUT", 5_002, json!({"service_id": cut})), json!({"valid": true, "discount_cents": 1251})),
            (check("CUT", 5_000, json!({"service_id": loose})), json!({"valid": false, "discount_cents": 0, "reason": "out_of_scope"})),
            (check("CUT", 5_000, json!({})), json!({"valid": false, "discount_cents": 0, "reason": "out_of_scope"})),
            (check("ANA", 5_000, json!({"provider_id": w.provider.id})), json!({"valid": true, "discount_cents": 700})),
            (check("ANA", 5_000, json!({"service_id": cut})), json!({"valid": true, "discount_cents": 700})),
            (check("ANA", 5_000, json!({"provider_id": w.other_provider.id})), json!({"valid": false, "discount_cents": 0, "reason": "out_of_scope"})),
            (check("HAIR", 5_000, json!({"service_id": cut})), json!({"valid": true, "discount_cents": 300})),
            (check("HAIR", 5_000, json!({"service_id": loose})), json!({"valid": false, "discount_cents": 0, "reason": "out_of_scope"})),
            (check("BEAUTY", 5_000, json!({"service_id": cut})), json!({"valid": true, "discount_cents": 200})),
            (check("BEAUTY", 5_000, json!({"service_id": loose})), json!({"valid": false, "discount_cents": 0, "reason": "out_of_scope"})),
            (check("BIG", 4_999, json!({})), json!({"valid": false, "discount_cents": 0, "reason": "below_minimum"})),
            (check("BIG", 5_000, json!({})), json!({"valid": true, "discount_cents": 1000})),
            (check("ONCE", 5_000, json!({})), json!({"valid": false, "discount_cents": 0, "reason": "exhausted"})),
            (check("FIX", 2_000, json!({})), json!({"valid": true, "discount_cents": 2000})),
            (check("FIX", 5_000, json!({})), json!({"valid": true, "discount_cents": 3000})),
            (check("OFF", 5_000, json!({})), json!({"valid": false, "discount_cents": 0, "reason": "inactive"})),
            (check("NOPE", 5_000, json!({})), json!({"valid": false, "discount_cents": 0, "reason": "not_found"})),
        ];
        for (body, want) in cases {
            let got = expect(&app, 200, "POST", "/promotions/validate", &w.client, Some(body.clone())).await;
            assert_eq!(got, want, "{body}");
        }
        // Another organization's codes and services do not exist.
        let got = expect(&app, 200, "POST", "/promotions/validate", &w.foreign_client, Some(check("TEN", 1_000, json!({})))).await;
        assert_eq!(got["reason"], "not_found");
        expect(&app, 404, "POST", "/promotions/validate", &w.foreign_client, Some(check("TEN", 1_000, json!({"service_id": cut})))).await;
        expect(&app, 404, "POST", "/promotions/validate", &w.client, Some(check("TEN", 1_000, json!({"provider_id": w.client.id})))).await;
        expect(&app, 422, "POST", "/promotions/validate", &w.client, Some(check("TEN", -1, json!({})))).await;
        app.stop().await;
    }

    async fn onboarding_progress_flow(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let w = world(&app).await;
        let mut ids = Vec::new();
        for step in [
            json!({"key": "payment", "title": "Add a card", "role": "client", "sort_order": 2}),
            json!({"key": "profile", "title": "Your profile", "role": "client", "sort_order": 1, "is_required": true}),
            json!({"key": "hours", "title": "Your hours", "role": "provider"}),
            json!({"key": "retired", "title": "Old step", "role": "client", "is_active": false}),
        ] {
            ids.push(id_of(&expect(&app, 201, "POST", "/onboarding/steps", &w.admin, Some(step)).await));
        }
        let (payment, profile, hours, retired) = (&ids[0], &ids[1], &ids[2], &ids[3]);

        let list = expect(&app, 200, "GET", "/onboarding/progress", &w.client, None).await;
        let keys: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["profile", "payment"], "active client steps in order: {list}");
        assert!(list.as_array().unwrap().iter().all(|s| s["status"] == "pending" && s["completed_at"].is_null()));

        let row = expect(&app, 201, "POST", &format!("/onboarding/progress/{profile}"), &w.client, Some(json!({"status": "completed"}))).await;
        assert_eq!(row["user_id"], w.client.id.to_string());
        let first = row["completed_at"].as_str().expect("completed_at is set").to_owned();
        let row = expect(&app, 200, "POST", &format!("/onboarding/progress/{profile}"), &w.client, Some(json!({"status": "completed"}))).await;
        assert_eq!(row["completed_at"], first.as_str(), "completing twice keeps the first instant");
        expect(&app, 201, "POST", &format!("/onboarding/progress/{payment}"), &w.client, Some(json!({"status": "skipped"}))).await;
        let list = expect(&app, 200, "GET", "/onboarding/progress", &w.client, None).await;
        assert_eq!((list[0]["status"].clone(), list[0]["completed_at"].clone()), (json!("completed"), json!(first)));
        assert_eq!((list[1]["status"].clone(), list[1]["completed_at"].clone()), (json!("skipped"), Value::Null));
        let row = expect(&app, 200, "POST", &format!("/onboarding/progress/{profile}"), &w.client, Some(json!({"status": "pending"}))).await;
        assert_eq!(row["completed_at"], Value::Null, "reopened: completed_at cleared");

        // Other users see only their own progress; steps of another role or tenant, or
        // inactive ones, are not found.
        let list = expect(&app, 200, "GET", "/onboarding/progress", &w.other_client, None).await;
        assert!(list.as_array().unwrap().iter().all(|s| s["status"] == "pending"), "{list}");
        let list = expect(&app, 200, "GET", "/onboarding/progress", &w.provider, None).await;
        assert_eq!(list.as_array().unwrap().len(), 1);
        expect(&app, 404, "POST", &format!("/onboarding/progress/{profile}"), &w.provider, Some(json!({"status": "completed"}))).await;
        expect(&app, 201, "POST", &format!("/onboarding/progress/{hours}"), &w.provider, Some(json!({"status": "completed"}))).await;
        expect(&app, 404, "POST", &format!("/onboarding/progress/{retired}"), &w.client, Some(json!({"status": "completed"}))).await;
        expect(&app, 404, "POST", &format!("/onboarding/progress/{profile}"), &w.foreign_client, Some(json!({"status": "completed"}))).await;
        let list = expect(&app, 200, "GET", "/onboarding/progress", &w.foreign_client, None).await;
        assert_eq!(list, json!([]));
        let body = expect(&app, 422, "POST", &format!("/onboarding/progress/{profile}"), &w.client, Some(json!({"status": "done"}))).await;
        assert_eq!(code(&body), "validation_failed");
        expect(&app, 400, "POST", "/onboarding/progress/not-a-uuid", &w.client, Some(json!({"status": "completed"}))).await;
        let (status, _) = read(app.client.get(app.url("/api/v1/onboarding/progress")).send().await.unwrap()).await;
        assert_eq!(status, 401);
        app.stop().await;
    }
}
