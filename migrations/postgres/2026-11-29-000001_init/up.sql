-- tasklet's first schema. Times are microseconds since the Unix epoch (BIGINT)
-- so that the same diesel schema serves PostgreSQL and SQLite.
CREATE TABLE odds_events (
    id            BIGSERIAL PRIMARY KEY,
    site          TEXT   NOT NULL,
    external_id   TEXT   NOT NULL,
    sport         TEXT   NOT NULL DEFAULT '',
    home          TEXT   NOT NULL DEFAULT '',
    away          TEXT   NOT NULL DEFAULT '',
    status        TEXT   NOT NULL DEFAULT '',
    first_seen_us BIGINT NOT NULL,
    last_seen_us  BIGINT NOT NULL,
    UNIQUE (site, external_id)
);

CREATE TABLE odds_changes (
    id             BIGSERIAL PRIMARY KEY,
    site           TEXT   NOT NULL,
    event_id       TEXT   NOT NULL,
    market         TEXT   NOT NULL,
    outcome        TEXT   NOT NULL,
    kind           TEXT   NOT NULL,
    old_price      DOUBLE PRECISION,
    new_price      DOUBLE PRECISION,
    seq            BIGINT NOT NULL,
    observed_at_us BIGINT NOT NULL,
    UNIQUE (site, event_id, market, outcome, seq, kind)
);
CREATE INDEX odds_changes_event_time ON odds_changes (site, event_id, observed_at_us);
CREATE INDEX odds_changes_time ON odds_changes (observed_at_us);

CREATE TABLE notifications (
    id             BIGSERIAL PRIMARY KEY,
    message_id     TEXT    NOT NULL UNIQUE,
    transaction_id TEXT    NOT NULL,
    receiver       TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    viber_status   INTEGER,
    message_token  BIGINT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    error          TEXT,
    enqueued_at_us BIGINT  NOT NULL,
    sent_at_us     BIGINT,
    logged_at_us   BIGINT  NOT NULL
);
CREATE INDEX notifications_tx ON notifications (transaction_id);
CREATE INDEX notifications_token ON notifications (message_token);
