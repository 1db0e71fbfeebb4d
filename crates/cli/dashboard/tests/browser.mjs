// Drives `kubectl crew dashboard` in Debian's Chromium (headless, through playwright-core; nothing downloads a
// browser) and checks what a user sees. Run by crates/e2e/tests/e2e_dashboard.rs against the real control plane.
//
// Environment: DASHBOARD_URL (the link the dashboard printed), SCENARIO (`admin` or `limited`), CREW_NS (the test
// namespace), OTHER_NS (a namespace the limited user may not read), SCREENSHOTS (a directory: PNGs of each page),
// CHROMIUM (default /usr/bin/chromium).
// Prints one line per check passed and, last, a JSON line of measurements; exits 1 at the first failed check.
import { chromium, request } from 'playwright-core';

const url = need('DASHBOARD_URL');
const scenario = process.env.SCENARIO ?? 'admin';
const ns = need('CREW_NS');
const shots = process.env.SCREENSHOTS;
const origin = new URL(url).origin;

function need(name) {
  const value = process.env[name];
  if (!value) fail(`${name} is not set`);
  return value;
}

function fail(message) {
  console.error(`FAILED: ${message}`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
  console.log(`ok: ${message}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
  ],
});
const context = await browser.newContext({ viewport: { width: 1360, height: 860 } });
const page = await context.newPage();
const problems = [];
const refusedLoads = [];
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => {
  if (m.type() !== 'error') return;
  // A refused request is logged by Chromium itself; the limited user's refusals are expected and checked below.
  if (m.text().startsWith('Failed to load resource')) refusedLoads.push(m.text());
  else problems.push(`console error: ${m.text()}`);
});
const figures = {};

try {
  if (scenario === 'admin') await admin();
  else if (scenario === 'limited') await limited();
  else if (scenario === 'load') await load();
  else if (scenario === 'actions') await actions();
  else if (scenario === 'archive') await archive();
  else if (scenario === 'signin') await signin();
  else fail(`unknown scenario ${scenario}`);
  check(problems.length === 0, `no JavaScript errors in the console (${problems.join('; ')})`);
  console.log(JSON.stringify({ figures }));
} catch (e) {
  fail(`${e.message}\n${problems.join('\n')}`);
} finally {
  await browser.close();
}

async function shot(name) {
  if (shots) await page.screenshot({ path: `${shots}/dashboard-${name}.png`, fullPage: false });
}

function row(name) {
  return `tr[data-run="${ns}/${name}"]`;
}

async function admin() {
  await page.goto(url);
  check(new URL(page.url()).search === '', 'the session link redirects to a clean address (no token in the bar)');
  await page.waitForSelector(`${row('done')}[data-phase="Succeeded"]`, { timeout: 60000 });
  await page.waitForSelector(`${row('broken')}[data-phase="Failed"]`, { timeout: 60000 });
  check(true, 'the list shows the runs and their phases');
  await page.waitForSelector('.live-live', { timeout: 15000 });
  check(true, 'the list is live (its watch stream is open)');

  // The running run's bar moves without a reload.
  await page.evaluate(() => { window.__sameDocument = true; });
  const bar = `${row('slow')} [role=progressbar]`;
  await page.waitForSelector(bar, { timeout: 30000 });
  const before = Number(await page.getAttribute(bar, 'aria-valuenow'));
  await page.waitForFunction(
    ([selector, start]) => Number(document.querySelector(selector)?.getAttribute('aria-valuenow')) > start,
    [bar, before],
    { timeout: 60000 },
  );
  const after = Number(await page.getAttribute(bar, 'aria-valuenow'));
  check(await page.evaluate(() => window.__sameDocument === true), `the running bar moved ${before}% → ${after}% without a reload`);
  await shot('runs');

  // The run page: its timeline.
  await page.click(`${row('broken')} a`);
  await page.waitForSelector('svg.timeline rect[data-kind="attempt"]', { timeout: 15000 });
  const attempts = await page.locator('svg.timeline g[data-lane="boom"] rect[data-kind="attempt"]').count();
  check(attempts === 2, `the run page's timeline shows both attempts of the retried step (${attempts})`);
  check(await page.locator('svg.timeline rect[data-kind="backoff"]').count() >= 1, 'the timeline shows the backoff between them');
  check(await page.locator('svg.timeline rect[data-kind="wait"]').count() === 1, 'the timeline shows the queue wait');
  check(await page.locator('table.history tbody tr').count() >= 3, 'the run page shows the history');
  check((await page.textContent('table.steps')).includes('model quota exceeded'), 'the failed step says why');
  await shot('run');

  // A worker's progress report and posted result.
  await page.goto(`${origin}/#/run/${ns}/report`);
  await page.waitForSelector('tr[data-step="write"]', { timeout: 15000 });
  const step = await page.textContent('tr[data-step="write"]');
  check(step.includes('drafting chapter 2') && step.includes('tokens') && step.includes('rate limited once'),
    `the run page shows the worker's progress message, metrics and warnings: ${step.replace(/\s+/g, ' ').trim()}`);
  await page.click('button[name="result-write"]');
  await page.waitForSelector('tr[data-step="write"] pre.posted', { timeout: 15000 });
  check((await page.textContent('tr[data-step="write"] pre.posted')).includes('tide tables for the harbour'),
    'the run page reads the posted result from its ConfigMap');

  // Read-only: the buttons are off and the server refuses a write, even one with the page's CSRF token.
  check(await page.locator('button[name=cancel]').isDisabled(), 'the cancel button is disabled when read-only');
  const csrf = await page.getAttribute('meta[name=crew-csrf]', 'content');
  const write = await page.request.post(`${origin}/api/runs/${ns}/slow/cancel`, { headers: { 'X-Crew-Csrf': csrf } });
  check(write.status() === 403, `a write is refused when read-only (${write.status()})`);
  check((await write.json()).message.includes('--allow-actions'), 'the refusal says how to allow actions');
  const forged = await page.request.post(`${origin}/api/runs/${ns}/slow/cancel`);
  check(forged.status() === 403, 'a write without the CSRF token is refused');

  // Queues: the waiting run and why it waits.
  await page.goto(`${origin}/#/queues`);
  await page.waitForSelector(`section.queue[data-queue="${ns}/line"] table.waiting`, { timeout: 30000 });
  const why = await page.textContent(`section.queue[data-queue="${ns}/line"] table.waiting`);
  check(why.includes('waiter') && why.includes('slow'), `the queue page says why a run waits: ${why.replace(/\s+/g, ' ').trim()}`);
  await shot('queues');

  // Statistics, with the chart.
  await page.goto(`${origin}/#/stats`);
  await page.waitForSelector('.figure', { timeout: 15000 });
  await page.waitForSelector('.chart .uplot', { timeout: 15000 });
  const failures = await page.textContent('table.failures');
  check(failures.includes('boom') && failures.includes('RetriesExhausted'), 'statistics count failures by step and reason');
  await shot('stats');

  check(refusedLoads.length === 0, `every request of the page succeeded (${refusedLoads.join(' | ')})`);
  // Another program on this machine, without the session cookie, gets nothing; nor does the link, used already.
  const stranger = await request.newContext();
  const refused = await stranger.get(`${origin}/api/runs?namespace=${ns}`);
  check(refused.status() === 401, `a request without the session is refused (${refused.status()})`);
  const reused = await stranger.get(url, { maxRedirects: 0 });
  check(reused.status() === 401, `the link works once (${reused.status()} the second time)`);
  await stranger.dispose();
  // A page of another site, or of another port of this host, is refused even with the cookie.
  const crossSite = await page.request.get(`${origin}/api/runs?namespace=${ns}`, { headers: { 'Sec-Fetch-Site': 'same-site' } });
  check(crossSite.status() === 403, `a request from another port of this host is refused (${crossSite.status()})`);
}

async function limited() {
  const other = need('OTHER_NS');
  await page.goto(url);
  await page.waitForSelector(`${row('done')}`, { timeout: 60000 });
  check(true, 'a user limited to one namespace sees its runs');
  await page.check('input[name=all-namespaces]');
  await page.waitForSelector('.error', { timeout: 15000 });
  const all = await page.textContent('.error');
  check(/forbidden/i.test(all), `every namespace is refused to them: ${all}`);
  check(await page.locator('table.runs tbody tr').count() === 0, 'and no run of another namespace is shown');
  await page.uncheck('input[name=all-namespaces]');
  await page.fill('input[name=namespace]', other);
  await page.press('input[name=namespace]', 'Enter');
  await page.waitForFunction((o) => (document.querySelector('.error')?.textContent ?? '').includes(o), other, { timeout: 15000 });
  check(/forbidden/i.test(await page.textContent('.error')), `namespace ${other} is refused to them`);
  check(refusedLoads.every((l) => l.includes('403')), `the only failed loads are the API server's refusals (${refusedLoads.join(' | ')})`);
}

async function actions() {
  page.on('dialog', (d) => d.accept());
  await page.goto(url);
  await page.waitForSelector(row('waiter'), { timeout: 30000 });
  await page.click(`${row('waiter')} a`);
  await page.waitForSelector('button[name=cancel]:not([disabled])', { timeout: 15000 });
  await page.click('button[name=cancel]');
  await page.waitForSelector('.notice', { timeout: 15000 });
  check((await page.textContent('.notice')).includes('waiter'), `cancel answers: ${await page.textContent('.notice')}`);
  await page.waitForSelector('h1 .phase-cancelled', { timeout: 60000 });
  check(true, 'with --allow-actions, cancel from the run page cancels the run (as the user)');
}

async function archive() {
  await page.goto(url);
  await page.waitForSelector(row('kept'), { timeout: 30000 });
  check(await page.locator(row('gone')).count() === 0, 'the deleted run is not among the live ones');
  await page.selectOption('select[name=source]', 'archived');
  await page.waitForSelector(`${row('gone')} .tag`, { timeout: 15000 });
  check(await page.locator(`${row('kept')} .tag`).count() === 1, 'archived runs are listed from the archive, tagged');
  check(await page.getAttribute(row('gone'), 'data-phase') === 'Succeeded', 'with the phase they ended in');
  await page.click(`${row('gone')} a`);
  await page.waitForSelector('svg.timeline rect[data-kind="attempt"]', { timeout: 15000 });
  const lanes = await page.locator('svg.timeline g[data-lane]').count();
  check(lanes === 3, `the archived run's timeline has its queue wait and both steps (${lanes} lanes)`);
  check((await page.textContent('main')).includes('Events and Jobs went with the object'), 'and says what the archive does not keep');
  await page.goto(`${origin}/#/`);
  await page.waitForSelector(row('kept'), { timeout: 15000 });
  await page.selectOption('select[name=source]', 'all');
  await page.waitForSelector(`${row('kept')}:not(:has(.tag))`, { timeout: 15000 });
  await page.click('nav.pager button:has-text("Next")');
  await page.waitForSelector(`${row('gone')} .tag`, { timeout: 15000 });
  check(await page.locator(row('kept')).count() === 0, '"live and archived" lists a run still in the cluster once');
  await page.goto(`${origin}/#/stats`);
  await page.waitForSelector('.figure', { timeout: 15000 });
  const source = await page.textContent('main .filters');
  check(source.includes('from the archive'), `statistics come from the archive: ${source.trim()}`);
  check((await page.textContent('.figure')).includes('2'), 'counting both runs');
}

async function signin() {
  const token = need('SIGN_IN_TOKEN');
  await page.goto(url);
  await page.waitForSelector('textarea[name=token]', { timeout: 15000 });
  check(true, 'a dashboard for many users asks for a token first');
  await page.fill('textarea[name=token]', 'not-a-token-anyone-issued');
  await page.click('button[type=submit]');
  await page.waitForSelector('.signin .error', { timeout: 15000 });
  check(true, 'a made-up token is refused');
  await page.fill('textarea[name=token]', token);
  await page.click('button[type=submit]');
  await page.fill('input[name=namespace]', ns);
  await page.press('input[name=namespace]', 'Enter');
  await page.waitForSelector(row('done'), { timeout: 30000 });
  check(true, "signed in, the user's runs are listed (read with their token)");
  const cookies = await context.cookies();
  const kept = cookies.find((c) => c.name === 'crew_token');
  check(kept && kept.httpOnly && kept.sameSite === 'Strict', 'the token is kept in an HttpOnly, SameSite=Strict cookie');
  await page.click('button[name=sign-out]');
  await page.waitForSelector('textarea[name=token]', { timeout: 15000 });
  check(true, 'signing out forgets it');
  check(refusedLoads.every((l) => l.includes('401')), `the only failed loads are the refusals before signing in (${refusedLoads.join(' | ')})`);
}

async function load() {
  const started = Date.now();
  await page.goto(url);
  await page.waitForSelector('table.runs tbody tr', { timeout: 120000 });
  const listed = Date.now() - started;
  const paint = await page.evaluate(() => performance.getEntriesByType('paint').map((p) => [p.name, p.startTime]));
  const rows = await page.locator('table.runs tbody tr').count();
  const cdp = await context.newCDPSession(page);
  await cdp.send('HeapProfiler.collectGarbage');
  const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? 0);
  const metrics = (await cdp.send('Performance.enable'), await cdp.send('Performance.getMetrics')).metrics;
  const metric = (n) => metrics.find((m) => m.name === n)?.value;
  figures.firstPaintMs = Object.fromEntries(paint)['first-paint'];
  figures.firstContentfulPaintMs = Object.fromEntries(paint)['first-contentful-paint'];
  figures.firstPageListedMs = listed;
  figures.rowsShown = rows;
  figures.jsHeapUsedBytes = metric('JSHeapUsedSize') ?? heap;
  figures.domNodes = metric('Nodes');
  check(rows > 0, `the first page lists ${rows} runs in ${listed} ms`);
  await shot('runs-10000');
}
