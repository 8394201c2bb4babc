-- Register the coordinator and the two workers (idempotent enough for a fresh cluster).
SELECT citus_set_coordinator_host('coordinator', 5432);
SELECT citus_add_node('worker1', 5432);
SELECT citus_add_node('worker2', 5432);
