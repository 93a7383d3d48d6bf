"""An asyncio service publishing job.status events with aio-pika.

    RABBITMQ_URL=amqp://user:pass@rabbitmq:5672/ python3 publisher.py 42 7 queued 0 'waiting for a worker'
"""
import argparse
import asyncio
import json
import time
from datetime import datetime, timezone

import aio_pika

from job_events import EXCHANGE, RABBITMQ_URL, NotRouted, job_status, routing_key


class StatusPublisher:
    """Publishes events over one robust connection (it reconnects by itself) with publisher
    confirms; publish returns once the broker confirmed and raises when it did not store."""

    async def connect(self):
        self.connection = await aio_pika.connect_robust(RABBITMQ_URL)
        # on_return_raises: a returned (unroutable) message fails its publish instead of
        # resolving it like a confirm.
        channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        self.exchange = await channel.get_exchange(EXCHANGE, ensure=False)  # the operator owns it

    async def publish(self, team_id, job_id, status, progress, message=""):
        event = job_status(team_id, job_id, status, progress, message)
        try:
            await self.exchange.publish(
                aio_pika.Message(
                    body=json.dumps(event).encode(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=event["id"],  # aio-pika matches a return to its publish by it
                    timestamp=datetime.now(timezone.utc),
                    headers={"timestamp_in_ms": int(time.time() * 1000)},
                ),
                routing_key=routing_key(team_id, job_id),
                mandatory=True,
            )
        except aio_pika.exceptions.PublishError as e:
            raise NotRouted(f"routing key {routing_key(team_id, job_id)!r} on exchange {EXCHANGE!r}") from e
        return event

    async def close(self):
        await self.connection.close()


async def main():
    parser = argparse.ArgumentParser(description="Publish one job.status event.")
    parser.add_argument("team_id")
    parser.add_argument("job_id")
    parser.add_argument("status")
    parser.add_argument("progress", type=int)
    parser.add_argument("message", nargs="?", default="")
    args = parser.parse_args()
    publisher = StatusPublisher()
    await publisher.connect()
    try:
        event = await publisher.publish(args.team_id, args.job_id, args.status, args.progress, args.message)
        print(json.dumps(event))
    finally:
        await publisher.close()


if __name__ == "__main__":
    asyncio.run(main())
