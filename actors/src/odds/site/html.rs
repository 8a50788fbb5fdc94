//! [`HtmlSite`]: any HTML bookmaker site, read through the CSS selectors of
//! its `[odds.sites.html]` config (a new site is config, not code).

use std::collections::BTreeMap;
use std::sync::Arc;

use scraper::{ElementRef, Html, Selector};

use super::{check_price, ListedEvent, ParseError, Site};
use crate::odds::config::{HtmlSelectors, SiteSettings};
use crate::odds::messages::{EventState, MarketState, OutcomeState, PageContent};

/// Where one value is: the text or an attribute of an element.
#[derive(Debug, Clone)]
pub enum Pick {
    /// The trimmed text of the first element matching the selector.
    Text(Selector),
    /// An attribute of the first match, or of the element itself (`None`).
    Attr(Option<Selector>, String),
}

impl Pick {
    /// `"css"`, `"css @attr"` or `"@attr"`.
    pub fn parse(spec: &str) -> Result<Pick, String> {
        let spec = spec.trim();
        let (css, attr) = match spec.rfind('@') {
            Some(at) => (spec[..at].trim(), Some(spec[at + 1..].trim())),
            None => (spec, None),
        };
        let selector = if css.is_empty() {
            None
        } else {
            Some(Selector::parse(css).map_err(|_| format!("{css:?} is not a CSS selector"))?)
        };
        match (selector, attr) {
            (_, Some("")) => Err(format!("{spec:?} names no attribute after @")),
            (selector, Some(attr)) => Ok(Pick::Attr(selector, attr.to_owned())),
            (Some(selector), None) => Ok(Pick::Text(selector)),
            (None, None) => Err("an empty pick".to_owned()),
        }
    }

    /// The value inside (or on) `element`, if there is one.
    pub fn get(&self, element: ElementRef) -> Option<String> {
        match self {
            Pick::Text(sel) => element
                .select(sel)
                .next()
                .map(|e| e.text().collect::<String>().trim().to_owned()),
            Pick::Attr(None, attr) => element.value().attr(attr).map(str::to_owned),
            Pick::Attr(Some(sel), attr) => element
                .select(sel)
                .next()
                .and_then(|e| e.value().attr(attr))
                .map(str::to_owned),
        }
    }

    fn flag(&self, element: ElementRef) -> bool {
        self.get(element)
            .is_some_and(|v| !matches!(v.trim(), "" | "0" | "false"))
    }

    fn required(&self, element: ElementRef, what: &'static str) -> Result<String, ParseError> {
        self.get(element)
            .filter(|v| !v.is_empty())
            .ok_or(ParseError::Missing(what))
    }
}

/// Compiled selectors of one site.
struct Compiled {
    list_item: Selector,
    list_event_id: Pick,
    list_status: Pick,
    event: Selector,
    event_id: Pick,
    home: Pick,
    away: Pick,
    sport: Pick,
    status: Pick,
    market: Selector,
    market_id: Pick,
    market_suspended: Pick,
    outcome: Selector,
    outcome_id: Pick,
    outcome_price: Pick,
    outcome_hidden: Pick,
}

impl Compiled {
    fn new(s: &HtmlSelectors) -> Result<Compiled, String> {
        let sel = |v: &str| Selector::parse(v).map_err(|_| format!("{v:?} is not a CSS selector"));
        Ok(Compiled {
            list_item: sel(&s.list_item)?,
            list_event_id: Pick::parse(&s.list_event_id)?,
            list_status: Pick::parse(&s.list_status)?,
            event: sel(&s.event)?,
            event_id: Pick::parse(&s.event_id)?,
            home: Pick::parse(&s.home)?,
            away: Pick::parse(&s.away)?,
            sport: Pick::parse(&s.sport)?,
            status: Pick::parse(&s.status)?,
            market: sel(&s.market)?,
            market_id: Pick::parse(&s.market_id)?,
            market_suspended: Pick::parse(&s.market_suspended)?,
            outcome: sel(&s.outcome)?,
            outcome_id: Pick::parse(&s.outcome_id)?,
            outcome_price: Pick::parse(&s.outcome_price)?,
            outcome_hidden: Pick::parse(&s.outcome_hidden)?,
        })
    }
}

/// The generic HTML adapter.
pub struct HtmlSite {
    name: Arc<str>,
    list_url: String,
    event_url: String,
    selectors: Compiled,
}

impl HtmlSite {
    pub fn new(settings: &SiteSettings) -> Result<HtmlSite, String> {
        let base = settings.base_url.trim_end_matches('/');
        Ok(HtmlSite {
            name: settings.name.as_str().into(),
            list_url: format!("{base}{}", settings.list_path),
            event_url: format!("{base}{}", settings.event_path),
            selectors: Compiled::new(&settings.html)?,
        })
    }
}

fn text(body: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(body).map_err(|_| ParseError::Bad {
        what: "encoding",
        value: "not utf-8".to_owned(),
    })
}

impl Site for HtmlSite {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn list_request(&self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        http.get(&self.list_url)
    }

    fn parse_list(&self, body: &[u8]) -> Result<Vec<ListedEvent>, ParseError> {
        let s = &self.selectors;
        let doc = Html::parse_document(text(body)?);
        doc.select(&s.list_item)
            .map(|item| {
                Ok(ListedEvent {
                    id: s.list_event_id.required(item, "event id in the list")?,
                    status: s.list_status.get(item).unwrap_or_default(),
                })
            })
            .collect()
    }

    fn event_request(&self, http: &reqwest::Client, event: &str) -> reqwest::RequestBuilder {
        http.get(self.event_url.replace("{id}", event))
    }

    fn parse_event(&self, body: &[u8], event: &str) -> Result<PageContent, ParseError> {
        let s = &self.selectors;
        let doc = Html::parse_document(text(body)?);
        let Some(root) = doc.select(&s.event).next() else {
            return Ok(PageContent::Gone);
        };
        let id = s.event_id.required(root, "event id")?;
        if id != event {
            return Err(ParseError::Bad {
                what: "event id",
                value: id,
            });
        }
        let mut state = EventState {
            home: s.home.get(root).unwrap_or_default(),
            away: s.away.get(root).unwrap_or_default(),
            sport: s.sport.get(root).unwrap_or_default(),
            status: s.status.get(root).unwrap_or_default(),
            markets: BTreeMap::new(),
        };
        for market in root.select(&s.market) {
            let mut outcomes = BTreeMap::new();
            for outcome in market.select(&s.outcome) {
                let raw = s.outcome_price.required(outcome, "price")?;
                let price = raw.parse::<f64>().map_err(|_| ParseError::Bad {
                    what: "price",
                    value: raw.clone(),
                })?;
                outcomes.insert(
                    s.outcome_id.required(outcome, "outcome id")?,
                    OutcomeState {
                        price: check_price(price, &raw)?,
                        visible: !s.outcome_hidden.flag(outcome),
                    },
                );
            }
            state.markets.insert(
                s.market_id.required(market, "market id")?,
                MarketState {
                    suspended: s.market_suspended.flag(market),
                    outcomes,
                },
            );
        }
        Ok(PageContent::Event(state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odds::config::SiteKind;

    fn site() -> HtmlSite {
        HtmlSite::new(&SiteSettings {
            kind: SiteKind::Html,
            base_url: "http://127.0.0.1:1/".to_owned(),
            ..SiteSettings::default()
        })
        .unwrap()
    }

    const PAGE: &str = r#"<html><body><div class="event" data-event-id="7">
      <span class="home">A</span><span class="away">B</span><span class="sport">1</span><span class="status">inprogress</span>
      <div class="market" data-market-id="m1" data-suspended="true">
        <span class="outcome" data-outcome-id="o1"><b class="price">1.50</b></span>
        <span class="outcome" data-outcome-id="o2" data-hidden="1"><b class="price">2.75</b></span>
      </div>
      <div class="market" data-market-id="m2" data-suspended="false"></div>
    </div></body></html>"#;

    #[test]
    fn reads_an_event_page_by_selectors() {
        let PageContent::Event(e) = site().parse_event(PAGE.as_bytes(), "7").unwrap() else {
            panic!("gone")
        };
        assert_eq!(e.status, "inprogress");
        assert_eq!(e.home, "A");
        assert!(e.markets["m1"].suspended);
        assert!(!e.markets["m2"].suspended);
        assert_eq!(e.markets["m1"].outcomes["o1"].price, 1.5);
        assert!(!e.markets["m1"].outcomes["o2"].visible);
    }

    #[test]
    fn a_page_without_the_event_means_gone() {
        let page = "<html><body><p>not found</p></body></html>";
        assert_eq!(
            site().parse_event(page.as_bytes(), "7").unwrap(),
            PageContent::Gone
        );
    }

    #[test]
    fn bad_pages_are_errors() {
        for page in [
            PAGE.replace("1.50", "abc"),
            PAGE.replace("1.50", "0.5"),
            PAGE.replace("data-event-id=\"7\"", "data-event-id=\"8\""),
            PAGE.replace("data-outcome-id=\"o1\"", ""),
        ] {
            assert!(site().parse_event(page.as_bytes(), "7").is_err(), "{page}");
        }
        assert!(site().parse_event(&[0xff, 0xfe], "7").is_err());
    }

    #[test]
    fn reads_the_live_list() {
        let page = r#"<ul><li class="event" data-event-id="1"><span class="status">notstarted</span></li><li class="event" data-event-id="2"></li></ul>"#;
        let list = site().parse_list(page.as_bytes()).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].status, "notstarted");
        assert!(site().parse_list(b"<li class=\"event\"></li>").is_err());
    }

    #[test]
    fn picks_parse_or_say_why_not() {
        assert!(matches!(
            Pick::parse("@data-x").unwrap(),
            Pick::Attr(None, _)
        ));
        assert!(matches!(
            Pick::parse("a.b @href").unwrap(),
            Pick::Attr(Some(_), _)
        ));
        assert!(matches!(Pick::parse(".price").unwrap(), Pick::Text(_)));
        assert!(Pick::parse("").is_err());
        assert!(Pick::parse("a @").is_err());
        assert!(Pick::parse("[[ @x").is_err());
    }
}
