-- Applied on top of citus-catalog.sql: the layout after
--   SELECT isolate_tenant_to_new_shard('companies', 5, 'CASCADE');
--   SELECT citus_move_shard_placement(<tenant 5's new shard>, '127.0.0.1', 9701, '127.0.0.1', 9703);
-- hashint8(5) = -1330264708 lies in shard index 6 [-1342177280, -1207959553] (companies 102014,
-- campaigns 102046, ads 102078, on group 1). Every colocated table's shard is replaced by three:
--   [-1342177280, -1330264709]  [-1330264708, -1330264708]  [-1330264707, -1207959553]
-- with new shard ids (companies 102141-102143, campaigns 102144-102146, ads 102147-102149);
-- the outer two stay on group 1, tenant 5's own shard moves to the new node 4 (group 3, :9703).

INSERT INTO pg_dist_node (nodeid, groupid, nodename, nodeport, hasmetadata, isactive, noderole, metadatasynced, shouldhaveshards)
VALUES (4, 3, '127.0.0.1', 9703, true, true, 'primary', true, true);

DELETE FROM pg_dist_placement WHERE shardid IN (102014, 102046, 102078);
DELETE FROM pg_dist_shard WHERE shardid IN (102014, 102046, 102078);

INSERT INTO pg_dist_shard (logicalrelid, shardid, shardstorage, shardminvalue, shardmaxvalue)
SELECT t.rel, t.first + p.k, 't', p.lo, p.hi
  FROM (VALUES ('companies'::regclass, 102141), ('campaigns'::regclass, 102144), ('ads'::regclass, 102147)) AS t(rel, first),
       (VALUES (0, '-1342177280', '-1330264709'), (1, '-1330264708', '-1330264708'), (2, '-1330264707', '-1207959553')) AS p(k, lo, hi);

INSERT INTO pg_dist_placement (placementid, shardid, shardstate, shardlength, groupid)
SELECT 1000 + s.shardid - 102141, s.shardid, 1, 0, CASE WHEN s.shardminvalue = '-1330264708' THEN 3 ELSE 1 END
  FROM pg_dist_shard s WHERE s.shardid BETWEEN 102141 AND 102149;
