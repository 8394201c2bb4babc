// buildSchemaFacts: rows of SCHEMA_DISCOVERY_SQL (as node-postgres or as raw text arrays) → SchemaFacts.
import t from 'tap'
import { buildSchemaFacts, parseTextArray, schemaDiscoverySql, SCHEMA_DISCOVERY_SQL } from '../../routing/schema-facts.js'

t.test('schema facts', async (t) => {
  const config = {
    setting: 'app.tenant',
    column: 'tenant_id',
    tables: { companies: 'id', 'billing.invoices': 'org' },
    reference: ['countries', 'geo.cities'],
    unknown: 'reject' as const,
    pattern: '.*',
  }
  const rows = [
    {
      schema: 'public',
      name: 'ads',
      kind: 'r',
      tenant_column: 'tenant_id',
      tenant_type: 'uuid',
      columns: '{id,tenant_id,"Title, with comma"}',
      column_types: '{integer,uuid,text}',
    },
    { schema: 'public', name: 'companies', kind: 'r', tenant_column: null, tenant_type: null, columns: ['id', 'name'], column_types: ['bigint', 'text'] },
    { schema: 'billing', name: 'invoices', kind: 'p', tenant_column: null, tenant_type: null, columns: ['org', 'total'], column_types: ['text', 'numeric'] },
    { schema: 'public', name: 'countries', kind: 'r', tenant_column: null, tenant_type: null, columns: ['code'], column_types: ['text'] },
    { schema: 'public', name: 'ads_view', kind: 'v', tenant_column: 'tenant_id', tenant_type: 'uuid', columns: ['tenant_id'], column_types: ['uuid'] },
    { schema: 'public', name: 'audit_view', kind: 'v', tenant_column: null, tenant_type: null, columns: ['x'], column_types: ['int'] },
    { schema: 'pg_catalog', name: 'pg_class', kind: 'r', tenant_column: null, tenant_type: null, columns: null, column_types: null },
  ]
  const f = buildSchemaFacts(rows, config)
  t.equal(f.tenantTables.get('public.ads'), 'tenant_id')
  t.equal(f.tenantColumnTypes?.get('public.ads'), 'uuid')
  t.equal(f.tenantTables.get('public.companies'), 'id', 'explicit column, unqualified = public')
  t.equal(f.tenantColumnTypes?.get('public.companies'), 'bigint')
  t.equal(f.tenantTables.get('billing.invoices'), 'org')
  t.equal(f.tenantTables.get('public.ads_view'), 'tenant_id', 'view with the tenant column is filtered by it')
  t.notOk(f.tenantTables.has('public.audit_view'), 'view without it is not a tenant relation')
  t.ok(f.knownRelations.has('public.audit_view'))
  t.ok(f.referenceTables.has('public.countries'))
  t.ok(f.referenceTables.has('geo.cities'), 'configured but missing reference table still listed')
  t.ok(f.knownRelations.has('pg_catalog.pg_class'))
  t.same(f.columns?.get('public.ads'), ['id', 'tenant_id', 'Title, with comma'])
  t.equal(f.unknown, 'reject')
  t.same(parseTextArray('{a,"b\\"c",NULL}'), ['a', 'b"c', 'NULL'])
  t.match(SCHEMA_DISCOVERY_SQL, /ta\.attname = \$1::name/)
  t.match(schemaDiscoverySql("it's"), /ta\.attname = 'it''s'::name/)
})
