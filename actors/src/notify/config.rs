//! `[notify]`: the notify pipeline's settings.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `[notify]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    /// Start this pipeline with the daemon.
    pub enabled: bool,
    /// The broker, `amqp://user:password@host:port/vhost`.
    pub amqp_url: String,
    /// The queue transaction statuses are published to.
    pub queue: String,
    /// Declare the queue as a quorum queue (replicated) instead of a classic one.
    pub quorum: bool,
    /// The dead-letter exchange (fanout) poison messages go to.
    pub dead_letter_exchange: String,
    /// The queue bound to the dead-letter exchange.
    pub dead_letter_queue: String,
    /// Unacknowledged deliveries the broker may hand this consumer at once.
    pub prefetch: u16,
    /// First delay before reconnecting to the broker; doubles up to `reconnect_max_ms`.
    pub reconnect_initial_ms: u64,
    /// Longest delay between two reconnection attempts.
    pub reconnect_max_ms: u64,
    /// The Viber REST API base (`https://chatapi.viber.com` in production).
    pub viber_base_url: String,
    /// The sender name shown to the user (at most 28 characters).
    pub sender_name: String,
    /// How long one send_message request may take.
    pub request_timeout_ms: u64,
    /// How long opening a connection to Viber may take.
    pub connect_timeout_ms: u64,
    /// Attempts per message (first send + retries) for retryable failures.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt up to `retry_max_ms`, each with jitter.
    pub retry_initial_ms: u64,
    /// Longest delay between two attempts.
    pub retry_max_ms: u64,
    /// Texts per status, then per locale; `{amount}`, `{currency}`,
    /// `{transaction_id}`, `{name}`, `{status}` are replaced. A status
    /// without a template uses `default`.
    pub templates: BTreeMap<String, BTreeMap<String, String>>,
    /// The locale used when a message's locale has no template.
    pub default_locale: String,
}

/// The template key used when a status has none of its own.
pub const DEFAULT_TEMPLATE: &str = "default";

fn templates() -> BTreeMap<String, BTreeMap<String, String>> {
    let entries: &[(&str, &str, &str)] = &[
        (
            "created",
            "en",
            "Transaction {transaction_id} for {amount} {currency} was created.",
        ),
        (
            "created",
            "uk",
            "Транзакцію {transaction_id} на {amount} {currency} створено.",
        ),
        (
            "pending",
            "en",
            "Transaction {transaction_id} for {amount} {currency} is being processed.",
        ),
        (
            "pending",
            "uk",
            "Транзакція {transaction_id} на {amount} {currency} обробляється.",
        ),
        (
            "completed",
            "en",
            "{name}, your payment of {amount} {currency} is complete.",
        ),
        (
            "completed",
            "uk",
            "{name}, ваш платіж на {amount} {currency} виконано.",
        ),
        (
            "failed",
            "en",
            "{name}, your payment of {amount} {currency} failed.",
        ),
        (
            "failed",
            "uk",
            "{name}, ваш платіж на {amount} {currency} не вдався.",
        ),
        (
            "refunded",
            "en",
            "{name}, {amount} {currency} was refunded to you.",
        ),
        (
            "refunded",
            "uk",
            "{name}, вам повернуто {amount} {currency}.",
        ),
        (
            DEFAULT_TEMPLATE,
            "en",
            "Transaction {transaction_id} ({amount} {currency}): {status}.",
        ),
        (
            DEFAULT_TEMPLATE,
            "uk",
            "Транзакція {transaction_id} ({amount} {currency}): {status}.",
        ),
    ];
    let mut map: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (status, locale, text) in entries {
        map.entry((*status).to_owned())
            .or_default()
            .insert((*locale).to_owned(), (*text).to_owned());
    }
    map
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            enabled: false,
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            queue: "tasklet.transactions".to_owned(),
            quorum: false,
            dead_letter_exchange: "tasklet.transactions.dlx".to_owned(),
            dead_letter_queue: "tasklet.transactions.dead".to_owned(),
            prefetch: 256,
            reconnect_initial_ms: 100,
            reconnect_max_ms: 5_000,
            viber_base_url: "https://chatapi.viber.com".to_owned(),
            sender_name: "tasklet".to_owned(),
            request_timeout_ms: 5_000,
            connect_timeout_ms: 2_000,
            max_attempts: 8,
            retry_initial_ms: 100,
            retry_max_ms: 5_000,
            templates: templates(),
            default_locale: "uk".to_owned(),
        }
    }
}

impl NotifySettings {
    /// Refuses impossible values; each error names its key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.amqp_url.starts_with("amqp://") || self.amqp_url.starts_with("amqps://")) {
            return Err(("amqp_url", "must start with amqp:// or amqps://".to_owned()));
        }
        for (key, value) in [
            ("queue", &self.queue),
            ("dead_letter_exchange", &self.dead_letter_exchange),
            ("dead_letter_queue", &self.dead_letter_queue),
        ] {
            if value.is_empty() || value.len() > 255 {
                return Err((key, "must be 1 to 255 bytes long".to_owned()));
            }
        }
        if self.queue == self.dead_letter_queue {
            return Err((
                "dead_letter_queue",
                "must differ from notify.queue".to_owned(),
            ));
        }
        if self.prefetch == 0 {
            return Err(("prefetch", "must be at least 1".to_owned()));
        }
        if self.reconnect_initial_ms == 0 || self.reconnect_initial_ms > self.reconnect_max_ms {
            return Err((
                "reconnect_initial_ms",
                "must be at least 1 and at most reconnect_max_ms".to_owned(),
            ));
        }
        if !(self.viber_base_url.starts_with("http://")
            || self.viber_base_url.starts_with("https://"))
        {
            return Err((
                "viber_base_url",
                "must start with http:// or https://".to_owned(),
            ));
        }
        if self.sender_name.is_empty() || self.sender_name.chars().count() > 28 {
            return Err(("sender_name", "must be 1 to 28 characters".to_owned()));
        }
        if self.request_timeout_ms == 0 {
            return Err(("request_timeout_ms", "must be at least 1".to_owned()));
        }
        if self.connect_timeout_ms == 0 {
            return Err(("connect_timeout_ms", "must be at least 1".to_owned()));
        }
        if self.max_attempts == 0 {
            return Err(("max_attempts", "must be at least 1".to_owned()));
        }
        if self.retry_initial_ms == 0 || self.retry_initial_ms > self.retry_max_ms {
            return Err((
                "retry_initial_ms",
                "must be at least 1 and at most retry_max_ms".to_owned(),
            ));
        }
        let Some(default) = self.templates.get(DEFAULT_TEMPLATE) else {
            return Err((
                "templates",
                format!("needs a [notify.templates.{DEFAULT_TEMPLATE}] table"),
            ));
        };
        if !default.contains_key(&self.default_locale) {
            return Err((
                "default_locale",
                format!(
                    "{:?} has no text in notify.templates.{DEFAULT_TEMPLATE}",
                    self.default_locale
                ),
            ));
        }
        for (status, locales) in &self.templates {
            for (locale, text) in locales {
                if text.is_empty() || text.len() > 7000 {
                    return Err((
                        "templates",
                        format!("{status}.{locale}: must be 1 to 7000 bytes"),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// The template for `status` in `locale`, falling back to the default
    /// locale, then to the `default` template.
    pub fn template(&self, status: &str, locale: &str) -> &str {
        let pick = |s: &str| {
            self.templates.get(s).and_then(|by_locale| {
                by_locale
                    .get(locale)
                    .or_else(|| by_locale.get(&self.default_locale))
            })
        };
        pick(status)
            .or_else(|| pick(DEFAULT_TEMPLATE))
            .map(String::as_str)
            .unwrap_or("{transaction_id}: {status}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        NotifySettings::default().validate().unwrap();
    }

    #[test]
    fn impossible_values_name_their_key() {
        type Breaker = Box<dyn Fn(&mut NotifySettings)>;
        let cases: Vec<(&str, Breaker)> = vec![
            ("amqp_url", Box::new(|s| s.amqp_url = "http://x".into())),
            ("queue", Box::new(|s| s.queue = String::new())),
            (
                "dead_letter_queue",
                Box::new(|s| s.dead_letter_queue = s.queue.clone()),
            ),
            ("prefetch", Box::new(|s| s.prefetch = 0)),
            ("max_attempts", Box::new(|s| s.max_attempts = 0)),
            ("retry_initial_ms", Box::new(|s| s.retry_initial_ms = 0)),
            (
                "reconnect_initial_ms",
                Box::new(|s| s.reconnect_initial_ms = s.reconnect_max_ms + 1),
            ),
            (
                "viber_base_url",
                Box::new(|s| s.viber_base_url = "x".into()),
            ),
            ("sender_name", Box::new(|s| s.sender_name = "x".repeat(29))),
            ("request_timeout_ms", Box::new(|s| s.request_timeout_ms = 0)),
            (
                "templates",
                Box::new(|s| {
                    s.templates.remove(DEFAULT_TEMPLATE);
                }),
            ),
            (
                "default_locale",
                Box::new(|s| s.default_locale = "fr".into()),
            ),
        ];
        for (key, break_it) in cases {
            let mut s = NotifySettings::default();
            break_it(&mut s);
            assert_eq!(s.validate().unwrap_err().0, key);
        }
    }

    #[test]
    fn template_falls_back_to_default_locale_then_default_status() {
        let s = NotifySettings::default();
        assert!(s.template("completed", "en").starts_with("{name}, your"));
        assert!(s.template("completed", "fr").starts_with("{name}, ваш"));
        assert!(s.template("chargeback", "en").starts_with("Transaction"));
    }

    #[test]
    fn a_section_parses_from_toml() {
        let s: NotifySettings = toml_like(
            r#"{"enabled": true, "prefetch": 10, "templates": {"default": {"uk": "x"}}}"#,
        );
        assert!(s.enabled);
        assert_eq!(s.prefetch, 10);
        assert_eq!(s.templates.len(), 1);
        s.validate().unwrap();
        let bad = serde_json::from_str::<NotifySettings>(r#"{"nope": 1}"#);
        assert!(bad.is_err());
    }

    fn toml_like(json: &str) -> NotifySettings {
        serde_json::from_str(json).unwrap()
    }
}
