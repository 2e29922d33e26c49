// Loads the interactive docs page in headless Chromium and prints what it shows, as
// JSON: {"operations": [{"method", "path"}], "title", "requests": [urls]}.
// Usage: node docs-page.mjs <page url> <chromium path> <fresh user-data dir> <operations>
// <operations> is how many operations the document holds; the script scrolls until
// the page shows them all, so a slow machine only makes it slower.
import { launch } from "./browser.mjs";

const [url, executablePath, userDataDir, expected] = process.argv.slice(2);
const context = await launch(executablePath, userDataDir);
try {
  const page = await context.newPage();
  const requests = [];
  page.on("request", (request) => requests.push(request.url()));
  await page.goto(url, { waitUntil: "load", timeout: 60_000 });
  // Swagger UI renders one .opblock per operation, but only those near the visible
  // part of the page: walk down the page a screen at a time, collecting what is
  // shown, until every operation of the document has been seen or 60 s pass (the
  // test then says what is missing).
  const seen = new Map();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && seen.size < Number(expected)) {
    const { blocks, atEnd } = await page.evaluate(() => {
      const blocks = [...document.querySelectorAll(".opblock")].map((block) => ({
        method: block.querySelector(".opblock-summary-method")?.textContent?.trim() ?? "",
        path: block.querySelector(".opblock-summary-path")?.getAttribute("data-path") ?? "",
      }));
      const atEnd = window.scrollY + window.innerHeight >= document.body.scrollHeight - 1;
      window.scrollBy(0, Math.floor(window.innerHeight * 0.8));
      return { blocks, atEnd };
    });
    for (const block of blocks) seen.set(`${block.method} ${block.path}`, block);
    if (atEnd && seen.size > 0) {
      // Rendering may lag the scroll on a slow machine: go round again.
      await page.evaluate(() => window.scrollTo(0, 0));
    }
    await page.waitForTimeout(100);
  }
  const operations = [...seen.values()];
  const title = await page.title();
  console.log(JSON.stringify({ operations, title, requests }));
} finally {
  await context.close();
}
