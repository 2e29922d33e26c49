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
