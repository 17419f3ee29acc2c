//! A connection's outbound queue, bounded by bytes: whoever answers or
//! notifies a client queues lines here, and the connection's writer takes
//! them off. A client that does not read stops being served past its budget.
//!
//! Every queue also draws on one budget for all clients together
//! ([`ClientsBudget`], issue 18.5): without it any number of clients that
//! never read each pinned their own budget's worth. A subscription's piece
//! waits for room in its shared part: past it subscriptions stop queueing and
//! catch up from the log once there is room, as a slow follower's do. Answers
//! to requests may also use the last part (the reserve), so that a client's
//! requests are still answered while subscriptions of clients that do not
//! read hold all the rest; the owner's answers are held only to the owner's
//! own budget (the session stops reading a client's requests while that is
//! spent), so clients that never read can never keep the owner waiting. No
//! send waits for anything but room: a client's own writer drains without
//! its session, so there is no deadlock.
//!
//! (An earlier design opened the reserve to any queue with nothing
//! unwritten; 1,000 idle subscribers each took one piece of it the first
//! time they were sent anything, and then the owner waited for ever.)

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use tandem_lines::LineQueue;

/// What a queued line costs besides its bytes (so tiny lines are bounded too).
const LINE_OVERHEAD: usize = 64;

/// Bytes of one subscription's events queued ahead of the connection's writer
/// ([`Outbound::send_within`]).
pub const SUBSCRIPTION_AHEAD: usize = 256 * 1024;

/// The bytes queued for all clients together (`Limits::clients_bytes`): a
/// shared part, and a reserve only answers to requests draw on.
#[derive(Clone)]
pub struct ClientsBudget {
    shared: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
    /// The reserve in permits: what one piece may cost of this budget at most
    /// (a larger piece counts as this much, so that it can ever be sent).
    reserve_max: usize,
    total: usize,
}

impl ClientsBudget {
    /// `bytes` for all clients: a quarter of it (at most 64 MiB) is the reserve.
    pub fn new(bytes: usize) -> ClientsBudget {
        let bytes = bytes.clamp(2, u32::MAX as usize);
        let reserve = (bytes / 4).clamp(1, 64 << 20);
        ClientsBudget {
            shared: Arc::new(Semaphore::new(bytes - reserve)),
            reserve: Arc::new(Semaphore::new(reserve)),
            reserve_max: reserve,
            total: bytes,
        }
    }

    /// Bytes of it queued for clients now.
    pub fn in_use(&self) -> usize {
        let free = self.shared.available_permits() + self.reserve.available_permits();
        self.total.saturating_sub(free)
    }
}

/// A connection's outbound queue, bounded by bytes: [`Outbound::send`] waits
/// while the client has `Limits::outbound_bytes` unread, or while all
/// clients together have the [`ClientsBudget`].
#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::UnboundedSender<OutLine>,
    budget: Arc<Semaphore>,
    /// The budget in permits (one per byte, capped to fit a `u32`).
    max: usize,
    clients: Option<ClientsBudget>,
    /// Answers are not held to `clients` (the owner's).
    answers_exempt: bool,
    /// The most bytes this client ever had unwritten at once.
    peak: Arc<std::sync::atomic::AtomicUsize>,
}

/// A queued line; its share of the budgets is returned once it is written.
pub struct OutLine {
    line: String,
    _permit: OwnedSemaphorePermit,
    /// Its share of its subscription's own allowance ([`Outbound::send_within`]).
    _ahead: Option<OwnedSemaphorePermit>,
    /// Its share of all clients' budget.
    _clients: Option<OwnedSemaphorePermit>,
}

impl OutLine {
    /// The line, with its newline.
    pub fn text(&self) -> &str {
        &self.line
    }
}

impl AsRef<[u8]> for OutLine {
    fn as_ref(&self) -> &[u8] {
        self.line.as_bytes()
    }
}

/// The connection is gone.
#[derive(Debug)]
pub struct Closed;

impl Outbound {
    /// A queue of at most `bytes` unwritten bytes, and the receiving end for
    /// [`lines::write_lines`].
    pub fn new(bytes: usize) -> (Outbound, OutQueue) {
        let max = bytes.clamp(1, u32::MAX as usize);
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(max));
        let out = Outbound {
            tx,
            budget: Arc::clone(&budget),
            max,
            clients: None,
            answers_exempt: false,
            peak: Arc::default(),
        };
        let peak = Arc::clone(&out.peak);
        (out, OutQueue { rx, budget, peak })
    }

    /// [`Outbound::new`], also drawing on all clients' budget; `owner`: its
    /// answers do not (see the module notes).
    pub fn with_clients(bytes: usize, clients: &ClientsBudget, owner: bool) -> (Outbound, OutQueue) {
        let (mut out, queue) = Outbound::new(bytes);
        out.clients = Some(clients.clone());
        out.answers_exempt = owner;
        (out, queue)
    }

    /// Queues a line (or a run of newline-terminated lines, sent as one piece),
    /// first waiting for room in the budget (a piece larger than the whole
    /// budget waits for all of it).
    pub async fn send(&self, line: String) -> Result<(), Closed> {
        self.queue(line, None).await
    }

    /// [`Outbound::send`], first waiting until fewer than `allowance`'s
    /// permits of bytes sent this way are unwritten: a subscription keeps only
    /// that much queued ahead of the writer (the rest waits in the feed's ring
    /// or the log), so many subscriptions of a fast thread do not each fill
    /// the connection's whole budget.
    pub async fn send_within(&self, piece: String, allowance: &Arc<Semaphore>) -> Result<(), Closed> {
        let want = (piece.len() + LINE_OVERHEAD).min(SUBSCRIPTION_AHEAD) as u32;
        let ahead = Arc::clone(allowance).acquire_many_owned(want).await.map_err(|_| Closed)?;
        self.queue(piece, Some(ahead)).await
    }

    async fn queue(&self, line: String, ahead: Option<OwnedSemaphorePermit>) -> Result<(), Closed> {
        let cost = (line.len() + LINE_OVERHEAD).min(self.max) as u32;
        let answer = ahead.is_none();
        let clients = match &self.clients {
            Some(_) if answer && self.answers_exempt => None,
            Some(c) => Some(c.permit(line.len() + LINE_OVERHEAD, answer).await?),
            None => None,
        };
        let permit = Arc::clone(&self.budget).acquire_many_owned(cost).await.map_err(|_| Closed)?;
        let unwritten = self.max.saturating_sub(self.budget.available_permits());
        self.peak.fetch_max(unwritten, std::sync::atomic::Ordering::Relaxed);
        self.tx.send(OutLine { line, _permit: permit, _ahead: ahead, _clients: clients }).map_err(|_| Closed)
    }
}

impl ClientsBudget {
    /// `bytes` of it (at most the reserve's size, so that any piece can be
    /// sent): from the shared part, or for an answer from the reserve too.
    async fn permit(&self, bytes: usize, answer: bool) -> Result<OwnedSemaphorePermit, Closed> {
        let want = bytes.min(self.reserve_max) as u32;
        if !answer {
            return Arc::clone(&self.shared).acquire_many_owned(want).await.map_err(|_| Closed);
        }
        for part in [&self.shared, &self.reserve] {
            if let Ok(p) = Arc::clone(part).try_acquire_many_owned(want) {
                return Ok(p);
            }
        }
        tokio::select! {
            p = Arc::clone(&self.shared).acquire_many_owned(want) => p.map_err(|_| Closed),
            p = Arc::clone(&self.reserve).acquire_many_owned(want) => p.map_err(|_| Closed),
        }
    }
}

/// The writer's end of an [`Outbound`]; dropping it fails every waiting send.
pub struct OutQueue {
    rx: mpsc::UnboundedReceiver<OutLine>,
    budget: Arc<Semaphore>,
    peak: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for OutQueue {
    fn drop(&mut self) {
        self.budget.close();
        if self.peak.load(std::sync::atomic::Ordering::Relaxed) >= TRIM_AFTER {
            trim_soon();
        }
    }
}

/// A connection that once had this much unwritten — a client that fell
/// behind, whose subscriptions then also held pages and pieces waiting for
/// room — gives the memory back to the system when it closes ([`trim_soon`]).
/// Low on purpose: a behind client's queue is small when all clients' budget
/// is spread over many, while what its pumps held was not.
const TRIM_AFTER: usize = 64 * 1024;

/// glibc keeps freed memory in its arenas: after many clients that never
/// read had closed, the server's RSS stayed at its peak (measured: 748 of
/// 788 MiB with 200 such WebSockets). `malloc_trim(0)` returns it. Called a
/// moment after the connection's queue is gone (its lines and pumps are
/// freed by then), on a blocking thread (it walks every arena), at most once
/// a second however many connections close.
fn trim_soon() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if LAST.swap(now, Ordering::Relaxed) == now {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
    rt.spawn(async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim has no preconditions.
        let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
    });
}

impl LineQueue for OutQueue {
    type Line = OutLine;
    fn recv(&mut self) -> impl Future<Output = Option<OutLine>> + Send {
        self.rx.recv()
    }
    fn try_recv(&mut self) -> Option<OutLine> {
        self.rx.try_recv().ok()
    }
}
