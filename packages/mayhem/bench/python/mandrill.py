"""The article's Mayhem Mandrill ("asyncio: We Did It Wrong"), made to do the work mayhem's defaults do,
for the whole-process benchmark (bench/process.ts runs it beside `mayhem run`). Standard library only.

What it does, as the article's service: a publisher puts N restart requests (UUIDv4 ids, cattle-XXXX
instances) on an asyncio.Queue; `consume` takes each and starts a task (`handle_message`) that runs the
restart and the save concurrently (`asyncio.gather`), extends the ack deadline every 2 s while they are
in flight (a task per message, as in the article, cancelled when the message is done), and acks when both are done. SIGINT/SIGTERM/SIGHUP
shut down gracefully: the pulled messages' tasks are cancelled, the database is closed.

What it does like mayhem's defaults, so the two do the same work:
  - restart latency 0 and no failures (`--restart-latency 0 --restart-failure-rate 0`): the restart is
    an `await asyncio.sleep(0)` that marks the message restarted;
  - the save and the ack record go to a SQLite file in WAL mode, synchronous=NORMAL, with one row per
    message (upserted on save, updated on ack), commits batched like mayhem's group commit: every write
    queued during one turn of the loop is committed in one transaction (a `call_soon` flush), and the
    writer's future resolves only after its commit, so a message is acked only once its save is durable;
  - at most 1,000 messages in flight (mayhem's --max-in-flight), a bounded queue (--max-backlog).

What it does not do (neither does the bench's mayhem run any of it in a way that costs much here):
no retries or nacks (nothing fails), no per-host serialisation, no rails, no metrics, no logs
(mayhem runs with --log-level silent), no restart-intent claim row (mayhem writes one; here the save
row carries it), no id index of its own (SQLite's primary key on message_id).

Usage: python3 mandrill.py --count N --db PATH  → prints one JSON line {"n","seconds","cpu_seconds","max_rss_kb","msg_per_s"}.
"""

import argparse
import asyncio
import json
import random
import resource
import signal
import sqlite3
import string
import time
import uuid

MAX_IN_FLIGHT = 1000
MAX_BACKLOG = 10000
EXTEND_EVERY_S = 2.0
CHOICES = string.ascii_lowercase + string.digits


class PubSubMessage:
    __slots__ = ("instance_name", "message_id", "hostname", "restarted", "saved", "acked", "extended_cnt")

    def __init__(self, message_id, instance_name):
        self.message_id = message_id
        self.instance_name = instance_name
        self.hostname = f"{instance_name}.example.net"
        self.restarted = False
        self.saved = False
        self.acked = False
        self.extended_cnt = 0


class GroupCommit:
    """Every write queued in one turn of the loop goes in one transaction; futures resolve after COMMIT."""

    def __init__(self, path):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS messages (message_id TEXT PRIMARY KEY, instance_name TEXT, hostname TEXT,"
            " restarted INTEGER NOT NULL DEFAULT 0, saved INTEGER NOT NULL DEFAULT 0, acked INTEGER NOT NULL DEFAULT 0,"
            " extensions INTEGER NOT NULL DEFAULT 0, created_at REAL, acked_at REAL)"
        )
        self.saves = []
        self.acks = []
        self.waiters = []
        self.scheduled = False
        self.loop = asyncio.get_running_loop()

    def _schedule(self):
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._flush)

    def save(self, msg):
        fut = self.loop.create_future()
        self.saves.append((msg.message_id, msg.instance_name, msg.hostname, time.time()))
        self.waiters.append(fut)
        self._schedule()
        return fut

    def ack(self, msg):
        fut = self.loop.create_future()
        self.acks.append((int(msg.restarted), msg.extended_cnt, time.time(), msg.message_id))
        self.waiters.append(fut)
        self._schedule()
        return fut

    def _flush(self):
        self.scheduled = False
        saves, acks, waiters = self.saves, self.acks, self.waiters
        self.saves, self.acks, self.waiters = [], [], []
        try:
            self.db.execute("BEGIN IMMEDIATE")
            if saves:
                self.db.executemany(
                    "INSERT INTO messages (message_id, instance_name, hostname, saved, created_at) VALUES (?, ?, ?, 1, ?)"
                    " ON CONFLICT (message_id) DO UPDATE SET saved = 1",
                    saves,
                )
            if acks:
                self.db.executemany(
                    "UPDATE messages SET restarted = max(restarted, ?), acked = 1, extensions = ?, acked_at = ?"
                    " WHERE message_id = ?",
                    acks,
                )
            self.db.execute("COMMIT")
        except Exception as err:  # roll back and fail every writer of this batch
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            for f in waiters:
                if not f.done():
                    f.set_exception(err)
            return
        for f in waiters:
            if not f.done():
                f.set_result(None)

    def close(self):
        self.db.close()


async def publish(queue, count):
    for _ in range(count):
        msg_id = str(uuid.uuid4())
        host_id = "".join(random.choices(CHOICES, k=4))
        await queue.put(PubSubMessage(message_id=msg_id, instance_name=f"cattle-{host_id}"))


async def restart_host(msg):
    await asyncio.sleep(0)  # --restart-latency 0, never fails
    msg.restarted = True


async def save(msg, db):
    await db.save(msg)
    msg.saved = True


async def extend(msg):
    # Cancelled when the message is done (the article's loop waits on an Event and lingers up to 2 s).
    while True:
        await asyncio.sleep(EXTEND_EVERY_S)
        msg.extended_cnt += 1  # the broker's modifyAckDeadline would go here


async def handle_message(msg, db, slots, done):
    extender = asyncio.create_task(extend(msg))
    try:
        await asyncio.gather(save(msg, db), restart_host(msg))
        await db.ack(msg)  # the ack record is durable before the broker ack
        msg.acked = True
        done[0] += 1
    finally:
        extender.cancel()
        slots.release()


async def consume(queue, db, count, finished):
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    done = [0]
    tasks = set()
    for _ in range(count):
        await slots.acquire()
        msg = await queue.get()
        t = asyncio.create_task(handle_message(msg, db, slots, done))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        if done[0] >= count:
            break
    if tasks:
        await asyncio.gather(*tasks)
    finished.set_result(done[0])


async def shutdown(sig, tasks):
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--db", default="mandrill.db")
    a = p.parse_args()
    loop = asyncio.get_running_loop()
    db = GroupCommit(a.db)
    queue = asyncio.Queue(MAX_BACKLOG)
    finished = loop.create_future()
    started = time.perf_counter()
    tasks = [asyncio.create_task(publish(queue, a.count)), asyncio.create_task(consume(queue, db, a.count, finished))]
    for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, lambda s=s: asyncio.create_task(shutdown(s, tasks)))
    try:
        acked = await finished
    except asyncio.CancelledError:
        acked = None
    finally:
        db.close()
    seconds = time.perf_counter() - started
    cpu = time.process_time()  # every thread of the process: steadier than wall time on a shared machine
    print(json.dumps({"n": acked, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
                      "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "msg_per_s": round((acked or 0) / seconds)}))


if __name__ == "__main__":
    asyncio.run(main())
