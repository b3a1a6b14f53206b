//! The bridge's configuration: a TOML file (README.md, "Configuration").

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// What `shmstore-bridge run --config FILE` reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The NATS server's URL, or several separated by commas.
    #[serde(default = "default_server")]
    pub server: String,
    /// The key-value bucket; made on first use if missing.
    #[serde(default = "default_bucket")]
    pub bucket: String,
    /// A NATS credentials file (`.creds`), if the server asks for one.
    pub credentials: Option<PathBuf>,
    /// This host's name in the entries it exports; by default the
    /// machine's host name. Two hosts must not share one.
    pub host: Option<String>,
    /// A private namespace (`Key::named_in`) whose names are mirrored
    /// instead of the host's public ones.
    pub namespace: Option<PathBuf>,
    /// Where `run` keeps its status for `status`.
    pub status_file: Option<PathBuf>,
    /// How often local objects are listed to find new names, in
    /// milliseconds (changes of known objects are waited on, not polled).
    #[serde(default = "default_rescan_ms")]
    pub rescan_ms: u64,
    /// Remove the local object when its key is deleted in the bucket.
    #[serde(default = "yes")]
    pub remove_on_delete: bool,
    /// The largest value exported or imported, in bytes.
    #[serde(default = "default_max_value")]
    pub max_value_bytes: usize,
    /// Accept local objects of this user id too (see `trust_user`).
    pub trust_user: Option<u32>,
    /// Accept local objects of this group (see `trust_group`).
    pub trust_group: Option<u32>,
    /// Permission bits of the objects an import creates.
    #[serde(default = "default_mode")]
    pub mode: u32,
    /// Names whose objects this host publishes to the bucket.
    #[serde(default)]
    pub export: Vec<Prefix>,
    /// Names this host takes from the bucket.
    #[serde(default, rename = "import")]
    pub imports: Vec<Prefix>,
}

/// Names that start with `prefix`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefix {
    /// The start of the names (`""` for every name).
    pub prefix: String,
}

/// Which way a name goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From this host's objects to the bucket.
    Export,
    /// From the bucket to this host's objects.
    Import,
}

fn default_server() -> String {
    "nats://127.0.0.1:4222".into()
}
fn default_bucket() -> String {
    "shmstore".into()
}
fn default_rescan_ms() -> u64 {
    1000
}
fn yes() -> bool {
    true
}
/// 1 MiB, a server's default `max_payload`, less what an entry adds to
/// its value at most: an entry of any value this allows fits a server's
/// default.
fn default_max_value() -> usize {
    (1 << 20) - crate::envelope::overhead()
}
fn default_mode() -> u32 {
    0o600
}

impl Config {
    /// Read and check the file at `path`.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the configuration {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Read and check a configuration's text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        if config.export.is_empty() && config.imports.is_empty() {
            return Err("no `[[export]]` and no `[[import]]`: nothing to mirror".into());
        }
        if !valid_bucket(&config.bucket) {
            return Err(format!(
                "bucket {:?}: a bucket's name is letters, digits, `-` and `_`",
                config.bucket
            ));
        }
        if config.host().is_empty() || config.host().len() > crate::envelope::ORIGIN_MAX {
            return Err("`host` must be 1 to 255 bytes".into());
        }
        for p in config.export.iter() {
            if config.imports.iter().any(|q| q.prefix == p.prefix) {
                return Err(format!(
                    "prefix {:?} is both exported and imported: a name goes one way",
                    p.prefix
                ));
            }
        }
        if config.rescan_ms == 0 {
            return Err("`rescan_ms` must be at least 1".into());
        }
        Ok(config)
    }

    /// This host's name.
    pub fn host(&self) -> String {
        self.host.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "localhost".into())
        })
    }

    /// Where the status is kept: `status_file`, else
    /// `$XDG_RUNTIME_DIR/shmstore-bridge-BUCKET.json`, else
    /// `/tmp/shmstore-bridge-UID-BUCKET.json`.
    pub fn status_path(&self) -> PathBuf {
        if let Some(p) = &self.status_file {
            return p.clone();
        }
        match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(dir) => Path::new(&dir).join(format!("shmstore-bridge-{}.json", self.bucket)),
            None => PathBuf::from(format!(
                "/tmp/shmstore-bridge-{}-{}.json",
                rustix_uid(),
                self.bucket
            )),
        }
    }

    /// How often local objects are listed.
    pub fn rescan(&self) -> Duration {
        Duration::from_millis(self.rescan_ms)
    }

    /// Which way `name` goes, if any: the longest prefix that matches
    /// decides.
    pub fn direction(&self, name: &str) -> Option<Direction> {
        let best = |list: &[Prefix]| {
            list.iter()
                .filter(|p| name.starts_with(&p.prefix))
                .map(|p| p.prefix.len())
                .max()
        };
        match (best(&self.export), best(&self.imports)) {
            (Some(e), Some(i)) if e >= i => Some(Direction::Export),
            (Some(_), Some(_)) => Some(Direction::Import),
            (Some(_), None) => Some(Direction::Export),
            (None, Some(_)) => Some(Direction::Import),
            (None, None) => None,
        }
    }
}

fn valid_bucket(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// This process's user id, from `/proc/self/status` (no `unsafe` here).
fn rustix_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_reads_with_its_defaults() {
        let c = Config::parse(
            r#"
            host = "a"
            [[export]]
            prefix = "acme/"
            [[import]]
            prefix = "acme/remote/"
            "#,
        )
        .unwrap();
        assert_eq!(c.server, "nats://127.0.0.1:4222");
        assert_eq!(c.bucket, "shmstore");
        assert!(c.remove_on_delete);
        assert_eq!(c.direction("acme/config"), Some(Direction::Export));
        assert_eq!(c.direction("acme/remote/x"), Some(Direction::Import));
        assert_eq!(c.direction("other"), None);
    }

    #[test]
    fn mistakes_are_named() {
        for (text, says) in [
            ("host = \"a\"", "nothing to mirror"),
            ("bucket = \"a.b\"\n[[export]]\nprefix = \"\"", "bucket"),
            (
                "[[export]]\nprefix = \"x\"\n[[import]]\nprefix = \"x\"",
                "one way",
            ),
            ("colour = 1\n[[export]]\nprefix = \"\"", "colour"),
            ("rescan_ms = 0\n[[export]]\nprefix = \"\"", "rescan_ms"),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
