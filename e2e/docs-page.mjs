// Loads the interactive docs page in headless Chromium and prints what it shows, as
// JSON: {"operations": [{"method", "path"}], "title", "requests": [urls]}.
// Usage: node docs-page.mjs <page url> <chromium path> <fresh user-data dir>
import { chromium } from "playwright-core";

const [url, executablePath, userDataDir] = process.argv.slice(2);
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = await context.newPage();
  const requests = [];
  page.on("request", (request) => requests.push(request.url()));
  await page.goto(url, { waitUntil: "load", timeout: 60_000 });
  // Swagger UI renders one .opblock per operation once it has read the document.
  await page.waitForSelector(".opblock", { timeout: 60_000 });
  const operations = await page.$$eval(".opblock", (blocks) =>
    blocks.map((block) => ({
      method: block.querySelector(".opblock-summary-method")?.textContent?.trim() ?? "",
      path: block.querySelector(".opblock-summary-path")?.getAttribute("data-path") ?? "",
    })),
  );
  const title = await page.title();
  console.log(JSON.stringify({ operations, title, requests }));
} finally {
  await context.close();
}
