//! [`Cache`]: the one owner of the latest snapshot of every game.

use std::collections::HashMap;

use actix::prelude::*;
use tracing::info_span;

use super::messages::{Forget, GameKey, Snapshot, StaleSnapshot, Swap};
use crate::observe;

/// Receives [`Swap`] (store the new snapshot, answer the previous one, in
/// one step; refuse one not newer than the stored) and [`Forget`] (drop a
/// game, answer its last snapshot). Owns the latest snapshot per game.
#[derive(Default)]
pub struct Cache {
    latest: HashMap<GameKey, Snapshot>,
    mailbox: usize,
}

impl Cache {
    pub fn new(mailbox: usize) -> Cache {
        Cache {
            latest: HashMap::new(),
            mailbox,
        }
    }

    /// The pure step behind [`Swap`].
    pub fn swap(&mut self, snapshot: Snapshot) -> Result<Option<Snapshot>, StaleSnapshot> {
        if let Some(stored) = self.latest.get(&snapshot.game) {
            if stored.seq >= snapshot.seq {
                return Err(StaleSnapshot {
                    offered: snapshot.seq,
                    stored: stored.seq,
                });
            }
        }
        Ok(self.latest.insert(snapshot.game.clone(), snapshot))
    }
}

impl Actor for Cache {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox.max(1));
    }
}

/// Restarted after a panic keeping every snapshot: each message changes
/// the map in one step (or not at all), so it is never half-updated, and
/// forgetting it would make the next poll of every game look like its
/// first (every outcome "added" again).
impl Supervised for Cache {}

impl Handler<Swap> for Cache {
    type Result = Result<Option<Snapshot>, StaleSnapshot>;

    fn handle(&mut self, Swap(snapshot): Swap, _: &mut Context<Self>) -> Self::Result {
        let _span = info_span!("Cache", pipeline = "odds", site = %snapshot.game.site, game = %snapshot.game.event, seq = snapshot.seq).entered();
        let _handled = observe::handling("Cache");
        self.swap(snapshot)
    }
}

impl Handler<Forget> for Cache {
    type Result = Option<Snapshot>;

    fn handle(&mut self, Forget(game): Forget, _: &mut Context<Self>) -> Self::Result {
        let _span =
            info_span!("Cache", pipeline = "odds", site = %game.site, game = %game.event).entered();
        let _handled = observe::handling("Cache");
        self.latest.remove(&game)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odds::messages::EventState;
    use std::sync::Arc;

    fn snap(seq: u64) -> Snapshot {
        Snapshot {
            game: GameKey {
                site: "s".into(),
                event: "1".into(),
            },
            seq,
            fetched_at_us: 0,
            event: Arc::new(EventState::default()),
        }
    }

    #[test]
    fn swap_returns_the_previous_and_refuses_older() {
        let mut c = Cache::new(8);
        assert!(c.swap(snap(1)).unwrap().is_none());
        assert_eq!(c.swap(snap(3)).unwrap().unwrap().seq, 1);
        assert_eq!(
            c.swap(snap(2)).unwrap_err(),
            StaleSnapshot {
                offered: 2,
                stored: 3
            }
        );
        assert!(c.swap(snap(3)).is_err());
        assert_eq!(c.swap(snap(4)).unwrap().unwrap().seq, 3);
    }

    #[actix_rt::test]
    async fn the_actor_forgets_a_game_once() {
        let c = Cache::new(8).start();
        c.send(Swap(snap(1))).await.unwrap().unwrap();
        assert_eq!(c.send(Forget(snap(1).game)).await.unwrap().unwrap().seq, 1);
        assert!(c.send(Forget(snap(1).game)).await.unwrap().is_none());
    }
}
