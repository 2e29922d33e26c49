"""An SMTP server for tests (aiosmtpd): each accepted message becomes one JSON file.

Usage: python smtp_sink.py HOST PORT DIR

Recipients whose local part starts with "bounce" are refused with 550 (a permanent
failure); "defer" with 451 (a transient one). Each accepted message is parsed and
written to DIR/<n>.json atomically (written to a temporary name, then renamed), with
its envelope, headers, and decoded text and HTML parts. Prints "ready" once
listening; stops on SIGTERM.
"""

import asyncio
import email
import email.policy
import itertools
import json
import os
import signal
import sys

from aiosmtpd.controller import Controller

counter = itertools.count(1)


class JsonSink:
    def __init__(self, directory):
        self.directory = directory

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("bounce"):
            return "550 5.1.1 mailbox unavailable"
        if local.startswith("defer"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {}
        for part in message.walk():
            kind = part.get_content_type()
            if kind in ("text/plain", "text/html") and kind not in parts:
                parts[kind] = part.get_content()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_to": envelope.rcpt_tos,
            "message_id": message.get("Message-ID"),
            "from": message.get("From"),
            "to": message.get("To"),
            "subject": message.get("Subject"),
            "date": message.get("Date"),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
        }
        n = next(counter)
        final = os.path.join(self.directory, f"{os.getpid()}-{n:06}.json")
        with open(final + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(final + ".tmp", final)
        return "250 OK"


def main():
    host, port, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    controller = Controller(JsonSink(directory), hostname=host, port=port)
    controller.start()
    print("ready", flush=True)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
