//! Shared by the beard integration tests: a catalog simulator and a daemon
//! with the beard pipeline reading it, both on 127.0.0.1:0.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tasklet::config::{Config, Secrets};
use tasklet::daemon::Daemon;
use tasklet::sim::beards::BeardSim;

pub struct Setup {
    pub daemon: Daemon,
    pub sim: BeardSim,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn face(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/data/faces").join(name)).expect("test face")
}

/// A config for a daemon on 127.0.0.1:0 with an SQLite file in `dir` and the
/// beard pipeline reading `catalog_url`.
pub fn config(dir: &Path, catalog_url: &str) -> Config {
    let mut c = Config::default();
    c.server.addr = "127.0.0.1:0".into();
    c.server.workers = 2;
    c.database.url = format!("sqlite://{}", dir.join("tasklet.db").display());
    c.beard.enabled = true;
    c.beard.catalog_url = catalog_url.to_owned();
    c.beard.models_dir = repo().join("models").display().to_string();
    c.pools.compositor = 2;
    c.base_dir = dir.to_path_buf();
    c
}

/// Starts a simulator with `styles` styles and a daemon whose config
/// `tune` may adjust.
pub async fn start(styles: usize, tune: impl FnOnce(&mut Config)) -> Setup {
    let sim = BeardSim::start("127.0.0.1:0", styles, Duration::ZERO)
        .await
        .expect("simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &sim.catalog_url());
    tune(&mut c);
    let daemon = Daemon::start(c, Secrets::default())
        .await
        .expect("daemon starts");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let setup = Setup {
        daemon,
        sim,
        client,
        dir,
    };
    setup.wait_for_list().await;
    setup
}

impl Setup {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.daemon.addr, path)
    }

    /// Waits until the daemon has read the catalog list once.
    pub async fn wait_for_list(&self) {
        for _ in 0..100 {
            let listing = self.listing().await;
            if listing["list_age_s"].is_u64() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the catalog list was never read");
    }

    pub async fn listing(&self) -> serde_json::Value {
        self.client
            .get(self.url("/v1/beards"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn post(&self, query: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/v1/beard?{query}")))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// A 512x512 portrait with one face, as PNG.
    pub async fn dress(&self, style: &str) -> reqwest::Response {
        self.post(
            &format!("style={style}"),
            "image/png",
            face("astronaut_512.png"),
        )
        .await
    }

    /// Stops both; hands back the daemon's folder (database, config) so
    /// that a test can still look into it.
    pub async fn stop(self) -> tempfile::TempDir {
        self.daemon.shutdown().await.unwrap();
        self.sim.stop().await;
        self.dir
    }
}

/// The JSON error body of a response.
pub async fn error_of(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    (status, body["detail"].as_str().unwrap_or("").to_owned())
}
