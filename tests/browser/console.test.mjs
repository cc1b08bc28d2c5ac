// Drives the web console in Debian's Chromium through playwright-core.
// Run by tests/it/console.rs, which starts nats-server and a node, restocks
// SKUs and parks one order on a dead letter, then passes in:
//   CONSOLE_URL      the node's base URL
//   ADMIN_TOKEN      an admin bearer token
//   CUSTOMER_TOKEN   a bearer token for customer CUSTOMER_ID
//   CUSTOMER_ID      that customer
//   STOCKED_SKU      a SKU with plenty of stock
//   SCARCE_SKU       a SKU with one unit
//   PARKED_ORDER     an order waiting on a dead letter whose cause is fixed
//   DOOMED_ORDER     an order waiting on a dead letter an operator discards
//   SCREENSHOT_DIR   where screenshots go
// Every wait is bounded by a timeout; nothing sleeps.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env('CONSOLE_URL');
const SHOTS = env('SCREENSHOT_DIR');
const SAGA_MS = 30_000;
const UI_MS = 10_000;

let browser;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  // launch() gives the browser a fresh temporary profile (--user-data-dir) and removes it on close.
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
});

/** A fresh page signed in with `token`; fails on any request to another origin or any page error. */
async function signedIn(token, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const origin = new URL(BASE).origin;
  const foreign = [];
  const errors = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(origin)) foreign.push(r.url());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) errors.push(m.text());
  });
  await page.goto(`${BASE}/`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: UI_MS });
  await page.fill('#token', token);
  await page.click('#sign-in-form button[type="submit"]');
  await page.waitForSelector('#catalog:not([hidden]) #catalog-rows tr', { timeout: UI_MS });
  page.checkClean = () => {
    assert.deepEqual(foreign, [], 'requests to another origin');
    assert.deepEqual(errors, [], 'page errors or CSP violations');
  };
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Places an order in the checkout and waits for its terminal status; returns the outcome text. */
async function checkout(page, sku, quantity, payment = 'tok_visa') {
  await page.click('#tabs button[data-panel="checkout"]');
  await page.waitForSelector('#checkout:not([hidden]) #lines .line', { timeout: UI_MS });
  await page.fill('#lines .line:last-child .line-sku', sku);
  await page.fill('#lines .line:last-child .line-qty', String(quantity));
  await page.selectOption('#payment', payment);
  await page.click('#checkout-form button[type="submit"]');
  const outcome = await page.waitForSelector('#watch-outcome[data-status]', { timeout: SAGA_MS });
  return { status: await outcome.getAttribute('data-status'), text: await outcome.textContent() };
}

test('a customer places an order in the checkout and watches it complete', async () => {
  const page = await signedIn(env('CUSTOMER_TOKEN'));
  assert.match(await page.textContent('#identity'), new RegExp(`${env('CUSTOMER_ID')} \\(customer\\)`));
  assert.match(await page.textContent('#catalog-rows'), new RegExp(env('STOCKED_SKU')));
  await shot(page, '01-catalog-customer');
  const { status, text } = await checkout(page, env('STOCKED_SKU'), 2);
  assert.equal(status, 'COMPLETED', text);
  const steps = await page.$$eval('#watch-steps li', (lis) => lis.map((li) => li.dataset.status));
  assert.equal(steps.at(-1), 'COMPLETED', `live steps: ${steps}`);
  await shot(page, '02-checkout-completed');

  // Its history shows it, and its saga timeline lists each step with a duration.
  await page.click('#tabs button[data-panel="orders"]');
  await page.waitForSelector('#orders-rows button.link', { timeout: UI_MS });
  await page.click('#orders-rows button.link');
  await page.waitForSelector('#order-detail:not([hidden]) #detail-timeline li', { timeout: UI_MS });
  const timeline = await page.textContent('#detail-timeline');
  assert.match(timeline, /placed/);
  assert.match(timeline, /completed/);
  assert.match(timeline, /\+\d/);
  await page.waitForSelector('#detail-steps li', { timeout: UI_MS });
  assert.match(await page.textContent('#detail-steps'), /payment/);
  await shot(page, '03-order-timeline');

  // Notifications of the completed order, with a read receipt.
  await page.click('#tabs button[data-panel="notifications"]');
  await page.waitForSelector('#notifications:not([hidden])', { timeout: UI_MS });
  const deadline = Date.now() + SAGA_MS;
  for (;;) {
    await page.click('#notifications-form button[type="submit"]');
    const read = page.locator('#notifications-list button').first();
    const shown = await read.waitFor({ timeout: 1000 }).then(
      () => true,
      () => false,
    );
    if (shown) {
      await read.click();
      await page.waitForSelector('#notifications-list .note-status:text-is("read")', { timeout: UI_MS });
      break;
    }
    assert.ok(Date.now() < deadline, 'no notification to mark read');
  }
  await shot(page, '04-notifications-read');
  page.checkClean();
  await page.context().close();
});

test('an order for more than the stock is cancelled and the reason shown', async () => {
  const page = await signedIn(env('CUSTOMER_TOKEN'));
  const { status, text } = await checkout(page, env('SCARCE_SKU'), 5);
  assert.equal(status, 'CANCELLED', text);
  assert.match(text, /out of stock/);
  await shot(page, '05-checkout-cancelled');
  page.checkClean();
  await page.context().close();
});

test('a problem answer names the field', async () => {
  const page = await signedIn(env('CUSTOMER_TOKEN'));
  await page.click('#tabs button[data-panel="checkout"]');
  await page.waitForSelector('#checkout:not([hidden]) #lines .line', { timeout: UI_MS });
  await page.fill('#lines .line:last-child .line-sku', 'not a sku!');
  await page.click('#checkout-form button[type="submit"]');
  await page.waitForSelector('#problem:not([hidden]) li code', { timeout: UI_MS });
  assert.match(await page.textContent('#problem li code'), /sku/);
  await shot(page, '06-problem-field');
  await page.context().close();
});

test('an admin replays a dead letter in the console and the order completes', async () => {
  const page = await signedIn(env('ADMIN_TOKEN'));
  const parked = env('PARKED_ORDER');
  await page.waitForSelector('#health-dlq:text-matches("dead letters: [1-9]")', { timeout: SAGA_MS });
  await page.click('#tabs button[data-panel="dead-letters"]');
  await page.waitForSelector('#dl-rows button.link', { timeout: UI_MS });
  assert.match(await page.textContent('#dl-rows'), new RegExp(`orders\\.${parked}\\.placed`));
  await page.click('#dl-rows tr:first-child button.link');
  await page.waitForSelector('#dl-detail:not([hidden])', { timeout: UI_MS });
  assert.match(await page.textContent('#dl-detail-body'), /placed/);
  await shot(page, '07-dead-letter');
  await page.click('#dl-replay');
  await page.waitForSelector('#dl-result:text-matches("replayed")', { timeout: UI_MS });
  await shot(page, '08-dead-letter-replayed');

  // The order moves on by itself; its detail is re-read until it says so.
  await page.click('#tabs button[data-panel="orders"]');
  await page.fill('#orders-customer', '');
  await page.click('#orders-form button[type="submit"]');
  const row = page.locator(`#orders-rows button[aria-label="Order ${parked}"]`);
  await row.waitFor({ timeout: UI_MS });
  const deadline = Date.now() + SAGA_MS;
  for (;;) {
    await row.click();
    // A selector wait, not waitForFunction: that one evaluates a string, which the page's CSP refuses.
    const done = await page.waitForSelector('#detail-summary:text-matches("^COMPLETED")', { timeout: 1000 }).catch(() => null);
    if (done) break;
    assert.ok(Date.now() < deadline, `order never completed: ${await page.textContent('#detail-summary')}`);
  }
  assert.match(await page.textContent('#detail-timeline'), /attention_required/);
  await shot(page, '09-replayed-order-completed');
  page.checkClean();
  await page.context().close();
});

test('a customer sees no admin panels, and a forbidden request shows its problem', async () => {
  const page = await signedIn(env('CUSTOMER_TOKEN'));
  assert.equal(await page.isVisible('#tabs button[data-panel="dead-letters"]'), false);
  assert.equal(await page.isVisible('#restock-form'), false);
  assert.equal(await page.isVisible('#health-dlq'), false);
  // Even with the read-only field unlocked, the server refuses another customer's notifications.
  await page.click('#tabs button[data-panel="notifications"]');
  await page.$eval('#notifications-customer', (input) => {
    input.readOnly = false;
  });
  await page.fill('#notifications-customer', 'someone-else');
  await page.click('#notifications-form button[type="submit"]');
  await page.waitForSelector('#problem:not([hidden])', { timeout: UI_MS });
  assert.match(await page.textContent('#problem'), /Forbidden/i);
  await shot(page, '10-customer-forbidden');
  await page.context().close();
});

test('the console fits a 375 px wide screen', async () => {
  const page = await signedIn(env('CUSTOMER_TOKEN'), { width: 375, height: 812 });
  await page.click('#tabs button[data-panel="checkout"]');
  await page.waitForSelector('#checkout:not([hidden]) #lines .line', { timeout: UI_MS });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `the page scrolls sideways: ${width} px`);
  await shot(page, '11-checkout-375px');
  // Keyboard: Tab moves from one panel button to the next, with a visible focus ring.
  await page.focus('#tabs button[data-panel="catalog"]');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.panel), 'checkout');
  assert.equal(await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle), 'solid');
  page.checkClean();
  await page.context().close();
});

test('an admin discards a dead letter with a reason', async () => {
  const page = await signedIn(env('ADMIN_TOKEN'));
  const doomed = env('DOOMED_ORDER');
  await page.click('#tabs button[data-panel="dead-letters"]');
  const row = page.locator('#dl-rows tr', { hasText: `orders.${doomed}.placed` });
  await row.waitFor({ timeout: UI_MS });
  await row.locator('button.link').click();
  await page.waitForSelector(`#dl-detail:not([hidden]) #dl-detail-body:text-matches("${doomed}")`, { timeout: UI_MS });
  await page.fill('#dl-discard-reason', 'card token never valid');
  await page.click('#dl-discard-form button[type="submit"]');
  await page.waitForSelector('#dl-result:text-matches("discarded")', { timeout: UI_MS });
  await page.selectOption('#dl-state', 'discarded');
  await page.click('#dl-form button[type="submit"]');
  await page.locator('#dl-rows tr', { hasText: `orders.${doomed}.placed` }).waitFor({ timeout: UI_MS });
  await shot(page, '12-dead-letter-discarded');
  page.checkClean();
  await page.context().close();
});
