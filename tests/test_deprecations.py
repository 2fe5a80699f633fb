"""Old public names still work for one release, and each warns once per process."""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine as SQLEngine

import plushify_core
from plushify_core import backends, clock, database, errors, pipelines
from plushify_core.deprecation import forget_warnings
from plushify_core.ledger import CreditLedger

# (module, old name, the object it must now be)
RENAMED: list[tuple[str, str, object]] = [
    ("plushify_core.errors", "NonRetriableError", errors.NonRetryableError),
    ("plushify_core.errors", "NotRetryable", errors.NotFailed),
    ("plushify_core.database", "create_engine", database.open_database),
    ("plushify_core", "create_engine", database.open_database),
    ("plushify_core", "NonRetriableError", errors.NonRetryableError),
    ("plushify_core", "NotRetryable", errors.NotFailed),
    ("plushify_core", "utcnow", clock.utcnow),
    ("plushify_core", "Engine", pipelines.Engine),
    ("plushify_core", "RunContext", pipelines.RunContext),
    ("plushify_core", "transaction", pipelines.transaction),
    ("plushify_core", "Model", backends.Model),
    ("plushify_core", "load_runner", backends.load_runner),
]


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    """Every test starts as a new process would: no old name has warned yet."""
    forget_warnings()
    yield
    forget_warnings()


def deprecations(action: Callable[[], Any]) -> tuple[Any, list[str]]:
    """Run ``action``; its result and the texts of the DeprecationWarnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = action()
    return result, [str(w.message) for w in caught if w.category is DeprecationWarning]


@pytest.mark.parametrize(("module", "old", "new"), RENAMED, ids=[f"{r[0]}.{r[1]}" for r in RENAMED])
def test_an_old_name_is_the_new_object_and_warns_once(module: str, old: str, new: object) -> None:
    """``from module import Old`` gives the new object; the second use is silent."""
    mod = importlib.import_module(module)
    first, warned = deprecations(lambda: getattr(mod, old))
    assert first is new
    assert len(warned) == 1 and f"{module}.{old}" in warned[0]
    again, warned_again = deprecations(lambda: getattr(mod, old))
    assert again is new and warned_again == []


def test_every_current_public_name_imports_without_a_warning() -> None:
    """The three audiences' modules export only current names; ``__version__`` is set."""
    for module in (plushify_core, pipelines, backends):
        values, warned = deprecations(lambda m=module: [getattr(m, n) for n in m.__all__])
        assert warned == [] and None not in values
    assert plushify_core.__version__ and plushify_core.__version__[0].isdigit()


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    """The alias table answers only for old names: a typo fails as it always did."""
    with pytest.raises(AttributeError, match="NoSuchError"):
        errors.NoSuchError  # noqa: B018


def test_an_old_error_name_still_catches_the_renamed_error() -> None:
    """``except NotRetryable`` keeps catching what the library now raises as NotFailed."""
    old, _ = deprecations(lambda: errors.NotRetryable)
    with pytest.raises(old):
        raise errors.NotFailed("Only failed generations can be retried.")
    assert errors.NotFailed.code == "not_failed"


def test_the_ledger_records_module_keeps_its_old_import_path() -> None:
    """``plushify_core.ledger_models`` still imports the records, warning once."""
    sys.modules.pop("plushify_core.ledger_models", None)
    module, warned = deprecations(lambda: importlib.import_module("plushify_core.ledger_models"))
    from plushify_core.ledger_records import Balance

    assert module.Balance is Balance
    assert len(warned) == 1 and "plushify_core.ledger_records" in warned[0]


def test_the_ledger_database_keeps_its_old_attribute(db: SQLEngine) -> None:
    """``CreditLedger.engine`` is ``CreditLedger.database``, warning once."""
    ledger = CreditLedger(db)
    first, warned = deprecations(lambda: ledger.engine)
    assert first is ledger.database is db
    assert len(warned) == 1 and "CreditLedger.database" in warned[0]
    assert deprecations(lambda: ledger.engine)[1] == []


def test_the_fake_model_knobs_of_settings_still_reach_the_fake_model() -> None:
    """``Settings(fake_delay=, fake_fail=)`` of 0.1 still configures the fake model, warning."""
    from plushify_core.settings import Settings
    from plushify_core.testing.fake_model import FakeModel, Fault

    settings, warned = deprecations(lambda: Settings(fake_delay=0.25, fake_fail="generate:2"))
    assert len(warned) == 1 and "FakeSettings" in warned[0]
    model = FakeModel.from_settings(settings)
    assert model.delay == 0.25 and model.faults == {"generate": Fault(times=2)}
    assert deprecations(lambda: Settings(fake_delay=0.5))[1] == []


def test_the_http_shape_of_a_generation_still_answers_from_the_library() -> None:
    """``Generation.to_api`` (now the web app's ``generation_json``) still works, warning once."""
    from datetime import UTC, datetime

    from plushify_core.generations import Generation

    now = datetime(2026, 1, 2, tzinfo=UTC)
    gen = Generation(id="g1", user_id="u", status="processing", created_at=now, updated_at=now)
    shape, warned = deprecations(lambda: gen.to_api(original_image_url="/o"))
    assert len(warned) == 1 and "generation_json" in warned[0]
    assert shape["original_image_url"] == "/o" and shape["step_count"] == 5
    assert shape["created_at"] == now.isoformat() and shape["waiting"] is None
    assert deprecations(lambda: gen.to_api())[1] == []


def test_the_engine_database_keeps_its_old_attribute(db: SQLEngine) -> None:
    """``Engine.db`` is ``Engine.database``, warning once."""
    engine = pipelines.Engine(db)
    first, warned = deprecations(lambda: engine.db)
    assert first is engine.database is db
    assert len(warned) == 1 and "Engine.database" in warned[0]
    assert deprecations(lambda: engine.db)[1] == []
