//! The server's log: `tracing` to `$TANDEM_HOME/logs/app-server.log`, filtered
//! by `RUST_LOG` (default `info`). Never to a terminal a TUI may be drawing on.

use std::str::FromStr;
use std::sync::Mutex;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::Home;

/// Installs the file logger; returns the log file's path.
pub fn init(home: &Home) -> std::io::Result<std::path::PathBuf> {
    home.ensure()?;
    let path = home.logs_dir().join("app-server.log");
    let file = crate::open_private(&path, crate::Access::Append)?;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| Targets::from_str(&v).ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let layer = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(Mutex::new(file));
    let _ = tracing_subscriber::registry().with(filter).with(layer).try_init();
    Ok(path)
}
