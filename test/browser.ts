/**
 * A real Chromium for the console's tests, driven through playwright-core: Debian's `chromium`
 * (`.ci/run` installs it when absent), or the one CHROMIUM_PATH names.
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  const found = candidates.find((p) => p !== undefined && p !== '' && existsSync(p));
  if (found === undefined) {
    throw new Error('No Chromium found: apt-get install -y chromium (or set CHROMIUM_PATH)');
  }
  return found;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}
