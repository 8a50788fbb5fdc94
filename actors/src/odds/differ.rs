//! [`Differ`]: compares each new snapshot with the previous one and emits
//! the changes.

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::broadcast;
use tracing::{info_span, warn, Instrument};

use super::cpu::{Stage, StageClock};
use super::messages::{
    ChangeKind, Changes, EventInfo, EventState, Forget, GameKey, MarketState, OddsChange, Snapshot,
    Swap, Vanished,
};
use crate::observe;

/// Receives [`Snapshot`] from Fetchers, swaps it into the [`Cache`]
/// (`Swap`, which answers the previous snapshot), and sends the
/// differences as [`Changes`] to the Persister (`send().await`) and to the
/// live stream (a broadcast channel). Receives [`Vanished`]: forgets the
/// game in the Cache and, when the Cache had it, emits exactly one
/// `removed`. Owns no state: the Cache owns the snapshots.
///
/// [`Cache`]: super::Cache
pub struct Differ {
    swap: Recipient<Swap>,
    forget: Recipient<Forget>,
    persister: Recipient<Changes>,
    live: broadcast::Sender<Arc<Vec<OddsChange>>>,
    mailbox: usize,
}

impl Differ {
    pub fn new(
        swap: Recipient<Swap>,
        forget: Recipient<Forget>,
        persister: Recipient<Changes>,
        live: broadcast::Sender<Arc<Vec<OddsChange>>>,
        mailbox: usize,
    ) -> Differ {
        Differ {
            swap,
            forget,
            persister,
            live,
            mailbox,
        }
    }
}

impl Actor for Differ {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox.max(1));
    }
}

/// Restarted after a panic with nothing to reset: the Cache owns the
/// snapshots, and a snapshot whose handling panicked before its `Swap` is
/// sent again by its Fetcher.
impl Supervised for Differ {}

/// Hands changes on: the live stream first (it does not wait), then the
/// Persister (which may make us wait: back-pressure).
async fn emit(
    persister: Recipient<Changes>,
    live: broadcast::Sender<Arc<Vec<OddsChange>>>,
    changes: Changes,
) {
    if !changes.changes.is_empty() {
        metrics::counter!("tasklet_odds_changes_total").increment(changes.changes.len() as u64);
        // No subscriber is fine.
        let _ = live.send(changes.changes.clone());
    }
    if let Err(error) = observe::queued("Persister", persister.send(changes)).await {
        warn!(pipeline = "odds", actor = "Differ", %error, "persister unreachable, changes lost");
    }
}

impl Handler<Snapshot> for Differ {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, snapshot: Snapshot, _: &mut Context<Self>) -> Self::Result {
        crate::supervise::fault_point("Differ.Snapshot");
        let swap = self.swap.clone();
        let persister = self.persister.clone();
        let live = self.live.clone();
        let span = info_span!("Differ", pipeline = "odds", site = %snapshot.game.site, game = %snapshot.game.event, seq = snapshot.seq);
        let handled = observe::handling("Differ");
        let work = async move {
            let _handled = handled;
            let previous = match observe::queued("Cache", swap.send(Swap(snapshot.clone()))).await {
                Ok(Ok(previous)) => previous,
                Ok(Err(stale)) => {
                    metrics::counter!("tasklet_odds_stale_snapshots_total").increment(1);
                    warn!(pipeline = "odds", actor = "Differ", game = %snapshot.game.event, %stale, "older snapshot refused");
                    return;
                }
                Err(error) => {
                    warn!(pipeline = "odds", actor = "Differ", %error, "cache unreachable");
                    return;
                }
            };
            let changes = {
                let _clock = StageClock::start(Stage::Diff);
                let previous = previous.as_ref().map(|p| p.event.as_ref());
                let rows = diff(
                    &snapshot.game,
                    previous,
                    &snapshot.event,
                    snapshot.seq,
                    snapshot.fetched_at_us,
                );
                if rows.is_empty() && previous.is_some() {
                    return;
                }
                Changes {
                    event: Some(event_info(&snapshot)),
                    changes: Arc::new(rows),
                }
            };
            emit(persister, live, changes).await;
        };
        Box::pin(work.instrument(span))
    }
}

impl Handler<Vanished> for Differ {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, vanished: Vanished, _: &mut Context<Self>) -> Self::Result {
        let forget = self.forget.clone();
        let persister = self.persister.clone();
        let live = self.live.clone();
        let span = info_span!("Differ", pipeline = "odds", site = %vanished.game.site, game = %vanished.game.event);
        let handled = observe::handling("Differ");
        let work = async move {
            let _handled = handled;
            let forget = forget.send(Forget(vanished.game.clone()));
            let Ok(Some(last)) = observe::queued("Cache", forget).await else {
                return;
            };
            let mut info = event_info(&last);
            info.status = "removed".to_owned();
            info.seen_at_us = vanished.observed_at_us;
            let row = OddsChange {
                site: vanished.game.site.to_string(),
                event: vanished.game.event.clone(),
                market: String::new(),
                outcome: String::new(),
                kind: ChangeKind::Removed,
                old_price: None,
                new_price: None,
                status: Some("removed".to_owned()),
                seq: last.seq + 1,
                observed_at_us: vanished.observed_at_us,
            };
            let changes = Changes {
                event: Some(info),
                changes: Arc::new(vec![row]),
            };
            emit(persister, live, changes).await;
        };
        Box::pin(work.instrument(span))
    }
}

fn event_info(s: &Snapshot) -> EventInfo {
    EventInfo {
        game: s.game.clone(),
        home: s.event.home.clone(),
        away: s.event.away.clone(),
        sport: s.event.sport.clone(),
        status: s.event.status.clone(),
        seen_at_us: s.fetched_at_us,
    }
}

/// Every change from `previous` (None: the game is seen the first time) to
/// `next`, in a fixed order: status, then markets and outcomes by id.
pub fn diff(
    game: &GameKey,
    previous: Option<&EventState>,
    next: &EventState,
    seq: u64,
    at_us: i64,
) -> Vec<OddsChange> {
    let mut out = Vec::new();
    let mut push = |market: &str,
                    outcome: &str,
                    kind: ChangeKind,
                    old_price: Option<f64>,
                    new_price: Option<f64>,
                    status: Option<String>| {
        out.push(OddsChange {
            site: game.site.to_string(),
            event: game.event.clone(),
            market: market.to_owned(),
            outcome: outcome.to_owned(),
            kind,
            old_price,
            new_price,
            status,
            seq,
            observed_at_us: at_us,
        })
    };
    let empty = MarketState::default();
    if let Some(prev) = previous {
        if prev.status != next.status {
            push(
                "",
                "",
                ChangeKind::Status,
                None,
                None,
                Some(next.status.clone()),
            );
        }
        for (id, market) in &prev.markets {
            if !next.markets.contains_key(id) {
                for (oid, o) in &market.outcomes {
                    push(id, oid, ChangeKind::Removed, Some(o.price), None, None);
                }
            }
        }
    }
    for (id, market) in &next.markets {
        let before = previous.and_then(|p| p.markets.get(id));
        let prev_market = before.unwrap_or(&empty);
        if market.suspended != prev_market.suspended {
            let kind = if market.suspended {
                ChangeKind::Suspended
            } else {
                ChangeKind::Unsuspended
            };
            push(id, "", kind, None, None, None);
        }
        for (oid, o) in &prev_market.outcomes {
            if !market.outcomes.contains_key(oid) {
                push(id, oid, ChangeKind::Removed, Some(o.price), None, None);
            }
        }
        for (oid, o) in &market.outcomes {
            match prev_market.outcomes.get(oid) {
                None => {
                    push(id, oid, ChangeKind::Added, None, Some(o.price), None);
                    if !o.visible {
                        push(id, oid, ChangeKind::Suspended, Some(o.price), None, None);
                    }
                }
                Some(p) => {
                    if p.price != o.price {
                        push(
                            id,
                            oid,
                            ChangeKind::Price,
                            Some(p.price),
                            Some(o.price),
                            None,
                        );
                    }
                    if p.visible != o.visible {
                        if o.visible {
                            push(id, oid, ChangeKind::Unsuspended, None, Some(o.price), None);
                        } else {
                            push(id, oid, ChangeKind::Suspended, Some(o.price), None, None);
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odds::messages::OutcomeState;
    use crate::odds::Cache;
    use std::collections::BTreeMap;

    fn game() -> GameKey {
        GameKey {
            site: "s".into(),
            event: "9".into(),
        }
    }

    /// (market id, suspended, [(outcome id, price, visible)])
    type MarketSpec<'a> = (&'a str, bool, &'a [(&'a str, f64, bool)]);

    fn event(status: &str, markets: &[MarketSpec]) -> EventState {
        EventState {
            status: status.to_owned(),
            markets: markets
                .iter()
                .map(|(id, suspended, outcomes)| {
                    (
                        id.to_string(),
                        MarketState {
                            suspended: *suspended,
                            outcomes: outcomes
                                .iter()
                                .map(|(oid, price, visible)| {
                                    (
                                        oid.to_string(),
                                        OutcomeState {
                                            price: *price,
                                            visible: *visible,
                                        },
                                    )
                                })
                                .collect::<BTreeMap<_, _>>(),
                        },
                    )
                })
                .collect(),
            ..EventState::default()
        }
    }

    fn kinds(rows: &[OddsChange]) -> Vec<(String, String, &'static str)> {
        rows.iter()
            .map(|r| (r.market.clone(), r.outcome.clone(), r.kind.as_str()))
            .collect()
    }

    #[test]
    fn first_sight_adds_every_outcome_and_marks_suspensions() {
        let next = event(
            "live",
            &[("m", true, &[("a", 1.5, true), ("b", 2.0, false)])],
        );
        let rows = diff(&game(), None, &next, 1, 7);
        assert_eq!(
            kinds(&rows),
            vec![
                ("m".into(), "".into(), "suspended"),
                ("m".into(), "a".into(), "added"),
                ("m".into(), "b".into(), "added"),
                ("m".into(), "b".into(), "suspended"),
            ]
        );
        assert_eq!(rows[1].new_price, Some(1.5));
        assert!(rows.iter().all(|r| r.seq == 1 && r.observed_at_us == 7));
    }

    #[test]
    fn every_kind_of_change_is_found() {
        let prev = event(
            "notstarted",
            &[
                (
                    "m1",
                    false,
                    &[("a", 1.5, true), ("b", 2.0, true), ("c", 3.0, true)],
                ),
                ("gone", false, &[("x", 4.0, true)]),
            ],
        );
        let next = event(
            "inprogress",
            &[
                (
                    "m1",
                    true,
                    &[("a", 1.6, true), ("b", 2.0, false), ("d", 5.0, true)],
                ),
                ("new", false, &[("y", 1.1, true)]),
            ],
        );
        let rows = diff(&game(), Some(&prev), &next, 2, 0);
        assert_eq!(
            kinds(&rows),
            vec![
                ("".into(), "".into(), "status"),
                ("gone".into(), "x".into(), "removed"),
                ("m1".into(), "".into(), "suspended"),
                ("m1".into(), "c".into(), "removed"),
                ("m1".into(), "a".into(), "price"),
                ("m1".into(), "b".into(), "suspended"),
                ("m1".into(), "d".into(), "added"),
                ("new".into(), "y".into(), "added"),
            ]
        );
        assert_eq!(rows[0].status.as_deref(), Some("inprogress"));
        assert_eq!(
            (rows[4].old_price, rows[4].new_price),
            (Some(1.5), Some(1.6))
        );
        // and back again
        let back = diff(&game(), Some(&next), &prev, 3, 0);
        assert!(kinds(&back).contains(&("m1".into(), "".into(), "unsuspended")));
        assert!(kinds(&back).contains(&("m1".into(), "b".into(), "unsuspended")));
    }

    #[test]
    fn an_unchanged_page_gives_nothing() {
        let e = event("live", &[("m", false, &[("a", 1.5, true)])]);
        assert!(diff(&game(), Some(&e), &e.clone(), 2, 0).is_empty());
    }

    /// A recipient that collects what it gets.
    struct Collect(Vec<Changes>);
    impl Actor for Collect {
        type Context = Context<Self>;
    }
    impl Handler<Changes> for Collect {
        type Result = ();
        fn handle(&mut self, m: Changes, _: &mut Context<Self>) {
            self.0.push(m);
        }
    }
    #[derive(Message)]
    #[rtype(result = "Vec<Changes>")]
    struct Take;
    impl Handler<Take> for Collect {
        type Result = MessageResult<Take>;
        fn handle(&mut self, _: Take, _: &mut Context<Self>) -> MessageResult<Take> {
            MessageResult(std::mem::take(&mut self.0))
        }
    }

    fn snap(seq: u64, e: &EventState) -> Snapshot {
        Snapshot {
            game: game(),
            seq,
            fetched_at_us: seq as i64,
            event: Arc::new(e.clone()),
        }
    }

    #[actix_rt::test]
    async fn the_actor_diffs_through_the_cache_and_removes_once() {
        let cache = Cache::new(8).start();
        let sink = Collect(Vec::new()).start();
        let (live, mut rx) = broadcast::channel(16);
        let differ = Differ::new(
            cache.clone().recipient(),
            cache.clone().recipient(),
            sink.clone().recipient(),
            live,
            8,
        )
        .start();
        let a = event("live", &[("m", false, &[("a", 1.5, true)])]);
        let b = event("live", &[("m", false, &[("a", 1.7, true)])]);
        differ.send(snap(1, &a)).await.unwrap();
        differ.send(snap(2, &a)).await.unwrap();
        differ.send(snap(3, &b)).await.unwrap();
        differ.send(snap(2, &a)).await.unwrap(); // older: refused
        for _ in 0..2 {
            differ
                .send(Vanished {
                    game: game(),
                    observed_at_us: 9,
                })
                .await
                .unwrap();
        }
        let got = sink.send(Take).await.unwrap();
        let rows: Vec<_> = got.iter().flat_map(|c| c.changes.iter().cloned()).collect();
        assert_eq!(
            rows.iter()
                .map(|r| (r.kind.as_str(), r.seq))
                .collect::<Vec<_>>(),
            vec![("added", 1), ("price", 3), ("removed", 4)]
        );
        assert_eq!(rx.recv().await.unwrap()[0].kind, ChangeKind::Added);
        assert_eq!(rx.recv().await.unwrap()[0].kind, ChangeKind::Price);
        assert_eq!(rx.recv().await.unwrap()[0].kind, ChangeKind::Removed);
    }
}
