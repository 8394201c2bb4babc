// The metrics pgtenant exports (contract for dashboards, alerts and tests).
// server/metrics.ts registers exactly these; deploy/ dashboards may use only these
// (plus prom-client's default process_* and nodejs_* metrics).
export const METRICS = {
  clientConnections: { name: 'pgtenant_client_connections', type: 'gauge', labels: ['state'], help: 'Client connections by state: active, idle, idle_in_transaction, waiting (for a server connection), login' },
  clientAccepted: { name: 'pgtenant_client_connections_accepted_total', type: 'counter', labels: [], help: 'Client connections that logged in' },
  loginCutoffs: { name: 'pgtenant_client_login_cutoffs_total', type: 'counter', labels: ['reason'], help: 'Client connections cut off before they logged in: login_timeout, message_too_large (over the pre-authentication message limit), too_many_authenticating (pool.max_authenticating_connections)' },
  clientRefused: { name: 'pgtenant_client_connections_refused_total', type: 'counter', labels: ['reason'], help: 'Client connections refused: auth, limit, shutdown, protocol' },
  cancelRequests: { name: 'pgtenant_cancel_requests_total', type: 'counter', labels: ['result'], help: 'CancelRequests received: local (the client is on this process), forwarded (to the worker that holds the client), unmatched' },
  authFailures: { name: 'pgtenant_auth_failures_total', type: 'counter', labels: [], help: 'Failed client authentications' },
  serverConnections: { name: 'pgtenant_server_connections', type: 'gauge', labels: ['backend', 'state'], help: 'Server connections per backend by state: active, idle, connecting' },
  poolSize: { name: 'pgtenant_pool_size', type: 'gauge', labels: ['backend'], help: 'Configured pool size per backend' },
  poolWaiting: { name: 'pgtenant_pool_waiting_clients', type: 'gauge', labels: ['backend'], help: 'Clients waiting for a server connection' },
  poolWait: { name: 'pgtenant_pool_wait_seconds', type: 'histogram', labels: ['backend'], help: 'Time a transaction waited for a server connection' },
  connectErrors: { name: 'pgtenant_server_connect_errors_total', type: 'counter', labels: ['backend'], help: 'Failed attempts to connect to a server' },
  serverErrors: { name: 'pgtenant_server_errors_total', type: 'counter', labels: ['backend', 'class'], help: 'ErrorResponses from servers by SQLSTATE class (first two characters)' },
  transactions: { name: 'pgtenant_transactions_total', type: 'counter', labels: ['tenant', 'backend'], help: 'Transactions completed, per tenant (top N, rest "_other") and backend' },
  statements: { name: 'pgtenant_statements_total', type: 'counter', labels: ['tenant', 'backend'], help: 'Statements (Query or Execute messages) sent to servers' },
  queryDuration: { name: 'pgtenant_query_duration_seconds', type: 'histogram', labels: ['tenant'], help: 'Client-visible latency: first message of a query to its ReadyForQuery' },
  rowsSent: { name: 'pgtenant_rows_sent_total', type: 'counter', labels: ['tenant'], help: 'DataRow messages sent to clients' },
  bytesSent: { name: 'pgtenant_bytes_sent_total', type: 'counter', labels: ['tenant'], help: 'Bytes sent to clients' },
  clientErrors: { name: 'pgtenant_errors_total', type: 'counter', labels: ['tenant'], help: 'ErrorResponses sent to clients (server errors and refusals)' },
  rewriteDuration: { name: 'pgtenant_rewrite_duration_seconds', type: 'histogram', labels: [], help: 'Time to plan/rewrite one client message' },
  rewriteCache: { name: 'pgtenant_rewrite_cache_total', type: 'counter', labels: ['kind'], help: 'Rewrite plans by cache outcome: exact, normalized, cold' },
  refused: { name: 'pgtenant_refused_statements_total', type: 'counter', labels: ['tenant', 'sqlstate'], help: 'Statements refused by the proxy, by SQLSTATE' },
  routing: { name: 'pgtenant_routing_decisions_total', type: 'counter', labels: ['kind', 'backend'], help: 'Routing decisions by target kind: shared, dedicated, citus-worker, citus-coordinator, refuse' },
  citusMetadataAge: { name: 'pgtenant_citus_metadata_age_seconds', type: 'gauge', labels: ['backend'], help: 'Seconds since Citus metadata was last loaded' },
  citusRefreshErrors: { name: 'pgtenant_citus_metadata_refresh_errors_total', type: 'counter', labels: ['backend'], help: 'Failed Citus metadata refreshes' },
} as const
