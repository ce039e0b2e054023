import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grant } from '../../src/access/grant-store.ts';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';

// Real headless Chromium (Debian's), presenting a partner certificate through playwright's clientCertificates.
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p)) ?? process.env.CHROMIUM_PATH;
if (!CHROMIUM) console.warn('browser tests skipped: no chromium found. Install it with `apt-get install chromium` (or set CHROMIUM_PATH).');

describe.skipIf(!CHROMIUM)('live dashboard in Chromium', () => {
  let db: TestDatabase;
  let pki: TestPki;
  let gateway: Gateway;
  let viewer: CertAndKey;
  let browser: Browser;

  beforeAll(async () => {
    [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
    viewer = await pki.client('viewer');
    ({ gateway } = await startTestGateway(db.url, pki, {}, { grantAll: [] }));
    await grant(db.pool, 'viewer', 1);
    await grant(db.pool, 'viewer', 2);
    await insertReadings(db.pool, [
      { slu_id: 1, v1: 231, a1: 16.6, p1: 0.944, t: '2026-11-24 05:00:00' },
      { slu_id: 2, v1: 229, a1: 8.5, p1: 0.93 },
      { slu_id: 3, v1: 999, a1: 1, p1: 1 }, // not granted: must never show
    ]);
    browser = await chromium.launch({ executablePath: CHROMIUM as string, args: ['--no-sandbox'] });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
    await db?.drop();
    await pki?.close();
  });

  it('shows only granted SLUs, a reading inserted in PostgreSQL appears within a second, and a chart draws', async () => {
    const origin = `https://localhost:${gateway.port}`;
    const context = await browser.newContext({
      ignoreHTTPSErrors: true, // the test CA is not in Chromium's trust store; the client certificate is what matters here
      clientCertificates: [{ origin, cert: Buffer.from(viewer.certPem), key: Buffer.from(viewer.keyPem) }],
      viewport: { width: 1400, height: 800 },
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${origin}/cityxchange/`);
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 10_000 });
    await page.waitForSelector('tr[data-slu="2"]');
    expect(await page.$$eval('#slus tr', (trs) => trs.map((tr) => (tr as HTMLElement).dataset.slu))).toEqual(['1', '2']);
    expect(await page.textContent('#slus')).not.toContain('999');

    await insertReadings(db.pool, [{ slu_id: 2, v1: 237, a1: 9.25, p1: 0.97 }]);
    const t0 = Date.now();
    await page.waitForFunction(() => document.querySelector('tr[data-slu="2"]')?.textContent?.includes('237'), undefined, { timeout: 1000 });
    expect(Date.now() - t0).toBeLessThan(1000);

    // The gateway cuts the page's stream (as it does a slow consumer): the page resumes with its cursor, says so,
    // and shows a reading committed while it was away.
    for (const session of gateway.stream.sessions()) session.close('SLUICE_ERR_SLOW_CONSUMER', 'test: cut off');
    await insertReadings(db.pool, [{ slu_id: 1, v1: 244, a1: 12.5, p1: 0.91 }]);
    await page.waitForFunction(() => document.querySelector('#conn')?.textContent?.includes('resumed 1'), undefined, { timeout: 5000 });
    await page.waitForFunction(() => document.querySelector('tr[data-slu="1"]')?.textContent?.includes('244'), undefined, { timeout: 2000 });

    await page.click('tr[data-slu="1"]');
    await page.waitForSelector('#charts .uplot', { timeout: 5000 });
    expect(await page.$$eval('#charts .uplot', (els) => els.length)).toBe(3);
    await mkdir('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/dashboard.png', fullPage: true });
    expect(errors).toEqual([]);
    await context.close();
  }, 60_000);

  it('a browser without a grant gets the 403 JSON, not the page', async () => {
    const stranger = await pki.client('stranger');
    const origin = `https://localhost:${gateway.port}`;
    const context = await browser.newContext({ ignoreHTTPSErrors: true, clientCertificates: [{ origin, cert: Buffer.from(stranger.certPem), key: Buffer.from(stranger.keyPem) }] });
    const page = await context.newPage();
    const res = await page.goto(`${origin}/cityxchange/`);
    expect(res?.status()).toBe(403);
    expect(await page.textContent('body')).toContain('SLUICE_ERR_NO_GRANTS');
    await context.close();
  }, 30_000);

  it("a browser's EventSource reads /events with the client certificate and resumes by itself with Last-Event-ID", async () => {
    const origin = `https://localhost:${gateway.port}`;
    const context = await browser.newContext({ ignoreHTTPSErrors: true, clientCertificates: [{ origin, cert: Buffer.from(viewer.certPem), key: Buffer.from(viewer.keyPem) }] });
    const page = await context.newPage();
    await page.goto(`${origin}/cityxchange/`); // same origin: the page's CSP allows connect-src 'self'
    await page.evaluate(() => {
      const w = window as unknown as { got: number[]; opens: number };
      w.got = [];
      w.opens = 0;
      const es = new EventSource('/cityxchange/events?slu_id=2');
      es.onopen = () => w.opens++;
      es.addEventListener('readings', (e) => {
        for (const r of JSON.parse((e as MessageEvent<string>).data) as Array<{ v1: number }>) w.got.push(r.v1);
      });
    });
    await page.waitForFunction(() => (window as unknown as { opens: number }).opens === 1, undefined, { timeout: 5000 });
    await insertReadings(db.pool, [{ slu_id: 2, v1: 501 }]);
    await page.waitForFunction(() => (window as unknown as { got: number[] }).got.includes(501), undefined, { timeout: 5000 });
    // The gateway ends the stream; readings commit meanwhile; EventSource reconnects with Last-Event-ID.
    for (const session of gateway.stream.sessions()) session.close('SLUICE_ERR_SLOW_CONSUMER', 'test: cut off');
    await insertReadings(db.pool, [{ slu_id: 2, v1: 502 }, { slu_id: 2, v1: 503 }]);
    await page.waitForFunction(() => (window as unknown as { got: number[] }).got.includes(503), undefined, { timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 300));
    expect(await page.evaluate(() => (window as unknown as { got: number[] }).got.filter((v) => v > 500))).toEqual([501, 502, 503]);
    expect(await page.evaluate(() => (window as unknown as { opens: number }).opens)).toBe(2);
    await context.close();
  }, 30_000);

  it('range picker (last hour / day / custom) loads history through /time, exports the shown range as CSV, fits a phone', async () => {
    const ago = (s: number) => new Date(Date.now() - s * 1000).toISOString().replace('T', ' ').replace('Z', '');
    await insertReadings(db.pool, [
      { slu_id: 2, t: ago(30 * 60), v1: 611, a1: 6.5, p1: 0.95 },
      { slu_id: 2, t: ago(3 * 3600), v1: 612, a1: 6.25, p1: 0.94 },
      { slu_id: 2, t: ago(20 * 3600), v1: 613, a1: 6, p1: 0.93 },
    ]);
    const origin = `https://localhost:${gateway.port}`;
    const context = await browser.newContext({
      ignoreHTTPSErrors: true, acceptDownloads: true, timezoneId: 'Europe/Berlin',
      clientCertificates: [{ origin, cert: Buffer.from(viewer.certPem), key: Buffer.from(viewer.keyPem) }],
      viewport: { width: 1400, height: 900 },
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${origin}/cityxchange/`);
    await page.waitForSelector('#conn[data-state="live"]');
    expect(await page.textContent('#t-head')).toBe('time (Europe/Berlin)');
    await page.click('tr[data-slu="2"]');
    const readingsShown = async () => Number(((await page.textContent('#range-status')) ?? '').split(' ')[0]);
    await page.waitForFunction(() => /readings/.test(document.querySelector('#range-status')?.textContent ?? ''));
    const sixHours = await readingsShown();
    await page.selectOption('#range', '3600');
    await page.waitForFunction((n) => Number((document.querySelector('#range-status')?.textContent ?? '').split(' ')[0]) < n, sixHours);
    const hour = await readingsShown();
    await page.selectOption('#range', '86400');
    await page.waitForFunction((n) => Number((document.querySelector('#range-status')?.textContent ?? '').split(' ')[0]) > n, sixHours);
    const day = await readingsShown();
    expect(sixHours - hour).toBe(1); // the 3-hour-old reading is in 6 hours, not in the last hour
    expect(day - sixHours).toBe(1); // the 20-hour-old one only in the day

    // Custom: only the 20-hour-old reading, a closed range (not live).
    const local = (s: number) => {
      const d = new Date(Date.now() - s * 1000);
      return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    };
    await page.selectOption('#range', 'custom');
    await page.evaluate(([from, to]) => {
      (document.getElementById('range-from') as HTMLInputElement).value = from as string;
      (document.getElementById('range-to') as HTMLInputElement).value = to as string;
    }, [await page.evaluate(local, 21 * 3600), await page.evaluate(local, 19 * 3600)]);
    await page.click('#range-apply');
    await page.waitForFunction(() => (document.querySelector('#range-status')?.textContent ?? '') === '1 readings');

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
    const csv = await (await import('node:fs/promises')).readFile(await download.path(), 'utf8');
    const lines = csv.trim().split('\n');
    expect(lines[0]).toBe('slu_id,t,v1,v2,v3,a1,a2,a3,p1,p2,p3,k1,k2,k3');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/^2,\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6},613,,,6,,,0\.930000007,,,,,$/);
    await mkdir('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/dashboard-range.png', fullPage: true });

    // A phone: one column, nothing wider than the screen but the table itself (which scrolls).
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: 'test-artifacts/dashboard-phone.png', fullPage: true });
    expect(errors).toEqual([]);
    await context.close();
  }, 60_000);
});
