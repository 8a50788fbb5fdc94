//! `tasklet notify …`: register the Viber webhook, read the notification log.

use clap::{Args, Subcommand};
use tasklet_actors::notify::actions::{self, ListFilter};
use tasklet_actors::notify::{status_name, SendReply};
use tasklet_actors::store::Store;

use crate::config::{Config, Secrets};

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Register URL as the bot's webhook for delivery receipts
    /// (POST {notify.viber_base_url}/pa/set_webhook with VIBER_AUTH_TOKEN).
    SetWebhook(SetWebhookArgs),
    /// Print the notifications logged for one transaction, oldest first.
    Log(LogArgs),
}

#[derive(Debug, Args)]
pub struct SetWebhookArgs {
    /// The public HTTPS address of `POST /v1/viber/webhook`.
    #[arg(long)]
    pub url: String,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// The transaction id.
    #[arg(long)]
    pub tx: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: NotifyCommand, config: &Config, secrets: &Secrets) -> anyhow::Result<()> {
    match cmd {
        NotifyCommand::SetWebhook(args) => set_webhook(args, config, secrets).await,
        NotifyCommand::Log(args) => log(args, config).await,
    }
}

async fn set_webhook(
    args: SetWebhookArgs,
    config: &Config,
    secrets: &Secrets,
) -> anyhow::Result<()> {
    let token = secrets
        .viber_auth_token
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("VIBER_AUTH_TOKEN is not set"))?;
    let url = format!(
        "{}/pa/set_webhook",
        config.notify.viber_base_url.trim_end_matches('/')
    );
    let body = serde_json::json!({
        "url": args.url,
        "event_types": ["delivered", "seen", "failed"],
        "send_name": false,
        "send_photo": false,
    });
    let response = reqwest::Client::new()
        .post(&url)
        .header("X-Viber-Auth-Token", token)
        .timeout(config.notify.request_timeout())
        .json(&body)
        .send()
        .await?;
    let http = response.status();
    let text = response.text().await?;
    anyhow::ensure!(http.is_success(), "{url} answered HTTP {http}: {text}");
    let reply: SendReply =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{url} answered {text:?}: {e}"))?;
    anyhow::ensure!(
        reply.status == 0,
        "viber refused the webhook: {} {} ({})",
        reply.status,
        status_name(reply.status),
        reply.status_message
    );
    println!("webhook set to {}", args.url);
    Ok(())
}

async fn log(args: LogArgs, config: &Config) -> anyhow::Result<()> {
    let store = Store::connect(&config.database, &config.base_dir).await?;
    let rows = actions::list(
        &store,
        ListFilter {
            transaction_id: Some(args.tx.clone()),
            limit: 1000,
            ..ListFilter::default()
        },
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no notifications for transaction {}", args.tx);
        return Ok(());
    }
    println!(
        "{:<24} {:<10} {:<9} {:>6} {:>8} {:<20} error",
        "message", "status", "state", "viber", "attempts", "token"
    );
    for r in rows {
        println!(
            "{:<24} {:<10} {:<9} {:>6} {:>8} {:<20} {}",
            r.message_id,
            r.status,
            r.state,
            r.viber_status.map(|s| s.to_string()).unwrap_or_default(),
            r.attempts,
            r.message_token.map(|t| t.to_string()).unwrap_or_default(),
            r.error.unwrap_or_default()
        );
    }
    Ok(())
}
