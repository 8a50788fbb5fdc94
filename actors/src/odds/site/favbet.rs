//! [`Favbet`]: favbet's JSON-RPC 2.0 `frontend_api2` (see `docs/odds.md`).
//!
//! The live list is `frontend/event/get` with `service_id: 1`. One poll of a
//! game is a JSON-RPC batch of `frontend/event/get` (status, teams) and
//! `frontend/market/get` (every market) for its `event_id`, so that a poll
//! is one request. An empty event result means the event is gone.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::{check_price, ListedEvent, ParseError, Site};
use crate::odds::config::SiteSettings;
use crate::odds::messages::{EventState, MarketState, OutcomeState, PageContent};

/// The favbet adapter.
pub struct Favbet {
    name: Arc<str>,
    url: String,
    lang: String,
}

impl Favbet {
    pub fn new(settings: &SiteSettings) -> Favbet {
        Favbet {
            name: settings.name.as_str().into(),
            url: settings.base_url.clone(),
            lang: settings.lang.clone(),
        }
    }

    fn event_id_json(event: &str) -> String {
        match event.parse::<u64>() {
            Ok(n) => n.to_string(),
            Err(_) => serde_json::Value::String(event.to_owned()).to_string(),
        }
    }
}

/// A number or a string, as ids come.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id<'a> {
    Num(u64),
    #[serde(borrow)]
    Str(std::borrow::Cow<'a, str>),
}

impl Id<'_> {
    fn into_string(self) -> String {
        match self {
            Id::Num(n) => n.to_string(),
            Id::Str(s) => s.into_owned(),
        }
    }
}

#[derive(Deserialize)]
struct RpcError {
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct Response<T> {
    #[serde(default)]
    id: Option<u64>,
    result: Option<T>,
    error: Option<RpcError>,
}

impl<T> Response<T> {
    fn into_result(self, what: &'static str) -> Result<T, ParseError> {
        if let Some(e) = self.error {
            return Err(ParseError::Rpc(e.message));
        }
        self.result.ok_or(ParseError::Missing(what))
    }
}

#[derive(Deserialize)]
struct Participant {
    participant_number: u8,
    #[serde(default)]
    participant_name: String,
}

/// An event or a market: both answers share one shape so that a batch
/// reads in one pass; which fields must be present depends on the answer.
#[derive(Deserialize)]
struct Item<'a> {
    #[serde(borrow, default)]
    event_id: Option<Id<'a>>,
    #[serde(default)]
    event_status_type: String,
    #[serde(default)]
    sport_id: Option<u64>,
    #[serde(default)]
    participants: Vec<Participant>,
    #[serde(borrow, default)]
    market_id: Option<Id<'a>>,
    #[serde(default)]
    market_suspend: bool,
    #[serde(borrow, default)]
    outcomes: Vec<Outcome<'a>>,
}

#[derive(Deserialize)]
struct Outcome<'a> {
    #[serde(borrow)]
    outcome_id: Id<'a>,
    outcome_coef: f64,
    #[serde(default = "yes")]
    outcome_visible: bool,
}

fn yes() -> bool {
    true
}

fn json_err(e: serde_json::Error) -> ParseError {
    ParseError::Json(e.to_string())
}

impl Site for Favbet {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn list_request(&self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"frontend/event/get","params":{{"by":{{"lang":{},"service_id":1}}}}}}"#,
            serde_json::Value::String(self.lang.clone())
        );
        http.post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
    }

    fn parse_list(&self, body: &[u8]) -> Result<Vec<ListedEvent>, ParseError> {
        let response: Response<Vec<Item>> = serde_json::from_slice(body).map_err(json_err)?;
        response
            .into_result("result")?
            .into_iter()
            .map(|e| {
                Ok(ListedEvent {
                    id: e
                        .event_id
                        .ok_or(ParseError::Missing("event_id"))?
                        .into_string(),
                    status: e.event_status_type,
                })
            })
            .collect()
    }

    fn event_request(&self, http: &reqwest::Client, event: &str) -> reqwest::RequestBuilder {
        let lang = serde_json::Value::String(self.lang.clone());
        let id = Self::event_id_json(event);
        let body = format!(
            r#"[{{"jsonrpc":"2.0","id":1,"method":"frontend/event/get","params":{{"by":{{"lang":{lang},"service_id":1,"event_id":{id}}}}}}},{{"jsonrpc":"2.0","id":2,"method":"frontend/market/get","params":{{"by":{{"lang":{lang},"service_id":1,"event_id":{id}}}}}}}]"#
        );
        http.post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
    }

    fn parse_event(&self, body: &[u8], event: &str) -> Result<PageContent, ParseError> {
        parse_event(body, event)
    }
}

/// Reads a poll's batch answer (answer 1: the event, answer 2: its markets).
pub fn parse_event(body: &[u8], event: &str) -> Result<PageContent, ParseError> {
    let parts: Vec<Response<Vec<Item>>> = serde_json::from_slice(body).map_err(json_err)?;
    let mut events = None;
    let mut markets = None;
    for part in parts {
        match part.id {
            Some(1) => events = Some(part.into_result("event answer")?),
            Some(2) => markets = Some(part.into_result("market answer")?),
            _ => return Err(ParseError::Missing("answer id 1 or 2")),
        }
    }
    let events = events.ok_or(ParseError::Missing("event answer"))?;
    let mut found = None;
    for e in events {
        let id = e.event_id.as_ref().ok_or(ParseError::Missing("event_id"))?;
        let same = match id {
            Id::Num(n) => event.parse::<u64>() == Ok(*n),
            Id::Str(s) => s == event,
        };
        if same {
            found = Some(e);
            break;
        }
    }
    let Some(found) = found else {
        return Ok(PageContent::Gone);
    };
    let markets = markets.ok_or(ParseError::Missing("market answer"))?;
    let team = |n: u8| {
        found
            .participants
            .iter()
            .find(|p| p.participant_number == n)
            .map(|p| p.participant_name.clone())
            .unwrap_or_default()
    };
    let mut state = EventState {
        home: team(1),
        away: team(2),
        sport: found.sport_id.map(|s| s.to_string()).unwrap_or_default(),
        status: found.event_status_type.clone(),
        markets: BTreeMap::new(),
    };
    for market in markets {
        let id = market.market_id.ok_or(ParseError::Missing("market_id"))?;
        let mut outcomes = BTreeMap::new();
        for o in market.outcomes {
            let price = check_price(o.outcome_coef, &o.outcome_coef.to_string())?;
            outcomes.insert(
                o.outcome_id.into_string(),
                OutcomeState {
                    price,
                    visible: o.outcome_visible,
                },
            );
        }
        state.markets.insert(
            id.into_string(),
            MarketState {
                suspended: market.market_suspend,
                outcomes,
            },
        );
    }
    Ok(PageContent::Event(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"[
      {"jsonrpc":"2.0","id":1,"result":[{"event_id":17,"event_dt":1,"event_status_type":"inprogress","sport_id":1,
        "participants":[{"participant_number":1,"participant_name":"Dynamo"},{"participant_number":2,"participant_name":"Shakhtar"}]}]},
      {"jsonrpc":"2.0","id":2,"result":[{"market_id":5,"market_name":"1X2","market_template_id":1,"result_type_id":1,"market_suspend":true,
        "outcomes":[{"outcome_id":51,"outcome_coef":1.85,"outcome_visible":true},{"outcome_id":52,"outcome_coef":3.4,"outcome_visible":false}]}]}
    ]"#;

    #[test]
    fn reads_event_markets_and_outcomes() {
        let PageContent::Event(e) = parse_event(PAGE.as_bytes(), "17").unwrap() else {
            panic!("gone")
        };
        assert_eq!((e.home.as_str(), e.away.as_str()), ("Dynamo", "Shakhtar"));
        assert_eq!(e.status, "inprogress");
        let m = &e.markets["5"];
        assert!(m.suspended);
        assert_eq!(m.outcomes["51"].price, 1.85);
        assert!(!m.outcomes["52"].visible);
    }

    #[test]
    fn an_empty_event_answer_means_gone() {
        let page = r#"[{"jsonrpc":"2.0","id":1,"result":[]},{"jsonrpc":"2.0","id":2,"result":[]}]"#;
        assert_eq!(
            parse_event(page.as_bytes(), "17").unwrap(),
            PageContent::Gone
        );
    }

    #[test]
    fn bad_pages_are_errors_not_guesses() {
        for page in [
            "<html>blocked</html>",
            "[]",
            r#"[{"jsonrpc":"2.0","id":1,"error":{"message":"denied"}}]"#,
            r#"{"jsonrpc":"2.0","id":1,"result":[]}"#,
            &PAGE.replace("1.85", "-2"),
            &PAGE.replace("\"outcome_coef\":1.85", "\"outcome_coef\":\"x\""),
        ] {
            assert!(parse_event(page.as_bytes(), "17").is_err(), "{page}");
        }
    }

    #[test]
    fn reads_the_live_list_and_its_errors() {
        let site = Favbet::new(&SiteSettings::default());
        let list = site
            .parse_list(br#"{"jsonrpc":"2.0","id":1,"result":[{"event_id":3,"event_status_type":"notstarted"},{"event_id":"x9"}]}"#)
            .unwrap();
        assert_eq!(
            list[0],
            ListedEvent {
                id: "3".into(),
                status: "notstarted".into()
            }
        );
        assert_eq!(list[1].id, "x9");
        assert!(site.parse_list(br#"{"error":{"message":"no"}}"#).is_err());
        assert!(site.parse_list(b"nope").is_err());
    }
}
