//! Per-actor metrics every actor records the same way: messages handled,
//! time spent handling them, and restarts.
//!
//! ```text
//! fn handle(&mut self, msg: Snapshot, ctx: &mut Context<Self>) {
//!     let _handled = observe::handling("Differ");
//!     ...
//! }
//! ```

use std::time::Instant;

/// Records one handled message for `actor` when dropped:
/// `tasklet_actor_messages_total{actor}` and
/// `tasklet_actor_handle_seconds{actor}`.
#[must_use = "the measurement is taken when the guard drops"]
pub struct Handling {
    actor: &'static str,
    started: Instant,
}

/// Starts measuring one message of `actor`.
pub fn handling(actor: &'static str) -> Handling {
    Handling {
        actor,
        started: Instant::now(),
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        metrics::counter!("tasklet_actor_messages_total", "actor" => self.actor).increment(1);
        metrics::histogram!("tasklet_actor_handle_seconds", "actor" => self.actor)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// Counts a restart of `actor`: `tasklet_actor_restarts_total{actor}`.
pub fn restarted(actor: &'static str) {
    metrics::counter!("tasklet_actor_restarts_total", "actor" => actor).increment(1);
}

/// Sets `actor`'s queue depth (messages or items waiting):
/// `tasklet_actor_mailbox_depth{actor}`.
pub fn depth(actor: &'static str, waiting: usize) {
    metrics::gauge!("tasklet_actor_mailbox_depth", "actor" => actor).set(waiting as f64);
}
