// The Express peer of agenda-bench: the two read routes of scenarios (a) and (b).
//
// Express 5 + Drizzle ORM + node-postgres. It answers like Agenda: the same URLs,
// query parameters, JSON shape, 401/403/404 and error body, against the same
// database, as the same least-privilege role, so row-level security applies as it
// does to Agenda.
//
// Every request is one transaction (`db.transaction`):
//   1. BEGIN
//   2. SELECT set_config('app.tenant', coalesce(agenda_session_tenant(digest)::text, ''), true)
//      -- the SECURITY DEFINER function of migration 11 finds the token's
//      organization; without a tenant, row-level security hides every session row.
//   3. the session joined to its (active) user and organization, by token digest;
//   4. the appointment (a) or the page of appointments (b), in that tenant;
//   5. COMMIT (ROLLBACK when the request fails).
//
// Configuration: DATABASE_URL (postgresql://...), DB_POOL_SIZE (default 8), PORT,
// HOST (default 127.0.0.1).
import { createHash } from 'node:crypto';

import { and, asc, eq, gt, gte, isNull, lt, or, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import express from 'express';
import pg from 'pg';

import { appointmentView, appointments, organizations, users, userSessions } from './schema.js';

const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.DB_POOL_SIZE ?? 8),
});
const db = drizzle({ client: pool });

class ApiError extends Error {
  constructor(status, code, message, fields = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

const unauthorized = () =>
  new ApiError(401, 'unauthorized', 'sign in first: send Authorization: Bearer <token>');
const invalid = (field, message) =>
  new ApiError(422, 'validation_failed', `${field}: ${message}`, [{ field, message }]);

const TOKEN = /^[0-9a-fA-F]{64}$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const STATUSES = new Set(['pending', 'confirmed', 'in_progress', 'completed', 'canceled', 'no_show']);

function bearerDigest(req) {
  const header = req.get('authorization');
  if (!header?.startsWith('Bearer ')) throw unauthorized();
  const token = header.slice('Bearer '.length).trim();
  if (!TOKEN.test(token)) throw unauthorized();
  return createHash('sha256').update(token).digest('hex');
}

// Runs `work(tx, user)` in one transaction that has entered the token's organization.
async function asSignedIn(req, work) {
  const digest = bearerDigest(req);
  return db.transaction(async (tx) => {
    await tx.execute(
      sql`select set_config('app.tenant', coalesce(agenda_session_tenant(${digest})::text, ''), true)`,
    );
    const [found] = await tx
      .select({ session: userSessions, user: users, organization: organizations })
      .from(userSessions)
      .innerJoin(
        users,
        and(eq(users.id, userSessions.user_id), eq(users.organization_id, userSessions.organization_id)),
      )
      .innerJoin(organizations, eq(organizations.id, userSessions.organization_id))
      .where(
        and(
          eq(userSessions.token_hash, digest),
          isNull(userSessions.revoked_at),
          gt(userSessions.expires_at, sql`now()`),
          eq(users.is_active, true),
        ),
      )
      .limit(1);
    if (!found) throw unauthorized();
    if (found.organization.status === 'suspended') {
      throw new ApiError(
        403,
        'organization_suspended',
        "this organization is suspended; contact the platform's operator",
      );
    }
    return work(tx, found.user);
  });
}

const isStaff = (user) => user.role === 'admin' || user.role === 'support';

function uuidParam(value, field) {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !UUID.test(value)) throw invalid(field, 'is not a UUID');
  return value.toLowerCase();
}

function instantParam(value, field) {
  if (value === undefined) return undefined;
  const at = typeof value === 'string' ? new Date(value) : new Date(Number.NaN);
  if (Number.isNaN(at.getTime())) throw invalid(field, 'is not an RFC 3339 instant');
  return at;
}

function parseCursor(cursor) {
  const slash = typeof cursor === 'string' ? cursor.lastIndexOf('/') : -1;
  const at = new Date(slash > 0 ? cursor.slice(0, slash) : Number.NaN);
  const id = slash > 0 ? cursor.slice(slash + 1) : '';
  if (Number.isNaN(at.getTime()) || !UUID.test(id)) {
    throw invalid('after', 'is not a cursor this list returned');
  }
  return { at, id };
}

const app = express();
app.disable('x-powered-by');
app.disable('etag');

app.get('/health/ready', (_req, res) => res.json({ status: 'ok' }));

app.get('/api/v1/appointments/:id', async (req, res) => {
  const id = uuidParam(req.params.id, 'id');
  const appointment = await asSignedIn(req, async (tx, user) => {
    const [row] = await tx
      .select({ ...appointmentView })
      .from(appointments)
      .where(and(eq(appointments.id, id), eq(appointments.organization_id, user.organization_id)));
    const mine = row && (row.client_id === user.id || row.provider_id === user.id);
    return mine || (row && isStaff(user)) ? row : null;
  });
  if (!appointment) throw new ApiError(404, 'not_found', 'appointment not found');
  res.json(appointment);
});

app.get('/api/v1/appointments', async (req, res) => {
  const q = req.query;
  let providerId = uuidParam(q.provider_id, 'provider_id');
  let clientId = uuidParam(q.client_id, 'client_id');
  if (q.status !== undefined && !STATUSES.has(q.status)) throw invalid('status', 'is not a status');
  const from = instantParam(q.from, 'from');
  const to = instantParam(q.to, 'to');
  const limit = q.limit === undefined ? 20 : Number(q.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw invalid('limit', 'must be 1 to 100');
  const after = q.after === undefined ? undefined : parseCursor(q.after);

  const page = await asSignedIn(req, async (tx, user) => {
    if (user.role === 'client') clientId = user.id;
    if (user.role === 'provider') providerId = user.id;
    const where = [eq(appointments.organization_id, user.organization_id)];
    if (providerId) where.push(eq(appointments.provider_id, providerId));
    if (clientId) where.push(eq(appointments.client_id, clientId));
    if (q.status !== undefined) where.push(eq(appointments.status, q.status));
    if (from) where.push(gte(appointments.start_at, from));
    if (to) where.push(lt(appointments.start_at, to));
    if (after) {
      where.push(
        or(
          gt(appointments.start_at, after.at),
          and(eq(appointments.start_at, after.at), gt(appointments.id, after.id)),
        ),
      );
    }
    return tx
      .select({ ...appointmentView })
      .from(appointments)
      .where(and(...where))
      .orderBy(asc(appointments.start_at), asc(appointments.id))
      .limit(limit + 1);
  });
  let next = null;
  if (page.length > limit) {
    page.length = limit;
    const last = page[limit - 1];
    next = `${last.start_at.toISOString()}/${last.id}`;
  }
  res.json({ items: page, next });
});

app.use((err, _req, res, _next) => {
  if (err instanceof ApiError) {
    res.status(err.status).json({ error: { code: err.code, message: err.message, fields: err.fields } });
    return;
  }
  console.error(err);
  res.status(503).set('Retry-After', '1').json({
    error: { code: 'unavailable', message: 'the database is unavailable; retry shortly', fields: null },
  });
});

const port = Number(process.env.PORT ?? 3000);
app.listen(port, process.env.HOST ?? '127.0.0.1', () => {
  console.log(`express peer listening on ${port}`);
});
