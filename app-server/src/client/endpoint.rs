//! `--server ENDPOINT`: `unix:PATH`, a bare path, or `stdio:COMMAND…`.

use std::path::PathBuf;

/// Where an app-server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// Spawn this shell command and speak NDJSON over its stdin/stdout.
    Stdio(String),
}

impl std::str::FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let accepted = "accepted: unix:PATH, a socket path, or stdio:COMMAND";
        if let Some(cmd) = s.strip_prefix("stdio:") {
            if cmd.trim().is_empty() {
                return Err(format!("--server {s:?} names no command; {accepted}"));
            }
            return Ok(Endpoint::Stdio(cmd.trim().to_owned()));
        }
        let path = s.strip_prefix("unix:").unwrap_or(s);
        if path.is_empty() {
            return Err(format!("--server {s:?} names no socket; {accepted}"));
        }
        if path.contains("://") || s.starts_with("ws:") || s.starts_with("tcp:") {
            return Err(format!("--server {s:?} is not a supported endpoint; {accepted}"));
        }
        Ok(Endpoint::Unix(PathBuf::from(path)))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Stdio(c) => write!(f, "stdio:{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!("unix:/tmp/s".parse(), Ok(Endpoint::Unix("/tmp/s".into())));
        assert_eq!("/tmp/s".parse(), Ok(Endpoint::Unix("/tmp/s".into())));
        assert_eq!(
            "stdio:ssh host tandem app-server proxy".parse(),
            Ok(Endpoint::Stdio("ssh host tandem app-server proxy".into()))
        );
        for bad in ["", "unix:", "stdio:", "ws://127.0.0.1:1"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }
}
