DROP TABLE notifications;
DROP TABLE odds_changes;
DROP TABLE odds_events;
