//! Configuration errors: each names the setting and says what is wrong.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("missing required setting {0}")]
    Missing(&'static str),
    #[error("invalid {key}: {message}")]
    Invalid { key: &'static str, message: String },
}
