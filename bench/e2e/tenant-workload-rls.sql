-- The tenant workload isolated by PostgreSQL's row-level security instead: the tables in
-- schema rls have FORCE ROW LEVEL SECURITY and a policy tenant_id =
-- current_setting('app.tenant')::int, and each transaction sets the tenant first with
-- set_config(…, true) (SET LOCAL), as an application behind PgBouncer must. The statements
-- carry no tenant filter, as in bench/tenant-workload.sql (pgtenant's); PostgreSQL adds it.
-- Variables: -D tenant=<tenant id> -D accounts=<accounts per tenant>.
\set aid random(1, :accounts)
\set delta random(-500, 500)
BEGIN;
SELECT set_config('app.tenant', :tenant::text, true);
SELECT a.name, count(p.id), sum(p.budget) FROM rls.accounts a JOIN rls.projects p ON p.account_id = a.id WHERE a.id = :aid GROUP BY a.name;
UPDATE rls.accounts SET balance = balance + :delta WHERE id = :aid;
END;
