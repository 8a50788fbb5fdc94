//! Per-actor metrics every actor records the same way: messages handled,
//! time spent handling them, mailbox depth and restarts.
//!
//! ```text
//! // at the send site
//! let answer = observe::queued("Differ", differ.send(snapshot)).await;
//! // in the handler, inside the span that carries the item's id
//! fn handle(&mut self, msg: Snapshot, ctx: &mut Context<Self>) {
//!     let _span = info_span!("Differ", game = %msg.game.event).entered();
//!     let _handled = observe::handling("Differ");
//!     ...
//! }
//! ```
//!
//! actix does not expose how many messages wait in a mailbox, so depth is
//! counted at the send sites: a message sent through [`queued`] counts
//! from the send until its answer arrives (or the send fails or is
//! dropped), that is while it waits in the mailbox or is being handled.
//! Ticks sent with `do_send` are not counted.

use std::future::Future;
use std::time::Instant;

/// Records one handled message for `actor` when dropped:
/// `tasklet_actor_messages_total{actor}` and
/// `tasklet_actor_handle_seconds{actor}`, and a `handled` debug event (in
/// the current span, so it carries the item's id).
#[must_use = "the measurement is taken when the guard drops"]
pub struct Handling {
    actor: &'static str,
    started: Instant,
}

/// Starts measuring one message of `actor`. For a handler that answers
/// with a future, move the guard into the future so that the time covers
/// the whole handling.
pub fn handling(actor: &'static str) -> Handling {
    Handling {
        actor,
        started: Instant::now(),
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        metrics::counter!("tasklet_actor_messages_total", "actor" => self.actor).increment(1);
        metrics::histogram!("tasklet_actor_handle_seconds", "actor" => self.actor)
            .record(elapsed.as_secs_f64());
        tracing::debug!(
            actor = self.actor,
            elapsed_us = elapsed.as_micros() as u64,
            "handled"
        );
    }
}

/// Counts a restart of `actor`: `tasklet_actor_restarts_total{actor}`.
pub fn restarted(actor: &'static str) {
    metrics::counter!("tasklet_actor_restarts_total", "actor" => actor).increment(1);
}

/// Awaits `send` (a `send()` to `actor`) while counting the message in
/// `tasklet_actor_mailbox_depth{actor}`.
pub async fn queued<F: Future>(actor: &'static str, send: F) -> F::Output {
    let _waiting = Waiting::new(actor);
    send.await
}

/// One message counted in its actor's mailbox depth until dropped.
struct Waiting(&'static str);

impl Waiting {
    fn new(actor: &'static str) -> Waiting {
        metrics::gauge!("tasklet_actor_mailbox_depth", "actor" => actor).increment(1.0);
        Waiting(actor)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        metrics::gauge!("tasklet_actor_mailbox_depth", "actor" => self.0).decrement(1.0);
    }
}
