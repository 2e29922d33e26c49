// Drives the operator view of the console in headless Chromium: signs in, reads the
// pool, ends idle database sessions through the confirmation step, reads how many
// were ended, signs out; prints what it saw as JSON and saves screenshots. Every
// step waits for a condition on the page (never a fixed delay).
// Usage: node operator.mjs <base url> <chromium path> <fresh user-data dir>
//        <screenshot dir> <operator name> <password>
import { openConsolePage } from "./browser.mjs";

const [base, executablePath, userDataDir, shots, name, password] = process.argv.slice(2);
const timeout = 60_000;
const { context, page, requests } = await openConsolePage(executablePath, userDataDir, timeout);
try {
  const seen = {};

  // No session: the operator view sends the browser to its own sign-in form.
  await page.goto(`${base}/console/operator`, { waitUntil: "load", timeout });
  await page.waitForURL(`${base}/console/operator/login`);
  await page.fill("input[name=name]", name);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForURL(`${base}/console/operator`), page.click("main button[type=submit]")]);
  seen.signedInAs = (await page.textContent("header .who")).trim();

  // The pool, live.
  await page.waitForSelector("#pool-size");
  seen.poolSize = (await page.textContent("#pool-size")).trim();
  await page.screenshot({ path: `${shots}/console-operator-overview.png`, fullPage: true });

  // End idle sessions: the form, then the confirmation step, then the result.
  await Promise.all([
    page.waitForURL(`${base}/console/operator/sessions`),
    page.click("nav a[href='/console/operator/sessions']"),
  ]);
  await page.waitForSelector("#sessions");
  await page.fill("input[name=older_than]", "0");
  await Promise.all([page.waitForURL(/\/sessions\/end-idle\?older_than=0/), page.click("form.filter button[type=submit]")]);
  await page.waitForSelector("#would-end");
  seen.wouldEnd = (await page.textContent("#would-end")).trim();
  await page.screenshot({ path: `${shots}/console-operator-end-idle.png`, fullPage: true });
  await Promise.all([page.waitForURL(`${base}/console/operator/sessions/end-idle`), page.click("#confirm-end-idle")]);
  await page.waitForSelector("#ended");
  seen.ended = (await page.textContent("#ended")).replace(/\s+/g, " ").trim();
  await page.screenshot({ path: `${shots}/console-operator-ended.png` });

  // Sign out; the operator view is closed again.
  await Promise.all([page.waitForURL(`${base}/console/operator/login`), page.click("header button[type=submit]")]);
  await page.goto(`${base}/console/operator/sessions`, { waitUntil: "load", timeout });
  seen.afterSignOut = new URL(page.url()).pathname;
  seen.requests = requests;
  console.log(JSON.stringify(seen));
} finally {
  await context.close();
}
