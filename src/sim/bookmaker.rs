//! `tasklet sim bookmaker`: a bookmaker site on loopback whose live games
//! move their odds, suspend and reopen markets, start and finish; it keeps
//! the ground truth of every change it made (`GET /truth?since=`), and can
//! inject faults per game or globally (`POST /faults`, `DELETE /faults`).
//!
//! It speaks favbet's JSON-RPC (`POST /frontend_api2/`) or serves HTML
//! pages (`GET /live`, `GET /event/{id}`) read by the default selectors of
//! the `html` adapter. Startable in-process: [`Bookmaker::start`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tasklet_actors::store::models::now_us;

/// Which protocol the simulator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Favbet,
    Html,
}

/// `tasklet sim bookmaker …`
#[derive(Debug, Clone, clap::Args)]
pub struct BookmakerArgs {
    /// Live games kept on the site (a finished game is replaced by a new one).
    #[arg(long, default_value_t = 100)]
    pub games: usize,
    #[arg(long, value_enum, default_value_t = Format::Favbet)]
    pub format: Format,
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub addr: String,
    /// Mean time between two changes of one game (exponentially distributed).
    #[arg(long, default_value_t = 4_000)]
    pub change_every_ms: u64,
    /// Mean length of a game in progress.
    #[arg(long, default_value_t = 90)]
    pub game_length_s: u64,
    /// How long a new game stays "notstarted" with no change (the time a
    /// watcher has to discover it).
    #[arg(long, default_value_t = 4_000)]
    pub prematch_ms: u64,
    /// How long a finished game stays listed.
    #[arg(long, default_value_t = 3_000)]
    pub finished_ms: u64,
    /// Random seed (same seed, same games).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
}

impl Default for BookmakerArgs {
    fn default() -> Self {
        Self {
            games: 100,
            format: Format::Favbet,
            addr: "127.0.0.1:0".to_owned(),
            change_every_ms: 4_000,
            game_length_s: 90,
            prematch_ms: 4_000,
            finished_ms: 3_000,
            seed: 1,
            workers: 1,
        }
    }
}

/// One change the simulator made, as the pipeline should record it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthChange {
    pub event: String,
    /// Empty for a change of the event.
    pub market: String,
    /// Empty for a change of a market or of the event.
    pub outcome: String,
    /// price, added, removed, suspended, unsuspended, status.
    pub kind: String,
    pub new_price: Option<f64>,
    pub status: Option<String>,
    pub at_us: i64,
}

/// A fault the site shows for a game (or for every request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Fault {
    /// Answer after `ms`.
    Slow { ms: u64 },
    /// HTTP 500.
    Error,
    /// HTTP 429 with `Retry-After: retry_after_s`.
    Throttle { retry_after_s: u64 },
    /// A page the adapter cannot read.
    Malformed,
}

/// `POST /faults`: set (`fault`) or clear (`fault: null`) the fault of
/// `game`, or the global one when `game` is absent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRequest {
    pub game: Option<String>,
    pub fault: Option<Fault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    NotStarted,
    InProgress,
    Finished,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::NotStarted => "notstarted",
            Status::InProgress => "inprogress",
            Status::Finished => "finished",
        }
    }
}

struct Outcome {
    cents: u32,
}

struct Market {
    template: u32,
    suspended: bool,
    outcomes: BTreeMap<u64, Outcome>,
}

struct Game {
    id: u64,
    home: String,
    away: String,
    status: Status,
    /// When the status next moves on.
    phase_ends_us: i64,
    next_change_us: i64,
    markets: BTreeMap<u64, Market>,
    next_market: u64,
}

struct World {
    args: BookmakerArgs,
    rng: StdRng,
    games: BTreeMap<u64, Game>,
    next_id: u64,
    truth: Vec<TruthChange>,
    global_fault: Option<Fault>,
    faults: HashMap<String, Fault>,
    requests: u64,
    /// When each game's page was rendered (what a poll saw), for scoring.
    polls: HashMap<u64, Vec<i64>>,
    /// Requests for each game's page, faulted ones included.
    hits: BTreeMap<String, u64>,
}

const TEAMS: &[&str] = &[
    "Dynamo",
    "Shakhtar",
    "Zorya",
    "Vorskla",
    "Dnipro",
    "Karpaty",
    "Metalist",
    "Oleksandriya",
    "Kolos",
    "Rukh",
    "Chornomorets",
    "Obolon",
    "Veres",
    "Polissya",
    "Kryvbas",
    "Inhulets",
];

impl World {
    /// Logs one change of the ground truth.
    #[allow(clippy::too_many_arguments)]
    fn truth(
        &mut self,
        event: u64,
        market: &str,
        outcome: &str,
        kind: &str,
        price: Option<u32>,
        status: Option<&str>,
        at_us: i64,
    ) {
        self.truth.push(TruthChange {
            event: event.to_string(),
            market: market.to_owned(),
            outcome: outcome.to_owned(),
            kind: kind.to_owned(),
            new_price: price.map(|c| f64::from(c) / 100.0),
            status: status.map(str::to_owned),
            at_us,
        });
    }

    fn exp_ms(&mut self, mean_ms: u64) -> i64 {
        let u: f64 = self.rng.random_range(1e-9..1.0);
        (-u.ln() * mean_ms as f64 * 1000.0) as i64
    }

    fn new_market(&mut self, game: u64, template: u32, now: i64) -> (u64, Market) {
        let n = if template == 1 { 3 } else { 2 };
        let g = self.games.get_mut(&game).map(|g| {
            g.next_market += 1;
            g.next_market
        });
        let id = game * 1_000 + g.unwrap_or(1);
        let mut outcomes = BTreeMap::new();
        for k in 0..n {
            let cents = self.rng.random_range(120..600);
            let oid = id * 10 + k;
            outcomes.insert(oid, Outcome { cents });
            self.truth(
                game,
                &id.to_string(),
                &oid.to_string(),
                "added",
                Some(cents),
                None,
                now,
            );
        }
        (
            id,
            Market {
                template,
                suspended: false,
                outcomes,
            },
        )
    }

    /// A new game; with `spread`, somewhere in its life (the site's start).
    fn spawn_game(&mut self, now: i64, spread: bool) {
        self.next_id += 1;
        let id = self.next_id;
        let home = TEAMS[self.rng.random_range(0..TEAMS.len())].to_owned();
        let mut away = TEAMS[self.rng.random_range(0..TEAMS.len())].to_owned();
        if away == home {
            away.push_str(" II");
        }
        let prematch = self.args.prematch_ms as i64 * 1000;
        let length = self.exp_ms(self.args.game_length_s * 1000).max(10_000_000);
        let (status, phase_ends_us) = if spread && self.rng.random_bool(0.7) {
            (
                Status::InProgress,
                now + self.rng.random_range(0..length.max(1)),
            )
        } else {
            (Status::NotStarted, now + prematch)
        };
        self.games.insert(
            id,
            Game {
                id,
                home,
                away,
                status,
                phase_ends_us,
                next_change_us: now,
                markets: BTreeMap::new(),
                next_market: 0,
            },
        );
        for template in [1u32, 50, 190] {
            let (mid, market) = self.new_market(id, template, now);
            if let Some(g) = self.games.get_mut(&id) {
                g.markets.insert(mid, market);
            }
        }
        let first =
            now.max(phase_ends_us.min(now + prematch)) + self.exp_ms(self.args.change_every_ms);
        if let Some(g) = self.games.get_mut(&id) {
            g.next_change_us = if status == Status::NotStarted {
                phase_ends_us
            } else {
                first
            };
        }
    }

    /// Moves the world to `now`.
    fn tick(&mut self, now: i64) {
        let ids: Vec<u64> = self.games.keys().copied().collect();
        for id in ids {
            let (status, phase_ends, next_change) = match self.games.get(&id) {
                Some(g) => (g.status, g.phase_ends_us, g.next_change_us),
                None => continue,
            };
            if now >= phase_ends {
                match status {
                    Status::NotStarted => {
                        let length = self.exp_ms(self.args.game_length_s * 1000).max(10_000_000);
                        let gap = self.exp_ms(self.args.change_every_ms);
                        if let Some(g) = self.games.get_mut(&id) {
                            g.status = Status::InProgress;
                            g.phase_ends_us = now + length;
                            g.next_change_us = now + gap;
                        }
                        self.truth(id, "", "", "status", None, Some("inprogress"), now);
                    }
                    Status::InProgress => {
                        let finished = self.args.finished_ms as i64 * 1000;
                        if let Some(g) = self.games.get_mut(&id) {
                            g.status = Status::Finished;
                            g.phase_ends_us = now + finished;
                        }
                        self.truth(id, "", "", "status", None, Some("finished"), now);
                    }
                    Status::Finished => {
                        self.games.remove(&id);
                        self.faults.remove(&id.to_string());
                        self.truth(id, "", "", "removed", None, None, now);
                        self.spawn_game(now, false);
                    }
                }
                continue;
            }
            if status == Status::InProgress && now >= next_change {
                self.change(id, now);
                let gap = self.exp_ms(self.args.change_every_ms);
                if let Some(g) = self.games.get_mut(&id) {
                    g.next_change_us = now + gap;
                }
            }
        }
    }

    /// One random change of a game in progress.
    fn change(&mut self, id: u64, now: i64) {
        let roll: f64 = self.rng.random();
        let Some(game) = self.games.get(&id) else {
            return;
        };
        let market_ids: Vec<u64> = game.markets.keys().copied().collect();
        if market_ids.is_empty() {
            let (mid, market) = self.new_market(id, 1, now);
            if let Some(g) = self.games.get_mut(&id) {
                g.markets.insert(mid, market);
            }
            return;
        }
        let mid = market_ids[self.rng.random_range(0..market_ids.len())];
        if roll < 0.82 {
            // A price moves (not on a suspended market).
            let Some(market) = self.games.get(&id).and_then(|g| g.markets.get(&mid)) else {
                return;
            };
            if market.suspended {
                return;
            }
            let oids: Vec<u64> = market.outcomes.keys().copied().collect();
            let oid = oids[self.rng.random_range(0..oids.len())];
            let step = self.rng.random_range(1..=15) as i64
                * if self.rng.random_bool(0.5) { 1 } else { -1 };
            let Some(o) = self
                .games
                .get_mut(&id)
                .and_then(|g| g.markets.get_mut(&mid))
                .and_then(|m| m.outcomes.get_mut(&oid))
            else {
                return;
            };
            let cents = (i64::from(o.cents) + step).clamp(101, 5_000) as u32;
            if cents == o.cents {
                return;
            }
            o.cents = cents;
            self.truth(
                id,
                &mid.to_string(),
                &oid.to_string(),
                "price",
                Some(cents),
                None,
                now,
            );
        } else if roll < 0.94 {
            let Some(market) = self
                .games
                .get_mut(&id)
                .and_then(|g| g.markets.get_mut(&mid))
            else {
                return;
            };
            market.suspended = !market.suspended;
            let kind = if market.suspended {
                "suspended"
            } else {
                "unsuspended"
            };
            self.truth(id, &mid.to_string(), "", kind, None, None, now);
        } else if roll < 0.97 && market_ids.len() > 1 {
            let Some(market) = self.games.get_mut(&id).and_then(|g| g.markets.remove(&mid)) else {
                return;
            };
            for oid in market.outcomes.keys() {
                self.truth(
                    id,
                    &mid.to_string(),
                    &oid.to_string(),
                    "removed",
                    None,
                    None,
                    now,
                );
            }
        } else {
            let template = [40u32, 779, 74][self.rng.random_range(0..3)];
            let (new_id, market) = self.new_market(id, template, now);
            if let Some(g) = self.games.get_mut(&id) {
                g.markets.insert(new_id, market);
            }
        }
    }

    fn fault_for(&self, game: Option<&str>) -> Option<Fault> {
        game.and_then(|g| self.faults.get(g))
            .or(self.global_fault.as_ref())
            .cloned()
    }
}

fn favbet_event(g: &Game) -> Value {
    json!({
        "event_id": g.id,
        "event_dt": 1_764_000_000 + g.id,
        "event_status_type": g.status.as_str(),
        "service_id": 1,
        "sport_id": 1,
        "tournament_id": 1,
        "tournament_name": "Premier League",
        "category_id": 1,
        "category_name": "Ukraine",
        "participants": [
            {"participant_number": 1, "participant_name": g.home},
            {"participant_number": 2, "participant_name": g.away},
        ],
        "market_count": g.markets.len(),
    })
}

fn favbet_markets(g: &Game) -> Value {
    let markets: Vec<Value> = g
        .markets
        .iter()
        .map(|(mid, m)| {
            let outcomes: Vec<Value> = m
                .outcomes
                .iter()
                .enumerate()
                .map(|(k, (oid, o))| {
                    json!({
                        "outcome_id": oid,
                        "outcome_coef": f64::from(o.cents) / 100.0,
                        "outcome_param": "",
                        "outcome_type_id": k + 1,
                        "outcome_visible": true,
                        "outcome_name": format!("O{}", k + 1),
                        "participant_number": 0,
                    })
                })
                .collect();
            json!({
                "market_id": mid,
                "market_name": format!("Market {}", m.template),
                "market_template_id": m.template,
                "result_type_id": 1,
                "market_suspend": m.suspended,
                "market_has_param": false,
                "market_order": 1,
                "outcomes": outcomes,
            })
        })
        .collect();
    Value::Array(markets)
}

fn html_event(g: &Game) -> String {
    let mut page = String::with_capacity(2_048);
    let _ = write!(
        page,
        r#"<!doctype html><html><head><title>{home} - {away}</title></head><body><div class="event" data-event-id="{id}"><h1><span class="home">{home}</span> - <span class="away">{away}</span></h1><span class="sport">1</span><span class="status">{status}</span>"#,
        id = g.id,
        home = g.home,
        away = g.away,
        status = g.status.as_str()
    );
    for (mid, m) in &g.markets {
        let _ = write!(
            page,
            r#"<div class="market" data-market-id="{mid}" data-suspended="{}"><h2>Market {}</h2>"#,
            m.suspended, m.template
        );
        for (oid, o) in &m.outcomes {
            let _ = write!(
                page,
                r#"<span class="outcome" data-outcome-id="{oid}"><i>{oid}</i><b class="price">{}.{:02}</b></span>"#,
                o.cents / 100,
                o.cents % 100
            );
        }
        page.push_str("</div>");
    }
    page.push_str("</div></body></html>");
    page
}

type Shared = Arc<Mutex<World>>;

fn lock(world: &Shared) -> std::sync::MutexGuard<'_, World> {
    match world.lock() {
        Ok(w) => w,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Applies a fault, if any; `None` = answer normally.
async fn faulted(fault: Option<Fault>, malformed: &'static str) -> Option<HttpResponse> {
    match fault? {
        Fault::Slow { ms } => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            None
        }
        Fault::Error => Some(HttpResponse::InternalServerError().body("internal error")),
        Fault::Throttle { retry_after_s } => Some(
            HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", retry_after_s.to_string()))
                .body("slow down"),
        ),
        Fault::Malformed => Some(HttpResponse::Ok().body(malformed)),
    }
}

const MALFORMED_JSON: &str = r#"[{"jsonrpc":"2.0","id":1,"result":[{"event_id":"#;
const MALFORMED_HTML: &str = r#"<html><body><div class="event" data-event-id="0"><div class="market" data-market-id="1"><span class="outcome" data-outcome-id="1"><b class="price">n/a</b>"#;

/// The event id a JSON-RPC call asks for, if any.
fn asked_event(call: &Value) -> Option<String> {
    match &call["params"]["by"]["event_id"] {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

async fn favbet_api(world: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::Ok()
            .json(json!({"jsonrpc": "2.0", "id": null, "error": {"message": "parse error"}}));
    };
    let calls: Vec<Value> = match &request {
        Value::Array(calls) => calls.clone(),
        call => vec![call.clone()],
    };
    let game = calls.iter().find_map(asked_event);
    let fault = {
        let mut w = lock(&world);
        w.requests += 1;
        if let Some(g) = &game {
            *w.hits.entry(g.clone()).or_default() += 1;
        }
        w.fault_for(game.as_deref())
    };
    if let Some(response) = faulted(fault, MALFORMED_JSON).await {
        return response;
    }
    let mut w = lock(&world);
    if let Some(id) = game.as_deref().and_then(|g| g.parse::<u64>().ok()) {
        if w.games.contains_key(&id) {
            w.polls.entry(id).or_default().push(now_us());
        }
    }
    let w = w;
    let answer = |call: &Value| -> Value {
        let id = call["id"].clone();
        let event = asked_event(call).and_then(|e| e.parse::<u64>().ok());
        match call["method"].as_str() {
            Some("frontend/event/get") => {
                let result: Vec<Value> = match (asked_event(call), event) {
                    (Some(_), Some(e)) => w.games.get(&e).map(favbet_event).into_iter().collect(),
                    (Some(_), None) => Vec::new(),
                    (None, _) => w.games.values().map(favbet_event).collect(),
                };
                json!({"jsonrpc": "2.0", "id": id, "result": result})
            }
            Some("frontend/market/get") => {
                let result = event
                    .and_then(|e| w.games.get(&e))
                    .map(favbet_markets)
                    .unwrap_or_else(|| json!([]));
                json!({"jsonrpc": "2.0", "id": id, "result": result})
            }
            _ => json!({"jsonrpc": "2.0", "id": id, "error": {"message": "method not found"}}),
        }
    };
    let body = match &request {
        Value::Array(calls) => Value::Array(calls.iter().map(answer).collect()),
        call => answer(call),
    };
    drop(w);
    HttpResponse::Ok().json(body)
}

async fn html_list(world: web::Data<Shared>) -> HttpResponse {
    let fault = {
        let mut w = lock(&world);
        w.requests += 1;
        w.fault_for(None)
    };
    if let Some(response) = faulted(fault, MALFORMED_HTML).await {
        return response;
    }
    let w = lock(&world);
    let mut page = String::from("<!doctype html><html><body><ul class=\"live\">");
    for g in w.games.values() {
        let _ = write!(
            page,
            r#"<li class="event" data-event-id="{}"><a href="/event/{}">{} - {}</a> <span class="status">{}</span></li>"#,
            g.id,
            g.id,
            g.home,
            g.away,
            g.status.as_str()
        );
    }
    page.push_str("</ul></body></html>");
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page)
}

async fn html_event_page(world: web::Data<Shared>, id: web::Path<String>) -> HttpResponse {
    let fault = {
        let mut w = lock(&world);
        w.requests += 1;
        *w.hits.entry(id.to_string()).or_default() += 1;
        w.fault_for(Some(&id))
    };
    if let Some(response) = faulted(fault, MALFORMED_HTML).await {
        return response;
    }
    let mut w = lock(&world);
    if let Some(i) = id.parse::<u64>().ok().filter(|i| w.games.contains_key(i)) {
        w.polls.entry(i).or_default().push(now_us());
    }
    match id.parse::<u64>().ok().and_then(|i| w.games.get(&i)) {
        Some(g) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(html_event(g)),
        None => HttpResponse::NotFound().body("no such event"),
    }
}

#[derive(Deserialize)]
struct Since {
    since: Option<i64>,
}

async fn truth(world: web::Data<Shared>, q: web::Query<Since>) -> HttpResponse {
    let since = q.since.unwrap_or(i64::MIN);
    let w = lock(&world);
    let start = w.truth.partition_point(|t| t.at_us <= since);
    HttpResponse::Ok().json(&w.truth[start..])
}

/// `GET /polls`: when each game's page was served, by game.
async fn polls(world: web::Data<Shared>) -> HttpResponse {
    let w = lock(&world);
    let polls: BTreeMap<String, &Vec<i64>> =
        w.polls.iter().map(|(g, t)| (g.to_string(), t)).collect();
    HttpResponse::Ok().json(polls)
}

async fn set_fault(world: web::Data<Shared>, req: web::Json<FaultRequest>) -> HttpResponse {
    let mut w = lock(&world);
    let FaultRequest { game, fault } = req.into_inner();
    match (game, fault) {
        (Some(g), Some(f)) => {
            w.faults.insert(g, f);
        }
        (Some(g), None) => {
            w.faults.remove(&g);
        }
        (None, f) => w.global_fault = f,
    }
    HttpResponse::NoContent().finish()
}

async fn clear_faults(world: web::Data<Shared>) -> HttpResponse {
    let mut w = lock(&world);
    w.faults.clear();
    w.global_fault = None;
    HttpResponse::NoContent().finish()
}

async fn games(world: web::Data<Shared>) -> HttpResponse {
    let w = lock(&world);
    let ids: Vec<String> = w.games.keys().map(u64::to_string).collect();
    HttpResponse::Ok().json(json!({"games": ids, "requests": w.requests, "hits": w.hits}))
}

async fn not_here(_: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().body("not served in this format")
}

/// A running simulator.
pub struct Bookmaker {
    pub addr: SocketAddr,
    pub format: Format,
    server: ServerHandle,
    ticker: tokio::task::JoinHandle<()>,
}

impl Bookmaker {
    /// Binds `args.addr` (port 0 picks one), fills the site with games, and
    /// starts moving them.
    pub async fn start(args: BookmakerArgs) -> std::io::Result<Bookmaker> {
        let now = now_us();
        let mut world = World {
            rng: StdRng::seed_from_u64(args.seed),
            args: args.clone(),
            games: BTreeMap::new(),
            next_id: 0,
            truth: Vec::new(),
            global_fault: None,
            faults: HashMap::new(),
            requests: 0,
            polls: HashMap::new(),
            hits: BTreeMap::new(),
        };
        for _ in 0..args.games {
            world.spawn_game(now, true);
        }
        let world: Shared = Arc::new(Mutex::new(world));
        let format = args.format;
        let data = web::Data::new(world.clone());
        let server = HttpServer::new(move || {
            let app = App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .route("/truth", web::get().to(truth))
                .route("/polls", web::get().to(polls))
                .route("/faults", web::post().to(set_fault))
                .route("/faults", web::delete().to(clear_faults))
                .route("/games", web::get().to(games));
            match format {
                Format::Favbet => app.route("/frontend_api2/", web::post().to(favbet_api)),
                Format::Html => app
                    .route("/live", web::get().to(html_list))
                    .route("/event/{id}", web::get().to(html_event_page)),
            }
            .default_service(web::to(not_here))
        })
        .workers(args.workers.max(1))
        .disable_signals()
        .backlog(4_096)
        .max_connections(100_000)
        .bind(&args.addr)?;
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(10));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                lock(&world).tick(now_us());
            }
        });
        Ok(Bookmaker {
            addr,
            format,
            server: handle,
            ticker,
        })
    }

    /// The base URL a site config points at.
    pub fn site_url(&self) -> String {
        match self.format {
            Format::Favbet => format!("http://{}/frontend_api2/", self.addr),
            Format::Html => format!("http://{}", self.addr),
        }
    }

    pub async fn stop(self) {
        self.ticker.abort();
        self.server.stop(false).await;
    }
}

/// `tasklet sim bookmaker`: runs until interrupted.
pub async fn run(args: BookmakerArgs) -> anyhow::Result<()> {
    let games = args.games;
    let sim = Bookmaker::start(args).await?;
    println!(
        "bookmaker listening on http://{} ({} games, site url {})",
        sim.addr,
        games,
        sim.site_url()
    );
    tokio::signal::ctrl_c().await?;
    sim.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(games: usize) -> World {
        let mut w = World {
            rng: StdRng::seed_from_u64(7),
            args: BookmakerArgs {
                games,
                change_every_ms: 100,
                game_length_s: 10,
                prematch_ms: 100,
                finished_ms: 100,
                ..BookmakerArgs::default()
            },
            games: BTreeMap::new(),
            next_id: 0,
            truth: Vec::new(),
            global_fault: None,
            faults: HashMap::new(),
            requests: 0,
            polls: HashMap::new(),
            hits: BTreeMap::new(),
        };
        for _ in 0..games {
            w.spawn_game(0, true);
        }
        w
    }

    #[test]
    fn the_world_moves_and_keeps_its_game_count_and_truth_in_order() {
        let mut w = world(20);
        for t in 1..=6_000 {
            w.tick(t * 10_000);
        }
        assert_eq!(w.games.len(), 20);
        let kinds: std::collections::HashSet<&str> =
            w.truth.iter().map(|t| t.kind.as_str()).collect();
        for k in [
            "added",
            "price",
            "suspended",
            "unsuspended",
            "removed",
            "status",
        ] {
            assert!(kinds.contains(k), "no {k}");
        }
        assert!(w.truth.windows(2).all(|p| p[0].at_us <= p[1].at_us));
    }

    #[test]
    fn pages_render_in_both_formats() {
        let w = world(1);
        let g = w.games.values().next().unwrap();
        let page = html_event(g);
        assert!(page.contains("data-market-id"));
        let m = favbet_markets(g);
        assert_eq!(m.as_array().unwrap().len(), 3);
    }
}
