"""FakeModel: a deterministic, offline model with scripted faults, for tests and demos.

``analyze`` derives an :class:`~plushify_core.model.Analysis` from the pixels (same photo, same
answer); ``generate`` returns a real PNG made from the input (posterised, tinted pastel, with a
stitched border, same aspect). Faults are scripted per method: the first N calls fail retryably
(optionally with a retry-after), or every call fails for good; an optional delay slows each call,
and :meth:`FakeModel.hold` parks calls until :meth:`FakeModel.release`.

As the ``fake`` model backend it reads its own settings, :class:`FakeSettings`:
``PLUSHIFY_FAKE_DELAY`` and ``PLUSHIFY_FAKE_FAIL`` (``"generate:2,analyze:fatal"``,
``"generate:1@30"`` = one failure asking to retry after 30 s); they are not in the production
:class:`~plushify_core.settings.Settings`.
"The first N calls" are counted per input image (by its SHA-256), because each run analyses and
generates from its one stored original: every run sees its own N failures, and a retried run
continues the count. Two runs of byte-identical photos share a count (use ``scope="global"`` or
distinct photos). Counts live in this process only.

Outputs are remembered per input image (and prompt) in a small cache: the same photo costs its
image work once per process. A real model is a network round trip that costs the worker almost no
CPU; the fake one should not make a worker CPU-bound on image work a real one never does
(benchmarks submit a handful of distinct photos many times). Faults, delays and the call log
apply to every call, cached or not.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

from PIL import Image, ImageChops, ImageDraw, ImageOps, ImageStat
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..errors import ConfigurationError, ModelError
from ..model import Analysis, SubjectType
from ..settings import Settings

__all__ = ["Call", "FakeModel", "FakeSettings", "Fault", "parse_faults"]

METHODS: Final = ("analyze", "generate")
_SUBJECTS: Final[tuple[SubjectType, ...]] = ("person", "pet", "other")
_MAX_PIXELS: Final = 50_000_000
#: Distinct (method, image, prompt) outputs remembered per model (a few MiB at most).
_CACHED: Final = 32
_T = TypeVar("_T", Analysis, bytes)
_NOUNS: Final = {"person": "a person", "pet": "a pet", "other": "an object"}
_TINT: Final = (255, 196, 214)
_COLOURS: Final = {
    "red": (200, 40, 40),
    "orange": (230, 140, 40),
    "yellow": (230, 210, 60),
    "green": (60, 160, 70),
    "blue": (50, 90, 200),
    "purple": (130, 60, 170),
    "pink": (240, 150, 190),
    "brown": (120, 80, 50),
    "black": (20, 20, 20),
    "grey": (128, 128, 128),
    "white": (240, 240, 240),
}


class FakeSettings(BaseSettings):
    """The fake model's knobs, from ``PLUSHIFY_FAKE_*`` (tests and demos; never production)."""

    model_config = SettingsConfigDict(
        env_prefix="PLUSHIFY_FAKE_", env_file=".env", extra="ignore", frozen=True
    )

    delay: float = Field(0.0, ge=0, description="FakeModel: seconds per model call.")
    fail: str = Field("", description="FakeModel faults, e.g. 'generate:2,analyze:fatal'.")
    trace: str = Field("", description="FakeModel: file tracing calls in flight (benchmarks).")


def _knobs(settings: FakeSettings | Settings | None) -> FakeSettings | None:
    if settings is None or isinstance(settings, FakeSettings):
        return settings
    # Given the core Settings: read PLUSHIFY_FAKE_*, plus 0.1's Settings(fake_delay=, fake_fail=).
    legacy = settings._fake_knobs
    return FakeSettings(**{name.removeprefix("fake_"): v for name, v in legacy.items()})


@dataclass(frozen=True)
class Fault:
    """A scripted failure: the first ``times`` calls fail retryably, or all calls if ``fatal``."""

    times: int = 1
    fatal: bool = False
    retry_after: float | None = None


@dataclass(frozen=True)
class Call:
    """One call made to the fake model, and how it ended (``ok``, ``retryable``, ``fatal``)."""

    method: str
    image_sha256: str
    content_type: str
    prompt: str | None
    outcome: str


def parse_faults(spec: str) -> dict[str, Fault]:
    """Parse ``"generate:2,analyze:fatal,generate:1@30"``-style fault scripts."""
    faults: dict[str, Fault] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        method, _, value = item.partition(":")
        method, value = method.strip(), value.strip()
        if method not in METHODS:
            raise ConfigurationError(
                f"PLUSHIFY_FAKE_FAIL: unknown method {method!r} in {item!r} "
                f"(use {' or '.join(METHODS)})"
            )
        try:
            if value == "fatal":
                faults[method] = Fault(fatal=True)
                continue
            count, _, after = value.partition("@")
            fault = Fault(times=int(count), retry_after=float(after) if after else None)
            if fault.times < 0 or (fault.retry_after is not None and fault.retry_after < 0):
                raise ValueError("negative")
        except ValueError as e:
            raise ConfigurationError(
                f"PLUSHIFY_FAKE_FAIL: bad fault {item!r}; expected METHOD:N, METHOD:N@SECONDS "
                "or METHOD:fatal"
            ) from e
        faults[method] = fault
    return faults


def _decode(image: bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(image))
        if img.size[0] * img.size[1] > _MAX_PIXELS:
            raise ModelError("The image is too large for the fake model.", retryable=False)
        img.load()
        return img.convert("RGB")
    except ModelError:
        raise
    except Exception as e:
        raise ModelError(
            f"The fake model cannot read this image ({type(e).__name__}).",
            retryable=False,
            code="model_bad_input",
        ) from e


def _colour_name(rgb: tuple[float, ...]) -> str:
    def distance(item: tuple[str, tuple[int, int, int]]) -> float:
        return sum((a - b) ** 2 for a, b in zip(item[1], rgb, strict=False))

    return min(_COLOURS.items(), key=distance)[0]


class FakeModel:
    """A model (analyzer and generator) with deterministic output and scripted faults."""

    name = "fake"

    def __init__(
        self,
        settings: FakeSettings | Settings | None = None,
        *,
        analysis: Analysis | None = None,
        faults: Mapping[str, Fault] | str | None = None,
        delay: float | None = None,
        scope: Literal["image", "global"] = "image",
        sleep: Callable[[float], None] = time.sleep,
        hold_timeout: float = 30.0,
        trace: str | None = None,
    ) -> None:
        """Build from ``settings``; keyword arguments override them.

        ``settings`` is a :class:`FakeSettings`, or the core ``Settings`` (then the knobs are
        read from ``PLUSHIFY_FAKE_*``); ``None`` means no faults and no delay. ``trace`` names a
        file shared by processes where each call appends ``<time> +1`` when it enters its delay
        and ``<time> -1`` when it leaves it (calls in flight, measured by the model itself
        across worker processes; ``PLUSHIFY_FAKE_TRACE``).
        """
        knobs = _knobs(settings)
        if faults is None:
            faults = knobs.fail if knobs is not None else ""
        self.faults: dict[str, Fault] = (
            parse_faults(faults) if isinstance(faults, str) else dict(faults)
        )
        self.delay = delay if delay is not None else (knobs.delay if knobs else 0.0)
        if trace is None and knobs is not None:
            trace = knobs.trace or None
        self.analysis = analysis
        self.scope = scope
        self.hold_timeout = hold_timeout
        self.trace = trace
        self._sleep = sleep
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._calls: list[Call] = []
        self._outputs: OrderedDict[tuple[str, str, str], Analysis | bytes] = OrderedDict()
        self._gate = threading.Event()
        self._gate.set()

    @classmethod
    def from_settings(cls, settings: Settings) -> FakeModel:
        """The ``fake`` entry point factory: delay, faults and trace from ``PLUSHIFY_FAKE_*``."""
        return cls(settings)

    def __repr__(self) -> str:
        return f"FakeModel(faults={self.faults!r}, delay={self.delay!r})"

    # --- scripting ----------------------------------------------------------------------------

    def fail(self, method: str, times: int = 1, *, retry_after: float | None = None) -> None:
        """From now on, the first ``times`` calls of ``method`` (per image) fail retryably."""
        self._script(method, Fault(times=times, retry_after=retry_after))

    def fail_always(self, method: str) -> None:
        """From now on, every call of ``method`` fails non-retryably."""
        self._script(method, Fault(fatal=True))

    def heal(self) -> None:
        """Remove every scripted fault and forget the counts."""
        with self._lock:
            self.faults.clear()
            self._counts.clear()

    def _script(self, method: str, fault: Fault) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}")
        with self._lock:
            self.faults[method] = fault
            for key in [k for k in self._counts if k[0] == method]:
                del self._counts[key]

    def hold(self) -> None:
        """Park every call until :meth:`release` (to observe runs while they are processing)."""
        self._gate.clear()

    def release(self) -> None:
        """Let parked and future calls proceed."""
        self._gate.set()

    # --- call log -----------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """A snapshot of every call so far, in order."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        """The calls made to ``method``."""
        return [c for c in self.calls if c.method == method]

    # --- the model ----------------------------------------------------------------------------

    def _enter(self, method: str, image: bytes, content_type: str, prompt: str | None) -> str:
        """Delay, wait at the gate, then raise the scripted fault for this call, if any;
        returns the image's SHA-256 (hex)."""
        if self.delay:
            self._traced(1)
            self._sleep(self.delay)
            self._traced(-1)
        if not self._gate.wait(self.hold_timeout):
            raise ModelError("The fake model was held too long.", retryable=True)
        digest = hashlib.sha256(image).hexdigest()
        with self._lock:
            fault = self.faults.get(method)
            key = (method, digest if self.scope == "image" else "*")
            self._counts[key] += 1
            outcome = "ok"
            if fault is not None and (fault.fatal or self._counts[key] <= fault.times):
                outcome = "fatal" if fault.fatal else "retryable"
            self._calls.append(Call(method, digest, content_type, prompt, outcome))
        if fault is not None and outcome == "fatal":
            raise ModelError(f"Scripted permanent {method} failure.", retryable=False)
        if fault is not None and outcome == "retryable":
            raise ModelError(
                f"Scripted transient {method} failure.",
                retryable=True,
                retry_after=fault.retry_after,
            )
        return digest

    def _remembered(self, key: tuple[str, str, str], make: Callable[[], _T]) -> _T:
        """``make()``'s output for ``key``, computed once while it stays among the recent ones."""
        with self._lock:
            found = self._outputs.get(key)
            if found is not None:
                self._outputs.move_to_end(key)
        if found is None:
            found = make()  # outside the lock: two first calls may both compute (same output)
            with self._lock:
                self._outputs[key] = found
                while len(self._outputs) > _CACHED:
                    self._outputs.popitem(last=False)
        output: _T = found  # type: ignore[assignment]
        return output

    def _traced(self, change: int) -> None:
        if self.trace:
            # One small append per event: atomic between processes on a local file system.
            with open(self.trace, "a", encoding="ascii") as out:
                out.write(f"{time.time():.6f} {change:+d}\n")

    def analyze(self, image: bytes, content_type: str) -> Analysis:
        """Describe the photo deterministically from its pixels."""
        digest = self._enter("analyze", image, content_type, None)
        derived = self._remembered(("analyze", digest, ""), lambda: _describe(_decode(image)))
        chosen = self.analysis if self.analysis is not None else derived
        return chosen.model_copy(deep=True)

    def generate(self, image: bytes, content_type: str, prompt: str) -> bytes:
        """A plush-looking PNG made from the photo: posterised, pastel, with stitched edges."""
        digest = self._enter("generate", image, content_type, prompt)
        if not prompt.strip():
            raise ModelError("The prompt is empty.", retryable=False, code="model_bad_input")
        return self._remembered(("generate", digest, prompt), lambda: _plushie(_decode(image)))


def _describe(img: Image.Image) -> Analysis:
    """What the fake model says about a decoded photo (from its pixels only)."""
    thumb = img.resize((8, 8), Image.Resampling.BILINEAR).convert("L")
    subject = _SUBJECTS[hashlib.sha256(thumb.tobytes()).digest()[0] % len(_SUBJECTS)]
    mean = tuple(ImageStat.Stat(img).mean)
    colour = _colour_name(mean)
    brightness = sum(mean) / 3
    light = "bright" if brightness > 170 else "dim" if brightness < 85 else "even"
    width, height = img.size
    framing = "landscape" if width > height else "portrait" if height > width else "square"
    noun = _NOUNS[subject]
    return Analysis(
        subject_type=subject,
        description=f"A {framing} photo of {noun}, mostly {colour}, in {light} light.",
        key_features=[f"mostly {colour}", f"{light} lighting", f"{framing} framing"],
    )


def _plushie(img: Image.Image) -> bytes:
    """A plush-looking PNG made from a decoded photo: posterised, pastel, stitched edges."""
    img.thumbnail((512, 512), Image.Resampling.LANCZOS)
    soft = ImageOps.posterize(img, 3)
    soft = ImageChops.blend(soft, Image.new("RGB", soft.size, _TINT), 0.3)
    draw = ImageDraw.Draw(soft)
    width, height = soft.size
    inset = max(1, min(width, height) // 16)
    step = max(2, inset)
    for x in range(inset, width - inset, step * 2):  # dashed "stitches" along the edges
        draw.line((x, inset, x + step, inset), fill=(255, 255, 255))
        draw.line((x, height - 1 - inset, x + step, height - 1 - inset), fill=(255, 255, 255))
    for y in range(inset, height - inset, step * 2):
        draw.line((inset, y, inset, y + step), fill=(255, 255, 255))
        draw.line((width - 1 - inset, y, width - 1 - inset, y + step), fill=(255, 255, 255))
    out = io.BytesIO()
    soft.save(out, "PNG")
    return out.getvalue()
