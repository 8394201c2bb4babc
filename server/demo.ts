// `pgtenant` with no --config: a demo on an embedded PostgreSQL (PGlite, Postgres in
// WASM) loaded with a small multi-tenant dataset, the proxy in front of it.
import type { Config } from './config-types.js'

export const DEMO_SQL = `
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
INSERT INTO countries VALUES ('DE', 'Germany'), ('FR', 'France'), ('US', 'United States');

CREATE TABLE accounts (
  tenant_id text NOT NULL, id int NOT NULL, name text NOT NULL, country text REFERENCES countries,
  PRIMARY KEY (tenant_id, id));
CREATE TABLE projects (
  tenant_id text NOT NULL, id int NOT NULL, account_id int NOT NULL, name text NOT NULL, budget numeric(12,2),
  PRIMARY KEY (tenant_id, id));
INSERT INTO accounts VALUES
  ('acme', 1, 'Acme Rockets', 'US'), ('acme', 2, 'Acme Anvils', 'DE'),
  ('globex', 1, 'Globex Energy', 'FR'), ('globex', 2, 'Globex Labs', 'US'), ('globex', 3, 'Globex Shipping', 'DE');
INSERT INTO projects VALUES
  ('acme', 1, 1, 'Moon shot', 1000000), ('acme', 2, 2, 'Heavier anvil', 2500),
  ('globex', 1, 1, 'Fusion', 9000000), ('globex', 2, 3, 'Container tracking', 120000);
`

/** The demo serves metrics here unless `--metrics-port` says otherwise (0: off). */
export const DEMO_METRICS_PORT = 9187
/** Server connections of the demo's pool (PGlite runs one query at a time whatever the pool). */
const DEMO_POOL = 3

export function demoConfig(backendPort: number, listenPort: number, metricsPort = DEMO_METRICS_PORT): Config {
  return {
    listen: { host: '127.0.0.1', port: listenPort },
    ...(metricsPort > 0 ? { metrics: { host: '127.0.0.1', port: metricsPort } } : {}),
    auth: 'scram-sha-256',
    users: {
      app: { password: 'app_pw', bypass: false, admin: false },
      acme: { password: 'acme_pw', tenant: 'acme', bypass: false, admin: false },
      admin: { password: 'admin_pw', bypass: true, admin: true },
    },
    tenant: { setting: 'app.tenant', column: 'tenant_id', tables: {}, reference: ['countries'], unknown: 'reject', pattern: '^[A-Za-z0-9_-]{1,63}$' },
    backends: {
      demo: {
        name: 'demo',
        url: {
          host: '127.0.0.1',
          port: backendPort,
          database: 'postgres',
          user: 'postgres',
          password: 'postgres',
          sslmode: 'disable',
          raw: `postgres://postgres@127.0.0.1:${backendPort}/postgres`,
          perTenant: false,
        },
        pool: DEMO_POOL,
        citus: false,
      },
    },
    placement: { default: 'demo', tenants: {} },
    pool: {
      mode: 'transaction',
      max_client_connections: 100,
      max_prepared_statements: 100,
      wait_timeout_ms: 30000,
      connect_timeout_ms: 5000,
      idle_timeout_ms: 600000,
      login_timeout_ms: 10000,
      max_authenticating_connections: 100,
      client_idle_timeout_ms: 0,
      shutdown_timeout_ms: 2000,
      max_server_connections: DEMO_POOL,
    },
    log_level: 'warn',
    workers: 1,
  }
}

/** Starts PGlite with the demo data behind a socket server; returns its port and a stop function. */
export async function startDemoDatabase(): Promise<{ port: number; stop: () => Promise<void> }> {
  const { PGlite } = await import('@electric-sql/pglite')
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket')
  const db = await PGlite.create()
  await db.exec(DEMO_SQL)
  const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1', maxConnections: DEMO_POOL + 2 }) // the pool, catalog reads, a spare
  await server.start()
  const port = Number(/:(\d+)$/.exec(server.getServerConn())?.[1] ?? 0)
  return {
    port,
    stop: async () => {
      await server.stop()
      await db.close()
    },
  }
}
