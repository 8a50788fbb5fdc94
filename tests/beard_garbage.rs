//! A catalog page that is not a catalog: the error is logged clearly and
//! the last good list is kept.

mod beard_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use beard_support::start;
use tasklet::sim::beards::Mode;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[actix_rt::test]
async fn garbage_markup_logs_a_clear_error_and_keeps_the_last_good_list() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let s = start(3, |c| c.beard.miss_refresh_min_ms = 0).await;
    assert_eq!(s.dress("full").await.status(), 200);
    s.sim.set_mode(Mode {
        garbage: true,
        ..Mode::default()
    });
    // A miss makes the daemon read the list again: it is garbage now.
    let resp = s.dress("walrus").await;
    assert_eq!(resp.status(), 503);
    let listing = s.listing().await;
    let error = listing["list_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("li.beard"), "{listing}");
    assert_eq!(
        listing["styles"].as_array().unwrap().len(),
        3,
        "last good list kept"
    );
    // Listed styles still work, cached or not.
    assert_eq!(s.dress("full").await.status(), 200);
    assert_eq!(s.dress("goatee").await.status(), 200);
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    let line = text
        .lines()
        .find(|l| l.contains("catalog list unreadable"))
        .unwrap_or_else(|| panic!("no error line in:\n{text}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("no item matches \"li.beard\""), "{line}");
    assert!(line.contains("kept_styles=3"), "{line}");
    s.stop().await;
}
