"""A Scrapy spider polling a favbet-style JSON-RPC site the way tasklet's
odds pipeline does (one batch request of frontend/event/get +
frontend/market/get per poll), parsing and diffing with the previous
snapshot in memory. It stores nothing. With --paced every game is polled
once a second; without (the default, "full load") each game is asked again
as soon as it answers. Prints one JSON line with the polls done, the CPU
used, and how late polls started, for `tasklet bench odds`.

    python favbet_spider.py --url http://127.0.0.1:8090/frontend_api2/ --games 500 --seconds 30
"""

import argparse
import asyncio
import json
import resource
import time

import scrapy
from scrapy.crawler import CrawlerProcess


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class DueTimeMiddleware:
    """Holds each request until its due time (meta['due'])."""

    async def process_request(self, request, spider):
        wait = request.meta.get("due", 0) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        request.meta["sent"] = time.monotonic()
        return None


class OddsSpider(scrapy.Spider):
    name = "odds"

    def __init__(self, url, games, seconds, warmup, paced, **kw):
        super().__init__(**kw)
        self.url = url
        self.games = int(games)
        self.seconds = float(seconds)
        self.warmup = float(warmup)
        self.previous = {}
        self.polls = 0
        self.changes = 0
        self.late = []
        self.t0 = time.monotonic()
        self.window_start = self.t0 + self.warmup
        self.window_end = self.window_start + self.seconds
        self.cpu_start = None
        self.cpu_end = None
        self.ids = []
        self.paced = paced

    def body(self, event_id):
        by = {"lang": "en", "service_id": 1, "event_id": event_id}
        return json.dumps([
            {"jsonrpc": "2.0", "id": 1, "method": "frontend/event/get", "params": {"by": by}},
            {"jsonrpc": "2.0", "id": 2, "method": "frontend/market/get", "params": {"by": by}},
        ])

    def poll(self, event_id, due):
        return scrapy.Request(
            self.url, method="POST", body=self.body(event_id),
            headers={"Content-Type": "application/json"},
            callback=self.parse_event, dont_filter=True,
            meta={"event": event_id, "due": due},
        )

    async def start(self):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "frontend/event/get",
                           "params": {"by": {"lang": "en", "service_id": 1}}})
        yield scrapy.Request(self.url, method="POST", body=body,
                             headers={"Content-Type": "application/json"},
                             callback=self.parse_list, dont_filter=True)

    def parse_list(self, response):
        events = json.loads(response.body)["result"][: self.games]
        now = time.monotonic()
        for i, e in enumerate(events):
            yield self.poll(e["event_id"], now + i / max(len(events), 1))

    def parse_event(self, response):
        now = time.monotonic()
        if self.cpu_start is None and now >= self.window_start:
            self.cpu_start = cpu_seconds()
        in_window = self.window_start <= now < self.window_end
        event_id = response.meta["event"]
        parts = {p["id"]: p for p in json.loads(response.body)}
        snap = {}
        for m in parts[2]["result"]:
            snap[(m["market_id"], None)] = m["market_suspend"]
            for o in m["outcomes"]:
                snap[(m["market_id"], o["outcome_id"])] = (o["outcome_coef"], o["outcome_visible"])
        status = parts[1]["result"][0]["event_status_type"] if parts[1]["result"] else "gone"
        prev = self.previous.get(event_id)
        if prev is not None:
            changed = [k for k in snap if prev[1].get(k) != snap[k]]
            changed += [k for k in prev[1] if k not in snap]
            self.changes += len(changed) + (prev[0] != status)
        self.previous[event_id] = (status, snap)
        if in_window:
            self.polls += 1
            if self.paced:
                self.late.append(response.meta["sent"] - response.meta["due"])
        if now >= self.window_end:
            if self.cpu_end is None:
                self.cpu_end = cpu_seconds()
            return
        if status not in ("finished", "gone"):
            due = response.meta["due"] + 1.0 if self.paced else 0.0
            yield self.poll(event_id, due)

    def closed(self, reason):
        late = sorted(self.late) or [0.0]
        cpu = (self.cpu_end or cpu_seconds()) - (self.cpu_start or 0.0)
        print(json.dumps({
            "games": self.games,
            "seconds": self.seconds,
            "polls": self.polls,
            "polls_per_s": self.polls / self.seconds,
            "cpu_s": cpu,
            "cpu_ms_per_poll": 1000.0 * cpu / max(self.polls, 1),
            "late_p99_ms": 1000.0 * late[int(0.99 * (len(late) - 1))],
            "changes_seen": self.changes,
        }), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--games", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--paced", action="store_true")
    a = ap.parse_args()
    process = CrawlerProcess(settings={
        "LOG_LEVEL": "ERROR",
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "CONCURRENT_REQUESTS": a.games + 100,
        "CONCURRENT_REQUESTS_PER_DOMAIN": a.games + 100,
        "CONCURRENT_REQUESTS_PER_IP": 0,
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "RETRY_ENABLED": False,
        "ROBOTSTXT_OBEY": False,
        "TELNETCONSOLE_ENABLED": False,
        "COOKIES_ENABLED": True,
        "HTTPCACHE_ENABLED": False,
        "SCRAPER_SLOT_MAX_ACTIVE_SIZE": 50_000_000,
        "DOWNLOADER_MIDDLEWARES": {"__main__.DueTimeMiddleware": 1},
        "USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    })
    process.crawl(OddsSpider, url=a.url, games=a.games, seconds=a.seconds, warmup=a.warmup, paced=a.paced)
    process.start()


if __name__ == "__main__":
    main()
