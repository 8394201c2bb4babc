-- The differential oracle's schema: a small multi-tenant SaaS (companies, users,
-- projects, tasks, comments, invoices, …) plus shared reference tables.
--
-- Rules the oracle relies on (see test/oracle/harness.ts):
--  * Ids OVERLAP across tenants on purpose: every tenant has company 1, task 1, …
--    Primary keys are (tenant_id, id) and foreign keys carry the tenant column,
--    as Citus / django-multitenant schemas do. A forgotten tenant filter
--    therefore shows up as extra (or doubled) rows, never as a silent pass.
--  * The tenant column is `tenant_id text NOT NULL` on every tenant table except
--    public.accounts, whose tenant column is `org` (explicit table → column config,
--    the SchemaFacts built in test/oracle/facts.ts say so), and billing.payments
--    lives outside the search_path (schema-qualified references only).
--  * Tenant columns have DEFAULT current_setting('app.tenant', true). The
--    direct side (database only_<tenant>) runs every statement after
--    set_config('app.tenant', T, true), so an INSERT that omits the tenant
--    column gets T there — exactly what the rewriter must add on the shared side.
--    In the shared database (all_tenants) the harness DROPS these defaults, like a
--    production schema: if the rewriter forgets to add the tenant column, the
--    INSERT fails with a NOT NULL violation and the oracle reports it.
--  * No volatile defaults that would differ between the two sides: created_at
--    defaults to a fixed instant; the only sequence (events.id) is reset to a
--    fixed value at the start of every compared transaction (oracle_reset()).
--  * oracle_snapshot() / oracle_rows() read every table inside the caller's
--    transaction; they are functions (not relations) so the same calls work
--    through the proxy.

CREATE SCHEMA billing;

-- ---------------------------------------------------------------- reference tables
CREATE TABLE countries (
  code char(2) PRIMARY KEY,
  name text NOT NULL,
  region text
);
CREATE TABLE currencies (
  code char(3) PRIMARY KEY,
  name text NOT NULL,
  decimals int NOT NULL DEFAULT 2
);
CREATE TABLE plans (
  id int PRIMARY KEY,
  name text NOT NULL UNIQUE,
  monthly_cents int NOT NULL,
  max_seats int            -- NULL = unlimited
);

-- ---------------------------------------------------------------- tenant tables
CREATE TABLE companies (
  tenant_id text NOT NULL DEFAULT current_setting('app.tenant', true),
  id int NOT NULL,
  name text NOT NULL,
  country_code char(2) REFERENCES countries(code),
  plan_id int REFERENCES plans(id),
  employees int,
  created_at timestamptz NOT NULL DEFAULT '2025-06-01 00:00:00+00',
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE users (
  tenant_id text NOT NULL DEFAULT current_setting('app.tenant', true),
  id int NOT NULL,
  company_id int NOT NULL,
  email text NOT NULL,
  full_name text,
  role text NOT NULL DEFAULT 'member',
  is_active boolean NOT NULL DEFAULT true,
  manager_id int,
  last_login timestamptz,
  created_at timestamptz NOT NULL DEFAULT '2025-06-01 00:00:00+00',
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, email),
  FOREIGN KEY (tenant_id, company_id) REFERENCES companies(tenant_id, id),
  FOREIGN KEY (tenant_id, manager_id) REFERENCES users(tenant_id, id)
);

CREATE TABLE projects (
  tenant_id text NOT NULL DEFAULT current_setting('app.tenant', true),
  id int NOT NULL,
  company_id int NOT NULL,
  owner_id int,
  name text NOT NULL,
  status text NOT NULL DEFAULT 'active',
  budget numeric(12,2),
  labels text[] NOT NULL DEFAULT '{}',
  started_on date,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, company_id) REFERENCES companies(tenant_id, id),
  FOREIGN KEY (tenant_id, owner_id) REFERENCES users(tenant_id, id)
);

CREATE TABLE tasks (
  tenant_id text NOT NULL DEFAULT current_setting('app.tenant', true),
  id int NOT NULL,
  project_id int NOT NULL,
  assignee_id int,
  title text NOT NULL,
  status text NOT NULL DEFAULT 'todo',
  priority int NOT NULL DEFAULT 3,
  due_on date,
  estimate_hours numeric(6,2),
  tags text[] NOT NULL DEFAULT '{}',
  is_done boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT '2025-06-01 00:00:00+00',
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, project_id) REFERENCES projects(tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, assignee_id) REFERENCES users(tenant_id, id)
);

CREATE TABLE comments (
  tenant_id text NOT NULL DEFAULT current_setting('app.tenant', true),
  id int NOT NULL,
  task_id int NOT NULL,
  author_id int,
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT '2025-06-01 00:00:00+00',
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, task_id) REFERENCES tasks(tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, author_id) REFERENCES users(tenant_id, id)
);

CREATE TABLE invoices (
  tenant_id text NOT NULL DEFAULT current_setting('app.tenant', true),
  id int NOT NULL,
  company_id int NOT NULL,
  number text NOT NULL,
  currency_code char(3) NOT NULL REFERENCES currencies(code),
  status text NOT NULL DEFAULT 'draft',
  issued_on date NOT NULL,
  due_on date,
  total_cents bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, number),
  FOREIGN KEY (tenant_id, company_id) REFERENCES companies(tenant_id, id)
);

CREATE TABLE invoice_lines (
  tenant_id text NOT NULL DEFAULT current_setting('app.tenant', true),
  id int NOT NULL,
  invoice_id int NOT NULL,
  description text NOT NULL,
  quantity int NOT NULL DEFAULT 1,
  unit_cents int NOT NULL,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices(tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE tags (
  tenant_id text NOT NULL DEFAULT current_setting('app.tenant', true),
  id int NOT NULL,
  name text NOT NULL,
  color text,
  aliases text[] NOT NULL DEFAULT '{}',
  PRIMARY KEY (tenant_id, id),
  CONSTRAINT tags_tenant_name_key UNIQUE (tenant_id, name)
);

CREATE SEQUENCE events_id_seq START 100000;
CREATE TABLE events (
  tenant_id text NOT NULL DEFAULT current_setting('app.tenant', true),
  id bigint NOT NULL DEFAULT nextval('events_id_seq'),
  user_id int,
  kind text NOT NULL DEFAULT 'unknown',
  payload jsonb NOT NULL DEFAULT '{}',
  occurred_at timestamptz NOT NULL DEFAULT '2025-06-01 00:00:00+00',
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE categories (
  tenant_id text NOT NULL DEFAULT current_setting('app.tenant', true),
  id int NOT NULL,
  parent_id int,
  name text NOT NULL,
  position int NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, parent_id) REFERENCES categories(tenant_id, id)
);

-- Tenant column under another name (explicit config: accounts → org).
CREATE TABLE accounts (
  org text NOT NULL DEFAULT current_setting('app.tenant', true),
  id int NOT NULL,
  name text NOT NULL,
  balance numeric(14,2) NOT NULL DEFAULT 0,
  currency_code char(3) REFERENCES currencies(code),
  PRIMARY KEY (org, id)
);

-- A tenant table outside the search_path.
CREATE TABLE billing.payments (
  tenant_id text NOT NULL DEFAULT current_setting('app.tenant', true),
  id int NOT NULL,
  invoice_id int NOT NULL,
  amount_cents bigint NOT NULL,
  method text,
  paid_at timestamptz NOT NULL DEFAULT '2025-06-01 00:00:00+00',
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices(tenant_id, id) ON DELETE CASCADE
);

-- A globally unique key on a tenant table (a real-world schema smell): a tenant's INSERT can
-- collide with another tenant's row. No rewrite can make that oracle-equal; the entries in
-- corpus/isolation.yaml only require that no other tenant's row is returned or changed.
CREATE TABLE api_keys (
  tenant_id text NOT NULL DEFAULT current_setting('app.tenant', true),
  id int NOT NULL,
  key text NOT NULL UNIQUE,
  label text,
  PRIMARY KEY (tenant_id, id)
);

-- Views: open_tasks carries the tenant column (the rewriter treats it as a tenant relation and
-- it is auto-updatable); task_stats aggregates across tenants and is in no set (unknown → reject).
CREATE VIEW open_tasks AS SELECT tenant_id, id, project_id, title, priority FROM tasks WHERE NOT is_done;
CREATE VIEW task_stats AS SELECT status, count(*) AS n FROM tasks GROUP BY status;

-- ---------------------------------------------------------------- oracle helpers
-- Every table the snapshot covers and the column that names its tenant ('' = reference table).
CREATE FUNCTION oracle_tables() RETURNS TABLE (tbl text, tcol text) LANGUAGE sql IMMUTABLE AS $$
  VALUES ('public.countries', ''), ('public.currencies', ''), ('public.plans', ''),
         ('public.companies', 'tenant_id'), ('public.users', 'tenant_id'), ('public.projects', 'tenant_id'),
         ('public.tasks', 'tenant_id'), ('public.comments', 'tenant_id'), ('public.invoices', 'tenant_id'),
         ('public.invoice_lines', 'tenant_id'), ('public.tags', 'tenant_id'), ('public.events', 'tenant_id'),
         ('public.categories', 'tenant_id'), ('public.accounts', 'org'), ('billing.payments', 'tenant_id'),
         ('public.api_keys', 'tenant_id')
$$;

-- Sequences are not transactional: put them back to a fixed value before each compared statement.
CREATE FUNCTION oracle_reset() RETURNS int LANGUAGE sql AS $$
  SELECT setval('events_id_seq', 100000, false)::int
$$;

-- {"public.tasks|acme": "<count>:<md5 of the sorted rows>", "public.countries|*": …, NULL tenant → "|<null>"}
CREATE FUNCTION oracle_snapshot() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  r record;
  part jsonb;
  result jsonb := '{}';
BEGIN
  FOR r IN SELECT * FROM oracle_tables() LOOP
    IF r.tcol = '' THEN
      EXECUTE format($q$SELECT coalesce(jsonb_object_agg(%L || '|*', d), '{}') FROM (
          SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, E'\n' ORDER BY x::text), '')) AS d
          FROM (SELECT to_jsonb(t) AS x FROM %s t) s) q$q$, r.tbl, r.tbl) INTO part;
    ELSE
      EXECUTE format($q$SELECT coalesce(jsonb_object_agg(%L || '|' || g, d), '{}') FROM (
          SELECT coalesce(g0, '<null>') AS g,
                 count(*) || ':' || md5(string_agg(x::text, E'\n' ORDER BY x::text)) AS d
          FROM (SELECT t.%I AS g0, to_jsonb(t) AS x FROM %s t) s GROUP BY g0) q$q$, r.tbl, r.tcol, r.tbl) INTO part;
    END IF;
    result := result || part;
  END LOOP;
  RETURN result;
END $$;

-- The rows of one snapshot group, sorted, for diffs: oracle_rows('public.tasks', 'acme'), group '*' for reference tables.
CREATE FUNCTION oracle_rows(p_tbl text, p_group text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  c text;
  out jsonb;
BEGIN
  SELECT tcol INTO c FROM oracle_tables() WHERE tbl = p_tbl;
  IF c IS NULL THEN RAISE EXCEPTION 'unknown table %', p_tbl; END IF;
  IF c = '' THEN
    EXECUTE format('SELECT coalesce(jsonb_agg(x ORDER BY x::text), ''[]'') FROM (SELECT to_jsonb(t) AS x FROM %s t) s', p_tbl) INTO out;
  ELSE
    EXECUTE format('SELECT coalesce(jsonb_agg(x ORDER BY x::text), ''[]'') FROM (SELECT to_jsonb(t) AS x FROM %s t WHERE coalesce(t.%I, ''<null>'') = $1) s', p_tbl, c)
      INTO out USING p_group;
  END IF;
  RETURN out;
END $$;
