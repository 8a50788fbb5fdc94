//! What flows through the notify pipeline: the message contract read from
//! RabbitMQ ([`TransactionStatus`]) and the actor messages
//! `AmqpConsumer ─Delivery─▶ ViberSender ─Outcome─▶ NotificationLog ─Ack─▶ AmqpConsumer`.

use std::time::Instant;

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::store::models::NewNotification;

/// The AMQP header the publisher may set to its publish time (microseconds
/// since the Unix epoch); the consumer falls back to the `timestamp` property.
pub const PUBLISHED_AT_HEADER: &str = "x-published-at-us";

/// The header a dead-lettered message carries: why it was refused.
pub const DEAD_REASON_HEADER: &str = "x-tasklet-reason";

/// The message contract: one transaction status, JSON in UTF-8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionStatus {
    /// Unique per message: the log's key and the idempotency key.
    pub id: String,
    pub transaction_id: String,
    /// `created`, `pending`, `completed`, `failed`, `refunded` or any other
    /// word (those use the `default` template).
    pub status: String,
    /// A decimal string, e.g. `"123.45"`.
    pub amount: String,
    /// ISO 4217, three capital letters.
    pub currency: String,
    pub user: User,
    /// RFC 3339.
    pub occurred_at: String,
    /// `uk` or `en` (any other falls back to the default locale).
    pub locale: String,
}

/// The receiver of a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub viber_id: String,
    pub name: String,
}

/// Why a message breaks the contract (it goes to the dead-letter queue).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("not valid JSON for the contract: {0}")]
    Json(String),
    #[error("field {field}: {reason}")]
    Field {
        field: &'static str,
        reason: &'static str,
    },
}

fn field(field: &'static str, reason: &'static str) -> ContractError {
    ContractError::Field { field, reason }
}

impl TransactionStatus {
    /// Parses and checks one message body.
    pub fn parse(body: &[u8]) -> Result<TransactionStatus, ContractError> {
        let msg: TransactionStatus =
            serde_json::from_slice(body).map_err(|e| ContractError::Json(e.to_string()))?;
        msg.check()?;
        Ok(msg)
    }

    fn check(&self) -> Result<(), ContractError> {
        if self.id.is_empty() || self.id.len() > 200 {
            return Err(field("id", "must be 1 to 200 bytes"));
        }
        if self.transaction_id.is_empty() || self.transaction_id.len() > 200 {
            return Err(field("transaction_id", "must be 1 to 200 bytes"));
        }
        if self.status.is_empty()
            || self.status.len() > 40
            || !self
                .status
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            return Err(field("status", "must be a lowercase word"));
        }
        if !is_decimal(&self.amount) {
            return Err(field("amount", "must be a decimal string like \"123.45\""));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(field("currency", "must be three capital letters"));
        }
        if self.user.viber_id.is_empty() || self.user.viber_id.len() > 100 {
            return Err(field("user.viber_id", "must be 1 to 100 bytes"));
        }
        if self.user.name.len() > 200 {
            return Err(field("user.name", "must be at most 200 bytes"));
        }
        if !looks_like_rfc3339(&self.occurred_at) {
            return Err(field("occurred_at", "must be an RFC 3339 time"));
        }
        if self.locale.is_empty() || self.locale.len() > 10 {
            return Err(field("locale", "must be 1 to 10 bytes"));
        }
        Ok(())
    }

    /// The text for this message from `template` (`{amount}`, `{currency}`,
    /// `{transaction_id}`, `{name}`, `{status}` replaced).
    pub fn render(&self, template: &str) -> String {
        template
            .replace("{amount}", &self.amount)
            .replace("{currency}", &self.currency)
            .replace("{transaction_id}", &self.transaction_id)
            .replace("{name}", &self.user.name)
            .replace("{status}", &self.status)
    }
}

fn is_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.len() <= 18
        && frac.len() <= 8
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, checked by shape and ranges.
fn looks_like_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let shape = b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        && b[13] == b':'
        && b[16] == b':';
    let ranges = num(0..4).is_some()
        && num(5..7).is_some_and(|m| (1..=12).contains(&m))
        && num(8..10).is_some_and(|d| (1..=31).contains(&d))
        && num(11..13).is_some_and(|h| h < 24)
        && num(14..16).is_some_and(|m| m < 60)
        && num(17..19).is_some_and(|s| s < 61);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    let zone = rest == "Z"
        || rest == "z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':'
            && num_in(&rest[1..3], 24)
            && num_in(&rest[4..6], 60));
    shape && ranges && zone
}

fn num_in(s: &str, below: u32) -> bool {
    s.bytes().all(|c| c.is_ascii_digit()) && s.parse::<u32>().is_ok_and(|n| n < below)
}

/// Names one delivery on one channel: tags of a closed channel are void.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryTag {
    /// Which channel (counted from 1 per consumer) delivered it.
    pub channel: u64,
    pub tag: u64,
}

/// One valid message taken off the queue, for the sender pool.
pub struct Delivery {
    pub tag: DeliveryTag,
    /// The broker says it was delivered before (not acked then).
    pub redelivered: bool,
    pub message: TransactionStatus,
    /// Publish time (microseconds since the epoch) as the publisher stamped it.
    pub published_at_us: i64,
    /// When the consumer took it off the socket.
    pub received: Instant,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("tag", &self.tag)
            .field("id", &self.message.id)
            .field("tx", &self.message.transaction_id)
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

impl Message for Delivery {
    type Result = ();
}

/// What became of one delivery, for the log.
#[derive(Clone)]
pub struct Outcome {
    pub tag: DeliveryTag,
    /// The message id (`TransactionStatus::id`), for the logs.
    pub id: String,
    /// The transaction id, for the logs.
    pub tx: String,
    /// The row to store; `None` when the log already holds this message
    /// (a redelivery of something sent before): only the ack is owed.
    pub row: Option<NewNotification>,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("tag", &self.tag)
            .field("id", &self.id)
            .field("tx", &self.tx)
            .field("state", &self.row.as_ref().map(|r| r.state.as_str()))
            .finish()
    }
}

impl Message for Outcome {
    type Result = ();
}

/// Deliveries whose rows are committed: acknowledge them to the broker.
/// Resolves once the acks are written to the channel.
#[derive(Debug)]
pub struct Ack(pub Vec<DeliveryTag>);

impl Message for Ack {
    type Result = ();
}

/// Delivery states a notification row goes through.
pub mod state {
    /// Viber accepted the message (status 0).
    pub const SENT: &str = "sent";
    /// Viber refused it for good, or retries ran out.
    pub const FAILED: &str = "failed";
    /// A receipt said the user's device got it.
    pub const DELIVERED: &str = "delivered";
    /// A receipt said the user read it.
    pub const SEEN: &str = "seen";
    /// Every state a row may be in.
    pub const ALL: [&str; 4] = [SENT, FAILED, DELIVERED, SEEN];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> serde_json::Value {
        serde_json::json!({
            "id": "m-1", "transaction_id": "tx-1", "status": "completed",
            "amount": "123.45", "currency": "UAH",
            "user": {"viber_id": "u1", "name": "Olena"},
            "occurred_at": "2026-11-29T01:02:03.456Z", "locale": "uk"
        })
    }

    #[test]
    fn a_good_message_parses_and_renders() {
        let m = TransactionStatus::parse(good().to_string().as_bytes()).unwrap();
        assert_eq!(m.id, "m-1");
        assert_eq!(
            m.render("{name}: {amount} {currency} ({transaction_id}, {status})"),
            "Olena: 123.45 UAH (tx-1, completed)"
        );
    }

    #[test]
    fn every_broken_field_is_named() {
        let cases: &[(&str, serde_json::Value)] = &[
            ("id", serde_json::json!("")),
            ("transaction_id", serde_json::json!("")),
            ("status", serde_json::json!("Done!")),
            ("amount", serde_json::json!("12,5")),
            ("amount", serde_json::json!("1.")),
            ("currency", serde_json::json!("uah")),
            ("occurred_at", serde_json::json!("yesterday")),
            ("occurred_at", serde_json::json!("2026-13-01T00:00:00Z")),
            ("locale", serde_json::json!("")),
        ];
        for (name, value) in cases {
            let mut v = good();
            v[*name] = value.clone();
            let err = TransactionStatus::parse(v.to_string().as_bytes()).unwrap_err();
            assert!(
                matches!(err, ContractError::Field { field, .. } if field == *name),
                "{name}: {err}"
            );
        }
        let mut v = good();
        v["user"]["viber_id"] = serde_json::json!("");
        assert!(matches!(
            TransactionStatus::parse(v.to_string().as_bytes()),
            Err(ContractError::Field {
                field: "user.viber_id",
                ..
            })
        ));
    }

    #[test]
    fn not_json_missing_fields_and_unknown_fields_are_refused() {
        assert!(matches!(
            TransactionStatus::parse(b"\xff not json"),
            Err(ContractError::Json(_))
        ));
        let mut v = good();
        v.as_object_mut().unwrap().remove("amount");
        assert!(matches!(
            TransactionStatus::parse(v.to_string().as_bytes()),
            Err(ContractError::Json(_))
        ));
        let mut v = good();
        v["extra"] = serde_json::json!(1);
        assert!(matches!(
            TransactionStatus::parse(v.to_string().as_bytes()),
            Err(ContractError::Json(_))
        ));
    }

    #[test]
    fn rfc3339_shapes() {
        assert!(looks_like_rfc3339("2026-11-29T01:02:03Z"));
        assert!(looks_like_rfc3339("2026-11-29T01:02:03+02:00"));
        assert!(looks_like_rfc3339("2026-11-29T01:02:03.5-05:30"));
        assert!(!looks_like_rfc3339("2026-11-29T01:02:03"));
        assert!(!looks_like_rfc3339("2026-11-29T25:02:03Z"));
        assert!(!looks_like_rfc3339("2026-11-29T01:02:03.Z"));
    }
}
