-- One database per tenant, same schema in each.
CREATE DATABASE tenant_template;
\c tenant_template
CREATE TABLE projects (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE tasks (id int PRIMARY KEY, project_id int REFERENCES projects, title text NOT NULL, done boolean DEFAULT false);
\c postgres
CREATE DATABASE tenant_acme TEMPLATE tenant_template;
CREATE DATABASE tenant_globex TEMPLATE tenant_template;
CREATE DATABASE tenant_initech TEMPLATE tenant_template;
\c tenant_acme
INSERT INTO projects VALUES (1, 'Rockets'), (2, 'Anvils');
\c tenant_globex
INSERT INTO projects VALUES (1, 'Fusion');
