-- A Citus-shaped catalog on plain PostgreSQL, built from the shapes and values in
-- /work/shared/citus-catalog.md (read off a real Citus 13.2.2 cluster). The tables live in
-- schema public: pgtenant's metadata queries use unqualified names, which on Citus resolve to
-- pg_catalog and here, since pg_catalog has no such tables, to public.
--
-- Layout: nodes 1 (coordinator, group 0, :9700), 2 (group 1, :9701), 3 (group 2, :9702).
-- Colocation group 1 (bigint): companies(id), campaigns(company_id), ads(company_id),
--   32 uniform shards each (companies 102008…, campaigns 102040…, ads 102072…).
-- Colocation group 2 (text): tenant_events(tenant), shards 102104…102135.
-- Colocation group 4 (numeric): measurements(sensor), 4 shards 102137…102140 (a type pgtenant does not hash).
-- Reference table countries (shard 102136, on every group). Citus local table audit_log.
-- Shard i of every hash table is placed on group 1 + (i % 2) (round robin).

CREATE TYPE noderole AS ENUM ('primary', 'secondary', 'unavailable');

CREATE TABLE pg_dist_partition (
  logicalrelid regclass NOT NULL,
  partmethod "char" NOT NULL,
  partkey text,
  colocationid integer NOT NULL DEFAULT 0,
  repmodel "char" NOT NULL DEFAULT 'c',
  autoconverted boolean DEFAULT false
);
CREATE TABLE pg_dist_shard (
  logicalrelid regclass NOT NULL,
  shardid bigint NOT NULL,
  shardstorage "char" NOT NULL,
  shardminvalue text,
  shardmaxvalue text
);
CREATE TABLE pg_dist_placement (
  placementid bigint NOT NULL,
  shardid bigint NOT NULL,
  shardstate integer NOT NULL,
  shardlength bigint NOT NULL,
  groupid integer NOT NULL
);
CREATE TABLE pg_dist_node (
  nodeid integer NOT NULL,
  groupid integer NOT NULL,
  nodename text NOT NULL,
  nodeport integer NOT NULL DEFAULT 5432,
  noderack text NOT NULL DEFAULT 'default',
  hasmetadata boolean NOT NULL DEFAULT false,
  isactive boolean NOT NULL DEFAULT false,
  noderole noderole NOT NULL DEFAULT 'primary',
  nodecluster name NOT NULL DEFAULT 'default',
  metadatasynced boolean NOT NULL DEFAULT false,
  shouldhaveshards boolean NOT NULL DEFAULT true,
  nodeisclone boolean NOT NULL DEFAULT false,
  nodeprimarynodeid integer NOT NULL DEFAULT 0
);

-- Like Citus's C function: the name of the column a textual Var node denotes; an error for anything else.
CREATE FUNCTION column_to_column_name(table_name regclass, column_var_text text) RETURNS text
LANGUAGE plpgsql STRICT STABLE AS $$
DECLARE
  attno int := substring(column_var_text FROM '^\{VAR .*:varattno (-?[0-9]+)')::int;
  name text;
BEGIN
  IF attno IS NULL THEN
    RAISE EXCEPTION 'not a valid column' USING ERRCODE = '22023';
  END IF;
  SELECT a.attname INTO name FROM pg_attribute a WHERE a.attrelid = table_name AND a.attnum = attno AND NOT a.attisdropped;
  IF name IS NULL THEN
    RAISE EXCEPTION 'attribute % of relation "%" does not exist', attno, table_name;
  END IF;
  RETURN name;
END
$$;

-- The application's tables (empty: only the catalog matters here).
CREATE TABLE companies (id bigint PRIMARY KEY, name text);
CREATE TABLE campaigns (id bigint, company_id bigint, name text, PRIMARY KEY (company_id, id));
CREATE TABLE ads (id bigint, company_id bigint, campaign_id bigint, PRIMARY KEY (company_id, id));
CREATE TABLE tenant_events (id bigint, tenant text, payload jsonb);
CREATE TABLE measurements (sensor numeric, value float8);
CREATE TABLE countries (code text PRIMARY KEY, name text);
CREATE TABLE audit_log (at timestamptz, what text);

-- A Var node string as Citus stores it in partkey (PostgreSQL 16+ adds :varnullingrels).
CREATE FUNCTION pg_temp.var_node(rel regclass, col name) RETURNS text LANGUAGE sql AS $$
  SELECT format('{VAR :varno 1 :varattno %s :vartype %s :vartypmod %s :varcollid %s :varnullingrels (b) :varlevelsup 0 :varnosyn 1 :varattnosyn %s :location -1}',
                a.attnum, a.atttypid::int, a.atttypmod, a.attcollation::int, a.attnum)
    FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = col
$$;

INSERT INTO pg_dist_node (nodeid, groupid, nodename, nodeport, hasmetadata, isactive, noderole, metadatasynced, shouldhaveshards) VALUES
  (1, 0, '127.0.0.1', 9700, true, true, 'primary', true, false),
  (2, 1, '127.0.0.1', 9701, true, true, 'primary', true, true),
  (3, 2, '127.0.0.1', 9702, true, true, 'primary', true, true);

INSERT INTO pg_dist_partition (logicalrelid, partmethod, partkey, colocationid, repmodel, autoconverted) VALUES
  ('companies',     'h', pg_temp.var_node('companies', 'id'), 1, 's', false),
  ('campaigns',     'h', pg_temp.var_node('campaigns', 'company_id'), 1, 's', false),
  ('ads',           'h', pg_temp.var_node('ads', 'company_id'), 1, 's', false),
  ('tenant_events', 'h', pg_temp.var_node('tenant_events', 'tenant'), 2, 's', false),
  ('countries',     'n', NULL, 3, 't', false),
  ('measurements',  'h', pg_temp.var_node('measurements', 'sensor'), 4, 's', false),
  ('audit_log',     'n', NULL, 0, 's', true);

-- 32 uniform hash shards per table, each 134217728 wide.
INSERT INTO pg_dist_shard (logicalrelid, shardid, shardstorage, shardminvalue, shardmaxvalue)
SELECT t.rel, t.first + i, 't',
       (-2147483648::bigint + i::bigint * 134217728)::text,
       (-2147483648::bigint + i::bigint * 134217728 + 134217727)::text
  FROM (VALUES ('companies'::regclass, 102008), ('campaigns'::regclass, 102040),
               ('ads'::regclass, 102072), ('tenant_events'::regclass, 102104)) AS t(rel, first),
       generate_series(0, 31) AS i;
-- The reference table: one shard without bounds.
INSERT INTO pg_dist_shard VALUES ('countries', 102136, 't', NULL, NULL);
-- measurements: 4 shards of 2^30.
INSERT INTO pg_dist_shard (logicalrelid, shardid, shardstorage, shardminvalue, shardmaxvalue)
SELECT 'measurements', 102137 + i, 't', (-2147483648::bigint + i::bigint * 1073741824)::text, (-2147483648::bigint + i::bigint * 1073741824 + 1073741823)::text
  FROM generate_series(0, 3) AS i;

CREATE SEQUENCE pg_temp.placement_seq;
INSERT INTO pg_dist_placement (placementid, shardid, shardstate, shardlength, groupid)
SELECT nextval('pg_temp.placement_seq'), s.shardid, 1, 0,
       1 + (row_number() OVER (PARTITION BY s.logicalrelid ORDER BY s.shardminvalue::bigint) - 1)::int % 2
  FROM pg_dist_shard s WHERE s.shardminvalue IS NOT NULL
 ORDER BY s.shardid;
INSERT INTO pg_dist_placement (placementid, shardid, shardstate, shardlength, groupid)
SELECT nextval('pg_temp.placement_seq'), 102136, 1, 0, g FROM generate_series(0, 2) AS g;
