/*
 * rum-bridge browser loader (/rum.js): measures what real users experience and sends it to the
 * bridge as native beacons (docs/beacon-format.md).
 *
 *   <script src="https://rum.example.com/rum.js?key=pk_shop_web" data-app="pk_shop_web"
 *           data-propagate="https://api.example.com/" async></script>
 *
 * Measures: navigation and resource timing, the web vitals (LCP, INP, CLS, FCP, TTFB, defined
 * exactly as Google's web-vitals library defines them), interactions, fetch and XHR calls (with
 * W3C trace context), errors and unhandled rejections, SPA route changes and bfcache restores.
 *
 * Rules it keeps: no dependencies; nothing but observers and listeners before `load`; never
 * throws into the page (every entry point is guarded); a beacon body stays under the 64 KiB
 * keepalive quota. Built into rum.min.js by scripts/build-loader.sh (terser); the daemon serves
 * that file. Tests (loader/test) run this source in a vm with a `RB_TEST` hook, which the build
 * defines as `false` so the hook disappears from rum.min.js.
 */
(() => {
  'use strict';

  const VERSION = '0.1.0';
  /** Largest beacon body in bytes: the keepalive quota is 64 KiB, shared by all in flight. */
  const LIMIT = 6e4;
  /** Resource entries sent with the page load: the largest first, up to this many bytes. */
  const RES_BYTES = 32e3;
  const RES_MAX = 100;
  /** Session rotation: 30 min without activity, 4 h in all. */
  const IDLE_MS = 18e5;
  const MAX_AGE_MS = 144e5;
  /** A batch is sent this long after its first event, or when it holds this many events. */
  const FLUSH_MS = 5e3;
  const FLUSH_COUNT = 50;
  /** Errors reported per page view (an error in a render loop must not flood the bridge). */
  const MAX_ERRORS = 50;
  /** An interaction stays the parent of new calls for this long after its last activity. */
  const ACTIVE_MS = 1e3;
  /** INP: web-vitals' event durationThreshold, and the number of candidates it keeps. */
  const INP_THRESHOLD = 40;
  const INP_KEEP = 10;
  /** A traceparent in a Server-Timing value: `traceparent;desc="00-…"` or `trace;desc=…`. */
  const SERVER_TIMING_TP =
    /(?:^|,)\s*trace(?:parent)?\s*;[^,]*?desc\s*=\s*"?([\da-f]{2}-[\da-f]{32}-[\da-f]{16}-[\da-f]{2})/;
  /**
   * The app's sample rate, replaced by the bridge in the script it serves for an app key
   * (src/receive/loader.rs): keep it the only "rb:rate=" string.
   */
  const SERVED_RATE = 'rb:rate=1';
  /** A W3C traceparent (lowercase hex); group 1 is the trace id. */
  const TRACEPARENT = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/;

  // ---- Pure helpers (unit-tested through the RB_TEST hook) ----

  /** `n` random bytes as lowercase hex, never all zeros (W3C trace and span ids). */
  const hex = (n) => {
    let s;
    do {
      s = Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) =>
        (b | 256).toString(16).slice(1),
      ).join('');
    } while (!/[^0]/.test(s));
    return s;
  };

  /** W3C traceparent; the sampled flag says whether this session is recorded. */
  const traceparent = (trace, span, sampled) => `00-${trace}-${span}-0${sampled ? 1 : 0}`;

  /**
   * The traceparent in a Server-Timing header value, or in an entry's `serverTiming` list
   * (PerformanceServerTiming objects), if any.
   */
  const serverTimingTp = (value) =>
    (typeof value == 'string'
      ? value
      : Array.from(value || [], (e) => `${e.name};desc="${e.description}"`).join()
    ).match(SERVER_TIMING_TP)?.[1];

  /**
   * The `data-propagate` prefixes as absolute URLs: `https://api.example.com` becomes
   * `https://api.example.com/`, so it cannot match `https://api.example.com.evil.net/`.
   */
  const parsePrefixes = (list, base) =>
    (list || '')
      .split(',')
      .filter((p) => p.trim())
      .map((p) => new URL(p.trim(), base).href);

  /** Whether `url` may receive our traceparent: same origin, or under a data-propagate prefix. */
  const mayPropagate = (url, origin, prefixes) =>
    url.origin == origin || prefixes.some((p) => url.href.startsWith(p));

  /**
   * The session id, rotated after IDLE_MS without activity or MAX_AGE_MS in all. Stored as
   * `id.start.last` through `get`/`set` (localStorage, or memory when storage is blocked).
   */
  const session = (get, set, now) => {
    let [id, start, last] = (get() || '').split('.');
    // Written so that a damaged value (NaN times) starts a new session too.
    if (!(id && now - last <= IDLE_MS && now - start <= MAX_AGE_MS)) {
      id = hex(16);
      start = now;
    }
    set(`${id}.${start}.${now}`);
    return id;
  };

  /**
   * The session sampling decision, computed identically by the bridge (docs/sampling.md,
   * src/process/sampling.rs): the FNV-1a 32 hash of the id's UTF-16 code units (its bytes, for
   * the loader's hex ids), kept when below rate * 2^32.
   */
  const inSample = (sid, rate, h = 2166136261, i = 0) => {
    while (i < sid.length) h = Math.imul(h ^ sid.charCodeAt(i++), 16777619) >>> 0;
    return h < rate * 2 ** 32;
  };

  /** Byte length of a string as UTF-8. */
  const bytes = (s) => new Blob([s]).size;

  /**
   * Packs serialized events into beacon bodies of at most `limit` bytes. `head` is the beacon
   * JSON up to and including `"ev":[`. An event too large for a beacon of its own is dropped.
   */
  const pack = (head, events, limit) => {
    const bodies = [];
    const base = bytes(head) + 2;
    let batch = [];
    let size = base;
    for (const e of events) {
      const n = bytes(e) + 1;
      if (base + n > limit) continue;
      if (size + n > limit) {
        bodies.push(batch);
        batch = [];
        size = base;
      }
      batch.push(e);
      size += n;
    }
    if (batch.length) bodies.push(batch);
    return bodies.map((b) => `${head + b.join()}]}`);
  };

  /**
   * INP candidates exactly as web-vitals keeps them: the INP_KEEP longest interactions by
   * interactionId (plus the first input, which is always reported), and the p98 estimate: the
   * candidate at index min(len - 1, floor(interactionCount / 50)).
   */
  const inpTracker = () => {
    let list = [];
    const byId = new Map();
    // Recent entries of any kind: the frame of an interaction may hold other events too.
    const seen = [];
    return {
      seen,
      add(e) {
        if (seen.push(e) > 64) seen.shift();
        const id = e.interactionId;
        if (!(id || e.entryType == 'first-input')) return;
        let it = byId.get(id);
        if (!it && list.length >= INP_KEEP && e.duration <= list[list.length - 1].latency) return;
        if (!it) {
          it = { id, latency: e.duration, entries: [e], all: [] };
          byId.set(id, it);
          list.push(it);
        } else if (e.duration > it.latency) {
          it.entries = [e];
          it.latency = e.duration;
        } else if (e.duration == it.latency && e.startTime == it.entries[0].startTime) {
          it.entries.push(e);
        }
        it.all.push(e);
        it.target ||= selector(e.target);
        list.sort((a, b) => b.latency - a.latency);
        for (const gone of list.splice(INP_KEEP)) byId.delete(gone.id);
      },
      pick: (count) => list[Math.min(list.length - 1, Math.floor(count / 50))],
    };
  };

  /**
   * INP attribution as web-vitals computes it: the input delay, processing and presentation of
   * the interaction's entries presented in the same frame (render times within 8 ms).
   */
  const inpAttribution = (it, seen) => {
    const first = it.entries[0];
    const paint = first.startTime + first.duration;
    const frame = [...it.all, ...seen].filter((e) => Math.abs(e.startTime + e.duration - paint) <= 8);
    const start = Math.min(...frame.map((e) => e.processingStart));
    const next = Math.max(paint, start);
    const end = Math.min(Math.max(...frame.map((e) => e.processingEnd)), next);
    return {
      interactionTarget: it.target,
      interactionType: first.name.startsWith('key') ? 'keyboard' : 'pointer',
      interactionTime: first.startTime,
      nextPaintTime: next,
      inputDelay: start - first.startTime,
      processingDuration: end - start,
      presentationDelay: next - end,
    };
  };

  /**
   * CLS as web-vitals computes it: shifts without recent input grouped into session windows
   * (< 1 s between shifts, < 5 s in all); the value is the largest window, updated after each
   * batch of entries.
   */
  const clsTracker = () => {
    let value = 0;
    let windowValue = 0;
    let window = [];
    let entries = [];
    return {
      add(list) {
        for (const e of list) {
          if (e.hadRecentInput) continue;
          const first = window[0];
          const last = window[window.length - 1];
          if (windowValue && e.startTime - last.startTime < 1e3 && e.startTime - first.startTime < 5e3) {
            windowValue += e.value;
            window.push(e);
          } else {
            windowValue = e.value;
            window = [e];
          }
        }
        if (windowValue > value) {
          value = windowValue;
          entries = window;
        }
      },
      get value() {
        return value;
      },
      /** The largest shift of the worst window (web-vitals' CLS attribution). */
      get largest() {
        return entries.reduce((a, b) => (a && a.value > b.value ? a : b), 0);
      },
    };
  };

  /** A CSS selector for a node, as web-vitals builds it (ids stop the walk, at most 100 chars). */
  const selector = (node) => {
    let sel = '';
    try {
      while (node && node.nodeType != 9) {
        const part = node.id
          ? `#${node.id}`
          : [
              node.nodeType == 1 ? node.nodeName.toLowerCase() : node.nodeName.toUpperCase().replace(/^#/, ''),
              ...Array.from(node.classList || []).sort(),
            ].join('.');
        if (sel.length + part.length > 99) return sel || part;
        sel = sel ? `${part}>${sel}` : part;
        if (node.id) break;
        node = node.parentNode;
      }
    } catch {}
    return sel;
  };

  /** A timing entry's JSON without zeros, empty values and the entry type, times to 0.1 ms. */
  const compact = (entry) => {
    const o = entry.toJSON();
    for (const k in o) {
      const v = o[k];
      if (!v || k == 'entryType' || (typeof v == 'object' && !v.length)) delete o[k];
      else if (typeof v == 'number') o[k] = Math.round(v * 10) / 10;
    }
    return o;
  };

  /** Runs `f` and swallows what it throws: the page must never see our errors. */
  const guard =
    (f) =>
    (...args) => {
      try {
        return f(...args);
      } catch {}
    };

  // ---- The loader ----

  const init = () => {
    const w = window;
    const doc = document;
    const perf = performance;
    const loc = location;
    const nav = navigator;
    const now = () => perf.now();
    const entries = (type) => perf.getEntriesByType(type);
    const on = (target, type, f) => target.addEventListener(type, guard(f), true);

    const script = doc.currentScript || doc.querySelector('script[data-app]');
    const data = script.dataset;
    // Next to the script: /v1/rum on the bridge, also when a proxy mounts it under a prefix.
    // The bridge replaces this literal in the script it serves when [routes] moves the loader
    // or the native route (src/receive/loader.rs): keep it the only "v1/rum" string.
    const endpoint = new URL('v1/rum', script.src).href;
    const prefixes = parsePrefixes(data.propagate, loc.href);
    // The app's rate as the bridge served it; `data-sample-rate` overrides it (docs/sampling.md).
    const rate = parseFloat(data.sampleRate);
    const sampleRate = rate >= 0 ? rate : +SERVED_RATE.slice(8);
    const baggage = data.baggage == 'session';
    const send = w.fetch;

    // Session, with storage that may be blocked (then the session lives in memory).
    let stored;
    const storage = [
      () => {
        try {
          return localStorage.rb_s;
        } catch {}
        return stored;
      },
      (v) => {
        stored = v;
        try {
          localStorage.rb_s = v;
        } catch {}
      },
    ];
    let sid;
    let sampled;
    const touch = () => {
      sid = session(...storage, Date.now());
      sampled = inSample(sid, sampleRate);
    };
    touch();

    // Page view context.
    const navEntry = () => {
      const n = entries('navigation')[0];
      if (n && n.responseStart > 0 && n.responseStart < now()) return n;
    };
    const activation = () => navEntry()?.activationStart || 0;
    const hardNav = entries('navigation')[0];
    const serverTp =
      doc.querySelector('meta[name=traceparent]')?.content.match(TRACEPARENT)?.[0] ||
      serverTimingTp(hardNav?.serverTiming);
    let navigationType =
      doc.prerendering || activation() > 0
        ? 'prerender'
        : doc.wasDiscarded
          ? 'restore'
          : hardNav?.type.replace(/_/g, '-') || 'navigate';
    let referrer = doc.referrer;
    let pageUrl;
    let pvid;
    let pageTp;
    let load;
    let user;
    let consent;
    let errors;
    // Vitals measure the document, not the SPA route: they restart only on a bfcache restore.
    let vitalsId;
    let reported = {};
    let loading = 1;
    let events = [];
    let timer;

    /** A new page view; only the first one is under the server span that rendered the page. */
    const newView = (tp) => {
      pageUrl = loc.href;
      pvid = hex(8);
      pageTp = tp;
      load = { trace: tp?.match(TRACEPARENT)[1] || hex(16), span: hex(8) };
      errors = 0;
    };
    newView(serverTp);
    vitalsId = pvid;

    const flush = () => {
      clearTimeout(timer);
      timer = 0;
      if (!events.length) return;
      const head = JSON.stringify({
        v: 1,
        k: data.app,
        sid,
        pvid,
        url: pageUrl,
        ref: referrer,
        br: { lang: nav.language, ...nav.userAgentData?.toJSON() },
        uid: user,
        sdk: { name: 'rum-bridge-js', version: VERSION },
        serverTp: pageTp,
        load,
        t0: perf.timeOrigin,
        sent: Date.now(),
        consent,
        // The decision the traceparent flags told the backend: the bridge keeps to it.
        smp: sampled,
        ev: [],
      }).slice(0, -2);
      // An event that cannot be serialized (track() attributes with a cycle) is dropped alone.
      const list = events.map(guard((e) => JSON.stringify(e))).filter((e) => e);
      events = [];
      for (const body of pack(head, list, LIMIT)) {
        // A string body goes out as text/plain: no CORS preflight.
        nav.sendBeacon?.(endpoint, new Blob([body], { type: 'text/plain' })) ||
          send?.(endpoint, { method: 'POST', body, keepalive: true }).catch(() => {});
      }
    };

    const push = (event) => {
      touch();
      // Of an unsampled session only errors and vitals go out (the bridge keeps errors and poor
      // vitals, and every vital feeds the metrics).
      if (!sampled && event.type != 'error' && event.type != 'vital') return;
      events.push(event);
      if (events.length >= FLUSH_COUNT) flush();
      else timer ||= setTimeout(guard(flush), FLUSH_MS);
    };

    // ---- Interactions: the span that is the parent of the calls it starts ----

    let current;
    const recent = [];
    const active = () => current && (current.calls || now() - current.last < ACTIVE_MS) && current;
    /** Ids of the active span, for errors, logs and custom events. */
    const activeIds = () => {
      const a = active();
      return a ? { trace: a.ev.trace, span: a.ev.span } : {};
    };
    const report = (it) => {
      if (!it.sent) push((it.sent = it.ev));
    };
    const onInput = (e) => {
      const start = e.timeStamp;
      current = {
        ev: { type: 'interaction', name: e.type, target: selector(e.target), start, trace: hex(16), span: hex(8) },
        calls: 0,
        last: now(),
      };
      const it = current;
      recent.push(it);
      if (recent.length > 20) recent.shift();
      // Clicks are always spans; key presses only when they start a call or are slow.
      if (e.type == 'click') report(it);
      // Until the event timing entry tells the exact duration: the next frame.
      requestAnimationFrame(() => setTimeout(() => (it.ev.dur ??= now() - start)));
    };
    on(w, 'click', onInput);
    on(w, 'keydown', onInput);

    // ---- fetch and XHR ----

    /** Starts a call; returns its traceparent and the function that reports it when it ends. */
    const startCall = (method, url, initiator) => {
      const parent = active() || (loading && { ev: load });
      const ev = {
        type: 'http',
        method: method.toUpperCase(),
        url: url.href,
        start: now(),
        initiator,
        trace: parent ? parent.ev.trace : hex(16),
        span: hex(8),
        // `parent` may be 0 or false (no active span, the load is over): `?.` twice.
        parent: parent?.ev?.span,
      };
      if (parent?.calls >= 0) {
        parent.calls++;
        report(parent);
      }
      const to = mayPropagate(url, loc.origin, prefixes);
      return {
        tp: to && traceparent(ev.trace, ev.span, sampled),
        bg: to && baggage && `session.id=${sid}`,
        end: guard((status, timing, error) => {
          ev.dur = now() - ev.start;
          ev.status = status;
          ev.serverTp = serverTimingTp(timing);
          ev.error = status ? undefined : error || 'network';
          if (parent?.calls) {
            parent.calls--;
            parent.last = now();
          }
          push(ev);
        }),
      };
    };
    const httpUrl = (u) => {
      const url = new URL(u, loc.href);
      if (/^http/.test(url.protocol)) return url;
    };

    if (send) {
      w.fetch = function (input, init) {
        let call;
        try {
          const req = input instanceof Request && input;
          const url = httpUrl(req ? req.url : input);
          if (url) {
            call = startCall(init?.method || req.method || 'GET', url, 'fetch');
            if (call.tp) {
              const headers = new Headers(init?.headers || req.headers);
              headers.set('traceparent', call.tp);
              if (call.bg) headers.append('baggage', call.bg);
              init = { ...init, headers };
            }
          }
        } catch {}
        const result = send(input, init);
        call &&
          result.then(
            (r) => call.end(r.status, r.headers.get('server-timing')),
            (e) => call.end(0, 0, e?.name == 'AbortError' ? 'abort' : 0),
          );
        return result;
      };
    }

    const xhr = XMLHttpRequest.prototype;
    const { open, send: xhrSend } = xhr;
    const xhrCalls = new WeakMap();
    xhr.open = function (method, url) {
      try {
        xhrCalls.set(this, [method, httpUrl(url)]);
      } catch {}
      return open.apply(this, arguments);
    };
    xhr.send = function () {
      try {
        const [method, url] = xhrCalls.get(this) || [];
        if (url) {
          const call = startCall(method, url, 'xhr');
          let error;
          if (call.tp) this.setRequestHeader('traceparent', call.tp);
          if (call.bg) this.setRequestHeader('baggage', call.bg);
          for (const type of ['abort', 'timeout']) this.addEventListener(type, () => (error = type));
          // getAllResponseHeaders lists only the exposed headers, without console warnings.
          this.addEventListener('loadend', () =>
            call.end(this.status, this.getAllResponseHeaders().match(/^server-timing:(.*)$/im)?.[1], error),
          );
        }
      } catch {}
      return xhrSend.apply(this, arguments);
    };

    // ---- Errors and the API ----

    const cut = (s) => s && String(s).slice(0, 4e3);
    const error = (x, message) => {
      if (errors++ < MAX_ERRORS) {
        push({
          type: 'error',
          time: now(),
          name: x?.name || 'Error',
          message: cut(x?.message || message || String(x)),
          stack: cut(x?.stack),
          ...activeIds(),
        });
      }
    };
    on(w, 'error', (e) => e.message && error(e.error, e.message));
    on(w, 'unhandledrejection', (e) => error(e.reason));

    w.rumBridge = {
      track: guard((name, attrs) => push({ type: 'custom', time: now(), name: String(name), attrs, ...activeIds() })),
      setUser: guard((id) => (user = id == null ? undefined : String(id))),
      setConsent: guard((categories) => (consent = [].concat(categories ?? []).map(String))),
    };

    // ---- Web vitals ----

    const vital = (name, value, attribution, navigationStartTime) => {
      const prev = reported[name];
      if (value < 0 || value === prev) return;
      reported[name] = value;
      // A web-vitals Metric without `rating`: the bridge rates with Google's thresholds.
      push({
        type: 'vital',
        name,
        value,
        delta: value - (prev || 0),
        id: `${vitalsId}-${name}`,
        navigationType,
        navigationStartTime,
        attribution,
      });
    };
    const observe = (type, f, opts) => {
      if (PerformanceObserver.supportedEntryTypes.includes(type)) {
        const po = new PerformanceObserver(guard((list) => f(list.getEntries())));
        po.observe({ type, buffered: true, ...opts });
        return po;
      }
    };
    const ttfb = () => Math.max((navEntry()?.responseStart || 0) - activation(), 0);
    /** Runs `f` when the main thread is idle (at most 1 s), or at once when the page is hidden. */
    const idle = (f) => {
      let done;
      const once = () => done || ((done = 1), f());
      if (doc.visibilityState == 'hidden') once();
      else {
        on(w, 'visibilitychange', once);
        (w.requestIdleCallback || setTimeout)(guard(once), { timeout: 1e3 });
      }
    };

    // When the page was first hidden: later paints are not LCP or FCP candidates.
    const initialHidden = () => (doc.visibilityState == 'hidden' && !doc.prerendering ? 0 : 1 / 0);
    let hiddenAt =
      entries('visibility-state').find((e) => e.name == 'hidden' && e.startTime >= activation())
        ?.startTime ?? initialHidden();

    // FCP, and the paint times of the page load (`firstPaint`, `firstContentfulPaint`).
    const paints = {};
    observe('paint', (list) => {
      for (const e of list) {
        const fcp = e.name == 'first-contentful-paint';
        paints[fcp ? 'firstContentfulPaint' : 'firstPaint'] = e.startTime;
        if (fcp && e.startTime < hiddenAt) {
          const value = Math.max(e.startTime - activation(), 0);
          vital('FCP', value, { timeToFirstByte: ttfb(), firstByteToFCP: value - ttfb() });
        }
      }
    });

    // LCP: the last candidate before the first input or until hidden.
    let lcp;
    let lcpDone;
    const lcpObserver = observe('largest-contentful-paint', (list) => {
      const e = list[list.length - 1];
      if (e.startTime < hiddenAt) {
        lcp = { value: Math.max(e.startTime - activation(), 0), e, target: e.element ? selector(e.element) : e.id && `#${e.id}` };
      }
    });
    const finishLcp = () => {
      if (lcpDone) return;
      lcpDone = 1;
      lcpObserver?.disconnect();
      if (!lcp) return;
      const { value, e, target } = lcp;
      const start = activation();
      const first = ttfb();
      const res = e.url && entries('resource').find((r) => r.name == e.url);
      const requestStart = Math.max(first, res ? (res.requestStart || res.startTime) - start : 0);
      const responseEnd = Math.min(value, Math.max(requestStart, res ? res.responseEnd - start : 0));
      vital('LCP', value, {
        target,
        url: e.url || undefined,
        timeToFirstByte: first,
        resourceLoadDelay: requestStart - first,
        resourceLoadDuration: responseEnd - requestStart,
        elementRenderDelay: value - responseEnd,
      });
    };
    for (const type of ['keydown', 'click', 'visibilitychange']) {
      on(w, type, (e) => e.isTrusted && !lcpDone && idle(finishLcp));
    }

    // CLS: reported when the page is hidden, once FCP was.
    let cls = clsTracker();
    const clsObserver = observe('layout-shift', (list) => cls.add(list));

    // INP, and the exact duration of our interaction spans.
    let inp = inpTracker();
    let countBase = 0;
    let minId = 1 / 0;
    let maxId = 0;
    const interactionCount = () => (perf.interactionCount ?? (maxId && (maxId - minId) / 7 + 1)) - countBase;
    if (!('interactionCount' in perf)) {
      observe(
        'event',
        (list) => {
          for (const e of list) {
            if (e.interactionId) {
              minId = Math.min(minId, e.interactionId);
              maxId = Math.max(maxId, e.interactionId);
            }
          }
        },
        { durationThreshold: 0 },
      );
    }
    // web-vitals reports INP only where event entries carry interaction ids.
    const inpSupported = 'interactionId' in (w.PerformanceEventTiming?.prototype || {});
    const onEvents = (list) => {
      for (const e of list) {
        inp.add(e);
        const it = recent.find((i) => i.ev.start == e.startTime && i.ev.name == e.name);
        if (it) {
          Object.assign(it.ev, {
            dur: e.duration,
            inputDelay: e.processingStart - e.startTime,
            processingDuration: e.processingEnd - e.processingStart,
            presentationDelay: Math.max(e.startTime + e.duration - e.processingEnd, 0),
          });
          // Slow (over the event observer's threshold; `first-input` entries are not).
          if (e.entryType == 'event') report(it);
        }
      }
    };
    const eventObservers = [
      observe('event', onEvents, { durationThreshold: INP_THRESHOLD }),
      observe('first-input', onEvents),
    ];

    /** The page is going away or hidden: final LCP, current CLS and INP, send everything. */
    const hidden = () => {
      finishLcp();
      if (clsObserver) cls.add(clsObserver.takeRecords());
      if (reported.FCP != null) {
        const big = cls.largest;
        const source = big && (big.sources?.find((s) => s.node?.nodeType == 1) || big.sources?.[0]);
        vital(
          'CLS',
          cls.value,
          big
            ? {
                largestShiftTarget: selector(source?.node) || undefined,
                largestShiftTime: big.startTime,
                largestShiftValue: big.value,
              }
            : undefined,
        );
      }
      for (const po of eventObservers) po && onEvents(po.takeRecords());
      const it = inpSupported && inp.pick(interactionCount());
      if (it) vital('INP', it.latency, inpAttribution(it, inp.seen));
      flush();
    };
    on(doc, 'visibilitychange', (e) => {
      if (doc.visibilityState == 'hidden') {
        hiddenAt = Math.min(hiddenAt, e.timeStamp);
        hidden();
      }
    });
    on(w, 'pagehide', hidden);

    // ---- The page load: after `load`, once loadEventEnd is set ----

    const pageLoad = () => {
      const entry = entries('navigation')[0];
      if (entry) {
        const nav = { ...compact(entry), ...paints };
        const res = [];
        let size = 0;
        for (const r of entries('resource').sort((a, b) => b.duration - a.duration)) {
          if (r.initiatorType == 'beacon' || r.name.startsWith(endpoint) || res.length >= RES_MAX) continue;
          const json = compact(r);
          size += JSON.stringify(json).length;
          if (size > RES_BYTES) break;
          res.push(json);
        }
        push({ type: 'page_load', nav, res });
      }
      if (navEntry()) {
        const start = activation();
        const value = ttfb();
        const at = (t) => Math.max(t - start, 0);
        const wait = at(entry.workerStart || entry.fetchStart);
        const dns = at(entry.domainLookupStart);
        const connect = at(entry.connectStart);
        const connected = at(entry.connectEnd);
        vital('TTFB', value, {
          waitingDuration: wait,
          cacheDuration: dns - wait,
          dnsDuration: connect - dns,
          connectionDuration: connected - connect,
          requestDuration: value - connected,
        });
      }
      loading = 0;
      flush();
    };
    const afterLoad = guard(() => setTimeout(guard(pageLoad)));
    if (doc.readyState == 'complete') afterLoad();
    else on(w, 'load', afterLoad);

    // ---- New page views: SPA route changes and bfcache restores ----

    /** Sends what belongs to the old page view, then starts a new one with a page_load event. */
    const switchView = (type, start) => {
      flush();
      referrer = pageUrl;
      newView();
      push({ type: 'page_load', nav: { name: pageUrl, type, startTime: start } });
    };
    // A route change during the load only renames the page: the page load is still to come.
    const route = () => loc.href != pageUrl && (loading ? (pageUrl = loc.href) : switchView('soft_navigation', now()));
    for (const method of ['pushState', 'replaceState']) {
      const original = history[method];
      history[method] = function () {
        const result = original.apply(this, arguments);
        guard(route)();
        return result;
      };
    }
    on(w, 'popstate', route);

    on(w, 'pageshow', (e) => {
      if (!e.persisted) return;
      const start = e.timeStamp;
      navigationType = 'back-forward-cache';
      switchView('back_forward_cache', start);
      vitalsId = pvid;
      reported = {};
      setTimeout(() => (hiddenAt = initialHidden()));
      lcpDone = 1;
      cls = clsTracker();
      inp = inpTracker();
      countBase += interactionCount();
      vital('TTFB', 0, undefined, start);
      requestAnimationFrame(() =>
        requestAnimationFrame(
          guard(() => {
            const value = now() - start;
            vital('FCP', value, undefined, start);
            vital('LCP', value, undefined, start);
          }),
        ),
      );
    });
  };

  // The build replaces RB_TEST with false, so rum.min.js always starts the loader.
  typeof RB_TEST == 'function'
    ? RB_TEST({ hex, traceparent, serverTimingTp, parsePrefixes, mayPropagate, session, inSample, pack, inpTracker, inpAttribution, clsTracker, selector })
    : guard(init)();
})();
