//! The beard catalog against the simulated site, through the real daemon:
//! fetched once then cached, revalidated after the ttl, one download for
//! many concurrent asks, stale copies when the site is down, unknown styles
//! answered with the known ones.

mod beard_support;

use std::time::Duration;

use beard_support::{error_of, start};
use tasklet::sim::beards::Mode;

#[actix_rt::test]
async fn a_style_is_fetched_once_then_served_from_the_cache() {
    let s = start(3, |_| {}).await;
    for _ in 0..3 {
        let resp = s.dress("full").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "image/jpeg");
        assert_eq!(resp.headers()["x-beard-stale"], "false");
        assert_eq!(resp.headers()["x-faces"], "1");
        let jpeg = resp.bytes().await.unwrap();
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    }
    assert_eq!(s.sim.downloads("full"), 1);
    assert_eq!(s.sim.not_modified("full"), 0);
    let listing = s.listing().await;
    let full = listing["styles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "full")
        .unwrap()
        .clone();
    assert_eq!(full["cached"], true);
    assert_eq!(full["stale"], false);
    assert_eq!(full["width"], 400);
    s.stop().await;
}

#[actix_rt::test]
async fn after_the_ttl_a_changed_image_is_downloaded_and_an_unchanged_one_revalidated() {
    let s = start(3, |c| c.beard.ttl_s = 1).await;
    let first = s.dress("full").await.bytes().await.unwrap();
    assert_eq!(s.sim.downloads("full"), 1);
    // Unchanged: after the ttl the site answers 304 and the copy is kept.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = s.dress("full").await.bytes().await.unwrap();
    assert_eq!(s.sim.downloads("full"), 1);
    assert_eq!(s.sim.not_modified("full"), 1);
    assert_eq!(first, again, "same beard, same answer");
    // Changed on the site: within the ttl the new one is served.
    assert!(s.sim.change("full"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let changed = s.dress("full").await.bytes().await.unwrap();
    assert_eq!(s.sim.downloads("full"), 2);
    assert_ne!(first, changed, "the redrawn beard is in the answer");
    s.stop().await;
}

#[actix_rt::test]
async fn a_hundred_concurrent_asks_for_a_new_style_download_it_once() {
    let s = start(3, |c| c.beard.max_in_flight = 200).await;
    // A slow site keeps the first download in flight while the others arrive.
    s.sim.set_mode(Mode {
        slow_ms: 400,
        ..Mode::default()
    });
    let photo = beard_support::face("astronaut_512.png");
    let asks = (0..100).map(|_| {
        let client = s.client.clone();
        let url = s.url("/v1/beard?style=goatee");
        let photo = photo.clone();
        async move {
            client
                .post(url)
                .header("Content-Type", "image/png")
                .body(photo)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(asks).await;
    assert!(statuses.iter().all(|&st| st == 200), "{statuses:?}");
    assert_eq!(s.sim.downloads("goatee"), 1);
    s.stop().await;
}

#[actix_rt::test]
async fn site_down_serves_the_cached_style_stale_and_a_new_style_503() {
    let s = start(3, |c| c.beard.ttl_s = 1).await;
    assert_eq!(s.dress("full").await.status(), 200);
    s.sim.set_mode(Mode {
        fail: true,
        ..Mode::default()
    });
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let resp = s.dress("full").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-beard-stale"], "true");
    assert!(resp.headers().contains_key("warning"));
    let listing = s.listing().await;
    let full = listing["styles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "full")
        .unwrap()
        .clone();
    assert_eq!(full["stale"], true);
    // Listed but never downloaded: nothing to fall back on.
    let (status, detail) = error_of(s.dress("goatee").await).await;
    assert_eq!(status, 503, "{detail}");
    assert!(detail.contains("not cached"), "{detail}");
    // The site is back: fresh again.
    s.sim.set_mode(Mode::default());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let resp = s.dress("full").await;
    assert_eq!(resp.headers()["x-beard-stale"], "false");
    s.stop().await;
}

#[actix_rt::test]
async fn a_slow_site_times_out_into_504_for_a_new_style() {
    let s = start(3, |c| c.beard.fetch_timeout_ms = 300).await;
    s.sim.set_mode(Mode {
        slow_ms: 1000,
        ..Mode::default()
    });
    let (status, detail) = error_of(s.dress("moustache").await).await;
    assert_eq!(status, 504, "{detail}");
    s.stop().await;
}

#[actix_rt::test]
async fn an_unknown_style_is_404_listing_the_known_ones_and_a_new_one_is_found() {
    let s = start(3, |c| c.beard.miss_refresh_min_ms = 0).await;
    let (status, detail) = error_of(s.dress("walrus").await).await;
    assert_eq!(status, 404);
    assert!(detail.contains("full, goatee, moustache"), "{detail}");
    // A style added on the site is found on the miss, without waiting for
    // the scheduled refresh.
    let added = s.sim.add();
    assert_eq!(added, "stubble");
    assert_eq!(s.dress("stubble").await.status(), 200);
    assert_eq!(s.sim.downloads("stubble"), 1);
    s.stop().await;
}

#[actix_rt::test]
async fn the_list_refreshes_on_schedule_and_drops_removed_styles() {
    let s = start(2, |c| c.beard.refresh_interval_s = 1).await;
    let before = s.sim.catalog_reads();
    let added = s.sim.add();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(s.sim.catalog_reads() > before);
    let listing = s.listing().await;
    let names: Vec<&str> = listing["styles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&added.as_str()), "{names:?}");
    s.stop().await;
}
