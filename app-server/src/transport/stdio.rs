//! `--listen stdio`: one connection over the process's stdin and stdout, for a
//! parent that spawned the server (or `ssh host tandem app-server …`).

use super::Shared;

/// Serves stdin/stdout until stdin closes.
pub async fn serve(shared: Shared) {
    super::serve_connection(shared, tokio::io::stdin(), tokio::io::stdout()).await;
}
