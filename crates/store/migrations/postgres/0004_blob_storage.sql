-- Journal batches and snapshots are stored out of line without compression.
-- PostgreSQL's default (pglz) compressed every batch on the committing backend
-- and took a third of its time: the shard's commit path runs on one backend, so
-- that was a third of the journal's throughput. The batches are already dense
-- binary, so little space is given up.
ALTER TABLE journal ALTER COLUMN entries SET STORAGE EXTERNAL;
ALTER TABLE snapshot ALTER COLUMN engine SET STORAGE EXTERNAL;
ALTER TABLE snapshot ALTER COLUMN client_orders SET STORAGE EXTERNAL;
