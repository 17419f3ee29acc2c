//! Threads shared through a hub (DESIGN §7), on the sending side: the links
//! (`hub/link`, `hub/links`, `hub/unlink`), kept in `$TANDEM_HOME`, and one
//! sync queue per linked thread. Only linked threads are synced; nothing
//! leaves the machine unredacted unless its link says `--no-redact`.
//!
//! It owns its links and their tasks; the engine does not know it exists
//! (it reads threads through the engine's public API, like any client).

mod fit;
mod links;
mod queue;
mod uplink;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tandem_protocol::RpcError;
use tandem_protocol::hub::{
    CreateShare, EventCuts, HubLink, HubLinkParams, HubLinkResult, HubLinksParams, HubLinksResult, HubUnlinkParams,
    HubUnlinkResult, parse_duration,
};
use tandem_protocol::methods::ThreadReadParams;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use links::{LinkRecord, LinkStore};
pub use queue::DEBOUNCE;
pub use uplink::{HubApi, Refusal, Reply, Uplink};

use tandem_engine::Engine;
use tandem_home::Home;

/// A link and its queue's state.
struct Link {
    record: LinkRecord,
    /// The last failure, while retrying.
    error: Option<String>,
    task: Option<JoinHandle<()>>,
    /// What its queue is doing (tests wait on it to move a paused clock).
    phase: watch::Sender<Phase>,
}

impl Link {
    fn new(record: LinkRecord) -> Link {
        Link { record, error: None, task: None, phase: watch::Sender::new(Phase::Starting) }
    }
}

/// What a link's sync queue is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Starting,
    /// Nothing to send: waiting for the thread's next commit.
    Idle,
    /// Letting events gather for [`DEBOUNCE`] before a batch.
    Gathering,
    /// A batch is on its way to the hub (or its `ackedSeq` being saved).
    Sending,
    /// The last `failures` syncs in a row failed; the next in `wait`.
    Retrying {
        failures: u32,
        wait: std::time::Duration,
    },
}

/// What was done to an event so that the hub would take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Sent with its texts cut; it was `original` bytes.
    Truncated { original: usize },
    /// Sent as a placeholder, for `why`.
    Withheld { original: usize, why: String },
}

struct Inner {
    engine: Engine,
    home: Home,
    store: LinkStore,
    uplink: Arc<dyn HubApi>,
    links: Mutex<BTreeMap<String, Link>>,
    /// Held while the file is written, so saves land in the order made.
    saving: Mutex<()>,
    /// Held while a link is made, so that two callers linking one thread at
    /// once (the CLI and the session follower) get one share, not two.
    linking: tokio::sync::Mutex<()>,
}

/// The hub links of one app-server, and their sync queues.
#[derive(Clone)]
pub struct HubSync(Arc<Inner>);

fn hub_unreachable(refusal: Refusal) -> RpcError {
    match refusal {
        Refusal::Unavailable(why) => RpcError::internal(why).with_reason("hubUnreachable"),
        other => RpcError::internal(other.to_string()).with_reason("hubRefused"),
    }
}

fn normalize_hub(url: &str) -> Result<String, RpcError> {
    tandem_protocol::hub::normalize_hub_url(url).map_err(RpcError::invalid_params)
}

impl HubSync {
    /// Loads the links of `home` and starts the queues of those still syncing.
    pub fn start(engine: Engine, home: Home) -> std::io::Result<HubSync> {
        HubSync::start_with(engine, home, Arc::new(Uplink::new()))
    }

    /// [`HubSync::start`] talking to hubs through `api`.
    pub fn start_with(engine: Engine, home: Home, api: Arc<dyn HubApi>) -> std::io::Result<HubSync> {
        let store = LinkStore::new(&home);
        let records = store.load()?;
        let sync = HubSync(Arc::new(Inner {
            engine,
            home,
            store,
            uplink: api,
            links: Mutex::new(BTreeMap::new()),
            saving: Mutex::new(()),
            linking: tokio::sync::Mutex::new(()),
        }));
        let count = records.len();
        for (thread, record) in records {
            let running = record.stopped.is_none();
            sync.lock().insert(thread.clone(), Link::new(record));
            if running {
                sync.spawn(&thread);
            }
        }
        if count > 0 {
            tracing::info!(links = count, "hub links loaded");
        }
        Ok(sync)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Link>> {
        self.0.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.0.engine
    }

    pub(crate) fn uplink(&self) -> &dyn HubApi {
        &*self.0.uplink
    }

    /// Stops every queue (what is acknowledged is saved already).
    pub fn stop_all(&self) {
        for link in self.lock().values_mut() {
            if let Some(task) = link.task.take() {
                task.abort();
            }
        }
    }

    fn spawn(&self, thread: &str) {
        let task = tokio::spawn(queue::run(self.clone(), thread.to_owned()));
        if let Some(link) = self.lock().get_mut(thread) {
            if let Some(old) = link.task.replace(task) {
                old.abort();
            }
        } else {
            task.abort();
        }
    }

    /// The record of a linked thread.
    pub(crate) fn record(&self, thread: &str) -> Option<LinkRecord> {
        self.lock().get(thread).map(|l| l.record.clone())
    }

    pub(crate) fn set_phase(&self, thread: &str, phase: Phase) {
        if let Some(link) = self.lock().get(thread) {
            link.phase.send_replace(phase);
        }
    }

    /// What the queue of `thread`'s link is doing, as it changes.
    pub fn phase(&self, thread: &str) -> Option<watch::Receiver<Phase>> {
        self.lock().get(thread).map(|l| l.phase.subscribe())
    }

    pub(crate) fn set_status(&self, thread: &str, error: Option<String>) {
        if let Some(link) = self.lock().get_mut(thread) {
            link.error = error;
        }
    }

    /// Records that the hub has everything up to `seq`.
    pub(crate) async fn ack(&self, thread: &str, seq: u64) {
        if let Some(link) = self.lock().get_mut(thread) {
            link.record.acked_seq = seq;
            link.error = None;
        }
        self.save().await;
    }

    /// Counts the events of a batch the hub now has that went truncated or
    /// withheld (saved with the `ackedSeq` that follows). An event sent
    /// again (the hub asked to resend) is not counted twice.
    pub(crate) fn note_cuts(&self, thread: &str, cuts: &[(u64, Cut)]) {
        let mut links = self.lock();
        let Some(link) = links.get_mut(thread) else { return };
        let noted = &mut link.record.cuts;
        for (seq, cut) in cuts {
            if *seq <= noted.last_seq {
                continue;
            }
            noted.last_seq = *seq;
            noted.last = match cut {
                Cut::Truncated { original } => {
                    noted.truncated += 1;
                    format!("seq {seq} truncated to fit the hub ({original} bytes whole)")
                }
                Cut::Withheld { original, why } => {
                    noted.withheld += 1;
                    format!("seq {seq} withheld ({original} bytes): {why}")
                }
            };
        }
    }

    /// Ends a link's syncing for good (the share is gone or refused).
    pub(crate) fn stop(&self, thread: &str, state: &str, why: String) {
        if let Some(link) = self.lock().get_mut(thread) {
            link.record.stopped = Some(state.to_owned());
            link.error = Some(why);
        }
        let this = self.clone();
        tokio::spawn(async move { this.save().await });
    }

    /// Writes every record to the file (off the async threads: it fsyncs).
    async fn save(&self) {
        let this = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _order = this.0.saving.lock().unwrap_or_else(|p| p.into_inner());
            let records: BTreeMap<String, LinkRecord> =
                this.lock().iter().map(|(k, l)| (k.clone(), l.record.clone())).collect();
            this.0.store.save(&records)
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not save the hub links"),
            Err(e) => tracing::error!(error = %e, "could not save the hub links"),
        }
    }

    fn view(&self, thread: &str, link: &Link) -> HubLink {
        let committed = self.0.engine.committed_seq(thread).unwrap_or(link.record.acked_seq);
        let pending = committed.saturating_sub(link.record.acked_seq);
        let state = match (&link.record.stopped, &link.error) {
            (Some(s), _) => s.clone(),
            (None, Some(_)) => "retrying".to_owned(),
            (None, None) if pending > 0 => "pending".to_owned(),
            (None, None) => "synced".to_owned(),
        };
        HubLink {
            thread_id: thread.to_owned(),
            id: link.record.id.clone(),
            url: link.record.url.clone(),
            hub: link.record.hub.clone(),
            acked_seq: link.record.acked_seq,
            pending,
            redact: link.record.redact,
            state,
            error: link.error.clone(),
            expires_at: link.record.expires_at.clone(),
            cuts: link.record.cuts.clone(),
        }
    }

    /// `hub/link`: creates the share on the hub and starts syncing it. A
    /// thread already linked to that hub keeps its link.
    pub async fn link(&self, p: HubLinkParams) -> Result<HubLinkResult, RpcError> {
        let _one_at_a_time = self.0.linking.lock().await;
        let found = self.0.engine.thread_read(ThreadReadParams { thread_id: p.thread_id.clone() })?;
        let thread = found.id;
        let hub = match p.hub {
            Some(h) => h,
            None => tandem_engine::config::FileConfig::read(&tandem_engine::config::config_path(&self.0.home))
                .map_err(|e| RpcError::invalid_params(e.to_string()))?
                .hub
                .and_then(|h| h.url)
                .ok_or_else(|| {
                    RpcError::invalid_params("which hub? give --hub URL, or set url under [hub] in config.toml")
                })?,
        };
        let hub = normalize_hub(&hub)?;
        if let Some(expire) = &p.expire {
            parse_duration(expire).map_err(|e| RpcError::invalid_params(format!("invalid --expire: {e}")))?;
        }
        if let Some(link) = self.lock().get(&thread)
            && link.record.stopped.is_none()
        {
            if link.record.hub == hub {
                return Ok(HubLinkResult { link: self.view(&thread, link) });
            }
            return Err(RpcError::invalid_params(format!(
                "thread {thread} is linked to {} already; `tandem share unlink --thread {thread}` first",
                link.record.hub
            )));
        }
        let redact = !p.no_redact;
        let title = found.title;
        let title = if redact { title.map(|t| tandem_engine::redact::secrets(&t).into_owned()) } else { title };
        let req = CreateShare { thread_id: thread.clone(), title: fit::title(title), expire: p.expire };
        let created = self.0.uplink.create(&hub, &req).await.map_err(hub_unreachable)?;
        let record = LinkRecord {
            id: created.id,
            url: created.url,
            secret: created.secret,
            hub,
            acked_seq: 0,
            redact,
            expires_at: created.expires_at,
            stopped: None,
            cuts: EventCuts::default(),
        };
        if let Some(old) = self.lock().insert(thread.clone(), Link::new(record))
            && let Some(task) = old.task
        {
            task.abort();
        }
        self.save().await;
        self.spawn(&thread);
        tracing::info!(%thread, "thread linked to a hub");
        let links = self.lock();
        Ok(HubLinkResult { link: self.view(&thread, &links[&thread]) })
    }

    /// `hub/links`.
    pub fn links(&self, p: HubLinksParams) -> Result<HubLinksResult, RpcError> {
        let only = match &p.thread_id {
            Some(t) => Some(self.0.engine.thread_read(ThreadReadParams { thread_id: t.clone() })?.id),
            None => None,
        };
        let links = self.lock();
        let data =
            links.iter().filter(|(t, _)| only.as_ref().is_none_or(|o| o == *t)).map(|(t, l)| self.view(t, l)).collect();
        Ok(HubLinksResult { data })
    }

    /// `hub/unlink`: stops syncing; with `delete`, first removes the share
    /// from the hub (if the hub cannot be reached, nothing changes).
    pub async fn unlink(&self, p: HubUnlinkParams) -> Result<HubUnlinkResult, RpcError> {
        let thread = self.0.engine.thread_read(ThreadReadParams { thread_id: p.thread_id })?.id;
        let Some(record) = self.record(&thread) else {
            return Ok(HubUnlinkResult { unlinked: false, deleted: false });
        };
        let mut deleted = false;
        if p.delete {
            match self.0.uplink.delete(&record).await {
                Ok(()) => deleted = true,
                // Gone already: nothing left to delete.
                Err(Refusal::Deleted | Refusal::Expired) => {}
                Err(e) => return Err(hub_unreachable(e)),
            }
        }
        if let Some(link) = self.lock().remove(&thread)
            && let Some(task) = link.task
        {
            task.abort();
        }
        self.save().await;
        tracing::info!(%thread, deleted, "thread unlinked from its hub");
        Ok(HubUnlinkResult { unlinked: true, deleted })
    }
}

#[cfg(test)]
mod tests;
