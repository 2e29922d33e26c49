//! Every table served by the generic repository, on both engines: a row created in
//! one organization can be read, listed and deleted there, and is "not found" for
//! every operation from another organization.

use std::fmt::Debug;

use agenda_entity::enums::{AppointmentStatus, PaymentStatus};
use agenda_entity::rules::Rules;
use agenda_entity::*;
use agenda_storage::repo::resource::{ListQuery, Repo, Resource};
use agenda_storage::{StorageError, TenantScope};
use agenda_testkit::{TestDb, both_engines};
use chrono::{Duration, Utc};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, IntoActiveModel, ModelTrait, Set, TryIntoModel, Value,
};
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;

use crate::connection::{create_user, seed_org};

async fn isolated<E>(
    t: &TestDb,
    mine: TenantScope,
    theirs: TenantScope,
    input: serde_json::Value,
    adjust: impl FnOnce(&mut E::ActiveModel) + Send,
) where
    E: Resource,
    E::Model: Rules + IntoActiveModel<E::ActiveModel> + Send + Sync + PartialEq + Debug,
    E::ActiveModel: ActiveModelBehavior + TryIntoModel<E::Model> + Send,
    E::Create: DeserializeOwned,
    E::Update: DeserializeOwned,
{
    let table = E::default().table_name();
    let conn = t.conn();
    let parsed: E::Create =
        serde_json::from_value(input).unwrap_or_else(|e| panic!("{table} input: {e}"));
    let created = Repo::<E>::create(conn, mine, parsed, adjust)
        .await
        .unwrap_or_else(|e| panic!("{table}: create: {e:?}"));
    let Value::Uuid(Some(id)) = created.get(E::id_column()) else {
        panic!("{table}: no id")
    };
    assert_eq!(
        Repo::<E>::get(conn, mine, id).await.unwrap(),
        created,
        "{table}"
    );
    let listed = Repo::<E>::list(conn, mine, &ListQuery::default())
        .await
        .unwrap();
    assert!(
        listed.items.contains(&created),
        "{table}: listed in its organization"
    );

    let not_found = |r: Result<(), StorageError>| matches!(r, Err(StorageError::NotFound { .. }));
    assert!(
        not_found(Repo::<E>::get(conn, theirs, id).await.map(|_| ())),
        "{table}: get"
    );
    let empty: E::Update = serde_json::from_value(json!({})).unwrap();
    assert!(
        not_found(Repo::<E>::update(conn, theirs, id, empty).await.map(|_| ())),
        "{table}: update"
    );
    assert!(
        not_found(Repo::<E>::delete(conn, theirs, id).await),
        "{table}: delete"
    );
    assert_eq!(
        Repo::<E>::count(conn, theirs, &[]).await.unwrap(),
        0,
        "{table}: count elsewhere"
    );
    assert!(
        Repo::<E>::list(conn, theirs, &ListQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    Repo::<E>::delete(conn, mine, id)
        .await
        .unwrap_or_else(|e| panic!("{table}: delete: {e:?}"));
    assert!(
        not_found(Repo::<E>::get(conn, mine, id).await.map(|_| ())),
        "{table}: deleted"
    );
}

both_engines! {
    async fn every_generic_repository_is_tenant_isolated(t: TestDb) {
        let mine = TenantScope::new(seed_org(&t.db).await);
        let theirs = TenantScope::new(seed_org(&t.db).await);
        let conn = t.conn();
        let provider = create_user(conn, mine, "provider@example.com").await.unwrap().id;
        let client = create_user(conn, mine, "client@example.com").await.unwrap().id;
        let create = |v: serde_json::Value| v;
        let niche = Repo::<niche::Entity>::create(conn, mine, serde_json::from_value(json!({"name": "Beauty", "slug": "beauty"})).unwrap(), |_| {}).await.unwrap().id;
        let category = Repo::<category::Entity>::create(conn, mine, serde_json::from_value(json!({"niche_id": niche, "name": "Hair", "slug": "hair"})).unwrap(), |_| {}).await.unwrap().id;
        let template = Repo::<service_template::Entity>::create(conn, mine, serde_json::from_value(json!({"category_id": category, "name": "Cut", "default_duration_minutes": 30})).unwrap(), |_| {}).await.unwrap().id;
        let service = Repo::<service::Entity>::create(conn, mine, serde_json::from_value(json!({"name": "Cut", "duration_minutes": 30, "price_cents": 3000})).unwrap(), |r| r.provider_id = Set(provider)).await.unwrap().id;
        let step = Repo::<onboarding_step::Entity>::create(conn, mine, serde_json::from_value(json!({"key": "profile", "title": "Profile", "role": "client"})).unwrap(), |_| {}).await.unwrap().id;
        let ticket = Repo::<support_ticket::Entity>::create(conn, mine, serde_json::from_value(json!({"subject": "Help"})).unwrap(), |r| r.requester_id = Set(client)).await.unwrap().id;
        let start = Utc::now() + Duration::days(1);
        let appointment = appointment::ActiveModel {
            organization_id: Set(mine.organization_id()),
            client_id: Set(client),
            provider_id: Set(provider),
            service_id: Set(Some(service)),
            provider_service_id: Set(None),
            promotion_id: Set(None),
            address_id: Set(None),
            start_at: Set(start),
            end_at: Set(start + Duration::minutes(30)),
            occupied_until: Set(start + Duration::minutes(30)),
            status: Set(AppointmentStatus::Completed),
            price_cents: Set(3000),
            discount_cents: Set(0),
            currency: Set("BRL".into()),
            payment_method: Set(None),
            payment_status: Set(PaymentStatus::Unpaid),
            notes: Set(None),
            provider_notes: Set(None),
            cancellation_reason: Set(None),
            canceled_at: Set(None),
            canceled_by: Set(None),
            ..Default::default()
        }
        .insert(conn)
        .await
        .unwrap()
        .id;

        let p = move |id: Uuid| Set(id);
        isolated::<niche::Entity>(&t, mine, theirs, create(json!({"name": "Nails", "slug": "nails"})), |_| {}).await;
        isolated::<category::Entity>(&t, mine, theirs, json!({"niche_id": niche, "name": "Color", "slug": "color"}), |_| {}).await;
        isolated::<service_template::Entity>(&t, mine, theirs, json!({"category_id": category, "name": "Dye", "default_duration_minutes": 90}), |_| {}).await;
        isolated::<service::Entity>(&t, mine, theirs, json!({"name": "Shave", "duration_minutes": 20, "price_cents": 2000}), |r| r.provider_id = p(provider)).await;
        isolated::<provider_service::Entity>(&t, mine, theirs, json!({"template_id": template, "price_cents": 3500, "execution_minutes": 30}), |r| r.provider_id = p(provider)).await;
        isolated::<provider_settings::Entity>(&t, mine, theirs, json!({"business_name": "Studio", "accepted_payment_methods": ["pix", "card"]}), |r| r.provider_id = p(provider)).await;
        isolated::<provider_payment_preference::Entity>(&t, mine, theirs, json!({"payout_method": "pix", "pix_key": "p@example.com"}), |r| r.provider_id = p(provider)).await;
        isolated::<payment_settings::Entity>(&t, mine, theirs, json!({"fee_percentage_bp": 800}), |_| {}).await;
        isolated::<integration_setting::Entity>(&t, mine, theirs, json!({"integration": "stripe", "config": {}, "secret_ref": "env:STRIPE_KEY"}), |_| {}).await;
        isolated::<user_payment_method::Entity>(&t, mine, theirs, json!({"processor": "stripe", "processor_token": "tok_1", "last4": "4242"}), |r| r.user_id = p(client)).await;
        isolated::<client_payment_preference::Entity>(&t, mine, theirs, json!({"preferred_method": "pix"}), |r| r.client_id = p(client)).await;
        isolated::<promotion::Entity>(&t, mine, theirs, json!({"code": "WELCOME10", "name": "Welcome", "discount_type": "percentage", "discount_value": 1000, "valid_from": Utc::now()}), |_| {}).await;
        isolated::<provider_service_fee::Entity>(&t, mine, theirs, json!({"provider_id": provider, "fee_percentage_bp": 500}), |_| {}).await;
        isolated::<availability::Entity>(&t, mine, theirs, json!({"kind": "weekly", "weekday": 1, "start_time": "09:00", "end_time": "18:00"}), |r| r.provider_id = p(provider)).await;
        isolated::<provider_break::Entity>(&t, mine, theirs, json!({"kind": "weekly", "weekday": 1, "start_time": "12:00", "end_time": "13:00"}), |r| r.provider_id = p(provider)).await;
        isolated::<blocked_time_slot::Entity>(&t, mine, theirs, json!({"kind": "one_off", "start_at": start, "end_at": start + Duration::hours(1)}), |r| r.provider_id = p(provider)).await;
        isolated::<review::Entity>(&t, mine, theirs, json!({"appointment_id": appointment, "rating": 5}), |r| { r.client_id = p(client); r.provider_id = p(provider); }).await;
        isolated::<staff_member::Entity>(&t, mine, theirs, json!({"display_name": "Ana", "color": "#aabbcc"}), |_| {}).await;
        isolated::<support_ticket::Entity>(&t, mine, theirs, json!({"subject": "Refund"}), |r| r.requester_id = p(client)).await;
        isolated::<support_message::Entity>(&t, mine, theirs, json!({"body": "Hello"}), |r| { r.ticket_id = p(ticket); r.author_id = Set(Some(client)); }).await;
        isolated::<onboarding_step::Entity>(&t, mine, theirs, json!({"key": "payment", "title": "Payment", "role": "provider"}), |_| {}).await;
        isolated::<user_onboarding_progress::Entity>(&t, mine, theirs, json!({"step_id": step}), |r| r.user_id = p(client)).await;
        isolated::<system_setting::Entity>(&t, mine, theirs, json!({"key": "booking.policy", "value": {"hours": 24}}), |_| {}).await;
        isolated::<user_address::Entity>(&t, mine, theirs, json!({"kind": "home", "street": "Rua A", "city": "Recife", "state": "PE", "postal_code": "50000-000", "country": "BR"}), |r| r.user_id = p(client)).await;
    }
}
