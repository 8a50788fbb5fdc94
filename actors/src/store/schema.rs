//! The diesel schema shared by both backends.
//!
//! Written to match `migrations/postgres` and `migrations/sqlite`; times are
//! microseconds since the Unix epoch so that one schema serves both.

diesel::table! {
    odds_events (id) {
        id -> BigInt,
        site -> Text,
        external_id -> Text,
        sport -> Text,
        home -> Text,
        away -> Text,
        status -> Text,
        first_seen_us -> BigInt,
        last_seen_us -> BigInt,
    }
}

diesel::table! {
    odds_changes (id) {
        id -> BigInt,
        site -> Text,
        event_id -> Text,
        market -> Text,
        outcome -> Text,
        kind -> Text,
        old_price -> Nullable<Double>,
        new_price -> Nullable<Double>,
        seq -> BigInt,
        observed_at_us -> BigInt,
        status -> Nullable<Text>,
    }
}

diesel::table! {
    notifications (id) {
        id -> BigInt,
        message_id -> Text,
        transaction_id -> Text,
        receiver -> Text,
        status -> Text,
        state -> Text,
        viber_status -> Nullable<Integer>,
        message_token -> Nullable<BigInt>,
        attempts -> Integer,
        error -> Nullable<Text>,
        enqueued_at_us -> BigInt,
        sent_at_us -> Nullable<BigInt>,
        logged_at_us -> BigInt,
        receipt_at_us -> Nullable<BigInt>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(odds_events, odds_changes, notifications);
