//! [`BeardCatalog`]: the one owner of what the daemon knows about the beard
//! catalog site — the list of styles and a byte-bounded cache of their
//! decoded images.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::{StatusCode, Url};
use tokio::sync::oneshot;
use tracing::{error, info, info_span, warn, Instrument};

use super::config::{BeardSelectors, BeardSettings};
use super::messages::{
    CatalogError, CatalogListing, GetBeard, ListStyles, StyleFreshness, StyleImage,
};
use crate::compose::beard::{default_anchor, BeardImage};
use crate::observe;

/// Largest beard image side accepted from the catalog, in pixels.
const MAX_BEARD_SIDE: u32 = 4096;
/// After a failed revalidation, how soon the site is asked again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// The beard catalog agent.
///
/// Receives [`GetBeard`] (from HTTP handlers) and [`ListStyles`]; answers
/// with a [`StyleImage`] or a [`CatalogError`]. Owns the style list scraped
/// from `catalog_url` (re-read every `refresh_interval_s` and on a miss for
/// an unknown style), the cache of decoded beards (bounded by
/// `cache_bytes`, least recently used evicted first, revalidated with a
/// conditional GET after `ttl_s`), and the in-flight downloads: many asks
/// for the same style share one download. When the site fails, a cached
/// copy is served flagged stale; a style never downloaded gets an error.
pub struct BeardCatalog {
    settings: BeardSettings,
    client: reqwest::Client,
    catalog_url: Url,
    /// The last good list, by style name.
    listed: HashMap<String, ListedStyle>,
    list_read_at: Option<Instant>,
    list_error: Option<String>,
    list_attempted_at: Option<Instant>,
    /// Asks for styles not on the list, waiting for a list refresh.
    list_waiters: Option<Vec<(String, Reply)>>,
    cache: ByteLru,
    /// Downloads in flight, with everyone waiting for each.
    inflight: HashMap<String, Vec<Reply>>,
}

type Reply = oneshot::Sender<Result<StyleImage, CatalogError>>;

/// One style as the catalog page lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedStyle {
    pub name: String,
    pub url: Url,
    pub anchor: Option<[f32; 2]>,
}

/// Why a catalog page could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScrapeError {
    #[error("selector {key} {selector:?} is not valid CSS")]
    Selector { key: &'static str, selector: String },
    #[error("no item matches {selector:?}: not a catalog page")]
    NoItems { selector: String },
    #[error("none of {items} items has a name and an image URL")]
    NoUsableItems { items: usize },
}

impl BeardCatalog {
    /// A catalog reading `settings.catalog_url`; fails on a bad URL.
    pub fn new(settings: BeardSettings) -> Result<BeardCatalog, CatalogError> {
        let catalog_url = Url::parse(&settings.catalog_url)
            .map_err(|e| CatalogError::Unavailable(format!("bad catalog_url: {e}")))?;
        let timeout = Duration::from_millis(settings.fetch_timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("tasklet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CatalogError::Unavailable(format!("http client: {e}")))?;
        Ok(BeardCatalog {
            cache: ByteLru::new(settings.cache_bytes),
            settings,
            client,
            catalog_url,
            listed: HashMap::new(),
            list_read_at: None,
            list_error: None,
            list_attempted_at: None,
            list_waiters: None,
            inflight: HashMap::new(),
        })
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(self.settings.ttl_s)
    }

    fn known_styles(&self) -> Vec<String> {
        let mut names: Vec<String> = self.listed.keys().cloned().collect();
        names.sort();
        names
    }

    /// Reads the list again unless a read is already running; `waiter`
    /// (if any) is answered once it ends.
    fn refresh_list(&mut self, ctx: &mut Context<Self>, waiter: Option<(String, Reply)>) {
        if let Some(waiters) = self.list_waiters.as_mut() {
            waiters.extend(waiter);
            return;
        }
        self.list_waiters = Some(waiter.into_iter().collect());
        self.list_attempted_at = Some(Instant::now());
        let client = self.client.clone();
        let url = self.catalog_url.clone();
        let selectors = self.settings.selectors.clone();
        let fut = async move { read_list(&client, &url, &selectors).await };
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| {
            act.list_read(result, ctx);
        }));
    }

    fn list_read(&mut self, result: Result<Vec<ListedStyle>, String>, ctx: &mut Context<Self>) {
        let waiters = self.list_waiters.take().unwrap_or_default();
        let failed = match result {
            Ok(styles) => {
                let fresh: HashMap<String, ListedStyle> =
                    styles.into_iter().map(|s| (s.name.clone(), s)).collect();
                // A style gone from the site or moved to another URL is
                // dropped from the cache.
                let gone: Vec<String> = self
                    .cache
                    .names()
                    .filter(|name| {
                        fresh.get(*name).map(|s| &s.url) != self.listed.get(*name).map(|s| &s.url)
                    })
                    .cloned()
                    .collect();
                for name in gone {
                    self.cache.remove(&name);
                }
                info!(
                    pipeline = "beard",
                    actor = "catalog",
                    styles = fresh.len(),
                    "catalog list read"
                );
                metrics::counter!("tasklet_beard_list_reads_total", "outcome" => "ok").increment(1);
                self.listed = fresh;
                self.list_read_at = Some(Instant::now());
                self.list_error = None;
                None
            }
            Err(reason) => {
                error!(pipeline = "beard", actor = "catalog", url = %self.catalog_url, error = %reason, kept_styles = self.listed.len(), "catalog list unreadable, keeping the last good list");
                metrics::counter!("tasklet_beard_list_reads_total", "outcome" => "error")
                    .increment(1);
                self.list_error = Some(reason.clone());
                Some(reason)
            }
        };
        for (style, reply) in waiters {
            if self.listed.contains_key(&style) {
                self.get(style, reply, ctx);
            } else if let Some(reason) = &failed {
                let _ = reply.send(Err(CatalogError::Unavailable(reason.clone())));
            } else {
                let _ = reply.send(Err(CatalogError::UnknownStyle {
                    style,
                    known: self.known_styles(),
                }));
            }
        }
    }

    /// Answers `reply` for a listed or cached `style`: from the cache when
    /// fresh, else through one shared download.
    fn get(&mut self, style: String, reply: Reply, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if let Some(entry) = self.cache.get(&style) {
            if now < entry.next_check {
                metrics::counter!("tasklet_beard_cache_total", "outcome" => "hit").increment(1);
                let _ = reply.send(Ok(entry.answer(&style, now)));
                return;
            }
        }
        if let Some(waiters) = self.inflight.get_mut(&style) {
            waiters.push(reply);
            return;
        }
        let Some(listed) = self.listed.get(&style).cloned() else {
            let _ = reply.send(Err(CatalogError::UnknownStyle {
                style,
                known: self.known_styles(),
            }));
            return;
        };
        let validators = self
            .cache
            .peek(&style)
            .map(|e| (e.etag.clone(), e.last_modified.clone()));
        metrics::counter!("tasklet_beard_cache_total", "outcome" => if validators.is_some() { "revalidate" } else { "miss" }).increment(1);
        self.inflight.insert(style.clone(), vec![reply]);
        let client = self.client.clone();
        let max_bytes = self.settings.max_image_bytes;
        let fut = async move { fetch_beard(&client, &listed, validators, max_bytes).await };
        ctx.spawn(fut.into_actor(self).map(move |result, act, _ctx| {
            act.fetched(style, result);
        }));
    }

    fn fetched(&mut self, style: String, result: Result<Fetched, CatalogError>) {
        let now = Instant::now();
        let waiters = self.inflight.remove(&style).unwrap_or_default();
        let ttl = self.ttl();
        let answer = match result {
            Ok(Fetched::NotModified) => match self.cache.get_mut(&style) {
                Some(entry) => {
                    entry.confirmed_at = now;
                    entry.next_check = now + ttl;
                    entry.stale = false;
                    info!(pipeline = "beard", actor = "catalog", style = %style, "beard not modified");
                    Ok(entry.answer(&style, now))
                }
                None => Err(CatalogError::Unavailable(
                    "site answered 304 for a beard not cached".into(),
                )),
            },
            Ok(Fetched::New {
                image,
                etag,
                last_modified,
            }) => {
                info!(pipeline = "beard", actor = "catalog", style = %style, width = image.width, height = image.height, "beard downloaded");
                let entry = CachedBeard {
                    bytes: image.rgba.len() as u64,
                    image: Arc::new(image),
                    etag,
                    last_modified,
                    confirmed_at: now,
                    next_check: now + ttl,
                    stale: false,
                };
                let answer = entry.answer(&style, now);
                let evicted = self.cache.insert(style.clone(), entry);
                if !evicted.is_empty() {
                    info!(pipeline = "beard", actor = "catalog", evicted = ?evicted, "beards evicted from the cache");
                }
                Ok(answer)
            }
            Err(err) => match self.cache.get_mut(&style) {
                Some(entry) => {
                    warn!(pipeline = "beard", actor = "catalog", style = %style, error = %err, "site failed, serving the cached beard stale");
                    metrics::counter!("tasklet_beard_stale_total").increment(1);
                    entry.stale = true;
                    entry.next_check = now + RETRY_AFTER_ERROR.min(ttl);
                    Ok(entry.answer(&style, now))
                }
                None => {
                    warn!(pipeline = "beard", actor = "catalog", style = %style, error = %err, "beard download failed");
                    Err(err)
                }
            },
        };
        for reply in waiters {
            let _ = reply.send(answer.clone());
        }
    }
}

impl Actor for BeardCatalog {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.refresh_list(ctx, None);
        let every = Duration::from_secs(self.settings.refresh_interval_s);
        ctx.run_interval(every, |act, ctx| act.refresh_list(ctx, None));
    }
}

/// Restarted after a panic keeping the list and the cached images. The
/// list read and the downloads in flight were dropped with the context:
/// whoever waited for them is answered `Stopped` (their senders dropped)
/// rather than left waiting, and `started` reads the list again.
impl Supervised for BeardCatalog {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.list_waiters = None;
        self.inflight.clear();
    }
}

impl Handler<GetBeard> for BeardCatalog {
    type Result = ResponseFuture<Result<StyleImage, CatalogError>>;

    fn handle(&mut self, msg: GetBeard, ctx: &mut Context<Self>) -> Self::Result {
        crate::supervise::fault_point("BeardCatalog.GetBeard");
        let span = info_span!("BeardCatalog", pipeline = "beard", request_id = %msg.request_id, style = %msg.style);
        let entered = span.clone().entered();
        let handled = observe::handling("BeardCatalog");
        let (tx, rx) = oneshot::channel();
        let style = msg.style;
        if self.listed.contains_key(&style) || self.cache.peek(&style).is_some() {
            self.get(style, tx, ctx);
        } else {
            let min = Duration::from_millis(self.settings.miss_refresh_min_ms);
            let recently = self.list_attempted_at.is_some_and(|at| at.elapsed() < min);
            if recently && self.list_waiters.is_none() {
                let answer = match &self.list_error {
                    Some(reason) => Err(CatalogError::Unavailable(reason.clone())),
                    None => Err(CatalogError::UnknownStyle {
                        style,
                        known: self.known_styles(),
                    }),
                };
                let _ = tx.send(answer);
            } else {
                self.refresh_list(ctx, Some((style, tx)));
            }
        }
        drop(entered);
        Box::pin(
            async move {
                let _handled = handled;
                rx.await.unwrap_or(Err(CatalogError::Stopped))
            }
            .instrument(span),
        )
    }
}

impl Handler<ListStyles> for BeardCatalog {
    type Result = MessageResult<ListStyles>;

    fn handle(&mut self, _msg: ListStyles, _ctx: &mut Context<Self>) -> Self::Result {
        let _handled = observe::handling("BeardCatalog");
        let now = Instant::now();
        let mut styles: Vec<StyleFreshness> = self
            .listed
            .values()
            .map(|listed| {
                let entry = self.cache.peek(&listed.name);
                StyleFreshness {
                    name: listed.name.clone(),
                    url: listed.url.to_string(),
                    cached: entry.is_some(),
                    age_s: entry.map(|e| now.duration_since(e.confirmed_at).as_secs()),
                    stale: entry.is_some_and(|e| e.stale),
                    width: entry.map(|e| e.image.width),
                    height: entry.map(|e| e.image.height),
                }
            })
            .collect();
        styles.sort_by(|a, b| a.name.cmp(&b.name));
        MessageResult(CatalogListing {
            catalog_url: self.catalog_url.to_string(),
            list_age_s: self.list_read_at.map(|t| t.elapsed().as_secs()),
            list_error: self.list_error.clone(),
            styles,
            cache_bytes: self.cache.bytes(),
        })
    }
}

/// A cached beard with what revalidation needs.
#[derive(Debug, Clone)]
struct CachedBeard {
    image: Arc<BeardImage>,
    bytes: u64,
    etag: Option<String>,
    last_modified: Option<String>,
    /// When the site last confirmed this copy.
    confirmed_at: Instant,
    /// Served without asking the site until then.
    next_check: Instant,
    stale: bool,
}

impl CachedBeard {
    fn answer(&self, style: &str, now: Instant) -> StyleImage {
        StyleImage {
            style: style.to_owned(),
            image: self.image.clone(),
            stale: self.stale,
            age_s: now.duration_since(self.confirmed_at).as_secs(),
        }
    }
}

/// A map bounded by the sum of its entries' bytes; the least recently used
/// entries go first.
#[derive(Debug)]
struct ByteLru {
    limit: u64,
    bytes: u64,
    clock: u64,
    entries: HashMap<String, (u64, CachedBeard)>,
}

impl ByteLru {
    fn new(limit: u64) -> ByteLru {
        ByteLru {
            limit,
            bytes: 0,
            clock: 0,
            entries: HashMap::new(),
        }
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn names(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    /// Looks without counting as a use.
    fn peek(&self, name: &str) -> Option<&CachedBeard> {
        self.entries.get(name).map(|(_, e)| e)
    }

    fn get(&mut self, name: &str) -> Option<&CachedBeard> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(name).map(|(used, e)| {
            *used = clock;
            &*e
        })
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut CachedBeard> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(name).map(|(used, e)| {
            *used = clock;
            e
        })
    }

    fn remove(&mut self, name: &str) -> Option<CachedBeard> {
        let (_, e) = self.entries.remove(name)?;
        self.bytes -= e.bytes;
        Some(e)
    }

    /// Inserts, then evicts least recently used entries (never the new
    /// one unless it alone is over the limit) until within the limit.
    /// Returns the names evicted.
    fn insert(&mut self, name: String, entry: CachedBeard) -> Vec<String> {
        self.remove(&name);
        self.clock += 1;
        self.bytes += entry.bytes;
        self.entries.insert(name.clone(), (self.clock, entry));
        let mut evicted = Vec::new();
        while self.bytes > self.limit {
            let victim = self
                .entries
                .iter()
                .filter(|(n, _)| **n != name)
                .min_by_key(|(_, (used, _))| *used)
                .map(|(n, _)| n.clone())
                .unwrap_or_else(|| name.clone());
            self.remove(&victim);
            let last = victim == name;
            evicted.push(victim);
            if last {
                break;
            }
        }
        evicted
    }
}

/// Reads and scrapes the catalog page.
async fn read_list(
    client: &reqwest::Client,
    url: &Url,
    selectors: &BeardSelectors,
) -> Result<Vec<ListedStyle>, String> {
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| describe(&e))?;
    if !response.status().is_success() {
        return Err(format!("catalog page answered {}", response.status()));
    }
    let html = response.text().await.map_err(|e| describe(&e))?;
    scrape(&html, url, selectors).map_err(|e| e.to_string())
}

/// Scrapes a catalog page: one [`ListedStyle`] per item with a name and
/// an image URL (resolved against `base`).
pub fn scrape(
    html: &str,
    base: &Url,
    selectors: &BeardSelectors,
) -> Result<Vec<ListedStyle>, ScrapeError> {
    let parse = |key: &'static str, s: &str| {
        scraper::Selector::parse(s).map_err(|_| ScrapeError::Selector {
            key,
            selector: s.to_owned(),
        })
    };
    let item_sel = parse("item", &selectors.item)?;
    let name_sel = parse("name", &selectors.name)?;
    let image_sel = parse("image", &selectors.image)?;
    let doc = scraper::Html::parse_document(html);
    let mut items = 0;
    let mut out = Vec::new();
    for item in doc.select(&item_sel) {
        items += 1;
        let name = item
            .select(&name_sel)
            .next()
            .map(|n| n.text().collect::<String>().trim().to_owned())
            .filter(|n| !n.is_empty());
        let image = item.select(&image_sel).next();
        let src = image.and_then(|i| i.value().attr(&selectors.image_attr));
        let (Some(name), Some(src)) = (name, src) else {
            continue;
        };
        let Ok(url) = base.join(src.trim()) else {
            continue;
        };
        let anchor = image
            .filter(|_| !selectors.anchor_attr.is_empty())
            .and_then(|i| i.value().attr(&selectors.anchor_attr))
            .and_then(parse_anchor);
        out.push(ListedStyle { name, url, anchor });
    }
    if items == 0 {
        return Err(ScrapeError::NoItems {
            selector: selectors.item.clone(),
        });
    }
    if out.is_empty() {
        return Err(ScrapeError::NoUsableItems { items });
    }
    Ok(out)
}

/// "x,y" in beard pixels.
fn parse_anchor(s: &str) -> Option<[f32; 2]> {
    let (x, y) = s.split_once(',')?;
    let x: f32 = x.trim().parse().ok()?;
    let y: f32 = y.trim().parse().ok()?;
    (x.is_finite() && y.is_finite()).then_some([x, y])
}

enum Fetched {
    NotModified,
    New {
        image: BeardImage,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// One (conditional when `validators` are given) GET of a beard image,
/// decoded off the async threads.
async fn fetch_beard(
    client: &reqwest::Client,
    listed: &ListedStyle,
    validators: Option<(Option<String>, Option<String>)>,
    max_bytes: u64,
) -> Result<Fetched, CatalogError> {
    let mut request = client.get(listed.url.clone());
    if let Some((etag, last_modified)) = &validators {
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = last_modified {
            request = request.header(IF_MODIFIED_SINCE, lm);
        }
    }
    let response = request.send().await.map_err(fetch_error)?;
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED && validators.is_some() {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        return Err(CatalogError::Unavailable(format!(
            "{} answered {status}",
            listed.url
        )));
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let etag = header(ETAG);
    let last_modified = header(LAST_MODIFIED);
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(CatalogError::Unavailable(format!(
            "{} is larger than {max_bytes} bytes",
            listed.url
        )));
    }
    let mut body = Vec::new();
    let mut response = response;
    while let Some(chunk) = response.chunk().await.map_err(fetch_error)? {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > max_bytes {
            return Err(CatalogError::Unavailable(format!(
                "{} is larger than {max_bytes} bytes",
                listed.url
            )));
        }
    }
    metrics::counter!("tasklet_beard_downloads_total").increment(1);
    let anchor = listed.anchor;
    let url = listed.url.to_string();
    let image = tokio::task::spawn_blocking(move || decode_beard(&body, anchor))
        .await
        .map_err(|e| CatalogError::Unavailable(format!("decoder stopped: {e}")))?
        .map_err(|e| CatalogError::Unavailable(format!("{url}: {e}")))?;
    Ok(Fetched::New {
        image,
        etag,
        last_modified,
    })
}

fn fetch_error(e: reqwest::Error) -> CatalogError {
    if e.is_timeout() {
        CatalogError::Timeout(describe(&e))
    } else {
        CatalogError::Unavailable(describe(&e))
    }
}

/// The error with its causes, on one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Decodes a PNG or WebP beard (alpha kept) with its anchor.
pub fn decode_beard(bytes: &[u8], anchor: Option<[f32; 2]>) -> Result<BeardImage, String> {
    let format = image::guess_format(bytes).map_err(|e| format!("not an image: {e}"))?;
    if !matches!(format, image::ImageFormat::Png | image::ImageFormat::WebP) {
        return Err(format!("{format:?} is not a beard format (PNG or WebP)"));
    }
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_BEARD_SIDE);
    limits.max_image_height = Some(MAX_BEARD_SIDE);
    reader.limits(limits);
    let rgba = reader
        .decode()
        .map_err(|e| format!("cannot decode: {e}"))?
        .into_rgba8();
    let (width, height) = rgba.dimensions();
    if width == 0 || height == 0 {
        return Err("empty image".into());
    }
    let anchor = anchor
        .filter(|a| a[0] >= 0.0 && a[1] >= 0.0 && a[0] <= width as f32 && a[1] <= height as f32)
        .unwrap_or_else(|| default_anchor(width, height));
    Ok(BeardImage {
        width,
        height,
        rgba: Arc::new(rgba.into_raw()),
        anchor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://127.0.0.1:1/beards/").unwrap()
    }

    #[test]
    fn scrape_reads_names_urls_and_anchors() {
        let html = r#"<ul>
          <li class="beard"><span class="name"> full </span><img src="img/full.png" data-anchor="200,60"></li>
          <li class="beard"><span class="name">goatee</span><img src="/abs/goatee.webp"></li>
          <li class="beard"><span class="name">broken</span></li>
        </ul>"#;
        let styles = scrape(html, &base(), &BeardSelectors::default()).unwrap();
        assert_eq!(styles.len(), 2);
        assert_eq!(styles[0].name, "full");
        assert_eq!(
            styles[0].url.as_str(),
            "http://127.0.0.1:1/beards/img/full.png"
        );
        assert_eq!(styles[0].anchor, Some([200.0, 60.0]));
        assert_eq!(styles[1].url.as_str(), "http://127.0.0.1:1/abs/goatee.webp");
        assert_eq!(styles[1].anchor, None);
    }

    #[test]
    fn garbage_markup_is_a_clear_error() {
        let err = scrape(
            "<<<%%% not html at all",
            &base(),
            &BeardSelectors::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ScrapeError::NoItems { .. }), "{err}");
        assert!(err.to_string().contains("li.beard"));
        let err = scrape(
            "<li class=beard>no name</li>",
            &base(),
            &BeardSelectors::default(),
        )
        .unwrap_err();
        assert_eq!(err, ScrapeError::NoUsableItems { items: 1 });
    }

    #[test]
    fn selectors_come_from_config() {
        let html = r#"<div class="s" data-n="x"><h2>chin-strap</h2><a href="c.png">img</a></div>"#;
        let selectors = BeardSelectors {
            item: "div.s".into(),
            name: "h2".into(),
            image: "a".into(),
            image_attr: "href".into(),
            anchor_attr: String::new(),
        };
        let styles = scrape(html, &base(), &selectors).unwrap();
        assert_eq!(styles[0].name, "chin-strap");
        assert!(styles[0].url.as_str().ends_with("/beards/c.png"));
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbaImage::from_pixel(w, h, image::Rgba([10, 20, 30, 128]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgba8(img)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn decode_keeps_alpha_and_defaults_the_anchor() {
        let b = decode_beard(&png(40, 20), None).unwrap();
        assert_eq!((b.width, b.height), (40, 20));
        assert_eq!(&b.rgba[..4], &[10, 20, 30, 128]);
        assert_eq!(b.anchor, default_anchor(40, 20));
        let b = decode_beard(&png(40, 20), Some([500.0, 1.0])).unwrap();
        assert_eq!(
            b.anchor,
            default_anchor(40, 20),
            "out-of-image anchor ignored"
        );
    }

    #[test]
    fn decode_refuses_non_images_and_jpeg() {
        assert!(decode_beard(b"<html>", None).is_err());
        let mut jpeg = Vec::new();
        image::DynamicImage::new_rgb8(4, 4)
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        assert!(decode_beard(&jpeg, None)
            .unwrap_err()
            .contains("not a beard format"));
        let mut truncated = png(40, 20);
        truncated.truncate(60);
        assert!(decode_beard(&truncated, None).is_err());
    }

    fn entry(bytes: u64) -> CachedBeard {
        let now = Instant::now();
        CachedBeard {
            image: Arc::new(BeardImage {
                width: 1,
                height: 1,
                rgba: Arc::new(vec![0; 4]),
                anchor: [0.0, 0.0],
            }),
            bytes,
            etag: None,
            last_modified: None,
            confirmed_at: now,
            next_check: now,
            stale: false,
        }
    }

    #[test]
    fn lru_stays_within_its_bytes_and_evicts_least_recent() {
        let mut lru = ByteLru::new(100);
        assert!(lru.insert("a".into(), entry(40)).is_empty());
        assert!(lru.insert("b".into(), entry(40)).is_empty());
        lru.get("a");
        assert_eq!(lru.insert("c".into(), entry(40)), vec!["b".to_owned()]);
        assert_eq!(lru.bytes(), 80);
        assert!(lru.peek("a").is_some() && lru.peek("c").is_some());
        // Too big alone: not kept.
        let evicted = lru.insert("huge".into(), entry(500));
        assert!(evicted.contains(&"huge".to_owned()));
        assert!(lru.bytes() <= 100);
        // Replacing an entry does not double-count.
        lru = ByteLru::new(100);
        lru.insert("a".into(), entry(60));
        lru.insert("a".into(), entry(60));
        assert_eq!(lru.bytes(), 60);
    }
}
