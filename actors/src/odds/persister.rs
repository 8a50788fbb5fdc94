//! [`Persister`]: stores detected changes and the watched events.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use diesel::prelude::*;
use diesel::upsert::excluded;
use tracing::{info_span, warn, Instrument};

use super::cpu::{Stage, StageClock};
use super::messages::{Changes, EventInfo, GameKey, OddsChange};
use crate::observe;
use crate::store::models::{now_us, NewOddsChange, NewOddsEvent};
use crate::store::schema::odds_events;
use crate::store::{CommitReceipt, Flush, Insert, Store, StoreError};

/// Receives [`Changes`] from the Differ: the changes go, as `odds_changes`
/// rows, to the batching writer it wraps (`BatchWriter<NewOddsChange>`,
/// which commits on size OR time; `send().await` waits when it is full);
/// the event rows wait in a map and are upserted into `odds_events` every
/// flush interval (at most once a second) — a row only when the event is
/// new, its status changed, or its `last_seen_us` is 10 s old. Receives [`PersistAll`] at shutdown. Owns the event
/// rows not yet written.
pub struct Persister {
    writer: Recipient<Insert<NewOddsChange>>,
    writer_flush: Recipient<Flush>,
    store: Store,
    events: HashMap<GameKey, EventInfo>,
    /// Status and `last_seen_us` of each event row as last handed to the
    /// database: a row is written again only when its status changes or
    /// its `last_seen_us` is `EVENT_REFRESH_US` old.
    written: HashMap<GameKey, (String, i64)>,
    flush_interval: Duration,
    mailbox: usize,
    upserting: bool,
}

impl Persister {
    pub fn new(
        writer: Recipient<Insert<NewOddsChange>>,
        writer_flush: Recipient<Flush>,
        store: Store,
        flush_interval: Duration,
        mailbox: usize,
    ) -> Persister {
        Persister {
            writer,
            writer_flush,
            store,
            events: HashMap::new(),
            written: HashMap::new(),
            flush_interval,
            mailbox,
            upserting: false,
        }
    }

    fn upsert_events(&mut self, ctx: &mut Context<Self>) {
        if self.upserting || self.events.is_empty() {
            return;
        }
        self.upserting = true;
        let rows: Vec<NewOddsEvent> = self.events.drain().map(|(_, e)| event_row(e)).collect();
        let store = self.store.clone();
        ctx.spawn(
            async move {
                let result = upsert_events(&store, rows.clone()).await;
                (result, rows)
            }
            .into_actor(self)
            .map(|(result, rows), act, _| {
                act.upserting = false;
                if let Err(error) = result {
                    warn!(pipeline = "odds", actor = "Persister", rows = rows.len(), %error, "event upsert failed, retrying");
                    for row in rows {
                        let game = GameKey {
                            site: row.site.as_str().into(),
                            event: row.external_id.clone(),
                        };
                        act.events.entry(game).or_insert_with(|| EventInfo {
                            game: GameKey {
                                site: row.site.as_str().into(),
                                event: row.external_id,
                            },
                            home: row.home,
                            away: row.away,
                            sport: row.sport,
                            status: row.status,
                            seen_at_us: row.last_seen_us,
                        });
                    }
                }
            }),
        );
    }
}

fn event_row(e: EventInfo) -> NewOddsEvent {
    NewOddsEvent {
        site: e.game.site.to_string(),
        external_id: e.game.event,
        sport: e.sport,
        home: e.home,
        away: e.away,
        status: e.status,
        first_seen_us: e.seen_at_us,
        last_seen_us: e.seen_at_us,
    }
}

/// How stale an event row's `last_seen_us` may get before it is refreshed.
const EVENT_REFRESH_US: i64 = 10_000_000;

/// One `odds_changes` row.
pub fn change_row(c: &OddsChange) -> NewOddsChange {
    NewOddsChange {
        site: c.site.clone(),
        event_id: c.event.clone(),
        market: c.market.clone(),
        outcome: c.outcome.clone(),
        kind: c.kind.as_str().to_owned(),
        old_price: c.old_price,
        new_price: c.new_price,
        seq: i64::try_from(c.seq).unwrap_or(i64::MAX),
        observed_at_us: c.observed_at_us,
        status: c.status.clone(),
    }
}

/// What an event row seen again takes from the new row, as the `set` of an
/// upsert on `odds_events` (`e` being its dsl): teams, status and
/// `last_seen_us`; the first `first_seen_us` stays. A macro, as the type
/// of the expression names diesel items that are not public, and the two
/// backends take it each with its own bounds.
macro_rules! refreshed_columns {
    () => {
        (
            e::sport.eq(excluded(e::sport)),
            e::home.eq(excluded(e::home)),
            e::away.eq(excluded(e::away)),
            e::status.eq(excluded(e::status)),
            e::last_seen_us.eq(excluded(e::last_seen_us)),
        )
    };
}

/// Inserts or refreshes event rows (see `refreshed_columns`).
pub async fn upsert_events(store: &Store, rows: Vec<NewOddsEvent>) -> Result<usize, StoreError> {
    use odds_events::dsl as e;
    match store {
        Store::Postgres(_) => {
            let mut conn = store.pg().await?;
            let mut n = 0;
            for part in rows.chunks(1_000) {
                n += diesel_async::RunQueryDsl::execute(
                    diesel::insert_into(odds_events::table)
                        .values(part)
                        .on_conflict((e::site, e::external_id))
                        .do_update()
                        .set(refreshed_columns!()),
                    &mut *conn,
                )
                .await?;
            }
            Ok(n)
        }
        Store::Sqlite(_) => {
            store
                .write_sqlite(move |conn| {
                    let _clock = StageClock::start(Stage::Persist);
                    let n = conn.immediate_transaction(|conn| {
                        let mut n = 0;
                        for row in &rows {
                            n += diesel::insert_into(odds_events::table)
                                .values(row)
                                .on_conflict((e::site, e::external_id))
                                .do_update()
                                .set(refreshed_columns!())
                                .execute(conn)?;
                        }
                        Ok::<_, diesel::result::Error>(n)
                    })?;
                    Ok(n)
                })
                .await
        }
    }
}

impl Actor for Persister {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox.max(1));
        // Event rows change rarely: refresh them at most once a second.
        let every = self.flush_interval.max(Duration::from_secs(1));
        ctx.run_interval(every, |act, ctx| act.upsert_events(ctx));
    }
}

/// Restarted after a panic keeping the events it knows; an upsert that was
/// in flight is dropped with the context, so the next tick may start one.
impl Supervised for Persister {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.upserting = false;
    }
}

impl Handler<Changes> for Persister {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, changes: Changes, _: &mut Context<Self>) -> Self::Result {
        let game = match (&changes.event, changes.changes.first()) {
            (Some(event), _) => event.game.event.clone(),
            (None, Some(change)) => change.event.clone(),
            (None, None) => String::new(),
        };
        let span =
            info_span!("Persister", pipeline = "odds", %game, changes = changes.changes.len());
        let entered = span.clone().entered();
        let handled = observe::handling("Persister");
        let rows: Vec<NewOddsChange> = {
            let _clock = StageClock::start(Stage::Persist);
            if let Some(event) = changes.event {
                let due = match self.written.get(&event.game) {
                    Some((status, at)) => {
                        *status != event.status || event.seen_at_us - at >= EVENT_REFRESH_US
                    }
                    None => true,
                };
                if due {
                    self.written
                        .insert(event.game.clone(), (event.status.clone(), event.seen_at_us));
                    if event.status == "removed" {
                        self.written.remove(&event.game);
                    }
                    self.events.insert(event.game.clone(), event);
                }
            }
            changes.changes.iter().map(change_row).collect()
        };
        let writer = self.writer.clone();
        drop(entered);
        let work = async move {
            let _handled = handled;
            if rows.is_empty() {
                return;
            }
            let oldest = rows.iter().map(|r| r.observed_at_us).min().unwrap_or(0);
            match observe::queued("BatchWriter", writer.send(Insert(rows))).await {
                Ok(receipt) => {
                    actix_rt::spawn(record_commit(receipt, oldest));
                }
                Err(error) => {
                    warn!(pipeline = "odds", actor = "Persister", %error, "writer unreachable, changes lost");
                }
            }
        };
        Box::pin(work.instrument(span))
    }
}

async fn record_commit(receipt: CommitReceipt, observed_at_us: i64) {
    if receipt.await.is_ok() {
        let delay = (now_us() - observed_at_us).max(0) as f64 / 1e6;
        metrics::histogram!("tasklet_odds_commit_delay_seconds").record(delay);
    }
}

/// Write everything waiting (events and changes) and answer once it is
/// committed; shutdown awaits this.
#[derive(Debug)]
pub struct PersistAll;

impl Message for PersistAll {
    type Result = ();
}

impl Handler<PersistAll> for Persister {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: PersistAll, _: &mut Context<Self>) -> Self::Result {
        let _handled = observe::handling("Persister");
        let rows: Vec<NewOddsEvent> = self.events.drain().map(|(_, e)| event_row(e)).collect();
        let store = self.store.clone();
        let flush = self.writer_flush.clone();
        Box::pin(
            async move {
                if !rows.is_empty() {
                    if let Err(error) = upsert_events(&store, rows).await {
                        warn!(pipeline = "odds", actor = "Persister", %error, "event upsert failed at shutdown");
                    }
                }
                match observe::queued("BatchWriter", flush.send(Flush)).await {
                    Ok(receipt) => {
                        let _ = receipt.await;
                    }
                    Err(error) => warn!(pipeline = "odds", actor = "Persister", %error, "writer unreachable at shutdown"),
                }
            }
            .into_actor(self),
        )
    }
}
