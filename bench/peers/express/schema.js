// The tables the Express peer reads, as Drizzle sees them. Property names are the
// column names, so that rows serialise to the same JSON keys as Agenda's.
import { getTableColumns } from 'drizzle-orm';
import { bigint, boolean, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

const instant = (name) => timestamp(name, { withTimezone: true, mode: 'date' });

export const organizations = pgTable('organizations', {
  id: uuid('id').primaryKey(),
  slug: text('slug').notNull(),
  name: text('name').notNull(),
  time_zone: text('time_zone').notNull(),
  currency: text('currency').notNull(),
  locale: text('locale').notNull(),
  status: text('status').notNull(),
  created_at: instant('created_at').notNull(),
  updated_at: instant('updated_at').notNull(),
});

export const users = pgTable('users', {
  id: uuid('id').primaryKey(),
  organization_id: uuid('organization_id').notNull(),
  email: text('email').notNull(),
  full_name: text('full_name').notNull(),
  role: text('role').notNull(),
  is_active: boolean('is_active').notNull(),
  is_verified: boolean('is_verified').notNull(),
  created_at: instant('created_at').notNull(),
  updated_at: instant('updated_at').notNull(),
});

export const userSessions = pgTable('user_sessions', {
  id: uuid('id').primaryKey(),
  organization_id: uuid('organization_id').notNull(),
  user_id: uuid('user_id').notNull(),
  token_hash: text('token_hash').notNull(),
  expires_at: instant('expires_at').notNull(),
  last_used_at: instant('last_used_at'),
  revoked_at: instant('revoked_at'),
  created_at: instant('created_at').notNull(),
  updated_at: instant('updated_at').notNull(),
});

export const appointments = pgTable('appointments', {
  id: uuid('id').primaryKey(),
  organization_id: uuid('organization_id').notNull(),
  client_id: uuid('client_id').notNull(),
  provider_id: uuid('provider_id').notNull(),
  service_id: uuid('service_id'),
  provider_service_id: uuid('provider_service_id'),
  start_at: instant('start_at').notNull(),
  end_at: instant('end_at').notNull(),
  occupied_until: instant('occupied_until').notNull(),
  status: text('status').notNull(),
  price_cents: bigint('price_cents', { mode: 'number' }).notNull(),
  discount_cents: bigint('discount_cents', { mode: 'number' }).notNull(),
  promotion_id: uuid('promotion_id'),
  currency: text('currency').notNull(),
  payment_method: text('payment_method'),
  payment_status: text('payment_status').notNull(),
  notes: text('notes'),
  cancellation_reason: text('cancellation_reason'),
  canceled_at: instant('canceled_at'),
  created_at: instant('created_at').notNull(),
  updated_at: instant('updated_at').notNull(),
});

// What the API shows of an appointment (Agenda's AppointmentView), in its order.
const { organization_id: _tenant, ...shown } = getTableColumns(appointments);
export const appointmentView = shown;
