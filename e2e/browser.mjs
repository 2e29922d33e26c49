// The headless Chromium every browser test drives: Debian's binary, a fresh profile,
// and nothing running in the background that would reach the network.
import { chromium } from "playwright-core";

export function launch(executablePath, userDataDir, options = {}) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    ...options,
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
}

// A console page in a fresh browser (1280×720): `timeout` is its default wait, and
// `requests` collects the URL of everything it fetches, so a test can check that
// nothing came from elsewhere. Close `context` when done.
export async function openConsolePage(executablePath, userDataDir, timeout) {
  const context = await launch(executablePath, userDataDir, {
    viewport: { width: 1280, height: 720 },
  });
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(timeout);
    const requests = [];
    page.on("request", (request) => requests.push(request.url()));
    return { context, page, requests };
  } catch (error) {
    await context.close();
    throw error;
  }
}
