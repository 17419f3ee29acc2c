//! `--listen stdio`: one connection over the process's stdin and stdout, for a
//! parent that spawned the server (or `ssh host tandem app-server …`).

use crate::engine::Engine;

/// Serves stdin/stdout until stdin closes.
pub async fn serve(engine: Engine) {
    super::serve_connection(engine, tokio::io::stdin(), tokio::io::stdout()).await;
}
