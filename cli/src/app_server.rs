//! `tandem app-server …`: run the server in the foreground, manage the
//! background one (start/stop/restart/status), or bridge stdio to it (proxy).

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tandem_app_server::server::{self, Listen, ServeOptions};
use tandem_client::{AUTOSTART_TIMEOUT, Client, ClientError, Endpoint, connect_or_start, start_background};
use tandem_engine::Durability;
use tandem_engine::agent::Agent;
use tandem_engine::config::{AgentSettings, Overrides};
use tandem_home::Home;
use tandem_home::lock::DataLock;
use tandem_protocol::ClientInfo;
use tandem_rpc::context::Limits;

use crate::exit::{self, Fail};
use crate::{AppServerAction, AppServerArgs, ConnArgs, DurabilityArg, ServeArgs};

/// How long `stop` waits for the server to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

fn client_info() -> ClientInfo {
    ClientInfo::new("tandem-app-server-ctl", env!("CARGO_PKG_VERSION"))
}

pub async fn run(args: AppServerArgs) -> Result<u8> {
    let home = Home::from_env();
    match args.action {
        None => serve(home, args.serve).await,
        Some(AppServerAction::Start(serve_args)) => start(&home, &serve_args).await,
        Some(AppServerAction::Stop) => stop(&home).await,
        Some(AppServerAction::Restart(serve_args)) => {
            // Without flags, restart as the running server was started; bad
            // flags must not cost the running server.
            let given = std::env::args_os().skip_while(|a| a != "restart").skip(1).count() > 0;
            if given {
                check_start_args(&home, &serve_args)?;
            }
            let previous = if given { None } else { running_launch_args(&home).await };
            stop(&home).await?;
            match previous {
                Some(flags) => start_with(&home, flags).await,
                None => start(&home, &serve_args).await,
            }
        }
        Some(AppServerAction::Status { json }) => status(&home, json).await,
        Some(AppServerAction::Proxy(conn)) => proxy(&home, &conn).await,
    }
}

/// Flags and environment, as the config layer takes them.
fn overrides(args: &ServeArgs) -> Overrides {
    Overrides {
        agent: args.agent.clone(),
        cwd: args.agent_cwd.as_ref().map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone())),
        echo_delay_ms: args.echo_delay_ms,
        exec_command: args.command.clone(),
        model: args.model.clone(),
        base_url: args.base_url.clone(),
        api_key_env: args.api_key_env.clone(),
        timeout_secs: args.request_timeout,
        system_prompt: args.system_prompt.clone(),
    }
}

/// The agent that flags, environment and config.toml (in that order) choose.
fn build_agent(home: &Home, args: &ServeArgs) -> Result<Arc<dyn Agent>, Fail> {
    let settings = AgentSettings::load(home, &overrides(args)).map_err(|e| Fail::usage(e.to_string()))?;
    if !args.command.is_empty() && settings.kind != "exec" {
        return Err(Fail::usage(
            "a command after `--` is only used with --agent exec: tandem app-server --agent exec -- COMMAND ARGS…",
        ));
    }
    settings.build().map_err(|e| Fail::usage(e.to_string()))
}

async fn serve(home: Home, args: ServeArgs) -> Result<u8> {
    let agent = build_agent(&home, &args)?;
    // Every client sees these (status, restart): no credentials from URLs.
    let launch_args =
        serve_flags(&args).iter().map(|f| tandem_engine::redact::urls(&f.to_string_lossy()).into_owned()).collect();
    let log = tandem_home::logging::init(&home).map_err(|e| {
        Fail::new(exit::FAILURE, format!("cannot open the log under {}: {e}", home.logs_dir().display()))
    })?;
    let listen = if args.listen.is_empty() { vec![Listen::Unix(None)] } else { args.listen.clone() };
    let durability = match args.durability {
        DurabilityArg::Normal => Durability::Normal,
        DurabilityArg::Full => Durability::Full,
    };
    check_remote(&listen, args.allow_remote)?;
    check_public_url(&listen, &args)?;
    tracing::info!(home = %home.dir().display(), agent = ?agent.info(), ?listen, "app-server starting");
    let opts = ServeOptions {
        home,
        listen,
        agent,
        durability,
        limits: limits(&args)?,
        allow_remote: args.allow_remote,
        public_url: args.public_url.clone(),
        launch_args,
    };
    match server::run(opts).await {
        Ok(()) => Ok(0),
        Err(e) => {
            tracing::error!(error = %e, "app-server failed");
            Err(Fail::new(exit::FAILURE, format!("{e} (log: {})", log.display())).into())
        }
    }
}

/// A non-loopback http listener needs --allow-remote; with it, say loudly
/// what that means.
fn check_remote(listen: &[Listen], allow_remote: bool) -> Result<(), Fail> {
    for l in listen {
        if let Listen::Http(addr) = l
            && !addr.ip().is_loopback()
        {
            if !allow_remote {
                return Err(Fail::usage(format!(
                    "--listen {l} is reachable from other machines; add --allow-remote to mean it (and put a reverse proxy with TLS in front: tokens would cross the network in clear text)"
                )));
            }
            eprintln!(
                "tandem: WARNING: listening on {l} without TLS. Anyone on the network path can read tokens and threads; terminate TLS in a reverse proxy in front of it."
            );
        }
    }
    Ok(())
}

/// `--public-url` names where an http listener is reached: there must be one.
fn check_public_url(listen: &[Listen], args: &ServeArgs) -> Result<(), Fail> {
    if let Some(url) = &args.public_url
        && !listen.iter().any(|l| matches!(l, Listen::Http(_)))
    {
        return Err(Fail::usage(format!(
            "--public-url {url} names where the http listener is reached, but there is none: add --listen http://127.0.0.1:PORT"
        )));
    }
    Ok(())
}

/// The connection budgets the flags ask for.
fn limits(args: &ServeArgs) -> Result<Limits, Fail> {
    let positive = |name: &str, v: usize| {
        if v == 0 { Err(Fail::usage(format!("--{name} must be at least 1"))) } else { Ok(v) }
    };
    Ok(Limits {
        max_connections: positive("max-connections", args.max_connections)?,
        max_connections_per_ip: positive("max-connections-per-ip", args.max_connections_per_ip)?,
        outbound_bytes: positive("client-buffer-mib", args.client_buffer_mib)?.saturating_mul(1 << 20),
        line_bytes: positive("line-buffer-mib", args.line_buffer_mib)?.saturating_mul(1 << 20),
        line_timeout: Duration::from_secs(positive("line-timeout", args.line_timeout as usize)? as u64),
        header_timeout: Duration::from_secs(positive("header-timeout", args.header_timeout as usize)? as u64),
        clients_bytes: positive("clients-buffer-mib", args.clients_buffer_mib)?.saturating_mul(1 << 20),
    })
}

/// The flags to hand a background server so it runs like `args` says.
fn serve_flags(args: &ServeArgs) -> Vec<OsString> {
    let mut flags: Vec<OsString> = Vec::new();
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            flags.extend([OsString::from(name), OsString::from(v)]);
        }
    };
    flag("--agent", args.agent.clone());
    flag(
        "--agent-cwd",
        args.agent_cwd.as_ref().map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()).display().to_string()),
    );
    flag("--echo-delay-ms", args.echo_delay_ms.map(|d| d.to_string()));
    flag("--model", args.model.clone());
    flag("--base-url", args.base_url.clone());
    flag("--api-key-env", args.api_key_env.clone());
    flag("--request-timeout", args.request_timeout.map(|t| t.to_string()));
    flag("--system-prompt", args.system_prompt.clone());
    // Defaults are left out, so that `status` shows only what was chosen.
    if let DurabilityArg::Full = args.durability {
        flags.extend(["--durability".into(), "full".into()]);
    }
    let defaults = Limits::default();
    let mut limit = |name: &str, value: u64, default: u64| {
        if value != default {
            flags.extend([OsString::from(name), OsString::from(value.to_string())]);
        }
    };
    limit("--max-connections", args.max_connections as u64, defaults.max_connections as u64);
    limit("--max-connections-per-ip", args.max_connections_per_ip as u64, defaults.max_connections_per_ip as u64);
    limit("--client-buffer-mib", args.client_buffer_mib as u64, (defaults.outbound_bytes >> 20) as u64);
    limit("--line-buffer-mib", args.line_buffer_mib as u64, (defaults.line_bytes >> 20) as u64);
    limit("--line-timeout", args.line_timeout, defaults.line_timeout.as_secs());
    limit("--header-timeout", args.header_timeout, defaults.header_timeout.as_secs());
    limit("--clients-buffer-mib", args.clients_buffer_mib as u64, (defaults.clients_bytes >> 20) as u64);
    // The background server always listens on the default socket; more
    // listeners (http) come on top.
    for l in &args.listen {
        if *l != Listen::Unix(None) {
            flags.extend(["--listen".into(), l.to_string().into()]);
        }
    }
    if args.allow_remote {
        flags.push("--allow-remote".into());
    }
    if let Some(url) = &args.public_url {
        flags.extend(["--public-url".into(), url.to_string().into()]);
    }
    if !args.command.is_empty() {
        flags.push("--".into());
        flags.extend(args.command.iter().map(OsString::from));
    }
    flags
}

/// What `start` (and `restart`, before it stops anything) refuses.
fn check_start_args(home: &Home, args: &ServeArgs) -> Result<(), Fail> {
    build_agent(home, args)?;
    if args.listen.iter().any(|l| matches!(l, Listen::Stdio | Listen::Unix(Some(_)))) {
        return Err(Fail::usage(
            "`app-server start` always listens on the default socket (plus any --listen http://…); use `tandem app-server --listen …` to run one in the foreground",
        ));
    }
    check_remote(&args.listen, args.allow_remote)?;
    check_public_url(&args.listen, args)
}

async fn start(home: &Home, args: &ServeArgs) -> Result<u8> {
    check_start_args(home, args)?;
    start_with(home, serve_flags(args)).await
}

/// The flags of the running default server, if one answers.
async fn running_launch_args(home: &Home) -> Option<Vec<OsString>> {
    let client = Client::connect(&Endpoint::Unix(home.socket_path()), client_info()).await.ok()?;
    let args = &client.server()?.server_info.launch_args;
    Some(args.iter().map(OsString::from).collect())
}

/// Starts the background server with `flags` (unless one runs).
async fn start_with(home: &Home, flags: Vec<OsString>) -> Result<u8> {
    let endpoint = Endpoint::Unix(home.socket_path());
    if let Ok(client) = Client::connect(&endpoint, client_info()).await {
        let pid = client.server().and_then(|s| s.server_info.pid).map(|p| format!(" (pid {p})")).unwrap_or_default();
        say!("app-server already running{pid} on {endpoint}");
        return Ok(0);
    }
    let exe = std::env::current_exe()?;
    let mut started = start_background(home, &exe, &flags)
        .map_err(|e| Fail::new(exit::FAILURE, format!("cannot start the app-server: {e}")))?;
    let deadline = tokio::time::Instant::now() + AUTOSTART_TIMEOUT;
    loop {
        match Client::connect(&endpoint, client_info()).await {
            Ok(client) => {
                let pid = client.server().and_then(|s| s.server_info.pid).unwrap_or(0);
                say!("app-server started (pid {pid}) on {endpoint}");
                return Ok(0);
            }
            Err(ClientError::Unreachable { .. }) => {}
            Err(e) => return Err(Fail::from(e).into()),
        }
        if let Some(failed) = started.failed(home) {
            return Err(Fail::from(failed).into());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(
                Fail::new(exit::UNREACHABLE, format!("the app-server did not answer on {endpoint} in time")).into()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn stop(home: &Home) -> Result<u8> {
    let lock = home.lock_path();
    let Some(pid) = DataLock::holder(&lock) else {
        say!("app-server is not running");
        return Ok(0);
    };
    // The lock file only says which pid to look at; signal it only once it is
    // known to be this data directory's app-server, and ours.
    let endpoint = Endpoint::Unix(home.socket_path());
    let answered = match Client::connect(&endpoint, client_info()).await {
        Ok(client) => client.server().and_then(|s| s.server_info.pid),
        Err(_) => None,
    };
    match answered {
        Some(p) if p == pid => {}
        Some(p) => {
            return Err(Fail::new(
                exit::FAILURE,
                format!(
                    "not stopping anything: the lock {} names pid {pid}, but the app-server on {endpoint} is pid {p}",
                    lock.display()
                ),
            )
            .into());
        }
        None if is_our_app_server(pid) => {
            say!("app-server (pid {pid}) does not answer on {endpoint}; stopping it anyway");
        }
        None => {
            return Err(Fail::new(
                exit::FAILURE,
                format!(
                    "not stopping pid {pid}: it holds the lock {} but is not a tandem app-server of this user answering on {endpoint}",
                    lock.display()
                ),
            )
            .into());
        }
    }
    // SAFETY: kill(2) on the pid that answered as (or was checked to be) our server.
    if unsafe { libc::kill(pid as i32, libc::SIGTERM) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Fail::new(exit::FAILURE, format!("cannot signal the app-server (pid {pid}): {e}")).into());
    }
    let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    while DataLock::holder(&lock).is_some() {
        if tokio::time::Instant::now() >= deadline {
            return Err(Fail::new(
                exit::FAILURE,
                format!("the app-server (pid {pid}) did not stop within {}s", STOP_TIMEOUT.as_secs()),
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    say!("app-server stopped (pid {pid})");
    Ok(0)
}

/// Whether `pid` is a `tandem app-server` process of this user (for a server
/// that holds the lock but no longer answers).
fn is_our_app_server(pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    // SAFETY: geteuid has no preconditions.
    let ours = std::fs::metadata(&proc_dir).is_ok_and(|m| m.uid() == unsafe { libc::geteuid() });
    let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_tandem = args.first().is_some_and(|a| a.ends_with(b"tandem"));
    ours && is_tandem && args.iter().any(|a| *a == b"app-server")
}

async fn status(home: &Home, json: bool) -> Result<u8> {
    let endpoint = Endpoint::Unix(home.socket_path());
    match Client::connect(&endpoint, client_info()).await {
        Ok(client) => {
            let init = client.server().cloned().ok_or_else(|| anyhow::anyhow!("no initialize answer"))?;
            let info = &init.server_info;
            if json {
                let v = serde_json::json!({
                    "running": true,
                    "pid": info.pid,
                    "socket": home.socket_path(),
                    "home": home.dir(),
                    "version": info.version,
                    "protocolVersion": init.protocol_version,
                    "agent": info.agent,
                    "flags": info.launch_args,
                    "listeners": info.listeners,
                    "ownerTokenFile": tandem_rpc::access::owner_token_path(home),
                });
                say!("{v}");
            } else {
                say!("app-server running");
                say!("  pid:      {}", info.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()));
                say!("  socket:   {}", home.socket_path().display());
                say!("  home:     {}", home.dir().display());
                say!("  version:  {} (protocol {})", info.version, init.protocol_version);
                if let Some(agent) = &info.agent {
                    let model = agent.model.as_deref().map(|m| format!(" ({m})")).unwrap_or_default();
                    say!("  agent:    {}{model}", agent.kind);
                }
                if !info.launch_args.is_empty() {
                    say!("  flags:    {}", info.launch_args.join(" "));
                }
                for l in &info.listeners {
                    say!("  listen:   {l}");
                }
                if info.listeners.iter().any(|l| l.starts_with("http://")) {
                    let file = tandem_rpc::access::owner_token_path(home);
                    say!("  owner token: in {} (0600); use it as", file.display());
                    say!("    export TANDEM_TOKEN=$(cat {})", file.display());
                    say!("    tandem share list --server ws://HOST:PORT/rpc --token-env TANDEM_TOKEN");
                    say!("  links:    tandem share link --thread ID  (read-only; --write to post)");
                }
            }
            Ok(0)
        }
        Err(e @ ClientError::ProtocolMismatch { .. }) => Err(Fail::from(e).into()),
        Err(e) => {
            let holder = DataLock::holder(&home.lock_path());
            if json {
                let v = serde_json::json!({
                    "running": false,
                    "pid": holder,
                    "socket": home.socket_path(),
                    "home": home.dir(),
                    "error": e.to_string(),
                });
                say!("{v}");
            } else {
                match holder {
                    Some(pid) => say!("app-server (pid {pid}) holds the data directory but does not answer: {e}"),
                    None => say!("app-server is not running ({})", home.dir().display()),
                }
            }
            Ok(exit::UNREACHABLE)
        }
    }
}

/// Copies stdin to the server's socket and the socket to stdout, until both
/// directions are done.
async fn proxy(home: &Home, conn: &ConnArgs) -> Result<u8> {
    let path = match &conn.server {
        Some(Endpoint::Unix(p)) => p.clone(),
        Some(Endpoint::Stdio(_) | Endpoint::Ws { .. }) => {
            return Err(Fail::usage("proxy bridges to a unix socket; give --server unix:PATH or nothing").into());
        }
        None => {
            let exe = std::env::current_exe()?;
            // Make sure the default server runs; the check connection is dropped.
            connect_or_start(home, &exe, client_info()).await.map_err(Fail::from)?;
            home.socket_path()
        }
    };
    let stream = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
        Fail::from(ClientError::Unreachable { endpoint: format!("unix:{}", path.display()), reason: e.to_string() })
    })?;
    let (mut sock_r, mut sock_w) = stream.into_split();
    let up = async {
        let mut stdin = tokio::io::stdin();
        let r = tokio::io::copy(&mut stdin, &mut sock_w).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut sock_w).await;
        r
    };
    let down = async {
        let mut stdout = tokio::io::stdout();
        let r = tokio::io::copy(&mut sock_r, &mut stdout).await;
        let _ = tokio::io::AsyncWriteExt::flush(&mut stdout).await;
        r
    };
    // The server's side decides when we are done: once it closes, so do we
    // (whoever spawned us then sees the connection end), whatever stdin does.
    tokio::pin!(up);
    tokio::pin!(down);
    let down = tokio::select! {
        down = &mut down => down,
        _ = &mut up => down.await,
    };
    down.map_err(|e| Fail::new(exit::UNREACHABLE, format!("proxy connection failed: {e}")))?;
    Ok(0)
}
