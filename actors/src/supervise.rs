//! Supervision of every long-lived actor: a panic restarts the actor, it
//! does not kill it.
//!
//! Without this, a panic in an actor is the end of it. actix runs each
//! actor as one future on its arbiter; tokio catches the panic at that
//! task's boundary and drops the future, mailbox included, so every
//! `Addr`/`Recipient` held upstream answers `Closed` from then on
//! (`actix::Supervisor` does not help: it restarts an actor that *stops*,
//! and a panic unwinds through it too). In a `SyncArbiter` a panic ends the
//! worker's thread: the pool shrinks by one, and once the last worker is
//! gone its queue's sender panics on the system arbiter.
//!
//! - [`start`], [`start_in_arbiter`] and [`run`] start an async actor
//!   whose context future is polled under `catch_unwind`. On a panic the
//!   reason is logged (`error`, `actor`, `reason`, `restart_in_ms`), the
//!   restart is counted (`tasklet_actor_restarts_total{actor}`), and the
//!   actor is restarted in place after a capped exponential [`Backoff`]:
//!   its spawned futures and timers are dropped, [`Supervised::restarting`]
//!   runs (each actor's says what it keeps and what it resets), then
//!   `started` runs again. The mailbox and the address stay: upstream
//!   `Recipient`s stay valid, and messages wait in the bounded mailbox
//!   during the backoff (back-pressure). An actor that stops on purpose
//!   (`ctx.stop()`, at shutdown or when a game ends) is not restarted.
//! - [`sync`] guards one job of a `SyncArbiter` worker: a panic answers
//!   the job with an error, and the worker is replaced with a fresh one
//!   from the pool's factory (`ctx.stop()` in a `SyncContext`), on the
//!   same thread, so the pool never shrinks.
//! - [`resend`] sends a message again when the handler that had it
//!   panicked (its answer was dropped while the actor lives on), so that a
//!   stage that must not lose an item hands it to the restarted actor.
//!
//! The message being handled when the panic hit is not handled: its sender
//! gets `MailboxError::Closed`. Each pipeline decides what that means:
//! watermark and beard answer that request with an error, odds and notify
//! send it again ([`resend`]).
//!
//! # Fault injection (tests only)
//!
//! [`fault_point`] marks a place in a handler where a test can make the
//! actor panic ([`inject_panics`]). Both exist only in builds with
//! `debug_assertions` (what `cargo test` builds); in a release build
//! `fault_point` is an empty function and `inject_panics` does not exist.
//! No config key, environment variable or endpoint reaches them: only Rust
//! code in the same process, which the daemon never runs.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{self, Poll};
use std::time::{Duration, Instant};

use actix::dev::{channel, ContextFut};
use actix::prelude::*;
use actix_rt::ArbiterHandle;
use tracing::error;

use crate::observe;

/// The first restart delay after a panic.
pub const RESTART_INITIAL: Duration = Duration::from_millis(50);
/// The longest restart delay, reached after a few panics in a row.
pub const RESTART_MAX: Duration = Duration::from_secs(5);

/// Capped exponential backoff: the delay doubles at each failure up to
/// `max`, and starts over at `initial` after running `max * 4` without one.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    last_failure: Option<Instant>,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
            last_failure: None,
        }
    }

    /// The delay to wait after a failure now.
    pub fn failed(&mut self) -> Duration {
        self.failed_at(Instant::now())
    }

    fn failed_at(&mut self, now: Instant) -> Duration {
        if let Some(last) = self.last_failure {
            if now.saturating_duration_since(last) > self.max * 4 {
                // It ran fine for a good while: start the backoff over.
                self.next = self.initial;
            }
        }
        self.last_failure = Some(now);
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

/// Starts an actor on the current arbiter, restarted after a panic.
pub fn start<A, F>(actor: &'static str, make: F) -> Addr<A>
where
    A: Actor<Context = Context<A>> + Supervised,
    F: FnOnce(&mut Context<A>) -> A,
{
    let mut ctx = Context::new();
    let act = make(&mut ctx);
    run(actor, ctx, act)
}

/// Runs `act` in `ctx` (made with `Context::new` or
/// `Context::with_receiver`) on the current arbiter, restarted after a
/// panic.
pub fn run<A>(actor: &'static str, ctx: Context<A>, act: A) -> Addr<A>
where
    A: Actor<Context = Context<A>> + Supervised,
{
    let fut = ctx.into_future(act);
    let addr = fut.address();
    actix_rt::spawn(Supervisor::new(actor, fut));
    addr
}

/// Starts an actor on `arbiter`, restarted after a panic.
pub fn start_in_arbiter<A, F>(arbiter: &ArbiterHandle, actor: &'static str, make: F) -> Addr<A>
where
    A: Actor<Context = Context<A>> + Supervised,
    F: FnOnce(&mut Context<A>) -> A + Send + 'static,
{
    // The actor sets its own capacity in `started`; this is actix's default.
    let (tx, rx) = channel::channel(16);
    arbiter.spawn_fn(move || {
        let mut ctx = Context::with_receiver(rx);
        let act = make(&mut ctx);
        run(actor, ctx, act);
    });
    Addr::new(tx)
}

/// Polls one actor's context under `catch_unwind` and restarts it after a
/// panic (see the module doc).
struct Supervisor<A>
where
    A: Actor<Context = Context<A>> + Supervised,
{
    actor: &'static str,
    fut: ContextFut<A, Context<A>>,
    backoff: Backoff,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<A> Supervisor<A>
where
    A: Actor<Context = Context<A>> + Supervised,
{
    fn new(actor: &'static str, fut: ContextFut<A, Context<A>>) -> Self {
        Supervisor {
            actor,
            fut,
            backoff: Backoff::new(RESTART_INITIAL, RESTART_MAX),
            pause: None,
        }
    }
}

impl<A> Future for Supervisor<A>
where
    A: Actor<Context = Context<A>> + Supervised,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if let Some(pause) = this.pause.as_mut() {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.pause = None;
            }
            let fut = &mut this.fut;
            match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *fut).poll(cx))) {
                Ok(Poll::Pending) => return Poll::Pending,
                // Stopped on purpose, or nobody holds its address any more.
                Ok(Poll::Ready(())) => return Poll::Ready(()),
                Err(panic) => {
                    let reason = panic_reason(panic.as_ref());
                    let delay = this.backoff.failed();
                    observe::restarted(this.actor);
                    error!(
                        actor = this.actor,
                        reason = %reason,
                        restart_in_ms = delay.as_millis() as u64,
                        "actor panicked, restarting"
                    );
                    // Drops its futures and timers, runs `restarting`;
                    // `started` runs at the next poll. False when no
                    // address is left: nobody can reach it any more.
                    if !this.fut.restart() {
                        return Poll::Ready(());
                    }
                    this.pause = Some(Box::pin(tokio::time::sleep(delay)));
                }
            }
        }
    }
}

/// Runs one job of a `SyncArbiter` worker. On a panic: logs the reason,
/// counts a restart of `actor`, replaces the worker with a fresh one from
/// the pool's factory (on the same thread) once this job is answered, and
/// answers `Err(panicked(reason))`.
pub fn sync<A, T, E>(
    actor: &'static str,
    ctx: &mut SyncContext<A>,
    panicked: impl FnOnce(String) -> E,
    job: impl FnOnce() -> Result<T, E>,
) -> Result<T, E>
where
    A: Actor<Context = SyncContext<A>>,
{
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(answer) => answer,
        Err(panic) => {
            let reason = panic_reason(panic.as_ref());
            observe::restarted(actor);
            error!(actor, reason = %reason, "worker panicked, replacing it");
            ctx.stop();
            Err(panicked(reason))
        }
    }
}

/// How many times [`resend`] offers a message whose handler panicked: a
/// message that panics its handler this often is itself the cause.
pub const RESEND_ATTEMPTS: u32 = 3;

/// Sends `msg` to `to`; when the handler panicked with it (the answer was
/// dropped but the actor is still reachable: its supervisor restarts it),
/// sends it again after a backoff, up to [`RESEND_ATTEMPTS`] in all.
pub async fn resend<M>(to: &Recipient<M>, msg: M) -> Result<M::Result, MailboxError>
where
    M: Message + Send + Clone + 'static,
    M::Result: Send,
{
    let mut backoff = Backoff::new(RESTART_INITIAL, RESTART_MAX);
    let mut attempt = 1;
    loop {
        match to.send(msg.clone()).await {
            Err(MailboxError::Closed) if attempt < RESEND_ATTEMPTS && to.connected() => {
                attempt += 1;
                tokio::time::sleep(backoff.failed()).await;
            }
            answer => return answer,
        }
    }
}

/// The text of a panic's payload.
pub fn panic_reason(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// A place where a test may make the actor panic ([`inject_panics`]). Does
/// nothing in a release build, nor unless a test armed `site`.
#[inline]
pub fn fault_point(site: &'static str) {
    #[cfg(debug_assertions)]
    faults::check(site);
    #[cfg(not(debug_assertions))]
    let _ = site;
}

/// Makes the next `times` passes through [`fault_point`]`(site)` panic
/// with "injected fault at {site}". Tests only: absent from release builds.
#[cfg(debug_assertions)]
pub fn inject_panics(site: &'static str, times: u32) {
    faults::arm(site, times);
}

#[cfg(debug_assertions)]
mod faults {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    static ANY: AtomicBool = AtomicBool::new(false);
    static ARMED: Mutex<Option<HashMap<&'static str, u32>>> = Mutex::new(None);

    pub fn arm(site: &'static str, times: u32) {
        let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
        *armed
            .get_or_insert_with(HashMap::new)
            .entry(site)
            .or_default() += times;
        ANY.store(true, Ordering::SeqCst);
    }

    pub fn check(site: &'static str) {
        if !ANY.load(Ordering::Relaxed) {
            return;
        }
        let fire = {
            let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
            match armed.as_mut().and_then(|a| a.get_mut(site)) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    true
                }
                _ => false,
            }
        };
        if fire {
            panic!("injected fault at {site}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn backoff_doubles_is_capped_and_starts_over_after_a_quiet_while() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let t = Instant::now();
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(b.failed_at(t)), 100);
        assert_eq!(ms(b.failed_at(t)), 200);
        assert_eq!(ms(b.failed_at(t)), 400);
        assert_eq!(ms(b.failed_at(t)), 400);
        assert_eq!(ms(b.failed_at(t + Duration::from_millis(1_601))), 100);
    }

    /// Counts what it handled; panics on `Boom`.
    #[derive(Default)]
    struct Counter {
        handled: usize,
        restarts: Arc<AtomicUsize>,
    }

    impl Actor for Counter {
        type Context = Context<Self>;
    }

    impl Supervised for Counter {
        fn restarting(&mut self, _: &mut Context<Self>) {
            self.restarts.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[derive(Message, Clone)]
    #[rtype(result = "usize")]
    struct Count;

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Boom;

    impl Handler<Count> for Counter {
        type Result = usize;
        fn handle(&mut self, _: Count, _: &mut Context<Self>) -> usize {
            fault_point("supervise-test-count");
            self.handled += 1;
            self.handled
        }
    }

    impl Handler<Boom> for Counter {
        type Result = ();
        fn handle(&mut self, _: Boom, _: &mut Context<Self>) {
            panic!("boom");
        }
    }

    #[actix_rt::test]
    async fn a_panicking_actor_restarts_in_place_and_keeps_its_address() {
        let restarts = Arc::new(AtomicUsize::new(0));
        let r = restarts.clone();
        let addr = start("Counter", move |_| Counter {
            handled: 0,
            restarts: r,
        });
        assert_eq!(addr.send(Count).await.unwrap(), 1);
        assert_eq!(addr.send(Boom).await, Err(MailboxError::Closed));
        // Same address, same actor (state kept by its `restarting`).
        assert_eq!(addr.send(Count).await.unwrap(), 2);
        assert_eq!(restarts.load(Ordering::SeqCst), 1);
    }

    #[actix_rt::test]
    async fn an_unsupervised_actor_dies_of_a_panic() {
        // What `start` prevents: the plain actix start loses the actor.
        let addr = Counter::default().start();
        assert_eq!(addr.send(Boom).await, Err(MailboxError::Closed));
        assert_eq!(addr.send(Count).await, Err(MailboxError::Closed));
    }

    #[actix_rt::test]
    async fn resend_hands_the_message_to_the_restarted_actor() {
        let addr = start("Counter", |_| Counter::default());
        inject_panics("supervise-test-count", 1);
        let answer = resend(&addr.clone().recipient(), Count).await;
        // The first offer panicked; the second was handled.
        assert_eq!(answer, Ok(1));
    }

    struct Worker {
        id: usize,
    }

    impl Actor for Worker {
        type Context = SyncContext<Self>;
    }

    #[derive(Message)]
    #[rtype(result = "Result<usize, String>")]
    struct Job {
        panic: bool,
    }

    impl Handler<Job> for Worker {
        type Result = Result<usize, String>;
        fn handle(&mut self, job: Job, ctx: &mut SyncContext<Self>) -> Self::Result {
            sync(
                "Worker",
                ctx,
                |reason| reason,
                || {
                    if job.panic {
                        panic!("bad job");
                    }
                    Ok(self.id)
                },
            )
        }
    }

    #[actix_rt::test]
    async fn a_panicking_sync_job_is_answered_and_the_worker_replaced() {
        let made = Arc::new(AtomicUsize::new(0));
        let m = made.clone();
        let pool = SyncArbiter::start(1, move || Worker {
            id: m.fetch_add(1, Ordering::SeqCst),
        });
        assert_eq!(pool.send(Job { panic: false }).await.unwrap(), Ok(0));
        assert_eq!(
            pool.send(Job { panic: true }).await.unwrap(),
            Err("bad job".to_owned())
        );
        // The one thread lives on with a fresh worker.
        assert_eq!(pool.send(Job { panic: false }).await.unwrap(), Ok(1));
    }
}
