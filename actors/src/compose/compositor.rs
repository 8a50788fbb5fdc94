//! [`Compositor`]: one worker of the image pool.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, Handler, SyncContext};
use tracing::{debug, error, info_span};

use super::mark::Marks;
use super::messages::Stamp;
use super::options::StampOptions;
use super::stamp::{self, Codecs, StampError, Stamped};
use crate::observe;

/// The pure function a compositor runs for a [`Stamp`] (swappable so a
/// test can make it panic).
pub type StampFn = fn(&[u8], &Marks, &StampOptions, &mut Codecs) -> Result<Stamped, StampError>;

/// One worker of the image pool, run N times in a `SyncArbiter`.
///
/// - receives [`Stamp`] (an upload and its options);
/// - answers with the stamped image or a [`StampError`] (its input's fault,
///   or `Panicked` when the image code panicked: the panic is caught, logged
///   with the request id, and the worker goes on with fresh codec handles);
/// - also runs the beard pipeline's [`Dress`](super::dress::Dress);
/// - owns the decoded marks (shared by the pool, decoded once at start) and
///   its own libjpeg-turbo handles, reused across requests.
pub struct Compositor {
    marks: Arc<Marks>,
    codecs: Option<Codecs>,
    stamp: StampFn,
}

impl Compositor {
    pub fn new(marks: Arc<Marks>) -> Compositor {
        Compositor::with_stamp(marks, stamp::stamp)
    }

    /// A compositor running `stamp` instead of the real pipeline.
    pub fn with_stamp(marks: Arc<Marks>, stamp: StampFn) -> Compositor {
        Compositor {
            marks,
            codecs: None,
            stamp,
        }
    }
}

impl Actor for Compositor {
    type Context = SyncContext<Self>;
}

impl Handler<Stamp> for Compositor {
    type Result = Result<Stamped, StampError>;

    /// A panic anywhere in the job answers `Panicked` and replaces this
    /// worker with a fresh one (see [`crate::supervise::sync`]).
    fn handle(&mut self, msg: Stamp, ctx: &mut Self::Context) -> Self::Result {
        crate::supervise::sync("Compositor", ctx, StampError::Panicked, || {
            crate::supervise::fault_point("Compositor.Stamp");
            self.stamp_job(msg)
        })
    }
}

impl Compositor {
    fn stamp_job(&mut self, msg: Stamp) -> Result<Stamped, StampError> {
        let started = Instant::now();
        let Stamp {
            request_id,
            body,
            options,
        } = msg;
        let _span = info_span!("Compositor", pipeline = "watermark", %request_id).entered();
        let _handled = observe::handling("Compositor");
        let mut codecs = match self.codecs.take() {
            Some(c) => c,
            None => Codecs::new()?,
        };
        let (marks, stamp) = (&self.marks, self.stamp);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            stamp(&body, marks, &options, &mut codecs)
        }));
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let result = match outcome {
            Ok(result) => {
                self.codecs = Some(codecs);
                result
            }
            Err(panic) => {
                // The codec handles are dropped with the panic; the next
                // request makes new ones.
                let reason = panic_reason(panic.as_ref());
                error!(pipeline = "watermark", actor = "compositor", %request_id, reason = %reason, elapsed_ms, "stamp panicked");
                observe::restarted("Compositor");
                Err(StampError::Panicked(reason))
            }
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(StampError::Internal(_)) => "internal",
            Err(StampError::Panicked(_)) => "panic",
            Err(_) => "rejected",
        };
        metrics::counter!("tasklet_watermark_stamps_total", "outcome" => outcome).increment(1);
        let path = result.as_ref().map_or("none", |s| s.path.as_str());
        metrics::histogram!("tasklet_watermark_stamp_seconds", "path" => path)
            .record(started.elapsed().as_secs_f64());
        if result.is_ok() {
            metrics::counter!("tasklet_watermark_images_total", "path" => path).increment(1);
        }
        debug!(pipeline = "watermark", actor = "compositor", %request_id, elapsed_ms, outcome, path, "stamped");
        result
    }
}

fn panic_reason(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::options::{OutputFormat, Position, StripMetadata};
    use actix::SyncArbiter;

    fn options() -> StampOptions {
        StampOptions {
            mark: "default".into(),
            position: Position::BottomRight,
            margin: 20,
            opacity: 1.0,
            quality: 85,
            format: OutputFormat::Same,
            strip: StripMetadata::Gps,
            max_pixels: 1_000_000,
            fast_path: true,
        }
    }

    fn stamp_msg(body: &'static [u8]) -> Stamp {
        Stamp {
            request_id: "req-1".into(),
            body: bytes::Bytes::from_static(body),
            options: options(),
        }
    }

    fn panics_on_boom(
        body: &[u8],
        marks: &Marks,
        opts: &StampOptions,
        codecs: &mut Codecs,
    ) -> Result<Stamped, StampError> {
        if body == b"boom" {
            panic!("boom input");
        }
        stamp::stamp(body, marks, opts, codecs)
    }

    #[actix_rt::test]
    async fn a_panic_is_answered_and_the_worker_goes_on() {
        let pool = SyncArbiter::start(1, || {
            Compositor::with_stamp(Arc::new(Marks::new()), panics_on_boom)
        });
        let answer = pool.send(stamp_msg(b"boom")).await.unwrap();
        assert_eq!(answer, Err(StampError::Panicked("boom input".into())));
        // The same (only) worker still answers.
        let answer = pool.send(stamp_msg(b"not an image")).await.unwrap();
        assert_eq!(answer, Err(StampError::NotAnImage));
    }

    #[test]
    fn debug_prints_sizes_not_bytes() {
        let shown = format!("{:?}", stamp_msg(b"\xff\xd8 secret pixels"));
        assert!(shown.contains("body_bytes: 16"), "{shown}");
        assert!(!shown.contains("secret"));
    }
}
