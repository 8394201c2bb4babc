-- The same tenant workload as bench/tenant-workload.sql, filtered by hand as an
-- application talking to PostgreSQL or PgBouncer must do it: every table reference carries
-- tenant_id = :tenant (one pgbench process per tenant, -D tenant=N).
-- Variables: -D tenant=<tenant id> -D accounts=<accounts per tenant>.
\set aid random(1, :accounts)
\set delta random(-500, 500)
BEGIN;
SELECT a.name, count(p.id), sum(p.budget) FROM accounts a JOIN projects p ON p.tenant_id = a.tenant_id AND p.account_id = a.id WHERE a.tenant_id = :tenant AND a.id = :aid GROUP BY a.name;
UPDATE accounts SET balance = balance + :delta WHERE tenant_id = :tenant AND id = :aid;
END;
