ALTER TABLE odds_changes DROP COLUMN status;
