//! `--listen stdio`: one connection over the process's stdin and stdout, for a
//! parent that spawned the server (or `ssh host tandem app-server …`).

use tandem_rpc::context::Context;

/// Serves stdin/stdout until stdin closes.
pub async fn serve(ctx: Context) {
    tandem_rpc::connection::serve_connection(ctx, tokio::io::stdin(), tokio::io::stdout()).await;
}
