-- Tenant workload for pgbench, as an application behind pgtenant writes it: no tenant
-- filter anywhere. The tenant comes from the connection (PGOPTIONS='-c app.tenant=N') and
-- pgtenant restricts both tables of the join, and the UPDATE, to it. Account ids overlap
-- between tenants, so without the rewrite the join would mix tenants.
-- Variables: -D accounts=<accounts per tenant>.
\set aid random(1, :accounts)
\set delta random(-500, 500)
BEGIN;
SELECT a.name, count(p.id), sum(p.budget) FROM accounts a JOIN projects p ON p.account_id = a.id WHERE a.id = :aid GROUP BY a.name;
UPDATE accounts SET balance = balance + :delta WHERE id = :aid;
END;
