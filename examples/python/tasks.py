"""A Celery app whose task reports its progress as job.status events.

    RABBITMQ_URL=amqp://user:pass@rabbitmq:5672/ python3 -m celery -A tasks worker
    python3 -m celery -A tasks call tasks.process_job --args '["42", "7"]'
"""
import time

from celery import Celery
from kombu import Exchange, Producer

from job_events import EXCHANGE, RABBITMQ_URL, NotRouted, job_status, routing_key

app = Celery("tasks", broker=RABBITMQ_URL)
# py-amqp waits for the broker's confirm on every publish (tasks and events) and raises on a nack.
app.conf.broker_transport_options = {"confirm_publish": True}

events_exchange = Exchange(EXCHANGE, type="topic", durable=True)
_returned = set()  # message ids the broker returned as unroutable


def _on_return(exception, exchange, routing_key, message):
    _returned.add(message.properties.get("message_id"))


def publish_status(team_id, job_id, status, progress, message=""):
    """Publishes one event and returns once the broker confirmed it; raises NotRouted when the
    broker returned it as unroutable (it confirms those too: a confirm alone is not "stored")."""
    event = job_status(team_id, job_id, status, progress, message)
    with app.pool.acquire(block=True) as connection:
        # The broker sends a return before its confirm; py-amqp runs _on_return while it waits.
        producer = Producer(connection.default_channel, on_return=_on_return)
        producer.publish(
            event,
            exchange=events_exchange,
            routing_key=routing_key(team_id, job_id),
            mandatory=True,
            serializer="json",  # content_type application/json
            delivery_mode=2,  # persistent
            message_id=event["id"],
            timestamp=int(time.time()),
            # No timestamp_in_ms header: py-amqp writes integers above 2**31 with the field type
            # "L", which the bridge's AMQP client cannot read. The timestamp above is enough.
            declare=[],  # the operator owns the topology
            retry=True,
        )
    if event["id"] in _returned:
        _returned.discard(event["id"])
        raise NotRouted(f"routing key {routing_key(team_id, job_id)!r} on exchange {EXCHANGE!r}")


@app.task
def process_job(team_id, job_id, steps=10, step_seconds=1.0):
    """Works through steps (here: sleeps), reporting running 0..90 % and then succeeded 100 %."""
    publish_status(team_id, job_id, "running", 0, "started")
    for step in range(1, steps):
        time.sleep(step_seconds)  # the work
        publish_status(team_id, job_id, "running", step * 100 // steps, f"step {step} of {steps}")
    time.sleep(step_seconds)
    publish_status(team_id, job_id, "succeeded", 100, "done")
