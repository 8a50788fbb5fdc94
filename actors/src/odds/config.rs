//! `[odds]`: the odds pipeline's settings, and `[[odds.sites]]`, one per
//! bookmaker site watched (a new site of a known kind is config, not code).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `[odds]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OddsSettings {
    /// Start this pipeline with the daemon.
    pub enabled: bool,
    /// How often each site's live list is read (games start and stop watching).
    pub discovery_interval_ms: u64,
    /// How often each game is polled.
    pub poll_interval_ms: u64,
    /// Each poll interval is shortened by a random amount up to this.
    pub poll_jitter_ms: u64,
    /// Whole-request timeout (connect + answer + body).
    pub request_timeout_ms: u64,
    /// Longest wait between two polls of a failing game (the backoff doubles
    /// the poll interval per failure up to this).
    pub backoff_max_ms: u64,
    /// Consecutive failures after which a game is reported stale.
    pub stale_after_failures: u32,
    /// Bounded mailboxes of the Differ, Cache and Persister.
    pub mailbox: usize,
    /// Changes per database batch of the Persister's writer.
    pub persist_batch_size: usize,
    /// A batch is committed at most this long after its first change.
    pub persist_flush_interval_ms: u64,
    /// Changes the live stream buffers per subscriber; a slower subscriber
    /// is told how many it missed.
    pub stream_buffer: usize,
    /// Bytes of an unreadable page quoted in the log.
    pub snippet_bytes: usize,
    /// The sites watched.
    pub sites: Vec<SiteSettings>,
}

impl Default for OddsSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            discovery_interval_ms: 5_000,
            poll_interval_ms: 1_000,
            poll_jitter_ms: 50,
            request_timeout_ms: 3_000,
            backoff_max_ms: 30_000,
            stale_after_failures: 5,
            mailbox: 1_024,
            persist_batch_size: 1_000,
            persist_flush_interval_ms: 100,
            stream_buffer: 4_096,
            snippet_bytes: 200,
            sites: vec![SiteSettings::default()],
        }
    }
}

impl OddsSettings {
    /// Refuses impossible values; each error names its key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let at_least_1 = |key: &'static str, v: u64| {
            if v == 0 {
                Err((key, "must be at least 1".to_owned()))
            } else {
                Ok(())
            }
        };
        at_least_1("discovery_interval_ms", self.discovery_interval_ms)?;
        at_least_1("poll_interval_ms", self.poll_interval_ms)?;
        at_least_1("request_timeout_ms", self.request_timeout_ms)?;
        at_least_1("stale_after_failures", u64::from(self.stale_after_failures))?;
        at_least_1("mailbox", self.mailbox as u64)?;
        at_least_1("persist_flush_interval_ms", self.persist_flush_interval_ms)?;
        at_least_1("stream_buffer", self.stream_buffer as u64)?;
        if self.poll_jitter_ms >= self.poll_interval_ms {
            return Err((
                "poll_jitter_ms",
                "must be less than poll_interval_ms".to_owned(),
            ));
        }
        if self.backoff_max_ms < self.poll_interval_ms {
            return Err((
                "backoff_max_ms",
                "must be at least poll_interval_ms".to_owned(),
            ));
        }
        if self.persist_batch_size == 0 || self.persist_batch_size > 10_000 {
            return Err((
                "persist_batch_size",
                "must be between 1 and 10000".to_owned(),
            ));
        }
        if self.enabled && self.sites.is_empty() {
            return Err(("sites", "name at least one site".to_owned()));
        }
        let mut names = std::collections::HashSet::new();
        for site in &self.sites {
            site.validate()?;
            if !names.insert(site.name.as_str()) {
                return Err(("sites.name", format!("{:?} is used twice", site.name)));
            }
        }
        Ok(())
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn discovery_interval(&self) -> Duration {
        Duration::from_millis(self.discovery_interval_ms)
    }
}

/// Which adapter reads a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteKind {
    /// favbet's JSON-RPC `frontend_api2`.
    Favbet,
    /// Any HTML site, read with the CSS selectors of `html`.
    Html,
}

/// One `[[odds.sites]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteSettings {
    /// Names the site in rows, logs and metrics.
    pub name: String,
    pub kind: SiteKind,
    /// favbet: the JSON-RPC endpoint; html: the site root.
    pub base_url: String,
    /// html: the live list page, relative to `base_url`.
    pub list_path: String,
    /// html: one event's page; `{id}` is replaced by the event id.
    pub event_path: String,
    /// favbet: the `lang` filter.
    pub lang: String,
    /// Requests per second to this site, all games together.
    pub rate_limit_per_s: u32,
    /// Requests in flight to this site at once.
    pub max_concurrency: usize,
    /// Idle keep-alive connections kept per host.
    pub max_idle_connections: usize,
    pub user_agent: String,
    /// Extra headers sent with every request (e.g. `x-device-id`, `Referer`).
    pub headers: BTreeMap<String, String>,
    /// html: where things are on the pages.
    pub html: HtmlSelectors,
}

impl Default for SiteSettings {
    fn default() -> Self {
        Self {
            name: "favbet".to_owned(),
            kind: SiteKind::Favbet,
            base_url: "http://127.0.0.1:8090/frontend_api2/".to_owned(),
            list_path: "/live".to_owned(),
            event_path: "/event/{id}".to_owned(),
            lang: "en".to_owned(),
            rate_limit_per_s: 2_000,
            max_concurrency: 64,
            max_idle_connections: 64,
            user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
                .to_owned(),
            headers: BTreeMap::new(),
            html: HtmlSelectors::default(),
        }
    }
}

impl SiteSettings {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.name.is_empty() {
            return Err(("sites.name", "must not be empty".to_owned()));
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err((
                "sites.base_url",
                format!("{:?} must start with http:// or https://", self.base_url),
            ));
        }
        if self.kind == SiteKind::Html && !self.event_path.contains("{id}") {
            return Err(("sites.event_path", "must contain {id}".to_owned()));
        }
        if self.rate_limit_per_s == 0 {
            return Err(("sites.rate_limit_per_s", "must be at least 1".to_owned()));
        }
        if self.max_concurrency == 0 {
            return Err(("sites.max_concurrency", "must be at least 1".to_owned()));
        }
        if self.kind == SiteKind::Html {
            self.html.validate()?;
        }
        Ok(())
    }
}

/// Where an HTML site puts things. Each value is a *pick*: `"css"` takes
/// the text of the first element matching `css`, `"css @attr"` its
/// attribute, `"@attr"` an attribute of the element itself. Picks inside
/// an item (`event_*` of the list, `market_*`, `outcome_*`) are relative
/// to that item. A flag pick (`*_suspended`, `outcome_hidden`) is true when
/// it finds a value other than `""`, `"0"` or `"false"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HtmlSelectors {
    /// List page: one element per live event.
    pub list_item: String,
    pub list_event_id: String,
    pub list_status: String,
    /// Event page: the element holding the event (its absence = event gone).
    pub event: String,
    pub event_id: String,
    pub home: String,
    pub away: String,
    pub sport: String,
    pub status: String,
    /// Event page: one element per market.
    pub market: String,
    pub market_id: String,
    pub market_suspended: String,
    /// Inside a market: one element per outcome.
    pub outcome: String,
    pub outcome_id: String,
    pub outcome_price: String,
    pub outcome_hidden: String,
}

impl Default for HtmlSelectors {
    fn default() -> Self {
        let s = |v: &str| v.to_owned();
        Self {
            list_item: s("li.event"),
            list_event_id: s("@data-event-id"),
            list_status: s(".status"),
            event: s("div.event"),
            event_id: s("@data-event-id"),
            home: s(".home"),
            away: s(".away"),
            sport: s(".sport"),
            status: s(".status"),
            market: s("div.market"),
            market_id: s("@data-market-id"),
            market_suspended: s("@data-suspended"),
            outcome: s("span.outcome"),
            outcome_id: s("@data-outcome-id"),
            outcome_price: s(".price"),
            outcome_hidden: s("@data-hidden"),
        }
    }
}

impl HtmlSelectors {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, sel) in [
            ("sites.html.list_item", &self.list_item),
            ("sites.html.event", &self.event),
            ("sites.html.market", &self.market),
            ("sites.html.outcome", &self.outcome),
        ] {
            if scraper::Selector::parse(sel).is_err() {
                return Err((key, format!("{sel:?} is not a CSS selector")));
            }
        }
        for (key, pick) in [
            ("sites.html.list_event_id", &self.list_event_id),
            ("sites.html.list_status", &self.list_status),
            ("sites.html.event_id", &self.event_id),
            ("sites.html.home", &self.home),
            ("sites.html.away", &self.away),
            ("sites.html.sport", &self.sport),
            ("sites.html.status", &self.status),
            ("sites.html.market_id", &self.market_id),
            ("sites.html.market_suspended", &self.market_suspended),
            ("sites.html.outcome_id", &self.outcome_id),
            ("sites.html.outcome_price", &self.outcome_price),
            ("sites.html.outcome_hidden", &self.outcome_hidden),
        ] {
            if let Err(e) = crate::odds::site::html::Pick::parse(pick) {
                return Err((key, e));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        OddsSettings::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut s = OddsSettings {
            poll_jitter_ms: 2_000,
            ..OddsSettings::default()
        };
        assert_eq!(s.validate().unwrap_err().0, "poll_jitter_ms");
        s.poll_jitter_ms = 0;
        s.sites[0].base_url = "ftp://x".to_owned();
        assert_eq!(s.validate().unwrap_err().0, "sites.base_url");
        s.sites[0].base_url = "http://x".to_owned();
        s.sites[0].kind = SiteKind::Html;
        s.sites[0].html.market = "div[".to_owned();
        assert_eq!(s.validate().unwrap_err().0, "sites.html.market");
        s.sites[0].html = HtmlSelectors::default();
        s.sites.push(s.sites[0].clone());
        assert_eq!(s.validate().unwrap_err().0, "sites.name");
    }
}
