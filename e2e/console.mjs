// Drives the web console in headless Chromium: signs in, browses and filters a
// table, opens the week grid, signs out; prints what it saw as JSON and saves
// screenshots. Every step waits for a condition on the page (never a fixed delay),
// so a slow machine only makes it slower.
// Usage: node console.mjs <base url> <chromium path> <fresh user-data dir>
//        <screenshot dir> <organization> <email> <password> <provider id> <week>
import { openConsolePage } from "./browser.mjs";

const [base, executablePath, userDataDir, shots, organization, email, password, provider, week] =
  process.argv.slice(2);
const timeout = 60_000;
const { context, page, requests } = await openConsolePage(executablePath, userDataDir, timeout);
try {
  const seen = {};

  // No session: the console sends the browser to its sign-in form.
  await page.goto(`${base}/console`, { waitUntil: "load", timeout });
  await page.waitForURL(`${base}/console/login`);
  await page.fill("input[name=organization]", organization);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", password);
  await page.screenshot({ path: `${shots}/console-sign-in.png` });
  await Promise.all([page.waitForURL(`${base}/console`), page.click("button[type=submit]")]);
  seen.signedInAs = (await page.textContent("header .who")).trim();

  // Browse a table from the navigation.
  await Promise.all([
    page.waitForURL(`${base}/console/tables/users`),
    page.click("nav a[href='/console/tables/users']"),
  ]);
  await page.waitForSelector("#rows tbody tr");
  seen.usersTotal = Number((await page.textContent("#total")).trim());
  seen.usersShown = await page.$$eval("#rows tbody tr", (rows) =>
    rows.map((row) => [...row.querySelectorAll("td")].map((td) => td.textContent.trim())),
  );
  seen.userColumns = await page.$$eval("#rows thead th", (ths) => ths.map((th) => th.textContent.trim()));
  await page.screenshot({ path: `${shots}/console-table.png` });

  // Filter it.
  await page.selectOption("select[name=column]", "email");
  await page.selectOption("select[name=match]", "contains");
  await page.fill("input[name=value]", "client");
  await Promise.all([page.waitForURL(/value=client/), page.click("form.filter button[type=submit]")]);
  await page.waitForSelector("#total");
  seen.filteredTotal = Number((await page.textContent("#total")).trim());

  // The week grid of the provider.
  await page.goto(`${base}/console/week?provider=${provider}&week=${week}`, { waitUntil: "load", timeout });
  await page.waitForSelector("#week .day");
  seen.weekEntries = await page.$$eval("#week .appointment", (links) => links.map((a) => a.textContent.replace(/\s+/g, " ").trim()));
  await page.screenshot({ path: `${shots}/console-week.png`, fullPage: true });

  // Sign out (a form carrying the CSRF token); the console is closed again.
  await Promise.all([page.waitForURL(`${base}/console/login`), page.click("header button[type=submit]")]);
  await page.goto(`${base}/console/tables/users`, { waitUntil: "load", timeout });
  seen.afterSignOut = new URL(page.url()).pathname;
  seen.requests = requests;
  console.log(JSON.stringify(seen));
} finally {
  await context.close();
}
