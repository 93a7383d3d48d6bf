"""The event contract of docs/events.md, shared by the Celery and aio-pika publishers.

Configuration comes from the environment keys the bridge reads too:
RABBITMQ_URL (the broker) and RABBITMQ_EVENTS_EXCHANGE (the EventStream's exchange).
"""
import os
import uuid
from datetime import datetime, timezone

RABBITMQ_URL = os.environ.get("RABBITMQ_URL")
if not RABBITMQ_URL:
    raise RuntimeError("RABBITMQ_URL is not set: the broker, e.g. amqp://user:pass@rabbitmq:5672/")
EXCHANGE = os.environ.get("RABBITMQ_EVENTS_EXCHANGE", "events.topic")


class NotRouted(Exception):
    """The broker returned the event: no queue is bound for its routing key (the EventStream is
    missing or not ready, or the broker lost its bindings). The event was not published."""


def routing_key(team_id, job_id):
    """The routing key of the EventStream's default template team.{team_id}.job.{job_id}.status."""
    return f"team.{team_id}.job.{job_id}.status"


def job_status(team_id, job_id, status, progress, message=""):
    """A job.status event; its id de-duplicates at-least-once deliveries in the browser."""
    event = {
        "id": uuid.uuid4().hex,
        "type": "job.status",
        "team_id": str(team_id),
        "job_id": str(job_id),
        "status": status,
        "progress": int(progress),
        "time": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
    }
    if message:
        event["message"] = message
    return event
