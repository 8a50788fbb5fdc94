//! What flows between the odds actors: pages, snapshots, changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;

use super::site::{ParseError, Site};

/// Identifies one game: the site's name and the site's own event id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GameKey {
    pub site: Arc<str>,
    pub event: String,
}

/// One event as read from a page: teams, status and every market.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventState {
    pub home: String,
    pub away: String,
    pub sport: String,
    pub status: String,
    /// Markets by the site's market id.
    pub markets: BTreeMap<String, MarketState>,
}

/// One market: whether betting on it is suspended, and its outcomes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MarketState {
    pub suspended: bool,
    /// Outcomes by the site's outcome id.
    pub outcomes: BTreeMap<String, OutcomeState>,
}

/// One outcome's decimal price and whether it is shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutcomeState {
    pub price: f64,
    pub visible: bool,
}

/// A fetched page, on its way to the [`Parser`](super::Parser) pool.
pub struct RawPage {
    pub game: GameKey,
    pub site: Arc<dyn Site>,
    pub seq: u64,
    pub fetched_at_us: i64,
    pub body: bytes::Bytes,
}

impl std::fmt::Debug for RawPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RawPage({}/{} seq {} {} bytes)",
            self.game.site,
            self.game.event,
            self.seq,
            self.body.len()
        )
    }
}

/// What a page said: the event, or that the event is gone.
#[derive(Debug, Clone, PartialEq)]
pub enum PageContent {
    Event(EventState),
    Gone,
}

impl Message for RawPage {
    type Result = Result<PageContent, ParseError>;
}

/// A parsed page: the state of one game at `fetched_at_us`, numbered `seq`
/// (per game, increasing with every fetch).
#[derive(Clone)]
pub struct Snapshot {
    pub game: GameKey,
    pub seq: u64,
    pub fetched_at_us: i64,
    pub event: Arc<EventState>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Snapshot({}/{} seq {} {} markets)",
            self.game.site,
            self.game.event,
            self.seq,
            self.event.markets.len()
        )
    }
}

impl Message for Snapshot {
    type Result = ();
}

/// The game is no longer on the site: record one `removed` change, forget it.
#[derive(Debug, Clone)]
pub struct Vanished {
    pub game: GameKey,
    pub observed_at_us: i64,
}

impl Message for Vanished {
    type Result = ();
}

/// Stores `snapshot` as the latest of its game and answers the previous
/// one, in one step; refused when an equal or newer `seq` is stored.
#[derive(Debug)]
pub struct Swap(pub Snapshot);

/// Why the [`Cache`](super::Cache) refused a [`Swap`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot seq {offered} is not newer than the stored seq {stored}")]
pub struct StaleSnapshot {
    pub offered: u64,
    pub stored: u64,
}

impl Message for Swap {
    type Result = Result<Option<Snapshot>, StaleSnapshot>;
}

/// Forgets a game; answers its last snapshot if there was one.
#[derive(Debug)]
pub struct Forget(pub GameKey);

impl Message for Forget {
    type Result = Option<Snapshot>;
}

/// What happened to an outcome, market or event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The price of an outcome moved.
    Price,
    /// An outcome appeared (also every outcome of a game seen the first time).
    Added,
    /// An outcome disappeared; or, with empty market and outcome, the event.
    Removed,
    /// A market (empty outcome) or an outcome (hidden) was suspended.
    Suspended,
    Unsuspended,
    /// The event's status changed (`status` holds the new one).
    Status,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Price => "price",
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Suspended => "suspended",
            ChangeKind::Unsuspended => "unsuspended",
            ChangeKind::Status => "status",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeKind> {
        Some(match s {
            "price" => ChangeKind::Price,
            "added" => ChangeKind::Added,
            "removed" => ChangeKind::Removed,
            "suspended" => ChangeKind::Suspended,
            "unsuspended" => ChangeKind::Unsuspended,
            "status" => ChangeKind::Status,
            _ => return None,
        })
    }
}

/// One detected change; what the Persister stores and the stream shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OddsChange {
    pub site: String,
    pub event: String,
    /// Empty for a change of the event itself.
    pub market: String,
    /// Empty for a change of a market or of the event.
    pub outcome: String,
    pub kind: ChangeKind,
    pub old_price: Option<f64>,
    pub new_price: Option<f64>,
    /// The new status, for [`ChangeKind::Status`].
    pub status: Option<String>,
    pub seq: u64,
    pub observed_at_us: i64,
}

/// The event's descriptive fields, for the `odds_events` row.
#[derive(Debug, Clone, PartialEq)]
pub struct EventInfo {
    pub game: GameKey,
    pub home: String,
    pub away: String,
    pub sport: String,
    pub status: String,
    pub seen_at_us: i64,
}

/// What the Differ hands the Persister for one snapshot: the event's row
/// (when new, changed, or due a `last_seen` refresh) and its changes.
#[derive(Clone)]
pub struct Changes {
    pub event: Option<EventInfo>,
    pub changes: Arc<Vec<OddsChange>>,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Changes({} changes, event row {})",
            self.changes.len(),
            self.event.is_some()
        )
    }
}

impl Message for Changes {
    type Result = ();
}

/// Stop polling. With `vanished` (the game left the live list) the fetcher
/// first records the removal; without (shutdown) it just stops.
#[derive(Debug)]
pub struct StopWatching {
    pub vanished: bool,
}

impl Message for StopWatching {
    type Result = ();
}

/// How a fetcher ended or how its health changed; sent to Discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetcherReport {
    /// Consecutive failures passed the limit (true) or a poll succeeded again (false).
    Stale(bool),
    /// The event page says the game is over; the fetcher stopped.
    Finished,
    /// The event page says the game is gone; the fetcher recorded the
    /// removal and stopped.
    Gone,
}

/// A fetcher's report about its game.
#[derive(Debug)]
pub struct GameReport {
    pub game: GameKey,
    pub report: FetcherReport,
}

impl Message for GameReport {
    type Result = ();
}

/// Asks Discovery what it watches.
#[derive(Debug)]
pub struct ListGames;

/// One game as Discovery sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WatchedGame {
    pub site: String,
    pub event: String,
    /// `watching`, `stale`, `finished` or `gone`.
    pub state: &'static str,
}

impl Message for ListGames {
    type Result = Vec<WatchedGame>;
}

/// Stop every fetcher and stop discovering (intake stage of the shutdown).
#[derive(Debug)]
pub struct StopDiscovery;

impl Message for StopDiscovery {
    type Result = ();
}
