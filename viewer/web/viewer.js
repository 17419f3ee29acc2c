// Tandem's web viewer, served by the app-server (`/t/ID`) and by the hub
// (`/s/ID`); the page's `data-mode` says which.
//
// - app: JSON-RPC over the app-server's /rpc WebSocket (one message per text
//   frame), with the token from the URL fragment: the fragment never reaches
//   the server, and the page drops it from the address bar at once and keeps
//   the token in sessionStorage.
// - hub: read-only, no token: history from /api/share/ID/events, live from
//   the /api/share/ID/live?after=SEQ WebSocket. The hub rendered the last
//   stretch of history into the page already (it reads without JavaScript);
//   the script replaces it with its own once it has the same events.
//
// A long thread opens at its end: the last page of events is loaded and
// shown, and earlier pages are loaded as the reader scrolls up. Deltas are
// folded into their message, so a turn of 100,000 deltas is one element.
//
// Nothing from a thread is ever parsed as HTML: every text goes into the page
// through textContent or createTextNode, and the markdown renderer below
// builds elements itself.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  // A hub's notice page (not found, expired, not shared): nothing to follow.
  if (body.dataset.ended) return;
  const hub = body.dataset.mode === 'hub';
  const pathId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
  const threadId = pathId;
  // Events per history page (the app-server's thread/events answers at most this many).
  const PAGE = 1000;

  let token = null;
  const tokenKey = 'tandem.token.' + threadId;
  if (!hub) {
    const fragment = /(?:^#|&)k=([^&]+)/.exec(location.hash);
    if (fragment) {
      token = decodeURIComponent(fragment[1]);
      try { sessionStorage.setItem(tokenKey, token); } catch (e) { /* private mode: keep it in memory */ }
      history.replaceState(null, '', location.pathname + location.search);
    } else {
      try { token = sessionStorage.getItem(tokenKey); } catch (e) { token = null; }
    }
  }

  let ws = null;
  let nextId = 1;
  const pending = new Map();
  // The events shown are exactly the seqs firstSeq..lastSeq (Infinity, 0: none).
  let lastSeq = 0;
  let firstSeq = Infinity;
  let applied = 0;
  // While a page of history goes in: messages are laid out once, at its end.
  let batching = false;
  const dirty = new Set();
  // While an earlier page goes in: its events come before everything shown.
  let older = false;
  let olderFrag = null;
  const touched = new Set();
  let shared = false;
  let owner = false;
  let canWrite = false;
  let running = null;
  let stopped = false;
  let retry = 0;
  const turns = new Map();

  const transcript = $('transcript');
  // The top of the transcript: a button for earlier history, pressed by
  // itself when it scrolls into view.
  const earlier = document.createElement('div');
  earlier.className = 'earlier';
  earlier.hidden = true;
  const earlierButton = document.createElement('button');
  earlierButton.type = 'button';
  earlierButton.id = 'load-earlier';
  earlierButton.textContent = 'Load earlier messages';
  earlier.append(earlierButton);
  // The hub's server-rendered history stays until the script has its own.
  let replaced = !hub;
  if (replaced) transcript.replaceChildren(earlier);

  function notice(text, error) {
    const n = $('notice');
    n.textContent = text;
    n.hidden = !text;
    n.classList.toggle('error', !!error);
  }

  // The server ended our access (revoked, expired, no longer shared): say so
  // and stop; reconnecting would only be refused again.
  function stop(text) {
    stopped = true;
    body.dataset.stopped = 'true';
    notice(text, true);
    $('composer').hidden = true;
    $('share-button').disabled = true;
    setState(null, 'stopped');
    if (ws) ws.close();
  }

  function setState(by, text) {
    const s = $('turn-state');
    s.textContent = text || (by ? 'running · ' + by : 'idle');
    s.classList.toggle('running', !!by);
  }

  function setTitle(title) {
    const t = title || (hub ? 'Shared thread' : 'untitled');
    $('title').textContent = t;
    document.title = t + ' · Tandem';
  }

  function setShared(on) {
    shared = !!on;
    const pill = $('shared-pill');
    pill.classList.toggle('on', shared);
    pill.classList.toggle('off', !shared);
    pill.textContent = shared ? 'Shared' : 'Not shared';
  }

  function later() {
    const delay = Math.min(10000, 250 * 2 ** retry);
    retry += 1;
    if (!stopped) notice('Connection lost; reconnecting…', false);
    setTimeout(connect, delay);
  }

  function failed(e) {
    if (e && e.code === -32004) stop(e.message);
    else if (e && e.message && !stopped) notice(e.message, true);
  }

  // --- Where events come from: a page of history, and a live feed. --------

  function connect() {
    if (stopped) return;
    if (hub) hubConnect(); else appConnect();
  }

  function call(method, params) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject({ message: 'not connected; retrying' });
        return;
      }
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  // Up to `limit` events from `from` on: {events, next?}.
  function page(from, limit) {
    if (!hub) return call('thread/events', { threadId, from, limit });
    return fetch('/api/share/' + encodeURIComponent(pathId) + '/events?from=' + from + '&limit=' + limit, { cache: 'no-store' })
      .then((r) => {
        if (!r.ok) return r.json().catch(() => ({})).then((b) => { throw { status: r.status, message: b.error || ('HTTP ' + r.status) }; });
        return r.json();
      });
  }

  function appConnect() {
    if (!token) {
      stop('This page needs a link with its key (…/t/ID#k=…). Ask the thread\u2019s owner: tandem share link --thread ID');
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let opened = false;
    const socket = new WebSocket(scheme + '//' + location.host + '/rpc', ['tandem.v1', 'bearer.' + token]);
    ws = socket;
    socket.onopen = () => {
      opened = true;
      retry = 0;
      appStart().catch(failed);
    };
    socket.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      onMessage(msg);
    };
    socket.onclose = () => {
      if (ws !== socket) return;
      for (const p of pending.values()) p.reject({ message: 'connection lost' });
      pending.clear();
      if (stopped) return;
      setState(null, 'reconnecting…');
      if (opened) later(); else probe();
    };
  }

  // A WebSocket that never opened does not say why; ask the door.
  function probe() {
    fetch('/api/access', { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' })
      .then((r) => {
        if (r.status === 401 || r.status === 403) {
          return r.json().then((b) => stop((b.error && b.error.message) || 'This link no longer works.'));
        }
        later();
      })
      .catch(later);
  }

  async function appStart() {
    await call('initialize', { clientInfo: { name: 'tandem-web', version: '1' } });
    const access = await call('access/read', {});
    owner = access.owner;
    canWrite = owner || (access.link && access.link.scope === 'write');
    const thread = (await call('thread/read', { threadId })).thread;
    setTitle(thread.title);
    setShared(thread.shared);
    $('short-id').textContent = thread.id.slice(0, 8);
    $('composer').hidden = !canWrite;
    $('share-button').disabled = !canWrite;
    // The last page of history (or, after a reconnect, what came since),
    // then live from the first event not yet shown: the server's
    // subscription has no gap and no repeat, and seq guards every seam.
    await catchUp(thread.lastSeq);
    running = thread.activeTurn ? thread.activeTurn.client.name : null;
    setState(running);
    await call('thread/subscribe', { threadId, from: lastSeq + 1 });
    notice('', false);
    body.dataset.connected = 'true';
  }

  function onMessage(msg) {
    if (msg.id !== undefined && msg.id !== null && (msg.result !== undefined || msg.error)) {
      const p = pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      if (msg.error) p.reject(msg.error); else p.resolve(msg.result);
    } else if (msg.method === 'thread/event') {
      onEvent(msg.params.result);
    } else if (msg.method === 'subscription/closed') {
      stop(msg.params.error.message);
    } else if (msg.error) {
      notice(msg.error.message, true);
    }
  }

  function hubConnect() {
    hubStart().catch(hubFail);
  }

  async function hubStart() {
    // The page says how far the hub was when it rendered; the script starts
    // from there (its own last page of events), then follows live.
    await catchUp(Number(body.dataset.hubSeq) || 0);
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let opened = false;
    const socket = new WebSocket(scheme + '//' + location.host + '/api/share/' + encodeURIComponent(pathId) + '/live?after=' + lastSeq);
    ws = socket;
    socket.onopen = () => {
      opened = true;
      retry = 0;
      if (shared) notice('', false);
      setState(running);
      body.dataset.connected = 'true';
    };
    socket.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === 'event' && msg.event) {
        if (typeof msg.event.seq !== 'number') msg.event.seq = msg.seq;
        onEvent(msg.event);
      } else if (msg.type === 'thread') {
        setTitle(msg.title);
        setShared(msg.shared);
        if (msg.shared) notice('', false);
        else notice('Its author has stopped sharing this thread for now; it goes on here when they share it again.', true);
      } else if (msg.type === 'deleted') {
        stop('This thread is no longer shared: its share was deleted.');
      } else if (msg.type === 'expired') {
        stop('This thread is no longer shared: its share has expired.');
      }
    };
    socket.onclose = () => {
      if (ws !== socket || stopped) return;
      body.dataset.connected = 'false';
      setState(null, 'reconnecting…');
      if (opened) later();
      // Never opened: the history answer says why (404, 410, 403) or retries.
      else page(lastSeq + 1, 1).then(later, hubFail);
    };
  }

  function hubFail(e) {
    if (e && (e.status === 404 || e.status === 410)) stop('This thread is no longer shared: ' + e.message + '.');
    else if (e && e.status === 403) { notice(e.message, true); later(); }
    else later();
  }

  // --- History: the last page first, earlier pages on demand. --------------

  // Shows what came after lastSeq up to the end; on a first load (nothing
  // shown yet) only from the last page before `top`.
  async function catchUp(top) {
    let from = lastSeq > 0 ? lastSeq + 1 : Math.max(1, top - PAGE + 1);
    batching = true;
    try {
      for (;;) {
        const got = await page(from, PAGE);
        if (!replaced) {
          // The hub's own rendering goes at once, replaced in one step.
          transcript.replaceChildren(earlier);
          replaced = true;
        }
        for (const ev of got.events) onEvent(ev);
        if (got.next === undefined || got.next === null) break;
        from = got.next;
      }
    } finally {
      batching = false;
      flushDirty();
      settle();
    }
  }

  let earlierBusy = false;
  async function loadEarlier() {
    if (earlierBusy || stopped || !(firstSeq > 1 && firstSeq !== Infinity)) return;
    earlierBusy = true;
    earlierButton.textContent = 'Loading…';
    let ok = false;
    try {
      const to = firstSeq - 1;
      let at = Math.max(1, firstSeq - PAGE);
      const events = [];
      while (at <= to) {
        const got = await page(at, to - at + 1);
        const mine = got.events.filter((e) => e && e.seq >= at && e.seq <= to);
        events.push(...mine);
        if (!mine.length) break;
        at = mine[mine.length - 1].seq + 1;
      }
      prepend(events);
      ok = true;
    } catch (e) {
      if (!stopped) notice((e && e.message) || 'Could not load earlier messages.', true);
    } finally {
      earlierBusy = false;
      earlierButton.textContent = 'Load earlier messages';
    }
    // Still in view (what came in was short): go on.
    if (ok && inView(earlier)) loadEarlier();
  }

  function inView(el) {
    if (el.hidden) return false;
    const r = el.getBoundingClientRect();
    return r.bottom > 0 && r.top < window.innerHeight;
  }

  // Earlier events (in seq order, all before firstSeq) go in above what is
  // shown, the reader's place kept.
  function prepend(events) {
    if (!events.length) return;
    const keep = document.documentElement.scrollHeight - window.scrollY;
    const limit = firstSeq;
    older = true;
    batching = true;
    olderFrag = document.createDocumentFragment();
    try {
      for (const ev of events) {
        if (!ev || typeof ev.seq !== 'number' || ev.seq >= limit) continue;
        onEvent(ev);
      }
      earlier.after(olderFrag);
      for (const a of touched) {
        if (!a.done && a.older) a.text = a.older + a.text;
        a.older = '';
        dirty.add(a);
      }
      touched.clear();
      firstSeq = Math.min(firstSeq, events[0].seq);
    } finally {
      older = false;
      olderFrag = null;
      batching = false;
      flushDirty();
    }
    window.scrollTo(0, document.documentElement.scrollHeight - keep);
    settle();
  }

  earlierButton.addEventListener('click', () => { loadEarlier(); });
  if ('IntersectionObserver' in window) {
    new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) loadEarlier();
    }).observe(earlier);
  }

  // --- Events into the page. ----------------------------------------------

  // Every element of the transcript knows the seq it began at; one that
  // arrives late (from an earlier page) goes in before those after it.
  function place(parent, el, seq) {
    el.tandemSeq = seq;
    let before = null;
    for (let c = parent.lastElementChild; c && c.tandemSeq > seq; c = c.previousElementSibling) before = c;
    parent.insertBefore(el, before);
  }

  function turnOf(turnId, seq) {
    let t = turns.get(turnId);
    if (!t) {
      const el = document.createElement('section');
      el.className = 'turn';
      el.dataset.turn = turnId;
      el.tandemSeq = seq;
      if (older) olderFrag.append(el); else transcript.append(el);
      t = { el, items: new Map() };
      turns.set(turnId, t);
    } else if (seq < t.el.tandemSeq) {
      t.el.tandemSeq = seq;
    }
    return t;
  }

  function agentOf(turnId, itemId, seq) {
    const t = turnOf(turnId, seq);
    let a = t.items.get(itemId);
    if (!a || !a.agent) {
      const el = document.createElement('div');
      el.className = 'msg agent';
      place(t.el, el, seq);
      a = { agent: true, el, text: '', older: '', done: false, queued: false };
      t.items.set(itemId, a);
    }
    return a;
  }

  function describe(item) {
    if (item.command) return '$ ' + item.command + (item.exitCode !== undefined && item.exitCode !== null ? '  (exit ' + item.exitCode + ')' : '');
    if (item.changes && item.changes.length) return '~ edited ' + item.changes.map((c) => c.path).join(', ');
    if (item.path) return '~ edited ' + item.path;
    if (item.tool) return '\u2699 ' + item.tool;
    return '\u2699 ' + item.type;
  }

  function show(a) {
    if (batching) { dirty.add(a); return; }
    if (a.queued) return;
    a.queued = true;
    setTimeout(() => { a.queued = false; renderMarkdown(a.el, a.text); }, 16);
  }

  function flushDirty() {
    for (const a of dirty) renderMarkdown(a.el, a.text);
    dirty.clear();
  }

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 80;
  }

  function onEvent(ev) {
    if (!ev || typeof ev.seq !== 'number') return;
    if (!older) {
      if (ev.seq <= lastSeq) return;
      lastSeq = ev.seq;
      if (firstSeq === Infinity) firstSeq = ev.seq;
    }
    applied += 1;
    settle();
    const seq = ev.seq;
    switch (ev.type) {
      case 'thread/started':
      case 'thread/updated':
        if (older) break;
        setTitle(ev.title);
        // On a hub, the share's own flag says whether it is shared.
        if (!hub) setShared(ev.shared);
        break;
      case 'turn/started': {
        const t = turnOf(ev.turnId, seq);
        const meta = document.createElement('div');
        meta.className = 'meta';
        const who = ev.client ? ev.client.name : 'someone';
        meta.textContent = who + ' · ' + (ev.originalTs || ev.ts) + (ev.imported ? ' · imported' : '');
        const user = document.createElement('div');
        user.className = 'msg user';
        user.textContent = ev.input;
        place(t.el, meta, seq);
        place(t.el, user, seq);
        if (!ev.imported && !older) { running = who; if (!batching) setState(running); }
        break;
      }
      case 'item/started':
        if (ev.item && ev.item.type === 'agentMessage') agentOf(ev.turnId, ev.item.id, seq);
        else if (ev.item) itemLine(ev.turnId, ev.item, seq);
        break;
      case 'item/agentMessage/delta': {
        const a = agentOf(ev.turnId, ev.itemId, seq);
        if (a.done) break;
        if (older) { a.older += ev.delta; touched.add(a); } else { a.text += ev.delta; show(a); }
        break;
      }
      case 'item/completed':
        if (ev.item && ev.item.type === 'agentMessage') {
          const a = agentOf(ev.turnId, ev.item.id, seq);
          a.text = ev.item.text || '';
          a.older = '';
          a.done = true;
          show(a);
        } else if (ev.item) {
          itemLine(ev.turnId, ev.item, seq);
        }
        break;
      case 'turn/completed': {
        const t = turnOf(ev.turnId, seq);
        t.el.dataset.status = ev.status;
        if (ev.status !== 'completed') {
          const s = document.createElement('div');
          s.className = 'status ' + ev.status;
          s.textContent = ev.status + (ev.error ? ': ' + ev.error : '');
          place(t.el, s, seq);
        }
        if (!older) { running = null; if (!batching) setState(null); }
        break;
      }
      default:
        break;
    }
  }

  // Once a burst of events is in: note how far the page got and keep the
  // bottom in view if the reader was there (layout is read once per burst,
  // not once per event).
  let settling = false;
  let stick = true;
  window.addEventListener('scroll', () => { stick = nearBottom(); }, { passive: true });
  function settle() {
    if (settling || batching) return;
    settling = true;
    setTimeout(() => {
      settling = false;
      // Seqs start at 1 and only grow, so applied === lastSeq - firstSeq + 1
      // says every event was shown exactly once (the tests read these).
      body.dataset.lastSeq = String(lastSeq);
      body.dataset.firstSeq = String(firstSeq === Infinity ? 0 : firstSeq);
      body.dataset.applied = String(applied);
      earlier.hidden = !(firstSeq > 1 && firstSeq !== Infinity);
      if (stick) window.scrollTo(0, document.documentElement.scrollHeight);
      // A short page leaves the top in view: fetch more above it.
      if (inView(earlier)) loadEarlier();
    }, 0);
  }

  function itemLine(turnId, item, seq) {
    const t = turnOf(turnId, seq);
    let el = t.items.get(item.id);
    if (!el || !el.line) {
      const line = document.createElement('div');
      line.className = 'item';
      place(t.el, line, seq);
      el = { line };
      t.items.set(item.id, el);
    }
    el.line.textContent = describe(item);
  }

  // Markdown, the safe way: block structure by line, inline code, bold and
  // emphasis, every text as a text node. Links stay text.
  function renderMarkdown(el, text) {
    const out = document.createDocumentFragment();
    const lines = text.split('\n');
    let para = [];
    let list = null;
    const flush = () => {
      if (para.length) {
        const p = document.createElement('p');
        p.append(inline(para.join('\n')));
        out.append(p);
        para = [];
      }
      list = null;
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const fence = /^\s*(```+|~~~+)\s*([\w+-]*)/.exec(line);
      if (fence) {
        flush();
        const body = [];
        i += 1;
        while (i < lines.length && !lines[i].trim().startsWith(fence[1])) { body.push(lines[i]); i += 1; }
        const pre = document.createElement('pre');
        const code = document.createElement('code');
        if (fence[2]) code.className = 'language-' + fence[2];
        code.textContent = body.join('\n');
        pre.append(code);
        out.append(pre);
        continue;
      }
      const heading = /^(#{1,6})\s+(.*)$/.exec(line);
      if (heading) {
        flush();
        const h = document.createElement('h' + Math.min(6, heading[1].length + 2));
        h.append(inline(heading[2]));
        out.append(h);
        continue;
      }
      const bullet = /^\s*([-*+]|\d+[.)])\s+(.*)$/.exec(line);
      if (bullet) {
        if (para.length) flush();
        const kind = /\d/.test(bullet[1]) ? 'OL' : 'UL';
        if (!list || list.tagName !== kind) {
          list = document.createElement(kind.toLowerCase());
          out.append(list);
        }
        const li = document.createElement('li');
        li.append(inline(bullet[2]));
        list.append(li);
        continue;
      }
      if (!line.trim()) { flush(); continue; }
      list = null;
      para.push(line);
    }
    flush();
    el.replaceChildren(out);
  }

  function inline(text) {
    const frag = document.createDocumentFragment();
    const re = /(`+)([\s\S]*?)\1|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*/g;
    let at = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > at) frag.append(document.createTextNode(text.slice(at, m.index)));
      let node;
      if (m[1]) { node = document.createElement('code'); node.textContent = m[2]; }
      else if (m[3] !== undefined) { node = document.createElement('strong'); node.textContent = m[3]; }
      else { node = document.createElement('em'); node.textContent = m[4]; }
      frag.append(node);
      at = re.lastIndex;
    }
    if (at < text.length) frag.append(document.createTextNode(text.slice(at)));
    return frag;
  }

  // The composer: the text stays until the server took the turn.
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('prompt').value;
    if (!input.trim()) return;
    const status = $('composer-status');
    status.textContent = 'sending…';
    status.classList.remove('busy');
    call('turn/start', { threadId, input }).then(() => {
      $('prompt').value = '';
      status.textContent = '';
    }, (err) => {
      if (err.code === -32001) {
        const by = err.data && err.data.startedBy ? err.data.startedBy.name : 'someone';
        status.textContent = 'busy: a turn started by ' + by + ' is running; your text is kept';
        status.classList.add('busy');
      } else {
        status.textContent = err.message || String(err);
        failed(err);
      }
    });
  });
  $('prompt').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      $('composer').requestSubmit();
    }
  });
  $('interrupt').addEventListener('click', () => {
    call('turn/interrupt', { threadId }).catch(failed);
  });

  // Share: turns sharing on if it is off, then offers the link.
  async function offerLink() {
    const input = $('share-link');
    if (owner) {
      const scope = $('share-write').checked ? 'write' : 'read';
      const r = await call('link/create', { threadId, scope });
      input.value = r.url;
      $('share-text').textContent = scope === 'write'
        ? 'Anyone with this link can read the thread and post to it while it is shared.'
        : 'Anyone with this link can read the thread while it is shared.';
    } else {
      input.value = 'tandem share link --thread ' + threadId;
      $('share-text').textContent = 'Links are made by the thread\u2019s owner; ask them to run:';
    }
  }
  $('share-button').addEventListener('click', async () => {
    try {
      if (!shared) await call('thread/update', { threadId, shared: true });
      $('share-write-row').hidden = !owner;
      await offerLink();
      $('share-dialog').showModal();
    } catch (e) { failed(e); }
  });
  $('share-write').addEventListener('change', () => { offerLink().catch(failed); });
  $('stop-sharing').addEventListener('click', () => {
    $('share-dialog').close();
    call('thread/update', { threadId, shared: false }).catch(failed);
  });
  $('copy').addEventListener('click', () => {
    const input = $('share-link');
    input.select();
    if (navigator.clipboard) navigator.clipboard.writeText(input.value).catch(() => document.execCommand('copy'));
    else document.execCommand('copy');
  });

  // A new link pasted over this one (same page, another key): start afresh
  // with its token.
  window.addEventListener('hashchange', () => {
    if (hub) return;
    const next = /(?:^#|&)k=([^&]+)/.exec(location.hash);
    if (!next) return;
    try { sessionStorage.setItem(tokenKey, decodeURIComponent(next[1])); } catch (e) { /* reload keeps nothing */ }
    history.replaceState(null, '', location.pathname + location.search);
    location.reload();
  });

  connect();
})();
