//! [`Parser`]: the pool (a `SyncArbiter`, `pools.parser` threads) that turns
//! fetched pages into event states.

use actix::prelude::*;
use tracing::{info_span, warn};

use super::cpu::{Stage, StageClock};
use super::messages::{PageContent, RawPage};
use super::site::ParseError;
use crate::observe;

/// Receives [`RawPage`] from a Fetcher and answers what the page says (the
/// event, or that it is gone) or why it cannot be read. Owns nothing; an
/// unreadable page is counted and logged with its game and a snippet.
/// The `SyncArbiter` queue itself is unbounded, but each Fetcher awaits its
/// answer before polling again, so at most one page per watched game waits.
pub struct Parser {
    snippet_bytes: usize,
}

impl Parser {
    pub fn new(snippet_bytes: usize) -> Parser {
        Parser { snippet_bytes }
    }
}

impl Actor for Parser {
    type Context = SyncContext<Self>;
}

impl Handler<RawPage> for Parser {
    type Result = Result<PageContent, ParseError>;

    fn handle(&mut self, page: RawPage, ctx: &mut SyncContext<Self>) -> Self::Result {
        crate::supervise::sync("Parser", ctx, ParseError::Panicked, || self.parse(page))
    }
}

impl Parser {
    fn parse(&mut self, page: RawPage) -> Result<PageContent, ParseError> {
        let _span = info_span!("Parser", pipeline = "odds", site = %page.game.site, game = %page.game.event, seq = page.seq).entered();
        let _handled = observe::handling("Parser");
        let result = {
            let _clock = StageClock::start(Stage::Parse);
            page.site.parse_event(&page.body, &page.game.event)
        };
        if let Err(error) = &result {
            metrics::counter!("tasklet_odds_unreadable_pages_total", "site" => page.game.site.to_string())
                .increment(1);
            warn!(pipeline = "odds", actor = "Parser", site = %page.game.site, game = %page.game.event, seq = page.seq, %error, snippet = %snippet(&page.body, self.snippet_bytes), "unreadable page");
        }
        result
    }
}

/// The first `max` bytes of `body` as text, for a log line.
pub fn snippet(body: &[u8], max: usize) -> String {
    let cut = &body[..body.len().min(max)];
    let mut s = String::from_utf8_lossy(cut).replace(['\n', '\r'], " ");
    if body.len() > max {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_short_one_line_and_marked_when_cut() {
        assert_eq!(snippet(b"ab\ncd", 10), "ab cd");
        assert_eq!(snippet(b"abcdef", 3), "abc…");
        assert_eq!(snippet(&[0xff, b'a'], 5), "\u{fffd}a");
    }
}
