// Shared schema facts for the parser tests.
import type { RewriteContext, SchemaFacts } from '../../parser/types.js'

export function goldenFacts(): SchemaFacts {
  const tenantTables = new Map([
    ['public.ads', 'company_id'],
    ['public.campaigns', 'company_id'],
    ['public.companies', 'id'],
    ['public.clicks', 'company_id'],
    ['app.Orders', 'tenant_id'],
    ['app.items', 'tenant_id'],
    ['public.ads_view', 'company_id'],
  ])
  const referenceTables = new Set(['public.countries'])
  const knownRelations = new Set([
    ...tenantTables.keys(),
    ...referenceTables,
    'public.audit',
    'public.plain_view',
    'pg_catalog.pg_class',
    'pg_catalog.pg_namespace',
    'information_schema.tables',
  ])
  return {
    tenantTables,
    referenceTables,
    knownRelations,
    unknown: 'reject',
    tenantColumnTypes: new Map([
      ['public.ads', 'integer'],
      ['public.campaigns', 'integer'],
      ['public.companies', 'integer'],
      ['public.clicks', 'integer'],
      ['app.Orders', 'text'],
      ['app.items', 'uuid'],
    ]),
    columns: new Map([
      ['public.ads', ['id', 'company_id', 'campaign_id', 'title']],
      ['public.campaigns', ['id', 'company_id', 'name']],
    ]),
  }
}

const FACTS = goldenFacts()

/** A context over one shared facts object (the cache keys on the facts object's identity). */
export function goldenCtx(over: Partial<RewriteContext> = {}): RewriteContext {
  return { mode: 'tenant', tenant: 'acme', setting: 'app.tenant', searchPath: ['public', 'app'], facts: FACTS, ...over }
}
