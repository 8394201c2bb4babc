-- A multi-tenant schema distributed by tenant (the company), colocated, plus a reference table.
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
CREATE TABLE companies (id bigint PRIMARY KEY, name text NOT NULL, country text);
CREATE TABLE campaigns (company_id bigint NOT NULL, id bigint NOT NULL, name text NOT NULL, PRIMARY KEY (company_id, id));
CREATE TABLE ads (company_id bigint NOT NULL, id bigint NOT NULL, campaign_id bigint NOT NULL, title text, PRIMARY KEY (company_id, id));

SELECT create_reference_table('countries');
SELECT create_distributed_table('companies', 'id');
SELECT create_distributed_table('campaigns', 'company_id', colocate_with => 'companies');
SELECT create_distributed_table('ads', 'company_id', colocate_with => 'companies');

INSERT INTO countries VALUES ('DE', 'Germany'), ('FR', 'France'), ('US', 'United States');
INSERT INTO companies SELECT c, 'company ' || c, (ARRAY['DE', 'FR', 'US'])[1 + c % 3] FROM generate_series(1, 20) c;
INSERT INTO campaigns SELECT c, k, 'campaign ' || k FROM generate_series(1, 20) c, generate_series(1, 5) k;
INSERT INTO ads SELECT c, k * 10 + a, k, 'ad ' || a FROM generate_series(1, 20) c, generate_series(1, 5) k, generate_series(1, 3) a;
