// Unit tests of the loader's pure logic. rum.js runs in a vm context that defines the
// `RB_TEST` hook, which receives the internals instead of starting the loader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

const source = readFileSync(new URL('../rum.js', import.meta.url), 'utf8');

/** The loader's internals, with `crypto` replaceable per test. */
function load(crypto = globalThis.crypto) {
  let internals;
  vm.runInNewContext(source, {
    RB_TEST: (x) => (internals = x),
    crypto,
    Blob,
    URL,
  });
  return internals;
}

const rb = load();
const TRACE = '4d1c7e5a9b0f4e2a8c3d6b7a1f2e3d4c';
const SPAN = 'a1b2c3d4e5f60718';
const TP = `00-${TRACE}-${SPAN}-01`;

test('ids are lowercase hex of the right length', () => {
  for (let i = 0; i < 200; i++) {
    assert.match(rb.hex(16), /^[0-9a-f]{32}$/);
    assert.match(rb.hex(8), /^[0-9a-f]{16}$/);
  }
  assert.notEqual(rb.hex(16), rb.hex(16));
});

test('an all-zero id is never returned', () => {
  let calls = 0;
  const fake = {
    getRandomValues(a) {
      calls++;
      if (calls > 1) a.fill(7);
      return a;
    },
  };
  assert.equal(load(fake).hex(8), '07'.repeat(8));
  assert.equal(calls, 2);
});

test('traceparent has the W3C format and carries the sampling decision', () => {
  assert.equal(rb.traceparent(TRACE, SPAN, true), TP);
  assert.equal(rb.traceparent(TRACE, SPAN, false), `00-${TRACE}-${SPAN}-00`);
  assert.match(rb.traceparent(rb.hex(16), rb.hex(8), 1), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
});

test('Server-Timing: traceparent and trace entries, in headers and entry lists', () => {
  const cases = [
    [`traceparent;desc="${TP}"`, TP],
    [`trace;desc=${TP}`, TP],
    [`cache;dur=2.1, db;dur=53, traceparent;dur=0;desc="${TP}"`, TP],
    [`traceparent ; desc = "${TP}", trace;desc="00-${'1'.repeat(32)}-${'2'.repeat(16)}-01"`, TP],
    ['cache;dur=2.1', undefined],
    [`xtraceparent;desc="${TP}"`, undefined],
    [`traceparentx;desc="${TP}"`, undefined],
    [`traceparent;desc="${TP.toUpperCase()}"`, undefined],
    [`traceparent;desc="00-${TRACE}-short-01"`, undefined],
    ['', undefined],
    [null, undefined],
    [undefined, undefined],
    [[{ name: 'cache', duration: 1, description: '' }, { name: 'traceparent', duration: 0, description: TP }], TP],
    [[{ name: 'trace', duration: 0, description: TP }], TP],
    [[{ name: 'db', duration: 0, description: TP }], undefined],
    [[], undefined],
  ];
  for (const [value, want] of cases) assert.equal(rb.serverTimingTp(value), want, JSON.stringify(value));
});

test('traceparent goes same-origin always, cross-origin only under a data-propagate prefix', () => {
  const origin = 'https://shop.example.com';
  const prefixes = rb.parsePrefixes(' https://api.example.com , https://cdn.example.com/api/,,', origin + '/p');
  assert.deepEqual([...prefixes], ['https://api.example.com/', 'https://cdn.example.com/api/']);
  const may = (u) => rb.mayPropagate(new URL(u, origin), origin, prefixes);
  assert.equal(may('/api/cart'), true);
  assert.equal(may('https://shop.example.com/x'), true);
  assert.equal(may('https://api.example.com/v1/cart'), true);
  assert.equal(may('https://cdn.example.com/api/x'), true);
  assert.equal(may('https://cdn.example.com/img/x.png'), false);
  assert.equal(may('https://api.example.com.evil.net/'), false);
  assert.equal(may('http://shop.example.com/x'), false, 'another scheme is another origin');
  assert.equal(may('https://tracker.example.org/'), false);
  assert.equal(rb.parsePrefixes(undefined, origin).length, 0);
});

test('session: kept while active, rotated after 30 min idle or 4 h in all', () => {
  let stored;
  const get = () => stored;
  const set = (v) => (stored = v);
  const t0 = 1_800_000_000_000;
  const min = 60_000;

  const first = rb.session(get, set, t0);
  assert.match(first, /^[0-9a-f]{32}$/);
  assert.equal(stored, `${first}.${t0}.${t0}`);
  assert.equal(rb.session(get, set, t0 + 29 * min), first, 'activity within 30 min keeps it');
  assert.equal(stored, `${first}.${t0}.${t0 + 29 * min}`);

  // Active every 20 minutes: still rotated once 4 h have passed since it started.
  let t = t0 + 29 * min;
  while (t + 20 * min < t0 + 240 * min) {
    t += 20 * min;
    assert.equal(rb.session(get, set, t), first);
  }
  const second = rb.session(get, set, t0 + 241 * min);
  assert.notEqual(second, first, 'max age');

  const idle = rb.session(get, set, t0 + 241 * min + 31 * min);
  assert.notEqual(idle, second, 'inactivity');

  stored = 'garbage';
  assert.notEqual(rb.session(get, set, t0), 'garbage');
});

test('sampling is per session and deterministic', () => {
  const ids = Array.from({ length: 2000 }, () => rb.hex(16));
  assert.ok(ids.every((id) => rb.inSample(id, 1)));
  assert.ok(ids.every((id) => !rb.inSample(id, 0)));
  const half = ids.filter((id) => rb.inSample(id, 0.5)).length;
  assert.ok(half > 850 && half < 1150, `${half} of 2000 at 0.5`);
  for (const id of ids.slice(0, 50)) assert.equal(rb.inSample(id, 0.3), rb.inSample(id, 0.3));
});

test('the sampling decision matches the shared vectors (the bridge checks the same table)', async () => {
  const { readFile } = await import('node:fs/promises');
  const url = new URL('../../tests/fixtures/sampling_vectors.json', import.meta.url);
  const { vectors } = JSON.parse(await readFile(url, 'utf8'));
  assert.ok(vectors.length >= 200);
  for (const [id, h] of vectors) {
    // Kept exactly when the id's place is below rate * 2^32: the boundary pins the hash.
    assert.equal(rb.inSample(id, (h + 1) / 2 ** 32), true, id);
    assert.equal(rb.inSample(id, h / 2 ** 32), false, id);
  }
});

test('beacons are split under the byte limit and keep every event that fits', () => {
  const head = JSON.stringify({ v: 1, k: 'pk', sid: 's', ev: [] }).slice(0, -2);
  const events = Array.from({ length: 300 }, (_, i) => JSON.stringify({ type: 'log', time: i, message: 'é'.repeat(i % 90) }));
  const limit = 2000;
  const bodies = rb.pack(head, events, limit);
  assert.ok(bodies.length > 1);
  const seen = [];
  for (const body of bodies) {
    assert.ok(Buffer.byteLength(body) <= limit, `${Buffer.byteLength(body)} bytes`);
    const beacon = JSON.parse(body);
    assert.equal(beacon.k, 'pk');
    seen.push(...beacon.ev.map((e) => e.time));
  }
  assert.deepEqual(seen, events.map((_, i) => i));
  // Bodies are filled: each but the last could not take the next event.
  for (let i = 0; i + 1 < bodies.length; i++) {
    const next = JSON.parse(bodies[i + 1]).ev[0];
    assert.ok(Buffer.byteLength(bodies[i]) + Buffer.byteLength(JSON.stringify(next)) + 1 > limit);
  }
});

test('an event larger than a beacon is dropped, the others are sent', () => {
  const head = '{"v":1,"ev":[';
  const big = JSON.stringify({ type: 'error', message: 'x'.repeat(5000) });
  const small = JSON.stringify({ type: 'custom', name: 'a' });
  const bodies = rb.pack(head, [small, big, small], 1000);
  assert.deepEqual([...bodies], [`{"v":1,"ev":[${small},${small}]}`]);
  assert.equal(rb.pack(head, [], 1000).length, 0);
});

/** An event timing entry. */
const ev = (interactionId, duration, startTime = interactionId * 100, extra = {}) => ({
  entryType: 'event',
  name: 'click',
  interactionId,
  duration,
  startTime,
  processingStart: startTime + 2,
  processingEnd: startTime + 10,
  ...extra,
});

test('INP: the longest interaction below 50 interactions, p98 above', () => {
  const inp = rb.inpTracker();
  assert.equal(inp.pick(0), undefined);
  [48, 120, 64, 200, 96].forEach((d, i) => inp.add(ev(i + 1, d)));
  assert.equal(inp.pick(5).latency, 200);
  assert.equal(inp.pick(49).latency, 200);
  assert.equal(inp.pick(50).latency, 120, 'second longest from 50 interactions');
  assert.equal(inp.pick(100).latency, 96);
  assert.equal(inp.pick(10_000).latency, 48, 'capped at the shortest candidate kept');
});

test('INP: entries of one interaction merge, its longest entry counts', () => {
  const inp = rb.inpTracker();
  inp.add(ev(7, 56, 1000, { name: 'pointerdown', processingStart: 1003, processingEnd: 1004 }));
  inp.add(ev(7, 104, 1020, { name: 'pointerup', processingStart: 1030, processingEnd: 1040 }));
  inp.add(ev(7, 104, 1020, { name: 'click', processingStart: 1041, processingEnd: 1090 }));
  inp.add(ev(0, 400, 900, { name: 'mouseover' }));
  const it = inp.pick(1);
  assert.equal(it.latency, 104);
  assert.deepEqual([...it.entries.map((e) => e.name)], ['pointerup', 'click']);
});

test('INP attribution: the breakdown of the entries presented in the same frame', () => {
  const inp = rb.inpTracker();
  // pointerdown was presented in an earlier frame (render time 1056, not ~1124): left out.
  inp.add(ev(7, 56, 1000, { name: 'pointerdown', processingStart: 1003, processingEnd: 1004 }));
  inp.add(ev(7, 104, 1020, { name: 'pointerup', processingStart: 1030, processingEnd: 1040 }));
  inp.add(ev(7, 104, 1020, { name: 'click', processingStart: 1041, processingEnd: 1090, target: { nodeType: 1, nodeName: 'BUTTON', id: 'buy', parentNode: null } }));
  const a = rb.inpAttribution(inp.pick(1), []);
  assert.deepEqual({ ...a }, {
    interactionTarget: '#buy',
    interactionType: 'pointer',
    interactionTime: 1020,
    nextPaintTime: 1124,
    inputDelay: 10,
    processingDuration: 60,
    presentationDelay: 34,
  });
  assert.equal(a.inputDelay + a.processingDuration + a.presentationDelay, 104, 'the parts add up to INP');

  const keys = rb.inpTracker();
  keys.add(ev(9, 48, 500, { name: 'keydown', processingStart: 510, processingEnd: 600 }));
  const k = rb.inpAttribution(keys.pick(1), keys.seen);
  assert.equal(k.interactionType, 'keyboard');
  // Processing past the paint time is capped at it.
  assert.equal(k.nextPaintTime, 548);
  assert.equal(k.processingDuration, 38);
  assert.equal(k.presentationDelay, 0);

  // A non-interaction event handled earlier in the same frame counts, as in web-vitals.
  const a2 = rb.inpAttribution(inp.pick(1), [...inp.seen, ev(0, 100, 1021, { name: 'pointerover', processingStart: 1025, processingEnd: 1026 })]);
  assert.equal(a2.inputDelay, 5);
  assert.equal(a2.processingDuration, 65);
});

test('INP: the first input counts even below the duration threshold', () => {
  const inp = rb.inpTracker();
  inp.add({ ...ev(0, 16), entryType: 'first-input', name: 'pointerdown' });
  assert.equal(inp.pick(1).latency, 16);
});

test('INP: only the 10 longest interactions are kept', () => {
  const inp = rb.inpTracker();
  for (let i = 1; i <= 30; i++) inp.add(ev(i, i * 8));
  // Candidates are 240 … 168; a shorter interaction does not enter.
  inp.add(ev(31, 40));
  assert.equal(inp.pick(0).latency, 240);
  assert.equal(inp.pick(9 * 50).latency, 168);
  assert.equal(inp.pick(20 * 50).latency, 168);
  // A known interaction that got longer is updated in place.
  inp.add(ev(25, 400, 2500));
  assert.equal(inp.pick(0).latency, 400);
});

/** A layout shift. */
const shift = (startTime, value, hadRecentInput = false) => ({ startTime, value, hadRecentInput, sources: [] });

test('CLS: session windows of shifts < 1 s apart and < 5 s long; the largest counts', () => {
  const cls = rb.clsTracker();
  assert.equal(cls.value, 0);
  assert.equal(cls.largest, 0);
  cls.add([shift(100, 0.05), shift(900, 0.05)]);
  assert.equal(cls.value, 0.1);
  cls.add([shift(2000, 0.02)]); // > 1 s after the last shift: a new window
  assert.equal(cls.value, 0.1);
  cls.add([shift(2500, 0.03), shift(3000, 0.04), shift(3500, 0.01, true)]);
  assert.ok(Math.abs(cls.value - 0.1) < 1e-12, 'the input-driven shift does not count');
  cls.add([shift(3900, 0.02)]); // window 2: 0.02 + 0.03 + 0.04 + 0.02
  assert.ok(Math.abs(cls.value - 0.11) < 1e-12);
  assert.equal(cls.largest.value, 0.04);
  // A window closes after 5 s even with shifts less than 1 s apart.
  const long = rb.clsTracker();
  for (let t = 0; t <= 6000; t += 500) long.add([shift(t, 0.01)]);
  assert.ok(Math.abs(long.value - 0.1) < 1e-12, `${long.value}`);
});

test('CLS: the value is updated after each batch, as web-vitals does', () => {
  // One batch holding a big window and the start of the next one: web-vitals compares only
  // the open window after the batch, so the value stays 0.
  const cls = rb.clsTracker();
  cls.add([shift(0, 0.3), shift(3000, 0.01)]);
  assert.equal(cls.value, 0.01);
});

/** A minimal element for the selector. */
const el = (name, { id = '', classes = [], parent = { nodeType: 9 } } = {}) => ({
  nodeType: 1,
  nodeName: name.toUpperCase(),
  id,
  classList: classes,
  parentNode: parent,
});

test('selectors are built as web-vitals builds them', () => {
  const body = el('body', { parent: el('html') });
  const main = el('main', { id: 'content', parent: body });
  const button = el('button', { classes: ['primary', 'btn'], parent: el('div', { classes: ['cart'], parent: main }) });
  assert.equal(rb.selector(button), '#content>div.cart>button.btn.primary');
  assert.equal(rb.selector(el('p', { parent: body })), 'html>body>p');
  assert.equal(rb.selector({ nodeType: 3, nodeName: '#text', parentNode: button }), '#content>div.cart>button.btn.primary>TEXT');
  assert.equal(rb.selector(null), '');
  const deep = el('span', { classes: ['x'.repeat(60)], parent: el('div', { classes: ['y'.repeat(60)], parent: body }) });
  assert.equal(rb.selector(deep), `span.${'x'.repeat(60)}`, 'at most 100 characters');
});
