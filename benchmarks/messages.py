"""5. Message size: what travels through the broker and the runs table per photo size.

The Plushify facade submits through a real ``DramatiqRunner`` on Dramatiq's ``StubBroker`` (the
encoded message is what Redis or RabbitMQ would carry). Also measured: the run payload stored in
the database and the largest step result once the generation completed (claim check: keys only).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from dramatiq.brokers.stub import StubBroker

from plushify_core.database import create_schema, open_database
from plushify_core.facade import Plushify
from plushify_core.settings import Settings
from plushify_core.storage import BlobStore
from plushify_core.testing.fake_model import FakeModel

from .common import Result, noise_jpeg

SIZES = {"100 KB": 100_000, "1 MB": 1_000_000, "10 MB": 10_000_000}


def run(quick: bool) -> Result:
    """One generation per photo size; sizes in bytes."""
    from plushify_dramatiq.runner import DramatiqRunner
    from plushify_dramatiq.settings import DramatiqSettings

    result = Result("message_size", "5. Message size per photo size (bytes)")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            model="fake",
            max_upload_bytes=12 * 1024 * 1024,
            max_long_side=1024,
        )
        db = open_database(settings.database_url)
        create_schema(db)
        broker = StubBroker()
        broker.emit_after("process_boot")
        options = DramatiqSettings(broker_url="redis://127.0.0.1:6379/0", queue="bench")
        app = Plushify(
            database=db,
            storage=BlobStore(settings.storage_url),
            model=FakeModel(settings),
            settings=settings,
            runner="inprocess",
        )
        runner = DramatiqRunner(app.engine, settings, options=options, broker=broker)
        runner.start()
        app.runner = runner
        app.ledger.grant("bench", 10, key="bench")
        for label, size in SIZES.items():
            data = noise_jpeg(size, seed=size)
            gen = app.submit("bench", data)
            queue = broker.queues[options.queue]
            message = queue.get_nowait()
            app.engine.run_inline(gen.id)
            detail = app.engine.get_run(gen.id)
            largest = max(len(json.dumps(s.result)) for s in detail.steps)
            result.add(
                photo=label,
                photo_bytes=len(data),
                dramatiq_message=len(message),
                run_payload=len(json.dumps(detail.payload)),
                largest_step_result=largest,
                base64_in_message=(len(data) + 2) // 3 * 4,
                status=detail.status,
            )
        broker.close()
        db.dispose()
    result.notes.append(
        "base64_in_message = what a design passing the photo inside the message would carry; "
        "Redis and RabbitMQ carry the encoded Dramatiq message as is"
    )
    return result
