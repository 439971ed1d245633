//! The command line. Every flag also reads `KEYPOOL_<FLAG>` from the
//! environment; durations accept `500ms`, `2s`, `5m`, `1h`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// When an acknowledged write reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum FsyncMode {
    /// fdatasync before every acknowledgement; concurrent writers share one flush.
    #[default]
    Always,
    /// Written before acknowledgement, flushed once a second: a power loss can
    /// lose the last second.
    Everysec,
    /// Written before acknowledgement, flushed by the OS when it likes.
    Never,
}

/// A secret from the environment; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(..)")
    }
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line and event, its fields at the top level (for log shippers).
    Json,
}

/// A rate: `N` events per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many are allowed in one window.
    pub count: u32,
    /// The window.
    pub per: Duration,
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, d) = s
            .split_once('/')
            .ok_or_else(|| format!("expected N/DURATION such as 10/1m, got {s:?}"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("{n:?} is not a whole number"))?;
        let per = parse_duration(d.trim())?;
        if count == 0 || per.is_zero() {
            return Err("a rate needs a positive count and a positive duration".into());
        }
        Ok(Rate { count, per })
    }
}

/// Parses `500ms`, `2s`, `5m`, `1h` (anything humantime accepts).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); try 500ms, 2s, 5m or 1h"))
}

/// keypool: hands out keys to workers.
#[derive(Debug, Clone, Parser)]
#[command(name = "keypool", version, about, long_about = None, args_override_self = true)]
pub struct Config {
    /// Listen address; port 0 picks a free port and prints it.
    #[arg(long, env = "KEYPOOL_BIND", default_value = "127.0.0.1:5001")]
    pub bind: SocketAddr,

    /// Directory for snapshots and the write-ahead log.
    #[arg(long, env = "KEYPOOL_DATA_DIR", default_value = "snapshots")]
    pub data_dir: PathBuf,

    /// When a write is flushed to disk before it is acknowledged.
    #[arg(long, env = "KEYPOOL_FSYNC", value_enum, default_value = "always")]
    pub fsync: FsyncMode,

    /// How often a snapshot is written (also on clean shutdown).
    #[arg(long, env = "KEYPOOL_SNAPSHOT_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub snapshot_interval: Duration,

    /// Truncate a damaged write-ahead log at the damage (keeping a copy) and start.
    #[arg(long, env = "KEYPOOL_REPAIR")]
    pub repair: bool,

    /// A pool key's lifetime after creation or its last keepalive.
    #[arg(long, env = "KEYPOOL_KEY_TTL", default_value = "5m", value_parser = parse_duration)]
    pub key_ttl: Duration,

    /// How long a checked-out key stays blocked before it is released.
    #[arg(long, env = "KEYPOOL_BLOCK_TTL", default_value = "60s", value_parser = parse_duration)]
    pub block_ttl: Duration,

    /// Pool routes accept requests without a credential; they share one anonymous pool.
    #[arg(long, env = "KEYPOOL_OPEN_POOL")]
    pub open_pool: bool,

    /// Authenticated requests a session token serves before it expires.
    #[arg(long, env = "KEYPOOL_SESSION_MAX_USES", default_value_t = 10)]
    pub session_max_uses: u32,

    /// A session token's longest life.
    #[arg(long, env = "KEYPOOL_SESSION_TTL", default_value = "1h", value_parser = parse_duration)]
    pub session_ttl: Duration,

    /// Per client IP, for anonymous traffic (/register, /login, missing or wrong credentials).
    #[arg(long, env = "KEYPOOL_IP_RATE_LIMIT", default_value = "10/1m")]
    pub ip_rate_limit: Rate,

    /// API keys one user may create in any 24 h.
    #[arg(long, env = "KEYPOOL_KEYS_PER_DAY", default_value_t = 5)]
    pub keys_per_day: u32,

    /// The shortest password accepted at registration.
    #[arg(long, env = "KEYPOOL_MIN_PASSWORD_LEN", default_value_t = 8)]
    pub min_password_len: usize,

    /// Credits (cents) a new account starts with.
    #[arg(long, env = "KEYPOOL_SIGNUP_CREDITS", default_value_t = 1000)]
    pub signup_credits: u64,

    /// How long a purchase stays `waiting` before the payment settles.
    #[arg(long, env = "KEYPOOL_PAYMENT_DELAY", default_value = "2s", value_parser = parse_duration)]
    pub payment_delay: Duration,

    /// A JSON file listing the videos for sale (default: the built-in featured video).
    #[arg(long, env = "KEYPOOL_CATALOG")]
    pub catalog: Option<PathBuf>,

    /// Allowed origin for cross-origin requests.
    #[arg(long, env = "KEYPOOL_CORS_ORIGIN", default_value = "*")]
    pub cors_origin: String,

    /// Request body limit in bytes.
    #[arg(long, env = "KEYPOOL_MAX_BODY", default_value_t = 65_536)]
    pub max_body: usize,

    /// Most connections served at once; past it a new connection is answered 503 and closed.
    #[arg(long, env = "KEYPOOL_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// The longest lease a checkout or extension may ask for with `block`.
    #[arg(long, env = "KEYPOOL_MAX_BLOCK_TTL", default_value = "12h", value_parser = parse_duration)]
    pub max_block_ttl: Duration,

    /// The master key file that seals key values and metadata at rest
    /// (default: <data-dir>/master.key, created with mode 0600 on first start).
    #[arg(long, env = "KEYPOOL_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,

    /// The master key itself, 32 bytes in base64 (instead of the file; only
    /// from the environment, so that it never shows in a process list).
    #[arg(skip = std::env::var("KEYPOOL_MASTER_KEY").ok().map(SecretText))]
    pub master_key: Option<SecretText>,

    /// Connections open at once from one client IP; the next one is answered 503 and closed.
    #[arg(long, env = "KEYPOOL_MAX_CONNECTIONS_PER_IP", default_value_t = 512)]
    pub max_connections_per_ip: usize,

    /// How long a client may take to send a request's headers (from the
    /// connection's start for its first request, from the first byte for later ones).
    #[arg(long, env = "KEYPOOL_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// How long a request body may take to arrive after its headers; then 408 and close.
    #[arg(long, env = "KEYPOOL_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// A keep-alive connection with no request in flight this long is closed.
    #[arg(long, env = "KEYPOOL_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Long-poll checkouts waiting at once per account; beyond it 429.
    #[arg(long, env = "KEYPOOL_MAX_WAITERS", default_value_t = 10_000)]
    pub max_waiters: usize,

    /// Requests handled at once (long-poll waits not counted); past it a
    /// request is answered 503 with `Retry-After: 1` at once, without its work.
    #[arg(long, env = "KEYPOOL_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,

    /// How log lines are written to stderr: text, or JSON lines.
    #[arg(long, env = "KEYPOOL_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Config {
    /// The defaults, as `keypool` with no flags and no environment would use
    /// (for tests and embedding).
    pub fn defaults() -> Self {
        Config::parse_from(["keypool"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates_and_durations() {
        let r: Rate = "10/1m".parse().unwrap();
        assert_eq!(
            r,
            Rate {
                count: 10,
                per: Duration::from_secs(60)
            }
        );
        assert!("0/1m".parse::<Rate>().is_err());
        assert!("ten/1m".parse::<Rate>().is_err());
        assert!("10".parse::<Rate>().is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::defaults();
        assert_eq!(c.bind.to_string(), "127.0.0.1:5001");
        assert_eq!(c.key_ttl, Duration::from_secs(300));
        assert_eq!(c.block_ttl, Duration::from_secs(60));
        assert_eq!(c.session_max_uses, 10);
        assert_eq!(c.max_body, 65_536);
        assert_eq!(c.fsync, FsyncMode::Always);
        assert_eq!(c.body_timeout, Duration::from_secs(30));
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.max_connections_per_ip, 512);
        assert_eq!(c.max_waiters, 10_000);
        assert_eq!(c.max_in_flight, 1024);

        assert_eq!(c.log_format, LogFormat::Text);
        let c = Config::parse_from(["keypool", "--log-format", "json"]);
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(Config::try_parse_from(["keypool", "--log-format", "xml"]).is_err());
    }

    mod fuzz {
        //! Property-based fuzzing (`fuzz_*`) of the rate and duration flags.

        use proptest::prelude::*;

        use super::*;

        fn number_like() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                "[-+ ]?[0-9]{0,25}(\\.[0-9]{0,3})? ?(ns|us|µs|ms|s|m|min|h|d|w|M|y|years|x)?",
                "[0-9]{1,12}/[0-9]{0,25}(ms|s|m|h|d)?",
                Just("18446744073709551616s".to_string()),
                Just("99999999999y".to_string()),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

            /// Any string is a duration or an error that names it; no panic.
            #[test]
            fn fuzz_parse_duration_any(s in number_like()) {
                if let Err(e) = parse_duration(&s) {
                    prop_assert!(e.contains("is not a duration"), "{e}");
                }
            }

            /// Every duration humantime prints parses back to itself.
            #[test]
            fn fuzz_parse_duration_round_trip(secs in 0u64..10_000_000_000, nanos in 0u32..1_000_000_000) {
                let d = Duration::new(secs, nanos);
                let shown = humantime::format_duration(d).to_string();
                prop_assert_eq!(parse_duration(&shown), Ok(d));
            }

            /// Any string is a positive rate or an error; `N/DURATION` round-trips.
            #[test]
            fn fuzz_rate(s in number_like(), n in 1u32.., ms in 1u64..1_000_000_000) {
                if let Ok(r) = s.parse::<Rate>() {
                    prop_assert!(r.count > 0 && !r.per.is_zero());
                }
                let per = Duration::from_millis(ms);
                let text = format!("{n}/{}", humantime::format_duration(per));
                prop_assert_eq!(text.parse::<Rate>(), Ok(Rate { count: n, per }));
                let zero = format!("0/{}", humantime::format_duration(per));
                prop_assert!(zero.parse::<Rate>().is_err());
            }
        }
    }
}
