// amld's web view in headless Chromium (see web_view_test.sh):
//   node web_view_test.js URL FINISHED_RUN RUNNING_RUN STOP_FILE DOWNLOAD_DIR SWEEP [SCREENSHOT_DIR]
// URL is `aml ui`'s link. Checks, in order: no token and a wrong token are
// 401; the runs table shows the finished and the running run; the running
// run's log grows on its page and its loss chart gains points, without a
// reload; a second run overlays the chart; a download from the files tab has
// the right bytes; the running run ends as COMPLETED on the page; a sweep's
// page lists its children with their hyperparameters, marks the best one
// and overlays their curves. Prints the
// page's load time and the delay from a run.log line to its point in the
// chart.
'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const puppeteer = require('puppeteer-core');

const [url, finished, running, stopFile, downloads, sweep, shots] = process.argv.slice(2);
const base = url.replace(/\?token=.*$/, '');
const TIMEOUT = 60000;

function step(msg) { console.log(`web_view_test: ${msg}`); }

async function waitFor(page, fn, what, ...args) {
  try {
    return await page.waitForFunction(fn, { timeout: TIMEOUT, polling: 50 }, ...args);
  } catch (e) {
    throw new Error(`timed out waiting for ${what}`);
  }
}

async function main() {
  // No token, a wrong one: 401, before any page or endpoint is served.
  for (const u of [base, `${base}api/runs`, `${base}static/app.js`, `${base}?token=wrong`, `${base}api/runs?token=${'0'.repeat(64)}`]) {
    const res = await fetch(u, { redirect: 'manual' });
    assert.strictEqual(res.status, 401, `${u} without a valid token answered ${res.status}`);
  }
  const wrongCookie = await fetch(`${base}api/runs`, { headers: { Cookie: `amld_${new URL(base).port}=nope` } });
  assert.strictEqual(wrongCookie.status, 401);
  step('no token and wrong tokens get 401');

  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1400,900'],
    defaultViewport: { width: 1400, height: 900 },
  });
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error(`page error: ${e.message}`));

    // The link: the token becomes a cookie and leaves the address bar.
    const t0 = Date.now();
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    assert(!page.url().includes('token='), `the token stayed in the address: ${page.url()}`);
    await waitFor(page, (a, b) => document.querySelector(`#runs tr[data-run="${a}"]`) && document.querySelector(`#runs tr[data-run="${b}"]`),
      'both runs in the runs table', finished, running);
    const loadMs = Date.now() - t0;
    const statusOf = (id) => page.$eval(`#runs tr[data-run="${id}"] .status`, (e) => e.textContent);
    assert.strictEqual(await statusOf(finished), 'COMPLETED');
    await waitFor(page, (b) => document.querySelector(`#runs tr[data-run="${b}"] .status`).textContent === 'RUNNING',
      'the running run shown as RUNNING', running);
    await waitFor(page, (a) => {
      const row = document.querySelector(`#runs tr[data-run="${a}"]`);
      return row && [...row.querySelectorAll('td.num')].some((td) => td.textContent === '0.125');
    }, 'the finished run\'s last loss (1/8) as a column', finished);
    step(`runs table shows the finished and the running run (page ready in ${loadMs} ms)`);
    if (shots) await page.screenshot({ path: path.join(shots, 'web-runs.png') });

    // The running run's page: its chart gains points and its log grows.
    await page.goto(`${base}#/run/${running}`, { waitUntil: 'domcontentloaded' });
    await waitFor(page, () => window.amldCharts.loss && window.amldCharts.loss.data.datasets.length > 0, 'the loss chart');
    const points = () => page.evaluate(() => window.amldCharts.loss.data.datasets[0].data.length);
    const before = await points();
    await waitFor(page, (n) => window.amldCharts.loss.data.datasets[0].data.length >= n + 3, 'the loss chart to gain points', before);
    step(`loss chart grew from ${before} to ${await points()} points without a reload`);

    // Delay from run.log to the point in the chart: when each new step
    // shows, against the time the run logged it.
    const seen = await page.evaluate(async () => {
      const chart = window.amldCharts.loss;
      const out = [];
      let n = chart.data.datasets[0].data.length;
      const until = Date.now() + 6000;
      while (Date.now() < until) {
        const d = chart.data.datasets[0].data;
        if (d.length > n) { out.push({ step: d[d.length - 1].x, at: Date.now() / 1000 }); n = d.length; }
        await new Promise((r) => setTimeout(r, 10));
      }
      return out;
    });
    const metrics = await page.evaluate(async (id) => (await (await fetch(`/api/runs/${id}/metrics`)).json()).metrics.loss, running);
    const delays = seen.map((s) => (s.at - metrics.times[metrics.steps.indexOf(s.step)]) * 1000).filter((d) => isFinite(d));
    assert(delays.length > 0, 'no new point seen in 6 s');
    delays.sort((a, b) => a - b);
    step(`run.log → chart delay over ${delays.length} points: median ${Math.round(delays[delays.length >> 1])} ms, max ${Math.round(delays[delays.length - 1])} ms`);

    await page.click('#tab-logs');
    await waitFor(page, () => document.querySelector('#log').textContent.includes('step 1: training'), 'the log');
    const logLen = await page.$eval('#log', (e) => e.textContent.length);
    await waitFor(page, (n) => document.querySelector('#log').textContent.length > n, 'the log to grow', logLen);
    step('the log grows while the run prints');
    await page.type('#log-search', 'step 3:');
    await waitFor(page, () => document.querySelectorAll('#log mark').length === 1, 'a search hit');
    await page.$eval('#log-search', (e) => { e.value = ''; e.dispatchEvent(new Event('input')); });

    // Overlay the finished run on the chart.
    await page.click('#tab-metrics');
    await page.type('#overlay-run', finished);
    await page.click('#overlay-add');
    await waitFor(page, (a) => window.amldCharts.loss.data.datasets.some((d) => d.runId === a && d.data.length === 8),
      'the finished run overlaid', finished);
    await page.select('#x-axis', 'time');
    await page.$eval('#smoothing', (e) => { e.value = '0.6'; e.dispatchEvent(new Event('input')); });
    await waitFor(page, () => window.amldCharts.loss.data.datasets.length === 4, 'smoothed and raw lines of two runs');
    step('two runs overlaid, against time, smoothed');
    if (shots) await page.screenshot({ path: path.join(shots, 'web-run.png') });

    // A download from the finished run's files tab has the run's bytes.
    fs.mkdirSync(downloads, { recursive: true });
    const cdp = await browser.target().createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
    await page.goto(`${base}#/run/${finished}`, { waitUntil: 'domcontentloaded' });
    // The same ids exist on the page being left: click only once this run's page is drawn.
    await waitFor(page, (a) => document.body.dataset.ready === `#/run/${a}`, 'the finished run\'s page', finished);
    await page.$eval('#tab-files', (b) => b.click());
    await waitFor(page, () => document.querySelector('#files a[href*="outputs%2Fweights.bin"]'), 'outputs/weights.bin in the files tab');
    await page.$eval('#files a[href*="outputs%2Fweights.bin"]', (a) => a.click());
    const file = path.join(downloads, 'weights.bin');
    const deadline = Date.now() + TIMEOUT;
    while (!fs.existsSync(file) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const want = Buffer.concat([...Array.from({ length: 40 }, () => Buffer.from([...Array(256).keys()])), Buffer.from([0, 101, 110, 100])]);
    assert(fs.existsSync(file), 'the download did not arrive');
    assert(Buffer.compare(fs.readFileSync(file), want) === 0, 'the downloaded bytes differ from the run\'s file');
    step(`download from the files tab has the right ${want.length} bytes`);

    // The running run ends: its page says so without a reload.
    await page.goto(`${base}#/run/${running}`, { waitUntil: 'domcontentloaded' });
    await waitFor(page, (b) => document.body.dataset.ready === `#/run/${b}`, 'the running run\'s page', running);
    fs.writeFileSync(stopFile, '');
    await waitFor(page, () => document.querySelector('h1 .status').textContent === 'COMPLETED', 'the running run to show COMPLETED');
    step('the running run shows COMPLETED when it ends');

    // The sweep's page: from its run page's link, a row per child with its
    // learning rate, the lowest loss marked best, both curves overlaid.
    await page.goto(`${base}#/run/${sweep}`, { waitUntil: 'domcontentloaded' });
    await waitFor(page, (s) => document.body.dataset.ready === `#/run/${s}`, 'the sweep\'s run page', sweep);
    await page.$eval('#sweep-link', (a) => a.click());
    await waitFor(page, () => document.querySelectorAll('#sweep-children tbody tr').length === 2, 'the sweep\'s two children');
    const rows = await page.$$eval('#sweep-children tbody tr', (trs) => trs.map((tr) => ({
      best: tr.classList.contains('best'), cells: [...tr.children].map((td) => td.textContent) })));
    const headers = await page.$$eval('#sweep-children th', (ths) => ths.map((th) => th.textContent));
    assert.deepStrictEqual(headers.slice(3), ['lr', 'min loss'], `sweep table headers: ${headers}`);
    const bestRows = rows.filter((r) => r.best);
    assert.strictEqual(bestRows.length, 1, 'exactly one best child');
    assert.strictEqual(bestRows[0].cells[3], '0.01', `the best child is lr 0.01: ${JSON.stringify(rows)}`);
    await waitFor(page, () => window.amldCharts.loss && window.amldCharts.loss.data.datasets.filter((d) => d.data.length === 4).length === 2,
      'both children\'s loss curves overlaid');
    step('the sweep page lists its children with their hyperparameters, the best marked, curves overlaid');
  } finally {
    await browser.close();
  }
  step('ok');
}

main().catch((e) => { console.error(`web_view_test: FAILED: ${e.stack || e}`); process.exit(1); });
