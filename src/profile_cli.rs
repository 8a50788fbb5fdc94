//! `tasklet profile`: fetch a CPU flamegraph from a running daemon.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The daemon's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// How long to sample.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Where to write the SVG.
    #[arg(short, long, default_value = "flame.svg")]
    pub output: PathBuf,
    /// The daemon's debug token.
    #[arg(long, env = "TASKLET_DEBUG_TOKEN", hide_env_values = true)]
    pub token: String,
}

pub async fn run(args: ProfileArgs) -> anyhow::Result<()> {
    let url = format!(
        "{}/debug/profile?seconds={}",
        args.url.trim_end_matches('/'),
        args.seconds
    );
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&args.token)
        .timeout(std::time::Duration::from_secs(args.seconds + 60))
        .send()
        .await?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        anyhow::bail!("{url}: {status}: {}", String::from_utf8_lossy(&body));
    }
    std::fs::write(&args.output, &body)?;
    println!("wrote {} ({} bytes)", args.output.display(), body.len());
    Ok(())
}
