// The oracle's tenants and the SchemaFacts the rewriter gets for test/oracle/schema.sql,
// written by hand from the schema (routing/ has no schema discovery yet).
import type { SchemaFacts } from '../../parser/types.js'
import type { TenantConfig } from '../../server/config-types.js'

/** The tenants in the seed; one has a hostile name (a quote) on purpose. */
export const TENANTS = ['acme', 'globex', 'initech', "o'hare"] as const
export type TenantName = (typeof TENANTS)[number]

/** Database holding only this tenant's rows (+ reference tables). */
export function onlyDb(tenant: string): string {
  return 'only_' + tenant.replace(/[^a-z0-9]/g, '')
}
export const ALL_DB = 'all_tenants'
export const TEMPLATE_DB = 'oracle_template'

/** "schema.table" → tenant column. accounts uses `org` (explicit config), billing.payments is outside the search_path. */
export const TENANT_TABLES: ReadonlyMap<string, string> = new Map([
  ['public.companies', 'tenant_id'],
  ['public.users', 'tenant_id'],
  ['public.projects', 'tenant_id'],
  ['public.tasks', 'tenant_id'],
  ['public.comments', 'tenant_id'],
  ['public.invoices', 'tenant_id'],
  ['public.invoice_lines', 'tenant_id'],
  ['public.tags', 'tenant_id'],
  ['public.events', 'tenant_id'],
  ['public.categories', 'tenant_id'],
  ['public.accounts', 'org'],
  ['billing.payments', 'tenant_id'],
  ['public.api_keys', 'tenant_id'],
])

/** Views with a tenant column: tenant relations for the rewriter, but not tables (no defaults to drop, no rows to delete). */
export const TENANT_VIEWS: ReadonlyMap<string, string> = new Map([['public.open_tasks', 'tenant_id']])
/** Known relations in no set (a cross-tenant view): refused under unknown: reject. */
export const UNCLASSIFIED_RELATIONS: ReadonlySet<string> = new Set(['public.task_stats'])

export const REFERENCE_TABLES: ReadonlySet<string> = new Set(['public.countries', 'public.currencies', 'public.plans'])

export function oracleFacts(unknown: 'reject' | 'allow' = 'reject'): SchemaFacts {
  return {
    tenantTables: new Map([...TENANT_TABLES, ...TENANT_VIEWS]),
    referenceTables: REFERENCE_TABLES,
    knownRelations: new Set([...TENANT_TABLES.keys(), ...TENANT_VIEWS.keys(), ...REFERENCE_TABLES, ...UNCLASSIFIED_RELATIONS]),
    unknown,
  }
}

/** Result column names that carry a tenant (tenant_id, org, "Task_tenant_id", c0_tenant …), used to spot leaked rows. */
export function isTenantColumn(name: string): boolean {
  return /(^|_)tenant(_id)?$/i.test(name) || name === 'org' || /(^|\.)tenant_id$/.test(name)
}

/**
 * The `tenant:` section of a pgtenant config equivalent to oracleFacts(), for running the
 * corpus through the proxy (backend database: all_tenants). The tenant pattern must admit
 * the hostile tenant name o'hare.
 */
export const ORACLE_TENANT_YAML = `tenant:
  setting: app.tenant
  column: tenant_id
  tables: { accounts: org }
  reference: [countries, currencies, plans]
  unknown: reject
  pattern: "^[a-z' ]{1,40}$"
  functions: [oracle_reset, oracle_snapshot, oracle_rows]
`

/** The same configuration as a TenantConfig, for routing/schema-facts.ts buildSchemaFacts (discovery). */
export const ORACLE_TENANT_CONFIG: TenantConfig = {
  setting: 'app.tenant',
  column: 'tenant_id',
  tables: { accounts: 'org' },
  reference: ['countries', 'currencies', 'plans'],
  unknown: 'reject',
  pattern: "^[a-z' ]{1,40}$",
  functions: ['oracle_reset', 'oracle_snapshot', 'oracle_rows'],
}
