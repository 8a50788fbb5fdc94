//! [`ViberSender`]: the pool that sends each delivery to Viber.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info_span, warn, Instrument};

use super::actions;
use super::messages::{state, Delivery, Outcome};
use super::NotifySettings;
use crate::observe;
use crate::store::models::{now_us, NewNotification};
use crate::store::Store;

/// How many completed messages the sender remembers, so that a redelivery
/// of one it just handled (after a broker restart) is not sent again.
const REMEMBERED: usize = 16_384;

/// Sends each [`Delivery`] to Viber's `send_message` and hands the
/// [`Outcome`] (one log row) to the notification log.
///
/// Receives `Delivery` (from the AMQP consumer) and [`Drain`]; sends
/// `Outcome` to its injected `Recipient<Outcome>`. Owns the HTTP client
/// (keep-alive connections to `viber_base_url`), a semaphore of
/// `pools.viber_senders` permits — the pool: that many sends run at once,
/// the rest wait for a permit — and a bounded memory of the message ids in
/// flight or recently done. Retries transport errors, timeouts, HTTP 5xx and
/// Viber status 12 with capped exponential backoff and jitter up to
/// `max_attempts`; any other status is a permanent failure, logged with its
/// code and name. A redelivered message already in the log is not sent again.
pub struct ViberSender {
    inner: Arc<Inner>,
}

struct Inner {
    settings: NotifySettings,
    url: String,
    token: String,
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    store: Store,
    log: Recipient<Outcome>,
    in_flight: AtomicUsize,
    memory: std::sync::Mutex<Memory>,
}

/// Message ids in flight (with a signal that fires when done) and the rows
/// of the last [`REMEMBERED`] done.
#[derive(Default)]
struct Memory {
    in_flight: HashMap<String, watch::Receiver<bool>>,
    done: HashMap<String, NewNotification>,
    order: VecDeque<String>,
}

/// Resolves once no delivery is being sent or waiting for a permit
/// (every outcome has been handed to the log). Shutdown awaits this.
#[derive(Debug)]
pub struct Drain;

impl Message for Drain {
    type Result = ();
}

/// Why building the sender failed.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl ViberSender {
    pub fn new(
        settings: NotifySettings,
        senders: usize,
        token: String,
        store: Store,
        log: Recipient<Outcome>,
    ) -> Result<Self, SenderError> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(senders)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .connect_timeout(settings.connect_timeout())
            .timeout(settings.request_timeout())
            .build()
            .map_err(|e| SenderError::Client(e.to_string()))?;
        let url = format!(
            "{}/pa/send_message",
            settings.viber_base_url.trim_end_matches('/')
        );
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                url,
                token,
                client,
                permits: Arc::new(Semaphore::new(senders.max(1))),
                store,
                log,
                in_flight: AtomicUsize::new(0),
                memory: Default::default(),
            }),
        })
    }
}

impl Actor for ViberSender {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(usize::from(self.inner.settings.prefetch).max(16));
    }
}

/// Restarted after a panic keeping its client, permits and the rows of the
/// messages it completed. The sends in flight were dropped with the
/// context: none is in flight any more (so [`Drain`] does not wait for
/// them), and their deliveries, never logged, stay unacked until the
/// consumer's channel closes, then come again.
impl Supervised for ViberSender {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.inner.in_flight.store(0, Ordering::SeqCst);
        if let Ok(mut memory) = self.inner.memory.lock() {
            memory.in_flight.clear();
        }
    }
}

impl Handler<Delivery> for ViberSender {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let inner = self.inner.clone();
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let id = delivery.message.id.clone();
        let tx = delivery.message.transaction_id.clone();
        let span = info_span!("ViberSender", pipeline = "notify", %tx, %id);
        let handled = observe::handling("ViberSender");
        ctx.spawn(
            async move {
                let _handled = handled;
                let tag = delivery.tag;
                let row = inner.process(delivery).await;
                let outcome = Outcome { tag, id, tx, row };
                // Sent again if the log panicked with it: never acked
                // unlogged, never dropped while the log lives.
                let logged = crate::supervise::resend(&inner.log, outcome);
                if let Err(error) = observe::queued("NotificationLog", logged).await {
                    // Not acked: the broker delivers it again.
                    warn!(pipeline = "notify", actor = "ViberSender", %error, "log unreachable");
                }
                inner.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
            .instrument(span)
            .into_actor(self),
        );
    }
}

impl Handler<Drain> for ViberSender {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        let inner = self.inner.clone();
        let handled = observe::handling("ViberSender");
        Box::pin(async move {
            let _handled = handled;
            while inner.in_flight.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }
}

/// What the sender does with one message id.
enum Plan {
    /// Send it (first time, or nobody knows of it).
    Send(watch::Sender<bool>),
    /// It was done in this process: log the same row again (a no-op that
    /// resolves once the first commit is durable), then ack.
    Relog(NewNotification),
    /// Another delivery of it is being sent now: wait, then relog.
    Wait(watch::Receiver<bool>),
}

impl Inner {
    /// Sends one delivery unless it was sent before; returns the row to
    /// log, or `None` when the log already holds it.
    async fn process(&self, delivery: Delivery) -> Option<NewNotification> {
        let id = delivery.message.id.clone();
        let mut plan = self.plan(&id);
        if let Plan::Wait(mut done) = plan {
            let _ = done.wait_for(|d| *d).await;
            plan = self.plan(&id);
        }
        let finished = match plan {
            Plan::Send(finished) => finished,
            Plan::Relog(row) => {
                metrics::counter!("tasklet_notify_duplicates_skipped_total", "where" => "memory")
                    .increment(1);
                return Some(row);
            }
            // Still in flight after it signalled: it failed to log. Send.
            Plan::Wait(_) => watch::channel(false).0,
        };
        if delivery.redelivered && self.logged_before(&id).await {
            metrics::counter!("tasklet_notify_duplicates_skipped_total", "where" => "log")
                .increment(1);
            self.forget(&id, None, finished);
            return None;
        }
        let _permit = self.permits.acquire().await.ok();
        let row = self.send(&delivery).await;
        self.forget(&id, Some(row.clone()), finished);
        Some(row)
    }

    fn plan(&self, id: &str) -> Plan {
        let Ok(mut memory) = self.memory.lock() else {
            return Plan::Send(watch::channel(false).0);
        };
        if let Some(row) = memory.done.get(id) {
            return Plan::Relog(row.clone());
        }
        if let Some(done) = memory.in_flight.get(id) {
            return Plan::Wait(done.clone());
        }
        let (tx, rx) = watch::channel(false);
        memory.in_flight.insert(id.to_owned(), rx);
        Plan::Send(tx)
    }

    /// Moves `id` from in flight to done (remembering its row) and wakes
    /// any delivery of the same id waiting on it.
    fn forget(&self, id: &str, row: Option<NewNotification>, finished: watch::Sender<bool>) {
        if let Ok(mut memory) = self.memory.lock() {
            memory.in_flight.remove(id);
            if let Some(row) = row {
                if memory.done.insert(id.to_owned(), row).is_none() {
                    memory.order.push_back(id.to_owned());
                }
                while memory.order.len() > REMEMBERED {
                    if let Some(old) = memory.order.pop_front() {
                        memory.done.remove(&old);
                    }
                }
            }
        }
        let _ = finished.send(true);
    }

    /// Whether the log already has a row for `id`; retries a failing
    /// database with capped backoff (sending blind could duplicate).
    async fn logged_before(&self, id: &str) -> bool {
        let mut delay = Duration::from_millis(self.settings.retry_initial_ms);
        loop {
            match actions::find_by_message_id(&self.store, id).await {
                Ok(row) => return row.is_some(),
                Err(error) => {
                    warn!(pipeline = "notify", actor = "ViberSender", id, %error, "cannot check the log, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(self.settings.retry_max_ms));
                }
            }
        }
    }

    /// Sends with retries; returns the log row describing the outcome.
    async fn send(&self, delivery: &Delivery) -> NewNotification {
        let msg = &delivery.message;
        let text = msg.render(self.settings.template(&msg.status, &msg.locale));
        let body = SendMessage {
            receiver: &msg.user.viber_id,
            min_api_version: 1,
            sender: Sender {
                name: &self.settings.sender_name,
            },
            tracking_data: &msg.id,
            kind: "text",
            text: &text,
        };
        let mut attempts = 0u32;
        let verdict = loop {
            attempts += 1;
            let started = Instant::now();
            let verdict = self.attempt(&body).await;
            metrics::histogram!("tasklet_notify_viber_request_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("tasklet_notify_viber_attempts_total", "result" => verdict.label())
                .increment(1);
            metrics::counter!("tasklet_notify_viber_replies_total", "status" => verdict.status())
                .increment(1);
            match verdict {
                Verdict::Retry(ref reason) if attempts < self.settings.max_attempts => {
                    let delay = backoff(
                        attempts,
                        self.settings.retry_initial_ms,
                        self.settings.retry_max_ms,
                        rand::rng().random::<f64>(),
                    );
                    debug!(pipeline = "notify", actor = "ViberSender", id = %msg.id, tx = %msg.transaction_id, attempt = attempts, reason = %reason, retry_in_ms = delay.as_millis() as u64, "send failed, retrying");
                    tokio::time::sleep(delay).await;
                }
                verdict => break verdict,
            }
        };
        let now = now_us();
        let mut row = NewNotification {
            message_id: msg.id.clone(),
            transaction_id: msg.transaction_id.clone(),
            receiver: msg.user.viber_id.clone(),
            status: msg.status.clone(),
            state: state::SENT.to_owned(),
            viber_status: None,
            message_token: None,
            attempts: i32::try_from(attempts).unwrap_or(i32::MAX),
            error: None,
            enqueued_at_us: delivery.published_at_us,
            sent_at_us: None,
            logged_at_us: now,
        };
        match verdict {
            Verdict::Sent { token } => {
                metrics::counter!("tasklet_notify_sent_total").increment(1);
                metrics::histogram!("tasklet_notify_publish_to_sent_seconds")
                    .record((now - delivery.published_at_us).max(0) as f64 / 1e6);
                row.viber_status = Some(0);
                row.message_token = token;
                row.sent_at_us = Some(now);
            }
            Verdict::Permanent { status, ref detail } => {
                metrics::counter!("tasklet_notify_failed_total", "kind" => "permanent")
                    .increment(1);
                warn!(pipeline = "notify", actor = "ViberSender", id = %msg.id, tx = %msg.transaction_id, status, name = status_name(status), detail = %detail, "viber refused the message");
                row.state = state::FAILED.to_owned();
                row.viber_status = i32::try_from(status).ok();
                row.error = Some(format!("{status} {}: {detail}", status_name(status)));
            }
            Verdict::Retry(reason) => {
                metrics::counter!("tasklet_notify_failed_total", "kind" => "retries_exhausted")
                    .increment(1);
                warn!(pipeline = "notify", actor = "ViberSender", id = %msg.id, tx = %msg.transaction_id, attempts, reason = %reason, "giving up after retries");
                row.state = state::FAILED.to_owned();
                row.error = Some(format!("gave up after {attempts} attempts: {reason}"));
            }
        }
        row
    }

    async fn attempt(&self, body: &SendMessage<'_>) -> Verdict {
        let response = self
            .client
            .post(&self.url)
            .header("X-Viber-Auth-Token", &self.token)
            .json(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Verdict::Retry("timeout".to_owned()),
            Err(e) => return Verdict::Retry(format!("transport: {e}")),
        };
        let http = response.status();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return Verdict::Retry("timeout".to_owned()),
            Err(e) => return Verdict::Retry(format!("transport: {e}")),
        };
        classify(http.as_u16(), &bytes)
    }
}

/// The send_message request body.
#[derive(Debug, Serialize)]
pub struct SendMessage<'a> {
    pub receiver: &'a str,
    pub min_api_version: u32,
    pub sender: Sender<'a>,
    pub tracking_data: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub text: &'a str,
}

#[derive(Debug, Serialize)]
pub struct Sender<'a> {
    pub name: &'a str,
}

/// The send_message answer (HTTP 200 even for errors).
#[derive(Debug, Deserialize)]
pub struct SendReply {
    pub status: i64,
    #[serde(default)]
    pub status_message: String,
    #[serde(default)]
    pub message_token: Option<i64>,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Sent { token: Option<i64> },
    Retry(String),
    Permanent { status: i64, detail: String },
}

impl Verdict {
    fn label(&self) -> &'static str {
        match self {
            Verdict::Sent { .. } => "sent",
            Verdict::Retry(_) => "retry",
            Verdict::Permanent { .. } => "permanent",
        }
    }

    /// What Viber answered, for `tasklet_notify_viber_replies_total`: the
    /// name of its status, `http_error` for an HTTP error or an unreadable
    /// body, `no_reply` for a timeout or a transport error.
    fn status(&self) -> &'static str {
        match self {
            Verdict::Sent { .. } => status_name(0),
            Verdict::Permanent { status, .. } if *status >= 0 => status_name(*status),
            Verdict::Retry(reason) if reason.starts_with(TOO_MANY_REQUESTS_REASON) => {
                status_name(TOO_MANY_REQUESTS)
            }
            Verdict::Permanent { .. } => "http_error",
            Verdict::Retry(reason) if reason.starts_with("http ") => "http_error",
            Verdict::Retry(_) => "no_reply",
        }
    }
}

/// How a status 12 answer starts its retry reason.
const TOO_MANY_REQUESTS_REASON: &str = "status 12 tooManyRequests";

/// Status 12 (tooManyRequests): the only Viber status worth retrying.
pub const TOO_MANY_REQUESTS: i64 = 12;

/// Decides from the HTTP status and body: 5xx retries, a body status 0 is
/// sent, 12 retries, anything else (or an unreadable 200) is permanent.
pub fn classify(http: u16, body: &[u8]) -> Verdict {
    if http >= 500 {
        return Verdict::Retry(format!("http {http}"));
    }
    if http != 200 {
        return Verdict::Permanent {
            status: -1,
            detail: format!("http {http}"),
        };
    }
    match serde_json::from_slice::<SendReply>(body) {
        Ok(reply) if reply.status == 0 => Verdict::Sent {
            token: reply.message_token,
        },
        Ok(reply) if reply.status == TOO_MANY_REQUESTS => Verdict::Retry(format!(
            "{TOO_MANY_REQUESTS_REASON}: {}",
            reply.status_message
        )),
        Ok(reply) => Verdict::Permanent {
            status: reply.status,
            detail: reply.status_message,
        },
        Err(e) => Verdict::Permanent {
            status: -1,
            detail: format!("unreadable reply: {e}"),
        },
    }
}

/// The documented name of a Viber status code.
pub fn status_name(code: i64) -> &'static str {
    const NAMES: [&str; 25] = [
        "ok",
        "invalidUrl",
        "invalidAuthToken",
        "badData",
        "missingData",
        "receiverNotRegistered",
        "receiverNotSubscribed",
        "publicAccountBlocked",
        "publicAccountNotFound",
        "publicAccountSuspended",
        "webhookNotSet",
        "receiverNoSuitableDevice",
        "tooManyRequests",
        "apiVersionNotSupported",
        "incompatibleWithVersion",
        "publicAccountNotAuthorized",
        "inchatReplyMessageNotAllowed",
        "publicAccountIsNotInline",
        "noPublicChat",
        "cannotSendBroadcast",
        "broadcastNotAllowed",
        "unsupportedCountry",
        "paymentUnsupported",
        "freeMessagesExceeded",
        "noBalance",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("generalError")
}

/// The delay before attempt `attempt + 1`: `initial · 2^(attempt-1)` capped
/// at `max`, then scaled into `[½, 1]` of itself by `jitter` (0..1).
pub fn backoff(attempt: u32, initial_ms: u64, max_ms: u64, jitter: f64) -> Duration {
    let exp = initial_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    let capped = exp.min(max_ms) as f64;
    Duration::from_millis((capped * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_follows_the_status_table() {
        assert_eq!(
            classify(
                200,
                br#"{"status":0,"status_message":"ok","message_token":5}"#
            ),
            Verdict::Sent { token: Some(5) }
        );
        assert!(matches!(
            classify(200, br#"{"status":12,"status_message":"tooManyRequests"}"#),
            Verdict::Retry(_)
        ));
        assert!(matches!(classify(503, b"busy"), Verdict::Retry(_)));
        assert!(matches!(classify(500, b""), Verdict::Retry(_)));
        assert_eq!(
            classify(
                200,
                br#"{"status":6,"status_message":"receiverNotSubscribed"}"#
            ),
            Verdict::Permanent {
                status: 6,
                detail: "receiverNotSubscribed".into()
            }
        );
        assert!(matches!(
            classify(404, b""),
            Verdict::Permanent { status: -1, .. }
        ));
        assert!(matches!(
            classify(200, b"<html>"),
            Verdict::Permanent { status: -1, .. }
        ));
    }

    #[test]
    fn replies_are_counted_by_what_viber_answered() {
        let status = |http, body: &[u8]| classify(http, body).status();
        assert_eq!(status(200, br#"{"status":0}"#), "ok");
        assert_eq!(status(200, br#"{"status":12}"#), "tooManyRequests");
        assert_eq!(status(200, br#"{"status":6}"#), "receiverNotSubscribed");
        assert_eq!(status(503, b"busy"), "http_error");
        assert_eq!(status(404, b""), "http_error");
        assert_eq!(status(200, b"<html>"), "http_error");
        assert_eq!(Verdict::Retry("timeout".into()).status(), "no_reply");
    }

    #[test]
    fn status_names() {
        assert_eq!(status_name(0), "ok");
        assert_eq!(status_name(12), "tooManyRequests");
        assert_eq!(status_name(24), "noBalance");
        assert_eq!(status_name(99), "generalError");
        assert_eq!(status_name(-1), "generalError");
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        assert_eq!(backoff(1, 100, 5000, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(2, 100, 5000, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(3, 100, 5000, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(10, 100, 5000, 1.0), Duration::from_millis(5000));
        assert_eq!(backoff(60, 100, 5000, 1.0), Duration::from_millis(5000));
    }
}
