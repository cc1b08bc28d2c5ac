#!/usr/bin/env python3
"""Reads one order's whole saga from orderflow's JetStream streams, as a team
that does not use the Rust code would: an independent NATS client (nats-py),
a generic MessagePack decoder (msgpack), and nothing but the documented wire
format.

    read_saga.py [--timeout SECONDS] NATS_URL ORDER_ID

What it relies on (the wire format as an outside reader sees it):

* streams and subjects: ORDERS `orders.<order_id>.<event_type>`,
  PAYMENTS `payments.<order_id>.<event_type>`, NOTIFICATIONS
  `notifications.<order_id>.<event_type>`, and INVENTORY
  `inventory.<sku>.<event_type>`, where a message belongs to an order when
  its `Order-Id` header says so (restocks belong to no order);
* headers: `Content-Type: application/msgpack` says how to decode the body,
  `Schema-Version` must be one this reader understands (1 or 2), and
  `Event-Type` equals the subject's last token;
* bodies: one MessagePack map with named fields; its `type` field, when
  present, repeats the event type.

Messages are fetched with JetStream direct get (`next_by_subj`), so nothing
is created on the server and the read ends at the last stored message.

Prints one JSON document on stdout:

    {"order_id": ..., "messages": [{"stream", "subject", "seq", "time",
      "headers", "event_type", "schema_version", "body"}, ...]}

sorted by (stream timestamp, stream, sequence), and exits 0. Exits 2 with a
message on stderr naming the stream and sequence when a message of the order
carries a header (or a body) it cannot honour, and 1 when the server cannot
be read within the deadline.
"""

import argparse
import asyncio
import datetime
import json
import sys

import msgpack
import nats
from nats.js.errors import NotFoundError

# (stream, subject filter, does every message belong to the order?)
STREAMS = (
    ("ORDERS", "orders.{order}.*", True),
    ("PAYMENTS", "payments.{order}.*", True),
    ("INVENTORY", "inventory.*.*", False),
    ("NOTIFICATIONS", "notifications.{order}.*", True),
)

MSGPACK = "application/msgpack"
READABLE_SCHEMA_VERSIONS = ("1", "2")

# Headers a direct-get reply adds to the stored message's own headers.
DIRECT_GET_HEADERS = frozenset(
    h.lower()
    for h in (
        "Nats-Stream",
        "Nats-Sequence",
        "Nats-Time-Stamp",
        "Nats-Subject",
        "Nats-Last-Sequence",
        "Nats-Num-Pending",
        "Nats-UpTo-Sequence",
    )
)


class WireFormatError(Exception):
    """A message of the order that this reader cannot honour."""


def header(headers, name):
    """A header's value, matched case-insensitively as HTTP-style headers are."""
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def timestamp_ns(text):
    """Nanoseconds since the epoch of an RFC 3339 stamp such as
    `2025-01-02T03:04:05.123456789Z` (Go prints up to 9 fraction digits,
    which Python's datetime cannot parse)."""
    if not text:
        return None
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    offset_at = max(text.rfind("+"), text.rfind("-"))
    if offset_at <= text.find("T"):
        return None
    main, offset = text[:offset_at], text[offset_at:]
    fraction = "0"
    if "." in main:
        main, fraction = main.split(".", 1)
    try:
        whole = datetime.datetime.fromisoformat(main + offset)
        nanos = int((fraction + "000000000")[:9])
    except ValueError:
        return None
    return int(whole.timestamp()) * 1_000_000_000 + nanos


def to_json(value):
    """What msgpack produced, as JSON-ready values: bytes become hex, map
    keys become strings, extension types say their code."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, bytes) else k.hex(): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, msgpack.ExtType):
        return {"ext": value.code, "data": value.data.hex()}
    if isinstance(value, msgpack.Timestamp):
        return value.to_datetime().isoformat()
    return value


def decode(stream, raw, headers):
    """Checks one message's headers and decodes its body as they say."""
    where = f"{stream} seq {raw.seq} ({raw.subject})"
    event_type = header(headers, "Event-Type")
    last_token = raw.subject.rsplit(".", 1)[-1]
    if event_type is None:
        raise WireFormatError(f"{where}: no Event-Type header")
    if event_type != last_token:
        raise WireFormatError(
            f"{where}: Event-Type header {event_type!r} is not the subject's last token {last_token!r}"
        )
    version = header(headers, "Schema-Version")
    if version is None:
        raise WireFormatError(f"{where}: no Schema-Version header")
    if version.strip() not in READABLE_SCHEMA_VERSIONS:
        raise WireFormatError(
            f"{where}: Schema-Version {version!r} is not one this reader understands "
            f"({', '.join(READABLE_SCHEMA_VERSIONS)})"
        )
    content_type = header(headers, "Content-Type")
    if content_type is None:
        raise WireFormatError(f"{where}: no Content-Type header")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != MSGPACK:
        raise WireFormatError(f"{where}: Content-Type {content_type!r} is not {MSGPACK}")
    try:
        body = msgpack.unpackb(raw.data or b"", raw=False, strict_map_key=False)
    except Exception as e:  # msgpack raises several unrelated types on bad input
        raise WireFormatError(f"{where}: body is not MessagePack ({type(e).__name__}: {e})") from None
    if not isinstance(body, dict):
        raise WireFormatError(f"{where}: body is a MessagePack {type(body).__name__}, not a map of named fields")
    if "type" in body and body["type"] != event_type:
        raise WireFormatError(f"{where}: body type {body['type']!r} contradicts Event-Type {event_type!r}")
    return event_type, version.strip(), body


async def read_stream(js, stream, subject_filter, order_id, whole):
    """Every stored message of `stream` under `subject_filter` that belongs to the order."""
    out = []
    seq = 1
    while True:
        try:
            raw = await js.get_msg(stream, seq=seq, subject=subject_filter, next=True, direct=True)
        except NotFoundError:
            return out
        seq = raw.seq + 1
        stored = {k: v for k, v in (raw.headers or {}).items() if k.lower() not in DIRECT_GET_HEADERS}
        if not whole and header(stored, "Order-Id") != order_id:
            continue
        event_type, version, body = decode(stream, raw, stored)
        stamp = header(raw.headers or {}, "Nats-Time-Stamp")
        out.append(
            {
                "stream": stream,
                "subject": raw.subject,
                "seq": raw.seq,
                "time": stamp,
                "headers": stored,
                "event_type": event_type,
                "schema_version": int(version),
                "body": to_json(body),
                "_time_ns": timestamp_ns(stamp),
            }
        )


async def read_saga(url, order_id, timeout):
    async def quiet(_error):
        # nats-py logs every failed attempt with a traceback; the last
        # error is reported once, by main().
        pass

    nc = await nats.connect(
        url,
        connect_timeout=min(5, timeout),
        # 0 would mean "retry the first connect forever" in nats-py.
        max_reconnect_attempts=1,
        reconnect_time_wait=0.5,
        allow_reconnect=False,
        error_cb=quiet,
    )
    try:
        js = nc.jetstream(timeout=min(5, timeout))
        messages = []
        for stream, pattern, whole in STREAMS:
            messages += await read_stream(js, stream, pattern.format(order=order_id), order_id, whole)
    finally:
        await nc.close()
    # One server stamps every stream, so stamps order messages across
    # streams; sequences break ties within a stream.
    messages.sort(key=lambda m: (m["_time_ns"] is None, m["_time_ns"] or 0, m["stream"], m["seq"]))
    for m in messages:
        del m["_time_ns"]
    return {"order_id": order_id, "messages": messages}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("nats_url")
    parser.add_argument("order_id")
    parser.add_argument("--timeout", type=float, default=20.0, help="overall deadline in seconds (default 20)")
    args = parser.parse_args()
    if any(c in args.order_id for c in ".*> \t") or not args.order_id:
        print(f"read_saga: {args.order_id!r} cannot be a subject token", file=sys.stderr)
        return 2
    try:
        saga = asyncio.run(asyncio.wait_for(read_saga(args.nats_url, args.order_id, args.timeout), args.timeout))
    except WireFormatError as e:
        print(f"read_saga: cannot honour a message of order {args.order_id}: {e}", file=sys.stderr)
        return 2
    except (asyncio.TimeoutError, TimeoutError):
        print(f"read_saga: could not read the streams within {args.timeout}s", file=sys.stderr)
        return 1
    except Exception as e:  # connection refused, stream missing, ...: one line, no traceback
        print(f"read_saga: reading {args.nats_url}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump(saga, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
