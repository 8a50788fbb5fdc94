#!/usr/bin/env python3
"""The asyncio baseline for `tasklet bench notify`.

The original design of the notify service, in Python: aio-pika consumes the
queue (prefetch 100, manual acks), each message is sent to Viber with aiohttp
(one task per message, keep-alive connections), the result goes on an
asyncio.Queue, and one writer task COPYs the log rows to PostgreSQL with
asyncpg in batches (1000 rows or 200 ms) and acks the batch after commit.

Requirements: pip install aio-pika aiohttp asyncpg
Prints "ready" on stdout once it consumes; stops on SIGTERM.
"""

import argparse
import asyncio
import json
import signal
import time

import aio_pika
import aiohttp
import asyncpg

TEMPLATES = {
    "completed": "{name}, your payment of {amount} {currency} is complete.",
    "created": "Transaction {transaction_id} for {amount} {currency} was created.",
    "pending": "Transaction {transaction_id} for {amount} {currency} is being processed.",
}
COLUMNS = [
    "message_id", "transaction_id", "receiver", "status", "state", "viber_status",
    "message_token", "attempts", "error", "enqueued_at_us", "sent_at_us", "logged_at_us",
]


def now_us():
    return time.time_ns() // 1000


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--amqp-url", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--dsn", required=True)
    p.add_argument("--viber-url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--prefetch", type=int, default=100)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--flush-ms", type=int, default=200)
    p.add_argument("--max-attempts", type=int, default=8)
    a = p.parse_args()

    pool = await asyncpg.create_pool(a.dsn, min_size=1, max_size=2)
    connection = await aio_pika.connect_robust(a.amqp_url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=a.prefetch)
    queue = await channel.declare_queue(
        a.queue, durable=True, arguments={"x-dead-letter-exchange": a.queue + ".dlx"}
    )
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=a.prefetch),
        headers={"X-Viber-Auth-Token": a.token},
    )
    url = a.viber_url.rstrip("/") + "/pa/send_message"
    rows = asyncio.Queue()

    async def handle(message):
        m = json.loads(message.body)
        text = TEMPLATES.get(m["status"], "{transaction_id}: {status}").format(
            name=m["user"]["name"], amount=m["amount"], currency=m["currency"],
            transaction_id=m["transaction_id"], status=m["status"],
        )
        body = {
            "receiver": m["user"]["viber_id"], "min_api_version": 1,
            "sender": {"name": "tasklet"}, "tracking_data": m["id"],
            "type": "text", "text": text,
        }
        headers = message.headers or {}
        enqueued = int(headers.get("x-published-at-us", now_us()))
        state, status, token, error, sent_at = "failed", None, None, None, None
        attempts = 0
        while attempts < a.max_attempts:
            attempts += 1
            try:
                async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=5)) as r:
                    if r.status >= 500:
                        error = "http %d" % r.status
                    else:
                        reply = await r.json()
                        status = reply.get("status")
                        if status == 0:
                            state, token, sent_at = "sent", reply.get("message_token"), now_us()
                            break
                        if status != 12:
                            error = reply.get("status_message")
                            break
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                error = str(e)
            await asyncio.sleep(min(0.1 * 2 ** (attempts - 1), 5.0))
        await rows.put(((m["id"], m["transaction_id"], m["user"]["viber_id"], m["status"], state,
                         status, token, attempts, error, enqueued, sent_at, now_us()), message))

    async def writer():
        while True:
            batch = [await rows.get()]
            deadline = time.monotonic() + a.flush_ms / 1000
            while len(batch) < a.batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(rows.get(), left))
                except asyncio.TimeoutError:
                    break
            async with pool.acquire() as conn:
                await conn.copy_records_to_table(
                    "notifications", records=[r for r, _ in batch], columns=COLUMNS
                )
            for _, message in batch:
                await message.ack()

    tasks = set()

    def on_message(message):
        t = asyncio.ensure_future(handle(message))
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    async def consume(message):
        on_message(message)

    writer_task = asyncio.ensure_future(writer())
    await queue.consume(consume, no_ack=False)
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    writer_task.cancel()
    await http.close()
    await connection.close()
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
