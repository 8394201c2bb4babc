// Deterministic seed data for the oracle schema (test/oracle/schema.sql): reference rows
// plus every tenant's rows, ids overlapping across tenants (each tenant has company 1,
// task 1, …), NULLs in every nullable column, and two small tenants with empty tables.
import { TENANTS, type TenantName } from './facts.js'
import { mulberry32 } from '../helpers/rng.js'

/** Row counts per tenant; 0 = that tenant's table is empty. */
export const SIZES: Record<TenantName, Record<string, number>> = {
  acme: {
    companies: 5,
    users: 12,
    projects: 8,
    tasks: 40,
    comments: 60,
    invoices: 10,
    invoice_lines: 30,
    tags: 8,
    events: 50,
    categories: 15,
    accounts: 4,
    payments: 8,
    api_keys: 3,
  },
  globex: {
    companies: 4,
    users: 10,
    projects: 6,
    tasks: 30,
    comments: 45,
    invoices: 8,
    invoice_lines: 24,
    tags: 6,
    events: 40,
    categories: 10,
    accounts: 3,
    payments: 6,
    api_keys: 3,
  },
  initech: {
    companies: 2,
    users: 3,
    projects: 2,
    tasks: 5,
    comments: 0,
    invoices: 0,
    invoice_lines: 0,
    tags: 0,
    events: 0,
    categories: 4,
    accounts: 1,
    payments: 0,
    api_keys: 1,
  },
  "o'hare": {
    companies: 1,
    users: 2,
    projects: 1,
    tasks: 3,
    comments: 2,
    invoices: 1,
    invoice_lines: 2,
    tags: 2,
    events: 3,
    categories: 0,
    accounts: 0,
    payments: 1,
    api_keys: 1,
  },
}

const LABEL: Record<TenantName, string> = { acme: 'Acme', globex: 'Globex', initech: 'Initech', "o'hare": "O'Hare" }

export function lit(v: unknown): string {
  if (v === null || v === undefined) return 'NULL'
  if (typeof v === 'number' || typeof v === 'bigint') return String(v)
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  if (Array.isArray(v)) return `ARRAY[${v.map(lit).join(', ')}]::text[]`
  if (typeof v === 'object') return `${lit(JSON.stringify(v))}::jsonb`
  return `'${String(v).replace(/'/g, "''")}'`
}

function insert(table: string, cols: string[], rows: unknown[][]): string {
  if (rows.length === 0) return ''
  return `INSERT INTO ${table} (${cols.join(', ')}) VALUES\n${rows.map((r) => `  (${r.map(lit).join(', ')})`).join(',\n')};\n`
}

export const REFERENCE_SQL = `
INSERT INTO countries (code, name, region) VALUES
  ('US', 'United States', 'Americas'), ('CA', 'Canada', 'Americas'), ('DE', 'Germany', 'Europe'),
  ('FR', 'France', 'Europe'), ('IE', 'Ireland', 'Europe'), ('JP', 'Japan', 'Asia'), ('AQ', 'Antarctica', NULL);
INSERT INTO currencies (code, name, decimals) VALUES
  ('USD', 'US Dollar', 2), ('EUR', 'Euro', 2), ('JPY', 'Yen', 0), ('CAD', 'Canadian Dollar', 2);
INSERT INTO plans (id, name, monthly_cents, max_seats) VALUES
  (1, 'free', 0, 3), (2, 'team', 2900, 25), (3, 'business', 9900, 200), (4, 'enterprise', 49900, NULL);
`

const STATUSES = ['todo', 'doing', 'done']
const TAG_POOL = ['bug', 'feature', 'urgent', 'backend', 'frontend', 'ops', "won't fix", 'ux']
const ROLES = ['owner', 'admin', 'member', 'member', 'viewer']
const KINDS = ['login', 'logout', 'page_view', 'purchase', 'invite', 'export']
const COLORS = ['red', 'green', 'blue', null, 'orange']

function day(base: string, offset: number): string {
  const d = new Date(base + 'T00:00:00Z')
  d.setUTCDate(d.getUTCDate() + offset)
  return d.toISOString().slice(0, 10)
}

function ts(offsetMinutes: number): string {
  const d = new Date(Date.UTC(2025, 0, 1) + offsetMinutes * 60_000)
  return d.toISOString().replace('T', ' ').replace('.000Z', '+00')
}

export function tenantSeedSql(tenant: TenantName, seedNo: number): string {
  const n = SIZES[tenant]
  const L = LABEL[tenant]
  const rnd = mulberry32(seedNo * 7919 + 17)
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1))
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]
  const maybe = <T>(p: number, v: T): T | null => (rnd() < p ? null : v)
  const slug = tenant.replace(/[^a-z]/g, '')
  let out = ''

  out += insert(
    'companies',
    ['tenant_id', 'id', 'name', 'country_code', 'plan_id', 'employees', 'created_at'],
    Array.from({ length: n.companies }, (_, i) => [
      tenant,
      i + 1,
      `${L} Company ${i + 1}`,
      maybe(0.2, pick(['US', 'CA', 'DE', 'FR', 'IE', 'JP'])),
      int(1, 4),
      maybe(0.25, int(1, 500)),
      ts(int(0, 200000)),
    ]),
  )
  out += insert(
    'users',
    ['tenant_id', 'id', 'company_id', 'email', 'full_name', 'role', 'is_active', 'manager_id', 'last_login', 'created_at'],
    Array.from({ length: n.users }, (_, i) => [
      tenant,
      i + 1,
      int(1, n.companies),
      `user${i + 1}@${slug}.example`,
      maybe(0.15, `${L} User ${i + 1}`),
      i === 0 ? 'owner' : pick(ROLES),
      rnd() > 0.2,
      i === 0 ? null : maybe(0.3, int(1, i)),
      maybe(0.3, ts(int(200000, 400000))),
      ts(int(0, 200000)),
    ]),
  )
  out += insert(
    'projects',
    ['tenant_id', 'id', 'company_id', 'owner_id', 'name', 'status', 'budget', 'labels', 'started_on'],
    Array.from({ length: n.projects }, (_, i) => [
      tenant,
      i + 1,
      int(1, n.companies),
      maybe(0.2, int(1, n.users)),
      `${L} Project ${i + 1}`,
      pick(['active', 'active', 'archived', 'draft']),
      maybe(0.3, (int(1000, 900000) / 100).toFixed(2)),
      Array.from({ length: int(0, 3) }, () => pick(TAG_POOL)),
      maybe(0.2, day('2024-01-01', int(0, 500))),
    ]),
  )
  out += insert(
    'tasks',
    ['tenant_id', 'id', 'project_id', 'assignee_id', 'title', 'status', 'priority', 'due_on', 'estimate_hours', 'tags', 'is_done', 'created_at'],
    Array.from({ length: n.tasks }, (_, i) => {
      const status = pick(STATUSES)
      return [
        tenant,
        i + 1,
        int(1, n.projects),
        maybe(0.2, int(1, n.users)),
        `${L} task ${i + 1}: ${pick(['fix login', 'write docs', 'ship it', 'review PR', 'call client', 'refactor'])}`,
        status,
        int(1, 5),
        maybe(0.3, day('2025-01-01', int(0, 365))),
        maybe(0.25, (int(25, 4000) / 100).toFixed(2)),
        Array.from({ length: int(0, 3) }, () => pick(TAG_POOL)),
        status === 'done',
        ts(int(0, 500000)),
      ]
    }),
  )
  out += insert(
    'comments',
    ['tenant_id', 'id', 'task_id', 'author_id', 'body', 'created_at'],
    Array.from({ length: n.comments }, (_, i) => [
      tenant,
      i + 1,
      int(1, n.tasks),
      maybe(0.1, int(1, n.users)),
      `${L} comment ${i + 1}${rnd() < 0.2 ? ' — looks good' : ''}`,
      ts(int(0, 500000)),
    ]),
  )
  out += insert(
    'invoices',
    ['tenant_id', 'id', 'company_id', 'number', 'currency_code', 'status', 'issued_on', 'due_on', 'total_cents'],
    Array.from({ length: n.invoices }, (_, i) => {
      const issued = int(0, 400)
      return [
        tenant,
        i + 1,
        int(1, n.companies),
        `INV-${String(i + 1).padStart(4, '0')}`,
        pick(['USD', 'USD', 'EUR', 'JPY']),
        pick(['draft', 'sent', 'paid', 'paid', 'void']),
        day('2024-06-01', issued),
        maybe(0.2, day('2024-06-01', issued + 30)),
        int(0, 500000),
      ]
    }),
  )
  out += insert(
    'invoice_lines',
    ['tenant_id', 'id', 'invoice_id', 'description', 'quantity', 'unit_cents'],
    Array.from({ length: n.invoice_lines }, (_, i) => [
      tenant,
      i + 1,
      int(1, Math.max(1, n.invoices)),
      `${pick(['Seats', 'Support', 'Storage', 'Setup fee'])} (${L})`,
      int(1, 10),
      int(100, 20000),
    ]),
  )
  out += insert(
    'tags',
    ['tenant_id', 'id', 'name', 'color', 'aliases'],
    Array.from({ length: n.tags }, (_, i) => [
      tenant,
      i + 1,
      TAG_POOL[i % TAG_POOL.length],
      pick(COLORS),
      i % 3 === 0 ? [] : [TAG_POOL[(i + 3) % TAG_POOL.length].toUpperCase()],
    ]),
  )
  out += insert(
    'events',
    ['tenant_id', 'id', 'user_id', 'kind', 'payload', 'occurred_at'],
    Array.from({ length: n.events }, (_, i) => {
      const kind = pick(KINDS)
      const payload: Record<string, unknown> = { type: kind, tenant_label: L }
      if (rnd() < 0.7) payload.ip = `10.0.${int(0, 9)}.${int(1, 254)}`
      if (kind === 'purchase') payload.amount = int(1, 900)
      if (rnd() < 0.5) payload.meta = { level: int(1, 3), tags: [pick(TAG_POOL)] }
      return [tenant, i + 1, maybe(0.15, int(1, n.users)), kind, payload, ts(int(0, 600000))]
    }),
  )
  out += insert(
    'categories',
    ['tenant_id', 'id', 'parent_id', 'name', 'position'],
    Array.from({ length: n.categories }, (_, i) => [tenant, i + 1, i < 2 ? null : int(1, i), `${L} category ${i + 1}`, int(0, 9)]),
  )
  out += insert(
    'accounts',
    ['org', 'id', 'name', 'balance', 'currency_code'],
    Array.from({ length: n.accounts }, (_, i) => [
      tenant,
      i + 1,
      `${L} account ${i + 1}`,
      (int(-50000, 500000) / 100).toFixed(2),
      maybe(0.25, pick(['USD', 'EUR'])),
    ]),
  )
  out += insert(
    'billing.payments',
    ['tenant_id', 'id', 'invoice_id', 'amount_cents', 'method', 'paid_at'],
    Array.from({ length: n.payments }, (_, i) => [
      tenant,
      i + 1,
      int(1, Math.max(1, n.invoices)),
      int(100, 300000),
      maybe(0.3, pick(['card', 'wire', 'check'])),
      ts(int(300000, 600000)),
    ]),
  )
  out += insert(
    'api_keys',
    ['tenant_id', 'id', 'key', 'label'],
    Array.from({ length: n.api_keys }, (_, i) => [tenant, i + 1, `key-${slug}-${i + 1}`, maybe(0.3, `${L} key ${i + 1}`)]),
  )
  return out
}

export function seedSql(): string {
  return REFERENCE_SQL + TENANTS.map((t, i) => tenantSeedSql(t, i + 1)).join('')
}
