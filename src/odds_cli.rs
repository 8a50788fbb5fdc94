//! `tasklet odds …`: read recorded changes (`changes`, from the database)
//! and follow the live stream of a running daemon (`watch`).

use clap::{Args, Subcommand};
use tasklet_actors::odds::queries::{self, ChangeFilter, ChangeRow};
use tasklet_actors::store::models::now_us;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum OddsCommand {
    /// Print recorded changes, oldest first (reads the configured database).
    Changes(ChangesArgs),
    /// Follow a running daemon's live stream of changes.
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct ChangesArgs {
    /// Only this event (the site's event id).
    #[arg(long)]
    pub event: Option<String>,
    /// Only this site.
    #[arg(long)]
    pub site: Option<String>,
    /// How far back: 90s, 10m, 2h, 1d, or microseconds since the epoch.
    #[arg(long, default_value = "10m")]
    pub since: String,
    #[arg(long, default_value_t = 1_000)]
    pub limit: i64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The daemon (default: the config's server.addr).
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long)]
    pub event: Option<String>,
    #[arg(long)]
    pub market: Option<String>,
}

pub async fn run(cmd: OddsCommand, config: &Config) -> anyhow::Result<()> {
    match cmd {
        OddsCommand::Changes(args) => changes(args, config).await,
        OddsCommand::Watch(args) => watch(args, config).await,
    }
}

fn price(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.2}"))
        .unwrap_or_else(|| "-".to_owned())
}

/// One change as a line a person reads.
#[allow(clippy::too_many_arguments)]
pub fn line(
    at_us: i64,
    site: &str,
    event: &str,
    market: &str,
    outcome: &str,
    kind: &str,
    old: Option<f64>,
    new: Option<f64>,
    status: Option<&str>,
) -> String {
    let secs = at_us.div_euclid(1_000_000);
    let (h, m, s) = ((secs / 3_600) % 24, (secs / 60) % 60, secs % 60);
    let ms = at_us.rem_euclid(1_000_000) / 1_000;
    let what = match (kind, status) {
        ("status", Some(st)) | ("removed", Some(st)) if market.is_empty() => st.to_owned(),
        ("price", _) => format!("{} -> {}", price(old), price(new)),
        ("added", _) => price(new),
        _ => String::new(),
    };
    format!("{h:02}:{m:02}:{s:02}.{ms:03}Z  {site}/{event}  {market:>8} {outcome:>10}  {kind:<11} {what}")
}

fn row_line(r: &ChangeRow) -> String {
    line(
        r.observed_at_us,
        &r.site,
        &r.event_id,
        &r.market,
        &r.outcome,
        &r.kind,
        r.old_price,
        r.new_price,
        r.status.as_deref(),
    )
}

async fn changes(args: ChangesArgs, config: &Config) -> anyhow::Result<()> {
    let since_us =
        queries::parse_since(&args.since, now_us()).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    if !(1..=100_000).contains(&args.limit) {
        anyhow::bail!("--limit: must be between 1 and 100000");
    }
    let store = crate::daemon::open_store(config).await?;
    let rows = queries::changes(
        &store,
        ChangeFilter {
            site: args.site,
            event: args.event,
            since_us: Some(since_us),
            after_id: None,
            limit: args.limit,
        },
    )
    .await?;
    for r in &rows {
        if args.json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            println!("{}", row_line(r));
        }
    }
    if !args.json {
        eprintln!("{} changes", rows.len());
    }
    Ok(())
}

async fn watch(args: WatchArgs, config: &Config) -> anyhow::Result<()> {
    let base = args
        .url
        .unwrap_or_else(|| format!("http://{}", config.server.addr));
    let mut url = reqwest::Url::parse(&format!("{}/v1/odds/stream", base.trim_end_matches('/')))?;
    if let Some(e) = &args.event {
        url.query_pairs_mut().append_pair("event", e);
    }
    if let Some(m) = &args.market {
        url.query_pairs_mut().append_pair("market", m);
    }
    let mut response = reqwest::get(url.clone()).await?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("{url}: {status} {body}");
    }
    eprintln!("following {url}");
    let mut buffer = String::new();
    while let Some(chunk) = response.chunk().await? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let event = frame.lines().find_map(|l| l.strip_prefix("event: "));
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "));
            match (event, data) {
                (Some("change"), Some(data)) => {
                    let c: tasklet_actors::odds::messages::OddsChange = serde_json::from_str(data)?;
                    println!(
                        "{}",
                        line(
                            c.observed_at_us,
                            &c.site,
                            &c.event,
                            &c.market,
                            &c.outcome,
                            c.kind.as_str(),
                            c.old_price,
                            c.new_price,
                            c.status.as_deref()
                        )
                    );
                }
                (Some("lagged"), Some(data)) => eprintln!("fell behind: {data}"),
                _ => {}
            }
        }
    }
    eprintln!("the stream ended");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_well() {
        let l = line(
            3_723_004_000,
            "favbet",
            "17",
            "5",
            "51",
            "price",
            Some(1.5),
            Some(1.62),
            None,
        );
        assert!(l.starts_with("01:02:03.004Z  favbet/17"), "{l}");
        assert!(l.ends_with("price       1.50 -> 1.62"), "{l}");
        let l = line(0, "s", "1", "", "", "status", None, None, Some("finished"));
        assert!(l.ends_with("finished"), "{l}");
    }
}
