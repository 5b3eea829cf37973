// Browser test of the garbage collection page: a dry run says what would go, Collect now
// takes it (after a confirmation), both appear in the history without a reload, and a
// non-administrator sees neither the link nor the page.
// Usage: BASE_URL=… UI_USER=… UI_PASSWORD=… VIEWER=… SCREENSHOTS=dir node gc.mjs
import { base, check, join, launch, login, shots } from './lib.mjs';

const { context: browser, page } = await launch({ viewport: { width: 1300, height: 900 } });
try {
  await login(page);
  await page.getByRole('link', { name: 'Garbage collection' }).click();
  check(await page.getByRole('heading', { name: 'Garbage collection', level: 1 }).isVisible(), 'the page opens');
  check((await page.locator('#gc-reclaimable').textContent()).includes('start a dry run'), 'nothing is known before a run');
  check((await page.locator('#gc-history').textContent()).includes('No runs yet'), 'the history starts empty');

  let navigations = 0;
  await page.getByRole('button', { name: 'Dry run' }).click();
  await page.waitForURL(base + '/ui/gc');
  page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) navigations += 1; });
  const rows = page.locator('#gc-history tbody tr');
  await rows.first().waitFor({ timeout: 30_000 });
  await page.locator('#gc-history tbody tr', { hasText: 'succeeded' }).first().waitFor({ timeout: 30_000 });
  const dry = (await rows.first().textContent()).replace(/\s+/g, ' ');
  check(dry.includes('Dry run') && /1 manifests, 2 blob links, 2 content objects/.test(dry), `the dry run says what would go (${dry})`);
  check(navigations === 0, 'without a reload');
  await page.reload();
  check(/would collect 1 manifests/.test(await page.locator('#gc-reclaimable').textContent()), 'and the page says what is reclaimable');

  page.once('dialog', (dialog) => { check(dialog.message().includes('Collect garbage now?'), 'a confirmation is asked'); dialog.accept(); });
  await page.getByRole('button', { name: 'Collect now' }).click();
  await page.waitForURL(base + '/ui/gc');
  await page.locator('#gc-history tbody tr', { hasText: /\bRun\b/ }).first().waitFor({ timeout: 30_000 });
  let run = '';
  for (let i = 0; i < 60 && !/succeeded|failed/.test(run); i++) {
    run = (await page.locator('#gc-history tbody tr').first().textContent()).replace(/\s+/g, ' ');
    if (!/succeeded|failed/.test(run)) await page.waitForTimeout(500);
  }
  check(run.includes('Run') && run.includes('succeeded') && run.includes(process.env.UI_USER), `the run is in the history, with who started it (${run})`);
  check(await rows.count() === 2, 'two runs in the history');
  await page.screenshot({ path: join(shots, 'gc.png'), fullPage: true });

  // A non-administrator: no link, no page, no form.
  await page.getByRole('button', { name: 'Log out' }).click();
  await login(page, process.env.VIEWER);
  check(await page.getByRole('link', { name: 'Garbage collection' }).count() === 0, 'a non-administrator has no link');
  check((await page.goto(base + '/ui/gc')).status() === 403, 'nor the page');
  await page.goto(base + '/');
  const csrf = await page.locator('form[action="/ui/logout"] input[name="csrf"]').inputValue();
  check((await page.request.post(base + '/ui/gc/start', { form: { csrf } })).status() === 403, 'nor the button');
} finally {
  await browser.close();
}
