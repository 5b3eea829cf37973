// Accessibility of every page: axe-core's WCAG 2.1 A/AA rules (contrast included) in light and
// dark mode, keyboard use (a skip link, visible focus, the search reachable and usable without
// a mouse), and no sideways scrolling at a phone's width.
// Usage: BASE_URL=… UI_USER=… UI_PASSWORD=… PAGES=path,path… node a11y.mjs
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { base, check, launch, login } from './lib.mjs';

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
// Injecting axe needs the page's Content-Security-Policy bypassed; the other scripts keep it.
const { context: browser, page } = await launch({ bypassCSP: true });

async function audit(what) {
  await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  }));
  const found = result.violations.map((v) =>
    `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  check(found.length === 0, `${what}: no WCAG A/AA violations${found.length ? '\n  ' + found.join('\n  ') : ''}`);
}

try {
  const pages = process.env.PAGES.split(',');
  await page.goto(base + '/ui/login');
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    await audit(`login page (${scheme})`);
  }
  await login(page);
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const path of pages) {
      await page.goto(base + path);
      await audit(`${path} (${scheme})`);
    }
  }
  await page.emulateMedia({ colorScheme: 'light' });

  // Keyboard: the first Tab reaches the skip link, which moves past the header.
  await page.goto(base + '/');
  await page.keyboard.press('Tab');
  check((await page.evaluate(() => document.activeElement.textContent)) === 'Skip to content', 'the first Tab reaches the skip link');
  check(await page.getByRole('link', { name: 'Skip to content' }).isVisible(), 'the skip link shows when focused');
  await page.keyboard.press('Enter');
  await page.keyboard.press('Tab');
  check((await page.evaluate(() => document.activeElement.id)) === 'q', 'after skipping, the next Tab is the search field');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  check(outline !== 'none', `the focused field shows a focus ring (${outline})`);
  // Search without a mouse: type, then Tab to the first result and open it with Enter.
  const first = await page.locator('table.repos tbody .repo a').first().textContent();
  await page.keyboard.type(first);
  await page.locator('table.repos tbody tr').nth(1).waitFor({ state: 'detached' });
  await page.locator('table.repos tbody .repo a').first().focus();
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/ui\/(chart|image)\?/);
  check((await page.locator('h1').textContent()).length > 0, 'a result opens from the keyboard');

  // A phone's width: nothing scrolls sideways.
  await page.setViewportSize({ width: 360, height: 740 });
  for (const path of ['/', ...pages]) {
    await page.goto(base + path);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    // What sticks out: boxes past the edge, or text past its box.
    const culprits = overflow <= 0 ? [] : await page.evaluate(() => [...document.querySelectorAll('body *')]
      .filter((e) => getComputedStyle(e).overflowX === 'visible'
        && (e.getBoundingClientRect().right > window.innerWidth || e.scrollWidth > e.clientWidth + 1)
        && !e.closest('pre, table'))
      .slice(0, 6).map((e) => `${e.tagName.toLowerCase()}.${e.className}`));
    check(overflow <= 0, `${path} fits a 360 px wide screen (${overflow} px over: ${culprits.join(', ')})`);
  }
} finally {
  await browser.close();
}
