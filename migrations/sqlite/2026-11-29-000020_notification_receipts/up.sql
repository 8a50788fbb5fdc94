-- Delivery receipts (Viber webhook): when the last one arrived, and an index
-- for the inspection queries by state and time.
ALTER TABLE notifications ADD COLUMN receipt_at_us BIGINT;
CREATE INDEX notifications_state_time ON notifications (state, enqueued_at_us);
