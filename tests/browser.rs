//! The web viewer in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver: history then live deltas,
//! markdown rendered and thread text never run as HTML, the Share button and
//! "Shared" pill relit live in another browser, open viewers stopped by
//! unsharing and revocation, a write link's composer, a 100,000-event thread
//! opened at its end, and the same viewer served read-only by a hub.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::web::*;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// A chromedriver on a free port of its own, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let exe = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("chromedriver is missing: apt-get install chromium chromium-driver (.ci/run does)");
        // The OS picks a free port; chromedriver takes it right after.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(exe)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let mut driver = Driver { child, port };
        wait_for("chromedriver to listen", || {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited: {status}");
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        driver
    }

    /// A new headless browser session.
    async fn browser(&self) -> Client {
        self.session(json!({})).await
    }

    /// A new headless browser session with JavaScript turned off.
    async fn browser_without_js(&self) -> Client {
        self.session(json!({"profile.managed_default_content_settings.javascript": 2})).await
    }

    async fn session(&self, prefs: Value) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,800"],
                "prefs": prefs,
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session in headless Chromium")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `script` in the page; its return value.
async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// Waits until `script` (an expression) is true in the page; panics with what
/// `show` evaluates to after [`PATIENCE`].
async fn until(c: &Client, what: &str, expr: &str, show: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if js(c, &format!("return !!({expr});")).await == json!(true) {
            return;
        }
        if Instant::now() > deadline {
            let seen = js(c, &format!("return {show};")).await;
            panic!("timed out waiting for {what}; the page shows: {seen}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of the first element matching `css` ("" if none).
fn text_of(css: &str) -> String {
    format!("(document.querySelector({css:?}) || {{}}).textContent || ''")
}

/// Blocks of the harness (real processes) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

const XSS: &str = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\"> & \"quotes\"";
const MARKDOWN: &str = "Here is **bold** and `inline <b>code</b>`:\n\n```rust\nfn main() { println!(\"<img src=x onerror=alert(1)>\"); }\n```\n\n- one\n- <i>two</i>";

/// A thread titled `<b>demo</b>` whose one imported turn asks with the XSS
/// payloads and answers in markdown; its id.
fn demo_thread(home: &Home) -> String {
    let thread = home
        .raw()
        .call("thread/start", json!({"title": "<b>demo</b>", "turns": [{"input": XSS, "response": MARKDOWN}]}));
    thread["thread"]["id"].as_str().unwrap().to_owned()
}

/// A read link opens on the history (markdown rendered, every payload shown
/// as text), then follows a turn posted elsewhere live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_shows_history_then_live_and_never_runs_thread_html() {
    let home = std::sync::Arc::new(Home::new());
    let _web = WebServer::start(&home, &[]);
    let id = demo_thread(&home);
    let (url, _, _) = make_link(&home, &id, &[]);

    let body = "document.body.innerText";
    let driver = Driver::start();
    let c = driver.browser().await;
    c.goto(&url).await.unwrap();
    until(&c, "the history", "document.querySelector('.msg.agent pre code')", body).await;
    let code = js(&c, &format!("return {};", text_of(".msg.agent pre code"))).await;
    assert_eq!(code, json!("fn main() { println!(\"<img src=x onerror=alert(1)>\"); }"));
    assert_eq!(js(&c, "return document.querySelector('.msg.agent strong').textContent").await, json!("bold"));
    assert_eq!(
        js(&c, "return document.querySelector('.msg.agent p code').textContent").await,
        json!("inline <b>code</b>")
    );
    assert_eq!(js(&c, "return document.querySelectorAll('.msg.agent li').length").await, json!(2));
    assert_eq!(js(&c, &format!("return {};", text_of(".msg.user"))).await, json!(XSS));
    // Nothing of the thread became markup, and nothing ran.
    assert_eq!(
        js(&c, "return document.querySelectorAll('#transcript img, #transcript script, #transcript b, #transcript i, header b').length").await,
        json!(0)
    );
    assert_eq!(js(&c, "return typeof window.pwned").await, json!("undefined"));
    assert_eq!(js(&c, &format!("return {};", text_of("#title"))).await, json!("<b>demo</b>"));
    assert_eq!(js(&c, &format!("return {};", text_of("#short-id"))).await, json!(&id[..8]));
    assert_eq!(js(&c, &format!("return {};", text_of("#shared-pill"))).await, json!("Shared"));
    // The token left the address bar; a read link gets no composer or Share.
    assert_eq!(js(&c, "return location.hash").await, json!(""));
    assert_eq!(js(&c, "return document.getElementById('composer').hidden").await, json!(true));
    assert_eq!(js(&c, "return document.getElementById('share-button').disabled").await, json!(true));
    assert_eq!(js(&c, &format!("return {};", text_of("#turn-state"))).await, json!("idle"));

    // Live: a turn posted from the CLI streams in.
    let (h, t) = (std::sync::Arc::clone(&home), id.clone());
    blocking(move || {
        h.run(&["share", "post", "--thread", &t, "--prompt", "live words from the cli", "--server", &h.endpoint()]).ok()
    })
    .await;
    until(
        &c,
        "the live turn",
        "[...document.querySelectorAll('.msg.agent')].some(e => e.textContent.includes('live words from the cli'))",
        body,
    )
    .await;
    until(&c, "idle again", "document.getElementById('turn-state').textContent === 'idle'", body).await;
    // Exactly the two turns, each event once.
    assert_eq!(js(&c, "return document.querySelectorAll('.msg.user').length").await, json!(2));
    let last_seq = home.events(&id).last().unwrap()["seq"].as_u64().unwrap();
    until(&c, "every event", &format!("document.body.dataset.lastSeq === '{last_seq}'"), body).await;
    assert_eq!(js(&c, "return document.body.dataset.applied").await, json!(last_seq.to_string()));
    // The README's picture: TANDEM_SCREENSHOT=PATH writes this page as a PNG.
    if let Some(path) = std::env::var_os("TANDEM_SCREENSHOT") {
        std::fs::write(path, c.screenshot().await.unwrap()).unwrap();
    }
    let _ = c.close().await;
}

/// The owner's Share button stops and restarts sharing: another owner's pill
/// relights live, a read link's open viewer is told and stops, and a link
/// made in the dialog works; revoking stops a viewer at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_button_relights_pills_and_stops_link_viewers() {
    let home = std::sync::Arc::new(Home::new());
    let web = WebServer::start(&home, &[]);
    let id = home.new_thread();
    let owner_url = format!("{}/t/{id}#k={}", web.url, owner_token(&home));
    let (link_url, _, _) = make_link(&home, &id, &[]);
    let connected = "document.body.dataset.connected === 'true'";
    let body = "document.body.innerText";

    let driver = Driver::start();
    let a = driver.browser().await;
    let other = driver.browser().await;
    let viewer = driver.browser().await;
    for (c, url) in [(&a, &owner_url), (&other, &owner_url), (&viewer, &link_url)] {
        c.goto(url).await.unwrap();
        until(c, "the page to connect", connected, body).await;
    }
    let pill = "document.getElementById('shared-pill').textContent";

    // Share → the dialog offers a read link; Stop sharing turns it off.
    a.find(Locator::Css("#share-button")).await.unwrap().click().await.unwrap();
    until(&a, "the share dialog", "document.getElementById('share-dialog').open", body).await;
    let offered = js(&a, "return document.getElementById('share-link').value").await;
    assert!(offered.as_str().unwrap().starts_with(&format!("{}/t/{id}#k=", web.url)), "{offered}");
    a.find(Locator::Css("#stop-sharing")).await.unwrap().click().await.unwrap();
    until(&a, "the pill off", &format!("{pill} === 'Not shared'"), pill).await;
    until(&other, "the other owner's pill off", &format!("{pill} === 'Not shared'"), pill).await;
    until(&viewer, "the link viewer to stop", "document.body.dataset.stopped === 'true'", body).await;
    let told = js(&viewer, &format!("return {};", text_of("#notice"))).await;
    assert!(told.as_str().unwrap().contains("no longer shared"), "{told}");
    let bearer = format!("Bearer {}", link_url.rsplit_once("#k=").unwrap().1);
    assert_eq!(http_get(web.host(), "/api/access", &[("Authorization", &bearer)]).status, 403);

    // Share again: on everywhere, and the dialog's new link opens the thread.
    a.find(Locator::Css("#share-button")).await.unwrap().click().await.unwrap();
    until(&a, "the pill on", &format!("{pill} === 'Shared'"), pill).await;
    until(&other, "the other owner's pill on", &format!("{pill} === 'Shared'"), pill).await;
    until(&a, "the share dialog", "document.getElementById('share-dialog').open", body).await;
    let fresh = js(&a, "return document.getElementById('share-link').value").await.as_str().unwrap().to_owned();
    assert_ne!(fresh, offered.as_str().unwrap());
    // Same page, another key: the page starts afresh with it.
    js(&viewer, "window.oldPage = true; return 1").await;
    viewer.goto(&fresh).await.unwrap();
    until(&viewer, "the new link to connect", &format!("!window.oldPage && {connected}"), body).await;
    assert_eq!(js(&viewer, "return document.body.dataset.stopped || ''").await, json!(""));
    assert_eq!(js(&viewer, &format!("return {pill};")).await, json!("Shared"));

    // Revoking every link stops the open viewer at once.
    let (h, t) = (std::sync::Arc::clone(&home), id.clone());
    blocking(move || h.run(&["share", "revoke", "--thread", &t, "--server", &h.endpoint()]).ok()).await;
    until(&viewer, "the revoked viewer to stop", "document.body.dataset.stopped === 'true'", body).await;
    let told = js(&viewer, &format!("return {};", text_of("#notice"))).await;
    assert!(told.as_str().unwrap().contains("not valid"), "{told}");
    // The owners are unaffected.
    assert_eq!(js(&other, "return document.body.dataset.stopped || ''").await, json!(""));
    for c in [a, other, viewer] {
        let _ = c.close().await;
    }
}

/// A write link gets a composer: a post streams in; while another client's
/// turn runs, Send says busy and keeps the text; Interrupt stops that turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_link_composer_posts_shows_busy_and_interrupts() {
    let home = std::sync::Arc::new(Home::new());
    let _web = WebServer::start(&home, &["--echo-delay-ms", "100"]);
    let id = home.new_thread();
    let (url, _, _) = make_link(&home, &id, &["--write"]);
    let body = "document.body.innerText";
    let state = "document.getElementById('turn-state').textContent";

    let driver = Driver::start();
    let c = driver.browser().await;
    c.goto(&url).await.unwrap();
    until(&c, "the composer", "!document.getElementById('composer').hidden", body).await;
    let prompt = c.find(Locator::Css("#prompt")).await.unwrap();
    prompt.send_keys("hello from the browser").await.unwrap();
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    until(
        &c,
        "the answer",
        "[...document.querySelectorAll('.msg.agent')].some(e => e.textContent.includes('hello from the browser'))",
        body,
    )
    .await;
    until(&c, "idle", &format!("{state} === 'idle'"), state).await;
    assert_eq!(js(&c, "return document.getElementById('prompt').value").await, json!(""));
    assert!(home.events(&id).iter().any(|e| e["type"] == "turn/started" && e["client"]["name"] == "tandem-web"));

    // Another client's long turn: busy, and the text stays.
    let (h, t) = (std::sync::Arc::clone(&home), id.clone());
    blocking(move || {
        h.run(&["share", "post", "--thread", &t, "--no-wait", "--prompt", &words(2000), "--server", &h.endpoint()]).ok()
    })
    .await;
    until(&c, "running", &format!("{state}.startsWith('running · tandem-share')"), state).await;
    let prompt = c.find(Locator::Css("#prompt")).await.unwrap();
    prompt.send_keys("second try").await.unwrap();
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    until(&c, "busy shown", "document.getElementById('composer-status').textContent.includes('busy')", body).await;
    assert_eq!(js(&c, "return document.getElementById('prompt').value").await, json!("second try"));

    // Interrupt ends it; then the kept text posts.
    c.find(Locator::Css("#interrupt")).await.unwrap().click().await.unwrap();
    until(&c, "the turn interrupted", "document.querySelector('.turn[data-status=interrupted]')", body).await;
    until(&c, "idle", &format!("{state} === 'idle'"), state).await;
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    until(
        &c,
        "the kept text posted",
        "[...document.querySelectorAll('.msg.user')].some(e => e.textContent === 'second try')",
        body,
    )
    .await;
    let _ = c.close().await;
}

/// The page survives a server restart: it reconnects by itself and resumes
/// from the last seq it showed, every event shown once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_reconnects_and_resumes_without_gaps_or_repeats() {
    let home = std::sync::Arc::new(Home::new());
    let web = WebServer::start(&home, &[]);
    let id = home.new_thread();
    let (url, _, _) = make_link(&home, &id, &[]);
    let endpoint = home.endpoint();
    home.run(&["share", "post", "--thread", &id, "--prompt", "before the restart", "--server", &endpoint]).ok();
    let body = "document.body.innerText";
    let shown_all = |n: u64| format!("document.body.dataset.lastSeq === '{n}'");

    let driver = Driver::start();
    let c = driver.browser().await;
    c.goto(&url).await.unwrap();
    let before = home.events(&id).len() as u64;
    until(&c, "the history", &shown_all(before), body).await;

    // Restart the server on the same port.
    let listen = web.url.clone();
    let h = std::sync::Arc::clone(&home);
    let mut old = web.server;
    let _restarted = blocking(move || {
        old.terminate();
        h.serve(&["--listen", "unix", "--listen", &listen])
    })
    .await;
    home.run(&["share", "post", "--thread", &id, "--prompt", "after the restart", "--server", &endpoint]).ok();
    let after = home.events(&id).len() as u64;
    assert!(after > before);
    until(&c, "the page to catch up", &shown_all(after), body).await;
    assert_eq!(js(&c, "return document.body.dataset.applied").await, json!(after.to_string()));
    assert_eq!(js(&c, "return document.querySelectorAll('.msg.user').length").await, json!(2));
    let answers = js(&c, "return [...document.querySelectorAll('.msg.agent')].map(e => e.textContent)").await;
    assert_eq!(answers, json!(["before the restart", "after the restart"]));
    let _ = c.close().await;
}

/// The hub serves the same viewer, read-only: a linked thread's history
/// (markdown rendered, every payload inert), then what is posted streaming in
/// live; after the hub restarts, it resumes from the last seq it showed, each
/// event once; a deleted share says it is no longer shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_viewer_follows_live_survives_a_restart_and_says_when_unshared() {
    let hub_home = std::sync::Arc::new(Home::new());
    let hub = common::hub::Hub::start(&hub_home, &[]);
    let addr = hub.addr.clone();
    let home = std::sync::Arc::new(Home::new());
    let _server = home.serve(&[]);
    let endpoint = home.endpoint();
    let id = demo_thread(&home);
    let url = home.run(&["share", "link", "--thread", &id, "--hub", &hub.url(), "--server", &endpoint]).ok().stdout;
    let url = url.trim().to_owned();
    let share = url.rsplit('/').next().unwrap().to_owned();
    let first = home.last_seq(&id);
    // On the hub (synced after the 1 s debounce) before the page opens.
    hub.live(&share, 0).until(|i| i["seq"].as_u64() == Some(first));

    let body = "document.body.innerText";
    let shown_all = |n: u64| format!("document.body.dataset.lastSeq === '{n}'");
    let driver = Driver::start();

    // Without JavaScript the page still reads: the hub rendered the history.
    let plain = driver.browser_without_js().await;
    plain.goto(&url).await.unwrap();
    let text = plain.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
    assert!(text.contains("Without JavaScript it does not update"), "{text}");
    assert!(text.contains(XSS) && text.contains("inline <b>code</b>"), "{text}");
    assert_eq!(plain.title().await.unwrap(), "<b>demo</b> · Tandem");
    let _ = plain.close().await;

    let c = driver.browser().await;
    c.goto(&url).await.unwrap();
    // The script took over the server's rendering: markdown is rendered.
    until(&c, "the history", "document.querySelector('.msg.agent pre code')", body).await;
    until(&c, "connected", "document.body.dataset.connected === 'true'", body).await;
    let code = js(&c, &format!("return {};", text_of(".msg.agent pre code"))).await;
    assert_eq!(code, json!("fn main() { println!(\"<img src=x onerror=alert(1)>\"); }"));
    assert_eq!(js(&c, &format!("return {};", text_of(".msg.user"))).await, json!(XSS));
    assert_eq!(
        js(&c, "return document.querySelectorAll('#transcript img, #transcript script, #transcript b, #transcript i, header b').length").await,
        json!(0)
    );
    assert_eq!(js(&c, "return typeof window.pwned").await, json!("undefined"));
    assert_eq!(js(&c, &format!("return {};", text_of("#title"))).await, json!("<b>demo</b>"));
    assert_eq!(js(&c, &format!("return {};", text_of("#shared-pill"))).await, json!("Shared"));
    assert_eq!(js(&c, &format!("return {};", text_of("#turn-state"))).await, json!("idle"));
    // Read-only: no composer, no Share button.
    for control in ["composer", "share-button"] {
        let shown = js(&c, &format!("return document.getElementById('{control}').offsetParent !== null")).await;
        assert_eq!(shown, json!(false), "{control} is shown");
    }

    // Live: a post from the CLI streams in.
    let (hm, t, e) = (std::sync::Arc::clone(&home), id.clone(), endpoint.clone());
    blocking(move || {
        hm.run(&["share", "post", "--thread", &t, "--prompt", "live words via the hub", "--server", &e]).ok()
    })
    .await;
    let second = home.last_seq(&id);
    until(&c, "the live turn", &shown_all(second), body).await;
    let answers = "[...document.querySelectorAll('.msg.agent')].map(e => e.textContent)";
    until(&c, "the live answer", &format!("{answers}[1] === 'live words via the hub'"), answers).await;

    // The hub restarts on its address; what was posted meanwhile arrives once.
    let mut hub = hub;
    let h = std::sync::Arc::clone(&hub_home);
    let a = addr.clone();
    let hub = blocking(move || {
        hub.server.terminate();
        common::hub::Hub::start_at(&h, &a, &[])
    })
    .await;
    let (hm, t, e) = (std::sync::Arc::clone(&home), id.clone(), endpoint.clone());
    blocking(move || {
        hm.run(&["share", "post", "--thread", &t, "--prompt", "after the hub restart", "--server", &e]).ok()
    })
    .await;
    let third = home.last_seq(&id);
    until(&c, "the page to catch up", &shown_all(third), body).await;
    assert_eq!(js(&c, "return document.body.dataset.applied").await, json!(third.to_string()));
    let inputs = js(&c, "return [...document.querySelectorAll('.msg.user')].map(e => e.textContent)").await;
    assert_eq!(inputs, json!([XSS, "live words via the hub", "after the hub restart"]));

    // Deleted: the open page says it is no longer shared, and stops.
    let (hm, t, e) = (std::sync::Arc::clone(&home), id.clone(), endpoint.clone());
    blocking(move || hm.run(&["share", "unlink", "--thread", &t, "--delete", "--server", &e]).ok()).await;
    until(&c, "the page to stop", "document.body.dataset.stopped === 'true'", body).await;
    let told = js(&c, &format!("return {};", text_of("#notice"))).await;
    assert!(told.as_str().unwrap().contains("no longer shared"), "{told}");
    let _ = c.close().await;
    drop(hub);
}

/// A 100,000-event thread opens at its end: the last answer is shown without
/// loading the whole history (a few hundred turns in the page, not 33,000),
/// and scrolling up loads earlier pages, each event shown once. (How fast it
/// opens is measured by `cargo bench --bench viewer`, not asserted here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_thread_opens_at_its_end_and_loads_earlier_pages_on_scroll() {
    let home = std::sync::Arc::new(Home::new());
    let _web = WebServer::start(&home, &[]);
    let (id, last) = blocking({
        let home = std::sync::Arc::clone(&home);
        move || long_thread(&home)
    })
    .await;
    assert!(last >= 100_000, "{last} events");
    let (url, _, _) = make_link(&home, &id, &[]);

    let body = "document.body.innerText";
    let driver = Driver::start();
    let c = driver.browser().await;
    c.goto(&url).await.unwrap();
    until(&c, "the last event", &format!("document.body.dataset.lastSeq === '{last}'"), body).await;
    let answer = "[...document.querySelectorAll('.msg.agent')].pop().textContent";
    until(&c, "the last answer", &format!("{answer}.endsWith('w999')"), answer).await;
    until(&c, "idle", "document.getElementById('turn-state').textContent === 'idle'", body).await;
    let first = js(&c, "return Number(document.body.dataset.firstSeq)").await.as_u64().unwrap();
    assert!(first > 90_000, "opened at the end, not from seq {first}");
    let turns = js(&c, "return document.querySelectorAll('.turn').length").await.as_u64().unwrap();
    assert!(turns < 1_000, "{turns} turns in the page");
    // The reader is at the bottom.
    assert_eq!(
        js(&c, "return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 80").await,
        json!(true)
    );

    // Scrolling to the top loads the page before, and keeps the place.
    js(&c, "window.scrollTo(0, 0); return 1").await;
    until(&c, "an earlier page", &format!("Number(document.body.dataset.firstSeq) < {first}"), body).await;
    let earlier = js(&c, "return Number(document.body.dataset.firstSeq)").await.as_u64().unwrap();
    until(
        &c,
        "earlier turns",
        "[...document.querySelectorAll('.msg.user')].some(e => /^question 32\\d{3}$/.test(e.textContent))",
        body,
    )
    .await;
    let applied = js(&c, "return Number(document.body.dataset.applied)").await.as_u64().unwrap();
    let shown_from = js(&c, "return Number(document.body.dataset.firstSeq)").await.as_u64().unwrap();
    assert!(shown_from <= earlier);
    assert_eq!(applied, last - shown_from + 1, "each event from {shown_from} to {last} once");
    // In seq order: the echo turn's prompt is the last question shown.
    let inputs = js(&c, "return [...document.querySelectorAll('.msg.user')].map(e => e.textContent)").await;
    let inputs = inputs.as_array().unwrap();
    assert!(inputs.last().unwrap().as_str().unwrap().starts_with("w0 w1"), "{:?}", inputs.last());
    let numbers: Vec<u64> = inputs
        .iter()
        .filter_map(|i| i.as_str().unwrap().strip_prefix("question ").map(|n| n.parse().unwrap()))
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] + 1 == w[1]), "turns in order, none missing");
    assert_eq!(numbers.last(), Some(&32_999));
    let _ = c.close().await;
}

/// A thread of 100,000+ events made through the real binary: 33,000 imported
/// turns (three events each) in one `thread/start`, then an echo turn of
/// 1,000 words (a delta per word). Returns its id and last seq.
fn long_thread(home: &Home) -> (String, u64) {
    let turns: Vec<Value> =
        (0..33_000).map(|i| json!({"input": format!("question {i}"), "response": format!("answer **{i}**")})).collect();
    let mut raw = home.raw();
    let id =
        raw.call("thread/start", json!({"title": "long", "turns": turns}))["thread"]["id"].as_str().unwrap().to_owned();
    home.run(&["share", "post", "--thread", &id, "--prompt", &words(1000), "--server", &home.endpoint()]).ok();
    let last = raw.call("thread/read", json!({"threadId": id}))["thread"]["lastSeq"].as_u64().unwrap();
    (id, last)
}
