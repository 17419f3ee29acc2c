// Tandem's web viewer. It speaks the app-server's JSON-RPC over the /rpc
// WebSocket (one message per text frame), with the token from the URL
// fragment: the fragment never reaches the server, and the page drops it from
// the address bar at once and keeps the token in sessionStorage.
//
// Nothing from a thread is ever parsed as HTML: every text goes into the page
// through textContent or createTextNode, and the markdown renderer below
// builds elements itself.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const threadId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
  const tokenKey = 'tandem.token.' + threadId;
  let token = null;
  const fragment = /(?:^#|&)k=([^&]+)/.exec(location.hash);
  if (fragment) {
    token = decodeURIComponent(fragment[1]);
    try { sessionStorage.setItem(tokenKey, token); } catch (e) { /* private mode: keep it in memory */ }
    history.replaceState(null, '', location.pathname + location.search);
  } else {
    try { token = sessionStorage.getItem(tokenKey); } catch (e) { token = null; }
  }

  let ws = null;
  let nextId = 1;
  const pending = new Map();
  let lastSeq = 0;
  let applied = 0;
  let loadingHistory = false;
  const dirty = new Set();
  let shared = false;
  let owner = false;
  let canWrite = false;
  let running = null;
  let stopped = false;
  let retry = 0;
  const turns = new Map();

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
    document.body.dataset.stopped = 'true';
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
    $('title').textContent = title || 'untitled';
    document.title = (title || 'untitled') + ' · Tandem';
  }

  function setShared(on) {
    shared = !!on;
    const pill = $('shared-pill');
    pill.classList.toggle('on', shared);
    pill.classList.toggle('off', !shared);
    pill.textContent = shared ? 'Shared' : 'Not shared';
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

  function connect() {
    if (stopped) return;
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
      start().catch(failed);
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

  function later() {
    const delay = Math.min(10000, 250 * 2 ** retry);
    retry += 1;
    notice('Connection lost; reconnecting…', false);
    setTimeout(connect, delay);
  }

  function failed(e) {
    if (e && e.code === -32004) stop(e.message);
    else if (e && e.message && !stopped) notice(e.message, true);
  }

  async function start() {
    await call('initialize', { clientInfo: { name: 'tandem-web', version: '1' } });
    const access = await call('access/read', {});
    owner = access.owner;
    canWrite = owner || (access.link && access.link.scope === 'write');
    const thread = (await call('thread/read', { threadId })).thread;
    setTitle(thread.title);
    setShared(thread.shared);
    $('short-id').textContent = thread.id.slice(0, 8);
    running = thread.activeTurn ? thread.activeTurn.client.name : null;
    setState(running);
    $('composer').hidden = !canWrite;
    $('share-button').disabled = !canWrite;
    // History in pages (a thousand events an answer, so a long thread opens
    // fast), then live from the first event not yet shown: the server's
    // subscription has no gap and no repeat, and seq guards every seam.
    let from = lastSeq + 1;
    loadingHistory = true;
    try {
      for (;;) {
        const page = await call('thread/events', { threadId, from });
        for (const ev of page.events) onEvent(ev);
        if (page.next === undefined || page.next === null) break;
        from = page.next;
      }
    } finally {
      // Messages are laid out once, when their history is in.
      loadingHistory = false;
      for (const a of dirty) show(a);
      dirty.clear();
    }
    await call('thread/subscribe', { threadId, from: lastSeq + 1 });
    notice('', false);
    document.body.dataset.connected = 'true';
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

  function turnOf(turnId) {
    let t = turns.get(turnId);
    if (!t) {
      const el = document.createElement('section');
      el.className = 'turn';
      el.dataset.turn = turnId;
      $('transcript').append(el);
      t = { el, items: new Map() };
      turns.set(turnId, t);
    }
    return t;
  }

  function agentOf(turnId, itemId) {
    const t = turnOf(turnId);
    let a = t.items.get(itemId);
    if (!a) {
      const el = document.createElement('div');
      el.className = 'msg agent';
      t.el.append(el);
      a = { el, text: '', queued: false };
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
    if (loadingHistory) { dirty.add(a); return; }
    if (a.queued) return;
    a.queued = true;
    setTimeout(() => { a.queued = false; renderMarkdown(a.el, a.text); }, 16);
  }

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
  }

  function onEvent(ev) {
    if (!ev || typeof ev.seq !== 'number' || ev.seq <= lastSeq) return;
    lastSeq = ev.seq;
    applied += 1;
    settle();
    switch (ev.type) {
      case 'thread/started':
      case 'thread/updated':
        setTitle(ev.title);
        setShared(ev.shared);
        break;
      case 'turn/started': {
        const t = turnOf(ev.turnId);
        const meta = document.createElement('div');
        meta.className = 'meta';
        const who = ev.client ? ev.client.name : 'someone';
        meta.textContent = who + ' · ' + (ev.originalTs || ev.ts) + (ev.imported ? ' · imported' : '');
        const user = document.createElement('div');
        user.className = 'msg user';
        user.textContent = ev.input;
        t.el.append(meta, user);
        if (!ev.imported) { running = who; setState(running); }
        break;
      }
      case 'item/started':
        if (ev.item && ev.item.type === 'agentMessage') agentOf(ev.turnId, ev.item.id);
        else if (ev.item) itemLine(ev.turnId, ev.item);
        break;
      case 'item/agentMessage/delta': {
        const a = agentOf(ev.turnId, ev.itemId);
        a.text += ev.delta;
        show(a);
        break;
      }
      case 'item/completed':
        if (ev.item && ev.item.type === 'agentMessage') {
          const a = agentOf(ev.turnId, ev.item.id);
          a.text = ev.item.text || '';
          show(a);
        } else if (ev.item) {
          itemLine(ev.turnId, ev.item);
        }
        break;
      case 'turn/completed': {
        const t = turnOf(ev.turnId);
        t.el.dataset.status = ev.status;
        if (ev.status !== 'completed') {
          const s = document.createElement('div');
          s.className = 'status ' + ev.status;
          s.textContent = ev.status + (ev.error ? ': ' + ev.error : '');
          t.el.append(s);
        }
        running = null;
        setState(null);
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
    if (settling) return;
    settling = true;
    setTimeout(() => {
      settling = false;
      // Seqs start at 1 and only grow, so applied === lastSeq says every
      // event was shown exactly once (the tests read these).
      document.body.dataset.lastSeq = String(lastSeq);
      document.body.dataset.applied = String(applied);
      if (stick) window.scrollTo(0, document.body.scrollHeight);
    }, 0);
  }

  function itemLine(turnId, item) {
    const t = turnOf(turnId);
    let el = t.items.get(item.id);
    if (!el || !el.line) {
      const line = document.createElement('div');
      line.className = 'item';
      t.el.append(line);
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
    const next = /(?:^#|&)k=([^&]+)/.exec(location.hash);
    if (!next) return;
    try { sessionStorage.setItem(tokenKey, decodeURIComponent(next[1])); } catch (e) { /* reload keeps nothing */ }
    history.replaceState(null, '', location.pathname + location.search);
    location.reload();
  });

  connect();
})();
