// Browser test of browsing many repositories: pagination, sorting by size and by last push,
// the keyword filter, the total storage and the usage plot.
// Usage: BASE_URL=… UI_USER=… UI_PASSWORD=… SCREENSHOTS=dir EXPECTED_STORED=… NEWEST=… LARGEST=…
//        REPOSITORIES=n node browse.mjs
import { base, check, join, launch, login, shots } from './lib.mjs';

const { context: browser, page } = await launch({ viewport: { width: 1200, height: 900 } });
try {
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await login(page);
  const rows = page.locator('table.repos tbody tr');
  const repos = async () => rows.locator('.repo').allTextContents();
  const total = Number(process.env.REPOSITORIES);

  // Pages of 50, in name order, with links both ways that keep the filters.
  check((await page.locator('p.count').textContent()).startsWith(`${total} repositories`), 'every repository is counted');
  check(await rows.count() === 50, 'the first page holds 50');
  const first = await repos();
  check(first.every((name, i) => i === 0 || first[i - 1] < name), 'in name order');
  check((await page.locator('nav.pages span').textContent()) === `Page 1 of ${Math.ceil(total / 50)}`, 'page 1 of them');
  await page.getByRole('link', { name: 'Next' }).click();
  await page.waitForURL(/page=2/);
  check(await rows.count() === total - 50, 'the second page holds the rest');
  check((await repos())[0] > first[49], 'and continues where the first ended');
  await page.getByRole('link', { name: 'Previous' }).click();
  await page.waitForURL(/page=1/);
  check(JSON.stringify(await repos()) === JSON.stringify(first), 'previous goes back');

  // Sorted by size, largest first, with the plot of the largest.
  await page.getByLabel('Sort by').selectOption('size');
  await page.waitForURL(/sort=size/);
  await rows.first().locator('.repo', { hasText: process.env.LARGEST }).waitFor();
  const sizesInOrder = await page.locator('table.repos tbody td.num').allTextContents();
  check(sizesInOrder.every((s) => s.length > 0), 'every repository shows its size');
  check((await rows.first().locator('.repo').textContent()) === process.env.LARGEST, 'sorting by size puts the largest first');
  const bars = page.locator('figure.plot g.bar');
  check(await bars.count() === 10, 'the plot draws the ten largest');
  check((await bars.first().locator('text').textContent()).startsWith(process.env.LARGEST), 'the largest has the first bar');
  check((await page.locator('figure.plot .others').textContent()).startsWith(`and ${total - 10} other repositories: `), 'and sums up the others');
  const widths = await bars.locator('rect').evaluateAll((rects) => rects.map((r) => r.getBoundingClientRect().width));
  check(widths[0] > widths[1] && widths[1] >= widths[9] && widths[9] > 0, 'bar lengths follow the sizes');
  check((await page.locator('figure.plot svg title').textContent()).startsWith('Storage by repository'), 'the plot has a text alternative');
  await page.screenshot({ path: join(shots, 'home-by-size.png'), fullPage: true });

  // Total storage of what is listed, shared layers counted once.
  await page.getByLabel('Under').fill('bulk/');
  await page.waitForURL(/prefix=bulk/);
  await page.locator('#stored', { hasText: process.env.EXPECTED_STORED }).waitFor({ timeout: 5000 }).catch(() => {});
  check((await page.locator('#stored').textContent()) === process.env.EXPECTED_STORED,
    `total storage counts shared layers once (${await page.locator('#stored').textContent()} = ${process.env.EXPECTED_STORED})`);
  await page.getByLabel('Under').fill('');

  // Sorted by last push, newest first.
  await page.getByLabel('Sort by').selectOption('pushed');
  await page.waitForURL(/sort=pushed/);
  await rows.first().locator('.repo', { hasText: process.env.NEWEST }).waitFor();
  check((await rows.first().locator('.repo').textContent()) === process.env.NEWEST, 'sorting by last push puts the newest first');
  check(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/.test(await rows.first().locator('time').textContent()), 'the push time is shown');

  // Keywords: suggested from the charts, and a filter of their own.
  const suggestions = await page.locator('datalist#keywords option').evaluateAll((os) => os.map((o) => o.value));
  check(suggestions.includes('database') && suggestions.includes('cache'), 'chart keywords are suggested');
  await page.getByLabel('Keyword').fill('database');
  await page.waitForURL(/keyword=database/);
  await rows.nth(1).waitFor({ state: 'detached' });
  await rows.first().locator('.repo', { hasText: 'charts/postgres' }).waitFor();
  check(JSON.stringify(await repos()) === '["charts/postgres"]', 'the keyword filter keeps the charts that have it');
  await page.screenshot({ path: join(shots, 'home-keyword.png'), fullPage: true });

  // The filters survive a reload (they are in the address).
  await page.reload();
  check(await page.getByLabel('Keyword').inputValue() === 'database', 'the keyword is in the address');
  check(await page.getByLabel('Sort by').inputValue() === 'pushed', 'so is the order');
  check(errors.length === 0, `no script errors (${errors.join('; ')})`);
} finally {
  await browser.close();
}
