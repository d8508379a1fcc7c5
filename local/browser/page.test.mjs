// The AI Viral Clip page in a real browser: Debian's Chromium, driven by playwright-core,
// against the local stack started exactly as the README says (`./local/run`, on free ports).
// Screenshots land in local/browser/artifacts/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, existsSync, readFileSync, mkdirSync, openSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import { chromium } from "playwright-core";

const ROOT = new URL("../..", import.meta.url).pathname;
const ARTIFACTS = new URL("./artifacts/", import.meta.url).pathname;
const VIDEO = join(ROOT, "local/testkit/fixtures/sample-3s.mp4");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const HOURLY_QUOTA = 8;

let stack, stackExit, api, browser, dataDir;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), "viralclip-browser-"));
  dataDir = join(dir, "data");
  const log = openSync(join(dir, "stack.log"), "a");
  stack = spawn(join(ROOT, "local/run"), [], {
    env: {
      ...process.env,
      LOCAL_API_PORT: String(await freePort()),
      LOCAL_S3_PORT: String(await freePort()),
      LOCAL_DATA_DIR: dataDir,
      // the dummy pipeline fails every "gaming" video for good: a failure to try again
      DUMMY_PIPELINE_FAILS_VIDEO_TYPE: "gaming",
      // an hourly quota one test reaches (no other user adds this many)
      MAX_NEW_VIDEOS_PER_HOUR: String(HOURLY_QUOTA),
    },
    detached: true, // a process group of its own, stopped with Ctrl-C (SIGINT) below
    stdio: ["ignore", log, log],
  });
  stackExit = new Promise((resolve) => stack.on("exit", resolve));
  const started = Date.now();
  while (!existsSync(join(dataDir, "stack.env"))) {
    assert.ok(Date.now() - started < 25 * 60_000, `the stack did not come up; see ${dir}/stack.log`);
    assert.equal(stack.exitCode, null, `./local/run exited; see ${dir}/stack.log`);
    await sleep(250);
  }
  const env = Object.fromEntries(
    readFileSync(join(dataDir, "stack.env"), "utf8").trim().split("\n").map((l) => l.split(/=(.*)/s).slice(0, 2)),
  );
  api = env.API_URL;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}, { timeout: 26 * 60_000 });

after(async () => {
  if (browser) await browser.close();
  if (stack && stack.exitCode === null) {
    process.kill(-stack.pid, "SIGINT");
    await Promise.race([stackExit, sleep(30_000)]);
  }
});

async function signUp(page, email) {
  page.on("pageerror", (e) => console.error("[page error]", e.message));
  page.on("console", (m) => { if (m.type() === "error") console.error("[console error]", m.text()); });
  // Once in CI the sign-up form did not show on a fresh page; record what the page held, and
  // load it once more before failing.
  for (let attempt = 1; ; attempt++) {
    await page.goto(`${api}/viral-clip`);
    try {
      await page.getByRole("tab", { name: "Create account" }).waitFor({ timeout: 10_000 });
      break;
    } catch (err) {
      await page.screenshot({ path: join(ARTIFACTS, `sign-up-not-shown-${attempt}.png`), fullPage: true });
      console.error(`[signUp] attempt ${attempt}: the sign-up form did not show; the page held:\n`,
        (await page.content()).slice(0, 3000));
      if (attempt >= 2) throw err;
    }
  }
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.getByLabel("Email").fill(email);
  await page.getByLabel(/^Password/).fill("correct horse battery");
  await page.getByRole("button", { name: "Create account" }).click();
  await page.locator("#app-view").waitFor({ state: "visible" });
}

const cards = (page) => page.locator("#videos .video");
const badgeOf = (card) => card.locator(".badge");

let first; // { context, page } of the first user, shared by the tests below (they run in order)

test("sign up, submit a YouTube link: its card appears as pending, then shows ready without a reload", async () => {
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  first = { context, page };
  await signUp(page, "ada@example.com");
  assert.equal(await cards(page).count(), 0);
  await page.evaluate(() => { window.__noReload = true; });

  await page.getByLabel("YouTube link").fill("https://youtu.be/dQw4w9WgXcQ");
  await page.getByLabel("Aspect ratio").selectOption("1:1");
  await page.getByRole("button", { name: "Add link" }).click();

  const card = cards(page).first();
  await card.waitFor();
  const initial = await badgeOf(card).getAttribute("data-status");
  assert.ok(["pending", "processing"].includes(initial), `a new card starts unfinished, got ${initial}`);
  await card.locator(".badge.ready").waitFor({ timeout: 20_000 });
  assert.equal(await page.evaluate(() => window.__noReload), true, "the page was not reloaded");
  const thumb = card.locator("img.thumb");
  assert.equal(await thumb.getAttribute("data-thumbnail"), "https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg");
  // this machine is offline: the YouTube thumbnail cannot load, and the placeholder stands in
  assert.match(await thumb.getAttribute("src"), /hqdefault\.jpg$|placeholder\.svg$/);
  await page.screenshot({ path: join(ARTIFACTS, "desktop-after-link.png"), fullPage: true });
});

test("upload a small MP4 with the control: progress shows, the card appears, then ready", async () => {
  const { page } = first;
  await page.locator("#file").setInputFiles(VIDEO);
  await page.locator("#upload-progress").waitFor({ state: "visible" });
  await page.locator("#upload-percent", { hasText: "100%" }).waitFor();
  await page.locator("#videos .video h3", { hasText: "sample-3s" }).waitFor();
  assert.equal(await cards(page).count(), 2);
  const card = cards(page).first();
  assert.match(await card.textContent(), /Upload/);
  assert.match(await card.textContent(), /0:03/, "duration shown");
  assert.match(await card.locator("img.thumb").getAttribute("src"), /placeholder\.svg$/);
  await card.locator(".badge.ready").waitFor({ timeout: 20_000 });
  await page.screenshot({ path: join(ARTIFACTS, "desktop-after-upload.png"), fullPage: true });
});

test("an invalid link shows the field message and creates nothing", async () => {
  const { page } = first;
  await page.getByLabel("YouTube link").fill("https://youtube.com.evil.example/watch?v=dQw4w9WgXcQ");
  await page.getByRole("button", { name: "Add link" }).click();
  const message = page.locator("#youtube_url-error");
  await message.waitFor({ state: "visible" });
  assert.match(await message.textContent(), /youtube\.com or youtu\.be/i);
  assert.equal(await page.getByLabel("YouTube link").getAttribute("aria-invalid"), "true");
  const count = await page.evaluate(async () => {
    const { token } = JSON.parse(localStorage.getItem("viralclip.session"));
    const r = await fetch("/viral-clip/videos", { headers: { Authorization: `Bearer ${token}` } });
    return (await r.json()).items.length;
  });
  assert.equal(count, 2, "nothing was created");
  assert.equal(await cards(page).count(), 2);
});

test("the session survives a reload; a second user sees none of the first user's videos; sign out", async () => {
  const { page, context } = first;
  await page.reload();
  await page.locator("#app-view").waitFor({ state: "visible" });
  await cards(page).nth(1).waitFor();
  assert.equal(await cards(page).count(), 2);

  const phone = await context.newPage();
  await phone.setViewportSize(PHONE);
  await phone.goto(`${api}/viral-clip`);
  await cards(phone).nth(1).waitFor();
  await phone.screenshot({ path: join(ARTIFACTS, "phone-videos.png"), fullPage: true });

  const other = await browser.newContext({ viewport: PHONE });
  const page2 = await other.newPage();
  await signUp(page2, "bob@example.com");
  await page2.locator("#empty").waitFor({ state: "visible" });
  assert.equal(await cards(page2).count(), 0, "no videos of another user");
  await page2.screenshot({ path: join(ARTIFACTS, "phone-new-user.png"), fullPage: true });

  await page2.getByRole("button", { name: "Sign out" }).click();
  await page2.locator("#auth-view").waitFor({ state: "visible" });
  assert.equal(await page2.evaluate(() => localStorage.getItem("viralclip.session")), null);
  await page2.screenshot({ path: join(ARTIFACTS, "phone-signed-out.png"), fullPage: true });
  await other.close();
  await context.close();
});

// A valid MP4 of exactly `size` bytes: moov-at-end-2s.mp4 with its mdat padded with zeros (the
// mdat comes before moov, so the chunk offsets stay right).
function videoOfSize(size) {
  const base = readFileSync(join(ROOT, "local/testkit/fixtures/moov-at-end-2s.mp4"));
  const extra = size - base.length;
  const out = Buffer.alloc(size);
  let at = 0, w = 0;
  while (at < base.length) {
    const len = base.readUInt32BE(at);
    const kind = base.toString("latin1", at + 4, at + 8);
    if (kind === "mdat") {
      out.writeUInt32BE(len + extra, w);
      base.copy(out, w + 4, at + 4, at + len);
      w += len + extra; // the padding is the zeros Buffer.alloc left
    } else {
      base.copy(out, w, at, at + len);
      w += len;
    }
    at += len;
  }
  assert.equal(w, size);
  return out;
}

test("a 50 MB file goes straight to storage in parts, a failed part is sent again, and it becomes ready", async () => {
  const dir = mkdtempSync(join(tmpdir(), "viralclip-big-"));
  const path = join(dir, "big-50mb.mp4");
  writeFileSync(path, videoOfSize(50_000_000));
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  await signUp(page, "carol@example.com");
  const puts = [];
  let failedOnce = false;
  // The store fails the first attempt at part 2 (as a dropped connection would).
  await page.route((url) => url.searchParams.get("partNumber") === "2", async (route) => {
    if (route.request().method() === "PUT" && !failedOnce) {
      failedOnce = true;
      return route.abort("connectionreset");
    }
    return route.continue();
  });
  page.on("request", (r) => { if (r.method() === "PUT") puts.push(r.url()); });

  await page.locator("#file").setInputFiles(path);
  await page.locator("#upload-progress").waitFor({ state: "visible" });
  await page.locator("#upload-percent", { hasText: "100%" }).waitFor({ timeout: 120_000 });
  const card = page.locator("#videos .video").filter({ hasText: "big-50mb" });
  await card.waitFor();
  assert.match(await card.textContent(), /0:02/, "duration read from the stored file");
  await card.locator(".badge.ready").waitFor({ timeout: 30_000 });

  const partTwo = puts.filter((u) => new URL(u).searchParams.get("partNumber") === "2");
  assert.ok(failedOnce, "the first PUT of part 2 was dropped");
  assert.equal(partTwo.length, 2, "part 2 was sent again");
  assert.ok(puts.length >= 6, `the file went in parts: ${puts.length} PUTs`);
  assert.ok(puts.every((u) => !u.includes("/viral-clip/")), "the bytes went to the store, not the API");
  const video = await page.evaluate(async () => {
    const { token } = JSON.parse(localStorage.getItem("viralclip.session"));
    const r = await fetch("/viral-clip/videos", { headers: { Authorization: `Bearer ${token}` } });
    return (await r.json()).items[0];
  });
  assert.equal(video.title, "big-50mb");
  assert.equal(video.duration_seconds, 2);
  assert.equal(video.status, "ready");
  await page.screenshot({ path: join(ARTIFACTS, "desktop-after-large-upload.png"), fullPage: true });
  await context.close();
  rmSync(dir, { recursive: true, force: true });
});

test("a failed video is tried again from its card; the detail view shows its options and every run", async () => {
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  await signUp(page, "dan@example.com");
  await page.getByLabel("YouTube link").fill("https://www.youtube.com/watch?v=aaaaaaaaaaa");
  await page.getByLabel("Video type").selectOption("gaming");
  await page.getByRole("button", { name: "Add link" }).click();
  const card = cards(page).first();
  await card.locator(".badge.failed").waitFor({ timeout: 30_000 });
  assert.match(await card.locator(".error-message").textContent(), /gaming/);
  await page.screenshot({ path: join(ARTIFACTS, "desktop-failed-card.png"), fullPage: true });

  const tryAgain = card.getByRole("button", { name: /^Try again/ });
  await tryAgain.focus();
  await page.keyboard.press("Enter");
  await page.locator("#alert", { hasText: "back in the queue" }).waitFor();
  // pending again, then (the same options) failed again
  await card.locator(".badge.pending, .badge.processing").waitFor();
  await card.locator(".badge.failed").waitFor({ timeout: 30_000 });

  await card.getByRole("button", { name: /^Details/ }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /Video type\s*gaming/);
  assert.match(await dialog.textContent(), /Aspect ratio\s*9:16/);
  assert.equal(await dialog.locator(".jobs li").count(), 2, "two runs");
  assert.match(await dialog.locator(".jobs li").first().textContent(), /Latest run: failed/);
  assert.equal(await page.evaluate(() => document.activeElement.id), "detail-close", "focus moves into the dialog");
  await page.screenshot({ path: join(ARTIFACTS, "desktop-detail-view.png"), fullPage: true });
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
  assert.match(await page.evaluate(() => document.activeElement.getAttribute("aria-label")), /^Details/, "focus goes back");
  await context.close();
});

test("delete asks first and can be kept; confirmed, the card goes and the video is gone for the API", async () => {
  const context = await browser.newContext({ viewport: PHONE });
  const page = await context.newPage();
  await signUp(page, "erin@example.com");
  for (const id of ["bbbbbbbbbbb", "ccccccccccc"]) {
    await page.getByLabel("YouTube link").fill(`https://youtu.be/${id}`);
    await page.getByRole("button", { name: "Add link" }).click();
    await page.locator(`#videos .video h3 a[href$="${id}"]`).waitFor();
  }
  const card = cards(page).filter({ has: page.locator('h3 a[href$="ccccccccccc"]') });
  const videoId = await card.getAttribute("data-id");

  // asked first, and kept with Escape from the keyboard
  await card.getByRole("button", { name: /^Delete/ }).focus();
  await page.keyboard.press("Enter");
  const question = card.getByRole("group", { name: /^Delete/ });
  await question.waitFor();
  assert.match(await page.evaluate(() => document.activeElement.textContent), /Keep it/, "focus on the safe answer");
  await page.screenshot({ path: join(ARTIFACTS, "phone-delete-question.png"), fullPage: true });
  await page.keyboard.press("Escape");
  await question.waitFor({ state: "detached" });
  assert.equal(await cards(page).count(), 2, "kept");

  // asked again, kept with the button, then deleted for good
  await card.getByRole("button", { name: /^Delete/ }).click();
  await card.getByRole("button", { name: /^Keep/ }).click();
  assert.equal(await cards(page).count(), 2, "kept");
  await card.getByRole("button", { name: /^Delete/ }).click();
  await card.getByRole("button", { name: /^Delete for good/ }).click();
  await page.locator("#alert", { hasText: "deleted" }).waitFor();
  await card.waitFor({ state: "detached" });
  assert.equal(await cards(page).count(), 1);
  await page.screenshot({ path: join(ARTIFACTS, "phone-after-delete.png"), fullPage: true });
  const [listed, status] = await page.evaluate(async (id) => {
    const { token } = JSON.parse(localStorage.getItem("viralclip.session"));
    const headers = { Authorization: `Bearer ${token}` };
    const list = await (await fetch("/viral-clip/videos", { headers })).json();
    const one = await fetch(`/viral-clip/videos/${id}`, { headers });
    return [list.items.map((v) => String(v.id)), one.status];
  }, videoId);
  assert.ok(!listed.includes(videoId), "not in the history");
  assert.equal(status, 404);
  await page.reload();
  await cards(page).first().waitFor();
  assert.equal(await cards(page).count(), 1, "still gone after a reload");
  await context.close();
});

test("over the hourly quota, adding a link shows which limit and when, and adds no card", async () => {
  const context = await browser.newContext({ viewport: PHONE });
  const page = await context.newPage();
  await signUp(page, "busy@example.com");
  // the hour's allowance used up through the API, as another tab or script would
  const statuses = await page.evaluate(async (n) => {
    const { token } = JSON.parse(localStorage.getItem("viralclip.session"));
    const out = [];
    for (let i = 0; i < n; i++) {
      const resp = await fetch("/viral-clip/video/youtube", {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ youtube_url: `https://youtu.be/quota${String(i).padStart(6, "0")}` }),
      });
      out.push(resp.status);
    }
    return out;
  }, HOURLY_QUOTA);
  assert.deepEqual(statuses, Array(HOURLY_QUOTA).fill(201));
  await page.reload();
  await cards(page).nth(HOURLY_QUOTA - 1).waitFor();

  await page.getByLabel("YouTube link").fill("https://youtu.be/onemoreplea");
  await page.getByRole("button", { name: "Add link" }).click();

  const alert = page.getByRole("alert").filter({ hasText: "in the last hour" });
  await alert.waitFor();
  assert.match(await alert.textContent(),
    new RegExp(`^You have added ${HOURLY_QUOTA} videos in the last hour, the most per hour; you can add another in \\d+ minutes?\\.$`));
  await page.screenshot({ path: join(ARTIFACTS, "phone-hourly-quota.png"), fullPage: true });
  assert.equal(await cards(page).count(), HOURLY_QUOTA, "no card for the refused link");
  assert.equal(await page.getByLabel("YouTube link").inputValue(), "https://youtu.be/onemoreplea", "the link is kept to try later");
  await context.close();
});
