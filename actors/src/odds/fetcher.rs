//! [`Fetcher`]: polls one game.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rand::Rng;
use tracing::{debug, info, info_span, warn, Instrument};

use super::cpu::count_poll;
use super::messages::{
    FetcherReport, GameKey, GameReport, PageContent, RawPage, Snapshot, StopWatching, Vanished,
};
use super::site::client::Fetched;
use super::site::{FetchError, SiteClient};
use crate::observe;
use crate::store::models::now_us;

/// Event statuses after which a game is not polled any more.
pub const FINISHED: &[&str] = &["finished", "ended", "closed", "cancelled"];

/// How a Fetcher paces itself.
#[derive(Debug, Clone)]
pub struct FetcherSettings {
    pub interval: Duration,
    pub jitter: Duration,
    pub backoff_max: Duration,
    pub stale_after_failures: u32,
}

/// Where a Fetcher sends things.
#[derive(Clone)]
pub struct FetcherOutputs {
    pub parser: Recipient<RawPage>,
    pub snapshots: Recipient<Snapshot>,
    pub vanished: Recipient<Vanished>,
    pub reports: Recipient<GameReport>,
}

/// Polls one game every `interval` (shortened by up to `jitter`, so that
/// no gap exceeds the interval), never with two requests in flight: a poll (fetch → [`RawPage`] to the Parser pool → [`Snapshot`] to
/// the Differ, each `send().await`) holds the actor until it ends, and the
/// next is scheduled from its start. Failures back off (the interval
/// doubles per failure up to `backoff_max`, or the site's `Retry-After`);
/// after `stale_after_failures` in a row the game is reported stale. A page
/// that says the game is gone makes it send [`Vanished`] and stop; a
/// finished game is reported and stops. Receives [`StopWatching`].
/// Owns the game's sequence number and failure count.
pub struct Fetcher {
    game: GameKey,
    client: Arc<SiteClient>,
    out: FetcherOutputs,
    settings: FetcherSettings,
    seq: u64,
    failures: u32,
    stale: bool,
    /// Poll at once rather than at a random point of the first interval.
    eager: bool,
}

/// How one poll ended.
enum Polled {
    Delivered {
        finished: bool,
    },
    Gone,
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
}

impl Fetcher {
    pub fn new(
        game: GameKey,
        client: Arc<SiteClient>,
        out: FetcherOutputs,
        settings: FetcherSettings,
    ) -> Fetcher {
        Fetcher {
            game,
            client,
            out,
            settings,
            seq: 0,
            failures: 0,
            stale: false,
            eager: false,
        }
    }

    /// Polls at once when started (a game that appeared while watching),
    /// instead of spreading the first poll over the interval.
    pub fn eager(mut self) -> Fetcher {
        self.eager = true;
        self
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        self.seq += 1;
        let seq = self.seq;
        let started = tokio::time::Instant::now();
        let game = self.game.clone();
        let client = self.client.clone();
        let out = self.out.clone();
        let span =
            info_span!("Fetcher", pipeline = "odds", site = %game.site, game = %game.event, seq);
        let handled = observe::handling("Fetcher");
        let work = async move {
            let page = match client.event(&game.event).await {
                Ok(Fetched::Page(body)) => body,
                Ok(Fetched::NotFound) => return Polled::Gone,
                Err(FetchError::RetryAfter(wait)) => {
                    return Polled::Failed {
                        error: format!("asked to wait {} ms", wait.as_millis()),
                        retry_after: Some(wait),
                    }
                }
                Err(e) => {
                    return Polled::Failed {
                        error: e.to_string(),
                        retry_after: None,
                    }
                }
            };
            let fetched_at_us = now_us();
            let raw = RawPage {
                game: game.clone(),
                site: client.site.clone(),
                seq,
                fetched_at_us,
                body: page,
            };
            let content = match observe::queued("Parser", out.parser.send(raw)).await {
                Ok(Ok(content)) => content,
                Ok(Err(e)) => {
                    return Polled::Failed {
                        error: format!("unreadable page: {e}"),
                        retry_after: None,
                    }
                }
                Err(e) => {
                    return Polled::Failed {
                        error: format!("parser unreachable: {e}"),
                        retry_after: None,
                    }
                }
            };
            let event = match content {
                PageContent::Gone => return Polled::Gone,
                PageContent::Event(event) => event,
            };
            count_poll();
            let finished = FINISHED.contains(&event.status.as_str());
            let snapshot = Snapshot {
                game,
                seq,
                fetched_at_us,
                event: Arc::new(event),
            };
            // Sent again if the Differ panicked with it (before its Swap):
            // the restarted Differ compares it with the Cache.
            let sent = crate::supervise::resend(&out.snapshots, snapshot);
            if let Err(e) = observe::queued("Differ", sent).await {
                return Polled::Failed {
                    error: format!("differ unreachable: {e}"),
                    retry_after: None,
                };
            }
            Polled::Delivered { finished }
        }
        .instrument(span.clone());
        ctx.wait(work.into_actor(self).map(move |polled, act, ctx| {
            let _span = span.entered();
            act.polled(polled, started, ctx);
            drop(handled);
        }));
    }

    fn polled(&mut self, polled: Polled, started: tokio::time::Instant, ctx: &mut Context<Self>) {
        let site = self.game.site.to_string();
        match polled {
            Polled::Delivered { finished } => {
                metrics::counter!("tasklet_odds_polls_total", "site" => site, "outcome" => "ok")
                    .increment(1);
                self.failures = 0;
                if self.stale {
                    self.stale = false;
                    info!(pipeline = "odds", actor = "Fetcher", game = %self.game.event, "game recovered");
                    self.report(FetcherReport::Stale(false));
                }
                if finished {
                    debug!(pipeline = "odds", actor = "Fetcher", game = %self.game.event, "game finished");
                    self.report(FetcherReport::Finished);
                    ctx.stop();
                    return;
                }
                let delay = self.early(self.settings.interval);
                let next = (started + delay).saturating_duration_since(tokio::time::Instant::now());
                ctx.run_later(next, |act, ctx| act.poll(ctx));
            }
            Polled::Gone => {
                metrics::counter!("tasklet_odds_polls_total", "site" => site, "outcome" => "gone")
                    .increment(1);
                self.vanish(ctx, FetcherReport::Gone);
            }
            Polled::Failed { error, retry_after } => {
                metrics::counter!("tasklet_odds_polls_total", "site" => site, "outcome" => "failed")
                    .increment(1);
                self.failures += 1;
                let backoff = self
                    .settings
                    .interval
                    .saturating_mul(1u32 << self.failures.min(16))
                    .min(self.settings.backoff_max);
                let delay = match retry_after {
                    Some(wait) => wait.max(self.settings.interval),
                    None => self.jittered(backoff),
                };
                debug!(pipeline = "odds", actor = "Fetcher", game = %self.game.event, failures = self.failures, retry_in_ms = delay.as_millis() as u64, %error, "poll failed");
                if self.failures >= self.settings.stale_after_failures && !self.stale {
                    self.stale = true;
                    metrics::counter!("tasklet_odds_stale_games_total").increment(1);
                    warn!(pipeline = "odds", actor = "Fetcher", game = %self.game.event, failures = self.failures, %error, "game stale");
                    self.report(FetcherReport::Stale(true));
                }
                ctx.run_later(delay, |act, ctx| act.poll(ctx));
            }
        }
    }

    /// The poll interval shortened by a random amount in [0, jitter], so
    /// that the gap between two polls never exceeds the interval.
    fn early(&self, interval: Duration) -> Duration {
        let jitter = self.settings.jitter.as_micros() as u64;
        if jitter == 0 {
            return interval;
        }
        let shift = rand::rng().random_range(0..=jitter);
        interval.saturating_sub(Duration::from_micros(shift))
    }

    fn jittered(&self, base: Duration) -> Duration {
        let jitter = self.settings.jitter.as_micros() as i64;
        if jitter == 0 {
            return base;
        }
        let shift = rand::rng().random_range(-jitter..=jitter);
        Duration::from_micros((base.as_micros() as i64 + shift).max(0) as u64)
    }

    fn report(&self, report: FetcherReport) {
        // A tick-like notice: Discovery's state is advisory.
        self.out.reports.do_send(GameReport {
            game: self.game.clone(),
            report,
        });
    }

    /// Records the game's removal (once it is acknowledged) and stops.
    fn vanish(&mut self, ctx: &mut Context<Self>, report: FetcherReport) {
        let vanished = Vanished {
            game: self.game.clone(),
            observed_at_us: now_us(),
        };
        let to = self.out.vanished.clone();
        ctx.wait(
            async move {
                if let Err(e) = observe::queued("Differ", to.send(vanished)).await {
                    warn!(pipeline = "odds", actor = "Fetcher", error = %e, "differ unreachable");
                }
            }
            .into_actor(self)
            .map(move |(), act, ctx| {
                act.report(report);
                ctx.stop();
            }),
        );
    }
}

impl Actor for Fetcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4);
        // Spread the games found at start over the interval.
        let first = if self.eager {
            0
        } else {
            rand::rng().random_range(0..self.settings.interval.as_micros().max(1) as u64)
        };
        ctx.run_later(Duration::from_micros(first), |act, ctx| act.poll(ctx));
    }
}

/// Restarted after a panic keeping its sequence number (it must keep
/// growing) and failure count; the poll in flight is dropped with the
/// context and the next one starts at once.
impl Supervised for Fetcher {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.eager = true;
    }
}

impl Handler<StopWatching> for Fetcher {
    type Result = ();

    fn handle(&mut self, stop: StopWatching, ctx: &mut Context<Self>) {
        let _span = info_span!("Fetcher", pipeline = "odds", game = %self.game.event).entered();
        let _handled = observe::handling("Fetcher");
        // No poll is in flight here: a poll holds the actor (`ctx.wait`).
        if stop.vanished {
            self.vanish(ctx, FetcherReport::Gone);
        } else {
            ctx.stop();
        }
    }
}
