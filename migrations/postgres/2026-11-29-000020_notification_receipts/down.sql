DROP INDEX notifications_state_time;
ALTER TABLE notifications DROP COLUMN receipt_at_us;
