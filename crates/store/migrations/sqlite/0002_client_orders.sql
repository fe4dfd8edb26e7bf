-- The trading day's client order ids travel with each snapshot (the journal tail
-- after it rebuilds the rest). NULL: none.
ALTER TABLE snapshot ADD COLUMN client_orders BLOB;
