"""A real SMTP server for the notification tests (aiosmtpd from PyPI).

    smtp_sink.py PORT DIR

Listens on 127.0.0.1:PORT and stores every message it accepts as
DIR/<n>.eml (written to a temporary name, then renamed, so a reader never
sees half a mail). Prints "ready" once listening. Exits when its standard
input closes, i.e. when the test that started it ends or dies.
"""

import itertools
import os
import sys

from aiosmtpd.controller import Controller


class Store:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        tmp = os.path.join(self.directory, f".{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content)
        os.rename(tmp, os.path.join(self.directory, f"{n}.eml"))
        return "250 Message accepted for delivery"


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Store(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        # Blocks until the parent closes our stdin (or dies).
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
