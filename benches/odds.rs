//! The odds pipeline's pure steps: reading one event page with each site
//! adapter (`favbet` JSON-RPC and the CSS-selector `html` one) and
//! comparing two snapshots of a game (`differ::diff`).
//!
//! The pages are the bookmaker simulator's own answers (`tasklet sim
//! bookmaker`), fetched once over loopback before timing starts, so the
//! adapters read exactly what the pipeline reads in the tests and benches.
//!
//! `cargo bench --bench odds`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tasklet::sim::bookmaker::{Bookmaker, BookmakerArgs, Format};
use tasklet_actors::odds::diff;
use tasklet_actors::odds::messages::{EventState, GameKey, MarketState, OutcomeState, PageContent};
use tasklet_actors::odds::site::{self, Site};
use tasklet_actors::odds::{SiteKind, SiteSettings};

/// One event page as a site served it, with the adapter that reads it.
struct Page {
    site: Arc<dyn Site>,
    event: String,
    body: Vec<u8>,
}

/// Starts the simulator in `format`, and fetches its live list and the page
/// of the first in-progress game (the richest kind).
fn fetch_page(format: Format) -> Page {
    actix_rt::System::new().block_on(async move {
        let sim = Bookmaker::start(BookmakerArgs {
            games: 20,
            format,
            ..BookmakerArgs::default()
        })
        .await
        .expect("the simulator starts");
        let site = site::build(&SiteSettings {
            name: "bench".to_owned(),
            kind: match format {
                Format::Favbet => SiteKind::Favbet,
                Format::Html => SiteKind::Html,
            },
            base_url: sim.site_url(),
            ..SiteSettings::default()
        })
        .expect("the site settings are valid");
        let http = reqwest::Client::new();
        let list = site
            .list_request(&http)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("the list answers")
            .bytes()
            .await
            .expect("the list reads");
        let listed = site.parse_list(&list).expect("the list parses");
        let event = listed
            .iter()
            .find(|e| e.status == "inprogress")
            .or(listed.first())
            .expect("the simulator lists games")
            .id
            .clone();
        let body = site
            .event_request(&http, &event)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("the event answers")
            .bytes()
            .await
            .expect("the event reads")
            .to_vec();
        sim.stop().await;
        Page { site, event, body }
    })
}

fn event_of(page: &Page) -> EventState {
    match page.site.parse_event(&page.body, &page.event) {
        Ok(PageContent::Event(e)) => e,
        other => panic!("the simulator's page reads as an event, not {other:?}"),
    }
}

/// A game as a busy site shows it: `markets` markets of three outcomes.
fn wide_event(markets: usize) -> EventState {
    let markets = (0..markets)
        .map(|m| {
            let outcomes = (0..3)
                .map(|o| {
                    let price = 1.5 + (m * 3 + o) as f64 / 100.0;
                    (
                        format!("{m}{o:02}"),
                        OutcomeState {
                            price,
                            visible: true,
                        },
                    )
                })
                .collect();
            (
                format!("{m:05}"),
                MarketState {
                    suspended: false,
                    outcomes,
                },
            )
        })
        .collect::<BTreeMap<_, _>>();
    EventState {
        home: "Dynamo".to_owned(),
        away: "Shakhtar".to_owned(),
        sport: "1".to_owned(),
        status: "inprogress".to_owned(),
        markets,
    }
}

/// `event` with every `every`-th outcome's price moved and one market
/// suspended: the shape of a poll that found something.
fn moved(event: &EventState, every: usize) -> EventState {
    let mut next = event.clone();
    let mut i = 0;
    for market in next.markets.values_mut() {
        for outcome in market.outcomes.values_mut() {
            if i % every == 0 {
                outcome.price += 0.05;
            }
            i += 1;
        }
    }
    if let Some(market) = next.markets.values_mut().next() {
        market.suspended = true;
    }
    next
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("odds_parse");
    for (name, format) in [("favbet", Format::Favbet), ("html", Format::Html)] {
        let page = fetch_page(format);
        event_of(&page);
        group.throughput(Throughput::Bytes(page.body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                page.site
                    .parse_event(black_box(&page.body), &page.event)
                    .expect("parses")
            })
        });
    }
    group.finish();
}

fn bench_diff(c: &mut Criterion) {
    let game = GameKey {
        site: Arc::from("bench"),
        event: "1".to_owned(),
    };
    let simulated = event_of(&fetch_page(Format::Favbet));
    let mut group = c.benchmark_group("odds_diff");
    for (name, before) in [("simulator", simulated), ("100_markets", wide_event(100))] {
        let after = moved(&before, 4);
        let outcomes: usize = before.markets.values().map(|m| m.outcomes.len()).sum();
        group.throughput(Throughput::Elements(outcomes as u64));
        group.bench_function(format!("unchanged/{name}"), |b| {
            b.iter(|| diff(&game, Some(black_box(&before)), black_box(&before), 2, 0))
        });
        group.bench_function(format!("changed/{name}"), |b| {
            b.iter(|| diff(&game, Some(black_box(&before)), black_box(&after), 2, 0))
        });
        group.bench_function(format!("first_seen/{name}"), |b| {
            b.iter(|| diff(&game, None, black_box(&after), 1, 0))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_parse, bench_diff
}
criterion_main!(benches);
