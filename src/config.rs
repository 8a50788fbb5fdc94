//! The daemon's configuration: `config.toml`, overridden key by key by
//! `TASKLET__SECTION__KEY` environment variables, checked before anything
//! starts. Each pipeline owns its section's struct (in `tasklet-actors`);
//! this module composes them, reads the file and reports errors by key path.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tasklet_actors::beards::BeardSettings;
use tasklet_actors::compose::WatermarkSettings;
use tasklet_actors::notify::NotifySettings;
use tasklet_actors::odds::OddsSettings;
use tasklet_actors::store::{redact_url, DatabaseSettings};

/// The prefix of environment overrides: `TASKLET__DATABASE__URL=…`.
pub const ENV_PREFIX: &str = "TASKLET__";

/// Why a configuration was refused. Every variant names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: not valid TOML: {reason}")]
    Syntax { path: String, reason: String },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    /// The offending key's dotted path, when the error is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// The whole configuration, one field per section of `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub log: LogSettings,
    pub pools: PoolSettings,
    pub watermark: WatermarkSettings,
    pub beard: BeardSettings,
    pub odds: OddsSettings,
    pub notify: NotifySettings,
    /// The folder relative paths are resolved against (the config file's).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[server]`: the HTTP listener and the daemon's lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on; port 0 picks a free port (printed at start).
    pub addr: String,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// On SIGTERM/SIGINT: how long draining and flushing may take before the
    /// daemon gives up and exits non-zero.
    pub shutdown_grace_ms: u64,
    /// PEM certificate chain; with `tls_key`, `addr` speaks HTTPS (rustls).
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    pub tls_key: String,
    /// Origins a browser may call from (`https://shop.example`, or `*`);
    /// a request with another `Origin` is refused 403.
    pub allowed_origins: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".to_owned(),
            workers: 0,
            shutdown_grace_ms: 10_000,
            tls_cert: String::new(),
            tls_key: String::new(),
            allowed_origins: Vec::new(),
        }
    }
}

/// `[log]`: where structured logs go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// Filter in `RUST_LOG` syntax; the `RUST_LOG` variable wins when set.
    pub level: String,
    /// Console format: `pretty` (human-readable) or `json`.
    pub format: LogFormat,
    /// When not empty: also write JSON lines to a daily-rotated file here.
    pub dir: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Pretty,
            dir: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// `[pools]`: the size of every worker pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSettings {
    /// Compositor workers (SyncArbiter threads) for image work; 0 = one per core.
    pub compositor: usize,
    /// Odds page parsers (SyncArbiter threads); 0 = one per core.
    pub parser: usize,
    /// Concurrent Viber sends.
    pub viber_senders: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            compositor: 0,
            parser: 0,
            viber_senders: 32,
        }
    }
}

/// Secrets: read from the environment only, never from the file.
#[derive(Clone, Default, PartialEq)]
pub struct Secrets {
    /// `VIBER_AUTH_TOKEN`: the Viber bot token (notify pipeline).
    pub viber_auth_token: Option<String>,
    /// `TASKLET_DEBUG_TOKEN`: guards `/debug/*`.
    pub debug_token: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field(
                "viber_auth_token",
                &self.viber_auth_token.as_ref().map(|_| "***"),
            )
            .field("debug_token", &self.debug_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Secrets {
    pub fn from_env() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            viber_auth_token: get("VIBER_AUTH_TOKEN"),
            debug_token: get("TASKLET_DEBUG_TOKEN"),
        }
    }
}

/// Number of cores, for pool sizes given as 0.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl PoolSettings {
    pub fn compositor_threads(&self) -> usize {
        if self.compositor == 0 {
            cores()
        } else {
            self.compositor
        }
    }

    pub fn parser_threads(&self) -> usize {
        if self.parser == 0 {
            cores()
        } else {
            self.parser
        }
    }
}

impl ServerSettings {
    pub fn worker_threads(&self) -> usize {
        if self.workers == 0 {
            cores()
        } else {
            self.workers
        }
    }
}

fn invalid(section: &str, (key, reason): (&str, String)) -> ConfigError {
    ConfigError::Invalid {
        key: format!("{section}.{key}"),
        reason,
    }
}

impl Config {
    /// Loads `path`, or the defaults when `path` is `None` and `config.toml`
    /// is absent from the working folder; then applies `env` overrides and
    /// validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (text, file) = match path {
            Some(p) => (
                Some(std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                    path: p.display().to_string(),
                    reason: e.to_string(),
                })?),
                p.to_path_buf(),
            ),
            None => {
                let p = PathBuf::from("config.toml");
                (std::fs::read_to_string(&p).ok(), p)
            }
        };
        let mut config = Self::parse(
            text.as_deref().unwrap_or(""),
            &file.display().to_string(),
            env,
        )?;
        config.base_dir = match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(config)
    }

    /// Parses TOML text (named `origin` in errors), applies overrides, validates.
    pub fn parse(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: origin.to_owned(),
                    reason: e.to_string(),
                })?;
        let defaults = toml::Value::try_from(Config::default())
            .unwrap_or(toml::Value::Table(Default::default()));
        for (name, value) in env {
            if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
                let keys: Vec<String> = rest.split("__").map(|k| k.to_ascii_lowercase()).collect();
                apply_override(&mut table, &defaults, &keys, &value).map_err(|reason| {
                    ConfigError::Invalid {
                        key: keys.join("."),
                        reason: format!("{name}: {reason}"),
                    }
                })?;
            }
        }
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                // The path names the offending key, unknown keys included.
                ConfigError::Invalid {
                    key: e.path().to_string(),
                    reason: e.inner().to_string(),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses impossible values, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server.addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid {
                key: "server.addr".into(),
                reason: format!("{:?} is not an ip:port address", self.server.addr),
            });
        }
        if self.server.shutdown_grace_ms == 0 {
            return Err(ConfigError::Invalid {
                key: "server.shutdown_grace_ms".into(),
                reason: "must be at least 1".into(),
            });
        }
        if self.server.tls_cert.is_empty() != self.server.tls_key.is_empty() {
            return Err(ConfigError::Invalid {
                key: "server.tls_key".into(),
                reason: "tls_cert and tls_key go together: set both or neither".into(),
            });
        }
        if let Some(bad) = self
            .server
            .allowed_origins
            .iter()
            .find(|o| *o != "*" && !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(ConfigError::Invalid {
                key: "server.allowed_origins".into(),
                reason: format!("{bad:?} is not an origin (https://host[:port] or *)"),
            });
        }
        if self.pools.viber_senders == 0 {
            return Err(ConfigError::Invalid {
                key: "pools.viber_senders".into(),
                reason: "must be at least 1".into(),
            });
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::Invalid {
                key: "log.level".into(),
                reason: e.to_string(),
            });
        }
        self.database
            .validate()
            .map_err(|e| invalid("database", e))?;
        self.watermark
            .validate()
            .map_err(|e| invalid("watermark", e))?;
        self.beard.validate().map_err(|e| invalid("beard", e))?;
        self.odds.validate().map_err(|e| invalid("odds", e))?;
        self.notify.validate().map_err(|e| invalid("notify", e))?;
        Ok(())
    }

    /// The effective configuration as TOML, passwords redacted, plus which
    /// secrets are set — what `tasklet config check` prints.
    pub fn redacted_toml(&self, secrets: &Secrets) -> String {
        let mut shown = self.clone();
        shown.database.url = redact_url(&shown.database.url);
        let body =
            toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
        let set = |s: &Option<String>| if s.is_some() { "set" } else { "unset" };
        format!(
            "{body}\n# secrets (environment only)\n# VIBER_AUTH_TOKEN: {}\n# TASKLET_DEBUG_TOKEN: {}\n",
            set(&secrets.viber_auth_token),
            set(&secrets.debug_token)
        )
    }
}

/// Sets `keys` in `table` to `raw`, read as TOML when the key's default is
/// not a string (so `TASKLET__POOLS__COMPOSITOR=4` is a number and
/// `TASKLET__DATABASE__URL=postgres://…` stays a string).
fn apply_override(
    table: &mut toml::Table,
    defaults: &toml::Value,
    keys: &[String],
    raw: &str,
) -> Result<(), String> {
    let (last, parents) = keys.split_last().ok_or("empty key")?;
    if last.is_empty() || parents.iter().any(|k| k.is_empty()) {
        return Err("empty key segment".into());
    }
    let default = keys.iter().try_fold(defaults, |v, k| v.get(k));
    let value = match default {
        Some(toml::Value::String(_)) => toml::Value::String(raw.to_owned()),
        _ => match format!("v = {raw}").parse::<toml::Table>() {
            Ok(mut t) => t
                .remove("v")
                .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
            Err(_) => toml::Value::String(raw.to_owned()),
        },
    };
    let mut node = table;
    for key in parents {
        let entry = node
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        node = entry
            .as_table_mut()
            .ok_or_else(|| format!("{key} is not a section"))?;
    }
    node.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn shipped_config_parses_and_equals_the_defaults() {
        let text = include_str!("../config.toml");
        let parsed =
            Config::parse(text, "config.toml", no_env()).expect("shipped config.toml parses");
        assert_eq!(
            parsed,
            Config::default(),
            "config.toml and the code's defaults disagree"
        );
    }

    #[test]
    fn unknown_key_is_refused_with_its_path() {
        let err = Config::parse("[server]\nbogus = 1\n", "t", no_env()).unwrap_err();
        assert_eq!(err.key(), Some("server.bogus"), "{err}");
        let err = Config::parse("[nosuch]\nx = 1\n", "t", no_env()).unwrap_err();
        assert_eq!(err.key(), Some("nosuch"), "{err}");
    }

    #[test]
    fn wrong_type_is_refused_with_its_path() {
        let err = Config::parse("[database]\nbatch_size = \"many\"\n", "t", no_env()).unwrap_err();
        assert_eq!(err.key(), Some("database.batch_size"), "{err}");
        assert!(err.to_string().contains("database.batch_size"));
    }

    #[test]
    fn negative_pool_is_refused_with_its_path() {
        let err = Config::parse("[pools]\ncompositor = -1\n", "t", no_env()).unwrap_err();
        assert_eq!(err.key(), Some("pools.compositor"), "{err}");
        assert!(err.to_string().starts_with("pools.compositor:"), "{err}");
    }

    #[test]
    fn impossible_values_are_refused_with_their_path() {
        let err = Config::parse("[database]\nbatch_size = 0\n", "t", no_env()).unwrap_err();
        assert_eq!(err.key(), Some("database.batch_size"), "{err}");
        let err = Config::parse("[server]\naddr = \"nowhere\"\n", "t", no_env()).unwrap_err();
        assert_eq!(err.key(), Some("server.addr"), "{err}");
        let err = Config::parse("[log]\nformat = \"xml\"\n", "t", no_env()).unwrap_err();
        assert_eq!(err.key(), Some("log.format"), "{err}");
    }

    #[test]
    fn environment_overrides_any_key_with_the_right_type() {
        let env = vec![
            ("TASKLET__POOLS__COMPOSITOR".to_owned(), "3".to_owned()),
            (
                "TASKLET__DATABASE__URL".to_owned(),
                "postgres://u:pw@h/db".to_owned(),
            ),
            ("TASKLET__SERVER__ADDR".to_owned(), "127.0.0.1:0".to_owned()),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let c = Config::parse("[pools]\ncompositor = 1\n", "t", env).unwrap();
        assert_eq!(c.pools.compositor, 3);
        assert_eq!(c.database.url, "postgres://u:pw@h/db");
        assert_eq!(c.server.addr, "127.0.0.1:0");
    }

    #[test]
    fn environment_override_of_an_unknown_key_is_refused() {
        let env = vec![("TASKLET__SERVER__NOPE".to_owned(), "1".to_owned())];
        let err = Config::parse("", "t", env).unwrap_err();
        assert_eq!(err.key(), Some("server.nope"), "{err}");
    }

    #[test]
    fn redacted_output_hides_passwords_and_secrets() {
        let mut c = Config::default();
        c.database.url = "postgres://u:hunter2@h/db".into();
        let secrets = Secrets {
            viber_auth_token: Some("tok-123".into()),
            debug_token: None,
        };
        let out = c.redacted_toml(&secrets);
        assert!(
            !out.contains("hunter2") && !out.contains("tok-123"),
            "{out}"
        );
        assert!(out.contains("VIBER_AUTH_TOKEN: set"), "{out}");
        assert!(format!("{secrets:?}").contains("***"));
    }

    #[test]
    fn relative_sqlite_path_is_next_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasklet.toml");
        std::fs::write(&path, "").unwrap();
        let c = Config::load(Some(&path), no_env()).unwrap();
        assert_eq!(c.base_dir, dir.path());
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/tasklet.toml")), no_env()).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }
}
