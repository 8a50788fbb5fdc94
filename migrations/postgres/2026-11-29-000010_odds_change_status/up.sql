-- The new event status of a 'status' change (and 'removed' for a vanished event).
ALTER TABLE odds_changes ADD COLUMN status TEXT;
