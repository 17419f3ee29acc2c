//! `tandem`: the one binary. `tandem app-server …` runs or manages the server;
//! `tandem share …` are the script-facing clients.

/// `println!` that never panics: a closed stdout (`| head`) is not an error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod app_server;
mod conn;
mod exit;
mod hub;
mod hub_link;
mod plugin;
mod render;
mod repo;
mod session;
mod share;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::time::Duration;
use tandem_app_server::server::Listen;
use tandem_rpc::context as limits;

use crate::conn::ConnArgs;
use crate::exit::Fail;

#[derive(Parser)]
#[command(
    name = "tandem",
    version,
    about = "Share one AI coding-agent conversation between people and programs.",
    long_about = "Share one AI coding-agent conversation between people and programs.\n\n\
        With no command, `tandem` opens the terminal UI: a private (LOCAL) session that \
        /share turns into a shared thread; `--thread ID` opens attached to one.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Open the TUI attached to this shared thread (its id, or any unique start of it).
    #[arg(long, value_name = "ID")]
    thread: Option<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the app-server in the foreground, or manage the background one.
    AppServer(Box<AppServerArgs>),
    /// Create, post to, follow and read shared threads (for scripts and people).
    #[command(subcommand)]
    Share(ShareCommand),
    /// Which repositories' agent sessions may be shared, per destination.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Install the `/share` command into Claude Code or Codex.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Run a share server: it keeps copies of linked threads for readers on other machines.
    Hub(hub::HubArgs),
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Allow sharing sessions of a repository (default: the current directory's `origin`).
    Allow {
        /// host/org/repo or a git remote URL.
        repo: Option<String>,
        /// The destination [default: local, this machine's app-server].
        #[arg(long, value_name = "URL")]
        hub: Option<String>,
    },
    /// Stop allowing a repository (default: the current directory's `origin`).
    Deny {
        /// host/org/repo or a git remote URL.
        repo: Option<String>,
        /// The destination [default: local, this machine's app-server].
        #[arg(long, value_name = "URL")]
        hub: Option<String>,
    },
    /// List allowed repositories: one `DESTINATION<TAB>REPO` per line.
    List {
        /// Only this destination.
        #[arg(long, value_name = "URL")]
        hub: Option<String>,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Write the `/share` command into the agent's config directory.
    Install {
        #[arg(value_enum)]
        agent: plugin::PluginAgent,
    },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct AppServerArgs {
    #[command(subcommand)]
    action: Option<AppServerAction>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum AppServerAction {
    /// Start the background app-server (does nothing if one is running).
    Start(ServeArgs),
    /// Stop the background app-server (running turns end `interrupted`).
    Stop,
    /// Stop, then start the background app-server.
    Restart(ServeArgs),
    /// Show whether the app-server runs: pid, socket, version, agent.
    Status {
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Bridge stdin/stdout to the app-server's unix socket, starting the default one if none
    /// runs (e.g. `--server 'stdio:ssh HOST tandem app-server proxy'`).
    Proxy(ConnArgs),
}

#[derive(Args, Clone, Debug)]
struct ServeArgs {
    /// Transport to serve: unix (the default socket), unix:PATH, stdio, or
    /// http://127.0.0.1:PORT (the web viewer and the /rpc WebSocket). Repeatable.
    #[arg(long = "listen", value_name = "TRANSPORT")]
    listen: Vec<Listen>,
    /// Let an http listener bind a non-loopback address. Tokens then cross the
    /// network: put a reverse proxy with TLS in front.
    #[arg(long)]
    allow_remote: bool,
    /// Where users reach the http listener when that is not its own address
    /// (a reverse proxy with TLS in front): http(s)://NAME[:PORT]. Links point
    /// there, and pages served from there may open the WebSocket.
    #[arg(long, value_name = "URL", env = "TANDEM_PUBLIC_URL", value_parser = tandem_app_server::web::PublicUrl::parse)]
    public_url: Option<tandem_app_server::web::PublicUrl>,
    /// Which agent answers turns: echo, exec, openai, codex or claude
    /// [default: echo, or `agent` in $TANDEM_HOME/config.toml].
    #[arg(long, value_name = "AGENT", env = "TANDEM_AGENT")]
    agent: Option<String>,
    /// exec, codex, claude: the directory the agent works in [default: the app-server's].
    #[arg(long, value_name = "DIR", env = "TANDEM_AGENT_CWD")]
    agent_cwd: Option<std::path::PathBuf>,
    /// echo agent: milliseconds to wait between words.
    #[arg(long, value_name = "MS", env = "TANDEM_ECHO_DELAY_MS")]
    echo_delay_ms: Option<u64>,
    /// The model for the chosen agent (openai, codex, claude).
    #[arg(long, value_name = "MODEL", env = "TANDEM_MODEL")]
    model: Option<String>,
    /// openai agent: the API's base URL [default: https://api.openai.com/v1].
    #[arg(long, value_name = "URL", env = "TANDEM_BASE_URL")]
    base_url: Option<String>,
    /// openai agent: the environment variable holding the API key [default: OPENAI_API_KEY].
    #[arg(long, value_name = "VAR", env = "TANDEM_API_KEY_ENV")]
    api_key_env: Option<String>,
    /// openai agent: seconds to wait for the server to connect or send more [default: 120].
    #[arg(long, value_name = "SECS", env = "TANDEM_REQUEST_TIMEOUT")]
    request_timeout: Option<u64>,
    /// openai agent: a system prompt sent first.
    #[arg(long, value_name = "TEXT", env = "TANDEM_SYSTEM_PROMPT")]
    system_prompt: Option<String>,
    /// normal: survives a crash of the process; full: also a power loss (fsync per commit).
    #[arg(long, value_enum, default_value = "normal")]
    durability: DurabilityArg,
    /// Most clients connected at once; the next one is refused with an error.
    #[arg(long, value_name = "N", env = "TANDEM_MAX_CONNECTIONS", default_value_t = limits::MAX_CONNECTIONS)]
    max_connections: usize,
    /// Most WebSockets one address may have open at once on the http listener
    /// (behind a reverse proxy every client has the proxy's address).
    #[arg(long, value_name = "N", env = "TANDEM_MAX_CONNECTIONS_PER_IP", default_value_t = limits::MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,
    /// MiB queued for one client that does not read before the server stops
    /// reading its requests.
    #[arg(long, value_name = "MIB", env = "TANDEM_CLIENT_BUFFER_MIB", default_value_t = limits::OUTBOUND_BYTES >> 20)]
    client_buffer_mib: usize,
    /// MiB of unfinished lines held across all clients; a client that would pass
    /// it is refused.
    #[arg(long, value_name = "MIB", env = "TANDEM_LINE_BUFFER_MIB", default_value_t = limits::LINE_BYTES >> 20)]
    line_buffer_mib: usize,
    /// Seconds a line may stall (no byte before its newline) before its client
    /// is refused.
    #[arg(long, value_name = "SECS", env = "TANDEM_LINE_TIMEOUT", default_value_t = limits::LINE_TIMEOUT.as_secs())]
    line_timeout: u64,
    /// Seconds an http connection may take to send a request's head (from its
    /// accept, or from the previous answer) before it is closed.
    #[arg(long, value_name = "SECS", env = "TANDEM_HEADER_TIMEOUT", default_value_t = limits::HEADER_TIMEOUT.as_secs())]
    header_timeout: u64,
    /// MiB queued for all clients together; past it the subscriptions of
    /// clients that do not read wait, then catch up from the log.
    #[arg(long, value_name = "MIB", env = "TANDEM_CLIENTS_BUFFER_MIB", default_value_t = limits::CLIENTS_BYTES >> 20)]
    clients_buffer_mib: usize,
    /// exec agent: the command to run per turn (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum DurabilityArg {
    Normal,
    Full,
}

#[derive(Subcommand)]
enum ShareCommand {
    /// Create a thread; prints its id.
    New {
        #[arg(long)]
        title: Option<String>,
        /// Print the thread object as one JSON line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List threads, the most recently active first, with the shortest unique start of each id.
    List {
        /// One thread object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Post a prompt to a thread and stream the answer.
    Post {
        /// The thread: its id, or any unique start of it (`tandem share list` shows them).
        #[arg(long, value_name = "ID")]
        thread: String,
        /// The prompt, or - to read it from stdin.
        #[arg(long, value_name = "TEXT")]
        prompt: String,
        /// Wait for the answer and stream it (the default).
        #[arg(long, overrides_with = "no_wait")]
        wait: bool,
        /// Print the turn id and return at once.
        #[arg(long, overrides_with = "wait")]
        no_wait: bool,
        /// If the thread is busy, wait up to SECS (default 600) for it to be idle, then post.
        #[arg(long, value_name = "SECS", num_args = 0..=1, require_equals = true, default_missing_value = "600")]
        wait_idle: Option<u64>,
        /// Print the turn's events as JSON lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Follow a thread live (from now, or from a seq or a time), reconnecting if the app-server restarts.
    Tail {
        /// The thread: its id, or any unique start of it (`tandem share list` shows them).
        #[arg(long, value_name = "ID")]
        thread: String,
        /// Start at this seq (>= 1) or RFC 3339 time. Default: new events only.
        #[arg(long, value_name = "SEQ|RFC3339")]
        from: Option<String>,
        /// Print events as JSON lines.
        #[arg(long)]
        json: bool,
        /// Exit (code 5) when the connection drops, instead of reconnecting and resuming.
        #[arg(long)]
        no_reconnect: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Print a thread's events (all of them, or a range).
    Get {
        /// The thread: its id, or any unique start of it (`tandem share list` shows them).
        #[arg(long, value_name = "ID")]
        thread: String,
        /// Start at this seq (>= 1) or RFC 3339 time. Default: 1.
        #[arg(long, value_name = "SEQ|RFC3339")]
        from: Option<String>,
        /// At most this many events.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Print events as JSON lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Share a Claude Code or Codex session live: the app-server mirrors it into a thread.
    Session {
        /// The session's UUID [default: $CLAUDE_SESSION_ID, $CLAUDE_CODE_SESSION_ID or
        /// $CODEX_THREAD_ID, else the newest session of the current directory].
        id: Option<String>,
        /// Read the session from the JSON a Claude Code hook gets on stdin.
        #[arg(long)]
        hook: bool,
        /// Also share it on this hub (a link that outlives the laptop); the repository must be allowed for it.
        #[arg(long, value_name = "URL")]
        hub: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Stop sharing a session (its thread keeps what was mirrored).
    Unshare {
        /// The session's UUID [default: as for `share session`, else the only shared one].
        id: Option<String>,
        /// Also delete its copy on the hub it was shared on (the link stops working).
        #[arg(long)]
        delete: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Make a link to a thread and print its URL: for this app-server's web viewer
    /// (read-only unless --write; it works while the thread is shared), or with
    /// --hub URL on a share server that keeps a synced copy.
    Link(hub_link::LinkArgs),
    /// List links: this app-server's (id, scope, created, expires, last used), then hub links.
    Links(hub_link::LinksArgs),
    /// Stop syncing a thread to its hub (--delete: also remove it there).
    Unlink(hub_link::UnlinkArgs),
    /// Interrupt the turn running on a thread.
    Interrupt {
        /// The thread: its id, or any unique start of it (`tandem share list` shows them).
        #[arg(long, value_name = "ID")]
        thread: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// End a link (or every link of a thread) at once; open viewers stop.
    Revoke {
        /// The link's id (`tandem share links` lists them).
        #[arg(value_name = "LINK_ID", required_unless_present = "thread", conflicts_with = "thread")]
        id: Option<String>,
        /// Revoke every link of this thread.
        #[arg(long, value_name = "ID")]
        thread: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

async fn tui(thread: Option<String>, conn: ConnArgs) -> anyhow::Result<u8> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Fail::usage(
            "the TUI needs a terminal; for scripts use `tandem share new|post|tail|get` (see `tandem --help`)",
        )
        .into());
    }
    if let Some(id) = &thread {
        tandem_protocol::ids::IdQuery::parse("--thread", id).map_err(Fail::usage)?;
    }
    let opts = tandem_tui::Options {
        thread,
        server: conn.endpoint()?,
        home: tandem_home::Home::from_env(),
        exe: std::env::current_exe()?,
    };
    tandem_tui::run(opts).await.map_err(|e| match e {
        tandem_tui::TuiError::Client(e) => Fail::from(e),
        tandem_tui::TuiError::Resolve(e) => conn::resolve_fail(e),
        other => Fail::new(exit::FAILURE, other.to_string()),
    })?;
    Ok(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tandem: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            None => tui(cli.thread, cli.conn).await,
            Some(Command::AppServer(args)) => app_server::run(*args).await,
            Some(Command::Share(cmd)) => share_command(cmd).await,
            Some(Command::Repo(cmd)) => repo::run(cmd),
            Some(Command::Plugin(PluginCommand::Install { agent })) => plugin::install(agent),
            Some(Command::Hub(args)) => hub::run(args).await,
        }
    });
    // Don't wait for background tasks (a stdin reader may be blocked forever).
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let (code, msg) = match e.downcast::<Fail>() {
                Ok(fail) => (fail.code, fail.message),
                Err(other) => (exit::FAILURE, format!("{other:#}")),
            };
            eprintln!("tandem: {msg}");
            ExitCode::from(code)
        }
    }
}

/// Runs one `tandem share …` command.
async fn share_command(cmd: ShareCommand) -> anyhow::Result<u8> {
    match cmd {
        ShareCommand::New { title, json, conn } => share::new(title, json, &conn).await,
        ShareCommand::List { json, conn } => share::list(json, &conn).await,
        ShareCommand::Post { thread, prompt, wait: _, no_wait, wait_idle, json, conn } => {
            share::post(&thread, &prompt, no_wait, wait_idle.map(Duration::from_secs), json, &conn).await
        }
        ShareCommand::Tail { thread, from, json, no_reconnect, conn } => {
            share::tail(&thread, from.as_deref(), json, no_reconnect, &conn).await
        }
        ShareCommand::Get { thread, from, limit, json, conn } => {
            share::get(&thread, from.as_deref(), limit, json, &conn).await
        }
        ShareCommand::Interrupt { thread, conn } => share::interrupt(&thread, &conn).await,
        ShareCommand::Session { id, hook, hub, conn } => session::share(id, hook, hub, &conn).await,
        ShareCommand::Unshare { id, delete, conn } => session::unshare(id, delete, &conn).await,
        ShareCommand::Link(args) => hub_link::link(args).await,
        ShareCommand::Links(args) => hub_link::links(args).await,
        ShareCommand::Unlink(args) => hub_link::unlink(args).await,
        ShareCommand::Revoke { id, thread, conn } => share::revoke(id.as_deref(), thread.as_deref(), &conn).await,
    }
    .or_else(|e| match e.downcast_ref::<Fail>() {
        Some(f) if f.code == 0 => Ok(0),
        _ => Err(e),
    })
}
