//! `--server ENDPOINT`: `unix:PATH`, a bare path, `stdio:COMMAND…`, or
//! `ws://HOST:PORT/rpc` (an app-server's http listener; needs a token).

use std::path::PathBuf;

/// Where an app-server is reached.
#[derive(Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// Spawn this shell command and speak NDJSON over its stdin/stdout.
    Stdio(String),
    /// A WebSocket (`ws://HOST:PORT/rpc`), with the bearer token to present.
    Ws { url: String, token: Option<String> },
}

impl Endpoint {
    /// The same endpoint presenting `token` (for `ws://`; others ignore it).
    pub fn with_token(self, token: String) -> Endpoint {
        match self {
            Endpoint::Ws { url, .. } => Endpoint::Ws { url, token: Some(token) },
            other => other,
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let accepted = "accepted: unix:PATH, a socket path, stdio:COMMAND, or ws://HOST:PORT/rpc";
        if let Some(cmd) = s.strip_prefix("stdio:") {
            if cmd.trim().is_empty() {
                return Err(format!("--server {s:?} names no command; {accepted}"));
            }
            return Ok(Endpoint::Stdio(cmd.trim().to_owned()));
        }
        if let Some(rest) = s.strip_prefix("ws://") {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let bad_host_port =
                authority.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err());
            if authority.contains('@') || bad_host_port {
                return Err(format!("--server {s:?} needs a host and a port, e.g. ws://127.0.0.1:7878/rpc"));
            }
            let path = if path.is_empty() { "rpc" } else { path };
            return Ok(Endpoint::Ws { url: format!("ws://{authority}/{path}"), token: None });
        }
        let path = s.strip_prefix("unix:").unwrap_or(s);
        if path.is_empty() {
            return Err(format!("--server {s:?} names no socket; {accepted}"));
        }
        if path.contains("://") || s.starts_with("ws:") || s.starts_with("tcp:") {
            return Err(format!(
                "--server {s:?} is not a supported endpoint (wss:// is a reverse proxy's job: use ws:// to it on the same machine); {accepted}"
            ));
        }
        Ok(Endpoint::Unix(PathBuf::from(path)))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Stdio(c) => write!(f, "stdio:{c}"),
            Endpoint::Ws { url, .. } => f.write_str(url),
        }
    }
}

/// Never shows a token.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => f.debug_tuple("Unix").field(p).finish(),
            Endpoint::Stdio(c) => f.debug_tuple("Stdio").field(c).finish(),
            Endpoint::Ws { url, token } => {
                f.debug_struct("Ws").field("url", url).field("token", &token.as_ref().map(|_| "[redacted]")).finish()
            }
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
        assert_eq!(
            "ws://127.0.0.1:7878/rpc".parse(),
            Ok(Endpoint::Ws { url: "ws://127.0.0.1:7878/rpc".into(), token: None })
        );
        assert_eq!("ws://localhost:1".parse(), Ok(Endpoint::Ws { url: "ws://localhost:1/rpc".into(), token: None }));
        for bad in ["", "unix:", "stdio:", "ws://127.0.0.1", "ws://:1/rpc", "ws://u:p@h:1/rpc", "wss://h:1/rpc"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
        let secret = "ws://h:1/rpc".parse::<Endpoint>().unwrap().with_token("s3cret".into());
        assert!(!format!("{secret:?} {secret}").contains("s3cret"));
    }
}
