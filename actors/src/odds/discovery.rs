//! [`Discovery`]: keeps one Fetcher per live game of a site.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tracing::{debug, info, info_span, warn};

use super::fetcher::{Fetcher, FetcherOutputs, FetcherSettings, FINISHED};
use super::messages::{
    FetcherReport, GameKey, GameReport, ListGames, StopDiscovery, StopWatching, Vanished,
    WatchedGame,
};
use super::parser::snippet;
use super::site::client::Fetched;
use super::site::{FetchError, SiteClient};
use crate::observe;
use crate::store::models::now_us;

/// What Discovery knows of one game.
enum Watch {
    Polling {
        fetcher: Addr<Fetcher>,
        stale: bool,
    },
    /// The fetcher stopped on a finished game; waiting for it to leave the list.
    Finished,
    /// The fetcher found the page gone (removal recorded); waiting for the list.
    Gone,
}

/// Reads the site's live list every `interval`; starts a [`Fetcher`] per
/// new game and, when a game leaves the list, tells its fetcher to record
/// the removal and stop ([`StopWatching`]), or records it itself
/// ([`Vanished`] to the Differ) when the fetcher already stopped on a
/// finished game. Receives [`GameReport`] from its fetchers,
/// [`ListGames`] and [`StopDiscovery`]. Owns the map of games it watches.
pub struct Discovery {
    client: Arc<SiteClient>,
    outputs: FetcherOutputs,
    fetcher_settings: FetcherSettings,
    interval: Duration,
    snippet_bytes: usize,
    games: HashMap<String, Watch>,
    stopping: bool,
    /// Whether a list was applied yet (games found later are polled at once).
    listed_once: bool,
}

impl Discovery {
    pub fn new(
        client: Arc<SiteClient>,
        outputs: FetcherOutputs,
        fetcher_settings: FetcherSettings,
        interval: Duration,
        snippet_bytes: usize,
    ) -> Discovery {
        Discovery {
            client,
            outputs,
            fetcher_settings,
            interval,
            snippet_bytes,
            games: HashMap::new(),
            stopping: false,
            listed_once: false,
        }
    }

    fn site(&self) -> Arc<str> {
        self.client.site.name().clone()
    }

    fn discover(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        let client = self.client.clone();
        ctx.wait(
            async move { client.list().await }
                .into_actor(self)
                .map(|fetched, act, ctx| {
                    let wait = act.listed(fetched, ctx);
                    ctx.run_later(wait, |act, ctx| act.discover(ctx));
                }),
        );
    }

    /// Applies a list; answers how long to wait before the next.
    fn listed(
        &mut self,
        fetched: Result<Fetched, FetchError>,
        ctx: &mut Context<Self>,
    ) -> Duration {
        let site = self.site();
        let _span = info_span!("Discovery", pipeline = "odds", %site).entered();
        let _handled = observe::handling("Discovery");
        let body = match fetched {
            Ok(Fetched::Page(body)) => body,
            Ok(Fetched::NotFound) => {
                warn!(pipeline = "odds", actor = "Discovery", %site, "live list not found");
                return self.interval;
            }
            Err(FetchError::RetryAfter(wait)) => {
                warn!(pipeline = "odds", actor = "Discovery", %site, wait_ms = wait.as_millis() as u64, "live list: asked to wait");
                return wait.max(self.interval);
            }
            Err(error) => {
                metrics::counter!("tasklet_odds_list_failures_total", "site" => site.to_string())
                    .increment(1);
                warn!(pipeline = "odds", actor = "Discovery", %site, %error, "live list failed");
                return self.interval;
            }
        };
        let listed = match self.client.site.parse_list(&body) {
            Ok(listed) => listed,
            Err(error) => {
                metrics::counter!("tasklet_odds_unreadable_pages_total", "site" => site.to_string()).increment(1);
                warn!(pipeline = "odds", actor = "Discovery", %site, %error, snippet = %snippet(&body, self.snippet_bytes), "unreadable live list");
                return self.interval;
            }
        };
        let mut present = std::collections::HashSet::with_capacity(listed.len());
        let mut started = 0usize;
        for event in listed {
            present.insert(event.id.clone());
            if self.games.contains_key(&event.id) {
                continue;
            }
            if FINISHED.contains(&event.status.as_str()) {
                // Over before we saw it: nothing to watch.
                continue;
            }
            let game = GameKey {
                site: site.clone(),
                event: event.id.clone(),
            };
            let fetcher = Fetcher::new(
                game,
                self.client.clone(),
                self.outputs.clone(),
                self.fetcher_settings.clone(),
            );
            let fetcher = if self.listed_once {
                fetcher.eager()
            } else {
                fetcher
            };
            let fetcher = crate::supervise::start("Fetcher", |_| fetcher);
            self.games.insert(
                event.id,
                Watch::Polling {
                    fetcher,
                    stale: false,
                },
            );
            started += 1;
        }
        self.listed_once = true;
        let left: Vec<String> = self
            .games
            .keys()
            .filter(|id| !present.contains(*id))
            .cloned()
            .collect();
        for id in &left {
            let fetcher = match self.games.remove(id) {
                Some(Watch::Polling { fetcher, .. }) => Some(fetcher),
                Some(Watch::Finished) => None,
                Some(Watch::Gone) | None => continue,
            };
            let vanished = Vanished {
                game: GameKey {
                    site: site.clone(),
                    event: id.clone(),
                },
                observed_at_us: now_us(),
            };
            let to = self.outputs.vanished.clone();
            ctx.spawn(
                async move {
                    if let Some(fetcher) = fetcher {
                        let stop = fetcher.send(StopWatching { vanished: true });
                        if observe::queued("Fetcher", stop).await.is_ok() {
                            // The fetcher records the removal itself.
                            return;
                        }
                        // It stopped already (finished, its report still on
                        // the way): record the removal here.
                    }
                    if let Err(error) = observe::queued("Differ", to.send(vanished)).await {
                        warn!(pipeline = "odds", actor = "Discovery", %error, "differ unreachable");
                    }
                }
                .into_actor(self),
            );
        }
        metrics::gauge!("tasklet_odds_games_watched", "site" => site.to_string())
            .set(self.games.len() as f64);
        if started > 0 || !left.is_empty() {
            debug!(pipeline = "odds", actor = "Discovery", %site, started, left = left.len(), watched = self.games.len(), "live list applied");
        }
        self.interval
    }
}

impl Actor for Discovery {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1_024);
        info!(pipeline = "odds", actor = "Discovery", site = %self.site(), "discovering");
        self.discover(ctx);
    }
}

/// Restarted after a panic keeping the games it watches (their Fetchers
/// run on as actors of their own); `started` lists the site again.
impl Supervised for Discovery {}

impl Handler<GameReport> for Discovery {
    type Result = ();

    fn handle(&mut self, report: GameReport, _: &mut Context<Self>) {
        let _span = info_span!("Discovery", pipeline = "odds", game = %report.game.event).entered();
        let _handled = observe::handling("Discovery");
        let Some(watch) = self.games.get_mut(&report.game.event) else {
            return;
        };
        match report.report {
            FetcherReport::Stale(now) => {
                if let Watch::Polling { stale, .. } = watch {
                    *stale = now;
                }
            }
            FetcherReport::Finished => *watch = Watch::Finished,
            FetcherReport::Gone => *watch = Watch::Gone,
        }
    }
}

impl Handler<ListGames> for Discovery {
    type Result = MessageResult<ListGames>;

    fn handle(&mut self, _: ListGames, _: &mut Context<Self>) -> Self::Result {
        let _handled = observe::handling("Discovery");
        let site = self.site().to_string();
        MessageResult(
            self.games
                .iter()
                .map(|(id, w)| WatchedGame {
                    site: site.clone(),
                    event: id.clone(),
                    state: match w {
                        Watch::Polling { stale: false, .. } => "watching",
                        Watch::Polling { stale: true, .. } => "stale",
                        Watch::Finished => "finished",
                        Watch::Gone => "gone",
                    },
                })
                .collect(),
        )
    }
}

impl Handler<StopDiscovery> for Discovery {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: StopDiscovery, _: &mut Context<Self>) -> Self::Result {
        let _handled = observe::handling("Discovery");
        self.stopping = true;
        let fetchers: Vec<Addr<Fetcher>> = self
            .games
            .values()
            .filter_map(|w| match w {
                Watch::Polling { fetcher, .. } => Some(fetcher.clone()),
                _ => None,
            })
            .collect();
        Box::pin(
            async move {
                // Each answers once its poll in flight has ended.
                let stops = fetchers
                    .iter()
                    .map(|f| observe::queued("Fetcher", f.send(StopWatching { vanished: false })));
                futures_util::future::join_all(stops).await;
            }
            .into_actor(self)
            .map(|(), _, ctx| ctx.stop()),
        )
    }
}
