// Prometheus text exposition (parsed back line by line, as a scraper would) and the server's
// log formats (JSON lines, and the human line an operator reads on a terminal).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { histogramSamples, renderMetrics } from '../../src/server/metrics.ts';
import { createServerLog, formatHuman, formatJson } from '../../src/server/server-log.ts';

/** A strict reader of the exposition format: every sample line belongs to a declared family. */
function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const types = new Map<string, string>();
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  for (const line of text.slice(0, -1).split('\n')) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta !== null) { if (meta[1] === 'TYPE') types.set(meta[2], meta[3]); continue; }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+]+|\+Inf|-Inf|NaN)$/.exec(line);
    assert.ok(m !== null, `not a sample line: ${JSON.stringify(line)}`);
    const family = [...types.keys()].find((f) => m[1] === f || (types.get(f) === 'histogram' && /^(.*)_(bucket|sum|count)$/.exec(m[1])?.[1] === f));
    assert.ok(family !== undefined, `sample ${m[1]} has no # TYPE`);
    out.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return out;
}

describe('metrics', () => {
  it('renders counters, gauges and histograms a scraper can read', () => {
    const text = renderMetrics([
      { name: 'booty_runs_total', type: 'counter', help: 'Runs.', samples: [{ labels: { action: 'deploy', result: 'ok' }, value: 3 }, { labels: { action: 'deploy', result: 'failed' }, value: 1 }] },
      { name: 'booty_active', type: 'gauge', help: 'Active.\nsecond line', samples: [{ value: 2 }] },
      { name: 'booty_d_seconds', type: 'histogram', help: 'D.', samples: histogramSamples([5, 50, 500], [10, 100], { action: 'deploy' }) },
      { name: 'booty_odd', type: 'gauge', help: 'Odd labels.', samples: [{ labels: { v: 'a"b\\c\nd' }, value: 1 }] },
    ]);
    const m = parseExposition(text);
    assert.equal(m.get('booty_runs_total{action="deploy",result="ok"}'), 3);
    assert.equal(m.get('booty_active'), 2);
    assert.equal(m.get('booty_d_seconds_bucket{action="deploy",le="10"}'), 1);
    assert.equal(m.get('booty_d_seconds_bucket{action="deploy",le="100"}'), 2);
    assert.equal(m.get('booty_d_seconds_bucket{action="deploy",le="+Inf"}'), 3);
    assert.equal(m.get('booty_d_seconds_sum{action="deploy"}'), 555);
    assert.equal(m.get('booty_d_seconds_count{action="deploy"}'), 3);
    assert.ok(m.has('booty_odd{v="a\\"b\\\\c\\nd"}'), text);
    assert.match(text, /^# HELP booty_active Active\.\\nsecond line$/m);
  });
});

describe('server log', () => {
  it('human: the one-line form operators know', () => {
    assert.equal(formatHuman('info', 'GET /x.bty', { status: 200, bytes: 12, ms: 0, remote: '127.0.0.1', aborted: undefined, mac: 'aa-bb-cc-dd-ee-ff', gone: true, error: 'no such image "a b"' }),
      'booty server: GET /x.bty status=200 bytes=12 ms=0 remote=127.0.0.1 mac=aa-bb-cc-dd-ee-ff gone error="no such image \\"a b\\""');
    assert.equal(formatHuman('warn', 'reload', { errors: 1 }), 'booty server: warn: reload errors=1');
  });

  it('json: one object per line with time, level, msg and the fields', () => {
    const line = formatJson('info', 'GET /x', { status: 200, skipped: undefined, msg: 'not overwritten' }, new Date('2024-05-06T07:08:09.010Z'));
    assert.deepEqual(JSON.parse(line), { time: '2024-05-06T07:08:09.010Z', level: 'info', msg: 'GET /x', status: 200 });
    assert.ok(!line.includes('\n'));
  });

  it('auto: human on a TTY, JSON otherwise', () => {
    const got: string[] = [];
    createServerLog('auto', (l) => got.push(l), true).info('a', { k: 1 });
    createServerLog('auto', (l) => got.push(l), false).info('a', { k: 1 });
    assert.equal(got[0], 'booty server: a k=1');
    assert.equal(JSON.parse(got[1]).k, 1);
  });
});
