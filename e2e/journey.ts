// The booking journey through a client generated from the served OpenAPI document:
// `schema.ts` is written next to this file by openapi-typescript, and tsc checks
// every call below against it before anything runs. Prints a JSON summary.
// Usage (after compiling): node journey.js <base url>
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";

// Node's global, declared here rather than pulling in @types/node.
declare const process: { argv: string[] };

const baseUrl = process.argv[2];
const run = Date.now().toString(36);
const password = "correct horse battery";

function must<T>(what: string, result: { data?: T; error?: unknown; response: Response }): T {
  if (result.data === undefined) {
    throw new Error(`${what}: ${result.response.status} ${JSON.stringify(result.error)}`);
  }
  return result.data;
}

const anonymous = createClient<paths>({ baseUrl });

// Sign-up: an organization with its first admin (signed in at once), then a client
// and a provider in it.
const slug = `journey-${run}`;
const signedUp = must(
  "sign up",
  await anonymous.POST("/api/v1/organizations", {
    body: {
      organization: { slug, name: "Journey Clinic", time_zone: "UTC", currency: "BRL" },
      admin: { email: `owner-${run}@example.com`, full_name: "Journey Owner", password },
    },
  }),
);
const organization = signedUp.organization;
if (signedUp.session === null || signedUp.session === undefined) {
  throw new Error("sign-up with a password answers a session");
}
const admin = createClient<paths>({
  baseUrl,
  headers: { Authorization: `Bearer ${signedUp.session.token}` },
});
must("the admin's own organization", await admin.GET("/api/v1/organizations/{id}", {
  params: { path: { id: organization.id } },
}));
async function signUp(role: "client" | "provider", email: string) {
  must(
    `register ${role}`,
    await anonymous.POST("/api/v1/auth/register", {
      body: { organization: slug, email, password, full_name: `A ${role}`, role },
    }),
  );
  const session = must(
    `login ${role}`,
    await anonymous.POST("/api/v1/auth/login", {
      body: { organization: slug, email, password },
    }),
  );
  return {
    id: session.user.id,
    api: createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${session.token}` } }),
  };
}
const client = await signUp("client", `client-${run}@example.com`);
const provider = await signUp("provider", `provider-${run}@example.com`);

// Provider set-up: settings, hours every day, a service.
must(
  "provider settings",
  await provider.api.PUT("/api/v1/providers/me/settings", {
    // PUT replaces the settings: every field is sent (null clears a nullable one).
    body: {
      business_name: "Journey Hair",
      bio: null,
      phone: null,
      time_zone: null,
      city: null,
      state: null,
      country: null,
      latitude: null,
      longitude: null,
      accepted_payment_methods: [],
      default_duration_minutes: 60,
      buffer_minutes: 0,
      slot_step_minutes: 15,
      min_lead_minutes: 0,
      max_horizon_days: 60,
      auto_confirm: false,
      is_accepting_bookings: true,
    },
  }),
);
for (let weekday = 1; weekday <= 7; weekday++) {
  must(
    `hours on day ${weekday}`,
    await provider.api.POST("/api/v1/availability", {
      body: { kind: "weekly", weekday, start_time: "00:00", end_time: "23:59" },
    }),
  );
}
const service = must(
  "service",
  await provider.api.POST("/api/v1/services", {
    body: { name: "Haircut", duration_minutes: 60, price_cents: 5000 },
  }),
);

// Slots, as the client, over the next days (local dates).
const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
const slots = must(
  "slots",
  await client.api.GET("/api/v1/providers/{provider_id}/slots", {
    params: {
      path: { provider_id: provider.id },
      query: { service_id: service.id, from: day(1), to: day(3) },
    },
  }),
);
if (slots.length === 0) throw new Error("no free slot");

// Book, confirm, start, pay, complete, review.
const booked = must(
  "book",
  await client.api.POST("/api/v1/appointments", {
    params: { header: { "Idempotency-Key": `journey-${run}` } },
    body: { service_id: service.id, start_at: slots[0].start, notes: "first visit" },
  }),
);
const path = { params: { path: { id: booked.id } } };
const confirmed = must("confirm", await provider.api.POST("/api/v1/appointments/{id}/confirm", path));
const started = must("start", await provider.api.POST("/api/v1/appointments/{id}/start", path));
const paid = must(
  "pay",
  await provider.api.POST("/api/v1/appointments/{id}/payment", { ...path, body: { method: "pix" } }),
);
const completed = must("complete", await provider.api.POST("/api/v1/appointments/{id}/complete", path));
const review = must(
  "review",
  await client.api.POST("/api/v1/reviews", {
    body: { appointment_id: booked.id, rating: 5, comment: "Great" },
  }),
);

console.log(
  JSON.stringify({
    organization_id: organization.id,
    appointment_id: booked.id,
    statuses: [booked.status, confirmed.status, started.status, paid.payment_status, completed.status],
    price_cents: completed.price_cents,
    review_id: review.id,
    rating: review.rating,
  }),
);
