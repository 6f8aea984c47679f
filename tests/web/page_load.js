// The runs page's load time in headless Chromium:
//   node page_load.js URL EXPECTED_ROWS [TIMES]
// Opens `aml ui`'s link TIMES times (default 5), each in a fresh page, and
// prints the time from navigation to the runs table drawn with
// EXPECTED_ROWS rows (the first screenful the page draws), and how many
// runs the page says it loaded.
'use strict';
const puppeteer = require('puppeteer-core');

const [url, rows, times = '5'] = process.argv.slice(2);

(async () => {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage();
  await page.goto(url, { waitUntil: 'domcontentloaded' });  // sets the cookie
  const base = url.replace(/\?token=.*$/, '');
  const results = [];
  for (let i = 0; i < Number(times); i++) {
    const p = await browser.newPage();
    const t0 = Date.now();
    await p.goto(base, { waitUntil: 'domcontentloaded' });
    await p.waitForFunction((n) => document.querySelectorAll('#runs tbody tr').length >= n,
      { timeout: 120000, polling: 10 }, Number(rows));
    results.push(Date.now() - t0);
    if (i === 0) console.log(`page_load: ${await p.$eval('#run-count', (e) => e.textContent)}`);
    await p.close();
  }
  results.sort((a, b) => a - b);
  console.log(`page_load: runs table drawn in ${results.join(', ')} ms (median ${results[results.length >> 1]} ms)`);
  await browser.close();
})().catch((e) => { console.error(e); process.exit(1); });
